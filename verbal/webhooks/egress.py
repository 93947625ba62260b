"""The egress policy: where Verbal's outbound requests may go.

App URLs and status callbacks are written by tenants, so without a policy every account could
make the server fetch its cloud's metadata service or probe the networks it sits on. Every
outbound request (app fetches and each redirect they follow, status callbacks, anything else
`HttpClient` sends) passes two checks, both before a connection is opened:

- the URL (`check_url`): http or https, no credentials in it, a host name not denied, and a
  host that is not an odd numeric form (`0x7f000001`, `2130706433`, `0177.0.0.1`, `127.1`),
  which resolvers read as addresses behind the back of a policy that reads names;
- every address the host resolves to (`check_address`), in the resolver whose answer the
  connection then uses, so a name cannot answer one address to the check and another to the
  connection (DNS rebinding). IPv4-mapped IPv6 addresses are judged as the IPv4 address they
  reach.

Addresses: the allow list wins, then the deny list, then the built-in denials (link-local
networks and the cloud metadata addresses outside them), then loopback and private networks
when switched off. Host names: the allow list wins over the deny list and the built-in
metadata names; a name that passes still needs its addresses to pass. A host entry matches
the name and its subdomains.

Credentials in a URL (`https://user:secret@host/`) are refused rather than stripped: they
would be stored in the session log and shown in the console, and sent again to wherever a
redirect leads; stripping them would instead turn a working app into a puzzling 401.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

# Verbal's own code, the same in every dialect and in callback attempts: no platform has a
# number for a request refused by its own policy. It sits in the 7001-7099 block that no
# platform Verbal imitates uses (verbal/dialects/tropo.py says why that block).
EGRESS_REFUSED = 7006

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Denied unless allowed by name: link-local networks (169.254.169.254 is where AWS, GCP, Azure,
# OpenStack, DigitalOcean and Oracle serve instance metadata and credentials) and the metadata
# addresses outside them.
DENIED_NETWORKS: tuple[Network, ...] = tuple(
    ipaddress.ip_network(network)
    for network in (
        "169.254.0.0/16",  # IPv4 link-local
        "fe80::/10",  # IPv6 link-local
        "fd00:ec2::254/128",  # AWS instance metadata over IPv6
        "100.100.100.200/32",  # Alibaba Cloud metadata
        "168.63.129.16/32",  # Azure WireServer
    )
)
DENIED_HOSTS: tuple[str, ...] = (
    "metadata.google.internal",
    "metadata.goog",
    "metadata",
    "instance-data",
    "instance-data.ec2.internal",
)
LOOPBACK_NETWORKS: tuple[Network, ...] = tuple(
    # 0.0.0.0 and :: reach the local host when connected to.
    ipaddress.ip_network(network)
    for network in ("127.0.0.0/8", "0.0.0.0/8", "::1/128", "::/128")
)
PRIVATE_NETWORKS: tuple[Network, ...] = tuple(
    ipaddress.ip_network(network)
    for network in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)


class EgressRefused(Exception):
    """The policy refused an outbound request; `message` says which rule and why."""

    code = EGRESS_REFUSED

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"egress refused ({self.code}): {self.message}"


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    allow_networks: tuple[Network, ...] = ()
    deny_networks: tuple[Network, ...] = ()
    allow_hosts: tuple[str, ...] = ()
    deny_hosts: tuple[str, ...] = ()
    allow_loopback: bool = True
    allow_private: bool = True

    @classmethod
    def from_entries(
        cls,
        allow: Iterable[str] = (),
        deny: Iterable[str] = (),
        *,
        allow_loopback: bool = True,
        allow_private: bool = True,
    ) -> EgressPolicy:
        """A policy from the settings' lists, whose entries are networks (`10.1.0.0/16`),
        addresses, or host names; raises ValueError for an entry that is none of these."""
        allow_networks, allow_hosts = _split(allow)
        deny_networks, deny_hosts = _split(deny)
        return cls(
            allow_networks, deny_networks, allow_hosts, deny_hosts, allow_loopback, allow_private
        )

    def check_url(self, url: str) -> None:
        """Raise EgressRefused unless `url` may be requested (its addresses are checked
        when it is resolved)."""
        parts = urlsplit(url)
        refusal = _verdict(self, parts.scheme, parts.netloc)
        if refusal is not None:
            raise EgressRefused(refusal)

    def _judge_origin(self, scheme: str, netloc: str) -> str | None:
        """Why a URL with this scheme and authority is refused, or None."""
        if scheme not in ("http", "https"):
            return f"only http and https URLs are fetched, not {scheme!r}"
        if "@" in netloc:
            return "credentials in a URL are refused (they would be logged)"
        host = _normal_host(urlsplit(f"//{netloc}").hostname or "")
        if not host:
            return "the URL has no host"
        address = _literal(host)
        if address is not None:
            try:
                self.check_address(address)
            except EgressRefused as refused:
                return refused.message
            return None
        if _odd_number(host):
            return f"{host!r} is a numeric address in an unusual form"
        if _matches(host, self.allow_hosts):
            return None
        if _matches(host, self.deny_hosts):
            return f"the host {host} is in the deny list"
        if _matches(host, DENIED_HOSTS):
            return f"the host {host} is a cloud metadata service"
        return None

    def check_address(self, address: str | Address) -> None:
        """Raise EgressRefused unless a connection to `address` is allowed."""
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if _within(ip, self.allow_networks):
            return
        if (network := _within(ip, self.deny_networks)) is not None:
            raise EgressRefused(f"{ip} is in the denied network {network}")
        if (network := _within(ip, DENIED_NETWORKS)) is not None:
            raise EgressRefused(f"{ip} is in {network} (link-local or cloud metadata)")
        if not self.allow_loopback and _within(ip, LOOPBACK_NETWORKS) is not None:
            raise EgressRefused(f"{ip} is a loopback address, and loopback is not allowed")
        if not self.allow_private and _within(ip, PRIVATE_NETWORKS) is not None:
            raise EgressRefused(f"{ip} is in a private network, and those are not allowed")


# What a name resolves to, as (family, address) pairs: the system's resolver, or a test's.
Lookup = Callable[[str, int, int], Awaitable[list[tuple[int, str]]]]


async def system_lookup(host: str, port: int, family: int) -> list[tuple[int, str]]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, family=family, type=socket.SOCK_STREAM
    )
    return [(info[0], str(info[4][0])) for info in infos]


async def resolve(
    policy: EgressPolicy,
    host: str,
    port: int,
    family: int = socket.AF_UNSPEC,
    lookup: Lookup = system_lookup,
) -> list[tuple[int, str]]:
    """`host`'s addresses as (family, address), every one of them checked: the only
    addresses a connection may then use. Raises EgressRefused, or OSError when the name does
    not resolve."""
    address = _literal(_normal_host(host))
    if address is not None:
        policy.check_address(address)
        return [(socket.AF_INET6 if address.version == 6 else socket.AF_INET, str(address))]
    found: list[tuple[int, str]] = []
    for pair in await lookup(host, port, family):
        policy.check_address(pair[1])
        if pair not in found:
            found.append(pair)
    if not found:
        raise OSError(f"{host} has no address")
    return found


@functools.lru_cache(maxsize=4096)
def _verdict(policy: EgressPolicy, scheme: str, netloc: str) -> str | None:
    # Status callbacks check every request, mostly to a few origins: judge each once.
    return policy._judge_origin(scheme, netloc)


def _split(entries: Iterable[str]) -> tuple[tuple[Network, ...], tuple[str, ...]]:
    networks: list[Network] = []
    hosts: list[str] = []
    for entry in entries:
        text = entry.strip()
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            host = _normal_host(text)
            if not host or "/" in host or ":" in host or " " in host:
                raise ValueError(f"{entry!r} is neither a network nor a host name") from None
            hosts.append(host)
    return tuple(networks), tuple(hosts)


def _normal_host(host: str) -> str:
    # "Metadata.Google.Internal." names the same host as the entry without the root dot.
    return host.strip().lower().rstrip(".").strip("[]")


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _odd_number(host: str) -> bool:
    """Whether the C resolver reads `host` as an IPv4 address that is not written as one."""
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    return True


def _matches(host: str, entries: tuple[str, ...]) -> bool:
    return any(host == entry or host.endswith("." + entry) for entry in entries)


def _within(ip: Address, networks: tuple[Network, ...]) -> Network | None:
    for network in networks:
        if ip.version == network.version and ip in network:
            return network
    return None
