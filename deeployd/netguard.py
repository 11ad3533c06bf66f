"""Outbound address guard: refuse loopback, private and link-local targets unless explicitly allowed.

Every outbound path (webhooks, analytics and notification destinations, the `http_request` tool
and each of its redirect hops, A2A push configs and remote agents, agent `baseUrl`, the voice
provider, database DSN hosts) goes through `check_host` — `check_outbound_url` is `check_host`
for a URL. An IPv6 address that embeds an IPv4 address is judged by the IPv4 address it
carries: IPv4-mapped `::ffff:0:0/96`, IPv4-compatible `::/96`, NAT64 `64:ff9b::/96`, 6to4
`2002::/16` and Teredo `2001::/32` (server and client). The local-use NAT64 prefix
`64:ff9b:1::/48` is never public.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
_TEREDO = ipaddress.ip_network("2001::/32")


class UnsafeURLError(ValueError):
    """An outbound URL points somewhere this deployment may not call."""


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address] | None:
    """The IPv4 address(es) an IPv6 address carries, or None when it embeds none."""
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    if ip in _IPV4_COMPATIBLE or ip in _NAT64:
        return [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    if ip in _SIX_TO_FOUR:
        return [ipaddress.IPv4Address((int(ip) >> 80) & 0xFFFFFFFF)]
    if ip in _TEREDO and ip.teredo is not None:
        server, client = ip.teredo
        return [server, client]
    return None


def is_public_address(address: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True when `address` (and any IPv4 address embedded in it) is a public unicast address."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return False
        if ip in _NAT64_LOCAL:
            return False
        embedded = embedded_ipv4(ip)
        if embedded is not None:
            return all(is_public_address(v4) for v4 in embedded)
    return ip.is_global and not ip.is_multicast


def check_url_syntax(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UnsafeURLError(f"only http and https URLs are allowed, not {parts.scheme!r}")
    if not parts.hostname:
        raise UnsafeURLError("URL has no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeURLError(f"invalid port: {exc}") from None
    return parts.hostname, port


async def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (an IP literal resolves to itself)."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeURLError(f"cannot resolve host {host!r}") from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def check_host(host: str, port: int, *, allow_private: bool) -> None:
    """The guard: raise UnsafeURLError unless every address `host` resolves to is public
    (or private addresses are allowed)."""
    if allow_private:
        return
    for address in await resolve(host, port):
        if not is_public_address(address):
            raise UnsafeURLError(
                f"{host!r} resolves to non-public address {address}; "
                "set DEEPLOYD_ALLOW_PRIVATE_URLS=true to allow it"
            )


async def check_outbound_url(url: str, *, allow_private: bool) -> None:
    """Raise UnsafeURLError unless every address the URL's host resolves to is public (or allowed)."""
    host, port = check_url_syntax(url)
    await check_host(host, port, allow_private=allow_private)
