"""Simulated hosts on loopback: one WinRM listener per host, one 127.0.0.x address per host.

This is what ``tls-runbook simulate``, the demo, the notebooks' built-in host and the tests start. A host's
``reboot`` takes its listener down for the profile's boot time, as a real reboot takes WinRM away.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..errors import InputError
from .host import HostProfile, SimulatedHost, builtin_profile, builtin_profile_names
from .wsman import Faults, WSManServer

FIRST_FLEET_ADDRESS = ipaddress.IPv4Address("127.0.0.2")


@dataclass
class SimulatedNode:
    host: SimulatedHost
    server: WSManServer

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def name(self) -> str:
        return self.host.hostname

    def stop(self) -> None:
        self.server.stop()


def loopback_address(text: str) -> str:
    """Only 127.0.0.0/8: the simulator never listens where another machine could reach it."""
    try:
        address = ipaddress.IPv4Address(text)
    except ValueError:
        raise InputError(f"simulator address {text[:40]!r} is not an IPv4 address") from None
    if not address.is_loopback:
        raise InputError(f"simulator address {address} is not in 127.0.0.0/8")
    return str(address)


def start_node(profile: HostProfile, credentials: Iterable[tuple[str, str]], *, hostname: str | None = None,
               address: str = "127.0.0.1", port: int = 0, auth: str = "ntlm", https: bool = False,
               strict: bool = False, faults: Faults | None = None, boot_seconds: float | None = None) -> SimulatedNode:
    """Start one simulated host; ``boot_seconds`` overrides the profile's (tests and demos boot faster)."""
    hostname = hostname or profile.name.replace("_", "-")
    if boot_seconds is not None:
        profile = dataclasses.replace(profile, boot_seconds=boot_seconds)
    host = SimulatedHost(profile, hostname)
    server = WSManServer(host, address=loopback_address(address), port=port, auth=auth, https=https,  # type: ignore[arg-type]
                         strict=strict, credentials=list(credentials), faults=faults,
                         computer_name=hostname.split(".")[0].upper()[:15])
    host.on_reboot = server.go_down
    try:
        server.start()
    except OSError as exc:
        raise InputError(f"cannot listen on {address}:{port}: {exc.strerror or exc}") from None
    return SimulatedNode(host, server)


def load_profiles(folder: Path | str | None) -> list[HostProfile]:
    """Every profile in ``folder`` (``*.json``), or the built-in ones."""
    if folder is None:
        return [builtin_profile(name) for name in builtin_profile_names()]
    paths = sorted(Path(folder).glob("*.json"))
    if not paths:
        raise InputError(f"no simulator profiles (*.json) in {folder}")
    return [HostProfile.load(path) for path in paths]


class SimulatedFleet:
    """Start many nodes, one loopback address each; stop them all on exit, even after a failure."""

    def __init__(self, profiles: list[HostProfile], credentials: Iterable[tuple[str, str]], *, port: int = 0,
                 auth: str = "ntlm", https: bool = False, strict: bool = False):
        self.profiles, self.credentials = profiles, list(credentials)
        self.port, self.auth, self.https, self.strict = port, auth, https, strict
        self.nodes: list[SimulatedNode] = []

    def start(self) -> "SimulatedFleet":
        try:
            for index, profile in enumerate(self.profiles):
                self.nodes.append(start_node(profile, self.credentials, address=str(FIRST_FLEET_ADDRESS + index),
                                             port=self.port, auth=self.auth, https=self.https, strict=self.strict))
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        self.nodes.clear()

    def __enter__(self) -> "SimulatedFleet":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
