"""A proxy in front of kinesalite whose shards look trimmed: GetRecords never shows a record
older than `trimmed_before`, as Kinesis shows nothing older than a shard's trim horizon once
retention has passed (kinesalite keeps records at least 24 hours). Other calls pass unchanged."""

from __future__ import annotations

import json

from aiohttp import web

from tests.support.proxy import EmulatorProxy


class TrimmingKinesisProxy(EmulatorProxy):
    def __init__(self, upstream: str, trimmed_before: str) -> None:
        super().__init__(upstream)
        self.trimmed_before = int(trimmed_before)
        self.hidden_records = 0

    async def handle(self, request: web.Request, target: str, body: bytes) -> web.Response:
        answer = await self.forward(request, body)
        if not target.endswith(".GetRecords") or answer.status != 200:
            return answer
        assert isinstance(answer.body, bytes)
        page = json.loads(answer.body)
        kept = [r for r in page["Records"] if int(r["SequenceNumber"]) >= self.trimmed_before]
        self.hidden_records += len(page["Records"]) - len(kept)
        return web.Response(
            body=json.dumps({**page, "Records": kept}), content_type=answer.content_type
        )
