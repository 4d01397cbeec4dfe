"""The demo programs (infra/local/programs.json): what the bench's trackers load, and the programs
its in-process benchmarks and on-disk logs use."""

from __future__ import annotations

import json
from functools import cache

from tracker.devstack.processes import REPO_ROOT
from tracker.programs.model import Program, parse_program

DEMO_PROGRAMS = REPO_ROOT / "infra" / "local" / "programs.json"
DEMO_PROGRAM_ID = "demo-shoes"  # the program of the bench's requests (customer 1001)
DEMO_PIXEL = f"/v1/pixel?program={DEMO_PROGRAM_ID}"
DEMO_CLICK = f"/v1/click?program={DEMO_PROGRAM_ID}"
# A program with click_id_param (its clicks get a click id in their redirect).
CLICK_ID_PROGRAM_ID = "demo-shop"
DEMO_CLICK_WITH_ID = f"/v1/click?program={CLICK_ID_PROGRAM_ID}"
# A thank-you page's conversion with every parameter well formed, as a browser sends it.
DEMO_CONVERSION = (
    f"/v1/conversion?program={DEMO_PROGRAM_ID}&click_id=0123456789abcdef0123456789abcdef"
    "&order_id=SO-2024-0001&value=49.90&currency=EUR"
)


@cache
def demo_programs() -> tuple[Program, ...]:
    return tuple(map(parse_program, json.loads(DEMO_PROGRAMS.read_text())))


def demo_program(program_id: str = DEMO_PROGRAM_ID) -> Program:
    return next(p for p in demo_programs() if p.program_id == program_id)
