"""The compose stack's lake bucket, on the emulator: its `init` runs this before `consumers init`,
which makes the Iceberg table in it (in AWS the data stack's template creates the bucket).

Bucket and endpoint are read the way the consumers read them, from the pyiceberg catalog
`adtracker` (PYICEBERG_CATALOG__ADTRACKER__* in infra/local/containers.env): the bucket of its
warehouse (s3://BUCKET/...), its s3.endpoint and s3.region; the credentials are the usual AWS_*
variables. Without an s3.endpoint it refuses: it is for the emulator, never for AWS. Idempotent:
a bucket that is there already is fine. Prints one JSON line.
"""

from __future__ import annotations

import json
import sys
from urllib.parse import urlsplit

from pyarrow import fs
from pyiceberg.utils.config import Config

from consumers.lake.catalog import CATALOG_NAME


def main() -> int:
    config = Config().get_catalog_config(CATALOG_NAME) or {}
    warehouse = config.get("warehouse")
    endpoint, region = config.get("s3.endpoint"), config.get("s3.region")
    location = urlsplit(warehouse) if isinstance(warehouse, str) else None
    if location is None or location.scheme != "s3" or not location.netloc:
        return _refuse(f"the warehouse is not s3://BUCKET/...: {warehouse!r}")
    if not isinstance(endpoint, str) or not endpoint:
        return _refuse("no s3.endpoint: this creates buckets on an emulator only")
    s3 = fs.S3FileSystem(
        endpoint_override=endpoint,
        region=region if isinstance(region, str) else None,
        allow_bucket_creation=True,
    )
    s3.create_dir(location.netloc)  # CreateBucket unless HeadBucket finds it
    done = {"command": "lake bucket", "bucket": location.netloc, "endpoint": endpoint}
    sys.stdout.write(json.dumps(done) + "\n")
    return 0


def _refuse(reason: str) -> int:
    sys.stderr.write(f"lake bucket: catalog {CATALOG_NAME}: {reason}\n")
    return 2


if __name__ == "__main__":
    sys.exit(main())
