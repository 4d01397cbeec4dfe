"""What one tracking request tells: gathered once, carried through every step that decides it.

The handler makes one `RequestFacts` per request and fills it in as the request passes
validation (the program, the outcome, the time), integrity and privacy (the client's fields);
the duplicate-click check holds it while Redis answers, and the event builder reads it last.
One record instead of loose arguments: a step that needs one more fact reads it here, and no
signature along the way grows.

Slots and plain attributes: it is made on the hot path, and each fact is set once, where it is
learnt, and read where it is used (a NamedTuple would have to be rebuilt at every step).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from multidict import MultiMapping

    from tracker.programs.model import Program


class RequestFacts:
    __slots__ = (
        "address",
        "client",
        "customer",
        "day",
        "event_type",
        "fields",
        "headers",
        "message_id",
        "now",
        "program",
        "program_id",
        "query",
        "tc_entries_read",
        "timestamp_ms",
        "user_agent",
        "validation",
        "withheld",
    )

    # What the request says (set when the record is made).
    query: MultiMapping[str]
    headers: MultiMapping[str]
    event_type: int  # a tracking_pb2.EventType value
    program_id: str
    # Validation: the program as known (None: unknown or unverified), its outcome, the time.
    program: Program | None
    validation: int  # a tracking_pb2.Validation value
    now: float  # epoch seconds, when the request was received
    timestamp_ms: int  # the same instant, as the event carries it
    customer: int  # the `customer` parameter: 0 absent, -1 malformed
    # The client, as integrity checks see it and privacy minimises it.
    user_agent: str  # cut to MAX_USER_AGENT, valid text
    address: str | None  # as the request came (the load balancer's claim when trusted)
    day: int  # the UTC day of `now`: the visitor pseudonym's day
    client: bytes  # the client's part of the event, serialized (privacy decides it)
    # Privacy withholds identifiers: CONSENT_DENIED, or Sec-GPC/DNT (set with `client`).
    withheld: bool
    # The range entries of a TC string read for this request (0: none, or decided before): the
    # costly reads of one request share a budget (tracker.handlers, LONG_TC_WALK).
    tc_entries_read: int
    # The event type's own fields, serialized: a click's attribution window when it was given
    # a click id, a conversion's parameters; b"" for every other event.
    fields: bytes
    # The event's id once it is built; "" while a click waits for its duplicate check, unless
    # the click was given a click id: then that id, drawn before its redirect.
    message_id: str

    def __init__(
        self,
        query: MultiMapping[str],
        headers: MultiMapping[str],
        event_type: int,
        program_id: str,
    ) -> None:
        self.query = query
        self.headers = headers
        self.event_type = event_type
        self.program_id = program_id
        self.message_id = ""
        self.fields = b""
        self.tc_entries_read = 0

    @property
    def customer_id(self) -> int:
        """The program's customer, 0 for an unknown program (which gets no visitor_id)."""
        program = self.program
        return program.customer_id if program is not None else 0
