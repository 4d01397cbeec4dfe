"""What an event may hold about the client, decided per request and serialized once per client.

| consent                      | user agent, address /24, referer      | visitor_id | user_key |
| NOT_APPLICABLE, GRANTED      | kept (referer: scheme, host, path)    | yes        | yes      |
| DENIED, or Sec-GPC/DNT: 1    | none (referer: origin only)           | no         | no       |

The result is a serialized fragment of a TrackingEvent (fields 4, 12, 13, 17-20) that the event
factory concatenates with the rest. The fragment is memoized per client, so a hit costs a few
dict lookups; the memo forgets everything when the day's secret changes (at midnight, or when
Redis lost it), so no visitor_id outlives its day.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tracker.events.anonymize import anonymize_ip
from tracker.headertext import valid_text
from tracker.memo import BoundedMemo
from tracker.privacy.consent import ConsentDecider
from tracker.privacy.keys import KEY_HEX_CHARS, client_digest, is_user_id, user_key
from tracker.privacy.referer import MAX_PARSED, minimised_referer
from tracker.schema.tracking.v1 import tracking_pb2 as pb

if TYPE_CHECKING:
    from tracker.privacy.daily_secret import DailySecrets
    from tracker.request_facts import RequestFacts

MAX_USER_AGENT = 512
MAX_CLIENTS = 2048  # at most ~3 KB per entry
MAX_PAGES = 1024  # (user agent, referer): at most ~3 KB per entry
MAX_ADDRESSES = 4096
# Longer than any textual IP address (with an IPv6 zone): not an address, never a memo key.
MAX_ADDRESS = 64
MAX_WITHHELD = 1024
MAX_USER_KEYS = 4096

TrackingEvent = pb.TrackingEvent
# Field 18's tag and length for a 32-character id: the pseudonym is appended without a message.
_ANY_VISITOR_ID = TrackingEvent(visitor_id="0" * KEY_HEX_CHARS).SerializeToString()
VISITOR_ID_FIELD = _ANY_VISITOR_ID[:-KEY_HEX_CHARS]
# Field 12's tag. An anonymized address is at most 39 ASCII characters, so its length is one
# byte: written by hand, a third of the cost of serializing a message for it.
ADDRESS_TAG = TrackingEvent(client_ip_anonymized="0").SerializeToString()[:-2]


class ClientFields:
    def __init__(
        self, consent: ConsentDecider, secrets: DailySecrets, user_id_key: bytes | None
    ) -> None:
        self._consent = consent
        self._secrets = secrets
        self._user_id_key = user_id_key
        # (user agent, referer, address, customer id, consent) -> fragment
        self._observed: BoundedMemo[tuple[str, str, str | None, int, int], bytes] = BoundedMemo(
            MAX_CLIENTS
        )
        self._observed_secret: bytes | None = None
        self._pages: BoundedMemo[tuple[str, str, int], bytes] = BoundedMemo(MAX_PAGES)
        self._addresses: BoundedMemo[str | None, bytes] = BoundedMemo(MAX_ADDRESSES)
        self._withheld: BoundedMemo[tuple[str, int, bool], bytes] = BoundedMemo(MAX_WITHHELD)
        self._user_keys: BoundedMemo[str, bytes] = BoundedMemo(MAX_USER_KEYS)
        # Requests per Consent value, and those that carried Sec-GPC or DNT.
        self.by_consent = [0] * len(pb.Consent.values())
        self.opted_out = 0
        self.visitor_id_unavailable = 0  # no secret for the day at hand: fail closed

    def fragment(self, facts: RequestFacts) -> bytes:
        """The client's part of the event, from the request's query and headers, its user agent
        (cut to MAX_USER_AGENT already), address, program (an unknown program's event gets no
        visitor_id) and UTC day. Sets `facts.withheld` and `facts.tc_entries_read`."""
        query = facts.query
        gdpr = query.get("gdpr")
        consent: int
        if gdpr is None:
            consent = pb.CONSENT_NOT_APPLICABLE
        else:
            consent = self._consent.decide(gdpr, query.get("gdpr_consent"))
            facts.tc_entries_read = self._consent.entries_read
        self.by_consent[consent] += 1
        headers = facts.headers
        referer = valid_text(headers.get("Referer", "")[:MAX_PARSED])
        # `withheld` is what later steps read (a click id is neither given nor taken then).
        if headers.get("Sec-GPC") == "1" or headers.get("DNT") == "1":
            self.opted_out += 1
            facts.withheld = True
            return self._withheld_fragment(referer, consent, True)
        if consent == pb.CONSENT_DENIED:
            facts.withheld = True
            return self._withheld_fragment(referer, consent, False)
        facts.withheld = False
        fragment = self._observed_fragment(facts, referer, consent)
        uid = query.get("uid")
        if uid is not None and self._user_id_key is not None:
            fragment += self._user_key_field(uid, self._user_id_key)
        return fragment

    def _observed_fragment(self, facts: RequestFacts, referer: str, consent: int) -> bytes:
        secret = self._secrets.for_day(facts.day)
        if secret is not self._observed_secret:
            self._observed.clear()  # a new day (or a new secret): no pseudonym survives it
            self._observed_secret = secret
        address = facts.address
        if address is not None and len(address) > MAX_ADDRESS:
            address = None
        user_agent = facts.user_agent
        customer_id = facts.customer_id
        key = (user_agent, referer, address, customer_id, consent)
        fragment = self._observed.get(key)
        if fragment is not None:
            return fragment
        # A new client usually shares its page and browser with others, and its address with
        # its own earlier requests: the parts are memoized on their own, so a miss here costs
        # little more than the pseudonym's hash.
        fragment = self._page_part(user_agent, referer, consent) + self._address_part(address)
        if not (customer_id and address):
            return self._observed.remember(key, fragment)
        if secret is None:
            # Fail closed: no pseudonym without a live secret (and not memoized without it).
            self.visitor_id_unavailable += 1
            self._secrets.fetch_soon()
            return fragment
        visitor = VISITOR_ID_FIELD + visitor_id(secret, address, user_agent, customer_id).encode()
        return self._observed.remember(key, fragment + visitor)

    def _page_part(self, user_agent: str, referer: str, consent: int) -> bytes:
        key = (user_agent, referer, consent)
        part = self._pages.get(key)
        if part is None:
            event = TrackingEvent(
                user_agent=user_agent,
                referer=minimised_referer(referer),
                consent=consent,  # type: ignore[arg-type]
            )
            part = self._pages.remember(key, event.SerializeToString())
        return part

    def _address_part(self, address: str | None) -> bytes:
        part = self._addresses.get(address)
        if part is None:
            anonymized = anonymize_ip(address).encode()
            part = ADDRESS_TAG + bytes((len(anonymized),)) + anonymized if anonymized else b""
            part = self._addresses.remember(address, part)
        return part

    def _withheld_fragment(self, referer: str, consent: int, opted_out: bool) -> bytes:
        key = (referer, consent, opted_out)
        fragment = self._withheld.get(key)
        if fragment is None:
            event = TrackingEvent(
                referer=minimised_referer(referer, origin_only=True),
                consent=consent,  # type: ignore[arg-type]
                gpc=opted_out,
            )
            fragment = self._withheld.remember(key, event.SerializeToString())
        return fragment

    def _user_key_field(self, uid: str, secret: bytes) -> bytes:
        field = self._user_keys.get(uid)
        if field is None:
            if not is_user_id(uid):
                return b""  # empty or unbounded: ignored, and never a memo key
            field = self._user_keys.remember(
                uid, TrackingEvent(user_key=user_key(secret, uid)).SerializeToString()
            )
        return field


def visitor_id(secret: bytes, address: str, user_agent: str, customer_id: int) -> str:
    """The daily pseudonym: the same client seen by the same customer on the same day."""
    return client_digest(secret, str(customer_id), address, user_agent)
