"""Outbound URL guard: refuse loopback, private and link-local targets unless explicitly allowed."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit


class UnsafeURLError(ValueError):
    """An outbound URL points somewhere this deployment may not call."""


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_url_syntax(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UnsafeURLError(f"only http and https URLs are allowed, not {parts.scheme!r}")
    if not parts.hostname:
        raise UnsafeURLError("URL has no host")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.hostname, port


async def check_outbound_url(url: str, *, allow_private: bool) -> None:
    """Raise UnsafeURLError unless every address the host resolves to is public (or allowed)."""
    host, port = check_url_syntax(url)
    if allow_private:
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnsafeURLError(f"cannot resolve host {host!r}") from exc
    for info in infos:
        address = str(info[4][0])
        if not _is_public(address):
            raise UnsafeURLError(
                f"{host!r} resolves to non-public address {address}; "
                "set DEEPLOYD_ALLOW_PRIVATE_URLS=true to allow it"
            )
