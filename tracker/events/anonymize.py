"""Client addresses in a form that is useful for geography and fraud checks but not personal."""

from __future__ import annotations

import ipaddress
import re

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"(?:{_OCTET}\.){{3}}{_OCTET}", re.ASCII)


def anonymize_ip(address: str | None) -> str:
    """IPv4 with the last octet zeroed, IPv6 reduced to its first 48 bits; '' when unparseable."""
    if not address:
        return ""
    if _IPV4.fullmatch(address):
        # The common case without ipaddress's cost.
        return address[: address.rfind(".")] + ".0"
    if ":" not in address:
        return ""  # not IPv4, and no IPv6 either: refused, not guessed at
    try:
        parsed = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return ""
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return anonymize_ip(str(parsed.ipv4_mapped))
    prefix = 24 if parsed.version == 4 else 48
    return str(ipaddress.ip_network(f"{parsed}/{prefix}", strict=False).network_address)
