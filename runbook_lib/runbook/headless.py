"""One notebook through papermill (``tls-runbook notebook``): its own kernel, a time limit per cell, and the
executed notebook with its HTML as evidence.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..core.errors import InputError, one_line
from ..core.files import FileTooLarge, output_file, read_limited
from .parameters import NOTEBOOKS, validate_parameters


START_TIMEOUT_S = 120  # a cold kernel on a busy jump host can take a while; a hung one must not block a run
CELL_TIMEOUT_S = 1800  # the longest cell waits for a reboot, within operations.reboot_and_wait's own limits
MAX_NOTEBOOK_BYTES = 20 * 1024 * 1024  # the runbook's notebooks are small; a huge one is a mistake or an attack


@dataclass(frozen=True)
class HeadlessRun:
    output: Path
    html: Path | None
    error_name: str | None = None  # the exception class of the failed cell, None when the notebook completed
    message: str | None = None


def notebook_source(name: str) -> Path:
    """NN (00-04), a notebook's stem, or a path: the runbook notebooks live in notebooks/ of the project."""
    candidate = Path(name)
    if candidate.suffix == ".ipynb":
        if not candidate.is_file():
            raise InputError(f"notebook {one_line(name, 80)!r} not found")
        return candidate
    stem = NOTEBOOKS.get(name, name)
    if stem not in NOTEBOOKS.values():
        raise InputError(f"notebook must be one of {', '.join(NOTEBOOKS)} (or a path to an .ipynb)")
    for folder in (Path.cwd() / "notebooks", Path(__file__).resolve().parents[2] / "notebooks"):
        if (folder / f"{stem}.ipynb").is_file():
            return folder / f"{stem}.ipynb"
    raise InputError("cannot find the runbook notebooks: run from the project folder or give a path to the .ipynb")


@contextlib.contextmanager
def _stderr_into(path: Path | None) -> Iterator[None]:
    """File descriptor 2 points at ``path`` meanwhile, so processes started meanwhile (kernels) write there."""
    if path is None:
        yield
        return
    saved = os.dup(2)
    try:
        with path.open("ab") as log:
            os.dup2(log.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _same_file(one: Path, other: Path) -> bool:
    try:
        return one.resolve() == other.resolve()
    except (OSError, RuntimeError):
        return False


def _check_notebook(source: Path) -> None:
    """A notebook file papermill can run: read and validated first, so a broken file is bad input, not a crash."""
    import nbformat

    try:
        raw = read_limited(source, MAX_NOTEBOOK_BYTES)
        nbformat.validate(nbformat.reads(raw.decode("utf-8"), as_version=4))
    except FileTooLarge as exc:
        raise InputError(f"notebook {source.name!r} is {exc}") from None
    except OSError as exc:
        raise InputError(f"notebook {source.name!r} cannot be read: {exc.strerror or exc}") from None
    except Exception as exc:  # noqa: BLE001 - nbformat's readers and converters fail on malformed input in any way
        raise InputError(f"notebook {source.name!r} is not a valid notebook ({type(exc).__name__})") from None


def run_headless(source: Path, output: Path, values: dict, cell_timeout_s: int = CELL_TIMEOUT_S,
                 kernel_log: Path | None = None) -> HeadlessRun:
    """papermill with the parameters checked first and timeouts set; the executed notebook, failed or not, also
    becomes HTML next to it, because a partial notebook is evidence too. With ``kernel_log``, what the kernel
    process writes to stderr (its own warnings, a crash) goes to that file instead of this process's stderr."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from .kernels import papermill_options
    from .notebook_html import write_html

    if output.suffix != ".ipynb":
        raise InputError("the output must be an .ipynb file")
    validate_parameters(**values)
    _check_notebook(source)
    if _same_file(source, output):
        raise InputError("-o names the notebook being run; write the executed copy somewhere else")
    output_file(output, "-o", create_folder=True)
    output_file(output.with_suffix(".html"), "-o (its HTML copy)")
    error_name = message = None
    try:
        with _stderr_into(kernel_log):
            papermill.execute_notebook(str(source), str(output), parameters=values, kernel_name="python3",
                                       progress_bar=False, start_timeout=START_TIMEOUT_S,
                                       execution_timeout=cell_timeout_s, **papermill_options())
    except PapermillExecutionError as exc:
        error_name, message = exc.ename, f"{source.name} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}"
    except Exception as exc:  # noqa: BLE001 - kernel died or timed out; reported as a failed run, not a crash
        error_name, message = type(exc).__name__, f"{source.name} did not finish: {type(exc).__name__}: {exc}"
    return HeadlessRun(output, write_html(output), error_name, one_line(message) if message else None)
