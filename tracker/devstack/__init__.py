"""The local stack: real redis-server, kinesalite and moto server as child processes on loopback.

Used by `make run` (python -m tracker.devstack) and by the test fixtures, so both start the same
things the same way.
"""
