"""Client addresses in a form that is useful for geography and fraud checks but not personal."""

from __future__ import annotations

import ipaddress


def anonymize_ip(address: str | None) -> str:
    """IPv4 with the last octet zeroed, IPv6 reduced to its first 48 bits; '' when unparseable."""
    if not address:
        return ""
    octets = address.split(".")
    if len(octets) == 4 and ":" not in address:
        # The common case without ipaddress's cost; anything odd is refused, not guessed at.
        if all(_is_octet(octet) for octet in octets):
            return f"{octets[0]}.{octets[1]}.{octets[2]}.0"
        return ""
    try:
        parsed = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return ""
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return anonymize_ip(str(parsed.ipv4_mapped))
    prefix = 24 if parsed.version == 4 else 48
    return str(ipaddress.ip_network(f"{parsed}/{prefix}", strict=False).network_address)


def _is_octet(text: str) -> bool:
    return (
        0 < len(text) <= 3
        and text.isascii()
        and text.isdigit()
        and int(text) <= 255
        and (text == "0" or text[0] != "0")
    )
