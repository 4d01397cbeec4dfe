"""RequestFacts for tests and benchmarks that build events or client fields without a request."""

from __future__ import annotations

from collections.abc import Mapping

from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from tests.support.programs import program
from tracker.privacy.client_fields import MAX_USER_AGENT
from tracker.privacy.daily_secret import DAY_SECONDS
from tracker.programs.model import Program, parse_program
from tracker.request_facts import RequestFacts
from tracker.schema.tracking.v1 import tracking_pb2 as pb


def request_facts(
    *,
    program_id: str = "p1",
    program: Program | None = None,
    timestamp_ms: int = 1_700_000_000_000,
    event_type: int = pb.IMPRESSION,
    validation: int = pb.OK,
    query: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    address: str | None = None,
    client: bytes = b"",
    customer: int = 0,
    day: int | None = None,
    fields: bytes = b"",
    message_id: str = "",
) -> RequestFacts:
    """Facts as the handler would have gathered them: `query` holds every parameter (extra
    parameters included), the user agent comes from `headers`, `day` from the time unless given;
    `fields` the event type's own (serialized), `message_id` a click id drawn before."""
    facts = RequestFacts(
        MultiDictProxy(MultiDict({"program": program_id, **(query or {})})),
        CIMultiDictProxy(CIMultiDict(headers or {})),
        event_type,
        program_id,
    )
    facts.program = program
    facts.validation = validation
    facts.timestamp_ms = timestamp_ms
    facts.now = timestamp_ms / 1000
    facts.customer = customer
    facts.user_agent = facts.headers.get("User-Agent", "")[:MAX_USER_AGENT]
    facts.address = address
    facts.day = timestamp_ms // (1000 * DAY_SECONDS) if day is None else day
    facts.client = client
    facts.withheld = False
    facts.fields = fields
    facts.message_id = message_id
    return facts


def program_of(customer_id: int, program_id: str = "p1") -> Program | None:
    """The fixtures' valid program, of that customer; None (an unknown program) for customer 0."""
    if not customer_id:
        return None
    return parse_program(program(program_id, customer_id=customer_id))
