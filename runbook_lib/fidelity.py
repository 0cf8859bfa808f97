"""The simulator measured against recordings: the same operations a recorded real host answered, run against a
fresh simulated host, with every field that differs named; and recordings made from the simulator in the same
format. It sits on top because it starts simulated hosts and runs the runbook's steps against them."""

from __future__ import annotations

from pathlib import Path

from .core.errors import InputError
from .remote.credentials import Credential
from .remote.recording import Replayed, differences, load_operation, record


def compare_with_simulator(replayed: list[Replayed], profile_name: str) -> list[str]:
    """Run the recorded operations, in order, against a fresh simulated host; name every field that differs."""
    import secrets

    from .simulator.fleet import start_node
    from .simulator.profile import builtin_profile
    from .remote.target import connect

    credential = Credential("recording-compare", secrets.token_urlsafe(18))
    node = start_node(builtin_profile(profile_name), [(credential.username, credential.password)], strict=True)
    try:
        target = connect(node.url, credential=credential)
        found = []
        for index, item in enumerate(replayed, 1):
            answer = target.run(item.operation.operation, item.operation.args)
            recorded = {k: v for k, v in item.data.items() if k != "simulated"}
            simulated = {k: v for k, v in answer.items() if k != "simulated"}
            found += [f"{index:03d} {item.operation.operation}: {d}" for d in differences(recorded, simulated)]
        return found
    finally:
        node.stop()


def make_simulator_recordings(folder: Path | str, profile_names: list[str], operations: tuple[str, ...]) -> list[Path]:
    """Record ``operations`` (inspect, probe) against each built-in simulated host into ``folder/<host>``."""
    import secrets

    from .simulator.fleet import start_node
    from .simulator.profile import builtin_profile
    from .runbook.operations import inspect_host, probe_host
    from .remote.target import connect

    unknown = [op for op in operations if op not in ("inspect", "probe")]
    if unknown or not operations:
        raise InputError("recordings make: operations are inspect and/or probe")
    made = []
    for name in profile_names:
        profile = builtin_profile(name)
        credential = Credential("recording-maker", secrets.token_urlsafe(18))
        node = start_node(profile, [(credential.username, credential.password)], strict=True)
        try:
            target = connect(node.url, credential=credential)
            target.name, target.simulated = node.name, True
            host_folder = Path(folder) / target.name
            for old in host_folder.glob("*.json"):
                load_operation(old)  # only ever replace recordings, never other files
                old.unlink()
            record(target.transport, host_folder, f"SIMULATED host: tls-runbook simulator profile {name}")
            for operation in operations:
                (inspect_host if operation == "inspect" else probe_host)(target)
            made.append(host_folder)
        finally:
            node.stop()
    return made
