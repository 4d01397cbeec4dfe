"""Which Iceberg catalog holds the lake, and the events table in it.

The catalog named `adtracker` is configured the way pyiceberg is (`.pyiceberg.yaml` or
`PYICEBERG_CATALOG__ADTRACKER__*`; in AWS the Glue catalog and an S3 warehouse). With none, a
SQLite catalog and a file warehouse under LAKE_DIR: `make run`, the tests, a laptop.

The table is created with pyiceberg's own commit retries off: on a conflict pyiceberg would
rebuild our snapshot on the new state without re-checking the stream positions in it, so two
workers on one shard could both commit (consumers/lake/committer.py loops itself instead).
"""

from __future__ import annotations

import logging

from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.table import Table
from pyiceberg.utils.config import Config

from consumers.lake.schema import iceberg_schema, partition_spec
from consumers.settings import LakeSettings

log = logging.getLogger(__name__)

CATALOG_NAME = "adtracker"
PERSONAL_COLUMNS = ("user_key", "visitor_id", "client_ip_anonymized", "user_agent", "referer")
TABLE_PROPERTIES = {
    "format-version": "2",
    "commit.retry.num-retries": "0",
    # One manifest per commit would make every scan plan read thousands of them within a day.
    "commit.manifest-merge.enabled": "true",
    "write.parquet.compression-codec": "zstd",
    # Readers keep the last snapshot only; `lake maintain` expires the rest (an erasure is
    # complete only once no snapshot references the old files).
    "history.expire.max-snapshot-age-ms": "3600000",
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "20",
    # Manifests keep column bounds for pruning; for personal columns only counts, so that no
    # value of them is in the metadata (an erased user's key would outlive the rows there).
    **{f"write.metadata.metrics.column.{name}": "counts" for name in PERSONAL_COLUMNS},
}


def open_catalog(settings: LakeSettings) -> Catalog:
    # Read now, not pyiceberg's copy from its import: the environment is what counts.
    configured = Config().get_catalog_config(CATALOG_NAME)
    if configured:
        # Nested sections come flattened already (glue.region); only strings are properties.
        properties = {k: v for k, v in configured.items() if isinstance(v, str)}
        return load_catalog(CATALOG_NAME, **properties)
    directory = settings.directory.resolve()
    (directory / "warehouse").mkdir(parents=True, exist_ok=True)
    return SqlCatalog(
        CATALOG_NAME,
        uri=f"sqlite:///{directory / 'catalog.db'}",
        warehouse=(directory / "warehouse").as_uri(),
    )


def open_table(catalog: Catalog, settings: LakeSettings) -> Table:
    """The events table as it is; NoSuchTableError until `consumers init` made it."""
    return catalog.load_table(settings.table)


def ensure_table(catalog: Catalog, settings: LakeSettings) -> Table:
    """Create the namespace and table if missing; add the columns of new proto fields."""
    catalog.create_namespace_if_not_exists(settings.namespace)
    try:
        table = catalog.load_table(settings.table)
    except NoSuchTableError:
        schema = iceberg_schema()
        table = catalog.create_table_if_not_exists(
            settings.table,
            schema,
            partition_spec=partition_spec(schema),
            properties=TABLE_PROPERTIES,
        )
        log.info("lake table created", extra={"table": settings.table})
        return table
    return evolve(table)


def evolve(table: Table) -> Table:
    """A proto field the table has no column for becomes a new optional column."""
    wanted = iceberg_schema()
    have = {field.name for field in table.schema().fields}
    missing = [field.name for field in wanted.fields if field.name not in have]
    if missing:
        with table.update_schema() as update:
            update.union_by_name(wanted)
        log.info("lake columns added", extra={"columns": missing})
    return table


def provision_lake(settings: LakeSettings) -> str:
    """`consumers init`: "created", or "exists" (new columns added if the proto grew)."""
    catalog = open_catalog(settings)
    existed = catalog.table_exists(settings.table)
    ensure_table(catalog, settings)
    return "exists" if existed else "created"
