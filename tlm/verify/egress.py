"""What an external verifier may reach and send: allowed hosts, environment variables, redaction.

An ``external`` verification endpoint receives the task's input and output, and its headers may
expand ``${VAR}`` from the environment. A definition is data anyone may hand you, so by default:

* **hosts**: only loopback (``localhost``, ``127.0.0.0/8``, ``::1``) may be called; every other
  host must be in ``external_hosts``. Entries: ``host``, ``*.domain`` (any subdomain), an IP
  address or network (``10.0.0.0/8``), each optionally with ``:port``; ``*`` allows any host.
  Link-local and cloud metadata addresses (``169.254.0.0/16``, ``fe80::/10``, ``fd00:ec2::254``,
  ``metadata.google.internal``, ...) are refused unless an entry names that exact host or address
  — a wildcard or a network never unlocks them — and a host name is refused when it *resolves*
  to one of them (unless that address is named); the sessions TLM opens check every DNS answer.
* **environment**: ``${VAR}`` in a header expands only when ``VAR`` is in ``external_env``.
* **redirects**: only to the same scheme, host and port; a redirect elsewhere is not followed.
* **redaction**: the payload's redacted fields are masked unless the endpoint's host (or the
  registered function's name) is in ``external_unredacted``.

``tlm.toml``::

    [tlm]
    external_hosts = ["verify.example.com", "*.corp.example:8443"]
    external_env = ["MY_VERIFIER_TOKEN"]
    external_unredacted = ["verify.example.com"]
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import aiohttp
import aiohttp.abc
import anyio
import attrs

from tlm.errors import Problem
from tlm.verify.methods import steps_of
from tlm.verify.params import ExternalParams, VerificationSpec

if TYPE_CHECKING:
    from tlm.definition.model import TaskDefinition

__all__ = (
    "ENV_REFERENCE",
    "ExternalPolicy",
    "EgressRefused",
    "egress_warnings",
    "is_metadata_host",
    "same_origin",
)

ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
"""``${VAR}`` in a header value."""

_METADATA_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "169.254.0.0/16",  # IPv4 link-local: AWS, GCP, Azure, OpenStack metadata
        "fe80::/10",  # IPv6 link-local
        "fd00:ec2::254/128",  # AWS metadata over IPv6
        "100.100.100.200/32",  # Alibaba Cloud metadata
        "168.63.129.16/32",  # Azure wire server
    )
)
_METADATA_NAMES = frozenset(
    {
        "metadata.google.internal",
        "metadata.goog",
        "metadata",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.azure.internal",
    }
)
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class EgressRefused(Exception):
    """The policy forbids this request; the message says why and how to allow it."""


def _address(host: str) -> Address | None:
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_metadata_address(address: Address) -> bool:
    return any(address in network for network in _METADATA_NETWORKS)


def is_metadata_host(host: str) -> bool:
    """Whether ``host`` (a name or an address literal) is link-local or a metadata service."""
    name = host.lower().rstrip(".").strip("[]")
    if name in _METADATA_NAMES:
        return True
    address = _address(name)
    return address is not None and _is_metadata_address(address)


def _is_loopback(host: str) -> bool:
    name = host.lower().rstrip(".")
    if name in _LOOPBACK_NAMES:
        return True
    address = _address(name)
    return address is not None and address.is_loopback


@attrs.frozen
class _HostRule:
    host: str
    """A lower-case name, ``*.suffix``, ``*``, an address or a network."""
    port: int | None

    @classmethod
    def parse(cls, entry: str) -> _HostRule:
        text = entry.strip().lower()
        port: int | None = None
        if text.startswith("["):  # [IPv6]:port
            text, _, rest = text[1:].partition("]")
            if rest.startswith(":") and rest[1:].isdigit():
                port = int(rest[1:])
        elif text.count(":") == 1:  # host:port (a bare IPv6 address has several colons)
            host, _, number = text.partition(":")
            if number.isdigit():
                text, port = host, int(number)
        return cls(text.rstrip("."), port)

    def names(self, host: str, port: int) -> bool:
        """Whether this entry names exactly ``host`` (no wildcard, no network)."""
        if self.port is not None and self.port != port:
            return False
        if self.host == host:
            return True
        mine, theirs = _address(self.host), _address(host)
        return mine is not None and mine == theirs

    def allows(self, host: str, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.host in ("*", host):
            return True
        if self.host.startswith("*.") and host.endswith(self.host[1:]):
            return True
        address = _address(host)
        if address is None:
            return False
        try:
            return address in ipaddress.ip_network(self.host, strict=False)
        except ValueError:
            return False


def _texts(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(items)


def _names(items: Iterable[str]) -> frozenset[str]:
    return frozenset(items)


def _lower_names(items: Iterable[str]) -> frozenset[str]:
    return frozenset(item.lower() for item in items)


@attrs.frozen
class ExternalPolicy:
    """The allow-lists an external verifier runs under (see the module docstring).

    The default allows loopback hosts only, no environment variable and no unredacted payload.
    """

    hosts: tuple[str, ...] = attrs.field(default=(), converter=_texts)
    """Allowed hosts besides loopback (``external_hosts``)."""
    env: frozenset[str] = attrs.field(default=frozenset(), converter=_names)
    """Environment variables headers may expand (``external_env``)."""
    unredacted: frozenset[str] = attrs.field(default=frozenset(), converter=_lower_names)
    """Endpoint hosts and function names that receive redacted fields as they are."""
    redact: frozenset[str] = attrs.field(default=frozenset(), converter=_names)
    """The configured redacted field names."""
    environ: Mapping[str, str] = attrs.field(factory=lambda: os.environ, repr=False)
    """Where ``${VAR}`` is read from, at call time (default: the process environment)."""
    _rules: tuple[_HostRule, ...] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_rules", tuple(_HostRule.parse(h) for h in self.hosts))

    # --- hosts ----------------------------------------------------------------------------------

    def host_problem(self, url: str) -> str | None:
        """Why ``url`` may not be called (without resolving its name), or ``None``."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            return f"{url!r} is not a valid URL ({exc})"
        if parts.scheme not in ("http", "https"):
            return f"{url!r} is not an http(s) URL"
        host = (parts.hostname or "").rstrip(".")
        if not host:
            return f"{url!r} has no host"
        port = port or (443 if parts.scheme == "https" else 80)
        if is_metadata_host(host):
            if any(rule.names(host, port) for rule in self._rules):
                return None
            return (
                f"{host} is a link-local or cloud metadata address; refused unless "
                "external_hosts names it exactly"
            )
        if _is_loopback(host) or any(rule.allows(host, port) for rule in self._rules):
            return None
        return (
            f"host {host} is not allowed for external verification "
            f"(add it to external_hosts in tlm.toml; loopback is always allowed)"
        )

    async def check_url(self, url: str) -> None:
        """Refuse ``url`` unless its host is allowed and does not resolve to a metadata address.

        Raises:
            EgressRefused: with the reason.
        """
        problem = self.host_problem(url)
        if problem is not None:
            raise EgressRefused(problem)
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".")
        if _address(host) is not None:
            return
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            return  # the request itself reports the failure to resolve
        self.check_addresses(host, port, [str(info[4][0]) for info in infos])

    def check_addresses(self, host: str, port: int, addresses: Iterable[str]) -> None:
        """Refuse link-local or metadata addresses ``host`` resolved to, unless the allow-list
        names that address exactly (or ``host`` is a metadata name it names exactly).

        Raises:
            EgressRefused: with the reason.
        """
        name = host.lower().rstrip(".")
        if _address(name) is not None:
            return  # a literal address was checked as such
        if is_metadata_host(name) and any(r.names(name, port) for r in self._rules):
            return
        for text in addresses:
            address = _address(text.split("%")[0])
            if address is None or not _is_metadata_address(address):
                continue
            if not any(r.names(str(address), port) for r in self._rules):
                raise EgressRefused(
                    f"host {host} resolves to {address}, a link-local or cloud metadata "
                    "address; refused unless external_hosts names it exactly"
                )

    def session(self) -> aiohttp.ClientSession:
        """An HTTP session whose every name resolution is checked by :meth:`check_addresses`
        (the addresses connected to are the ones checked: a second, different DNS answer cannot
        slip through)."""
        connector = aiohttp.TCPConnector(resolver=_GuardedResolver(self))
        return aiohttp.ClientSession(connector=connector)

    # --- environment and redaction --------------------------------------------------------------

    def expand(self, value: str) -> tuple[str, list[str]]:
        """``value`` with each allowed ``${VAR}`` expanded, and the values used (secrets).

        Raises:
            EgressRefused: a variable is not allowed, or not set.
        """
        used: list[str] = []

        def lookup(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in self.env:
                raise EgressRefused(
                    f"environment variable {name} (used in a header) is not allowed: add it to "
                    "external_env in tlm.toml"
                )
            found = self.environ.get(name)
            if found is None:
                raise EgressRefused(f"environment variable {name} (used in a header) is not set")
            if found:
                used.append(found)
            return found

        return ENV_REFERENCE.sub(lookup, value), used

    def reveals_to(self, *, url: str | None = None, function: str | None = None) -> bool:
        """Whether this endpoint or function receives redacted fields unmasked."""
        if function is not None:
            return function.lower() in self.unredacted
        host = (urlsplit(url or "").hostname or "").rstrip(".")
        return bool(host) and host in self.unredacted


class _GuardedResolver(aiohttp.abc.AbstractResolver):
    """aiohttp's resolver, refusing link-local and metadata answers the policy does not allow."""

    def __init__(self, policy: ExternalPolicy) -> None:
        self._inner = aiohttp.ThreadedResolver()
        self._policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        try:
            self._policy.check_addresses(host, port, [entry["host"] for entry in found])
        except EgressRefused as exc:
            raise OSError(str(exc)) from None
        return found

    async def close(self) -> None:
        await self._inner.close()


def same_origin(first: str, second: str) -> bool:
    """Whether two URLs share scheme, host and port."""

    def origin(url: str) -> tuple[str, str | None, int | None]:
        parts = urlsplit(url)
        port = (
            parts.port if parts.port is not None else {"http": 80, "https": 443}.get(parts.scheme)
        )
        return parts.scheme, parts.hostname, port

    return origin(first) == origin(second)


# --- static warnings (tlm validate-task) ---------------------------------------------------------


def _external_specs(spec: VerificationSpec, at: str) -> Iterator[tuple[ExternalParams, str]]:
    params = spec.parameters
    if isinstance(params, ExternalParams):
        yield params, f"{at}.parameters"
    for i, step in enumerate(steps_of(spec)):
        yield from _external_specs(step, f"{at}.parameters.steps[{i}]")


def egress_warnings(definition: TaskDefinition, policy: ExternalPolicy) -> list[Problem]:
    """What the definition's external verifiers would be refused under ``policy``, located."""
    source = definition.source or ""
    warnings: list[Problem] = []
    for params, at in _external_specs(definition.verification, "$.verification"):
        if params.endpoint is not None:
            problem = policy.host_problem(params.endpoint)
            if problem is not None:
                warnings.append(Problem(source, f"{at}.endpoint", problem))
        for name, value in params.headers.items():
            for variable in dict.fromkeys(ENV_REFERENCE.findall(value)):
                if variable not in policy.env:
                    warnings.append(
                        Problem(
                            source,
                            f"{at}.headers.{name}",
                            f"expands environment variable {variable}, which is not in "
                            "external_env (tlm.toml): the header will be refused",
                        )
                    )
    return warnings
