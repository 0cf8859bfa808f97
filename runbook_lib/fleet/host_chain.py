"""One host's chain of notebooks, as a worker process runs it: each notebook through papermill with the host's
parameters, every output written scrubbed straight into the bundle, retries only before anything could have
changed the host, and the host's summary row built from its fixed evidence files.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from . import evidence, report
from ..core.engine import restart_for_paths
from ..core.errors import RunbookError
from ..core.files import private_folder, read_limited, write_atomic
from .options import APPLY_NOTEBOOK, NOTEBOOKS, RETRYABLE_ERRORS, RunOptions
from ..runbook.operations import MAX_REPORT_BYTES, written_values
from ..runbook.reboot import EVIDENCE_FILE as REBOOT_FILE


# --- one host (runs in a worker process) -------------------------------------------------------------------
_EVIDENCE_IO = "tls-runbook-evidence:"
write_lock = threading.RLock()  # held while a notebook is written, so a stopping worker can freeze the bundle
writes_frozen = threading.Event()  # set once a worker has recorded its host as stopped: nothing more may be written


class _EvidenceIO:
    """papermill's writer for the executed notebook: into the bundle after every code cell, scrubbed on the way in.

    A notebook is saved whole a dozen times while it runs, and most of each save was nbformat's indented JSON (the
    pure-Python encoder) and a scrub of every cell again. Here a save is compact JSON (the C encoder; the same
    notebook for Jupyter and nbformat) and only the cells that changed since the last save are scrubbed: a cell is
    a JSON object of its own, so nothing the scrubber decodes (escapes, tags, base64 or hex runs) runs from one
    cell into the next. The run's final check still reads every file whole."""

    def __init__(self, prefix: str, scrubber: evidence.Scrubber):
        self.prefix, self.scrubber = prefix, scrubber
        self._cells: dict[tuple[Path, int], tuple[bytes, bytes]] = {}  # each cell as last saved, and scrubbed

    def _path(self, path: str) -> Path:
        return Path(path[len(self.prefix):])

    def read(self, path: str) -> str:
        return self._path(path).read_text(encoding="utf-8")

    def listdir(self, path: str) -> list[str]:
        raise NotImplementedError("the evidence writer only writes executed notebooks")

    def write(self, buf: str, path: str) -> None:
        """papermill's own writes (its final one, an error marker) arrive as nbformat text, where every multi-line
        string is a list of lines. Joined again, the cells are those the engine saved last, which are not scanned
        again (they used to be: a tenth of a worker's CPU)."""
        import nbformat
        from nbformat.v4.rwbase import rejoin_lines

        self.write_notebook(rejoin_lines(nbformat.from_dict(json.loads(buf))), path)

    def write_notebook(self, notebook: dict, path: str) -> None:
        """The save :mod:`.evidence_engine` makes, from the notebook itself."""
        target = self._path(path)
        cells = b",".join(self._scrubbed_cell(target, index, cell) for index, cell in enumerate(notebook["cells"]))
        rest = self.scrubber.scrub_bytes(_compact({k: v for k, v in notebook.items() if k != "cells"}))[0]
        with write_lock:
            if not writes_frozen.is_set():
                write_atomic(target, b'{"cells":[' + cells + b"]," + rest[1:])  # keys in nbformat's sorted order

    def pretty_path(self, path: str) -> str:
        return str(self._path(path))

    def forget(self) -> None:
        self._cells.clear()

    def _scrubbed_cell(self, target: Path, index: int, cell: dict) -> bytes:
        raw = _compact(cell)
        known = self._cells.get((target, index))
        if known is None or known[0] != raw:
            known = self._cells[(target, index)] = (raw, self.scrubber.scrub_bytes(raw)[0])
        return known[1]


def _compact(value: dict) -> bytes:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _host_secrets(inventory: str, host: str) -> list[str]:
    """The host's credential value, for scrubbing its notebooks (resolved as its kernels resolve it)."""
    from ..remote.inventory import load_inventory
    from ..remote.credentials import resolve_credential

    try:
        reference = load_inventory(inventory).get(host).credential
        return [] if reference.startswith("prompt") else [resolve_credential(reference).password]
    except RunbookError:
        return []  # the kernel fails to connect for the same reason, before anything is written


def run_host(host: str, inventory: str, folder: str, root: str, options: dict,
             progress: Callable[[str, str, str], None] | None = None, secrets: list[str] | None = None,
             should_stop: Callable[[], bool] | None = None, wait_for_reboot: bool = True) -> dict:
    """Execute the host's notebook chain into ``root/hosts/<host>``; returns its summary row as a dict (picklable
    for dask). ``should_stop`` is asked before each notebook: a chain told to stop ends as interrupted.

    Without ``wait_for_reboot`` notebook 03 only schedules a restart it needs, and the chain ends there with
    ``awaiting_reboot`` set in the row: the caller waits for the new boot time and runs the rest afterwards."""
    import papermill
    from papermill.exceptions import PapermillExecutionError
    from papermill.iorw import papermill_io

    from ..runbook.kernels import papermill_options
    from .evidence_engine import ENGINE_NAME

    opts = RunOptions(**{**options, "notebooks": tuple(options["notebooks"])})
    # papermill runs each notebook from the host folder, so a relative bundle path (``--out evidence``) would point
    # somewhere else by the time the output is written.
    host_dir = Path(root).resolve() / "hosts" / host
    private_folder(host_dir)
    scrubber = evidence.Scrubber(_host_secrets(inventory, host) if secrets is None else secrets)
    prefix = f"{_EVIDENCE_IO}{uuid.uuid4().hex}:"  # one writer per chain: its scrubber is this host's
    writer = _EvidenceIO(prefix, scrubber)
    papermill_io.register(prefix, writer)
    started = time.monotonic()
    failed_notebook, error, interrupted, awaiting_reboot = "", "", False, False
    executed: list[str] = []
    for number in opts.notebooks:
        if should_stop is not None and should_stop():
            interrupted = True
            break
        name = NOTEBOOKS[number]
        output = host_dir / f"{name}.ipynb"
        parameters = {"target": host, "inventory": inventory, "profile": opts.profile, "apply": opts.apply,
                      "reboot": opts.reboot, "endpoints": opts.endpoints, "evidence_dir": str(host_dir)}
        if number == APPLY_NOTEBOOK:  # the only notebook that declares it (papermill warns of the others)
            parameters["wait_for_reboot"] = wait_for_reboot
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
                                           execution_timeout=opts.cell_timeout_s, engine_name=ENGINE_NAME,
                                           **papermill_options())
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
        if number == APPLY_NOTEBOOK and not wait_for_reboot and _restart_scheduled(host_dir):
            awaiting_reboot = True
            break
    writer.forget()  # a worker runs many chains: what this one cached goes with it
    row = summarise_host(host, host_dir, failed_notebook, error, executed, interrupted=interrupted)
    row["seconds"] = round(time.monotonic() - started, 1)
    if awaiting_reboot:
        row["awaiting_reboot"] = True
        if progress:
            progress(host, "restart", "waiting for the new boot time")
        return row
    if progress:
        status = "interrupted" if interrupted else "failed" if failed_notebook else row["outcome"]
        progress(host, failed_notebook or ("stopped" if interrupted else "done"), status)
    return row


def _restart_scheduled(host_dir: Path) -> bool:
    """Notebook 03 scheduled a restart that nobody has yet seen happen (``reboot.json`` still says scheduled)."""
    return read_evidence(host_dir / REBOOT_FILE).get("state") == "scheduled"


def _kernel_never_started(exc: Exception) -> bool:
    """A kernel that died before its first reply ran no cell, so starting the notebook again is safe."""
    text = str(exc)
    return "before replying to kernel_info" in text or "Kernel didn't respond" in text


def _render_html(notebook: Path, scrubber: evidence.Scrubber) -> None:
    """An HTML copy an auditor can open without Jupyter (static outputs only)."""
    if not notebook.exists() or writes_frozen.is_set():
        return
    import nbformat

    from ..runbook.notebook_html import render

    body = render(nbformat.read(notebook, as_version=4))
    with write_lock:
        if not writes_frozen.is_set():
            evidence.write_scrubbed(notebook.with_suffix(".html"), body, scrubber)


def read_evidence(path: Path) -> dict:
    """A JSON evidence file as a dict, bounded; {} when it is missing or not one."""
    try:
        value = json.loads(read_limited(path, MAX_REPORT_BYTES).decode("utf-8"))
        return value if isinstance(value, dict) else {}
    except (OSError, ValueError):
        return {}


def summarise_host(host: str, host_dir: Path, failed_notebook: str, error: str, executed: list[str] | None,
                   interrupted: bool = False) -> dict:
    """The host's summary row, from its evidence files. ``executed`` None: every notebook with an HTML copy."""
    facts = read_evidence(host_dir / "facts.json")
    before = read_evidence(host_dir / "verdict.json")
    after = read_evidence(host_dir / "verdict-after.json")
    applied = read_evidence(host_dir / "apply-report.json")
    final = read_evidence(host_dir / "outcome.json")
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
