"""Running a notebook headless the way operators do (papermill in its own process) and reading what it left."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
NAMES = {"00": "00_start_here", "01": "01_cause", "02": "02_os_check", "03": "03_registry_remediation",
         "04": "04_powershell_session_fix"}
PROFILES = {"fixable": "win7_wmf51", "healthy": "ws2022_healthy", "blocked": "ws2019_tls12_disabled_by_gpo"}
USER = "notebook-tester"
PARALLEL = max(2, min(4, os.cpu_count() or 2))


@dataclass
class Run:
    notebook: str
    output: Path
    evidence: Path
    returncode: int
    stderr: str

    @property
    def cells(self) -> list[dict]:
        return json.loads(self.output.read_text(encoding="utf-8"))["cells"]

    def evidence_json(self, name: str) -> dict:
        return json.loads((self.evidence / name).read_text(encoding="utf-8"))

    def text(self) -> str:
        """Every output's plain text, in order."""
        parts = []
        for cell in self.cells:
            for output in cell.get("outputs", []):
                value = output.get("text") or output.get("data", {}).get("text/plain") or \
                    f"{output.get('ename')}: {output.get('evalue')}"
                parts.append("".join(value) if isinstance(value, list) else str(value))
        return "\n".join(parts)


def papermill(notebook: str, folder: Path, env: dict | None = None, **parameters) -> Run:
    """One headless run in its own process (papermill's cwd is per process), evidence in its own folder."""
    folder.mkdir(parents=True, exist_ok=True)
    evidence = Path(parameters.get("evidence_dir") or folder / "evidence")  # default: evidence/<host> below
    output = folder / f"{NAMES[notebook]}.ipynb"
    command = [sys.executable, "-m", "papermill", str(NOTEBOOKS / f"{NAMES[notebook]}.ipynb"), str(output),
               "--no-progress-bar", "-k", "python3", "--start-timeout", "60", "--execution-timeout", "120"]
    for name, value in parameters.items():
        command += ["-p", name, str(value)]  # papermill's CLI turns "True"/"False" into booleans
    child_env = {**os.environ, "TLS_RUNBOOK_INTERACTIVE": "0", **(env or {})}
    done = subprocess.run(command, cwd=folder, env=child_env, capture_output=True, text=True, timeout=300)
    return Run(notebook, output, evidence, done.returncode, done.stderr)


