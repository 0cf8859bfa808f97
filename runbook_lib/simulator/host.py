"""A simulated Windows host: profiles as data, state that the runbook's scripts read and change, and answers.

The host answers only the project's own scripts, recognised by the operation they declare and the arguments
they carry (:func:`runbook_lib.remote.scripts.read_declaration`); anything else gets the CLIXML "not recognized"
error with exit code 1, so a script that drifted from what the simulator knows fails loudly.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any, Callable

from .. import facts as facts_module
from ..errors import InputError
from ..registry import Registry, RegistryValue
from ..remote import scripts
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

    @classmethod
    def from_dict(cls, doc: Any, origin: str) -> "HostProfile":
        if not isinstance(doc, dict):
            raise InputError(f"profile {origin}: expected a JSON object")
        try:
            intent = doc["intent"]
            profile = cls(name=str(doc["name"]), description=str(doc["description"]), intent=intent["outcome"],
                          intent_blockers=tuple(intent.get("blockers", ())), state=doc["state"],
                          boot_seconds=float(doc.get("boot_seconds", 2.0)), faults=dict(doc.get("faults", {})))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"profile {origin}: missing or malformed field {exc}") from None
        if profile.intent not in INTENTS:
            raise InputError(f"profile {origin}: intent.outcome must be one of {', '.join(INTENTS)}")
        profile.initial_facts("check")  # validates the state through the host-facts loader
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


class ScriptError(Exception):
    """A script's own error (its ``throw``), reported in the result envelope as the real script reports it."""


class SimulatedHost:
    """One Windows host's state. Thread-safe: a WinRM server may run several commands at once."""

    def __init__(self, profile: HostProfile, hostname: str, process_start_s: float = 0.0):
        """``process_start_s`` is what starting powershell.exe costs a real host, paid by every command."""
        start = profile.initial_facts(hostname)
        self.process_start_s = process_start_s
        self.profile, self.hostname = profile, hostname
        self.os, self.hotfixes, self.powershell = start.os, start.hotfixes, start.powershell
        self.registry = start.registry  # live: what regedit and a new process see
        self.boot_registry = start.registry  # what Schannel, WinHTTP and the cipher order loaded at boot
        self.tls = WindowsTls(start.os.version_tuple, start.os.service_pack, start.os.product_type,
                              start.os.architecture, start.hotfixes, start.powershell.windows_powershell)
        self.program_data: dict[str, str] = {}
        self.drop_apply_after = profile.faults.get("drop_apply_after")  # values written before the network drops
        self.stall_apply: tuple[int, float] | None = None  # (values written, seconds): a slow host, mid-apply
        self.reboots = 0
        self.on_reboot: Callable[[float], None] | None = None
        self._lock = threading.RLock()

    # --- the CommandHandler the WS-Management server calls --------------------------------------------------
    def __call__(self, command_line: str, stdin: bytes) -> CommandResult:
        if self.process_start_s:
            time.sleep(self.process_start_s)
        try:
            script = scripts.decode_invocation(command_line, stdin)
            operation, args = scripts.read_declaration(script)
        except InputError:
            return _not_recognized(command_line)
        handler = getattr(self, f"_op_{operation}")
        try:
            with self._lock:
                result = handler(args)
        except ScriptError as exc:  # what the script's catch block reports through Write-TrError
            return CommandResult(stdout=scripts.render_output(operation, error=str(exc)))
        if operation != "inspect":  # host facts carry their own "simulated" field
            result = {**result, "simulated": True}  # so every report made from it can say SIMULATED
        return CommandResult(stdout=scripts.render_output(operation, result))

    # --- operations -----------------------------------------------------------------------------------------
    def _op_inspect(self, args: dict) -> dict:
        values = [self.registry.get(item["path"], item["name"]) for item in args["values"]]
        facts_doc = {
            "schema": facts_module.SCHEMA, "host": args.get("host") or self.hostname, "simulated": True,
            "collected_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "os": {"caption": self.os.caption, "version": self.os.version, "service_pack": self.os.service_pack,
                   "product_type": self.os.product_type, "architecture": self.os.architecture},
            "hotfixes": list(self.hotfixes),
            "powershell": {"windows_powershell": self.powershell.windows_powershell, "pwsh": self.powershell.pwsh},
            "registry": [value.to_dict() for value in values if value is not None],
            "observed": {"security_protocol": {"x64": self.tls.security_protocol(self.registry),
                                               "x86": self.tls.security_protocol(self.registry, wow64=True)},
                         "probes": self._probes(args.get("endpoints") or [])},
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
            if self.stall_apply is not None and index == self.stall_apply[0]:
                time.sleep(self.stall_apply[1])  # the client may give up meanwhile; the host carries on
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
        if saved is None:  # journal.ps1 throws, as Windows would find no file
            raise ScriptError(f"no journal for apply_id {args['apply_id']} on this host")
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
        """Boot again: Group Policy re-applies its values, then Schannel and WinHTTP load the registry."""
        with self._lock:
            policy = [v for v in self.initial_registry() if v.from_policy]
            self.registry = Registry([*self.registry, *policy])
            self.boot_registry = self.registry
            self.reboots += 1
        if self.on_reboot:
            self.on_reboot(self.profile.boot_seconds)

    def initial_registry(self) -> Registry:
        return self.profile.initial_facts(self.hostname).registry

    def snapshot(self) -> list[RegistryValue]:
        with self._lock:
            return list(self.registry)


def _not_recognized(command_line: str) -> CommandResult:
    word = command_line.split(" ", 1)[0][:80] or "(empty)"
    return CommandResult(stdout="", stderr=clixml_error(
        f"The term '{word}' is not recognized as a script this simulated host knows (tls-runbook simulator)."),
        exit_code=1)
