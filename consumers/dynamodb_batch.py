"""BatchWriteItem without botocore's per-item work: the call the events writer makes per event.

A botocore client validates and serializes each item by walking its AttributeValues through the
service model, ~170 us of CPU per item (docs/capacity.md), most of the events consumer's CPU.
Our items already are AttributeValue dicts ({"S": ...}, {"N": ...}), which is exactly DynamoDB's
JSON 1.0 wire format, so the body is one `json.dumps`, signed with botocore's SigV4 signer and
sent on a plain aiohttp session, as the tracker does for PutRecords (tracker/events/sink.py).
Endpoint, region and credentials still come from botocore, so real AWS (any credential source,
refreshed as needed) and the emulators (AWS_ENDPOINT_URL*) work alike.

Failures look as they do through a botocore client, so consumers/retrying.py needs no change:
DynamoDB's refusals become a `ClientError` with the code and message botocore would give
(ValidationException stays permanent), and a broken connection, a timeout, a checksum mismatch or
an unreadable answer a `BotoCoreError` (transient, retried). Unlike a botocore client this makes
one attempt per call: the caller's retry loop does all the retrying.
"""

from __future__ import annotations

import json
from base64 import b64encode
from binascii import crc32
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, NamedTuple

import aiohttp
from aiobotocore.credentials import AioCredentials
from botocore.exceptions import BotoCoreError, ChecksumError, ClientError, HTTPClientError

from tracker.aws_json import JsonOperation, JsonSigner

OPERATION = "BatchWriteItem"
BATCH_WRITE_ITEM = JsonOperation(
    "dynamodb",
    "DynamoDB_20120810.BatchWriteItem",
    "application/x-amz-json-1.0",
    # identity: the checksum covers the bytes as sent, and nothing needs inflating.
    extra_headers=(("Accept-Encoding", "identity"),),
)
# The consumers' botocore clients wait 5 s to connect and 20 s for a read (consumers/aws.py).
CALL_TIMEOUT = aiohttp.ClientTimeout(total=30, connect=5, sock_read=20)
# UnprocessedItems hands back at most what was sent, but DynamoDB may escape each non-ASCII
# character as \uXXXX (six bytes for one), hence six times the request, plus room for metadata.
ANSWER_GROWTH = 6
ANSWER_SLACK = 64 * 1024

WriteRequest = dict[str, Any]  # {"PutRequest": {"Item": {name: AttributeValue}}}


class UnreadableAnswerError(BotoCoreError):
    """An answer that is not DynamoDB's (oversized, not JSON, the wrong shape): transient, as a
    broken connection is, since a proxy or a cut connection can cause it."""

    fmt = "{operation} answer unreadable: {reason}"


@dataclass(frozen=True, slots=True)
class Endpoint:
    url: str  # as the botocore client resolved it (client.meta.endpoint_url)
    region: str


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    reason: str
    headers: Mapping[str, str]
    body: bytes


class SignedCall:
    """One DynamoDB JSON operation, signed with SigV4 and posted on a plain aiohttp session;
    the lean calls below are these."""

    operation = BATCH_WRITE_ITEM

    def __init__(
        self,
        http: aiohttp.ClientSession,
        endpoint: Endpoint,
        credentials: AioCredentials,
        timeout: aiohttp.ClientTimeout = CALL_TIMEOUT,
    ) -> None:
        self._http = http
        self._endpoint = endpoint
        self._signer = JsonSigner(self.operation, endpoint.url, endpoint.region, credentials)
        self._timeout = timeout

    @property
    def name(self) -> str:
        return self.operation.target.rsplit(".", 1)[-1]

    async def _call(self, body: bytes, limit: int) -> bytes:
        """The body of a 200 answer; any other answer raised as botocore would."""
        answer = await self._post(body, limit)
        check_crc32(answer)
        if answer.status != HTTPStatus.OK:
            raise client_error(answer, self.name)
        return answer.body

    async def _post(self, body: bytes, limit: int) -> Answer:
        headers = await self._signer.headers(body)
        try:
            async with self._http.post(
                self._endpoint.url, data=body, headers=headers, timeout=self._timeout
            ) as response:
                answer = await _read_bounded(response, limit, self.name)
                return Answer(response.status, response.reason or "", response.headers, answer)
        except aiohttp.ClientError as exc:
            raise HTTPClientError(error=exc) from exc


class BatchWriteItem(SignedCall):
    """One BatchWriteItem call for one table: `await call(table, requests)` returns the
    requests DynamoDB left unprocessed."""

    async def __call__(self, table: str, requests: Sequence[WriteRequest]) -> list[WriteRequest]:
        body = request_body(table, requests)
        answer = await self._call(body, limit=ANSWER_GROWTH * len(body) + ANSWER_SLACK)
        return unprocessed(answer, table)


def request_body(table: str, requests: Sequence[WriteRequest]) -> bytes:
    """The JSON 1.0 body: the items are AttributeValue dicts already, so it is one dumps."""
    payload = {"RequestItems": {table: requests}}
    return json.dumps(payload, separators=(",", ":"), default=blob_json).encode()


def blob_json(value: object) -> str:
    """A binary attribute ({"B": bytes}) goes over the wire in base64, as botocore sends it."""
    if isinstance(value, bytes | bytearray):
        return b64encode(value).decode("ascii")
    raise TypeError(f"not a DynamoDB JSON value: {type(value).__name__}")


async def _read_bounded(response: aiohttp.ClientResponse, limit: int, operation: str) -> bytes:
    length = response.content_length
    if length is not None and length > limit:
        raise UnreadableAnswerError(
            operation=operation, reason=f"{length} bytes announced, more than {limit}"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise UnreadableAnswerError(operation=operation, reason=f"more than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def check_crc32(answer: Answer) -> None:
    """DynamoDB sends the answer's CRC32 in x-amz-crc32; botocore retries on a mismatch (a body
    damaged on the way), and so do we: ChecksumError is transient."""
    expected = answer.headers.get("x-amz-crc32")
    if expected is None:
        return  # emulators and proxies may leave it out; botocore skips the check then too
    actual = crc32(answer.body) & 0xFFFFFFFF
    if not expected.isdigit() or int(expected) != actual:
        raise ChecksumError(
            checksum_type="crc32", expected_checksum=expected[:20], actual_checksum=str(actual)
        )


def client_error(answer: Answer, operation: str = OPERATION) -> ClientError:
    """The ClientError botocore's JSON parser makes of an error answer: the code is `__type`
    after its last '#' (else the HTTP status), the message `message` or `Message`."""
    fields = _error_fields(answer)
    code = str(fields.get("__type") or answer.status).split(":", 1)[0].rsplit("#", 1)[-1]
    message = str(fields.get("message", fields.get("Message", "")))[:1000]
    headers = {name.lower(): value for name, value in answer.headers.items()}
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {
                "RequestId": headers.get("x-amzn-requestid", ""),
                "HostId": headers.get("x-amz-id-2", ""),
                "HTTPStatusCode": answer.status,
                "HTTPHeaders": headers,
                "RetryAttempts": 0,
            },
        },
        operation,
    )


def _error_fields(answer: Answer) -> dict[str, Any]:
    body = answer.body.strip()
    if answer.status >= HTTPStatus.INTERNAL_SERVER_ERROR and (
        not body or body.startswith(b"<html>")
    ):
        return {"message": answer.reason}  # a load balancer's page, not DynamoDB's answer
    try:
        parsed = json.loads(body) if body else {}
    except ValueError:
        return {"message": body[:1000].decode("utf-8", "replace")}
    return parsed if isinstance(parsed, dict) else {"message": str(parsed)[:1000]}


def unprocessed(body: bytes, table: str) -> list[WriteRequest]:
    """The table's requests in a 200 answer's UnprocessedItems, each checked to be a PutRequest
    or DeleteRequest before it is sent again."""
    try:
        parsed = json.loads(body)
    except ValueError as exc:
        raise UnreadableAnswerError(operation=OPERATION, reason="not JSON") from exc
    if not isinstance(parsed, dict):
        raise UnreadableAnswerError(operation=OPERATION, reason="not a JSON object")
    tables = parsed.get("UnprocessedItems") or {}
    left = tables.get(table, []) if isinstance(tables, dict) else None
    if not isinstance(left, list) or not all(_is_write_request(r) for r in left):
        raise UnreadableAnswerError(
            operation=OPERATION, reason="UnprocessedItems is not a list of write requests"
        )
    return left


def _is_write_request(request: object) -> bool:
    if not isinstance(request, dict) or len(request) != 1:
        return False
    kind, body = next(iter(request.items()))
    field = {"PutRequest": "Item", "DeleteRequest": "Key"}.get(kind)
    return field is not None and isinstance(body, dict) and isinstance(body.get(field), dict)


BATCH_GET_ITEM = JsonOperation(
    "dynamodb",
    "DynamoDB_20120810.BatchGetItem",
    "application/x-amz-json-1.0",
    extra_headers=(("Accept-Encoding", "identity"),),
)
BATCH_GET_LIMIT = 100  # keys per BatchGetItem
# A found item comes back with only the projected attributes: small, bounded per key.
GET_ANSWER_PER_KEY = 4 * 1024


class GetRequest(NamedTuple):
    """What one BatchGetItem asks of one table: keys, and the attributes wanted of each."""

    keys: list[dict[str, Any]]
    attributes: tuple[str, ...]  # the attributes wanted of each item found
    consistent: bool = True
    # The keys as a JSON array already, when the caller writes it faster than json.dumps: sent
    # instead of `keys` (then empty).
    keys_json: str | None = None


class GetAnswer(NamedTuple):
    items: list[dict[str, Any]]
    unprocessed: list[dict[str, Any]]  # keys DynamoDB did not read this time: ask again


class BatchGetItem(SignedCall):
    """One BatchGetItem for one table: `await call(table, request)` -> the items found (with
    the projected attributes) and the keys left unprocessed."""

    operation = BATCH_GET_ITEM

    async def __call__(self, table: str, request: GetRequest) -> GetAnswer:
        # Names through placeholders: any attribute name may be a reserved word.
        names = {f"#a{n}": name for n, name in enumerate(request.attributes)}
        wanted: dict[str, Any] = {
            "Keys": request.keys,
            "ProjectionExpression": ",".join(names),
            "ExpressionAttributeNames": names,
            "ConsistentRead": request.consistent,
        }
        text = json.dumps({"RequestItems": {table: wanted}}, separators=(",", ":"))
        if request.keys_json:
            text = text.replace('"Keys":[]', f'"Keys":{request.keys_json}', 1)
        body = text.encode()
        limit = GET_ANSWER_PER_KEY * BATCH_GET_LIMIT + ANSWER_SLACK
        return found_items(await self._call(body, limit), table)


def found_items(body: bytes, table: str) -> GetAnswer:
    """The table's items and unprocessed keys in a 200 BatchGetItem answer, shapes checked."""
    try:
        parsed = json.loads(body)
    except ValueError as exc:
        raise UnreadableAnswerError(operation="BatchGetItem", reason="not JSON") from exc
    if not isinstance(parsed, dict):
        raise UnreadableAnswerError(operation="BatchGetItem", reason="not a JSON object")
    items = _member(_member(parsed, "Responses"), table, [])
    left = _member(_member(_member(parsed, "UnprocessedKeys"), table), "Keys", [])
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise UnreadableAnswerError(
            operation="BatchGetItem", reason="Responses is not a list of items"
        )
    if not isinstance(left, list) or not all(isinstance(k, dict) for k in left):
        raise UnreadableAnswerError(
            operation="BatchGetItem", reason="UnprocessedKeys is not a list of keys"
        )
    return GetAnswer(items, left)


def _member(parsed: object, name: str, absent: object = None) -> Any:
    """parsed[name] of a JSON object, `absent` (or an empty object) when it is not there."""
    if not isinstance(parsed, dict):
        raise UnreadableAnswerError(
            operation="BatchGetItem", reason=f"not a JSON object where {name} was expected"
        )
    value = parsed.get(name)
    if value is None:
        return {} if absent is None else absent
    return value
