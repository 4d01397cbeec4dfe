"""The lean calls' SigV4 signer gives exactly botocore's signature for the same request and time:
the same canonical request, string to sign and Authorization header, with and without a session
token, for endpoints with and without a port."""

from __future__ import annotations

import pytest
from aiobotocore.credentials import AioCredentials
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

from tracker.aws_json import JsonOperation, JsonSigner

OPERATION = JsonOperation(
    "dynamodb",
    "DynamoDB_20120810.BatchGetItem",
    "application/x-amz-json-1.0",
    (("Accept-Encoding", "identity"),),
)
KINESIS = JsonOperation("kinesis", "Kinesis_20131202.PutRecords", "application/x-amz-json-1.1")
MOMENT = 1_780_000_123.0  # 2026-05-28T20:28:43Z
AMZ_DATE = "20260528T202843Z"


def botocore_headers(
    operation: JsonOperation, url: str, credentials: ReadOnlyCredentials, body: bytes
) -> dict[str, str]:
    headers = {
        "Content-Type": operation.content_type,
        "X-Amz-Target": operation.target,
        **dict(operation.extra_headers),
    }
    request = AWSRequest(method="POST", url=url, data=body, headers=headers)
    request.context["timestamp"] = AMZ_DATE
    auth = SigV4Auth(credentials, operation.service, "eu-west-1")
    # add_auth reads the clock; these are its steps with the time given.
    auth._modify_request_before_signing(request)  # type: ignore[attr-defined]
    canonical = auth.canonical_request(request)
    signature = auth.signature(auth.string_to_sign(request, canonical), request)
    auth._inject_signature_to_request(request, signature)  # type: ignore[attr-defined]
    return dict(request.headers.items())


@pytest.mark.parametrize("token", [None, "session-token/with+odd=chars"])
@pytest.mark.parametrize(
    ("operation", "url"),
    [
        (OPERATION, "https://dynamodb.eu-west-1.amazonaws.com"),
        (OPERATION, "http://127.0.0.1:4569"),
        (KINESIS, "https://kinesis.eu-west-1.amazonaws.com/"),
        (KINESIS, "http://localhost:80"),
    ],
)
async def test_the_signature_is_botocores(
    operation: JsonOperation, url: str, token: str | None
) -> None:
    body = b'{"RequestItems":{"t":{"Keys":[{"k":{"S":"v  w"}}]}}}'
    credentials = AioCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    signer = JsonSigner(operation, url, "eu-west-1", credentials, clock=lambda: MOMENT)
    ours = await signer.headers(body)
    frozen = ReadOnlyCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    assert ours == botocore_headers(operation, url, frozen, body)
    assert (await signer.headers(body)) == ours  # the cached signing key signs alike
