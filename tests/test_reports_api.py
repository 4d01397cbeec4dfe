"""`reports serve`'s HTTP API in process, on a real redis-server and moto's DynamoDB: keys,
ownership, rate limits, report formats, parameters, failing stores, the dashboard's files."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import pytest
import redis.asyncio as redis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from reports.api import CONTENT_SECURITY_POLICY, RUNTIME
from reports.app import create_app
from reports.cached_reports import CachedReports
from reports.keys import KeyStore
from reports.programs import ProgramDirectory
from reports.settings import ReportSettings
from tests.support.programs import program, write_programs
from tests.support.report_stack import (
    Tables,
    create_tables,
    dynamodb,
    fresh_tables,
    new_key,
    put_bucket,
    report_env,
)
from tests.support.tcp_proxy import PartitionProxy
from tests.support.waiting import wait_until
from tracker.devstack.processes import ManagedProcess, free_port

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

Client = TestClient[web.Request, web.Application]
StartReports = Callable[..., Awaitable[Client]]

NOW = 1_900_000_100.0  # 2030-03-17T17:48:20Z; its rate-limit hour ends at 1_900_000_800
CUSTOMER, OTHER_CUSTOMER = 42, 7
DAY = {"from": "2030-03-10", "to": "2030-03-11", "granularity": "day"}


@pytest.fixture
def tables() -> Tables:
    return fresh_tables()


@pytest.fixture
async def ddb(moto_url: str, tables: Tables) -> AsyncIterator[DynamoDBClient]:
    async with dynamodb(moto_url) as client:
        await create_tables(client, tables)
        yield client


@pytest.fixture
async def programs(redis_url: str) -> None:
    await write_programs(
        redis_url,
        [
            program("live"),
            program("alpha"),
            program("theirs", customer_id=OTHER_CUSTOMER),
            program("gone"),
            {"program_id": "gone", "deleted": True, "version": 2},
        ],
    )


@pytest.fixture
async def start_reports(
    moto_url: str, redis_url: str, tables: Tables, ddb: DynamoDBClient, programs: None
) -> AsyncIterator[StartReports]:
    """Start an in-process app; returns once its program directory is loaded."""
    clients: list[Client] = []

    async def start(clock: Callable[[], float] = lambda: NOW, **overrides: str) -> Client:
        env = report_env(moto_url, redis_url, tables, **overrides)
        app = create_app(ReportSettings.from_env(env), clock)
        client: Client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        directory = client.app[RUNTIME].services.programs
        await wait_until(lambda: directory.loaded, what="program directory")
        return client

    yield start
    for client in reversed(clients):
        await client.close()


@pytest.fixture
async def key(ddb: DynamoDBClient, tables: Tables) -> str:
    return await new_key(ddb, tables, CUSTOMER)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def seed_day(ddb: DynamoDBClient, tables: Tables, program_id: str = "live") -> None:
    """Buckets on 2030-03-10 and 2030-03-11 (UTC), with every kind of counter."""
    counts: dict[str, int] = {
        "impressions": 10,
        "clicks": 3,
        "events": 1,
        "billable_impressions": 9,
        "billable_clicks": 2,
        "ivt.IVT_KNOWN_CRAWLER": 1,
        "validation.OK": 13,
        "conversions": 1,
        "revenue.EUR": 12_500_000,
    }
    await put_bucket(ddb, tables.rollups, program_id, "2030-03-10T00:00Z", counts, ["a", "b"])
    await put_bucket(ddb, tables.rollups, program_id, "2030-03-10T13:45Z", counts, ["b", "c"])
    await put_bucket(ddb, tables.rollups, program_id, "2030-03-11T23:45Z", {"impressions": 5})


# --- keys -------------------------------------------------------------------------------------


async def test_a_valid_key_reads_its_customers_programs_sorted(
    start_reports: StartReports, key: str
) -> None:
    client = await start_reports()
    response = await client.get("/v1/programs", headers=bearer(key))
    assert response.status == 200
    assert await response.json() == [
        {"program_id": "alpha", "program_name": "Program alpha"},
        {"program_id": "live", "program_name": "Program live"},
    ]
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY


AUTH_CASES = {
    "missing": (None, "Bearer"),
    "empty bearer": ("Bearer ", "Bearer"),
    "wrong scheme": ("Basic dXNlcjpwYXNz", "Bearer"),
    "malformed": ("Bearer adt_nothex_short", 'Bearer error="invalid_token"'),
    "overlong": ("Bearer " + "a" * 300, 'Bearer error="invalid_token"'),
    "unknown key id": ("Bearer adt_0123456789ab_" + "A" * 43, 'Bearer error="invalid_token"'),
}


@pytest.mark.parametrize("case", sorted(AUTH_CASES))
async def test_a_request_without_a_valid_key_is_refused(
    start_reports: StartReports, case: str
) -> None:
    header, challenge = AUTH_CASES[case]
    client = await start_reports()
    headers = {} if header is None else {"Authorization": header}
    for path in ("/v1/programs", "/v1/reports/live", "/v1/nowhere"):
        response = await client.get(path, headers=headers)
        assert response.status == 401, path
        assert response.headers["WWW-Authenticate"] == challenge
        assert await response.json() == {"error": "unauthorized"}
        assert "X-RateLimit-Limit" not in response.headers


async def test_the_right_key_id_with_a_wrong_secret_is_refused(
    start_reports: StartReports, key: str
) -> None:
    client = await start_reports()
    forged = key[:-1] + ("A" if key[-1] != "A" else "B")
    response = await client.get("/v1/programs", headers=bearer(forged))
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


async def test_a_revoked_key_is_refused(
    start_reports: StartReports, ddb: DynamoDBClient, tables: Tables, key: str
) -> None:
    client = await start_reports()
    assert (await client.get("/v1/programs", headers=bearer(key))).status == 200
    assert await KeyStore(ddb, tables.keys, 10.0).revoke(key[4:16])
    client.app[RUNTIME].services.verifier.forget()  # the 5 s cache, elapsed
    response = await client.get("/v1/programs", headers=bearer(key))
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


async def test_the_api_answers_json_for_its_own_404_and_405(
    start_reports: StartReports, key: str
) -> None:
    client = await start_reports()
    missing = await client.get("/v1/nowhere", headers=bearer(key))
    assert missing.status == 404
    assert await missing.json() == {"error": "not found"}
    wrong = await client.post("/v1/programs", headers=bearer(key))
    assert wrong.status == 405
    assert await wrong.json() == {"error": "method not allowed"}
    assert "GET" in wrong.headers["Allow"]


# --- ownership --------------------------------------------------------------------------------


async def test_another_customers_program_answers_as_one_that_does_not_exist(
    start_reports: StartReports, key: str
) -> None:
    client = await start_reports()
    answers = []
    for program_id in ("theirs", "nonexistent", "gone"):
        response = await client.get(f"/v1/reports/{program_id}", headers=bearer(key))
        answers.append((response.status, await response.read()))
    assert answers[0][0] == 404
    assert answers[0] == answers[1] == answers[2]


async def test_a_program_loaded_after_start_is_reportable_at_once(
    start_reports: StartReports, key: str, redis_url: str
) -> None:
    client = await start_reports()
    assert (await client.get("/v1/reports/fresh", headers=bearer(key))).status == 404
    await write_programs(redis_url, [program("fresh")])
    response = await client.get("/v1/reports/fresh", params=DAY, headers=bearer(key))
    assert response.status == 200
    assert (await response.json())["program_id"] == "fresh"
    programs = await (await client.get("/v1/programs", headers=bearer(key))).json()
    assert "fresh" in [p["program_id"] for p in programs]


async def test_the_directory_skips_tombstones_and_malformed_hashes_and_is_bounded(
    redis_url: str, programs: None
) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        await client.hset("program:broken", mapping={"program_id": "broken", "valid": "maybe"})
        directory = ProgramDirectory(client, timeout=5.0)
        await directory.refresh()
        assert [p.program_id for p in directory.programs_of(CUSTOMER)] == ["alpha", "live"]
        assert [p.program_id for p in directory.programs_of(OTHER_CUSTOMER)] == ["theirs"]
        assert await directory.program("broken") is None
        small = ProgramDirectory(client, timeout=5.0, max_programs=2)
        await small.refresh()
        assert small.size == 2
        assert await small.program("live") is not None  # found one at a time all the same
        assert small.size == 2
    finally:
        await client.aclose()


# --- rate limit -------------------------------------------------------------------------------


async def test_past_the_hourly_limit_the_answer_is_429_with_retry_after(
    start_reports: StartReports, key: str
) -> None:
    client = await start_reports(REPORTS_RATE_LIMIT="3")
    for remaining in (2, 1, 0):
        response = await client.get("/v1/programs", headers=bearer(key))
        assert response.status == 200
        assert response.headers["X-RateLimit-Limit"] == "3"
        assert response.headers["X-RateLimit-Remaining"] == str(remaining)
        assert response.headers["X-RateLimit-Reset"] == "1900000800"
    response = await client.get("/v1/programs", headers=bearer(key))
    assert response.status == 429
    assert response.headers["Retry-After"] == "700"
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert await response.json() == {"error": "rate limit exceeded"}
    # The next hour starts afresh.
    later = await start_reports(clock=lambda: NOW + 700, REPORTS_RATE_LIMIT="3")
    assert (await later.get("/v1/programs", headers=bearer(key))).status == 200


async def test_the_limit_is_shared_by_every_process_on_one_redis(
    start_reports: StartReports, key: str
) -> None:
    first = await start_reports(REPORTS_RATE_LIMIT="3")
    second = await start_reports(REPORTS_RATE_LIMIT="3")
    statuses = [
        (await client.get("/v1/programs", headers=bearer(key))).status
        for client in (first, second, first, second)
    ]
    assert statuses == [200, 200, 200, 429]


# --- reports ----------------------------------------------------------------------------------


async def test_buckets_written_after_a_report_show_in_it_within_seconds(
    start_reports: StartReports, key: str, ddb: DynamoDBClient, tables: Tables
) -> None:
    # The report cache: the newest bucket written again and an old one written late (a new
    # version each, written now) show in the report served from it within its 5 s bound.
    await seed_day(ddb, tables)
    client = await start_reports()
    before = await (await client.get("/v1/reports/live", params=DAY, headers=bearer(key))).json()
    assert [row["impressions"] for row in before["rows"]] == [20, 5]
    await put_bucket(ddb, tables.rollups, "live", "2030-03-11T23:45Z", {"impressions": 7}, ["z"], 2)
    await put_bucket(ddb, tables.rollups, "live", "2030-03-10T00:00Z", {"impressions": 1}, None, 2)
    started = time.monotonic()
    while True:
        response = await client.get("/v1/reports/live", params=DAY, headers=bearer(key))
        body = await response.json()
        if [row["impressions"] for row in body["rows"]] == [11, 7]:
            break
        assert time.monotonic() - started < 6.0, body["rows"]
        await asyncio.sleep(0.2)
    assert body["rows"][1]["uniques"] == 1
    assert body["totals"]["impressions"] == 18


async def test_a_report_has_a_row_per_period_and_totals(
    start_reports: StartReports, key: str, ddb: DynamoDBClient, tables: Tables
) -> None:
    await seed_day(ddb, tables)
    client = await start_reports()
    response = await client.get("/v1/reports/live", params=DAY, headers=bearer(key))
    assert response.status == 200
    body = await response.json()
    assert (body["program_id"], body["tz"], body["granularity"]) == ("live", "UTC", "day")
    assert [row["period"] for row in body["rows"]] == [
        "2030-03-10T00:00:00+00:00",
        "2030-03-11T00:00:00+00:00",
    ]
    assert [row["impressions"] for row in body["rows"]] == [20, 5]
    assert body["rows"][0]["uniques"] == 3
    assert body["totals"]["impressions"] == 25
    assert body["totals"]["revenue"] == {"EUR": "25"}
    assert response.headers["X-RateLimit-Remaining"] == "599"


@pytest.mark.parametrize("ask", ["param", "accept"])
async def test_csv_rows_equal_json_rows(
    start_reports: StartReports, key: str, ddb: DynamoDBClient, tables: Tables, ask: str
) -> None:
    await seed_day(ddb, tables)
    client = await start_reports()
    query = {"from": "2030-03-10", "to": "2030-03-10", "granularity": "hour", "tz": "Asia/Kolkata"}
    as_json = await (await client.get("/v1/reports/live", params=query, headers=bearer(key))).json()
    if ask == "param":
        response = await client.get(
            "/v1/reports/live", params={**query, "format": "csv"}, headers=bearer(key)
        )
    else:
        headers = {**bearer(key), "Accept": "text/csv, application/json;q=0.5"}
        response = await client.get("/v1/reports/live", params=query, headers=headers)
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"] == (
        'attachment; filename="report-live-2030-03-10-2030-03-10.csv"'
    )
    rows = list(csv.DictReader(io.StringIO(await response.text())))
    assert len(rows) == len(as_json["rows"]) == 24
    assert [flatten(row) for row in as_json["rows"]] == rows


def flatten(row: dict[str, Any]) -> dict[str, str]:
    """A JSON row as its CSV cells: objects spread into `name.key` columns."""
    cells: dict[str, str] = {}
    for name, value in row.items():
        if isinstance(value, dict):
            cells.update({f"{name}.{k}": str(v) for k, v in value.items()})
        else:
            cells[name] = str(value)
    return cells


BAD_PARAMETERS = [
    ({"from": "2030-13-01"}, "from"),
    ({"from": "yesterday"}, "from"),
    ({"to": "2030-02-30"}, "to"),
    ({"from": "2030-03-12", "to": "2030-03-10"}, "from"),
    ({"from": "2030-01-01", "to": "2030-03-10", "granularity": "hour"}, "to"),
    ({"granularity": "week"}, "granularity"),
    ({"tz": "Mars/Olympus"}, "tz"),
    ({"tz": "../../etc/passwd"}, "tz"),
    ({"format": "xml"}, "format"),
]


@pytest.mark.parametrize(("params", "name"), BAD_PARAMETERS)
async def test_a_bad_parameter_is_a_400_naming_it(
    start_reports: StartReports, key: str, params: dict[str, str], name: str
) -> None:
    client = await start_reports()
    response = await client.get("/v1/reports/live", params=params, headers=bearer(key))
    assert response.status == 400
    body = await response.json()
    assert body["parameter"] == name
    assert body["error"]


async def test_a_malformed_program_id_is_a_400_naming_it(
    start_reports: StartReports, key: str
) -> None:
    client = await start_reports()
    response = await client.get("/v1/reports/bad%20id!", headers=bearer(key))
    assert response.status == 400
    assert (await response.json())["parameter"] == "program_id"
    response = await client.get("/v1/reports/" + "x" * 65, headers=bearer(key))
    assert (await response.json())["parameter"] == "program_id"


# --- failing stores ---------------------------------------------------------------------------


@pytest.fixture
async def moto_proxy(moto_url: str) -> AsyncIterator[PartitionProxy]:
    proxy = await PartitionProxy("127.0.0.1", int(moto_url.rsplit(":", 1)[1])).start()
    yield proxy
    await proxy.close()


async def test_a_dynamodb_that_stops_answering_is_a_503_in_bounded_time(
    start_reports: StartReports,
    key: str,
    moto_proxy: PartitionProxy,
    ddb: DynamoDBClient,
    tables: Tables,
) -> None:
    other_key = await new_key(ddb, tables, CUSTOMER)
    client = await start_reports(
        AWS_ENDPOINT_URL_DYNAMODB=moto_proxy.url, REPORTS_READ_TIMEOUT_MS="300"
    )
    assert (await client.get("/v1/reports/live", params=DAY, headers=bearer(key))).status == 200
    moto_proxy.partition()
    # Another range: the report cache holds DAY, and answers it alone for a few seconds.
    uncached = {**DAY, "from": "2030-02-01", "to": "2030-02-02"}
    for credentials, store in ((key, "rollups"), (other_key, "report keys")):
        started = time.monotonic()
        response = await client.get(
            "/v1/reports/live", params=uncached, headers=bearer(credentials)
        )
        assert response.status == 503
        assert await response.json() == {"error": "unavailable", "store": store}
        assert time.monotonic() - started < 3.0
    readiness = await client.get("/readyz")
    assert readiness.status == 503
    assert set((await readiness.json())["problems"]) == {"rollups", "report_keys"}
    assert await metric(client, "reports_store_errors_total", 'store="rollups"') == 1


async def test_a_closed_dynamodb_port_is_a_503(start_reports: StartReports, key: str) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    client = await start_reports(AWS_ENDPOINT_URL_DYNAMODB=closed, REPORTS_READ_TIMEOUT_MS="500")
    response = await client.get("/v1/programs", headers=bearer(key))
    assert response.status == 503
    assert await response.json() == {"error": "unavailable", "store": "report keys"}


async def test_redis_down_is_a_503_never_unlimited(
    start_reports: StartReports, key: str, redis_proc: ManagedProcess
) -> None:
    client = await start_reports(REPORTS_READ_TIMEOUT_MS="300")
    assert (await client.get("/v1/programs", headers=bearer(key))).status == 200
    redis_proc.kill()
    for path in ("/v1/programs", "/v1/reports/live"):
        response = await client.get(path, headers=bearer(key))
        assert response.status == 503
        assert await response.json() == {"error": "unavailable", "store": "redis"}
    readiness = await client.get("/readyz")
    assert readiness.status == 503
    assert "redis" in (await readiness.json())["problems"]


async def test_a_bug_is_a_503_without_details_and_counted(
    start_reports: StartReports, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object) -> None:
        raise ZeroDivisionError("secret detail")

    monkeypatch.setattr(CachedReports, "build", broken)
    client = await start_reports()
    response = await client.get("/v1/reports/live", params=DAY, headers=bearer(key))
    assert response.status == 503
    assert await response.json() == {"error": "internal"}
    assert await metric(client, "reports_internal_errors_total") == 1


# --- ops and the dashboard --------------------------------------------------------------------


async def test_health_readiness_and_metrics(start_reports: StartReports, key: str) -> None:
    client = await start_reports()
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200, await ready.text()
    await client.get("/v1/programs", headers=bearer(key))
    await client.get("/v1/programs")
    assert await metric(client, "reports_requests_total", 'route="/v1/programs",status="200"') == 1
    assert await metric(client, "reports_requests_total", 'route="/v1/programs",status="401"') == 1
    assert await metric(client, "reports_programs") == 3


async def test_missing_tables_make_readiness_fail_naming_them(
    start_reports: StartReports,
) -> None:
    client = await start_reports(ROLLUP_TABLE="no-such-rollups")
    response = await client.get("/readyz")
    assert response.status == 503
    assert set((await response.json())["problems"]) == {"rollups"}


async def test_the_dashboard_is_served_with_its_security_headers(
    start_reports: StartReports,
) -> None:
    client = await start_reports()
    page = await client.get("/")
    assert page.status == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "<html" in await page.text()
    for response in (page, await client.get("/static/vendor/uPlot.min.css")):
        assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
    missing = await client.get("/static/nothing-here.js")
    assert missing.status == 404
    assert missing.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert (await client.get("/static/../settings.py")).status in (403, 404)


async def metric(client: Client, name: str, labels: str = "") -> float:
    text = await (await client.get("/metrics")).text()
    wanted = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{wanted} is not in /metrics")
