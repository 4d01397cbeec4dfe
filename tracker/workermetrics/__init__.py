"""One scrape of /metrics reports every worker of `tracker serve` with TRACKER_WORKERS > 1.

Design: periodic snapshots, not prometheus_client's multiprocess mode. Multiprocess mode writes
every increment to an mmapped file behind a lock. Measured in process with timeit (best of 5 x
500k on the shared 2-core dev machine, so ranges), the metric work of one pixel request (cache
lookup and outcome counts, latency histogram, the two perf_counter calls) costs 0.3-0.7 us with
hotstats' plain numbers, 1.7-5.4 us with ordinary prometheus_client metrics and 5.8-15 us in
multiprocess mode. Hotstats stays exactly as it was, so the request path costs the same with
shared metrics as without (before = after: no lock, no syscall, no allocation added). Multiprocess
mode also cannot hold the counters this tracker reads from plain numbers at scrape time
(privacy, integrity, spill), nor gauges computed at scrape time.

Instead each worker writes a snapshot of its registry (about 14 KB of JSON) to a private directory
that the supervisor makes (home.py) every SNAPSHOT_SECONDS, before it answers a scrape, and at
exit. Taking it costs the event loop 0.3-0.6 ms once a second (0.03-0.06 %); encoding and writing
run in a thread. The worker that the kernel hands a scrape merges its live values with the
others' snapshots and with the retired counts of exited workers, which the supervisor folds into
one file when it restarts one (directory.py). A scrape costs 3.4-4.8 ms with two workers against
1.1-1.7 ms for one (in process, the whole registry of a tracker). Counters never go down across a
restart; a worker killed with SIGKILL leaves out at most its last SNAPSHOT_SECONDS of counts that
no scrape had shown. How each metric type combines: snapshot.py. With TRACKER_WORKERS=1 none of
this runs: no directory, no task, /metrics is the process's own registry, as before.

The tracker exposes no process_* or python_* metrics (its registry is its own, without the
default collectors), so there are none to merge or to label per worker.
"""
