"""What the gateway lets through, as pure functions: paths, admin paths, upstreams, clients.

Every input here is hostile: paths come from clients, addresses and names from whoever can
write to Consul, and forwarding headers from clients unless a trusted proxy set them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from ipaddress import ip_address
from urllib.parse import unquote_to_bytes

from discovery.model import Service
from gateway.settings import IPNetwork

log = logging.getLogger(__name__)


def decoded(path: bytes) -> bytes:
    """*path* with its percent-escapes decoded, as most upstream frameworks will see it."""
    return unquote_to_bytes(path) if path.find(b"%") >= 0 else path


def has_dot_segment(path: bytes) -> bool:
    """Whether *path*, decoded, has a ``.`` or ``..`` segment (``%2e%2e``, ``..%2F`` too)."""
    # find() rather than "in": on bytes, "in" first tries its needle as an integer, and the
    # TypeError it raises and clears costs more than the search itself.
    if path.find(b".") < 0 and path.find(b"%") < 0:
        return False
    return any(segment in (b".", b"..") for segment in decoded(path).split(b"/"))


def is_admin_path(upstream_path: bytes) -> bool:
    """Whether a service would serve *upstream_path* from its ``/admin`` tree or ``/metrics``.

    Decoded and with empty segments skipped, as werkzeug routes it: ``/%61dmin/faults`` and
    ``//admin/faults`` are the fault knobs too. ``/metrics`` is for the operator's Prometheus,
    which scrapes instances directly, not for clients of the gateway.
    """
    lowered = (
        unquote_to_bytes(upstream_path) if upstream_path.find(b"%") >= 0 else upstream_path
    ).lower()
    if lowered.find(b"admin") < 0 and lowered.find(b"metrics") < 0:
        return False
    first = next((s for s in lowered.split(b"/") if s), b"")
    return first in (b"admin", b"metrics")


def within(address: str, networks: tuple[IPNetwork, ...]) -> bool:
    """Whether *address* is an IP address inside one of *networks* (a host name never is)."""
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def routable(
    services: Mapping[str, Service], networks: tuple[IPNetwork, ...]
) -> Mapping[str, Service]:
    """*services* without the instances whose address is outside *networks* (none: all pass)."""
    if not networks:
        return services
    kept: dict[str, Service] = {}
    for name, service in services.items():
        allowed = [i for i in service.instances if within(i.address, networks)]
        if len(allowed) != len(service.instances):
            refused = sorted(i.id for i in service.instances if i not in allowed)
            log.warning("%s: not routing %s: address outside GATEWAY_UPSTREAM_CIDRS", name, refused)
            kept[name] = Service.of(name, allowed)
        else:
            kept[name] = service
    return kept


def client_address(peer: str, forwarded_for: bytes, trusted_hops: int) -> str:
    """The client's address: the peer, or the entry the nearest trusted proxy added.

    With *trusted_hops* proxies in front, the last *trusted_hops* entries of
    ``X-Forwarded-For`` were written by them; the one before is the client they saw. Entries
    further left were written by the client itself and are never believed.
    """
    if trusted_hops == 0 or not forwarded_for:
        return peer
    entries = [e.strip() for e in forwarded_for.decode("latin-1").split(",")]
    chain = [*entries, peer]
    candidate = chain[-(trusted_hops + 1)] if len(chain) > trusted_hops else chain[0]
    try:
        return str(ip_address(candidate))
    except ValueError:
        return peer


def admin_host_allowed(host: bytes, names: frozenset[str]) -> bool:
    """Whether a ``Host`` header names the admin listener itself (the check without a token).

    DNS rebinding points a name the attacker owns at the victim's own address: a page from
    ``evil.example`` then reads ``http://evil.example:9090/`` as its own origin, and the request
    reaches the admin listener with ``Host: evil.example:9090``. So a request must name the
    listener by an IP address (a browser sends one only when the page's own address is that
    address, where the same-origin policy holds), ``localhost`` or a name under it (browsers
    resolve those to loopback themselves), or one of *names* (this host's name and
    ``GATEWAY_ADMIN_HOSTS``). Any port. A request without ``Host`` (HTTP/1.0) is no browser's.
    """
    if not host:
        return True
    text = host.decode("latin-1").lower()
    if text.startswith("["):  # an IPv6 literal: [::1] or [::1]:9090
        literal, bracket, port = text[1:].partition("]")
        return bracket == "]" and _is_port(port) and _is_ip(literal, 6)
    name, colon, port = text.partition(":")
    if not _is_port(colon + port):
        return False
    name = name.removesuffix(".")
    return _is_ip(name, 4) or name == "localhost" or name.endswith(".localhost") or name in names


def _is_port(suffix: str) -> bool:
    """Whether *suffix* may follow a host in ``Host``: nothing, or ``:`` and up to 5 digits."""
    if not suffix:
        return True
    digits = suffix[1:]
    return suffix[0] == ":" and len(digits) <= 5 and (digits.isascii() and digits.isdigit())


def _is_ip(text: str, version: int) -> bool:
    try:
        return ip_address(text).version == version
    except ValueError:
        return False
