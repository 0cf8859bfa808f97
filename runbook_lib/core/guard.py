"""Never make a host worse: the plan is re-assessed as it will be in effect, and a change under which a working
client would fail is dropped, with a finding that says why; a change that would weaken a host is a bug and stops
the engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import knowledge as k
from .host_model import ClientPrediction, HostModel
from .verdict import Change

if TYPE_CHECKING:
    from .engine import Assessment


def _client_predictions(model: HostModel) -> dict[str, ClientPrediction]:
    """Every client the engine models, in both registry views where the host has two."""
    views = ((False, "64-bit "), (True, "32-bit ")) if model.has_wow64 else ((False, ""),)
    clients = {f"{label}Windows PowerShell": model.windows_powershell(wow64) for wow64, label in views}
    clients["PowerShell 7"] = model.pwsh()
    clients.update({f"{label}WinHTTP": model.winhttp(wow64) for wow64, label in views})
    return clients


def refuse_changes_that_break_a_working_client(a: Assessment) -> None:
    """Re-assess the host as it will be once the plan is in effect (after the restart it needs) and drop every
    change under which a client that works now would fail: a fix must never make a host worse.

    The known case: Group Policy keeps TLS 1.2 off by default, so SystemDefaultTlsVersions=1 would hand the
    choice to an OS default without TLS 1.2 and take TLS 1.2 away from a Windows PowerShell that has it through
    SchUseStrongCrypto ([N1], [S1]).
    """
    now = _client_predictions(a.model)
    working = [name for name, prediction in now.items() if prediction.state == "ok"]
    if not a.changes or not working:
        return

    def broken(changes: list[Change]) -> dict[str, ClientPrediction]:
        registry = a.facts.registry
        for change in changes:
            registry = registry.set(change.path, change.name, change.type, change.data)
        after = _client_predictions(HostModel(a.facts.with_registry(registry)))
        return {name: after[name] for name in working if after[name].state != "ok"}

    kept = list(a.changes)
    while broken(kept):  # drop the change whose absence leaves the fewest clients broken; the later one on a tie
        _, _, index = min((len(broken(kept[:i] + kept[i + 1:])), -i, i) for i in range(len(kept)))
        del kept[index]
    restored = True
    while restored:  # put back every dropped change that does no harm next to what is kept
        restored = False
        for change in a.changes:
            if change not in kept and not broken(kept + [change]):
                kept.append(change)
                restored = True
    kept = [change for change in a.changes if change in kept]
    for change in a.changes:
        if change in kept:
            continue
        name, after = next(iter(broken(kept + [change]).items()))
        a.add("guard.change_dropped", "warning",
              f"Not writing {change.path}\\{change.name}={change.data}: once the plan is in effect it would make "
              f"{name} fail, which works now ({_client_story(now[name])}; with this change it "
              f"{_client_story(after)})", _source_of_change(change))
    a.changes[:] = kept


def _client_story(prediction: ClientPrediction) -> str:
    asks = (f"requests {k.security_protocol_name(prediction.security_protocol)} "
            f"({prediction.security_protocol}) and " if prediction.security_protocol is not None else "")
    return asks + (prediction.negotiation.describe() if prediction.negotiation else f"is {prediction.state}")


def _source_of_change(change: Change) -> str:
    path = change.path.casefold()
    if path.startswith(k.SCHANNEL_PROTOCOLS.casefold()):
        return "S1"
    if path in (k.WINHTTP_NATIVE.casefold(), k.WINHTTP_WOW64.casefold()):
        return "W1"
    return "N1"


class WeakeningRefused(AssertionError):
    """The engine produced a change that would weaken a host: a bug, never an operator error."""


def refuse_weakening(change: Change) -> None:
    path = change.path.casefold()
    if path.startswith(k.SCHANNEL_PROTOCOLS.casefold()):
        protocol = change.path[len(k.SCHANNEL_PROTOCOLS) + 1:].split("\\")[0].upper()
        legacy = protocol in (p.upper() for p in k.LEGACY_PROTOCOLS)
        enabling = (change.name.casefold() == "enabled" and change.data != 0) or (
            change.name.casefold() == "disabledbydefault" and change.data == 0)
        if legacy and enabling or not legacy and not enabling:
            raise WeakeningRefused(f"refusing {change.path}\\{change.name}={change.data}")
    elif path.startswith(k.WINHTTP_NATIVE.casefold()) or path.startswith(k.WINHTTP_WOW64.casefold()):
        added = change.data & ~(change.current if isinstance(change.current, int) else 0)
        if added & (k.WINHTTP_SSL2 | k.WINHTTP_SSL3 | k.WINHTTP_TLS11) or not change.data & k.WINHTTP_TLS12:
            raise WeakeningRefused(f"refusing DefaultSecureProtocols={change.data:#x}")
    elif change.name in k.DOTNET_VALUES and change.data != 1:
        raise WeakeningRefused(f"refusing {change.name}={change.data}")
