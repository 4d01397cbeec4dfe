"""The consent decision for one request, from its `gdpr` and `gdpr_consent` parameters.

| gdpr                           | gdpr_consent                                | decision       |
| absent, or "0"                 | anything                                    | NOT_APPLICABLE |
| "1"                            | a TC string consenting to our vendor id and | GRANTED        |
|                                | purpose 7 (measure advertising performance) |                |
| "1"                            | anything else, or our vendor id unset       | DENIED         |
| anything else: "", "true", "2" | anything                                    | DENIED         |

The last row is a choice the contract leaves open. A `gdpr` value we do not recognise may be a
sender's way of saying GDPR applies ("true", "yes", "2"), an unexpanded macro ("${GDPR}") or an
empty one (""): we cannot tell that GDPR does not apply, so it is treated as applying, and as
there is no way to read consent into such a request either, the decision is DENIED. Only the two
exact strings the IAB macros define, "0" and "1", are understood; no trimming, no case folding,
so " 0" and "00" are DENIED too. An unknown value can thus only ever take protection away from
us, never from the user.

What makes a TC string valid is tracker.privacy.tcf's business (its docstring lists what is
malformed, and what is implausible: strings no CMP writes, such as a range section longer than
the bit field it replaces, refused before the costly part of reading them). A string that is
neither decides as it reads; any other is DENIED.
"""

from __future__ import annotations

from tracker.memo import BoundedMemo
from tracker.privacy.tcf import MAX_TC_STRING, Reading, read_consent
from tracker.schema.tracking.v1 import tracking_pb2 as pb

NOT_APPLICABLE: int = pb.CONSENT_NOT_APPLICABLE
GRANTED: int = pb.CONSENT_GRANTED
DENIED: int = pb.CONSENT_DENIED

# The purpose whose consent a tracker needs: "Measure advertising performance".
MEASURE_AD_PERFORMANCE = 7
MAX_VENDOR_ID = 0xFFFF
# The longest TC string remembered. CMPs write strings of a few hundred characters, and under
# 1,100 with bit fields for every vendor in both sections and every optional segment: a longer
# one is read every time it comes (its reading is bounded as any string's) rather than hashed
# and kept, so that hostile strings neither fill the memo nor cost a hash of 8 KiB.
MAX_REMEMBERED = 2048


class ConsentDecider:
    """decide() for one vendor id, with a bounded memo of TC strings already decided: a visitor
    sends the same string with every pixel and click, and a dict lookup is much cheaper than a
    decode.

    Memo keys are ASCII strings of at most MAX_REMEMBERED characters, so the memo holds at most
    max_entries * 2 KiB of keys (2 MiB with the default) even if every request brings a new,
    long string. Values over MAX_TC_STRING or not ASCII are refused without being remembered:
    neither can be a TC string, and a non-ASCII character would make a key up to four times as
    large. Strings between the two are read every time.
    """

    def __init__(self, vendor_id: int | None, max_entries: int = 1024) -> None:
        if vendor_id is not None and not 1 <= vendor_id <= MAX_VENDOR_ID:
            # Misconfiguration, found at start-up rather than as every request being DENIED.
            raise ValueError(f"TCF vendor id must be 1-{MAX_VENDOR_ID}, not {vendor_id}")
        self.vendor_id = vendor_id
        self._memo: BoundedMemo[str, int] = BoundedMemo(max_entries)
        # The range entries the last decision of a string walked: 0 when it walked none (a
        # memo hit, a bit field, a string refused first). The handler shares one request's
        # budget for costly reads with it (tracker.handlers).
        self.entries_read = 0

    def decide(self, gdpr: str | None, gdpr_consent: str | None) -> int:
        """CONSENT_NOT_APPLICABLE, CONSENT_GRANTED or CONSENT_DENIED (tracking_pb2 enum values).
        Sets `entries_read`."""
        self.entries_read = 0
        if gdpr is None:
            return NOT_APPLICABLE  # most requests: no memo, no decoding
        if gdpr != "1":
            return NOT_APPLICABLE if gdpr == "0" else DENIED
        if gdpr_consent is None or len(gdpr_consent) > MAX_TC_STRING:
            return DENIED  # too long to be a TC string: not even hashed for a lookup
        if len(gdpr_consent) <= MAX_REMEMBERED:
            known = self._memo.get(gdpr_consent)
            if known is not None:
                return known
        return self._decide_string(gdpr_consent)

    def _decide_string(self, tc_string: str) -> int:
        if self.vendor_id is None:
            return DENIED  # nobody can consent to a vendor we do not know we are
        if not tc_string.isascii():
            return DENIED  # never a memo key (and never base64url)
        answer = read_consent(tc_string, self.vendor_id, MEASURE_AD_PERFORMANCE)
        self.entries_read = answer.entries_read
        decision = GRANTED if answer.reading is Reading.GRANTED else DENIED
        if len(tc_string) <= MAX_REMEMBERED:
            self._memo.remember(tc_string, decision)
        return decision
