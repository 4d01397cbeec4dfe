"""Where the reports service is deployed: the image, the compose stack, the CloudFormation
templates (read as data: no Docker engine, no AWS), and `make run`'s demo key; and in the same
templates, what conversion attribution needs (its table, settings, rights and the scheduled
match function)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from consumers import lambda_handlers
from consumers.provision import table_specs
from consumers.settings import ConsumerSettings
from tracker.devstack.__main__ import _demo_customer, _key_from_output

ROOT = Path(__file__).resolve().parents[1]
CFN = ROOT / "infra" / "cloudformation"


class _CfnLoader(yaml.SafeLoader):  # type: ignore[misc]
    """YAML with CloudFormation's short forms: `!Ref X` -> {"Ref": X}, `!Sub s` ->
    {"Fn::Sub": s}, and so on."""


def _short_form(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {"Ref" if suffix == "Ref" else f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _short_form)


@cache
def template(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load((CFN / name).read_text(), Loader=_CfnLoader)  # noqa: S506
    return loaded


def resource(name: str, logical_id: str) -> dict[str, Any]:
    found: dict[str, Any] = template(name)["Resources"][logical_id]
    return found


def imported(value: Any) -> str | None:
    """The export name of `{"Fn::ImportValue": !Sub "${EnvironmentName}:Name"}`, else None."""
    if isinstance(value, dict) and "Fn::ImportValue" in value:
        inner = value["Fn::ImportValue"]
        if isinstance(inner, dict) and isinstance(inner.get("Fn::Sub"), str):
            return str(inner["Fn::Sub"]).removeprefix("${EnvironmentName}:")
    return None


def statements(role: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for policy in role["Properties"].get("Policies", []):
        for entry in policy["PolicyDocument"]["Statement"]:
            statement = _unconditional(entry)
            if isinstance(statement, dict) and "Effect" in statement:
                yield statement


def actions_on(role: dict[str, Any], export: str) -> set[str]:
    """Every action the role's inline policies allow on the resource exported as `export`."""
    allowed: set[str] = set()
    for statement in statements(role):
        resources = statement["Resource"]
        resources = resources if isinstance(resources, list) else [resources]
        if any(imported(r) == export for r in resources):
            actions = statement["Action"]
            allowed |= set(actions if isinstance(actions, list) else [actions])
    return allowed


def container(task_definition: str) -> dict[str, Any]:
    definition: dict[str, Any] = resource("services.yaml", task_definition)["Properties"][
        "ContainerDefinitions"
    ][0]
    return definition


def environment(definition: dict[str, Any]) -> dict[str, Any]:
    entries = (_unconditional(entry) for entry in definition["Environment"])
    return {e["Name"]: e["Value"] for e in entries if isinstance(e, dict) and "Name" in e}


def _unconditional(value: Any) -> Any:
    """`!If [Condition, X, AWS::NoValue]` as X: what the condition adds when it holds."""
    if isinstance(value, dict) and "Fn::If" in value:
        return value["Fn::If"][1]
    return value


# --- The image and the compose stack -------------------------------------------------------


def test_the_image_installs_the_reports_package() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY reports ./reports" in dockerfile
    assert "!reports/" in (ROOT / ".dockerignore").read_text().splitlines()


def test_compose_runs_reports_like_the_consumers_on_the_loopback_only() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    reports, consumer = services["reports"], services["consumers-events"]
    assert reports["command"] == ["reports", "serve"]
    assert reports["ports"] == ["127.0.0.1:8090:8090"]
    assert reports["environment"]["HEALTHCHECK_URL"] == "http://127.0.0.1:8090/healthz"
    # The same image, settings and start order as the consumers (the `x-app` anchor): the
    # same table names, and stopped before the backends.
    for name in ("image", "env_file", "depends_on", "stop_grace_period"):
        assert reports[name] == consumer[name], name
    assert reports["depends_on"]["init"]["condition"] == "service_completed_successfully"
    published = [p for s in services.values() for p in s.get("ports", [])]
    assert all(str(p).startswith("127.0.0.1:") for p in published)


def test_compose_check_knows_every_service_of_the_stack() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    stack = {name for name, s in compose["services"].items() if not s.get("profiles")}
    check = (ROOT / "infra" / "local" / "compose_check.py").read_text()
    listed = re.search(r"SERVICES = frozenset\(\s*\{(.*?)\}", check, re.DOTALL)
    assert listed is not None
    assert set(re.findall(r'"([a-z-]+)"', listed.group(1))) == stack


# --- CloudFormation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("logical_id", "keys"),
    [
        ("RollupTable", [("program_id", "HASH"), ("bucket", "RANGE")]),
        ("ReportKeysTable", [("key_id", "HASH")]),
    ],
)
def test_the_reporting_tables_are_on_demand_encrypted_and_recoverable(
    logical_id: str, keys: list[tuple[str, str]]
) -> None:
    table = resource("data.yaml", logical_id)
    properties = table["Properties"]
    assert [(k["AttributeName"], k["KeyType"]) for k in properties["KeySchema"]] == keys
    keyed = {a["AttributeName"]: a["AttributeType"] for a in properties["AttributeDefinitions"]}
    assert {keyed[name] for name, _ in keys} == {"S"}
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert properties["SSESpecification"] == {
        "SSEEnabled": True,
        "SSEType": "KMS",
        "KMSMasterKeyId": {"Ref": "DataKey"},
    }
    assert "TimeToLiveSpecification" not in properties  # reports reach back years
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"


def test_every_import_is_exported_by_the_network_or_data_stack() -> None:
    exported = set()
    for name in ("network.yaml", "data.yaml"):
        for output in template(name)["Outputs"].values():
            exported.add(
                str(output["Export"]["Name"]["Fn::Sub"]).removeprefix("${EnvironmentName}:")
            )
    wanted = set()

    def walk(value: Any) -> None:
        if (name := imported(value)) is not None:
            wanted.add(name)
        elif isinstance(value, dict):
            for inner in value.values():
                walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)

    walk(template("services.yaml")["Resources"])
    assert wanted - exported == set()
    assert {"RollupTableArn", "ReportKeysTableArn", "ReportsSecurityGroup"} <= wanted


def test_the_rollup_table_has_the_index_of_changes() -> None:
    properties = resource("data.yaml", "RollupTable")["Properties"]
    (index,) = properties["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "changes"  # reports/rollups.py CHANGES_INDEX
    assert [(k["AttributeName"], k["KeyType"]) for k in index["KeySchema"]] == [
        ("program_id", "HASH"),
        ("updated_ms", "RANGE"),
    ]
    assert index["Projection"] == {"ProjectionType": "ALL"}
    types = {a["AttributeName"]: a["AttributeType"] for a in properties["AttributeDefinitions"]}
    assert types == {"program_id": "S", "bucket": "S", "updated_ms": "N"}


def test_the_reports_service_queries_the_index_of_changes() -> None:
    role = resource("services.yaml", "ReportsTaskRole")
    (statement,) = [s for s in statements(role) if s.get("Sid") == "ReadRollupChanges"]
    assert statement["Action"] == "dynamodb:Query"
    pattern, names = statement["Resource"]["Fn::Sub"]
    assert pattern == "${Table}/index/changes"
    assert imported(names["Table"]) == "RollupTableArn"


def test_the_reports_service_only_reads() -> None:
    role = resource("services.yaml", "ReportsTaskRole")
    assert actions_on(role, "RollupTableArn") == {
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:DescribeTable",
    }
    assert actions_on(role, "ReportKeysTableArn") == {"dynamodb:GetItem", "dynamodb:DescribeTable"}
    granted = {a for s in statements(role) for a in _list(s["Action"])}
    assert granted == {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:DescribeTable"}


def test_only_the_operators_task_role_writes_report_keys() -> None:
    writes = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
    writes |= {"dynamodb:BatchWriteItem", "dynamodb:*"}
    writers = {
        logical_id
        for logical_id, r in template("services.yaml")["Resources"].items()
        if r["Type"] == "AWS::IAM::Role" and actions_on(r, "ReportKeysTableArn") & writes
    }
    assert writers == {"ReportsAdminTaskRole"}
    admin = resource("services.yaml", "ReportsAdminTaskRole")
    assert {"dynamodb:PutItem", "dynamodb:Scan", "dynamodb:UpdateItem"} <= actions_on(
        admin, "ReportKeysTableArn"
    )
    assert resource("services.yaml", "ReportsAdminTaskDefinition")["Properties"]["TaskRoleArn"] == {
        "Fn::GetAtt": "ReportsAdminTaskRole.Arn"
    }


@pytest.mark.parametrize("role", ["EventsConsumerTaskRole", "EventsFunctionRole"])
def test_the_events_consumers_write_the_rollups(role: str) -> None:
    allowed = actions_on(resource("services.yaml", role), "RollupTableArn")
    assert {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DescribeTable"} <= allowed
    assert not allowed & {"dynamodb:Scan", "dynamodb:DeleteItem"}


def test_writers_and_reader_name_the_same_rollup_table() -> None:
    reports = environment(container("ReportsTaskDefinition"))
    consumer = environment(container("EventsConsumerTaskDefinition"))
    function = resource("services.yaml", "EventsFunction")["Properties"]["Environment"]
    assert imported(reports["ROLLUP_TABLE"]) == "RollupTableName"
    assert imported(reports["REPORT_KEYS_TABLE"]) == "ReportKeysTableName"
    assert consumer["ROLLUP_TABLE"] == reports["ROLLUP_TABLE"]
    assert function["Variables"]["ROLLUP_TABLE"] == reports["ROLLUP_TABLE"]
    admin = environment(container("ReportsAdminTaskDefinition"))
    for name in ("ROLLUP_TABLE", "REPORT_KEYS_TABLE", "REDIS_URL"):
        assert admin[name] == reports[name]


def test_the_reports_container_serves_8090_read_only() -> None:
    definition = container("ReportsTaskDefinition")
    assert definition["Command"] == ["reports", "serve"]
    assert definition["PortMappings"] == [{"ContainerPort": 8090, "Protocol": "tcp"}]
    assert definition["ReadonlyRootFilesystem"] is True
    assert "http://127.0.0.1:8090/healthz" in definition["HealthCheck"]["Command"][-1]
    assert [s["Name"] for s in definition["Secrets"]] == ["REDIS_PASSWORD"]
    assert container("TrackerTaskDefinition")["ReadonlyRootFilesystem"] is True


def test_the_alb_sends_the_reports_host_to_reports_over_https() -> None:
    rule = resource("services.yaml", "ReportsListenerRule")["Properties"]
    assert rule["ListenerArn"] == {"Ref": "HttpsListener"}
    assert rule["Conditions"] == [
        {"Field": "host-header", "HostHeaderConfig": {"Values": [{"Ref": "ReportsHostName"}]}}
    ]
    assert rule["Actions"] == [{"Type": "forward", "TargetGroupArn": {"Ref": "ReportsTargetGroup"}}]
    metrics_block = resource("services.yaml", "HttpsMetricsBlock")["Properties"]
    assert metrics_block["Priority"] < rule["Priority"]  # /metrics stays 404 on both names
    group = resource("services.yaml", "ReportsTargetGroup")["Properties"]
    assert (group["Port"], group["HealthCheckPath"]) == (8090, "/healthz")
    service = resource("services.yaml", "ReportsService")["Properties"]
    assert service["LoadBalancers"][0]["ContainerPort"] == 8090
    network = service["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert network["AssignPublicIp"] == "DISABLED"
    assert [imported(g) for g in network["SecurityGroups"]] == ["ReportsSecurityGroup"]
    scaling = resource("services.yaml", "ReportsCpuScaling")["Properties"]
    metric = scaling["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"]
    assert metric["PredefinedMetricType"] == "ECSServiceAverageCPUUtilization"


def test_reports_is_reached_from_the_alb_only_and_reaches_redis() -> None:
    from_alb = resource("network.yaml", "ReportsFromAlbIngress")["Properties"]
    assert (from_alb["FromPort"], from_alb["ToPort"]) == (8090, 8090)
    assert from_alb["SourceSecurityGroupId"] == {"Ref": "AlbSecurityGroup"}
    ingress = [
        r["Properties"]
        for r in template("network.yaml")["Resources"].values()
        if r["Type"] == "AWS::EC2::SecurityGroupIngress"
        and r["Properties"]["GroupId"] == {"Ref": "ReportsSecurityGroup"}
    ]
    assert ingress == [from_alb]
    group = resource("network.yaml", "ReportsSecurityGroup")["Properties"]
    assert "SecurityGroupIngress" not in group
    egress = {
        (e["FromPort"], str(e.get("DestinationSecurityGroupId")))
        for e in group["SecurityGroupEgress"]
    }
    assert egress == {(443, "None"), (6379, str({"Ref": "RedisSecurityGroup"}))}
    to_redis = resource("network.yaml", "RedisFromReportsIngress")["Properties"]
    assert to_redis["SourceSecurityGroupId"] == {"Ref": "ReportsSecurityGroup"}
    alb_egress = resource("network.yaml", "AlbSecurityGroup")["Properties"]["SecurityGroupEgress"]
    assert {(e["FromPort"], e["DestinationSecurityGroupId"]["Ref"]) for e in alb_egress} == {
        (8080, "TrackerSecurityGroup"),
        (8090, "ReportsSecurityGroup"),
    }


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# --- Conversion attribution ----------------------------------------------------------------

DEFAULTS = ConsumerSettings.from_env({})
ATTRIBUTION_WRITES = {
    "dynamodb:PutItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:DeleteItem",
    "dynamodb:UpdateItem",
}


def test_the_attribution_table_is_keyed_as_the_consumers_key_it_and_expires() -> None:
    table = resource("data.yaml", "AttributionTable")
    properties = table["Properties"]
    spec = table_specs(DEFAULTS)[DEFAULTS.attribution.table]  # what `consumers init` creates
    assert (
        properties["KeySchema"]
        == spec["KeySchema"]
        == [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ]
    )
    assert properties["AttributeDefinitions"] == spec["AttributeDefinitions"]
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    # Click records, markers and parked records all carry expires_at (records.py).
    assert properties["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert properties["SSESpecification"] == {
        "SSEEnabled": True,
        "SSEType": "KMS",
        "KMSMasterKeyId": {"Ref": "DataKey"},
    }
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"
    outputs = template("data.yaml")["Outputs"]
    assert outputs["AttributionTableName"]["Value"] == {"Ref": "AttributionTable"}
    assert outputs["AttributionTableArn"]["Value"] == {"Fn::GetAtt": "AttributionTable.Arn"}


def test_every_attribution_process_names_the_table_and_the_wait() -> None:
    consumer = environment(container("EventsConsumerTaskDefinition"))
    functions = [
        resource("services.yaml", name)["Properties"]["Environment"]["Variables"]
        for name in ("EventsFunction", "MatchFunction")
    ]
    for settings in (consumer, *functions):
        assert imported(settings["ATTRIBUTION_TABLE"]) == "AttributionTableName"
        assert settings["MATCH_WAIT_SECONDS"] == {"Ref": "MatchWaitSeconds"}
    match = functions[1]
    assert imported(match["EVENTS_TABLE"]) == "EventsTableName"
    assert imported(match["ROLLUP_TABLE"]) == "RollupTableName"
    wait = template("services.yaml")["Parameters"]["MatchWaitSeconds"]
    assert wait["Default"] == DEFAULTS.attribution.match_wait_seconds == 900
    assert (wait["MinValue"], wait["MaxValue"]) == (0, 86_400)  # settings.py's bounds


def test_the_events_workers_run_the_stream_path_the_matcher_and_erasure() -> None:
    role = resource("services.yaml", "EventsConsumerTaskRole")
    assert actions_on(role, "AttributionTableArn") == {
        "dynamodb:BatchGetItem",  # click records
        "dynamodb:BatchWriteItem",  # click records recorded; erasure's deletes
        "dynamodb:PutItem",  # claims and parking, conditional
        "dynamodb:GetItem",
        "dynamodb:Query",  # the parked partitions
        "dynamodb:DeleteItem",  # a parked record dropped, a claim given back
        "dynamodb:DescribeTable",  # the start-up key check
    }
    # The matcher reads a parked conversion's item and marks it decided.
    assert {"dynamodb:GetItem", "dynamodb:UpdateItem"} <= actions_on(role, "EventsTableArn")


def test_the_events_function_runs_only_the_stream_path() -> None:
    role = resource("services.yaml", "EventsFunctionRole")
    assert actions_on(role, "AttributionTableArn") == {
        "dynamodb:BatchGetItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:PutItem",
        "dynamodb:DescribeTable",
    }
    assert not actions_on(role, "EventsTableArn") & {"dynamodb:UpdateItem", "dynamodb:DeleteItem"}


def test_the_match_function_has_exactly_the_matchers_rights() -> None:
    role = resource("services.yaml", "MatchFunctionRole")
    assert role["Condition"] == "UseLambdaConsumers"
    assert actions_on(role, "AttributionTableArn") == {
        "dynamodb:BatchGetItem",
        "dynamodb:DeleteItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:Query",
    }
    assert actions_on(role, "EventsTableArn") == {"dynamodb:GetItem", "dynamodb:UpdateItem"}
    assert actions_on(role, "RollupTableArn") == {"dynamodb:GetItem", "dynamodb:PutItem"}
    dynamodb = {a for s in statements(role) for a in _list(s["Action"]) if a.startswith("dynamodb")}
    assert dynamodb <= {
        "dynamodb:BatchGetItem",
        "dynamodb:DeleteItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:Query",
        "dynamodb:UpdateItem",
    }
    assert not any(
        a.startswith(("kinesis:", "sqs:")) for s in statements(role) for a in _list(s["Action"])
    )


def test_only_the_attribution_processes_write_the_attribution_table() -> None:
    writers = {
        logical_id
        for logical_id, r in template("services.yaml")["Resources"].items()
        if r["Type"] == "AWS::IAM::Role"
        and actions_on(r, "AttributionTableArn") & ATTRIBUTION_WRITES
    }
    assert writers == {"EventsConsumerTaskRole", "EventsFunctionRole", "MatchFunctionRole"}


def test_the_match_function_runs_the_match_handler_once_a_minute_one_at_a_time() -> None:
    function = resource("services.yaml", "MatchFunction")
    properties = function["Properties"]
    events = resource("services.yaml", "EventsFunction")["Properties"]
    assert function["Condition"] == "UseLambdaConsumers"
    (handler,) = properties["ImageConfig"]["Command"]
    module, _, name = handler.rpartition(".")
    assert module == lambda_handlers.__name__
    assert callable(getattr(lambda_handlers, name))
    assert name == "match_handler"
    assert properties["Code"] == events["Code"]  # the events function's image
    assert properties["ReservedConcurrentExecutions"] == 1
    assert properties["VpcConfig"] == events["VpcConfig"]
    assert properties["KmsKeyArn"] == events["KmsKeyArn"]
    log_group = resource("services.yaml", "MatchFunctionLogGroup")["Properties"]
    assert properties["LoggingConfig"] == {"LogGroup": {"Ref": "MatchFunctionLogGroup"}}
    assert log_group["LogGroupName"] == {"Fn::Sub": "/lambda/${EnvironmentName}/match"}
    assert log_group["KmsKeyId"] == events["KmsKeyArn"]

    rule = resource("services.yaml", "MatchSchedule")
    assert rule["Condition"] == "UseLambdaConsumers"
    assert rule["Properties"]["ScheduleExpression"] == "rate(1 minute)"
    assert rule["Properties"]["State"] == "ENABLED"
    (target,) = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": "MatchFunction.Arn"}
    permission = resource("services.yaml", "MatchSchedulePermission")["Properties"]
    assert permission == {
        "FunctionName": {"Ref": "MatchFunction"},
        "Action": "lambda:InvokeFunction",
        "Principal": "events.amazonaws.com",
        "SourceArn": {"Fn::GetAtt": "MatchSchedule.Arn"},
    }
    retries = resource("services.yaml", "MatchFunctionInvokeConfig")["Properties"]
    assert retries["MaximumRetryAttempts"] == 0  # the next run does the same work


# --- make run's demo key -------------------------------------------------------------------


def test_the_demo_key_is_for_the_demo_programs_customer() -> None:
    assert _demo_customer() == 1001  # demo-shoes' customer in infra/local/programs.json


def test_the_demo_key_is_read_from_the_commands_json_line() -> None:
    output = '{"msg": "opened"}\n{"key_id": "0a", "customer_id": 1001, "key": "adt_x"}\n'
    assert _key_from_output(output) == "adt_x"
    with pytest.raises(RuntimeError, match="printed no key"):
        _key_from_output('{"msg": "no key here"}\nnot json\n')
