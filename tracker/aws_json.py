"""SigV4 headers for a hand-built AWS JSON-protocol call sent on a plain aiohttp session.

The tracker's PutRecords (tracker/events/sink.py) and the events consumer's BatchWriteItem
(consumers/dynamodb_batch.py) build their bodies without a botocore client, which costs most of
the CPU per record; botocore still signs them. Credentials are frozen per call, so refreshable
ones (a task role, SSO) renew themselves here.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiobotocore.credentials import AioCredentials
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest


@dataclass(frozen=True, slots=True)
class JsonOperation:
    service: str  # the signing name: "kinesis", "dynamodb"
    target: str  # X-Amz-Target
    content_type: str  # application/x-amz-json-1.0 or 1.1, by service
    extra_headers: tuple[tuple[str, str], ...] = ()


class JsonSigner:
    """Signs bodies of one operation for one endpoint and region."""

    def __init__(
        self, operation: JsonOperation, url: str, region: str, credentials: AioCredentials
    ) -> None:
        self._operation = operation
        self._url = url
        self._region = region
        self._credentials = credentials
        self._headers = {
            "Content-Type": operation.content_type,
            "X-Amz-Target": operation.target,
            **dict(operation.extra_headers),
        }

    async def headers(self, body: bytes) -> dict[str, str]:
        frozen = await self._credentials.get_frozen_credentials()
        request = AWSRequest(method="POST", url=self._url, data=body, headers=self._headers)
        SigV4Auth(frozen, self._operation.service, self._region).add_auth(request)
        return dict(request.headers.items())
