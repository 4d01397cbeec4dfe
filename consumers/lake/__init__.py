"""The event lake: every event of the stream in one Apache Iceberg table (docs/lake.md).

schema (columns from the proto), rows (records -> Arrow), catalog (which catalog, the table),
positions (stream positions kept in the snapshots), known_ids (message ids already stored),
pending (what is read and not yet committed), committer (the commit loop), reader and worker
(`consumers lake`), query (`lake query`), maintain (`lake maintain`), rights (erase, export).
"""
