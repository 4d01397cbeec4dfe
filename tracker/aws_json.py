"""SigV4 headers for a hand-built AWS JSON-protocol call sent on a plain aiohttp session.

The tracker's PutRecords (tracker/events/sink.py) and the consumers' lean DynamoDB calls
(consumers/dynamodb_batch.py, consumers/dynamodb_item.py) build their bodies without a botocore
client, which costs most of the CPU per record. They are signed here too, without botocore's
request objects: a POST to one fixed URL with a handful of fixed headers has a canonical request
that is a few string joins, and the signing key changes once a day. botocore's SigV4Auth took
~100-150 us a call on the bench machine (email-style header objects, URL parsing per call), the
bigger part of a lean call's CPU. tests/test_aws_json.py checks every signature against
botocore's for the same request and time. Credentials are frozen per call, so refreshable ones
(a task role, SSO) renew themselves here.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from aiobotocore.credentials import AioCredentials

ALGORITHM = "AWS4-HMAC-SHA256"
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class JsonOperation:
    service: str  # the signing name: "kinesis", "dynamodb"
    target: str  # X-Amz-Target
    content_type: str  # application/x-amz-json-1.0 or 1.1, by service
    extra_headers: tuple[tuple[str, str], ...] = ()


class JsonSigner:
    """Signs bodies of one operation for one endpoint and region."""

    def __init__(
        self,
        operation: JsonOperation,
        url: str,
        region: str,
        credentials: AioCredentials,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._operation = operation
        self._region = region
        self._credentials = credentials
        self._clock = clock
        self._headers = {
            "Content-Type": operation.content_type,
            "X-Amz-Target": operation.target,
            **dict(operation.extra_headers),
        }
        self._host, self._path = _host_and_path(url)
        self._keys: dict[tuple[str, str], bytes] = {}  # (secret, day) -> signing key

    async def headers(self, body: bytes) -> dict[str, str]:
        frozen = await self._credentials.get_frozen_credentials()
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self._clock()))
        headers = {**self._headers, "X-Amz-Date": amz_date}
        if frozen.token:
            headers["X-Amz-Security-Token"] = frozen.token
        signed, canonical = self._canonical(headers, body)
        scope = f"{amz_date[:8]}/{self._region}/{self._operation.service}/aws4_request"
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        to_sign = f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"
        key = self._signing_key(frozen.secret_key or "", amz_date[:8])
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["Authorization"] = (
            f"{ALGORITHM} Credential={frozen.access_key}/{scope}, "
            f"SignedHeaders={signed}, Signature={signature}"
        )
        return headers

    def _canonical(self, headers: dict[str, str], body: bytes) -> tuple[str, str]:
        """(signed header names, the canonical request) as SigV4 defines them."""
        values = {name.lower(): " ".join(value.split()) for name, value in headers.items()}
        values["host"] = self._host
        names = sorted(values)
        lines = "\n".join(f"{name}:{values[name]}" for name in names)
        signed = ";".join(names)
        payload = hashlib.sha256(body).hexdigest()
        return signed, f"POST\n{self._path}\n\n{lines}\n\n{signed}\n{payload}"

    def _signing_key(self, secret: str, day: str) -> bytes:
        cached = self._keys.get((secret, day))
        if cached is None:
            key = f"AWS4{secret}".encode()
            for part in (day, self._region, self._operation.service, "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            self._keys = {(secret, day): key}  # one day and one secret at a time
            cached = key
        return cached


def _host_and_path(url: str) -> tuple[str, str]:
    """The Host header aiohttp sends (the port only when not the scheme's default) and the
    canonical path."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal
    if parts.port is not None and parts.port != DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host, quote(parts.path or "/", safe="/~")
