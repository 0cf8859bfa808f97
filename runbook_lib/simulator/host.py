"""A simulated Windows host: profiles as data, state that the runbook's scripts read and change, and answers.

The host answers only the project's own scripts, recognised by the operation they declare and the arguments
they carry (:func:`runbook_lib.remote.scripts.read_declaration`); anything else gets the CLIXML "not recognized"
error with exit code 1, so a script that drifted from what the simulator knows fails loudly.
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any, Callable

from .. import facts as facts_module
from ..errors import InputError
from ..registry import RegistryValue
from ..remote import scripts
from .group_policy import DEFAULT_REFRESH_S, PolicyStore, RefreshTimer, policy_set_values
from .wsman_shells import CommandResult, DropConnection, clixml_error
from .windows import UNKNOWN_HOST, WindowsTls

def _profiles_folder():
    return resources.files("runbook_lib.simulator").joinpath("profiles")
INTENTS = ("fixable", "compliant", "blocked")


@dataclass(frozen=True)
class HostProfile:
    """A host as a data file: facts-like state, what the profile is meant to show, and its faults."""

    name: str
    description: str
    intent: str
    intent_blockers: tuple[str, ...]
    state: dict
    boot_seconds: float = 2.0
    faults: dict = field(default_factory=dict)
    group_policy: dict | None = None  # GPOs (see simulator.group_policy); values they set are not in ``state``

    @classmethod
    def from_dict(cls, doc: Any, origin: str) -> "HostProfile":
        if not isinstance(doc, dict):
            raise InputError(f"profile {origin}: expected a JSON object")
        try:
            intent = doc["intent"]
            profile = cls(name=str(doc["name"]), description=str(doc["description"]), intent=intent["outcome"],
                          intent_blockers=tuple(intent.get("blockers", ())), state=doc["state"],
                          boot_seconds=float(doc.get("boot_seconds", 2.0)), faults=dict(doc.get("faults", {})),
                          group_policy=doc.get("group_policy"))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"profile {origin}: missing or malformed field {exc}") from None
        if profile.intent not in INTENTS:
            raise InputError(f"profile {origin}: intent.outcome must be one of {', '.join(INTENTS)}")
        start = profile.initial_facts("check")  # validates the state through the host-facts loader
        if any(value.policy for value in start.registry):
            raise InputError(f"profile {origin}: a registry value says policy: true; declare the GPO that delivers "
                             "it under group_policy instead (the host reports policy as Windows shows it)")
        PolicyStore.from_profile(profile.group_policy, origin)
        return profile

    @classmethod
    def load(cls, path: Path | str) -> "HostProfile":
        path = Path(path)
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")), path.name)
        except (OSError, ValueError) as exc:
            raise InputError(f"profile {path.name}: {exc}") from None

    def initial_facts(self, host: str) -> facts_module.HostFacts:
        doc = {"schema": facts_module.SCHEMA, "host": host, "simulated": True,
               "collected_at": "2026-01-01T00:00:00Z", **self.state}
        try:
            return facts_module.from_dict(doc)
        except InputError as exc:
            raise InputError(f"profile {self.name}: {exc}") from None


def builtin_profile_names() -> list[str]:
    return sorted(p.name[:-5] for p in _profiles_folder().iterdir() if p.name.endswith(".json"))


def builtin_profile(name: str) -> HostProfile:
    if name not in builtin_profile_names():
        raise InputError(f"unknown simulator profile {name!r} (tls-runbook simulate --list names them)")
    text = _profiles_folder().joinpath(f"{name}.json").read_text(encoding="utf-8")
    return HostProfile.from_dict(json.loads(text), f"{name}.json")


class SimulatedHost:
    """One Windows host's state. Thread-safe: a WinRM server may run several commands at once."""

    def __init__(self, profile: HostProfile, hostname: str, process_start_s: float = 0.0):
        """``process_start_s`` is what starting powershell.exe costs a real host, paid by every command."""
        start = profile.initial_facts(hostname)
        self.process_start_s = process_start_s
        self.profile, self.hostname = profile, hostname
        self.os, self.hotfixes, self.powershell = start.os, start.hotfixes, start.powershell
        self.policy = PolicyStore.from_profile(profile.group_policy, profile.name)
        self.registry = self.policy.process(start.registry, force=True)  # live: what regedit and a process see
        self.boot_registry = self.registry  # what Schannel, WinHTTP and the cipher order loaded at boot
        self.policy_refreshes = 0
        self._refresh_timer: RefreshTimer | None = None
        self.tls = WindowsTls(start.os.version_tuple, start.os.service_pack, start.os.product_type,
                              start.os.architecture, start.hotfixes, start.powershell.windows_powershell)
        self.program_data: dict[str, str] = {}
        self.drop_apply_after = profile.faults.get("drop_apply_after")  # values written before the network drops
        self.reboots = 0
        self.on_reboot: Callable[[float], None] | None = None
        self._lock = threading.RLock()

    # --- the CommandHandler the WS-Management server calls --------------------------------------------------
    def __call__(self, command_line: str, stdin: bytes) -> CommandResult:
        if self.process_start_s:
            time.sleep(self.process_start_s)
        if command_line.split(" ", 1)[0].lower() in ("gpupdate", "gpupdate.exe"):
            return self._gpupdate(command_line.lower().split()[1:])
        try:
            script = scripts.decode_invocation(command_line, stdin)
            operation, args = scripts.read_declaration(script)
        except InputError:
            return _not_recognized(command_line)
        handler = getattr(self, f"_op_{operation}")
        with self._lock:
            result = handler(args)
        if operation != "inspect":  # host facts carry their own "simulated" field
            result = {**result, "simulated": True}  # so every report made from it can say SIMULATED
        return CommandResult(stdout=scripts.render_output(operation, result))

    # --- operations -----------------------------------------------------------------------------------------
    def _op_inspect(self, args: dict) -> dict:
        values = [self.registry.get(item["path"], item["name"]) for item in args["values"]]
        group_policy = self.policy.facts(self.registry, [(item["path"], item["name"]) for item in args["values"]])
        flagged = policy_set_values(group_policy)
        facts_doc = {
            "schema": facts_module.SCHEMA, "host": args.get("host") or self.hostname, "simulated": True,
            "collected_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "os": {"caption": self.os.caption, "version": self.os.version, "service_pack": self.os.service_pack,
                   "product_type": self.os.product_type, "architecture": self.os.architecture},
            "hotfixes": list(self.hotfixes),
            "powershell": {"windows_powershell": self.powershell.windows_powershell, "pwsh": self.powershell.pwsh},
            "registry": [{**value.to_dict(), "policy": value.from_policy or
                          (value.path.casefold(), value.name.casefold()) in flagged}
                         for value in values if value is not None],
            "observed": {"security_protocol": {"x64": self.tls.security_protocol(self.registry),
                                               "x86": self.tls.security_protocol(self.registry, wow64=True)},
                         "probes": self._probes(args.get("endpoints") or [])},
            "group_policy": group_policy,
        }
        return facts_doc

    def _probes(self, endpoints: list[str], requested: int | None = None) -> list[dict]:
        probes = []
        default = self.tls.security_protocol(self.registry)
        for endpoint in endpoints:
            reachable = self.tls.reachable(endpoint)
            probes.append({"endpoint": endpoint, "mode": "tcp", "ok": reachable, "protocol": None, "cipher": None,
                           "error": None if reachable else UNKNOWN_HOST})
            if requested is not None:
                probes.append(self.tls.handshake(self.boot_registry, requested, endpoint).to_probe(endpoint, "session"))
                continue
            probes.append(self.tls.handshake(self.boot_registry, default, endpoint).to_probe(endpoint, "default"))
            probes.append(self.tls.handshake(self.boot_registry, 3072, endpoint).to_probe(endpoint, "tls12"))
        return probes

    def _op_probe(self, args: dict) -> dict:
        return {"probes": self._probes(args["endpoints"])}

    def _op_session_fix(self, args: dict) -> dict:
        before = self.tls.security_protocol(self.registry)
        after = before | 3072 if args["mode"] == "bor" else 3072
        return {"before": before, "after": after, "mode": args["mode"], "error": None,
                "probes": self._probes(args["endpoints"], requested=after)}

    def _op_apply(self, args: dict) -> dict:
        apply_id = args["apply_id"]
        backup = []
        for change in args["changes"]:
            current = self.registry.get(change["path"], change["name"])
            backup.append({"path": change["path"], "name": change["name"], "existed": current is not None,
                           "type": current.type if current else None, "data": current.data if current else None,
                           "key_existed": self.registry.has_key(change["path"])})
        journal = {"apply_id": apply_id, "completed": False, "backup": backup,
                   "results": [{"path": c["path"], "name": c["name"], "status": "not_attempted", "before": None,
                                "after": None, "error": None} for c in args["changes"]]}
        self._save_journal(journal)  # the backup exists on the host before the first write
        for index, change in enumerate(args["changes"]):
            if self.drop_apply_after is not None and index >= self.drop_apply_after:
                self.drop_apply_after = None  # the network comes back for the next attempt
                raise DropConnection()
            current = self.registry.get(change["path"], change["name"])
            entry = journal["results"][index]
            entry["before"] = {"type": current.type, "data": current.data} if current else None
            if current is not None and current.same_as(change["type"], change["data"]):
                entry["status"] = "unchanged"
            else:
                self.registry = self.registry.set(change["path"], change["name"], change["type"], change["data"])
                entry["status"] = "written"
            written = self.registry.get(change["path"], change["name"])
            entry["after"] = {"type": written.type, "data": written.data}
            self._save_journal(journal)
        journal["completed"] = True
        self._save_journal(journal)
        return journal

    def _save_journal(self, journal: dict) -> None:
        self.program_data[journal["apply_id"]] = json.dumps(journal)

    def _op_journal(self, args: dict) -> dict:
        saved = self.program_data.get(args["apply_id"])
        if saved is None:
            return {"apply_id": args["apply_id"], "completed": False, "backup": [], "results": []}
        return json.loads(saved)

    def _op_restore(self, args: dict) -> dict:
        results, removed = [], []
        for entry in args["backup"]:
            before = self.registry.get(entry["path"], entry["name"])
            status = "unchanged"
            if entry["existed"] and not (before and before.same_as(entry["type"], entry["data"])):
                self.registry = self.registry.set(entry["path"], entry["name"], entry["type"], entry["data"])
                status = "restored"
            elif not entry["existed"] and before is not None:
                self.registry = self.registry.delete(entry["path"], entry["name"])
                status = "deleted"
            after = self.registry.get(entry["path"], entry["name"])
            results.append({"path": entry["path"], "name": entry["name"], "status": status,
                            "before": before and {"type": before.type, "data": before.data},
                            "after": after and {"type": after.type, "data": after.data}, "error": None})
        for entry in args["backup"]:
            if not entry["key_existed"] and entry["path"] not in removed and not self.registry.has_key(entry["path"]):
                removed.append(entry["path"])
        return {"apply_id": args["apply_id"], "completed": True, "keys_removed": removed, "results": results}

    def _op_reboot(self, args: dict) -> dict:
        threading.Timer(min(float(args.get("delay_s", 1)), 2.0), self.reboot).start()
        return {"scheduled": True}

    def reboot(self) -> None:
        """Boot again: Group Policy is processed, then Schannel and WinHTTP load the registry."""
        with self._lock:
            self.registry = self.policy.process(self.registry, force=True)
            self.boot_registry = self.registry
            self.reboots += 1
        if self.on_reboot:
            self.on_reboot(self.profile.boot_seconds)

    # --- Group Policy processing after boot -----------------------------------------------------------------
    def refresh_policy(self, force: bool = False) -> None:
        """A background refresh, or ``gpupdate /force``: Schannel keeps what it loaded at boot, processes see it."""
        with self._lock:
            self.registry = self.policy.process(self.registry, force=force)
            self.policy_refreshes += 1

    def _gpupdate(self, arguments: list[str]) -> CommandResult:
        """gpupdate as Windows prints it (user policy is not modelled: there is no interactive user)."""
        targets = [a.split(":", 1)[1] for a in arguments if a.startswith("/target:")]
        if any(t not in ("computer", "user") for t in targets) or \
                any(a not in ("/force", "/wait:0") and not a.startswith("/target:") for a in arguments):
            return CommandResult(stdout="", stderr="ERROR: Invalid Syntax.\r\n", exit_code=1)
        if "computer" in targets or not targets:
            self.refresh_policy(force="/force" in arguments)
        lines = ["Updating policy...", ""]
        lines += ["Computer Policy update has completed successfully."] if "computer" in targets or not targets else []
        lines += ["User Policy update has completed successfully."] if "user" in targets or not targets else []
        return CommandResult(stdout="\r\n".join(lines) + "\r\n\r\n")

    def start_policy_refresh(self, interval_s: float = DEFAULT_REFRESH_S[0], offset_s: float = DEFAULT_REFRESH_S[1],
                             seed: int | None = None) -> None:
        """Background refreshes from now on (Windows' default: every 90 minutes plus a random 0-30)."""
        self.stop_policy_refresh()
        self._refresh_timer = RefreshTimer(self.refresh_policy, interval_s, offset_s, random.Random(seed)).start()

    def stop_policy_refresh(self) -> None:
        if self._refresh_timer is not None:
            self._refresh_timer.stop()
            self._refresh_timer = None

    def snapshot(self) -> list[RegistryValue]:
        with self._lock:
            return list(self.registry)


def _not_recognized(command_line: str) -> CommandResult:
    word = command_line.split(" ", 1)[0][:80] or "(empty)"
    return CommandResult(stdout="", stderr=clixml_error(
        f"The term '{word}' is not recognized as a script this simulated host knows (tls-runbook simulator)."),
        exit_code=1)
