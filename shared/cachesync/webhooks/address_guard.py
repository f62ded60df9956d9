"""The SSRF guard: a webhook URL may only lead to a public address.

A subscriber chooses the URL, so a URL naming (or resolving to) the instance metadata service,
a VPC-internal host or loopback would make cachesync an open proxy into its own network. The
host is resolved once, every address it resolves to is checked, and the connection goes to the
checked address (with the name as Host and TLS SNI): resolving again at connect time would let
a DNS answer with a short TTL swap a private address in after the check (DNS rebinding).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from cachesync.exceptions import UnsafeWebhookUrlError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[..., Sequence[tuple[Any, ...]]]

_DEFAULT_PORTS: Final = {"https": 443, "http": 80}


@dataclass(frozen=True)
class ResolvedTarget:
    """A checked webhook URL: the name to send as Host/SNI, and the address to connect to."""

    scheme: str
    host: str
    port: int
    path: str
    """Path and query, as sent in the request line."""
    address: str
    """The checked IP address the connection goes to."""


def forbidden_reason(address: IPAddress, *, allow_loopback: bool = False) -> str | None:
    """Why a webhook may not be sent to ``address``; ``None`` when it may."""
    if isinstance(address, ipaddress.IPv6Address):
        # ::ffff:10.0.0.1 reaches 10.0.0.1, and 6to4 (2002:a9fe:a9fe::) and Teredo addresses
        # carry an IPv4 address a relay may reach: judge the IPv4 address each carries.
        carried = address.ipv4_mapped or address.sixtofour or (address.teredo or (None, None))[1]
        if carried is not None:
            reason = forbidden_reason(carried, allow_loopback=allow_loopback)
            if reason is not None or address.ipv4_mapped is not None:
                return reason
    if address.is_loopback:
        return None if allow_loopback else "loopback"
    # Order matters: the metadata addresses are also link-local / private, named first.
    checks = (
        ("link-local (instance metadata)", address.is_link_local),
        ("unspecified", address.is_unspecified),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        # Shared (100.64/10), documentation, benchmarking, 6to4/Teredo relays and the like.
        ("not globally routable", not address.is_global),
    )
    return next((reason for reason, hit in checks if hit), None)


def resolve_target(
    url: str, *, allow_loopback: bool = False, resolver: Resolver = socket.getaddrinfo
) -> ResolvedTarget:
    """Check ``url``, resolve its host once and check every address; the first one to use.

    Raises :class:`UnsafeWebhookUrlError` for a URL that is not https (http only when loopback
    is allowed, i.e. the local stack), carries credentials, or leads to any address
    :func:`forbidden_reason` refuses (one bad address refuses the name: a resolver may rotate).
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme != "https" and not (scheme == "http" and allow_loopback):
        raise UnsafeWebhookUrlError(url, "https is required")
    if parts.username is not None or parts.password is not None:
        raise UnsafeWebhookUrlError(url, "credentials in the URL are not allowed")
    host = parts.hostname
    if not host:
        raise UnsafeWebhookUrlError(url, "no host")
    try:
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError as error:
        raise UnsafeWebhookUrlError(url, "invalid port") from error
    try:
        answers = resolver(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise UnsafeWebhookUrlError(url, f"cannot resolve {host}: {error}") from error
    addresses = [ipaddress.ip_address(str(answer[4][0]).split("%")[0]) for answer in answers]
    if not addresses:
        raise UnsafeWebhookUrlError(url, f"{host} resolves to no address")
    for address in addresses:
        reason = forbidden_reason(address, allow_loopback=allow_loopback)
        if reason is not None:
            raise UnsafeWebhookUrlError(url, f"{host} resolves to {address}: {reason}")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return ResolvedTarget(scheme=scheme, host=host, port=port, path=path, address=str(addresses[0]))


def check_url(url: str, *, allow_loopback: bool = False) -> None:
    """Refuse ``url`` now (at subscription time) if a delivery to it would be refused."""
    resolve_target(url, allow_loopback=allow_loopback)
