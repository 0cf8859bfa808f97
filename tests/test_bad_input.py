"""Bad and hostile input to every subcommand ends in exactly one line on stderr and exit code 2: no traceback, no
echo of a password, nothing started, nothing written.

Each case is a command line run as an operator runs it (a separate process), in a folder of its own that holds a
few prepared files: ``a-file``, ``a-folder.ipynb``, ``bad.ipynb``, ``inventory.yml`` (host ``web01``), ``facts.json``,
``huge.json`` (30 MB) and a simulator fleet folder whose profile is nested 100,000 deep.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

FACTS = Path(__file__).parent / "facts" / "win7_wmf51.json"
SECRET = "S3cret-Pa55word!"
ALL_VARIABLES = {"TLS_RUNBOOK_USER": "svc", "TLS_RUNBOOK_PASSWORD": SECRET,
                 "TLS_RUNBOOK_SIM_USER": "svc", "TLS_RUNBOOK_SIM_PASSWORD": SECRET}
URL = "http://127.0.0.1:9/wsman"  # nothing listens there; no case gets as far as connecting

CASES = {
    # the list
    "inspect -o into a missing folder": ["inspect", URL, "-o", "missing/facts.json"],
    "inspect -o a folder": ["inspect", URL, "-o", "a-folder.ipynb"],
    "simulate --port out of range": ["simulate", "--profile", "win7_wmf51", "--port", "70000"],
    "simulate --port negative": ["simulate", "--profile", "win7_wmf51", "--port", "-1"],
    "simulate --port not a number": ["simulate", "--profile", "win7_wmf51", "--port", "http"],
    "simulate --port in use": ["simulate", "--profile", "win7_wmf51", "--address", "127.0.0.1", "--port", "{busy}"],
    "notebook -o under a file": ["notebook", "02", "-o", "a-file/out.ipynb"],
    "notebook -o a folder": ["notebook", "02", "-o", "a-folder.ipynb"],
    "notebook -o not a notebook": ["notebook", "02", "-o", "out.txt"],
    "notebook -o onto the notebook it runs": ["notebook", "bad-copy-target.ipynb", "-o", "bad-copy-target.ipynb"],
    "demo --out a file": ["demo", "--hosts", "1", "--out", "a-file"],
    "demo --out under a file": ["demo", "--hosts", "1", "--out", "a-file/evidence"],
    "unset credential variable": ["inspect", URL],
    "run with an unset credential variable": ["run", "--inventory", "inventory.yml", "--out", "a-folder.ipynb"],
    "simulate with its variables unset": ["simulate", "--profile", "win7_wmf51", "--port", "0"],
    "url with user info": ["inspect", f"http://svc:{SECRET}@127.0.0.1:9/wsman"],
    "url with user info and a bad port": ["inspect", f"http://svc:{SECRET}@127.0.0.1:port/wsman"],
    "user info without a scheme": ["inspect", f"svc:{SECRET}@127.0.0.1"],
    "notebook target with user info": ["notebook", "02", "--target", f"http://svc:{SECRET}@h/wsman", "-o", "o.ipynb"],
    "malformed ipynb": ["notebook", "bad.ipynb", "-o", "out.ipynb"],
    "ipynb of the wrong shape": ["notebook", "wrong-shape.ipynb", "-o", "out.ipynb"],
    "--ca-trust-path on http": ["inspect", URL, "--ca-trust-path", "facts.json"],
    "--ca-trust-path missing": ["inspect", "https://127.0.0.1:9/wsman", "--ca-trust-path", "missing.pem"],
    "--timeout nan": ["run", "--inventory", "inventory.yml", "--timeout", "nan"],
    "--timeout inf": ["run", "--inventory", "inventory.yml", "--timeout", "inf"],
    "--timeout negative": ["run", "--inventory", "inventory.yml", "--timeout", "-5"],
    "--timeout zero": ["run", "--inventory", "inventory.yml", "--timeout", "0"],
    # numbers
    "--parallel zero": ["run", "--inventory", "inventory.yml", "--parallel", "0"],
    "--parallel not an integer": ["run", "--inventory", "inventory.yml", "--parallel", "1e3"],
    "--scheduler with a port that is not a number": ["run", "--inventory", "inventory.yml", "--executor", "dask",
                                                     "--scheduler", "tcp://127.0.0.1:port"],
    "--scheduler of another scheme": ["run", "--inventory", "inventory.yml", "--executor", "dask",
                                      "--scheduler", "http://127.0.0.1:8786"],
    "--cell-timeout negative": ["notebook", "02", "-o", "out.ipynb", "--cell-timeout", "-1"],
    "--cell-timeout nan": ["notebook", "02", "-o", "out.ipynb", "--cell-timeout", "nan"],
    "demo --hosts zero": ["demo", "--hosts", "0"],
    "demo --hosts huge": ["demo", "--hosts", "99999999999999999999"],
    "demo --parallel negative": ["demo", "--parallel", "-3"],
    # names and URLs
    "host name ending in a newline": ["inspect", "web01\n", "--inventory", "inventory.yml"],
    "host name with an escape sequence": ["inspect", "\x1b[31mweb01", "--inventory", "inventory.yml"],
    "host name of 10,000 characters": ["inspect", "w" * 10_000, "--inventory", "inventory.yml"],
    "host name the inventory lacks": ["notebook", "02", "--target", "web02", "--inventory", "inventory.yml",
                                      "-o", "out.ipynb"],
    "url with a newline in the host": ["inspect", "http://127.0.0.1\n:9/wsman"],
    "url with a query": ["inspect", URL + "?x=1"],
    "url with port zero": ["inspect", "http://127.0.0.1:0/wsman"],
    "runbook asked to log on as the simulator": ["inspect", URL, "--credential", "env:TLS_RUNBOOK_SIM"],
    "endpoint port of 5,000 digits": ["inspect", URL, "--endpoint", "x:" + "9" * 5000],
    "endpoint port in superscript digits": ["notebook", "02", "--endpoint", "login.example:\u00b2", "-o", "o.ipynb"],
    "simulator address ending in a newline": ["simulate", "--profile", "win7_wmf51", "--address", "127.0.0.1\n"],
    # --limit
    "--limit with nested repetition": ["run", "--inventory", "inventory.yml", "--limit", "~(a+)+$"],
    "--limit with repeated alternation": ["run", "--inventory", "inventory.yml", "--limit", "~(web|w)*01"],
    "--limit with three unbounded repetitions": ["run", "--inventory", "inventory.yml", "--limit", "~.*a.*b.*c"],
    "--limit with a backreference": ["run", "--inventory", "inventory.yml", "--limit", r"~(w)\1"],
    "--limit of 5,000 characters": ["run", "--inventory", "inventory.yml", "--limit", "web" * 1700],
    "--limit with a newline": ["run", "--inventory", "inventory.yml", "--limit", "web01\nweb02"],
    # files
    "facts file that is huge": ["assess", "huge.json"],
    "facts file that is a folder": ["assess", "a-folder.ipynb"],
    "plan writes fix and rollback to one file": ["plan", str(FACTS), "--reg-out", "x.reg", "--rollback-out", "./x.reg"],
    "plan --reg-out a folder": ["plan", str(FACTS), "--reg-out", "a-folder.ipynb", "--rollback-out", "undo.reg"],
    "inventory that is huge": ["run", "--inventory", "huge.json"],
    "evidence verify on a file": ["evidence", "verify", "a-file"],
    "notebook that is huge": ["notebook", "huge.ipynb", "-o", "out.ipynb"],
    "notebook --evidence-dir a file": ["notebook", "02", "--evidence-dir", "a-file", "-o", "out.ipynb"],
    "simulator profile nested too deeply": ["simulate", "--fleet", "nested-fleet", "--port", "0"],
}

NEEDS_NO_CREDENTIAL = {"unset credential variable", "run with an unset credential variable",
                       "simulate with its variables unset"}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad-input")
    (folder / "a-file").write_text("not a folder")
    (folder / "a-folder.ipynb").mkdir()
    (folder / "bad.ipynb").write_text('{"cells": [')
    (folder / "wrong-shape.ipynb").write_text('{"cells": 5}')
    (folder / "bad-copy-target.ipynb").write_bytes((Path(__file__).parent.parent / "notebooks" /
                                                    "01_cause.ipynb").read_bytes())
    (folder / "inventory.yml").write_text("hosts:\n  - name: web01\n    address: 127.0.0.1\n    port: 9\n")
    (folder / "facts.json").write_bytes(FACTS.read_bytes())
    with (folder / "huge.json").open("wb") as handle:
        handle.truncate(30 * 1024 * 1024)
    (folder / "huge.ipynb").symlink_to(folder / "huge.json")
    (folder / "nested-fleet").mkdir()
    (folder / "nested-fleet" / "deep.json").write_text("[" * 100_000)
    return folder


@pytest.fixture(scope="module")
def busy_port():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_and_exit_2(case, workdir, busy_port):
    argv = [arg.replace("{busy}", str(busy_port)) for arg in CASES[case]]
    variables = {} if case in NEEDS_NO_CREDENTIAL else ALL_VARIABLES
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TLS_RUNBOOK_")}, **variables}
    before = sorted(p.name for p in workdir.iterdir())
    result = subprocess.run([sys.executable, "-m", "runbook_lib.cli", *argv], capture_output=True, text=True,
                            cwd=workdir, env=env, timeout=60)
    lines = result.stderr.splitlines()
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith("tls-runbook: error: "), result.stderr[-2000:]
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert SECRET not in result.stderr
    assert sorted(p.name for p in workdir.iterdir()) == before, "nothing is written"


def test_an_unreachable_dask_scheduler_is_one_line_and_exit_1(workdir, tmp_path):
    env = {**os.environ, **ALL_VARIABLES, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"}
    result = subprocess.run([sys.executable, "-m", "runbook_lib.cli", "run", "--inventory", "inventory.yml",
                             "--executor", "dask", "--scheduler", "tcp://127.0.0.1:9", "--out", str(tmp_path)],
                            capture_output=True, text=True, cwd=workdir, env=env, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith("tls-runbook: error: cannot reach the Dask scheduler")
