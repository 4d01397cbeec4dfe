"""Reporting rollups: counters and unique-visitor sketches per program and 15-minute bucket,
kept exactly once from the batches `consumers events` stores (docs/reporting.md)."""
