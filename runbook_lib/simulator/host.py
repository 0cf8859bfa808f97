"""A simulated Windows host, built from a profile (:mod:`.profile`): state that the runbook's scripts read and
change, and answers.

The host answers only the project's own scripts, recognised by the operation they declare and the arguments
they carry (:func:`runbook_lib.remote.scripts.read_declaration`); anything else gets the CLIXML "not recognized"
error with exit code 1, so a script that drifted from what the simulator knows fails loudly. Before that, stdin
is cut into statements the way ``powershell -Command -`` does (:func:`.wsman_shells.console_statements`), so a
script that real PowerShell would cut short, or never run, fails here the same way.
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Callable

from ..core import facts as facts_module
from ..core.errors import InputError
from ..core.registry import RegistryValue
from ..remote import scripts
from .group_policy import DEFAULT_REFRESH_S, PolicyStore, RefreshTimer, policy_set_values
from .journal_folder import PATH as JOURNAL_PATH
from .journal_folder import JournalFolder, JournalRefused
from .profile import HostProfile
from .wsman import QUOTA_FIELDS, WINRM_2_QUOTAS, Quotas
from .wsman_shells import (CommandResult, Process, clixml_error, console_statements, current_process,
                           process_scope, statement_parses)
from .windows import PROTOCOL_NOT_SUPPORTED, SSL_PROTOCOL_INVALID, UNKNOWN_HOST, Handshake, WindowsTls

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
        # %ProgramData%\tls-runbook: absent until an apply creates it, unless the profile says someone made it first
        folder = profile.faults.get("journal_folder")
        self.journal_folder = JournalFolder.from_profile(folder) if folder is not None else None
        self.drop_apply_after = profile.faults.get("drop_apply_after")  # values written before the network drops
        # X509ChainStatusFlags names the host's chain building reports for Entra's certificate (a missing root:
        # PartialChain; a TLS-inspecting proxy whose root is not trusted: UntrustedRoot); empty when it validates.
        self.certificate_chain: tuple[str, ...] = tuple(profile.faults.get("certificate_chain", ()))
        self.network_down_s = float(profile.faults.get("network_down_s", 0.0))  # how long it then stays down
        self.apply_value_s = float(profile.faults.get("apply_value_s", 0.0))  # between a write and its journal
        # Values whose data does not fit their kind (an 8-byte REG_DWORD): (path, name) casefolded -> what .NET reads
        self.malformed = {(v["path"].casefold(), v["name"].casefold()): v["reads_as"]
                          for v in profile.faults.get("malformed_values", ())}
        # WinRM 2.0's quotas where Windows PowerShell 2.0 is all there is (7 / 2008 R2 as installed), 3.0's elsewhere
        defaults = WINRM_2_QUOTAS if self.tls.clr2 else Quotas()
        self.quotas = dataclasses.replace(defaults, **profile.winrm)
        self.reboots = 0
        self.last_boot = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=3)
        self.shutdown_scheduled = bool(profile.faults.get("shutdown_scheduled"))  # shutdown.exe then exits 1190
        self.reboot_aborted = bool(profile.faults.get("reboot_aborted"))  # scheduled, then cancelled (shutdown /a)
        self.drop_reboot_answer = bool(profile.faults.get("drop_reboot_answer"))  # restart taken, answer lost
        self.on_reboot: Callable[[float, Callable[[], None]], None] | None = None  # (down for, then boot)
        self.on_network_drop: Callable[[float], None] | None = None
        self._processes: dict[int, Process] = {}
        self._next_pid = 4100
        self._lock = threading.RLock()

    # --- the CommandHandler the WS-Management server calls --------------------------------------------------
    def __call__(self, command_line: str, stdin: bytes) -> CommandResult:
        if self.process_start_s:
            time.sleep(self.process_start_s)
        if command_line.split(" ", 1)[0].lower() in ("gpupdate", "gpupdate.exe"):
            return self._gpupdate(command_line.lower().split()[1:])
        try:
            text = scripts.decode_invocation(command_line, stdin)
        except InputError:
            return _not_recognized(command_line)
        statements, _never_ran = console_statements(text)
        if len(statements) < 3 or not statement_parses(statements[2]):
            return self._cut_short(statements)
        try:
            operation, args = scripts.read_declaration("\n".join(statements[:3]) + "\n" * 3)
        except InputError:
            return _not_recognized(command_line)
        if len(statements) > 3:
            return _not_recognized(command_line)
        if self.profile.language_mode != "FullLanguage":  # the language check is the only statement that runs
            return CommandResult(stdout="\r\n".join(scripts.language_mode_lines(operation)) + "\r\n", exit_code=1)
        handler = getattr(self, f"_op_{operation}")
        try:
            with process_scope():
                if operation == "apply":  # takes the lock per step: a journal read must be able to run meanwhile
                    result = handler(args)
                else:
                    with self._lock:
                        result = handler(args)
        except (ScriptFailed, JournalRefused) as exc:
            return CommandResult(stdout=scripts.render_output(operation, error=str(exc)))
        warnings: tuple[str, ...] = ()
        if isinstance(result, tuple):  # (result, warnings), as Write-TrResult takes them
            result, warnings = result
        if operation != "inspect":  # host facts carry their own "simulated" field
            result = {**result, "simulated": True}  # so every report made from it can say SIMULATED
        return CommandResult(stdout=scripts.render_output(operation, result, warnings=warnings))

    def _malformed(self, path: str, name: str) -> str | None:
        """Read-TrValue's problem text for a value whose data does not fit its kind, or None."""
        reads_as = self.malformed.get((path.casefold(), name.casefold()))
        return None if reads_as is None else f"REG_DWORD whose data is not 4 bytes (reads as {reads_as})"

    def _cut_short(self, statements: list[str]) -> CommandResult:
        """What PowerShell does with a script the console cut apart: a parse error, or nothing at all."""
        broken = [s for s in statements if not statement_parses(s)]
        if broken:
            v2 = (self.powershell.windows_powershell or "").startswith("2.")
            text = "Missing closing '}' in statement block." + ("" if v2 else " or type definition.")
            return CommandResult(stdout="", stderr=clixml_error(text), exit_code=1)
        # An unfinished statement at the end of the input is dropped without a word (exit code of the last one).
        return CommandResult(stdout="", exit_code=0)

    # --- operations -----------------------------------------------------------------------------------------
    def _op_inspect(self, args: dict) -> tuple[dict, tuple[str, ...]]:
        warnings, values = [], []
        for item in args["values"]:
            problem = self._malformed(item["path"], item["name"])
            if problem:
                warnings.append(f"left out {item['path']}\\{item['name']}: {problem}")
            else:
                values.append(self.registry.get(item["path"], item["name"]))
        group_policy = self.policy.facts(self.registry, [(item["path"], item["name"]) for item in args["values"]])
        flagged = policy_set_values(group_policy)
        facts_doc = {
            "schema": facts_module.SCHEMA, "host": args.get("host") or self.hostname, "simulated": True,
            "collected_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "os": self._os_facts(),
            "hotfixes": list(self.hotfixes),
            "powershell": {"windows_powershell": self.powershell.windows_powershell, "pwsh": self.powershell.pwsh},
            "registry": [{**value.to_dict(), "policy": value.from_policy or
                          (value.path.casefold(), value.name.casefold()) in flagged}
                         for value in values if value is not None],
            "observed": {"security_protocol": self._security_protocols(warnings),
                         "probes": self._probes(args.get("endpoints") or [])},
            "group_policy": group_policy,
        }
        return facts_doc, tuple(warnings)

    def _os_facts(self) -> dict:
        """Get-TrOsFacts: Win32_OperatingSystem (and the processor's architecture)."""
        return {"caption": self.os.caption, "version": self.os.version, "service_pack": self.os.service_pack,
                "product_type": self.os.product_type, "architecture": self.os.architecture,
                "last_boot": _utc(self.last_boot)}

    def _security_protocols(self, warnings: list[str]) -> dict[str, int]:
        """inspect reads SecurityProtocol in a fresh child Windows PowerShell of each bitness the OS has (a 32-bit
        Windows has no 64-bit one), inside the shell's job: a child that cannot start (process or memory quota) is
        left out with the script's warning."""
        bitness = ("x64", "x86") if self.tls.wow64 else ("x86",)
        process_mb = 45 if self.tls.clr2 else 70  # a Windows PowerShell process's commit, CLR 2 or CLR 4
        fits = (self.quotas.max_processes_per_shell >= 3  # cmd.exe, powershell.exe and the child
                and self.quotas.max_memory_per_shell_mb >= len(bitness) * process_mb)
        if not fits:
            warnings += [f"SecurityProtocol could not be read from {'64' if bits == 'x64' else '32'}-bit Windows "
                         "PowerShell" for bits in bitness]
            return {}
        if not self.tls.wow64:
            return {"x86": self.tls.security_protocol(self.registry)}
        return {"x64": self.tls.security_protocol(self.registry),
                "x86": self.tls.security_protocol(self.registry, wow64=True)}

    def _probes(self, endpoints: list[str]) -> list[dict]:
        """probe.ps1's four records per endpoint, from this operation's fresh process."""
        probes = []
        default = self.tls.security_protocol(self.registry)
        for endpoint in endpoints:
            reachable = self.tls.reachable(endpoint)
            probes.append({"endpoint": endpoint, "mode": "tcp", "ok": reachable, "connected": reachable,
                           "protocol": None, "cipher": None, "error": None if reachable else UNKNOWN_HOST})
            probes.append(self._handshake(endpoint, "default", default))
            if self.tls.runtime_refuses_tls12 and reachable:
                probes.append(Handshake(True, error=SSL_PROTOCOL_INVALID).to_probe(endpoint, "tls12"))
            else:
                probes.append(self._handshake(endpoint, "tls12", 3072))
            probes.append(self.tls.entra_request(self.boot_registry, default, endpoint, self.certificate_chain))
        return probes

    def _handshake(self, endpoint: str, mode: str, requested: int) -> dict:
        return self.tls.handshake(self.boot_registry, requested, endpoint).to_probe(endpoint, mode,
                                                                                   self.certificate_chain)

    def _op_probe(self, args: dict) -> dict:
        return {"probes": self._probes(args["endpoints"])}

    def _op_session_fix(self, args: dict) -> dict:
        """session_fix.ps1: set SecurityProtocol in this process, then a session and an app probe per endpoint."""
        before = self.tls.security_protocol(self.registry)
        wanted = before | 3072 if args["mode"] == "bor" else 3072
        refused = self.tls.runtime_refuses_tls12
        after = before if refused else wanted
        probes = []
        for endpoint in args["endpoints"]:
            probes.append(self._handshake(endpoint, "session", after))
            probes.append(self.tls.entra_request(self.boot_registry, after, endpoint, self.certificate_chain))
        return {"before": before, "after": after, "mode": args["mode"],
                "error": PROTOCOL_NOT_SUPPORTED if refused else None, "probes": probes}

    # --- apply, journal and restore: see apply.ps1, journal.ps1 and restore.ps1 -----------------------------
    def _journal_folder(self, create: bool) -> JournalFolder | None:
        if self.journal_folder is None and create:
            self.journal_folder = JournalFolder()
        if self.journal_folder is not None:
            self.journal_folder.check()
        return self.journal_folder

    @staticmethod
    def _state(value: RegistryValue | None) -> dict | None:
        return None if value is None else {"type": value.type, "data": value.data}

    def _op_apply(self, args: dict) -> dict:
        process = current_process()
        apply_id = args["apply_id"]
        with self._lock:
            folder = self._journal_folder(create=True)
            assert folder is not None
            if folder.used(apply_id):
                raise ScriptFailed(f"apply_id {apply_id} was already used on this host: read its journal")
            backup, results = [], []
            for change in args["changes"]:
                problem = self._malformed(change["path"], change["name"])
                if problem:
                    raise ScriptFailed(f"existing value cannot be backed up ({problem}), refusing to overwrite: "
                                       f"{change['path']}\\{change['name']}")
                current = self.registry.get(change["path"], change["name"])
                backup.append({"path": change["path"], "name": change["name"], "existed": current is not None,
                               "type": current.type if current else None, "data": current.data if current else None,
                               "key_existed": self.registry.has_key(change["path"])})
                planned = {"type": change["type"], "data": change["data"].lower() if change["type"] == "REG_BINARY"
                           else change["data"]}
                results.append({"path": change["path"], "name": change["name"], "status": "not_attempted",
                                "planned": planned, "before": self._state(current), "after": None, "error": None})
            pid, self._next_pid = self._next_pid, self._next_pid + 4
            self._processes[pid] = process
            journal = {"apply_id": apply_id, "revision": 0, "pid": pid, "completed": False, "journal_error": None,
                       "process_started": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f0Z"),
                       "backup": backup, "results": results}
            folder.save(journal)  # the backup is on the host before the first write
        for index, change in enumerate(args["changes"]):
            process.check()
            if index == self.drop_apply_after and self.on_network_drop:
                self.drop_apply_after = None  # one drop per fault
                self.on_network_drop(self.network_down_s)  # the network fails; this process does not notice
            entry = results[index]
            with self._lock:
                current = self.registry.get(change["path"], change["name"])
                if current is not None and current.same_as(change["type"], change["data"]):
                    entry["status"] = "unchanged"
                else:
                    self.registry = self.registry.set(change["path"], change["name"], change["type"], change["data"])
                    entry["status"] = "written"
                entry["after"] = self._state(self.registry.get(change["path"], change["name"]))
            process.sleep(self.apply_value_s)  # a kill here leaves the value written but not journaled
            with self._lock:
                folder.save(journal)
        journal["completed"] = True
        with self._lock:
            folder.save(journal)
        return journal

    def _op_journal(self, args: dict) -> dict:
        apply_id, claim = args["apply_id"], args.get("claim_if_absent", False)
        folder = self._journal_folder(create=claim)
        found = folder.read(apply_id) if folder is not None else None
        if found is None and claim:
            assert folder is not None
            folder.claim(apply_id)
            found = folder.read(apply_id)
        result = {"apply_id": apply_id, "state": "absent", "journal": None, "apply_running": None, "current": []}
        if found is not None and "claimed" in found:
            result["state"] = "claimed"
        elif found is not None:
            process = self._processes.get(found.get("pid"))
            result.update(state="present", journal=found, apply_running=process is not None and process.alive,
                          current=[{"path": e["path"], "name": e["name"],
                                    "value": self._state(self.registry.get(e["path"], e["name"]))}
                                   for e in found["backup"]])
        return result

    def _op_restore(self, args: dict) -> dict:
        folder = self._journal_folder(create=False)
        journal = folder.read(args["apply_id"]) if folder is not None else None
        if journal is None or "claimed" in journal:
            raise ScriptFailed(f"no journal of apply {args['apply_id']} on this host: nothing of it to restore")
        index = {(e["path"].casefold(), e["name"].casefold()): i for i, e in enumerate(journal["backup"])}
        results = []
        for value in args["values"]:
            path, name = value["path"], value["name"]
            before = self.registry.get(path, name)
            i = index.get((path.casefold(), name.casefold()))
            status, error = "unchanged", None
            if i is None:
                status, error = "refused", f"not in the backup of apply {args['apply_id']} on this host"
            elif _written_by(journal["results"][i], self._state(before)):
                entry = journal["backup"][i]
                if entry["existed"] and not (before and before.same_as(entry["type"], entry["data"])):
                    self.registry = self.registry.set(path, name, entry["type"], entry["data"])
                    status = "restored"
                elif not entry["existed"] and before is not None:
                    self.registry = self.registry.delete(path, name)
                    status = "deleted"
            results.append({"path": path, "name": name, "status": status, "before": self._state(before),
                            "after": self._state(self.registry.get(path, name)), "error": error})
        return {"apply_id": args["apply_id"], "completed": True, "results": results}

    def _op_reboot(self, args: dict) -> dict:
        last_boot = _utc(self.last_boot)
        if self.shutdown_scheduled:  # shutdown.exe: "A system shutdown has already been scheduled." (1190)
            return {"scheduled": False, "already_scheduled": True, "last_boot": last_boot}
        if not self.reboot_aborted:  # shutdown.exe /r /t N: the restart begins N seconds later, as reboot.ps1 asked
            self.shutdown_scheduled = True  # until then a second shutdown.exe exits 1190, as on Windows
            threading.Timer(float(args["delay_s"]), self.reboot).start()
        if self.drop_reboot_answer and self.on_network_drop:
            self.drop_reboot_answer = False  # one drop per fault
            self.on_network_drop(self.network_down_s)  # the answer below never reaches the client
        return {"scheduled": True, "already_scheduled": False, "last_boot": last_boot}

    def _op_last_boot(self, args: dict) -> dict:
        return {"last_boot": _utc(self.last_boot)}

    def _op_preflight(self, args: dict) -> dict:
        """preflight.ps1: the OS, the journal folder as Test-TrJournalFolder judges it, the WSMan:\\localhost quotas."""
        folder = self.journal_folder
        state = {"path": JOURNAL_PATH, "exists": folder is not None,
                 "owner": folder.owner_text if folder is not None else None,
                 "problem": folder.problem() if folder is not None else None}
        quotas = {name: getattr(self.quotas, name) for name in QUOTA_FIELDS}
        return {"os": self._os_facts(), "journal_folder": state,
                "winrm": {"available": True, "reason": None, **quotas, "policy": []}}

    def reboot(self) -> None:
        """WinRM goes away at once and the boot happens as it comes back: Windows sets LastBootUpTime at boot."""
        if self.on_reboot:
            self.on_reboot(self.profile.boot_seconds, self._boot)
        else:
            self._boot()

    def _boot(self) -> None:
        """Boot again: Group Policy is processed, then Schannel and WinHTTP load the registry."""
        with self._lock:
            self.registry = self.policy.process(self.registry, force=True)
            self.boot_registry = self.registry
            self.reboots += 1
            self.shutdown_scheduled = False  # the shutdown that was pending is the one that happened
            # LastBootUpTime has whole seconds here; a restart within the same second as the last one cannot happen
            self.last_boot = max(datetime.now(timezone.utc).replace(microsecond=0),
                                 self.last_boot + timedelta(seconds=1))

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

    @property
    def apply_running(self) -> bool:
        """An apply process is alive (the journal's pid, as Get-Process finds it): what a test waits on."""
        with self._lock:
            return any(process.alive for process in self._processes.values())


def _utc(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class ScriptFailed(Exception):
    """An operation fails as a whole, as its script would: the answer is ok:false with this text."""


def _written_by(result: dict, live: dict | None) -> bool:
    """restore.ps1's rule: journaled as written, or holding exactly what was planned and no longer what was before."""
    return result["status"] == "written" or (live == result["planned"] and live != result["before"])


def _not_recognized(command_line: str) -> CommandResult:
    word = command_line.split(" ", 1)[0][:80] or "(empty)"
    return CommandResult(stdout="", stderr=clixml_error(
        f"The term '{word}' is not recognized as a script this simulated host knows (tls-runbook simulator)."),
        exit_code=1)
