"""The compose stack's event lake on the AWS path: the pyiceberg catalog `adtracker` in
infra/local/containers.env is Glue with an S3 warehouse on the stack's moto server, `init`
creates the bucket (infra/local/lake_bucket.py) before `consumers init`, the lake worker runs
like the other consumers, and the image keeps botocore's Glue model. The last test runs the
bucket script and the lake's provisioning against a real moto server, with those settings."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]
from pyiceberg.utils.config import Config

from consumers.lake.catalog import CATALOG_NAME

ROOT = Path(__file__).resolve().parents[1]
LOCAL = ROOT / "infra" / "local"
CATALOG_PREFIX = "PYICEBERG_CATALOG__ADTRACKER__"


def containers_env() -> dict[str, str]:
    pairs = {}
    for line in (LOCAL / "containers.env").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            pairs[name] = value
    return pairs


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def catalog_config(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The catalog pyiceberg reads from these variables (and no others of its own)."""
    for name in list(os.environ):
        if name.upper().startswith("PYICEBERG_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PYICEBERG_HOME", str(ROOT / "nonexistent"))  # no .pyiceberg.yaml
    config = Config().get_catalog_config(CATALOG_NAME)
    assert config is not None
    return dict(config)


def test_the_stack_catalog_is_glue_and_s3_on_the_moto_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = containers_env()
    moto, region = env["AWS_ENDPOINT_URL_DYNAMODB"], env["AWS_REGION"]
    assert catalog_config(env, monkeypatch) == {
        "type": "glue",
        "warehouse": "s3://adtracker-lake/warehouse",
        "glue.endpoint": moto,
        "glue.region": region,
        "s3.endpoint": moto,
        "s3.region": region,
    }
    assert compose()["services"]["dynamodb"]["image"].startswith("motoserver/moto:")


def test_init_creates_the_bucket_before_the_lake_table() -> None:
    init = compose()["services"]["init"]
    script = init["command"][-1]
    assert script.index("python /demo/lake_bucket.py &&") < script.index("consumers init")
    assert "./infra/local/lake_bucket.py:/demo/lake_bucket.py:ro" in init["volumes"]
    assert init["env_file"] == "infra/local/containers.env"


def test_the_lake_worker_runs_like_the_consumers_and_commits_soon() -> None:
    services = compose()["services"]
    lake, events = services["consumers-lake"], services["consumers-events"]
    assert lake["command"] == ["consumers", "lake"]
    for name in ("image", "env_file", "depends_on", "stop_grace_period", "restart"):
        assert lake[name] == events[name], name
    assert lake["environment"]["HEALTHCHECK_URL"] == events["environment"]["HEALTHCHECK_URL"]
    # compose_check waits for the lake's rows with this commit interval in mind
    check = (LOCAL / "compose_check.py").read_text()
    waits_for = re.search(r"^LAKE_COMMIT_SECONDS = (\d+)", check, re.MULTILINE)
    assert waits_for is not None
    assert lake["environment"]["LAKE_COMMIT_SECONDS"] == waits_for.group(1)


def test_the_image_keeps_botocores_glue_model() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    trim = re.search(r"find \S+/botocore/data .*?-exec rm -rf", dockerfile, re.DOTALL)
    assert trim is not None
    kept = set(re.findall(r"! -name (\S+)", trim.group(0)))
    assert {"glue", "kinesis", "dynamodb"} <= kept


def test_the_bucket_script_and_init_make_the_lake_on_moto(moto_url: str, tmp_path: Path) -> None:
    """containers.env's catalog with the moto server's address, in processes of their own as in
    the stack (pyiceberg reads its settings once, at import): the script creates the bucket
    (again: no error), then `consumers init`'s lake step creates the table in Glue and S3."""
    suffix = os.urandom(4).hex()
    bucket, namespace = f"lake-{suffix}", f"lake_{suffix}"
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.upper().startswith("PYICEBERG_")
    }
    env |= {
        name: value.replace("http://dynamodb:5000", moto_url)
        for name, value in containers_env().items()
        if name.startswith(CATALOG_PREFIX)
    }
    env |= {
        f"{CATALOG_PREFIX}WAREHOUSE": f"s3://{bucket}/warehouse",
        "PYICEBERG_HOME": str(tmp_path),
        "LAKE_TABLE": f"{namespace}.events",
    }
    for _ in range(2):
        done = run_python([str(LOCAL / "lake_bucket.py")], env)
        assert f'"bucket": "{bucket}"' in done.stdout
    provision = (
        "from consumers.lake.catalog import provision_lake;"
        " from consumers.settings import ConsumerSettings;"
        " print(provision_lake(ConsumerSettings.from_env().lake))"
    )
    assert run_python(["-c", provision], env).stdout.split() == ["created"]
    assert run_python(["-c", provision], env).stdout.split() == ["exists"]
    # read back through the Glue catalog: the table's metadata file, in the bucket
    read_back = (
        "from consumers.lake.catalog import open_catalog, open_table;"
        " from consumers.settings import ConsumerSettings;"
        " lake = ConsumerSettings.from_env().lake;"
        " table = open_table(open_catalog(lake), lake);"
        " print(type(open_catalog(lake)).__name__, table.metadata_location,"
        " table.io.new_input(table.metadata_location).exists())"
    )
    kind, location, exists = run_python(["-c", read_back], env).stdout.split()
    assert kind == "GlueCatalog"
    assert location.startswith(f"s3://{bucket}/warehouse/{namespace}.db/events/metadata/")
    assert exists == "True"
    # rows committed to S3, then read by `lake query` (an Arrow dataset of the files in S3)
    # and kept by `lake maintain`
    commit = (
        "from consumers.lake.catalog import open_catalog, open_table;"
        " from consumers.lake.committer import Committer;"
        " from consumers.lake.pending import Pending;"
        " from consumers.records import StreamRecord;"
        " from consumers.settings import ConsumerSettings;"
        " from tracker.schema.tracking.v1 import tracking_pb2 as pb;"
        " lake = ConsumerSettings.from_env().lake;"
        " pending = Pending();"
        " pending.add('s0', [StreamRecord(str(i), 'k', pb.TrackingEvent(programid='p',"
        " message_id=f'{i:032x}', timestamp_ms=1765000000000 + i).SerializeToString())"
        " for i in range(1, 6)]);"
        " print(Committer(open_table(open_catalog(lake), lake)).commit(pending).rows)"
    )
    assert run_python(["-c", commit], env).stdout.split() == ["5"]
    query = "SELECT count(*) AS n, count(DISTINCT message_id) AS d, min(programid) AS p FROM events"
    lake = ["-m", "consumers", "lake"]
    assert run_python([*lake, "query", query, "--format", "csv"], env).stdout == "n,d,p\n5,5,p\n"
    assert '"command": "lake maintain"' in run_python([*lake, "maintain"], env).stdout
    assert run_python([*lake, "query", query, "--format", "csv"], env).stdout == "n,d,p\n5,5,p\n"


def run_python(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_the_bucket_script_refuses_without_an_emulator_endpoint(tmp_path: Path) -> None:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.upper().startswith("PYICEBERG_")
    }
    env |= {
        f"{CATALOG_PREFIX}TYPE": "glue",
        f"{CATALOG_PREFIX}WAREHOUSE": "s3://somebody-elses/warehouse",
        "PYICEBERG_HOME": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, str(LOCAL / "lake_bucket.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "s3.endpoint" in done.stderr
