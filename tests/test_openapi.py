"""docs/openapi.yaml describes the app that runs: valid OpenAPI, the same routes both ways, and
the query parameters and headers the handlers read, with the bounds the code applies."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename

from tracker import conversions, handlers
from tracker.app import create_app
from tracker.events import builder
from tracker.integrity import signing
from tracker.programs.model import PROGRAM_ID
from tracker.schema.tracking.v1 import tracking_pb2 as pb
from tracker.settings import TrackerSettings

ROOT = Path(__file__).resolve().parents[1]
SPEC_PATH = ROOT / "docs" / "openapi.yaml"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# Where the tracking routes read the request: the handlers, the client's (privacy) fields and
# the invalid-traffic checks.
READERS = [
    ROOT / "tracker" / "handlers.py",
    ROOT / "tracker" / "privacy" / "client_fields.py",
    ROOT / "tracker" / "conversions.py",
    *sorted((ROOT / "tracker" / "integrity").glob("*.py")),
]
TRACKING_PATHS = ("/v1/pixel", "/v1/click", "/event/{program_id}", "/v1/conversion")
QUERY_READ = re.compile(r"""\bquery\.(?:get|getone|getall)\(\s*["']([^"']+)["']""")
HEADER_READ = re.compile(r"""\bheaders\.(?:get|getone|getall)\(\s*["']([^"']+)["']""")
# Answered by the security scheme, not a header parameter (OpenAPI ignores one named so).
AUTH_HEADERS = {"authorization"}


@pytest.fixture(scope="module")
def spec() -> Mapping[str, Any]:
    document, _ = read_from_filename(str(SPEC_PATH))
    return document


def _resolve(spec: Mapping[str, Any], node: Mapping[str, Any]) -> Mapping[str, Any]:
    """Follow a local $ref (one level is all the document uses)."""
    ref = node.get("$ref")
    if ref is None:
        return node
    target: Any = spec
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    resolved: Mapping[str, Any] = target
    return resolved


def _parameters(spec: Mapping[str, Any], path: str, where: str) -> dict[str, Mapping[str, Any]]:
    operation = spec["paths"][path]["get"]
    found: dict[str, Mapping[str, Any]] = {}
    for node in operation.get("parameters", []):
        parameter = _resolve(spec, node)
        if parameter["in"] == where:
            found[parameter["name"]] = parameter
    return found


def _spec_operations(spec: Mapping[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def _app_operations(app: web.Application) -> set[tuple[str, str]]:
    """(METHOD, path template) of every route. aiohttp's add_get also adds HEAD with the same
    handler: that HEAD is part of the GET operation (the document says every GET answers HEAD);
    a HEAD route of its own would count as an operation."""
    routes = [
        (route.method, route.resource.canonical, route.handler)
        for route in app.router.routes()
        if route.resource is not None
    ]
    gets = {(path, handler) for method, path, handler in routes if method == "GET"}
    return {
        (method, path)
        for method, path, handler in routes
        if not (method == "HEAD" and (path, handler) in gets)
    }


def _reads(pattern: re.Pattern[str], files: Iterable[Path]) -> set[str]:
    return {name for file in files for name in pattern.findall(file.read_text())}


def test_the_document_is_valid_openapi_3_1(spec: Mapping[str, Any]) -> None:
    assert str(spec["openapi"]).startswith("3.1.")
    validate(spec)  # raises OpenAPIValidationError with the path of the first problem


def test_the_documented_operations_are_exactly_the_apps_routes(spec: Mapping[str, Any]) -> None:
    app = create_app(TrackerSettings.from_env({"ADMIN_TOKEN": "token"}))
    served = _app_operations(app)
    documented = _spec_operations(spec)
    assert served - documented == set(), "routes the app serves that docs/openapi.yaml lacks"
    assert documented - served == set(), "operations docs/openapi.yaml has that the app lacks"


def test_without_admin_token_the_admin_route_is_absent_and_documented_as_404(
    spec: Mapping[str, Any],
) -> None:
    app = create_app(TrackerSettings.from_env({}))
    assert ("POST", "/admin/cache/purge") not in _app_operations(app)
    purge = spec["paths"]["/admin/cache/purge"]["post"]
    assert {"200", "401", "404"} <= set(purge["responses"])
    assert purge["security"] == [{"adminToken": []}]
    scheme = spec["components"]["securitySchemes"]["adminToken"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")


def test_every_query_parameter_the_tracker_reads_is_documented(spec: Mapping[str, Any]) -> None:
    read = _reads(QUERY_READ, READERS) | set(builder.CONVERSION_RESERVED_PARAMS)
    assert {"program", "customer", "gdpr", "gdpr_consent", "uid"} <= read  # the grep works
    documented = {name for path in TRACKING_PATHS for name in _parameters(spec, path, "query")}
    assert read - documented == set()
    assert set(conversions.PARAM_NAMES) <= set(_parameters(spec, "/v1/conversion", "query"))


def test_every_header_the_tracker_reads_is_documented(spec: Mapping[str, Any]) -> None:
    read = {name.lower() for name in _reads(HEADER_READ, READERS)} - AUTH_HEADERS
    assert {"user-agent", "referer", "sec-gpc", "dnt", "x-forwarded-for"} <= read
    for path in TRACKING_PATHS:
        documented = {name.lower() for name in _parameters(spec, path, "header")}
        assert read - documented == set(), path


def test_the_tracking_routes_share_the_privacy_and_extra_parameters(
    spec: Mapping[str, Any],
) -> None:
    for path in TRACKING_PATHS:
        query = _parameters(spec, path, "query")
        assert {"customer", "gdpr", "gdpr_consent", "uid", "params"} <= set(query), path
    assert _parameters(spec, "/v1/click", "query")["program"]["required"] is True
    assert _parameters(spec, "/v1/pixel", "query")["program"]["required"] is False
    assert _parameters(spec, "/v1/conversion", "query")["program"]["required"] is False
    assert {"exp", "kid", "sig"} <= set(_parameters(spec, "/v1/click", "query"))


def test_documented_bounds_are_the_codes(spec: Mapping[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    assert schemas["ProgramId"]["pattern"] == f"^{PROGRAM_ID.pattern}$"
    extra = _parameters(spec, "/v1/pixel", "query")["params"]
    assert (extra["style"], extra["explode"]) == ("form", True)
    assert extra["schema"]["maxProperties"] == builder.MAX_PARAMS
    assert extra["schema"]["additionalProperties"]["maxLength"] == builder.MAX_PARAM_VALUE
    key_pattern = extra["schema"]["propertyNames"]["pattern"]
    assert f"{{1,{builder.MAX_PARAM_KEY}}}" in key_pattern
    assert set(builder.RESERVED_PARAMS) <= set(extra["schema"]["propertyNames"]["not"]["enum"])
    conversion = _parameters(spec, "/v1/conversion", "query")
    reserved = conversion["params"]["schema"]["propertyNames"]["not"]["enum"]
    assert set(builder.CONVERSION_RESERVED_PARAMS) <= set(reserved)
    for name, pattern in (
        ("click_id", conversions.CLICK_ID_TEXT),
        ("order_id", conversions.ORDER_ID_TEXT),
        ("currency", conversions.CURRENCY_TEXT),
    ):
        assert conversion[name]["schema"]["pattern"] == f"^{pattern.pattern}$", name
    answer = schemas["EventAnswer"]["properties"]
    assert answer["userAgent"]["maxLength"] == builder.MAX_HEADER_TEXT
    names = [pb.Validation.Name(value) for value in pb.Validation.values() if value]
    assert schemas["Validation"]["enum"] == names
    click = _parameters(spec, "/v1/click", "query")
    for name, pattern in (("kid", signing._KID), ("exp", signing._EXP), ("sig", signing._SIG)):
        assert click[name]["schema"]["pattern"] == f"^{pattern.pattern}$", name


def test_the_pixel_answer_is_documented_as_served(spec: Mapping[str, Any]) -> None:
    ok = spec["paths"]["/v1/pixel"]["get"]["responses"]
    # 400 and 431 only from the HTTP layer (a line over its bound, not HTTP; a head over 20
    # KiB), before any route: the route always says 200.
    assert set(ok) == {"200", "400", "431"}
    assert ok["400"] == {"$ref": "#/components/responses/RefusedByHttpLayer"}
    assert ok["431"] == {"$ref": "#/components/responses/HeadTooLarge"}
    assert set(ok["200"]["content"]) == {handlers.PIXEL_ANSWER.headers["Content-Type"]}
    assert ok["200"]["headers"]["Content-Length"]["schema"]["const"] == len(handlers.PIXEL_GIF)
    no_cache = spec["components"]["headers"]["NoCache"]["schema"]["const"]
    assert no_cache == handlers.NO_CACHE == handlers.PIXEL_ANSWER.headers["Cache-Control"]
    assert spec["paths"]["/v1/conversion"]["get"]["responses"] == ok  # the pixel's answer
    click = spec["paths"]["/v1/click"]["get"]["responses"]
    assert set(click) == {"302", "400", "404", "431"}
    assert click["302"]["headers"]["Location"]["required"] is True
