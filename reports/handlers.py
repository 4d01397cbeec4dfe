"""The `/v1/` routes: a key's programs, and one program's report as JSON or CSV.

They run behind reports.api's gate (a valid key, counted against its limit) and leave every
failure to its one mapping (store down: 503). A program of another customer answers exactly
as one that does not exist: the same 404 and body, and the same work done before it.
"""

from __future__ import annotations

import time

from aiohttp import web

from reports.api import KEY, RUNTIME
from reports.csv_rows import report_csv
from reports.query import BadParameter, ReportQuery, parse_query
from reports.report import report_json
from tracker.programs.model import is_program_id

NOT_FOUND = {"error": "not found"}
CSV_TYPE = "text/csv"


def bad_parameter(name: str, message: str) -> web.Response:
    return web.json_response({"error": message, "parameter": name}, status=400)


def wants_csv(request: web.Request) -> bool:
    """`format=csv`, or no `format` and an Accept that names text/csv before (or without)
    application/json."""
    if "format" in request.query:
        return request.query["format"] == "csv"
    for part in request.headers.get("Accept", "").split(","):
        media = part.split(";", 1)[0].strip().lower()
        if media in (CSV_TYPE, "application/json"):
            return media == CSV_TYPE
    return False


class ApiHandlers:
    async def programs(self, request: web.Request) -> web.Response:
        directory = request.app[RUNTIME].services.programs
        owned = directory.programs_of(request[KEY].customer_id)
        return web.json_response([entry.to_json() for entry in owned])

    async def report(self, request: web.Request) -> web.Response:
        runtime = request.app[RUNTIME]
        program_id = request.match_info["program_id"]
        if not is_program_id(program_id):
            return bad_parameter("program_id", "must match ^[A-Za-z0-9._-]{1,64}$")
        params = dict(request.query)
        if "format" not in params and wants_csv(request):
            params["format"] = "csv"
        try:
            query = parse_query(params, runtime.clock)
        except BadParameter as exc:
            return bad_parameter(exc.name, exc.message)
        services = runtime.services
        program = await services.programs.program(program_id)
        if program is None or program.customer_id != request[KEY].customer_id:
            return web.json_response(NOT_FOUND, status=404)
        started = time.perf_counter()
        report = await services.reports.build(program_id, query)
        runtime.metrics.report_seconds.observe(time.perf_counter() - started)
        if query.format == "csv":
            return _csv_answer(report_csv(report), program_id, query)
        return web.json_response(report_json(report))


def _csv_answer(body: str, program_id: str, query: ReportQuery) -> web.Response:
    # The program id's characters ([A-Za-z0-9._-]) and ISO dates need no quoting in a filename.
    filename = f"report-{program_id}-{query.first.isoformat()}-{query.last.isoformat()}.csv"
    return web.Response(
        text=body,
        content_type=CSV_TYPE,
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
