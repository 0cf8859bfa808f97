"""Fleet runs: the runbook notebooks executed by papermill for every host, hosts in parallel, into one bundle.

Notebooks run on a pool of worker processes (one kernel per notebook; papermill's working directory is per
process, never shared between threads); a host holds a worker only while one of its notebooks runs. A host's chain stops at its first failed notebook and keeps that partial notebook; other
hosts go on. Connection failures before anything could have changed a host are retried with backoff.

Nothing waits for the end of the run to reach the bundle: papermill writes each executed notebook into it after
every cell and the kernels write their evidence files straight into the host's folder, all of it scrubbed of
credential values on the way in; the manifest is re-signed as each host starts and ends (see :mod:`.bundle`). A
run stopped by Ctrl-C, SIGTERM or the runner's death leaves a valid partial bundle that ``resume_fleet`` continues
(see :mod:`.supervision` for how workers and kernels follow the runner).

Per host, the notebooks leave fixed evidence files (see :mod:`runbook_lib.notebook`); the summary is built from
those files, not from notebook outputs.

One host's chain is :mod:`.host_chain`; the local executor that runs the chains on a worker pool, holding nothing
for a host while it restarts, is :mod:`.scheduler` (and :mod:`.dask_executor` the dask one).
"""

from __future__ import annotations

import os
import sys
import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from .. import __version__
from . import canary, evidence, provenance, report, supervision
from .bundle import LiveBundle, check_out_folder, hold_run, remove_debris
from ..core.errors import InputError
from .dask_executor import run_dask
from .scheduler import run_local
from .workers import host_record
from .capacity import machine_parallel
from .progress import progress_display
from .options import MAX_PARALLEL, NOTEBOOKS, RunOptions, notebooks_folder
from ..runbook.kernels import shared_template
from .signing import SigningKey, new_run_key


# --- the fleet -------------------------------------------------------------------------------------------------
@dataclass
class FleetRun:
    run_id: str
    root: Path
    rows: list[report.HostSummary] = field(default_factory=list)
    verify: evidence.VerifyResult | None = None
    interrupted: bool = False
    key: SigningKey | None = None
    stopped: str | None = None  # why a canary stopped the fleet (one line), when one did

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        if self.stopped:
            return 1
        return 0 if self.rows and all(r.outcome in report.SUCCESS_OUTCOMES for r in self.rows) else 1

    def key_lines(self) -> list[str]:
        """What the change ticket needs to check this bundle later."""
        if self.key is None:
            return []
        return [f"Signed with the {self.key.origin}: {self.key.fingerprint}",
                f"Public key: {self.key.public_text}",
                f"Check it later with: tls-runbook evidence verify {self.root} --expect-key {self.key.fingerprint}"]


def new_run_id() -> str:
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def run_fleet(inventory_path: Path | str, options: RunOptions, out: Path | str, *,
              notebooks_dir: Path | str | None = None, secrets: list[str] | None = None,
              signing_key: SigningKey | None = None, progress_stream=sys.stderr) -> FleetRun:
    """Run the runbook on every selected host, writing the evidence bundle ``out/<run-id>/`` as it goes."""
    from ..remote.inventory import load_inventory

    options.validate()
    inventory = load_inventory(inventory_path)
    entries = inventory.select(options.limit)
    hosts = [entry.name for entry in entries]
    reason = None
    if options.parallel is None:
        chosen, reason = machine_parallel(len(hosts), MAX_PARALLEL)
        options = replace(options, parallel=chosen)
    folder = notebooks_folder(notebooks_dir)
    references = sorted({entry.credential for entry in entries})
    secrets = _resolve_secrets(references) if secrets is None else secrets
    key = signing_key or new_run_key()
    check_out_folder(Path(out), len(hosts), len(options.notebooks))
    if reason:  # after every check: bad input stays one line
        print(reason, file=progress_stream, flush=True)
    run_id = new_run_id()
    live = LiveBundle(Path(out) / run_id, key)
    scrubber = evidence.Scrubber(secrets)
    live.create({
        "run_id": run_id, "started_at": _now(), "ended_at": None,
        "operator": provenance.operator_identity(), "machine": provenance.machine(),
        "command_line": [scrubber.scrub_bytes(a.encode("utf-8"))[0].decode("utf-8", "replace")
                         for a in provenance.command_line()],
        "tool": {"version": __version__, "sha256": provenance.tool_digest()},
        "notebooks": provenance.file_digests([folder / f"{NOTEBOOKS[n]}.ipynb" for n in options.notebooks]),
        "inventory": {"name": Path(inventory_path).name, "path": str(Path(inventory_path).resolve()),
                      "sha256": inventory.digest},
        "parameters": {**asdict(options), "notebooks": list(options.notebooks)},
        "credential_references": references, "simulated": False, "resumes": [],
    }, hosts)
    run = FleetRun(run_id, live.root, key=key)
    print("\n".join(run.key_lines()[:2]), file=progress_stream, flush=True)
    with hold_run(live.root):
        return _execute(run, live, hosts, hosts, str(Path(inventory_path).resolve()), folder, options, secrets,
                        progress_stream, {})


def resume_fleet(root: Path | str, *, inventory_path: Path | str | None = None,
                 notebooks_dir: Path | str | None = None, signing_key: SigningKey | None = None,
                 expected_key: str | None = None, secrets: list[str] | None = None,
                 progress_stream=sys.stderr) -> FleetRun:
    """Continue a partial run: only the hosts that did not finish, each in a fresh folder beside what its earlier
    attempt left (``attempt-<n>/``), so the first apply's backup stays the one a rollback restores."""
    root = Path(root)
    evidence.load_manifest(root)  # not a bundle: say so before leaving a lock file beside it
    with hold_run(root):
        remove_debris(root)
        return _resume(root, inventory_path, notebooks_dir, signing_key, expected_key, secrets, progress_stream)


def _resume(root: Path, inventory_path, notebooks_dir, signing_key, expected_key, secrets, progress_stream):
    from ..remote.inventory import load_inventory

    manifest = evidence.current_manifest(root)
    references = [str(r) for r in manifest.get("credential_references", [])]
    secrets = _resolve_secrets(references) if secrets is None else secrets
    check = evidence.verify(root, secrets, expected_key=expected_key)
    if not check.ok:
        first = next((line for line in check.lines() if not line.startswith(("run:", "leak scan:"))), "")
        raise InputError(f"{root} does not verify ({first}); resume continues only a bundle it can trust")
    if manifest.get("complete") is True:
        raise InputError(f"run {manifest.get('run_id')} is complete: nothing to resume")
    try:
        parameters = manifest["parameters"]
        options = RunOptions(**{**parameters, "notebooks": tuple(parameters["notebooks"])}).validate()
        recorded = manifest["inventory"]
        done = {h["name"]: report.HostSummary(**h["summary"]) for h in manifest["hosts"] if h["state"] == "done"}
        hosts = [h["name"] for h in manifest["hosts"]]
    except (KeyError, TypeError) as exc:
        raise InputError(f"{root / evidence.MANIFEST}: not a run this version can resume ({exc})") from None
    inventory_path = Path(inventory_path or recorded["path"])
    if load_inventory(inventory_path).digest != recorded["sha256"]:
        raise InputError(f"{inventory_path} is not the inventory this run started with (its SHA-256 differs)")
    signer = manifest["signature"]["signer"]
    if signer.startswith("operator key") and (signing_key is None
                                              or signing_key.fingerprint != manifest["signature"]["fingerprint"]):
        raise InputError(f"this run is signed by {signer} ({manifest['signature']['fingerprint']}): pass the same "
                         "key with --signing-key to resume it")
    key = signing_key or new_run_key()
    todo = [host for host in hosts if host not in done]
    folder = notebooks_folder(notebooks_dir)
    check_out_folder(root.parent, len(todo), len(options.notebooks))
    live = LiveBundle(root, key)
    live.update(fold=True)  # the stopped run's seals, before its hosts' files move
    for host in todo:
        live.set_aside(host)
    scrubber = evidence.Scrubber(secrets)
    live.update(state="running", ended_at=None, resumes=[*manifest.get("resumes", []), {
        "at": _now(), "operator": provenance.operator_identity(), "machine": provenance.machine(),
        "command_line": [scrubber.scrub_bytes(a.encode("utf-8"))[0].decode("utf-8", "replace")
                         for a in provenance.command_line()],
        "tool": {"version": __version__, "sha256": provenance.tool_digest()},
        "notebooks": provenance.file_digests([folder / f"{NOTEBOOKS[n]}.ipynb" for n in options.notebooks]),
        "hosts": todo, "previous_signer": manifest["signature"]["fingerprint"]}])
    run = FleetRun(str(manifest["run_id"]), root, key=key)
    print(f"Resuming {len(todo)} of {len(hosts)} host(s) of run {run.run_id}", file=progress_stream, flush=True)
    print("\n".join(run.key_lines()[:2]), file=progress_stream, flush=True)
    return _execute(run, live, hosts, todo, str(inventory_path.resolve()), folder, options, secrets,
                    progress_stream, done)


def _execute(run: FleetRun, live: LiveBundle, hosts: list[str], todo: list[str], inventory: str, folder: Path,
             options: RunOptions, secrets: list[str], stream, done: dict[str, report.HostSummary]) -> FleetRun:
    """Run ``todo`` into the bundle, then write the summary of every host and seal the run."""
    pending = [report.HostSummary(host, "interrupted", error="no result yet when this summary was written")
               for host in hosts if host not in done]
    report.write_summary(run.root, run.run_id, [*done.values(), *pending], secrets)
    live.update(run_files=True)
    job = {"runner_pid": os.getpid(), "inventory": inventory, "winrm_endpoints": _winrm_endpoints(inventory),
           "folder": str(folder), "root": str(run.root),
           "options": asdict(options), "secrets": secrets, "key": live.key.raw(), "key_origin": live.key.origin}
    stop = supervision.StopRequest(stream)
    with supervision.stop_on_signals(stop), shared_template():
        execute = run_dask if options.executor == "dask" else run_local
        if options.canary is None:
            with progress_display(todo, stream) as progress:
                results = execute(todo, job, options, progress, live, stop)
        else:
            results, run.stopped = _run_canaries_first(execute, todo, job, options, stream, live, stop)
    run.rows = [done[host] if host in done else report.HostSummary(**results[host]) for host in hosts]
    run.interrupted = bool(stop.level) or any(row.outcome == "interrupted" for row in run.rows)
    report.write_summary(run.root, run.run_id, run.rows, secrets)
    finished = not (run.interrupted or run.stopped)
    live.update(run_files=True, fold=True, complete=finished, ended_at=_now(),
                state="interrupted" if run.interrupted else "stopped by a canary" if run.stopped else "complete")
    live.release()
    run.verify = evidence.verify(run.root, secrets, expected_key=live.key.fingerprint)
    return run


def _run_canaries_first(execute: Callable, todo: list[str], job: dict, options: RunOptions, stream,
                        live: LiveBundle, stop: supervision.StopRequest) -> tuple[dict[str, dict], str | None]:
    """The canaries, then the rest only if every canary ended where this run may end (``canary.expected_outcomes``);
    otherwise the rest are recorded as not run and the returned line says why."""
    captions = None
    if options.canary == canary.PER_CAPTION:
        print(f"Canary: reading the OS caption of {len(todo)} host(s) (read-only preflight)", file=stream, flush=True)
        captions = canary.read_captions(todo, job["inventory"], options.parallel)
    first = canary.choose(todo, options.canary, captions)
    rest = [host for host in todo if host not in first]
    live.seal_hosts({host: {"canary": True} for host in first})
    live.update(canary={"hosts": first, "captions": captions, "stopped_by": []})
    print(f"Canary: {', '.join(first)} first; the other {len(rest)} host(s) start only if each ends "
          f"{', '.join(sorted(canary.expected_outcomes(options.apply, options.reboot)))}", file=stream, flush=True)
    with progress_display(first, stream) as progress:
        results = execute(first, job, options, progress, live, stop)
    if not rest:
        return results, None
    if stop.level:
        results.update({host: canary.not_started(host, "not started: the run was stopped", interrupted=True)
                        for host in rest})
        live.seal_hosts({host: host_record(results[host]) for host in rest})
        return results, None
    unexpected = canary.unexpected(results, first, options.apply, options.reboot)
    if not unexpected:
        with progress_display(rest, stream) as progress:
            results.update(execute(rest, job, options, progress, live, stop))
        return results, None
    line = canary.stop_line(results, unexpected, len(rest))
    print(line, file=stream, flush=True)
    why = f"not started: canary {unexpected[0]} ended {results[unexpected[0]]['outcome']}"
    results.update({host: canary.not_started(host, why) for host in rest})
    live.seal_hosts({host: host_record(results[host]) for host in rest})
    live.update(canary={"hosts": first, "captions": captions, "stopped_by": unexpected})
    return results, line


def _winrm_endpoints(inventory_path: str) -> dict[str, tuple[str, int]]:
    """Each host's WinRM endpoint (address, port): two names for one Windows host share it."""
    from ..remote.inventory import load_inventory

    return {entry.name: (entry.address.casefold(), entry.port or (5986 if entry.scheme == "https" else 5985))
            for entry in load_inventory(inventory_path).select(None)}


def _resolve_secrets(references: list[str]) -> list[str]:
    """The credential values to scrub; resolved here, never written anywhere (prompted ones are never asked)."""
    from ..remote.credentials import resolve_credential

    return [resolve_credential(reference).password for reference in references if not reference.startswith("prompt")]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
