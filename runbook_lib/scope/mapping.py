"""From what a sign-in shows to the inventory hosts it may have come from, and back to a ``--limit`` expression.

A sign-in's ``ipAddress`` is the public egress address Entra saw (often a NAT or proxy shared by many hosts), and
``deviceDetail.displayName`` is filled only for joined or registered devices. So the operator says where each host
leaves from (``tls_runbook_egress``: addresses and CIDR ranges, per host or per group) and device names are matched
to host names, short or fully qualified, without regard to case. An address inside several hosts' ranges maps to
all of them: each is a candidate, and running the runbook on a healthy host changes nothing.
"""

from __future__ import annotations

import ipaddress
from ..core.errors import InputError, RunbookError
from ..remote.inventory import Inventory
from .records import SignIn

MAPPED_KINDS = ("ip", "device")


class HostMap:
    """Host names for the ip and device entities of one inventory."""

    def __init__(self, inventory: Inventory):
        self.inventory = inventory
        self._networks = [(host.name, [ipaddress.ip_network(n) for n in host.egress]) for host in inventory.hosts]

    def hosts_for(self, kind: str, key: str) -> tuple[str, ...]:
        if kind == "ip":
            return self._by_address(key)
        if kind == "device":
            return self._by_name(key)
        return ()

    def hosts_of(self, record: SignIn) -> set[str]:
        """Every host a sign-in may have come from, by its address and its device."""
        return {*self._by_address(record.ip), *self._by_name(record.device)}

    def _by_address(self, text: str) -> tuple[str, ...]:
        try:
            address = ipaddress.ip_address(text.strip())
        except ValueError:
            return ()
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        return tuple(name for name, networks in self._networks if any(address in n for n in networks))

    def _by_name(self, device: str) -> tuple[str, ...]:
        wanted = device.strip().lower()
        if not wanted:
            return ()
        return tuple(host.name for host in self.inventory.hosts if any(
            _same_machine(wanted, candidate.lower()) for candidate in (host.name, host.address)
            if not _is_address(candidate)))


def _is_address(text: str) -> bool:
    """An IP address is no machine name: "10.0.0.5" must not match a device called "10"."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _same_machine(device: str, host: str) -> bool:
    """``srv01`` is ``SRV01.contoso.com`` and the other way round; ``srv01.a.com`` is not ``srv01.b.com``."""
    if device == host:
        return True
    if "." in device and "." in host:
        return False
    return device.split(".", 1)[0] == host.split(".", 1)[0]


class NoHostToLimit(RunbookError):
    """No inventory host matched: an empty ``--limit`` would select every host, so nothing is printed."""


def limit_expression(inventory: Inventory, names: list[str] | tuple[str, ...]) -> str:
    """An Ansible-style pattern that :meth:`Inventory.select` turns into exactly ``names``.

    Host names are plain (letters, digits, ``-``, ``_``, ``.``), so each is a literal term; but a term also
    selects a group of the same name, so hosts such a group adds are excluded again with ``!`` terms, and the
    result is checked by the same selection code ``tls-runbook run --limit`` uses.
    """
    if not names:
        raise NoHostToLimit("no inventory host matches the sign-ins found, so there is no --limit to print (an empty "
                            "one would select every host)")
    wanted = {name.lower() for name in names}
    ordered = [host.name for host in inventory.hosts if host.name.lower() in wanted]
    terms = list(ordered)
    extra = [h.name for h in inventory.select(",".join(terms)) if h.name.lower() not in wanted]
    terms += [f"!{name}" for name in extra]
    expression = ",".join(terms)
    try:
        selected = {host.name.lower() for host in inventory.select(expression)}
    except InputError:
        selected = set()
    if selected != wanted:
        raise NoHostToLimit("the hosts found cannot be named exactly by a --limit pattern in this inventory (a host "
                            "name is also a group name); run them by name instead: " + ", ".join(ordered))
    return expression
