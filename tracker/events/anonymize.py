"""Client addresses in a form that is useful for geography and fraud checks but not personal."""

from __future__ import annotations

import ipaddress


def anonymize_ip(address: str | None) -> str:
    """IPv4 with the last octet zeroed, IPv6 reduced to its first 48 bits; '' when unparseable."""
    if not address:
        return ""
    if address.count(".") == 3 and ":" not in address:
        head, _, tail = address.rpartition(".")
        # Cheap path for the common case; ipaddress validates only if the shape looks odd.
        if tail.isdigit() and len(tail) <= 3 and head.replace(".", "").isdigit():
            return head + ".0"
    try:
        parsed = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return ""
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return anonymize_ip(str(parsed.ipv4_mapped))
    prefix = 24 if parsed.version == 4 else 48
    return str(ipaddress.ip_network(f"{parsed}/{prefix}", strict=False).network_address)
