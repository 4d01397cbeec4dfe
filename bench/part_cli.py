"""The command line every bench part runs standalone with (`python -m bench.<part> [--quick]`):
measure at the full or the quick size, print the summary, then the part's JSON."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

Part = dict[str, Any]


def run_part(
    description: str | None,
    quick_help: str,
    measure: Callable[[Any], Part],
    summary: Callable[[Part], str],
    sizes: tuple[Any, Any],
) -> None:
    """`sizes`: (full, quick), what `measure` is given."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    args = parser.parse_args()
    full, quick = sizes
    part = measure(quick if args.quick else full)
    print(summary(part))
    print(json.dumps(part, indent=2))
