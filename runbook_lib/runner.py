"""Fleet runs: the runbook notebooks executed by papermill for every host, hosts in parallel, into one bundle.

Each host runs in its own process (one kernel per notebook; papermill's working directory is per process, never
shared between threads). A host's chain stops at its first failed notebook and keeps that partial notebook; other
hosts go on. Connection failures before anything could have changed a host are retried with backoff. Executed
notebooks are staged outside the bundle, scrubbed of credential values, then copied in.

Per host, the notebooks leave fixed evidence files (see :mod:`runbook_lib.notebook`); the summary is built from
those files, not from notebook outputs.
"""

from __future__ import annotations

import getpass
import json
import multiprocessing
import os
import queue as queue_module
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from . import __version__, evidence, report
from .errors import InputError

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
        if self.timeout_s <= 0:
            raise InputError("--timeout must be positive")
        if self.executor not in ("local", "dask"):
            raise InputError("--executor must be local or dask")
        if self.scheduler and self.executor != "dask":
            raise InputError("--scheduler goes with --executor dask")
        return self


def notebooks_folder(explicit: Path | str | None = None) -> Path:
    """The runbook notebooks: given, in the current folder, or beside the package in a clone."""
    candidates = [Path(explicit)] if explicit else [Path.cwd() / "notebooks",
                                                    Path(__file__).resolve().parent.parent / "notebooks"]
    for folder in candidates:
        if (folder / f"{NOTEBOOKS['02']}.ipynb").is_file():
            return folder
    raise InputError("cannot find the runbook notebooks: run from the project folder or pass --notebooks-dir")


# --- one host (runs in a worker process) -------------------------------------------------------------------
def run_host(host: str, inventory: str, folder: str, staging: str, options: dict,
             progress: Callable[[str, str, str], None] | None = None) -> dict:
    """Execute the host's notebook chain; returns its summary row as a dict (picklable for dask)."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from .kernels import papermill_options

    opts = RunOptions(**{**options, "notebooks": tuple(options["notebooks"])})
    host_dir = Path(staging) / host
    host_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    failed_notebook, error = "", ""
    executed: list[str] = []
    for number in opts.notebooks:
        name = NOTEBOOKS[number]
        output = host_dir / f"{name}.ipynb"
        parameters = {"target": host, "inventory": inventory, "profile": opts.profile, "apply": opts.apply,
                      "reboot": opts.reboot, "endpoints": opts.endpoints, "evidence_dir": str(host_dir)}
        for attempt in range(opts.retries + 1):
            if progress:
                progress(host, name, "running" if attempt == 0 else f"retry {attempt}")
            try:
                papermill.execute_notebook(str(Path(folder) / f"{name}.ipynb"), str(output), parameters=parameters,
                                           kernel_name="python3", progress_bar=False, cwd=str(host_dir),
                                           start_timeout=120, execution_timeout=opts.cell_timeout_s,
                                           **papermill_options())
                failed_notebook, error = "", ""
                break
            except PapermillExecutionError as exc:
                failed_notebook, error = name, f"{exc.ename}: {exc.evalue}".splitlines()[0][:300]
                retry = exc.ename in RETRYABLE_ERRORS and number < APPLY_NOTEBOOK and attempt < opts.retries
                if not retry:
                    break
                time.sleep(opts.retry_backoff_s * 2 ** attempt)
            except Exception as exc:  # noqa: BLE001 - kernel died, timeout: the host fails, the fleet goes on
                failed_notebook, error = name, f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
                if not (_kernel_never_started(exc) and attempt < opts.retries):
                    break
                time.sleep(opts.retry_backoff_s * 2 ** attempt)
        executed.append(name)
        _render_html(output)
        if failed_notebook:
            break
    row = summarise_host(host, host_dir, failed_notebook, error, executed)
    row["seconds"] = round(time.monotonic() - started, 1)
    if progress:
        progress(host, failed_notebook or "done", "failed" if failed_notebook else row["outcome"])
    return row


def _kernel_never_started(exc: Exception) -> bool:
    """A kernel that died before its first reply ran no cell, so starting the notebook again is safe."""
    text = str(exc)
    return "before replying to kernel_info" in text or "Kernel didn't respond" in text


def _render_html(notebook: Path) -> None:
    """An HTML copy an auditor can open without Jupyter (static outputs only)."""
    from .notebook_html import write_html

    write_html(notebook)


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
        return value if isinstance(value, dict) else {}
    except (OSError, ValueError):
        return {}


def summarise_host(host: str, host_dir: Path, failed_notebook: str, error: str, executed: list[str]) -> dict:
    facts = _read_json(host_dir / "facts.json")
    before = _read_json(host_dir / "verdict.json")
    after = _read_json(host_dir / "verdict-after.json")
    applied = _read_json(host_dir / "apply-report.json")
    final = _read_json(host_dir / "outcome.json")
    outcome = "failed" if failed_notebook else final.get("outcome") or _outcome_without_04(before, after)
    return asdict(report.HostSummary(
        host=host, outcome=outcome,
        simulated=bool(facts.get("simulated") or before.get("simulated") or final.get("simulated")),
        os=(facts.get("os") or {}).get("caption", ""),
        verdict_before=_verdict_word(before), affected_before=before.get("affected"),
        changes_applied=sum(1 for r in applied.get("results", []) if r.get("status") == "written"),
        restart=final.get("restart") or before.get("restart", ""),
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


def _outcome_without_04(before: dict, after: dict) -> str:
    word = _verdict_word(after) or _verdict_word(before)
    return {"compliant": "compliant" if not after else "fixed", "blocked": "blocked"}.get(word, "fixable")


# --- the fleet -------------------------------------------------------------------------------------------------
@dataclass
class FleetRun:
    run_id: str
    root: Path
    rows: list[report.HostSummary] = field(default_factory=list)
    verify: evidence.VerifyResult | None = None

    @property
    def exit_code(self) -> int:
        return 0 if self.rows and all(r.outcome in report.SUCCESS_OUTCOMES for r in self.rows) else 1


def new_run_id() -> str:
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


class Progress:
    """Live progress: one line per event, and a running tally of hosts done, running and failed."""

    def __init__(self, hosts: list[str], stream=sys.stderr):
        self.state = {host: "queued" for host in hosts}
        self.stream = stream

    def update(self, host: str, step: str, status: str) -> None:
        self.state[host] = "failed" if status == "failed" else ("done" if step == "done" else f"{step}")
        done = sum(1 for s in self.state.values() if s == "done")
        failed = sum(1 for s in self.state.values() if s == "failed")
        running = sum(1 for s in self.state.values() if s not in ("done", "failed", "queued"))
        print(f"[{done} done, {running} running, {failed} failed / {len(self.state)}] {host}: {step} {status}",
              file=self.stream, flush=True)


def _worker(host, inventory, folder, staging, options, events):
    if hasattr(os, "setsid"):
        os.setsid()  # its own process group, so a timeout also ends the kernels it started
    log = Path(staging) / host / "kernels.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as handle:  # kernels inherit this stderr: their chatter goes to the host's log
        os.dup2(handle.fileno(), 2)
    row = run_host(host, inventory, folder, staging, options,
                   lambda h, step, status: events.put(("progress", h, step, status)))
    events.put(("result", host, row, None))


def _stop(process: multiprocessing.Process) -> None:
    if hasattr(os, "killpg") and process.pid:
        try:
            os.killpg(process.pid, 9)
        except OSError:
            pass
    process.kill()
    process.join(5)


def _run_local(hosts: list[str], inventory: str, folder: str, staging: str, options: RunOptions,
               progress: Progress) -> dict[str, dict]:
    context = multiprocessing.get_context("spawn")
    events = context.Queue()
    pending, running, results = list(hosts), {}, {}
    while pending or running:
        while pending and len(running) < options.parallel:
            host = pending.pop(0)
            process = context.Process(target=_worker, args=(host, inventory, folder, staging, asdict(options), events),
                                      daemon=False)
            process.start()
            running[host] = (process, time.monotonic() + options.timeout_s)
        try:
            kind, host, a, b = events.get(timeout=0.5)
            if kind == "progress":
                progress.update(host, a, b)
            elif host in running:
                results[host] = a
                running.pop(host)[0].join(10)
        except queue_module.Empty:
            pass
        for host, (process, deadline) in list(running.items()):
            crashed = not process.is_alive() and process.exitcode != 0  # a clean exit has its result queued
            if time.monotonic() > deadline or crashed:
                _stop(process)
                running.pop(host)
                why = f"timed out after {options.timeout_s:g} s" if time.monotonic() > deadline else "worker died"
                results[host] = summarise_host(host, Path(staging) / host, "host", why, [])
                progress.update(host, "host", "failed")
    return results


def _run_dask(hosts: list[str], inventory: str, folder: str, staging: str, options: RunOptions,
              progress: Progress) -> dict[str, dict]:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise InputError("--executor dask needs the dask extra: pip install 'tls-runbook[dask]'") from None
    cluster = None if options.scheduler else LocalCluster(n_workers=options.parallel, threads_per_worker=1,
                                                          processes=True, dashboard_address=None)
    try:
        with Client(options.scheduler or cluster) as client:
            futures = {client.submit(run_host, host, inventory, folder, staging, asdict(options), pure=False): host
                       for host in hosts}
            results = {}
            for future in as_completed(futures):
                host = futures[future]
                try:
                    results[host] = future.result(timeout=options.timeout_s)
                except Exception as exc:  # noqa: BLE001 - one host's failure never stops the fleet
                    results[host] = summarise_host(host, Path(staging) / host, "host",
                                                   f"{type(exc).__name__}: {exc}"[:300], [])
                progress.update(host, "done" if results[host]["outcome"] != "failed" else "host",
                                results[host]["outcome"])
            return results
    finally:
        if cluster is not None:
            cluster.close()


def run_fleet(inventory_path: Path | str, options: RunOptions, out: Path | str, *,
              notebooks_dir: Path | str | None = None, secrets: list[str] | None = None,
              progress_stream=sys.stderr) -> FleetRun:
    """Run the runbook on every selected host and write the evidence bundle ``out/<run-id>/``."""
    from .inventory import load_inventory
    from .kernels import shared_template
    from .remote.credentials import resolve_credential

    options.validate()
    inventory = load_inventory(inventory_path)
    hosts = [entry.name for entry in inventory.select(options.limit)]
    folder = notebooks_folder(notebooks_dir)
    references = sorted({entry.credential for entry in inventory.select(options.limit)})
    if secrets is None:
        secrets = []
        for reference in references:  # the values to scrub; resolved here, never written anywhere
            if not reference.startswith("prompt"):
                secrets.append(resolve_credential(reference).password)
    run_id = new_run_id()
    run = FleetRun(run_id, Path(out) / run_id)
    run.root.mkdir(parents=True, exist_ok=False)
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    progress = Progress(hosts, progress_stream)
    with tempfile.TemporaryDirectory(prefix="tls-runbook-") as staging, shared_template():
        execute = _run_dask if options.executor == "dask" else _run_local
        results = execute(hosts, str(Path(inventory_path).resolve()), str(folder), staging, options, progress)
        scrubber = evidence.Scrubber(secrets)
        for host in hosts:
            source = Path(staging) / host
            if source.is_dir():
                for path in sorted(source.rglob("*")):
                    if path.is_file():
                        scrubber.copy(path, run.root / "hosts" / host / path.relative_to(source))
    run.rows = [report.HostSummary(**results[host]) for host in hosts]
    report.write_summary(run.root, run.run_id, run.rows)
    evidence.write_manifest(run.root, {
        "run_id": run.run_id, "started_at": started_at,
        "ended_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "operator": _operator(), "tool_version": __version__,
        "inventory": {"name": Path(inventory_path).name, "sha256": inventory.digest},
        "parameters": {**asdict(options), "notebooks": list(options.notebooks)},
        "credential_references": references,
        "simulated": any(row.simulated for row in run.rows),
        "hosts": [{"name": r.host, "outcome": r.outcome, "failed_notebook": r.failed_notebook, "error": r.error}
                  for r in run.rows],
    })
    run.verify = evidence.verify(run.root, secrets)
    return run


def _operator() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name is not worth failing a run for
        return "unknown"
