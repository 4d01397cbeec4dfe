"""The Lambda Runtime API, as Lambda serves it to a runtime, for a runtime under test.

A runtime (here awslambdaric) long-polls `GET /2018-06-01/runtime/invocation/next` for an event
and answers on `POST .../invocation/{id}/response` or `.../invocation/{id}/error`; an init
failure goes to `POST .../init/error`. `invoke()` hands the runtime one event and waits for its
answer. This peer speaks only what a runtime uses; it is no emulator of Lambda.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple, Self

from aiohttp import web

from tests.support.loopback import port_of, serve_on_loopback

PREFIX = "/2018-06-01/runtime"
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:consumer"


class Answer(NamedTuple):
    kind: str  # "response" or "error"
    body: Any


class _Invocation(NamedTuple):
    request_id: str
    event: bytes
    deadline_ms: int


class RuntimeApi:
    def __init__(self) -> None:
        self.address = ""  # host:port, as AWS_LAMBDA_RUNTIME_API carries it
        self.init_errors: list[Any] = []
        self._pending: asyncio.Queue[_Invocation] = asyncio.Queue()
        self._answers: dict[str, asyncio.Future[Answer]] = {}
        self._runner: web.AppRunner | None = None

    async def start(self) -> Self:
        app = web.Application()
        app.router.add_get(f"{PREFIX}/invocation/next", self._next)
        app.router.add_post(f"{PREFIX}/invocation/{{id}}/response", self._response)
        app.router.add_post(f"{PREFIX}/invocation/{{id}}/error", self._error)
        app.router.add_post(f"{PREFIX}/init/error", self._init_error)
        # The runtime is killed while it waits for an event: drop its request then.
        self._runner = await serve_on_loopback(app, handler_cancellation=True)
        self.address = f"127.0.0.1:{port_of(self._runner)}"
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def invoke(self, event: dict[str, Any], timeout_seconds: float = 30) -> Answer:
        """Hand the runtime one event with `timeout_seconds` to run; its answer."""
        request_id = str(uuid.uuid4())
        answer: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._answers[request_id] = answer
        deadline_ms = int((time.time() + timeout_seconds) * 1000)
        await self._pending.put(_Invocation(request_id, json.dumps(event).encode(), deadline_ms))
        async with asyncio.timeout(timeout_seconds + 10):
            return await answer

    async def _next(self, _request: web.Request) -> web.Response:
        invocation = await self._pending.get()
        headers = {
            "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
            "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": FUNCTION_ARN,
            "Lambda-Runtime-Trace-Id": f"Root=1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]}",
        }
        return web.Response(body=invocation.event, headers=headers, content_type="application/json")

    async def _response(self, request: web.Request) -> web.Response:
        return await self._settle(request, "response")

    async def _error(self, request: web.Request) -> web.Response:
        return await self._settle(request, "error")

    async def _settle(self, request: web.Request, kind: str) -> web.Response:
        answer = self._answers.get(request.match_info["id"])
        if answer is None or answer.done():
            return web.json_response({"errorMessage": "unknown request id"}, status=400)
        answer.set_result(Answer(kind, json.loads(await request.read())))
        return web.json_response({"status": "OK"}, status=202)

    async def _init_error(self, request: web.Request) -> web.Response:
        self.init_errors.append(json.loads(await request.read()))
        return web.json_response({"status": "OK"}, status=202)


@contextlib.contextmanager
def awslambdaric(handler: str, env: dict[str, str], api: RuntimeApi, log: Path) -> Iterator[None]:
    """`python -m awslambdaric HANDLER`, the image's Lambda entry point, polling `api`; its
    output goes to `log`. Killed at the end: it waits for the next event for ever."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "awslambdaric", handler],
            env={**os.environ, **env, "AWS_LAMBDA_RUNTIME_API": api.address},
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            yield
        finally:
            process.kill()
            process.wait()
