"""Fleet runs: the runbook notebooks executed by papermill for every host, hosts in parallel, into one bundle.

Each host runs in its own process (one kernel per notebook; papermill's working directory is per process, never
shared between threads). A host's chain stops at its first failed notebook and keeps that partial notebook; other
hosts go on. Connection failures before anything could have changed a host are retried with backoff.

Nothing waits for the end of the run to reach the bundle: papermill writes each executed notebook into it after
every cell and the kernels write their evidence files straight into the host's folder, all of it scrubbed of
credential values on the way in; the manifest is re-signed as each host starts and ends (see :mod:`.bundle`). A
run stopped by Ctrl-C, SIGTERM or the runner's death leaves a valid partial bundle that ``resume_fleet`` continues
(see :mod:`.supervision` for how workers and kernels follow the runner).

Per host, the notebooks leave fixed evidence files (see :mod:`runbook_lib.notebook`); the summary is built from
those files, not from notebook outputs.
"""

from __future__ import annotations

import contextlib
import json
import math
import multiprocessing
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Callable

from . import __version__, canary, evidence, provenance, report, supervision
from .bundle import MAX_REPORT_BYTES, LiveBundle, check_out_folder, hold_run, remove_debris
from .engine import restart_for_paths
from .errors import InputError, RunbookError, one_line
from .facts import host_problem
from .files import private_folder, read_limited
from .kernels import shared_template
from .signing import SigningKey, new_run_key
from .steps import written_values

NOTEBOOKS = {"01": "01_cause", "02": "02_os_check", "03": "03_registry_remediation",
             "04": "04_powershell_session_fix"}
APPLY_NOTEBOOK = "03"  # the first notebook that can change a host: no automatic retry from here on
RETRYABLE_ERRORS = ("HostUnreachable",)


@dataclass(frozen=True)
class RunOptions:
    notebooks: tuple[str, ...] = tuple(NOTEBOOKS)
    profile: str = "recommended"
    apply: bool = False
    reboot: bool = False
    parallel: int = 4
    timeout_s: float = 1800.0
    retries: int = 2
    retry_backoff_s: float = 2.0
    endpoints: str = "login.microsoftonline.com:443"
    limit: str | None = None
    executor: str = "local"
    scheduler: str | None = None
    cell_timeout_s: int = 900
    record: str | None = None  # a folder: each host's WinRM exchanges are recorded in record/<host>
    canary: int | str | None = None  # N: the first N hosts first; "os": one per OS caption (see runbook_lib.canary)

    def validate(self) -> "RunOptions":
        unknown = [n for n in self.notebooks if n not in NOTEBOOKS]
        if unknown or not self.notebooks:
            raise InputError(f"--notebooks takes a comma-separated subset of {','.join(NOTEBOOKS)}")
        if list(self.notebooks) != sorted(self.notebooks):
            raise InputError("--notebooks must be in runbook order (01,02,03,04)")
        if self.profile not in ("minimal", "recommended"):
            raise InputError("--profile must be minimal or recommended")
        if not 1 <= self.parallel <= 64:
            raise InputError("--parallel must be between 1 and 64")
        if not (math.isfinite(self.timeout_s) and self.timeout_s > 0):
            raise InputError("--timeout must be a positive number of seconds")
        if self.executor not in ("local", "dask"):
            raise InputError("--executor must be local or dask")
        if self.scheduler and self.executor != "dask":
            raise InputError("--scheduler goes with --executor dask")
        if self.scheduler and not _is_scheduler_address(self.scheduler):
            raise InputError("--scheduler must look like tcp://HOST:PORT (or tls://HOST:PORT)")
        if not (self.canary in (None, canary.PER_CAPTION) or
                (type(self.canary) is int and 1 <= self.canary <= canary.MAX_CANARIES)):
            raise InputError(f"--canary takes a number of hosts from 1 to {canary.MAX_CANARIES}, or nothing (one "
                             "host per OS caption)")
        return self


def _is_scheduler_address(text: str) -> bool:
    match = re.fullmatch(r"(?:tcp|tls)://([A-Za-z0-9_.-]{1,253}):(\d{1,5})", text, re.ASCII)
    return match is not None and host_problem(match[1]) is None and 1 <= int(match[2]) <= 65535


def notebooks_folder(explicit: Path | str | None = None) -> Path:
    """The runbook notebooks: given, in the current folder, or beside the package in a clone."""
    candidates = [Path(explicit)] if explicit else [Path.cwd() / "notebooks",
                                                    Path(__file__).resolve().parent.parent / "notebooks"]
    for folder in candidates:
        if (folder / f"{NOTEBOOKS['02']}.ipynb").is_file():
            return folder
    raise InputError("cannot find the runbook notebooks: run from the project folder or pass --notebooks-dir")


# --- one host (runs in a worker process) -------------------------------------------------------------------
_EVIDENCE_IO = "tls-runbook-evidence:"
_write_lock = threading.RLock()  # held while a notebook is written, so a stopping worker can freeze the bundle
_frozen = threading.Event()  # set once a worker has recorded its host as stopped: nothing more may be written


class _EvidenceIO:
    """papermill's writer for the executed notebook: into the bundle after every cell, scrubbed on the way in."""

    def __init__(self, prefix: str, scrubber: evidence.Scrubber):
        self.prefix, self.scrubber = prefix, scrubber

    def _path(self, path: str) -> Path:
        return Path(path[len(self.prefix):])

    def read(self, path: str) -> str:
        return self._path(path).read_text(encoding="utf-8")

    def listdir(self, path: str) -> list[str]:
        raise NotImplementedError("the evidence writer only writes executed notebooks")

    def write(self, buf: str, path: str) -> None:
        with _write_lock:
            if not _frozen.is_set():
                evidence.write_scrubbed(self._path(path), buf, self.scrubber)

    def pretty_path(self, path: str) -> str:
        return str(self._path(path))


def _host_secrets(inventory: str, host: str) -> list[str]:
    """The host's credential value, for scrubbing its notebooks (resolved as its kernels resolve it)."""
    from .errors import RunbookError
    from .inventory import load_inventory
    from .remote.credentials import resolve_credential

    try:
        reference = load_inventory(inventory).get(host).credential
        return [] if reference.startswith("prompt") else [resolve_credential(reference).password]
    except RunbookError:
        return []  # the kernel fails to connect for the same reason, before anything is written


def run_host(host: str, inventory: str, folder: str, root: str, options: dict,
             progress: Callable[[str, str, str], None] | None = None, secrets: list[str] | None = None,
             should_stop: Callable[[], bool] | None = None) -> dict:
    """Execute the host's notebook chain into ``root/hosts/<host>``; returns its summary row as a dict (picklable
    for dask). ``should_stop`` is asked before each notebook: a chain told to stop ends as interrupted."""
    import papermill
    from papermill.exceptions import PapermillExecutionError
    from papermill.iorw import papermill_io

    from .kernels import papermill_options

    opts = RunOptions(**{**options, "notebooks": tuple(options["notebooks"])})
    host_dir = Path(root) / "hosts" / host
    private_folder(host_dir)
    scrubber = evidence.Scrubber(_host_secrets(inventory, host) if secrets is None else secrets)
    prefix = f"{_EVIDENCE_IO}{uuid.uuid4().hex}:"  # one writer per chain: its scrubber is this host's
    papermill_io.register(prefix, _EvidenceIO(prefix, scrubber))
    started = time.monotonic()
    failed_notebook, error, interrupted = "", "", False
    executed: list[str] = []
    for number in opts.notebooks:
        if should_stop is not None and should_stop():
            interrupted = True
            break
        name = NOTEBOOKS[number]
        output = host_dir / f"{name}.ipynb"
        parameters = {"target": host, "inventory": inventory, "profile": opts.profile, "apply": opts.apply,
                      "reboot": opts.reboot, "endpoints": opts.endpoints, "evidence_dir": str(host_dir)}
        if opts.record:
            parameters["record"] = str(Path(opts.record) / host)
        for attempt in range(opts.retries + 1):
            if progress:
                progress(host, name, "running" if attempt == 0 else f"retry {attempt}")
            try:
                papermill.execute_notebook(str(Path(folder) / f"{name}.ipynb"),
                                           prefix + str(output).replace("{", "{{").replace("}", "}}"),
                                           parameters=parameters, kernel_name="python3", progress_bar=False,
                                           cwd=str(host_dir), start_timeout=120,
                                           execution_timeout=opts.cell_timeout_s, **papermill_options())
                failed_notebook, error = "", ""
                break
            except PapermillExecutionError as exc:
                failed_notebook, error = name, f"{exc.ename}: {exc.evalue}".splitlines()[0][:300]
                retry = exc.ename in RETRYABLE_ERRORS and number < APPLY_NOTEBOOK and attempt < opts.retries
                if not retry or (should_stop is not None and should_stop()):
                    break
                time.sleep(opts.retry_backoff_s * 2 ** attempt)
            except Exception as exc:  # noqa: BLE001 - kernel died, timeout: the host fails, the fleet goes on
                failed_notebook, error = name, f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
                if not (_kernel_never_started(exc) and attempt < opts.retries) or \
                        (should_stop is not None and should_stop()):
                    break
                time.sleep(opts.retry_backoff_s * 2 ** attempt)
        executed.append(name)
        _render_html(output, scrubber)
        if failed_notebook:
            break
    row = summarise_host(host, host_dir, failed_notebook, error, executed, interrupted=interrupted)
    row["seconds"] = round(time.monotonic() - started, 1)
    if progress:
        status = "interrupted" if interrupted else "failed" if failed_notebook else row["outcome"]
        progress(host, failed_notebook or ("stopped" if interrupted else "done"), status)
    return row


def _kernel_never_started(exc: Exception) -> bool:
    """A kernel that died before its first reply ran no cell, so starting the notebook again is safe."""
    text = str(exc)
    return "before replying to kernel_info" in text or "Kernel didn't respond" in text


def _render_html(notebook: Path, scrubber: evidence.Scrubber) -> None:
    """An HTML copy an auditor can open without Jupyter (static outputs only)."""
    if not notebook.exists() or _frozen.is_set():
        return
    import nbformat

    from .notebook_html import render

    body = render(nbformat.read(notebook, as_version=4))
    with _write_lock:
        if not _frozen.is_set():
            evidence.write_scrubbed(notebook.with_suffix(".html"), body, scrubber)


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(read_limited(path, MAX_REPORT_BYTES).decode("utf-8"))
        return value if isinstance(value, dict) else {}
    except (OSError, ValueError):
        return {}


def summarise_host(host: str, host_dir: Path, failed_notebook: str, error: str, executed: list[str] | None,
                   interrupted: bool = False) -> dict:
    """The host's summary row, from its evidence files. ``executed`` None: every notebook with an HTML copy."""
    facts = _read_json(host_dir / "facts.json")
    before = _read_json(host_dir / "verdict.json")
    after = _read_json(host_dir / "verdict-after.json")
    applied = _read_json(host_dir / "apply-report.json")
    final = _read_json(host_dir / "outcome.json")
    written = written_values([applied, *(e for e in applied.get("earlier_applies") or [] if isinstance(e, dict))])
    # what the values written (now or by an attempt before a resume) need; else what the plan said before
    restart = restart_for_paths(path for path, _ in written) if written else before.get("restart", "")
    if executed is None:
        executed = [name for name in NOTEBOOKS.values() if (host_dir / f"{name}.html").is_file()]
    if failed_notebook:
        outcome = "failed"
    elif interrupted:
        outcome = "interrupted"
    else:
        outcome = final.get("outcome") or _outcome_without_04(before, after, restart)
    return asdict(report.HostSummary(
        host=host, outcome=outcome,
        simulated=bool(facts.get("simulated") or before.get("simulated") or final.get("simulated")),
        os=(facts.get("os") or {}).get("caption", ""),
        verdict_before=_verdict_word(before), affected_before=before.get("affected"),
        changes_applied=len(written),
        restart=final.get("restart") or restart,
        verdict_after=_verdict_word(after),
        blockers=list(final.get("blockers") or after.get("blockers") or before.get("blockers") or []),
        failed_notebook=failed_notebook, error=error,
        notebooks=[f"hosts/{host}/{name}.html" for name in executed]))


def _verdict_word(verdict: dict) -> str:
    if not verdict:
        return ""
    if verdict.get("blockers"):
        return "blocked"
    return "compliant" if not verdict.get("changes") and not verdict.get("affected") else "fixable"


def _outcome_without_04(before: dict, after: dict, restart: str) -> str:
    """Without notebook 04's own verdict: a host still affected with nothing left to change is not fixed, unless
    what was written waits for a restart."""
    if after and after.get("affected") and not after.get("changes") and not after.get("blockers"):
        return "reboot_pending" if restart == "reboot" else "failed"
    word = _verdict_word(after) or _verdict_word(before)
    return {"compliant": "compliant" if not after else "fixed", "blocked": "blocked"}.get(word, "fixable")


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


class Progress:
    """Live progress: one line per event, and a running tally of hosts done, running and failed."""

    def __init__(self, hosts: list[str], stream=sys.stderr):
        self.state = {host: "queued" for host in hosts}
        self.stream = stream

    def update(self, host: str, step: str, status: str) -> None:
        self.state[host] = status if status in ("failed", "interrupted") else ("done" if step == "done" else step)
        done = sum(1 for s in self.state.values() if s == "done")
        failed = sum(1 for s in self.state.values() if s == "failed")
        running = sum(1 for s in self.state.values() if s not in ("done", "failed", "queued", "interrupted"))
        print(f"[{done} done, {running} running, {failed} failed / {len(self.state)}] {host}: {step} {status}",
              file=self.stream, flush=True)


def _host_record(row: dict) -> dict:
    """A host's entry in the manifest: its state, the outcome fields an auditor reads first, and its summary row.
    A host a stop or a canary kept from finishing is not done, so ``--resume`` runs it."""
    state = row["outcome"] if row["outcome"] in ("interrupted", canary.NOT_RUN) else "done"
    return {"state": state, "outcome": row["outcome"], "failed_notebook": row["failed_notebook"],
            "error": row["error"], "summary": row}


def _worker(job: dict, control, events) -> None:
    """One host in its own process (and process group), on a leash to the runner (see :mod:`.supervision`)."""
    if hasattr(os, "setsid"):
        os.setsid()  # Ctrl-C in the terminal reaches the runner only; the runner decides what the workers do
    supervision.die_with_parent(job["runner_pid"])
    host = job["host"]
    host_dir = Path(job["root"]) / "hosts" / host
    live = LiveBundle(Path(job["root"]), SigningKey.from_raw(job["key"], job["key_origin"]))
    scrubber = evidence.Scrubber(job["secrets"])
    log = Path(tempfile.mkdtemp(prefix="tls-runbook-")) / "kernels.log"
    with log.open("ab") as handle:  # kernels inherit this stderr; the log enters the bundle scrubbed
        os.dup2(handle.fileno(), 2)
    current = {"notebook": ""}

    def keep_log() -> None:
        """The kernels' log into the bundle (its last 4 MiB, scrubbed); the raw copy is deleted."""
        with contextlib.suppress(OSError):
            evidence.write_scrubbed(host_dir / "kernels.log", log.read_bytes()[-MAX_LOG_BYTES:], scrubber)
        shutil.rmtree(log.parent, ignore_errors=True)

    def abandon(why: str) -> None:
        _frozen.set()
        supervision.kill_children()
        _write_lock.acquire(timeout=2)  # held longer only by a thread parked in this guard: its write never ends
        keep_log()
        row = summarise_host(host, host_dir, "", f"{why} during {current['notebook'] or 'start'}", None,
                             interrupted=True)
        live.update(hosts={host: _host_record(row)}, finished=True)
        supervision.kill_children()  # a kernel the main thread was starting meanwhile

    guard = supervision.WorkerGuard(control, abandon).start()

    def send(message: tuple) -> None:
        try:
            events.send(message)
        except OSError:  # nobody reads: the runner is gone
            guard.abandon("the runner stopped")

    def report_progress(h: str, step: str, status: str) -> None:
        current["notebook"] = step
        send(("progress", h, step, status))

    row = run_host(host, job["inventory"], job["folder"], job["root"], job["options"], report_progress,
                   secrets=job["secrets"], should_stop=lambda: guard.stop_requested)
    guard.settle()
    keep_log()
    live.update(hosts={host: _host_record(row)}, finished=True)  # recorded even if the runner dies right now
    send(("result", host, row, None))


MAX_LOG_BYTES = 4 * 1024 * 1024


@dataclass
class _Running:
    process: multiprocessing.Process
    control: Connection
    events: Connection
    deadline: float
    result: dict | None = None


def _next_host(pending: list[str], busy: set, endpoints: dict[str, tuple]) -> str | None:
    """The first pending host whose endpoint no running host shares: one Windows host listed under two names is
    worked on by one process at a time, so the fleet never holds more of its WinRM shells than one run does
    (WinRM 2.0 allows a user 5)."""
    for host in pending:
        if endpoints.get(host, host) not in busy:
            pending.remove(host)
            return host
    return None


def _run_local(hosts: list[str], job: dict, options: RunOptions, progress: Progress, live: LiveBundle,
               stop: supervision.StopRequest) -> dict[str, dict]:
    context = multiprocessing.get_context("spawn")
    pending, running, results, told = list(hosts), {}, {}, 0
    root = Path(job["root"])
    while pending or running:
        while pending and len(running) < options.parallel and not stop.level:
            endpoints = job["winrm_endpoints"]
            host = _next_host(pending, {endpoints.get(h, h) for h in running}, endpoints)
            if host is None:
                break
            control_reader, control_writer = context.Pipe(duplex=False)
            events_reader, events_writer = context.Pipe(duplex=False)
            process = context.Process(target=_worker, args=({**job, "host": host}, control_reader, events_writer),
                                      name=f"tls-runbook {host}", daemon=False)
            live.update(hosts={host: {"state": "running"}})
            process.start()
            control_reader.close()  # the runner keeps only the sending end: its death is the worker's EOF
            events_writer.close()
            running[host] = _Running(process, control_writer, events_reader, time.monotonic() + options.timeout_s)
        if stop.level and pending:
            for host in pending:
                results[host] = summarise_host(host, root / "hosts" / host, "", "not started: the run was stopped",
                                               [], interrupted=True)
                progress.update(host, "not started", "interrupted")
            pending.clear()
        if stop.level > told:
            told = stop.level
            for worker in running.values():
                with contextlib.suppress(OSError):
                    worker.control.send(supervision.STOP_AFTER_NOTEBOOK if told == 1 else supervision.STOP_NOW)
        ready = wait([worker.events for worker in running.values()], timeout=0.5)
        for host, worker in list(running.items()):
            if worker.events in ready or not worker.process.is_alive():
                _drain(worker, host, progress)
            timed_out = time.monotonic() > worker.deadline
            if worker.result is None and worker.process.is_alive() and not timed_out:
                continue
            if worker.result is None and timed_out:
                _stop_worker(worker, ask=True)
                row = summarise_host(host, root / "hosts" / host, "host",
                                     f"timed out after {options.timeout_s:g} s", None)
            elif worker.result is None:
                worker.process.join(5)
                stopped = worker.process.exitcode == 3  # the worker recorded its host as stopped, then exited
                row = summarise_host(host, root / "hosts" / host, "" if stopped else "host",
                                     "stopped by the operator" if stopped else "worker died", None,
                                     interrupted=stopped)
            else:
                row = worker.result
            _stop_worker(worker, ask=False)
            running.pop(host)
            results[host] = row
            live.update(hosts={host: _host_record(row)}, finished=True)
            if worker.result is None:
                progress.update(host, "host", row["outcome"])
    return results


def _drain(worker: _Running, host: str, progress: Progress) -> None:
    with contextlib.suppress(EOFError, OSError):
        while worker.events.poll():
            kind, _, first, second = worker.events.recv()
            if kind == "progress":
                progress.update(host, first, second)
            else:
                worker.result = first


def _stop_worker(worker: _Running, ask: bool) -> None:
    """Make sure the worker has ended: ``ask`` it to stop first (it kills its kernels and records its host), or
    just give it time to exit after its result."""
    if worker.process.is_alive():
        if ask:
            with contextlib.suppress(OSError):
                worker.control.send(supervision.STOP_NOW)
        worker.process.join(15)
    if worker.process.is_alive():
        worker.process.kill()
        worker.process.join(5)
    for connection in (worker.control, worker.events):
        connection.close()


def _run_dask(hosts: list[str], job: dict, options: RunOptions, progress: Progress, live: LiveBundle,
              stop: supervision.StopRequest) -> dict[str, dict]:
    """Hosts as Dask tasks (the workers must see the bundle folder). A stop cancels what has not finished: a local
    cluster's workers end with it, a remote scheduler's workers finish the notebook they are in."""
    try:
        from distributed import Client, LocalCluster, wait as wait_futures
        from distributed import TimeoutError as DaskTimeout
    except ImportError:
        raise InputError("--executor dask needs the dask extra: pip install 'tls-runbook[dask]'") from None
    cluster = None if options.scheduler else LocalCluster(n_workers=options.parallel, threads_per_worker=1,
                                                          processes=True, dashboard_address=None)
    root = Path(job["root"])
    results: dict[str, dict] = {}
    remaining: dict = {}
    try:
        try:
            client = Client(options.scheduler or cluster)
        except OSError as exc:  # distributed says "Timed out trying to connect to ..." and names the address
            raise RunbookError(f"cannot reach the Dask scheduler: {one_line(str(exc), 200)}") from None
        with client:
            pending = list(hosts)

            def submit_next() -> None:
                endpoints = job["winrm_endpoints"]
                host = _next_host(pending, {endpoints.get(h, h) for h in remaining.values()}, endpoints)
                if host is not None:
                    remaining[client.submit(run_host, host, job["inventory"], job["folder"], job["root"],
                                            job["options"], pure=False)] = host
                    live.update(hosts={host: {"state": "running"}})

            for _ in hosts:
                submit_next()
            while (remaining or pending) and not stop.level:
                try:
                    done, _ = wait_futures(list(remaining), timeout=0.5, return_when="FIRST_COMPLETED")
                except DaskTimeout:
                    continue
                for future in done:
                    host = remaining.pop(future)
                    try:
                        results[host] = future.result()
                    except Exception as exc:  # noqa: BLE001 - one host's failure never stops the fleet
                        results[host] = summarise_host(host, root / "hosts" / host, "host",
                                                       f"{type(exc).__name__}: {exc}"[:300], None)
                    live.update(hosts={host: _host_record(results[host])}, finished=True)
                    progress.update(host, "done" if results[host]["outcome"] != "failed" else "host",
                                    results[host]["outcome"])
                    submit_next()
            if remaining:
                client.cancel(list(remaining))
    finally:
        if cluster is not None:
            cluster.close()
    for host in [*remaining.values(), *pending]:
        results[host] = summarise_host(host, root / "hosts" / host, "", "stopped by the operator", None,
                                       interrupted=True)
        live.update(hosts={host: _host_record(results[host])}, finished=True)
    return results


def run_fleet(inventory_path: Path | str, options: RunOptions, out: Path | str, *,
              notebooks_dir: Path | str | None = None, secrets: list[str] | None = None,
              signing_key: SigningKey | None = None, progress_stream=sys.stderr) -> FleetRun:
    """Run the runbook on every selected host, writing the evidence bundle ``out/<run-id>/`` as it goes."""
    from .inventory import load_inventory

    options.validate()
    inventory = load_inventory(inventory_path)
    entries = inventory.select(options.limit)
    hosts = [entry.name for entry in entries]
    folder = notebooks_folder(notebooks_dir)
    references = sorted({entry.credential for entry in entries})
    secrets = _resolve_secrets(references) if secrets is None else secrets
    key = signing_key or new_run_key()
    check_out_folder(Path(out), len(hosts), len(options.notebooks))
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
    from .inventory import load_inventory

    manifest = evidence.load_manifest(root)
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
        execute = _run_dask if options.executor == "dask" else _run_local
        if options.canary is None:
            results = execute(todo, job, options, Progress(todo, stream), live, stop)
        else:
            results, run.stopped = _run_canaries_first(execute, todo, job, options, stream, live, stop)
    run.rows = [done[host] if host in done else report.HostSummary(**results[host]) for host in hosts]
    run.interrupted = bool(stop.level) or any(row.outcome == "interrupted" for row in run.rows)
    report.write_summary(run.root, run.run_id, run.rows, secrets)
    finished = not (run.interrupted or run.stopped)
    live.update(run_files=True, complete=finished, ended_at=_now(),
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
    live.update(canary={"hosts": first, "captions": captions, "stopped_by": []},
                hosts={host: {"canary": True} for host in first})
    print(f"Canary: {', '.join(first)} first; the other {len(rest)} host(s) start only if each ends "
          f"{', '.join(sorted(canary.expected_outcomes(options.apply, options.reboot)))}", file=stream, flush=True)
    results = execute(first, job, options, Progress(first, stream), live, stop)
    if not rest:
        return results, None
    if stop.level:
        results.update({host: canary.not_started(host, "not started: the run was stopped", interrupted=True)
                        for host in rest})
        live.update(hosts={host: _host_record(results[host]) for host in rest})
        return results, None
    unexpected = canary.unexpected(results, first, options.apply, options.reboot)
    if not unexpected:
        results.update(execute(rest, job, options, Progress(rest, stream), live, stop))
        return results, None
    line = canary.stop_line(results, unexpected, len(rest))
    print(line, file=stream, flush=True)
    why = f"not started: canary {unexpected[0]} ended {results[unexpected[0]]['outcome']}"
    results.update({host: canary.not_started(host, why) for host in rest})
    live.update(canary={"hosts": first, "captions": captions, "stopped_by": unexpected},
                hosts={host: _host_record(results[host]) for host in rest})
    return results, line


def _winrm_endpoints(inventory_path: str) -> dict[str, tuple[str, int]]:
    """Each host's WinRM endpoint (address, port): two names for one Windows host share it."""
    from .inventory import load_inventory

    return {entry.name: (entry.address.casefold(), entry.port or (5986 if entry.scheme == "https" else 5985))
            for entry in load_inventory(inventory_path).select(None)}


def _resolve_secrets(references: list[str]) -> list[str]:
    """The credential values to scrub; resolved here, never written anywhere (prompted ones are never asked)."""
    from .remote.credentials import resolve_credential

    return [resolve_credential(reference).password for reference in references if not reference.startswith("prompt")]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
