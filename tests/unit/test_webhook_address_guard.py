"""The SSRF guard: which addresses a webhook may be sent to, checked after resolution."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest

from cachesync.exceptions import UnsafeWebhookUrlError
from cachesync.webhooks.address_guard import forbidden_reason, resolve_target


def resolver_to(*addresses: str) -> Any:
    """A getaddrinfo stand-in answering every name with ``addresses``."""

    def resolve(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        return [
            (
                socket.AF_INET6 if ":" in address else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (address, port),
            )
            for address in addresses
        ]

    return resolve


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "link-local"),  # EC2/ECS instance metadata
        ("169.254.170.2", "link-local"),  # ECS task metadata
        ("fe80::1", "link-local"),
        ("fd00:ec2::254", "private"),  # EC2 metadata over IPv6 (a ULA)
        ("2002:a9fe:a9fe::1", "link-local"),  # 6to4 carrying 169.254.169.254
        ("2002:a00:1::1", "private"),  # 6to4 carrying 10.0.0.1
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 - judged, never bound
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "not globally routable"),  # carrier-grade NAT
        ("192.0.2.1", "private"),  # documentation (TEST-NET-1)
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped forms of the above
        ("::ffff:169.254.169.254", "link-local"),
        ("::ffff:10.0.0.1", "private"),
    ],
)
def test_non_public_addresses_are_refused(address: str, reason: str) -> None:
    # Given a non-public address
    ip = ipaddress.ip_address(address)
    # When the guard judges it
    verdict = forbidden_reason(ip)
    # Then it is refused, for the named class
    assert verdict is not None
    assert verdict.startswith(reason)


@pytest.mark.parametrize(
    "address", ["93.184.215.14", "8.8.8.8", "2606:4700::1111", "2002:808:808::1"]
)
def test_public_addresses_are_allowed(address: str) -> None:
    # Given a public address
    # When the guard judges it
    # Then it is allowed
    assert forbidden_reason(ipaddress.ip_address(address)) is None


def test_loopback_is_allowed_only_when_the_local_stack_says_so() -> None:
    # Given loopback addresses and a private one
    # When loopback is allowed
    # Then loopback passes (mapped form too) and private addresses still do not
    assert forbidden_reason(ipaddress.ip_address("127.0.0.1"), allow_loopback=True) is None
    assert forbidden_reason(ipaddress.ip_address("::1"), allow_loopback=True) is None
    assert forbidden_reason(ipaddress.ip_address("::ffff:127.0.0.1"), allow_loopback=True) is None
    assert forbidden_reason(ipaddress.ip_address("10.0.0.1"), allow_loopback=True) == "private"
    assert forbidden_reason(ipaddress.ip_address("169.254.169.254"), allow_loopback=True)


def test_a_name_is_checked_after_resolution_and_pinned_to_the_checked_address() -> None:
    # Given a public name
    url = "https://hooks.example.com:8443/in?x=1"
    # When it is resolved
    target = resolve_target(url, resolver=resolver_to("93.184.215.14"))
    # Then the connection goes to that address, with the name kept for Host and SNI
    assert (target.host, target.port, target.address) == (
        "hooks.example.com",
        8443,
        "93.184.215.14",
    )
    assert target.path == "/in?x=1"


def test_a_name_resolving_to_metadata_is_refused() -> None:
    # Given a harmless-looking name that resolves to the instance metadata service
    # When it is resolved
    # Then it is refused, naming the address
    with pytest.raises(UnsafeWebhookUrlError, match=r"169\.254\.169\.254"):
        resolve_target("https://rebind.example.com/", resolver=resolver_to("169.254.169.254"))


def test_one_private_address_among_public_ones_refuses_the_name() -> None:
    # Given a name with a public and a private address (a rotating resolver could pick either)
    resolver = resolver_to("93.184.215.14", "10.0.0.7")
    # When it is resolved
    # Then it is refused
    with pytest.raises(UnsafeWebhookUrlError, match=r"10\.0\.0\.7"):
        resolve_target("https://mixed.example.com/", resolver=resolver)


@pytest.mark.parametrize(
    ("url", "allow_loopback", "message"),
    [
        ("http://hooks.example.com/", False, "https is required"),
        ("ftp://hooks.example.com/", True, "https is required"),
        ("https://user:pw@hooks.example.com/", False, "credentials"),
        ("https:///nohost", False, "no host"),
        ("https://[::1]/", False, "loopback"),
        ("https://127.0.0.1/", False, "loopback"),
        ("https://0x7f000001/", False, "loopback"),  # an integer spelling of 127.0.0.1
    ],
)
def test_urls_refused_before_or_at_resolution(url: str, allow_loopback: bool, message: str) -> None:
    # Given a URL that must not be delivered to
    # When it is checked (real getaddrinfo: literals resolve without DNS)
    # Then it is refused with the reason
    with pytest.raises(UnsafeWebhookUrlError, match=message):
        resolve_target(url, allow_loopback=allow_loopback)


def test_plain_http_to_loopback_passes_on_the_local_stack() -> None:
    # Given the local stack's setting
    # When a loopback http URL is checked
    target = resolve_target("http://127.0.0.1:9999/hook", allow_loopback=True)
    # Then it is allowed, to that address
    assert (target.scheme, target.address, target.port) == ("http", "127.0.0.1", 9999)
