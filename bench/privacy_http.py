"""The privacy part's HTTP cases: the pixel with no privacy parameter, with consent granted and a
uid, and with Sec-GPC, on one tracker whose settings let every privacy branch happen; and what
that tracker decided for the requests it served."""

from __future__ import annotations

from collections.abc import Callable

from bench.cases import Case
from bench.consent_strings import granted_string
from bench.demo_programs import DEMO_PIXEL
from bench.metrics_probe import metric_value, scrape
from bench.privacy_inputs import USER_ID, USER_ID_KEY_TEXT, VENDOR_ID

# The privacy part's tracker: a TCF vendor id and a USER_ID_KEY, so that consent can be granted
# and a uid hashed (both unset by default, when neither can happen).
PRIVACY_SETTINGS = {"TCF_VENDOR_ID": str(VENDOR_ID), "USER_ID_KEY": USER_ID_KEY_TEXT}
# (key in the report, metric, labels): what the tracker decided for the requests it served.
PRIVACY_COUNTERS = (
    (
        "consent_not_applicable",
        "tracker_consent_requests_total",
        'consent="CONSENT_NOT_APPLICABLE"',
    ),
    ("consent_granted", "tracker_consent_requests_total", 'consent="CONSENT_GRANTED"'),
    ("consent_denied", "tracker_consent_requests_total", 'consent="CONSENT_DENIED"'),
    ("opted_out", "tracker_opted_out_requests_total", ""),
    ("visitor_id_unavailable", "tracker_visitor_id_unavailable_total", ""),
    ("visitor_secret_failures", "tracker_visitor_secret_failures_total", ""),
)


def privacy_cases() -> list[Case]:
    """The defaults, consent granted with a uid, and GPC. The TC string is a realistic one
    (purposes 1-10, ~500 vendors as a bit field, 755 among them); after the first request its
    decision comes from the memo, but its ~280 characters are parsed with every query."""
    consent = f"{DEMO_PIXEL}&gdpr=1&gdpr_consent={granted_string()}&uid={USER_ID}"
    return [
        Case("pixel, cached valid", DEMO_PIXEL, 100, 1),
        Case("pixel, consent granted + uid", consent, 100, 1),
        Case("pixel, GPC", DEMO_PIXEL, 100, 1, headers=("Sec-GPC: 1",)),
    ]


def counter_reader(counters: dict[str, float]) -> Callable[[str], None]:
    """Reads PRIVACY_COUNTERS from a tracker's /metrics URL into `counters`."""

    def read(metrics: str) -> None:
        text = scrape(metrics)
        for key, name, labels in PRIVACY_COUNTERS:
            counters[key] = metric_value(text, name, labels)

    return read
