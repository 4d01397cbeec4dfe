"""The event lake in the CloudFormation templates (read as data: no AWS): the data stack's
bucket, Glue database, Athena workgroup and saved queries (run here on DuckDB against a table of
the lake's own columns), and the services stack's lake worker, its daily maintenance, their
settings and their IAM rights."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from pyiceberg.catalog import TYPE, WAREHOUSE_LOCATION
from pyiceberg.catalog.glue import GLUE_REGION
from pyiceberg.io import S3_REGION
from pyiceberg.utils.config import Config

from consumers.lake.catalog import CATALOG_NAME
from consumers.lake.schema import arrow_schema
from consumers.settings import DAYS_MAX, ConsumerSettings
from tests.test_reports_infra import (
    actions_on,
    container,
    environment,
    imported,
    resource,
    statements,
    template,
)
from tracker.schema.tracking.v1 import tracking_pb2 as pb

DEFAULTS = ConsumerSettings.from_env({})
REGION = "eu-west-1"
ACCOUNT = "123456789012"
CATALOG_ENV = (
    "PYICEBERG_CATALOG__ADTRACKER__TYPE",
    "PYICEBERG_CATALOG__ADTRACKER__WAREHOUSE",
    "PYICEBERG_CATALOG__ADTRACKER__GLUE__REGION",
    "PYICEBERG_CATALOG__ADTRACKER__S3__REGION",
)
LAKE_WRITES = {"s3:PutObject", "s3:DeleteObject", "glue:UpdateTable", "glue:CreateTable"}


# --- Rendering template values with the stacks' defaults ---------------------------------


def render(value: Any, name: str = "services.yaml") -> Any:
    """A template value as CloudFormation would resolve it with every parameter at its default,
    imports read from the data and network stacks' outputs, and a resource's Ref/GetAtt shown as
    `<LogicalId>` / `<LogicalId.Attribute>` (a Glue database's and a workgroup's Ref: its name)."""
    if isinstance(value, list):
        return [render(v, name) for v in value]
    if not isinstance(value, dict):
        return value
    resolved: Any
    if "Ref" in value:
        resolved = _ref(value["Ref"], name)
    elif "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        resolved = f"<{target if isinstance(target, str) else '.'.join(target)}>"
    elif "Fn::ImportValue" in value:
        resolved = _export(str(render(value["Fn::ImportValue"], name)))
    elif "Fn::Sub" in value:
        resolved = _sub(value["Fn::Sub"], name)
    else:
        resolved = {key: render(inner, name) for key, inner in value.items()}
    return resolved


def _ref(target: str, name: str) -> str:
    pseudo = {
        "AWS::Region": REGION,
        "AWS::AccountId": ACCOUNT,
        "AWS::Partition": "aws",
        "EnvironmentName": "adtracker",
    }
    if target in pseudo:
        return pseudo[target]
    stack = template(name)
    if target in stack.get("Parameters", {}):
        return str(stack["Parameters"][target]["Default"])
    found = stack["Resources"][target]
    if found["Type"] == "AWS::Glue::Database":
        return str(render(found["Properties"]["DatabaseInput"]["Name"], name))
    if found["Type"] == "AWS::Athena::WorkGroup":
        return str(render(found["Properties"]["Name"], name))
    return f"<{target}>"


def _sub(spec: Any, name: str) -> str:
    text, names = (spec, {}) if isinstance(spec, str) else (spec[0], spec[1])

    def one(match: re.Match[str]) -> str:
        key = match.group(1)
        if key in names:
            return str(render(names[key], name))
        if "." in key and not key.startswith("AWS::"):
            return f"<{key}>"
        return _ref(key, name)

    return re.sub(r"\$\{([^}!]+)\}", one, text)


def _export(export: str) -> Any:
    for stack in ("data.yaml", "network.yaml"):
        for output in template(stack)["Outputs"].values():
            if render(output.get("Export", {}).get("Name"), stack) == export:
                return render(output["Value"], stack)
    raise KeyError(export)


def policy_statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = policy["Properties"]["PolicyDocument"]["Statement"]
    return found


def by_sid(found: list[dict[str, Any]], sid: str) -> dict[str, Any]:
    (statement,) = [s for s in found if s.get("Sid") == sid]
    return statement


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def iam_statements() -> Iterator[tuple[str, dict[str, Any]]]:
    """Every Allow statement of the services stack's roles and policies, with its owner."""
    for logical_id, r in template("services.yaml")["Resources"].items():
        if r["Type"] == "AWS::IAM::Role":
            found = list(statements(r))
        elif r["Type"] == "AWS::IAM::Policy":
            found = policy_statements(r)
        else:
            continue
        for statement in found:
            if statement["Effect"] == "Allow":
                yield logical_id, statement


# --- Data stack: bucket, Glue database, Athena ---------------------------------------------


def test_the_lake_bucket_is_encrypted_with_the_data_key_private_and_retained() -> None:
    bucket = resource("data.yaml", "LakeBucket")
    properties = bucket["Properties"]
    (rule,) = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule == {
        "ServerSideEncryptionByDefault": {
            "SSEAlgorithm": "aws:kms",
            "KMSMasterKeyID": {"Fn::GetAtt": "DataKey.Arn"},
        },
        "BucketKeyEnabled": True,
    }
    assert properties["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert properties["OwnershipControls"] == {
        "Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]
    }
    assert bucket["DeletionPolicy"] == bucket["UpdateReplacePolicy"] == "Retain"
    # Unversioned, so that a file erasure and maintenance delete is gone; checkov is told why.
    assert "VersioningConfiguration" not in properties
    skips = {s["id"]: s["comment"] for s in bucket["Metadata"]["checkov"]["skip"]}
    assert set(skips) == {"CKV_AWS_18", "CKV_AWS_21"}
    assert "erasure" in skips["CKV_AWS_21"]


def test_the_lake_bucket_refuses_every_request_without_tls() -> None:
    policy = resource("data.yaml", "LakeBucketPolicy")["Properties"]
    assert policy["Bucket"] == {"Ref": "LakeBucket"}
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement == {
        "Sid": "DenyWithoutTls",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [{"Fn::GetAtt": "LakeBucket.Arn"}, {"Fn::Sub": "${LakeBucket.Arn}/*"}],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def test_the_lake_bucket_drops_stale_uploads_and_old_query_results() -> None:
    rules = {
        r["Id"]: r
        for r in resource("data.yaml", "LakeBucket")["Properties"]["LifecycleConfiguration"][
            "Rules"
        ]
    }
    uploads = rules["abort-incomplete-multipart-uploads"]
    assert uploads["Status"] == "Enabled"
    assert uploads["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    assert "Prefix" not in uploads  # the whole bucket
    assert "ExpirationInDays" not in uploads  # never the lake's own files
    results = rules["expire-athena-results"]
    assert results["Status"] == "Enabled"
    assert results["Prefix"] == "athena-results/"
    assert results["ExpirationInDays"] == {"Ref": "AthenaResultRetentionDays"}
    retention = template("data.yaml")["Parameters"]["AthenaResultRetentionDays"]
    assert (retention["Default"], retention["MinValue"], retention["MaxValue"]) == (30, 1, 365)
    assert set(rules) == {"abort-incomplete-multipart-uploads", "expire-athena-results"}


def test_the_glue_database_is_the_namespace_of_lake_table() -> None:
    database = resource("data.yaml", "LakeDatabase")
    assert database["Type"] == "AWS::Glue::Database"
    assert database["DeletionPolicy"] == database["UpdateReplacePolicy"] == "Retain"
    given = database["Properties"]["DatabaseInput"]
    assert given["Name"] == {"Ref": "LakeDatabaseName"}
    parameters = template("data.yaml")["Parameters"]
    names = f"{parameters['LakeDatabaseName']['Default']}.{parameters['LakeTableName']['Default']}"
    assert names == DEFAULTS.lake.table == "adtracker.events"
    # Tables made in it land under the one prefix the roles may write.
    assert render(given["LocationUri"], "data.yaml") == "s3://<LakeBucket>/warehouse/adtracker"
    # Created from code (Iceberg partition transforms), never by the template.
    types = {r["Type"] for r in template("data.yaml")["Resources"].values()}
    assert "AWS::Glue::Table" not in types


def test_the_athena_workgroup_caps_each_query_and_enforces_its_results_location() -> None:
    group = resource("data.yaml", "LakeWorkGroup")["Properties"]
    configuration = group["WorkGroupConfiguration"]
    assert configuration["EnforceWorkGroupConfiguration"] is True
    assert configuration["BytesScannedCutoffPerQuery"] == {"Ref": "AthenaBytesScannedCutoff"}
    cutoff = template("data.yaml")["Parameters"]["AthenaBytesScannedCutoff"]
    assert cutoff["Default"] == 10 * 2**30
    assert cutoff["MinValue"] == 10_000_000  # Athena's smallest cutoff
    assert configuration["EngineVersion"] == {"SelectedEngineVersion": "Athena engine version 3"}
    results = configuration["ResultConfiguration"]
    assert render(results["OutputLocation"], "data.yaml") == "s3://<LakeBucket>/athena-results/"
    assert results["EncryptionConfiguration"] == {
        "EncryptionOption": "SSE_KMS",
        "KmsKey": {"Fn::GetAtt": "DataKey.Arn"},
    }
    assert group["State"] == "ENABLED"


def test_the_data_stack_exports_what_the_lake_services_import() -> None:
    outputs = template("data.yaml")["Outputs"]
    wanted = {
        "LakeBucketName": {"Ref": "LakeBucket"},
        "LakeBucketArn": {"Fn::GetAtt": "LakeBucket.Arn"},
        "LakeDatabaseName": {"Ref": "LakeDatabase"},
        "LakeTableName": {"Ref": "LakeTableName"},
        "LakeWorkGroupName": {"Ref": "LakeWorkGroup"},
    }
    for name, value in wanted.items():
        assert outputs[name]["Value"] == value
        assert outputs[name]["Export"]["Name"] == {"Fn::Sub": f"${{EnvironmentName}}:{name}"}


# --- The saved queries, run on DuckDB over the lake's columns --------------------------------

NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def saved_query(logical_id: str) -> str:
    query = resource("data.yaml", logical_id)["Properties"]
    assert query["WorkGroup"] == {"Ref": "LakeWorkGroup"}
    assert query["Database"] == {"Ref": "LakeDatabase"}
    text = str(render(query["QueryString"], "data.yaml"))
    assert 'FROM "adtracker"."events"' in text  # the Glue table LAKE_TABLE names
    return text


def event(kind: str, at: datetime, **fields: Any) -> dict[str, Any]:
    row = {
        "event_type": kind,
        "event_time": at,
        "programid": "demo-shoes",
        "customer_id": 1001,
        "billable": kind == "CLICK",
        "referer": "https://news.example/article?id=3",
    }
    return row | fields


@pytest.fixture
def lake() -> Iterator[duckdb.DuckDBPyConnection]:
    """An empty `adtracker.events` with exactly the lake's columns and types, and a stand-in for
    Athena's url_extract_host (DuckDB has none)."""
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    connection.execute("CREATE SCHEMA adtracker")
    empty = pa.Table.from_pylist([], schema=arrow_schema())
    connection.register("empty", empty)
    connection.execute("CREATE TABLE adtracker.events AS SELECT * FROM empty")
    connection.execute(
        "CREATE MACRO url_extract_host(url) AS "
        "nullif(regexp_extract(url, '^[A-Za-z][A-Za-z0-9+.-]*://([^/:?#]+)', 1), '')"
    )
    yield connection
    connection.close()


def insert(connection: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]]) -> None:
    batch = pa.Table.from_pylist(rows, schema=arrow_schema())
    connection.register("batch", batch)
    connection.execute("INSERT INTO adtracker.events SELECT * FROM batch")
    connection.unregister("batch")


def test_the_saved_queries_use_the_lake_columns_they_mean() -> None:
    columns = set(arrow_schema().names)
    used = {"event_type", "billable", "referer", "programid", "event_time", "customer_id"}
    assert used <= columns
    types = {field.name: field.type for field in arrow_schema()}
    assert types["event_time"] == pa.timestamp("us", tz="UTC")
    assert types["billable"] == pa.bool_()
    clicks = saved_query("LakeBillableClicksPerSiteQuery")
    assert "url_extract_host(referer)" in clicks
    assert "event_type = 'CLICK'" in clicks
    assert "billable = true" in clicks
    hourly = saved_query("LakeProgramHourlyQuery")
    assert "date_trunc('hour', event_time)" in hourly
    assert "programid = ?" in hourly
    for kind in ("IMPRESSION", "CLICK", "CONVERSION"):
        assert f"event_type = '{kind}'" in hourly
        assert pb.EventType.Value(kind) > 0  # an enum name the lake stores


def test_billable_clicks_per_site_per_day(lake: duckdb.DuckDBPyConnection) -> None:
    day = NOW - timedelta(days=2)
    insert(
        lake,
        [
            event("CLICK", day),
            event("CLICK", day + timedelta(minutes=5), programid="other", customer_id=7),
            event("CLICK", day, referer="https://shop.example:8443/cart"),
            event("CLICK", day, billable=False),  # invalid traffic
            event("IMPRESSION", day, billable=True),  # not a click
            event("CLICK", day - timedelta(days=1), referer=None),
            event("CLICK", NOW - timedelta(days=40)),  # outside the 30 days
        ],
    )
    rows = lake.execute(saved_query("LakeBillableClicksPerSiteQuery")).fetchall()
    assert rows == [
        (day.date(), "news.example", 2, 2, 2),
        (day.date(), "shop.example", 1, 1, 1),
        ((day - timedelta(days=1)).date(), "(no referer)", 1, 1, 1),
    ]


def test_a_programs_hourly_series(lake: duckdb.DuckDBPyConnection) -> None:
    first = NOW - timedelta(hours=3)
    insert(
        lake,
        [
            event("IMPRESSION", first + timedelta(minutes=1)),
            event("IMPRESSION", first + timedelta(minutes=59)),
            event("CLICK", first + timedelta(minutes=2)),
            event("CLICK", first + timedelta(minutes=3), billable=False),
            event("CONVERSION", first + timedelta(hours=1, minutes=30)),
            event("CLICK", first, programid="other"),  # another program
            event("IMPRESSION", NOW - timedelta(days=8)),  # outside the 7 days
        ],
    )
    rows = lake.execute(saved_query("LakeProgramHourlyQuery"), ["demo-shoes"]).fetchall()
    assert [(hour.astimezone(UTC), *counts) for hour, *counts in rows] == [
        (first, 2, 2, 0, 1),
        (first + timedelta(hours=1), 0, 0, 1, 0),
    ]


# --- Services stack: the lake worker and its daily maintenance -------------------------------


def test_the_lake_worker_is_a_fargate_service_of_its_own() -> None:
    service = resource("services.yaml", "LakeConsumerService")
    properties = service["Properties"]
    assert "Condition" not in service  # with ECS or Lambda consumers alike
    assert "LakeTablePolicy" in service["DependsOn"]
    assert properties["TaskDefinition"] == {"Ref": "LakeConsumerTaskDefinition"}
    assert properties["LaunchType"] == "FARGATE"
    assert properties["DesiredCount"] == {"Ref": "LakeConsumerDesiredCount"}
    assert template("services.yaml")["Parameters"]["LakeConsumerDesiredCount"]["Default"] == 1
    assert "LoadBalancers" not in properties
    network = properties["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert network["AssignPublicIp"] == "DISABLED"
    assert [imported(s) for s in network["Subnets"]] == ["PrivateSubnetA", "PrivateSubnetB"]
    assert [imported(g) for g in network["SecurityGroups"]] == ["EventsConsumerSecurityGroup"]

    definition = resource("services.yaml", "LakeConsumerTaskDefinition")["Properties"]
    assert definition["Family"] == {"Fn::Sub": "${EnvironmentName}-lake-consumer"}
    assert definition["TaskRoleArn"] == {"Fn::GetAtt": "LakeConsumerTaskRole.Arn"}
    assert definition["RequiresCompatibilities"] == ["FARGATE"]
    worker = container("LakeConsumerTaskDefinition")
    events = container("EventsConsumerTaskDefinition")
    assert worker["Command"] == ["consumers", "lake"]
    assert worker["Image"] == events["Image"] == {"Ref": "ImageUri"}
    assert worker["HealthCheck"]["Command"] == events["HealthCheck"]["Command"]  # metrics port
    assert worker["ReadonlyRootFilesystem"] is True
    assert worker["LogConfiguration"]["Options"]["awslogs-group"] == {"Ref": "LakeConsumerLogGroup"}


def test_the_lake_worker_reads_the_stream_with_the_events_workers_settings() -> None:
    worker = environment(container("LakeConsumerTaskDefinition"))
    events = environment(container("EventsConsumerTaskDefinition"))
    for name in ("EVENT_STREAM", "LEASE_TABLE", "PRIVACY_TABLE", "AWS_REGION", "LOG_LEVEL"):
        assert worker[name] == events[name], name
    assert worker["LAKE_COMMIT_SECONDS"] == {"Ref": "LakeCommitSeconds"}
    assert worker["LAKE_RETENTION_DAYS"] == {"Ref": "LakeRetentionDays"}
    assert render(worker["LAKE_TABLE"]) == DEFAULTS.lake.table
    # Nothing it does not use: it writes no DynamoDB item and reads no secret.
    assert not {"EVENTS_TABLE", "ROLLUP_TABLE", "ATTRIBUTION_TABLE"} & set(worker)
    assert "Secrets" not in container("LakeConsumerTaskDefinition")


@pytest.mark.parametrize(
    "task_definition",
    ["LakeConsumerTaskDefinition", "LakeMaintainTaskDefinition", "EventsConsumerTaskDefinition"],
)
def test_every_lake_process_selects_the_glue_catalog(
    task_definition: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = environment(container(task_definition))
    rendered = {name: str(render(settings[name])) for name in CATALOG_ENV}
    assert render(settings["LAKE_TABLE"]) == DEFAULTS.lake.table
    # pyiceberg's own reading of these variables, for the catalog the lake opens.
    assert CATALOG_NAME == "adtracker"
    for name in [n for n in os.environ if n.upper().startswith("PYICEBERG_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PYICEBERG_HOME", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    for name, value in rendered.items():
        monkeypatch.setenv(name, value)
    assert Config().get_catalog_config(CATALOG_NAME) == {
        TYPE: "glue",
        WAREHOUSE_LOCATION: "s3://<LakeBucket>/warehouse",
        GLUE_REGION: REGION,
        S3_REGION: REGION,
    }


def test_the_lake_settings_default_to_the_contracts() -> None:
    parameters = template("services.yaml")["Parameters"]
    commit, retention = parameters["LakeCommitSeconds"], parameters["LakeRetentionDays"]
    assert commit["Default"] == DEFAULTS.lake.commit_seconds == 60
    assert retention["Default"] == DEFAULTS.lake.retention_days == 395
    # Within what the settings accept, so that a stack value never stops the worker.
    assert 0.1 <= commit["MinValue"] <= commit["MaxValue"] <= 3600
    assert 1 <= retention["MinValue"] <= retention["MaxValue"] <= DAYS_MAX
    checked = ConsumerSettings.from_env(
        {
            "LAKE_TABLE": "adtracker.events",
            "LAKE_COMMIT_SECONDS": str(commit["MinValue"]),
            "LAKE_RETENTION_DAYS": str(retention["MaxValue"]),
        }
    )
    assert checked.lake.commit_seconds == commit["MinValue"]


def test_the_maintenance_runs_daily_as_a_task_of_its_own() -> None:
    maintain = container("LakeMaintainTaskDefinition")
    assert maintain["Command"] == ["consumers", "lake", "maintain"]
    assert maintain["Image"] == {"Ref": "ImageUri"}
    assert maintain["ReadonlyRootFilesystem"] is True
    definition = resource("services.yaml", "LakeMaintainTaskDefinition")["Properties"]
    assert definition["TaskRoleArn"] == {"Fn::GetAtt": "LakeMaintainTaskRole.Arn"}
    settings = environment(maintain)
    worker = environment(container("LakeConsumerTaskDefinition"))
    for name in (*CATALOG_ENV, "LAKE_TABLE", "LAKE_RETENTION_DAYS", "LAKE_COMMIT_SECONDS"):
        assert settings[name] == worker[name], name
    assert not {"EVENT_STREAM", "LEASE_TABLE", "PRIVACY_TABLE"} & set(settings)

    schedule = resource("services.yaml", "LakeMaintainSchedule")
    properties = schedule["Properties"]
    assert schedule["Type"] == "AWS::Scheduler::Schedule"
    assert properties["State"] == "ENABLED"
    assert properties["ScheduleExpressionTimezone"] == "UTC"
    assert properties["ScheduleExpression"] == {"Ref": "LakeMaintainScheduleExpression"}
    expression = template("services.yaml")["Parameters"]["LakeMaintainScheduleExpression"]
    assert re.fullmatch(r"cron\(\d{1,2} \d{1,2} \* \* \? \*\)", expression["Default"])  # daily
    assert re.fullmatch(expression["AllowedPattern"], expression["Default"])
    target = properties["Target"]
    assert target["Arn"] == {"Fn::GetAtt": "Cluster.Arn"}
    assert target["RoleArn"] == {"Fn::GetAtt": "LakeMaintainSchedulerRole.Arn"}
    ecs = target["EcsParameters"]
    assert ecs["TaskDefinitionArn"] == {"Ref": "LakeMaintainTaskDefinition"}
    assert (ecs["LaunchType"], ecs["TaskCount"]) == ("FARGATE", 1)
    network = ecs["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert network["AssignPublicIp"] == "DISABLED"
    assert [imported(s) for s in network["Subnets"]] == ["PrivateSubnetA", "PrivateSubnetB"]


def test_the_scheduler_may_start_only_the_maintenance_task() -> None:
    role = resource("services.yaml", "LakeMaintainSchedulerRole")
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    found = list(statements(role))
    assert {a for s in found for a in _list(s["Action"])} == {"ecs:RunTask", "iam:PassRole"}
    run = by_sid(found, "RunMaintainTask")
    assert run["Resource"] == {"Ref": "LakeMaintainTaskDefinition"}
    assert run["Condition"] == {"ArnEquals": {"ecs:cluster": {"Fn::GetAtt": "Cluster.Arn"}}}
    passing = by_sid(found, "PassMaintainTaskRoles")
    definition = resource("services.yaml", "LakeMaintainTaskDefinition")["Properties"]
    assert passing["Resource"] == [definition["ExecutionRoleArn"], definition["TaskRoleArn"]]
    assert passing["Condition"] == {
        "StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
    }


def test_the_lake_log_groups_are_encrypted_and_writable_by_the_agent() -> None:
    execution = resource("services.yaml", "ExecutionRole")
    logs = by_sid(list(statements(execution)), "Logs")["Resource"]
    for logical_id, suffix in (
        ("LakeConsumerLogGroup", "lake-consumer"),
        ("LakeMaintainLogGroup", "lake-maintain"),
    ):
        group = resource("services.yaml", logical_id)["Properties"]
        assert group["LogGroupName"] == {"Fn::Sub": f"/ecs/${{EnvironmentName}}/{suffix}"}
        assert imported(group["KmsKeyId"]) == "DataKeyArn"
        assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        assert {"Fn::GetAtt": f"{logical_id}.Arn"} in logs


# --- IAM: who may touch the lake, and where ---------------------------------------------------


def test_the_lake_workers_rights_are_the_events_workers_reads_and_leases() -> None:
    lake = resource("services.yaml", "LakeConsumerTaskRole")
    events = resource("services.yaml", "EventsConsumerTaskRole")
    assert actions_on(lake, "EventStreamArn") == actions_on(events, "EventStreamArn")
    leases = {a for a in actions_on(events, "LeaseTableArn") if a != "dynamodb:DescribeTable"}
    assert actions_on(lake, "LeaseTableArn") == leases | {"dynamodb:DescribeTable"}
    assert actions_on(lake, "PrivacyTableArn") == {
        "dynamodb:BatchGetItem",
        "dynamodb:GetItem",
        "dynamodb:DescribeTable",
    }
    named = {imported(r) for s in statements(lake) for r in _list(s["Resource"])}
    assert named == {"EventStreamArn", "LeaseTableArn", "PrivacyTableArn"}
    maintain = resource("services.yaml", "LakeMaintainTaskRole")
    assert list(statements(maintain)) == []  # the lake only, through LakeTablePolicy


def test_the_lake_table_policy_names_the_catalog_database_table_and_warehouse_only() -> None:
    policy = resource("services.yaml", "LakeTablePolicy")["Properties"]
    assert policy["Roles"] == [
        {"Ref": "LakeConsumerTaskRole"},
        {"Ref": "LakeMaintainTaskRole"},
        {"Ref": "EventsConsumerTaskRole"},  # `consumers privacy export|erase` cover the lake
    ]
    found = policy_statements(resource("services.yaml", "LakeTablePolicy"))
    catalog = f"arn:aws:glue:{REGION}:{ACCOUNT}:catalog"
    database = f"arn:aws:glue:{REGION}:{ACCOUNT}:database/adtracker"
    table = f"arn:aws:glue:{REGION}:{ACCOUNT}:table/adtracker/events"

    glue = by_sid(found, "LakeCatalog")
    assert set(glue["Action"]) == {
        "glue:GetDatabase",
        "glue:GetTable",
        "glue:GetTables",
        "glue:CreateTable",
        "glue:UpdateTable",
    }
    assert render(glue["Resource"]) == [catalog, database, table]
    namespace = by_sid(found, "LakeNamespace")
    assert namespace["Action"] == "glue:CreateDatabase"
    assert render(namespace["Resource"]) == [catalog, database]

    files = by_sid(found, "LakeFiles")
    assert set(files["Action"]) == {
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:AbortMultipartUpload",
    }
    assert render(files["Resource"]) == "<LakeBucket.Arn>/warehouse/*"
    listing = by_sid(found, "LakeListWarehouse")
    assert listing["Action"] == "s3:ListBucket"
    assert render(listing["Resource"]) == "<LakeBucket.Arn>"
    assert listing["Condition"] == {"StringLikeIfExists": {"s3:prefix": ["warehouse/*"]}}

    key = by_sid(found, "LakeKey")
    assert set(key["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey"}
    assert imported(key["Resource"]) == "DataKeyArn"
    assert render(key["Condition"]) == {
        "StringEquals": {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}
    }
    assert {s["Sid"] for s in found} == {
        "LakeNamespace",
        "LakeCatalog",
        "LakeFiles",
        "LakeListWarehouse",
        "LakeKey",
    }


def test_no_glue_or_s3_right_in_the_services_stack_is_on_any_resource() -> None:
    owners = set()
    for owner, statement in iam_statements():
        actions = _list(statement["Action"])
        if not any(a.startswith(("glue:", "s3:")) for a in actions):
            continue
        owners.add(owner)
        assert not any(a.endswith(":*") or a == "*" for a in actions), owner
        for named in _list(render(statement["Resource"])):
            assert "*" not in named or named.endswith("/warehouse/*"), (owner, named)
    assert owners == {"LakeTablePolicy"}
    writers = {o for o, s in iam_statements() if set(_list(s["Action"])) & LAKE_WRITES}
    assert writers == {"LakeTablePolicy"}


def test_the_events_consumers_get_events_table_types() -> None:
    consumer = environment(container("EventsConsumerTaskDefinition"))
    function = resource("services.yaml", "EventsFunction")["Properties"]["Environment"]
    assert consumer["EVENTS_TABLE_TYPES"] == {"Ref": "EventsTableTypes"}
    assert function["Variables"]["EVENTS_TABLE_TYPES"] == {"Ref": "EventsTableTypes"}
    parameter = template("services.yaml")["Parameters"]["EventsTableTypes"]
    assert parameter["Default"] == "IMPRESSION,CLICK,EVENT,CONVERSION"
    parsed = ConsumerSettings.from_env({"EVENTS_TABLE_TYPES": parameter["Default"]})
    assert parsed.events_table_types == DEFAULTS.events_table_types
    # The pattern takes exactly the event types the settings know, alone or listed.
    known = [name for name, number in pb.EventType.items() if number]
    pattern = re.compile(parameter["AllowedPattern"])
    for name in known:
        assert pattern.fullmatch(name)
    assert pattern.fullmatch("CLICK,CONVERSION")
    for wrong in ("", "CLICK, CONVERSION", "EVENT_TYPE_UNSPECIFIED", "CLICK,", "click"):
        assert not pattern.fullmatch(wrong), wrong
