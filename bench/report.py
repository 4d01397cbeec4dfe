"""Writing a benchmark run as JSON, a Markdown table and a PNG chart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

from bench.capacity_report import capacity_lines

# The rule the hostile part checks (docs/benchmarks.md, Hostile requests): no request, whatever
# it carries, may cost the tracker more than this many typical pixels' CPU.
HOSTILE_BOUND = 5


def write_reports(report: dict[str, Any], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "latest.json").write_text(json.dumps(report, indent=2) + "\n")
    (directory / "latest.md").write_text(markdown(report))
    if "http" in report:
        chart(report["http"], directory / "latest.png")


def markdown(report: dict[str, Any]) -> str:
    lines = _http_lines(report) if "http" in report else []
    if "durability" in report:
        lines += durability_lines(report["durability"])
    if "privacy" in report:
        lines += privacy_lines(report["privacy"])
    if "integrity" in report:
        lines += integrity_lines(report["integrity"])
    if "hostile" in report:
        lines += hostile_lines(report["hostile"])
    if "capacity" in report:
        lines += capacity_lines(report["capacity"])
    if "rollups" in report:
        lines += rollups_lines(report["rollups"])
    return "\n".join(lines)


def _http_lines(report: dict[str, Any]) -> list[str]:
    machine = report["machine"]
    lines = [
        f"Run {report['started']} on {machine['cores']} cores ({machine['cpu']}), Python "
        f"{machine['python']}; {report['rounds']} x {report['seconds_per_run']:.0f} s per side, "
        "interleaved tracker/baseline.",
        "",
        "| case | c | workers | tracker req/s | baseline req/s | ratio | p50 ms | p99 ms | "
        "baseline p99 ms | p99 ratio | non-2xx | CPU us/req | baseline CPU us/req | RSS MB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in report["http"]:
        lines.append(
            f"| {_case_name(row)} | {row['concurrency']} | {row['workers']} | {row['rps']:,} | "
            f"{row['baseline_rps']:,} | {row['ratio_rps']:.2f} | {row['p50_ms']} | "
            f"{row['p99_ms']} | {row['baseline_p99_ms']} | {row['ratio_p99']} | "
            f"{row['errors']} | {row['tracker_cpu_us_per_request']} | "
            f"{row['baseline_cpu_us_per_request']} | {row['tracker_rss_mb']} |"
        )
    memory, e2e = report["memory"], report["e2e"]
    ceiling = report.get("ceiling")
    lines += [
        "",
        f"Ceiling: {ceiling['server']} at c={ceiling['concurrency']}: {ceiling['rps']:,} req/s, "
        f"p99 {ceiling['p99_ms']} ms (what hey itself can drive on this machine)."
        if ceiling
        else "Ceiling: nginx is not installed, so nginx empty_gif was not measured.",
    ]
    lines += _shipping_lines(
        report.get("shipping_plain", {}), report.get("shipping_aggregated", {})
    )
    lines += [
        "",
        f"Memory: {memory['rss_mb_full']} MB RSS with {memory['programs']:,} programs cached "
        f"({memory['rss_mb_empty']} MB empty).",
        "",
        f"End to end: {e2e['requests']:,} pixel requests at {e2e['http_rps']:,} req/s; "
        f"{e2e['accepted_events']:,} accepted events, {e2e['items_in_dynamodb']:,} items in "
        f"DynamoDB ({e2e['lost']} lost, {e2e['duplicated']} duplicated), all stored "
        f"{e2e['seconds_until_all_stored']} s after the first request "
        f"({e2e['seconds_after_http']} s after the last).",
        "",
    ]
    return lines


def durability_lines(part: dict[str, Any]) -> list[str]:
    """The pixel in each DURABILITY mode, and the drains of on-disk logs."""
    return _mode_lines(part) + _replay_lines(part["replay"])


def _mode_lines(part: dict[str, Any]) -> list[str]:
    machine, base = part["machine"], part["baseline"]
    lines = [
        f"Durability: run {part['started']} on {machine['cores']} cores ({machine['cpu']}), "
        f"Python {machine['python']}. Pixel cached valid, c={part['concurrency']}, "
        f"{part['workers']} worker, shipping to the canned endpoint; {part['rounds']} x "
        f"{part['seconds_per_run']:.0f} s per server, the bare server and one tracker per mode "
        "in rotated order.",
        "",
        "| mode | req/s | vs overflow | vs bare aiohttp | p50 ms | p99 ms | non-2xx | CPU us/req "
        "| events via the disk log | records per PutRecords | most unshipped after a run "
        "| dropped | RSS MB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        f"| {base['server']} | {base['rps']:,} | | 1.00 | | {base['p99_ms']} | {base['errors']} "
        f"| {base['cpu_us_per_request']} | | | | | |",
    ]
    for row in part["modes"]:
        lines.append(
            f"| {row['mode']} | {row['rps']:,} | {row['ratio_to_overflow']:.2f} | "
            f"{row['ratio_to_baseline']:.2f} | {row['p50_ms']} | {row['p99_ms']} | "
            f"{row['errors']} | {row['cpu_us_per_request']} | "
            f"{row['events_through_disk_log']:,} of {row['events_shipped']:,} | "
            f"{_number(row['records_per_put_records_call'])} | "
            f"{row['max_unshipped_at_end_of_run']:,} | {row['events_dropped']} | {row['rss_mb']} |"
        )
    return lines


def _replay_lines(replays: list[dict[str, Any]]) -> list[str]:
    lines = [
        "",
        "Replay of an on-disk log (written with the tracker's framing, adopted by one tracker at "
        "start; events/s from tracker_spill_replayed_total, RSS of the tracker while it drains):",
        "",
        "| log | into | events | bytes per event | drained after s | events/s | events/s "
        "(10-90 %) | MiB/s | tracker RSS MB first / peak / last | peak (VmHWM) | kinesalite "
        "peak RSS MB | shipped | corrupt | dropped | left on disk |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- "
        "| --- |",
    ]
    for run in replays:
        log = (
            f"| {run['log_mib']:,} MiB | {run['into']} | {run['events']:,} | "
            f"{run['mean_event_bytes']} | "
        )
        if not run["drained"]:
            lines.append(
                f"{log}{run['outcome']}: {_number(run.get('replayed'))} replayed |" + " |" * 10
            )
            continue
        lines.append(
            f"{log}{run['seconds_to_drain']} | "
            f"{run['events_per_second']:,} | {_number(run['events_per_second_10_to_90'])} | "
            f"{run['mib_per_second']} | {run['tracker_rss_mb_first']} / "
            f"{run['tracker_rss_mb_peak']} / {run['tracker_rss_mb_last']} | "
            f"{run['tracker_peak_rss_mb_hwm']} | {_number(run['kinesalite_rss_mb_peak'])} | "
            f"{run['events_shipped']:,} | {run['corrupt_records']} | {run['events_dropped']} | "
            f"{run['bytes_left_on_disk']} |"
        )
    lines.append("")
    return lines


def privacy_lines(part: dict[str, Any]) -> list[str]:
    """The pixel with consent signals against the bare server, and the privacy step alone."""
    machine = part["machine"]
    lines = [
        f"Privacy: run {part['started']} on {machine['cores']} cores ({machine['cpu']}), Python "
        f"{machine['python']}. One tracker with TCF_VENDOR_ID and USER_ID_KEY set, c=100, one "
        f"worker, shipping to the canned endpoint; {part['rounds']} x "
        f"{part['seconds_per_run']:.0f} s per side, interleaved with the bare aiohttp server "
        "(which gets the same headers).",
        "",
        "| case | request carries | tracker req/s | bare req/s | ratio | p50 ms | p99 ms | "
        "bare p99 ms | non-2xx | CPU us/req | bare CPU us/req |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in part["http"]:
        lines.append(
            f"| {row['name']} | {_carries(row)} | {row['rps']:,} | {row['baseline_rps']:,} | "
            f"{row['ratio_rps']:.2f} | {row['p50_ms']} | {row['p99_ms']} | "
            f"{row['baseline_p99_ms']} | {row['errors']} | {row['tracker_cpu_us_per_request']} | "
            f"{row['baseline_cpu_us_per_request']} |"
        )
    counters = part.get("counters", {})
    if counters:
        lines += ["", "The tracker's counters after the runs: " + _privacy_counters(counters)]
    micro = part["micro"]
    lines += [
        "",
        f"The privacy step alone (`ClientFields.fragment`, in process, vendor "
        f"{micro['vendor_id']}, purpose {micro['purpose']}): per call, the median of "
        f"{micro['repetitions']} repetitions, in each of {micro['runs']} run(s); the figure is "
        "the median of the runs.",
    ]
    return lines + _micro_table(micro["paths"])


def integrity_lines(part: dict[str, Any]) -> list[str]:
    """The pixel by user agent and signed clicks against the bare server, what the tracker
    classified, and each integrity check alone."""
    machine = part["machine"]
    lines = [
        f"Integrity: run {part['started']} on {machine['cores']} cores ({machine['cpu']}), "
        f"Python {machine['python']}. One tracker per group of settings, c=100, one worker, "
        f"shipping to the canned endpoint; {part['rounds']} x {part['seconds_per_run']:.0f} s per "
        "side, interleaved with the bare aiohttp server, which gets the same client and headers. "
        "hey sends its own user agent whatever it is told (hey/0.0.1, not a crawler), so the "
        "cases with a user agent of their own run through wrk.",
        "",
        "| case | tracker settings | client | tracker req/s | bare req/s | ratio | p50 ms | p99 ms "
        "| bare p99 ms | non-2xx | CPU us/req | bare CPU us/req | Redis CPU us/req "
        "| events by ivt | duplicate checks |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- "
        "| --- |",
    ]
    for row in part["http"]:
        observed = row.get("observed", {})
        lines.append(
            f"| {row['name']} | {row['settings']} | {row['client']} | {row['rps']:,} | "
            f"{row['baseline_rps']:,} | {row['ratio_rps']:.2f} | {row['p50_ms']} | "
            f"{row['p99_ms']} | {row['baseline_p99_ms']} | {row['errors']} | "
            f"{row['tracker_cpu_us_per_request']} | {row['baseline_cpu_us_per_request']} | "
            f"{_number(row.get('redis_cpu_us_per_request'))} | {_ivt_counts(observed)} | "
            f"{_duplicate_checks(observed)} |"
        )
    lines += [
        "",
        "Every request of a run comes from one client (127.0.0.1, one user agent): after its "
        "first request the crawler memo always hits, and with the duplicate check on (its "
        "default, 30 s) every click but the tracker's first is a duplicate, each one a Redis "
        "SET NX after its answer. Events by ivt and duplicate checks are the tracker's "
        "counters over the case (its requests, plus any the load generator cut off at the end).",
    ]
    micro = part["micro"]
    lines += [
        "",
        f"The checks alone (in process; a signed link of program + {micro['link_params']} "
        f"params, {micro['link_days']} days to expiry): per call, the median of "
        f"{micro['repetitions']} repetitions, in each of {micro['runs']} run(s); the figure is "
        "the median of the runs.",
    ]
    return lines + _micro_table(micro["paths"])


def hostile_lines(part: dict[str, Any]) -> list[str]:
    """Each hostile request shape's CPU per request against a typical pixel
    (bench/hostile_cost.py), the worst stated next to the typical."""
    machine, typical, worst = part["machine"], part["typical"], part["worst"]
    commit = part.get("commit")
    tracker = f"The tracker of commit {commit}" if commit else "One tracker"
    lines = [
        "",
        "## Hostile requests: CPU per request against a typical pixel",
        "",
        f"Run {part['started']} on {machine['cores']} cores ({machine['cpu']}), Python "
        f"{machine['python']}. {tracker} (one worker; TCF_VENDOR_ID, USER_ID_KEY and "
        "CLICK_SIGNING_KEYS set), shipping to the canned endpoint; wrk with "
        f"c={part['concurrency']}, {part['rounds']} x {part['seconds_per_run']} s per shape, "
        "every request of a shape new unless its name says the same (so that no memo of the "
        "tracker helps), the typical pixel before and after each round. The tracker process's "
        "CPU per request, the shipping of its events "
        f"included, the idle process's share ({part['idle_cpu_us_per_second']:,.0f} us/s) taken "
        "off.",
        "",
        f"typical: {typical['shape']}, {typical['cpu_us_per_request']:,} us per request.",
        f"worst: {worst['shape']} ({worst['cpu_us_per_request']:,} us per request) at "
        f"{worst['ratio_to_typical']:.2f}x the typical pixel; the bound is {HOSTILE_BOUND}x.",
        "",
        "| shape | CPU us/req | ratio to the typical pixel | req/s | bad answers "
        "| what the tracker decided |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in [typical, *part["shapes"]]:
        lines.append(
            f"| {row['shape']} | {row['cpu_us_per_request']:,} | "
            f"{row['ratio_to_typical']:.2f} | {row['requests_per_second']:,.0f} | "
            f"{row['bad_answers']:,} | {_decisions(row['observed'])} |"
        )
    return [*lines, ""]


def rollups_lines(part: dict[str, Any]) -> list[str]:
    """The reporting rollups against the issue's bars (bench/rollup_cost.py,
    bench/report_latency.py, bench/rollup_freshness.py)."""
    lines = [
        "",
        "## Reporting: the rollups' cost, a report's latency, an event's freshness",
        "",
        f"Run {part['started']}. Events consumer in process, the processor as built and without "
        "rollups in alternating rounds, the same batches (one shard's events of a 1 s poll at "
        "the stream's tip); CPU of the processor's thread per event, medians of the rounds.",
        "",
        "| traffic | events per batch | CPU us/event with rollups | without | added | of it: "
        "rollup GetItem + PutItem | fold | add + item | WRU/event | RRU/event | bytes per item "
        "write |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in part["cost"]["sizes"]:
        cpu, units, parts = row["cpu_us_per_event"], row["units"], row["breakdown_us_per_event"]
        lines.append(
            f"| {row['size']} | {row['events_per_batch']:,} | {cpu['with_rollups']} | "
            f"{cpu['without_rollups']} | {cpu['added']} | {parts['rollup_calls']} | "
            f"{parts['fold']} | {parts['add_and_item']} | {units['write_units_per_event']} | "
            f"{units['read_units_per_event']} | {units['item_bytes_median']:,} |"
        )
    return lines + _latency_lines(part["latency"]) + _bar_lines(part)


def _latency_lines(latency: dict[str, Any]) -> list[str]:
    lines = [
        "",
        f"`reports serve` (a process) over {latency['items']:,} rollup items (every quarter "
        f"hour of {latency['days']} days, dense sketches), one request at a time, warm (the "
        "report cache holds the range; its first, cold, request in the last column):",
        "",
        "| report | Query answered by | requests | p50 ms | p99 ms | max ms | reports CPU "
        "ms/request | moto CPU ms/request | first request ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, what, store in (
        ("hourly_moto", f"{latency['days']} days by hour", "moto"),
        ("hourly", f"{latency['days']} days by hour", "moto's pages replayed"),
        ("daily_366", "366 days by day", "moto's pages replayed"),
    ):
        row = latency[name]
        lines.append(
            f"| {what} | {store} | {row['requests']} | {row['p50_ms']} | {row['p99_ms']} | "
            f"{row['max_ms']} | {row['reports_cpu_ms_per_request']} | "
            f"{row['moto_cpu_ms_per_request']} | {row.get('first_ms', '')} |"
        )
    where = latency["profile_ms"]
    lines += [
        "",
        f"Where a cold hourly report's time goes (uncached, in process, ms): the Query's pages "
        f"through botocore {where['query_client_cpu']}, summarize {where['summarize']}, JSON "
        f"{where['json']}.",
    ]
    return lines


def _bar_lines(part: dict[str, Any]) -> list[str]:
    fresh = part["freshness"]
    bars = part["cost"]["bars"]
    latency = part["latency"]["bar"]

    def verdict(holds: bool) -> str:
        return "holds" if holds else "**does not hold**"

    units, cpu = bars["write_units_per_event"], bars["cpu_us_per_event"]
    return [
        "",
        f"Freshness: an event put on the stream showed in the report after a median "
        f"{fresh['median_seconds']} s, at most {fresh['max_seconds']} s ({fresh['tries']} tries, "
        f"CONSUMER_POLL_MS {fresh['consumer_poll_ms']}).",
        "",
        f"Bars: rollup write units per event {units['measured']} <= {units['bar']}: "
        f"{verdict(units['holds'])}; added CPU per event {cpu['measured']} us <= {cpu['bar']}: "
        f"{verdict(cpu['holds'])}; 31-day hourly report p99 {latency['p99_ms_moto']} ms "
        f"< {latency['bar_ms']} (on moto; {latency['p99_ms_replayed']} ms with its pages "
        f"replayed): {verdict(latency['holds'])}; freshness {fresh['max_seconds']} s <= "
        f"{fresh['bar']['bar_seconds']}: {verdict(fresh['bar']['holds'])}.",
        "",
    ]


def _decisions(observed: dict[str, float]) -> str:
    """A hostile shape's consent decisions and invalid-traffic reasons, as the tracker counted
    them during its runs, e.g. "consent DENIED 75,378; ivt NONE 75,378"."""
    consent = ", ".join(_counts(observed, "CONSENT_")) or "-"
    return f"consent {consent}; ivt {', '.join(_counts(observed, 'IVT_')) or '-'}"


def _micro_table(paths: list[dict[str, Any]]) -> list[str]:
    """An in-process part's paths (bench/privacy_cost.py, bench/integrity_cost.py) as a table."""
    lines = [
        "",
        "| path | us per call | runs | calls per repetition | what runs |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in paths:
        runs = ", ".join(f"{f:,.2f}" for f in row["us_per_call_runs"])
        lines.append(
            f"| {row['path']} | {row['us_per_call']:,.2f} | {runs} | "
            f"{row['calls_per_repetition']:,} | {row['what']} |"
        )
    return [*lines, ""]


def _ivt_counts(observed: dict[str, float]) -> str:
    """The reasons the tracker recorded during a case, e.g. "KNOWN_CRAWLER 90,112 (0 billable)"."""
    found = _counts(observed, "IVT_")
    if not found:
        return "-"
    return f"{', '.join(found)} ({int(observed.get('billable', 0)):,} billable)"


def _duplicate_checks(observed: dict[str, float]) -> str:
    return ", ".join(_counts(observed, "duplicate_check_")) or "-"


def _counts(observed: dict[str, float], prefix: str) -> list[str]:
    """ "name count" for each counter of `observed` named `prefix`name that counted anything."""
    return [
        f"{key.removeprefix(prefix)} {int(value):,}"
        for key, value in observed.items()
        if key.startswith(prefix) and value
    ]


def _carries(row: dict[str, Any]) -> str:
    """What a case's requests carry beyond the program: privacy parameters and headers."""
    parts = []
    for key, value in parse_qsl(urlsplit(row["path"]).query):
        if key == "program":
            continue
        parts.append(f"{key} ({len(value)} chars)" if len(value) > 20 else f"{key}={value}")
    parts += row.get("headers", [])
    return ", ".join(parts) or "the program only"


def _privacy_counters(counters: dict[str, float]) -> str:
    def count(key: str) -> str:
        return f"{int(counters.get(key, 0)):,}"

    return (
        f"consent not applicable {count('consent_not_applicable')}, granted "
        f"{count('consent_granted')}, denied {count('consent_denied')}; opted out (Sec-GPC or "
        f"DNT) {count('opted_out')}; visitor_id unavailable {count('visitor_id_unavailable')}, "
        f"secret failures {count('visitor_secret_failures')}."
    )


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:,}"


def _case_name(row: dict[str, Any]) -> str:
    """The case, and which baseline it ran against when not the bare aiohttp Response."""
    baseline = row.get("baseline", "bare")
    return row["name"] if baseline == "bare" else f"{row['name']} (baseline {baseline})"


def _shipping_lines(plain: dict[str, float], aggregated: dict[str, float]) -> list[str]:
    if not plain or not aggregated:
        return []
    fewer = plain["records_per_million_events"] / max(1, aggregated["records_per_million_events"])
    return [
        "",
        f"Kinesis cost per million events: {plain['records_per_million_events']:,} records and "
        f"{plain['payload_units_per_million_events']:,} PUT payload units plain; "
        f"{aggregated['records_per_million_events']:,} records and "
        f"{aggregated['payload_units_per_million_events']:,} payload units with SHIP_AGGREGATE "
        f"({fewer:,.0f}x fewer records).",
    ]


def chart(rows: list[dict[str, Any]], path: Path) -> None:
    labels = [
        f"{_case_name(r).replace(', ', chr(10)).replace(' (', chr(10) + '(')}\n"
        f"c={r['concurrency']}, w={r['workers']}"
        for r in rows
    ]
    positions = range(len(rows))
    figure, axis = plt.subplots(figsize=(13, 6))
    width = 0.4
    axis.bar(
        [p - width / 2 for p in positions],
        [r["baseline_rps"] for r in rows],
        width,
        label="bare aiohttp + uvloop (web.Response, or as labelled)",
        color="#9aa5b1",
    )
    axis.bar(
        [p + width / 2 for p in positions],
        [r["rps"] for r in rows],
        width,
        label="tracker",
        color="#2f6fb0",
    )
    for p, row in zip(positions, rows, strict=True):
        axis.annotate(
            f"{row['ratio_rps']:.0%}",
            (p + width / 2, row["rps"]),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    axis.set_xticks(list(positions), labels, fontsize=7)
    axis.set_ylabel("requests per second (hey)")
    axis.set_title("Tracker vs bare aiohttp server, same machine, interleaved runs")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


if __name__ == "__main__":
    # Re-render the Markdown and the chart from a run's JSON: python -m bench.report [JSON]
    import sys

    source = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("bench/results/latest.json")
    write_reports(json.loads(source.read_text()), source.parent)
