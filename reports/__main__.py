"""`python -m reports`: the reporting service (`reports serve` when no command is given)."""

from __future__ import annotations

import sys

from reports.cli import main

sys.exit(main(sys.argv[1:] or ["serve"]))
