"""Prefetch and prerender requests: a browser fetching a page's resources ahead of a possible
navigation. Nobody saw the ad (yet), so such an impression or click is not billable.

Chromium sends `Sec-Purpose: prefetch` (with `;prerender` for a prerender), older Chromium and
Safari `Purpose: prefetch`, Firefox `X-Moz: prefetch`. The header values are structured-field
lists; any mention of prefetch counts.
"""

from __future__ import annotations

from multidict import MultiMapping


def is_prefetch(headers: MultiMapping[str]) -> bool:
    purpose = headers.get("Sec-Purpose") or headers.get("Purpose")
    if purpose is not None and "prefetch" in purpose.lower():
        return True
    moz = headers.get("X-Moz")
    return moz is not None and moz.strip().lower() == "prefetch"
