"""Simulated hosts on loopback: one WinRM listener per host, one 127.0.0.x address per host.

This is what ``tls-runbook simulate``, the demo, the notebooks' built-in host and the tests start. A host's
``reboot`` takes its listener down for the profile's boot time, as a real reboot takes WinRM away.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import multiprocessing
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..core.errors import InputError
from .group_policy import DEFAULT_REFRESH_S
from .host import SimulatedHost
from .profile import HostProfile, builtin_profile, builtin_profile_names
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
        self.host.stop_policy_refresh()
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
               strict: bool = False, faults: Faults | None = None, boot_seconds: float | None = None,
               process_start_s: float = 0.0,
               policy_refresh_s: tuple[float, float] = DEFAULT_REFRESH_S) -> SimulatedNode:
    """Start one simulated host; ``boot_seconds`` overrides the profile's (tests and demos boot faster), and
    ``policy_refresh_s`` (interval, random offset) Windows' Group Policy background refresh."""
    hostname = hostname or profile.name.replace("_", "-")
    if boot_seconds is not None:
        profile = dataclasses.replace(profile, boot_seconds=boot_seconds)
    host = SimulatedHost(profile, hostname, process_start_s)
    server = WSManServer(host, address=loopback_address(address), port=port, auth=auth, https=https,  # type: ignore[arg-type]
                         strict=strict, credentials=list(credentials), faults=faults,
                         computer_name=hostname.split(".")[0].upper()[:15],
                         tls_protocols=lambda: host.tls.listener_protocols(host.boot_registry), quotas=host.quotas)
    host.on_reboot = server.go_down
    host.on_network_drop = server.interrupt_network
    try:
        server.start()
    except OSError as exc:
        raise InputError(f"cannot listen on {address}:{port}: {exc.strerror or exc}") from None
    host.start_policy_refresh(*policy_refresh_s)
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
                 auth: str = "ntlm", https: bool = False, strict: bool = False, boot_seconds: float | None = None,
                 latency: float = 0.0, process_start_s: float = 0.0):
        self.profiles, self.credentials = profiles, list(credentials)
        self.port, self.auth, self.https, self.strict = port, auth, https, strict
        self.boot_seconds, self.latency, self.process_start_s = boot_seconds, latency, process_start_s
        self.nodes: list[SimulatedNode] = []

    def start(self) -> "SimulatedFleet":
        try:
            for index, profile in enumerate(self.profiles):
                self.nodes.append(start_node(profile, self.credentials, address=str(FIRST_FLEET_ADDRESS + index),
                                             port=self.port, auth=self.auth, https=self.https, strict=self.strict,
                                             boot_seconds=self.boot_seconds, faults=Faults(latency=self.latency),
                                             process_start_s=self.process_start_s))
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


def _serve(profile_names: list[str], credentials: list[tuple[str, str]], options: dict, connection) -> None:
    profiles = [builtin_profile(name) for name in profile_names]
    with SimulatedFleet(profiles, credentials, **options) as fleet:
        connection.send([(node.name, node.server.address, node.server.port) for node in fleet.nodes])
        connection.recv()  # blocks until the owner is done


class FleetProcess:
    """A simulated fleet in a process of its own, so the hosts' NTLM and TLS work does not compete with the
    runner for one interpreter. Entering yields ``[(name, address, port), ...]``; names are unique."""

    def __init__(self, profile_names: list[str], credentials: Iterable[tuple[str, str]], **options):
        self.profile_names, self.credentials, self.options = profile_names, list(credentials), options
        self._process = None
        self._connection = None

    def __enter__(self) -> list[tuple[str, str, int]]:
        context = multiprocessing.get_context("spawn")
        self._connection, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(self.profile_names, self.credentials, self.options,
                                                             child), daemon=True)
        self._process.start()
        nodes = self._connection.recv()
        return [(name if self.profile_names.count(self.profile_names[i]) == 1 else f"{name}-{i + 1}", address, port)
                for i, (name, address, port) in enumerate(nodes)]

    @property
    def pid(self) -> int | None:
        """The simulator's process, so that a benchmark can measure it apart from what it simulates for."""
        return self._process.pid if self._process is not None else None

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._connection.send("stop")
        except OSError:
            pass
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()


def write_inventory(path: Path, nodes: list[tuple[str, str, int]], credential: str = "env:TLS_RUNBOOK") -> Path:
    """A tls-runbook YAML inventory for simulated nodes: references the credential, never contains it."""
    import yaml

    hosts = [{"name": name, "address": address, "port": port, "scheme": "http", "auth": "ntlm",
              "credential": credential, "groups": ["simulated"]} for name, address, port in nodes]
    path.write_text(yaml.safe_dump({"hosts": hosts}, sort_keys=False), encoding="utf-8")
    return path
