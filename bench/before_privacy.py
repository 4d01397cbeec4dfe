"""The client's part of the event as the tracker made it before the privacy step (commit
c76a57f^, re-created here): the address anonymized through a memo, the referer read and cut, the
three fields serialized once per client. What the step replaced, so that what it adds shows as the
difference in bench/privacy_cost.py.

It takes the same `RequestFacts` as `ClientFields.fragment` and reads from it what the old code
was handed (the user agent, cut already, the headers and the address), so that the two are called
alike and compared alike.
"""

from __future__ import annotations

from tracker.events.anonymize import anonymize_ip
from tracker.memo import BoundedMemo
from tracker.request_facts import RequestFacts
from tracker.schema.tracking.v1 import tracking_pb2 as pb

MAX_REFERER = 512
MAX_ADDRESSES = 4096
MAX_CLIENTS = 2048


class BeforePrivacy:
    """Same call as ClientFields.fragment; a fresh one has its memos empty."""

    def __init__(self) -> None:
        self._addresses: BoundedMemo[str | None, str] = BoundedMemo(MAX_ADDRESSES)
        self._clients: BoundedMemo[tuple[str, str, str], bytes] = BoundedMemo(MAX_CLIENTS)

    def fragment(self, facts: RequestFacts) -> bytes:
        anonymized = self._anonymized(facts.address)
        referer = facts.headers.get("Referer", "")[:MAX_REFERER]
        return self._client(facts.user_agent, referer, anonymized)

    def _anonymized(self, address: str | None) -> str:
        known = self._addresses.get(address)
        if known is None:
            known = self._addresses.remember(address, anonymize_ip(address))
        return known

    def _client(self, user_agent: str, referer: str, address: str) -> bytes:
        key = (user_agent, referer, address)
        serialized = self._clients.get(key)
        if serialized is None:
            part = pb.TrackingEvent(
                user_agent=user_agent, referer=referer, client_ip_anonymized=address
            )
            serialized = self._clients.remember(key, part.SerializeToString())
        return serialized
