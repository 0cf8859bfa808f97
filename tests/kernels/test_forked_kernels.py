"""Kernels forked from the template: real, separate kernel processes, isolated from one another, never outliving the
runner, and executing notebooks exactly as kernels started the normal way do."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import papermill
import psutil
import pytest

from runbook_lib.runbook import kernels

pytestmark = pytest.mark.skipif(not kernels.fork_available(), reason="forked kernels need os.fork (not Windows)")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def template():
    with kernels.shared_template() as shared:
        assert shared is not None, "the template did not start"
        yield shared


async def _start(manager_class=kernels.ForkingKernelManager, **kwargs):
    manager = manager_class(kernel_name="python3")
    await manager.start_kernel(**kwargs)
    client = manager.client()
    client.start_channels()
    await client.wait_for_ready(timeout=60)
    return manager, client


async def _run(client, code: str, timeout: float = 60) -> tuple[dict, str]:
    text = []
    reply = await client.execute_interactive(code, timeout=timeout, output_hook=lambda m: text.append(
        m["content"].get("text") or m["content"].get("ename", "")))
    return reply["content"], "".join(text)


async def _stop(*pairs) -> None:
    for manager, client in pairs:
        client.stop_channels()
        await manager.shutdown_kernel(now=True)


def _notebook(path: Path, *sources: str) -> Path:
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources],
                                            metadata={"kernelspec": {"name": "python3", "language": "python",
                                                                     "display_name": "Python 3"}}), path)
    return path


def _outputs(path: Path) -> list[str]:
    return ["".join(o.get("text", "")) for c in nbformat.read(path, as_version=4).cells for o in c.outputs]


def test_a_name_defined_in_one_notebook_is_not_visible_in_the_next(template, tmp_path):
    first = _notebook(tmp_path / "first.ipynb", "import os\ndefined_by_first = 41\n"
                      "import runbook_lib.notebook as shared_module\nshared_module.left_by_first = True\n"
                      "print(os.getpid(), os.getppid())")
    second = _notebook(tmp_path / "second.ipynb", "import os\nimport runbook_lib.notebook as shared_module\n"
                       "print(os.getpid(), os.getppid())\n"
                       "print('defined_by_first' in globals(), hasattr(shared_module, 'left_by_first'))")
    options = kernels.papermill_options()
    assert options, "forked kernels are the default where fork exists"
    for notebook in (first, second):
        papermill.execute_notebook(str(notebook), str(notebook), kernel_name="python3", progress_bar=False,
                                   **options)
    first_pid, first_parent = map(int, _outputs(first)[0].split())
    second_ids, seen = _outputs(second)[0].splitlines()
    second_pid, second_parent = map(int, second_ids.split())
    assert first_parent == second_parent == template.process.pid, "both kernels are forks of the template"
    assert first_pid != second_pid
    assert seen == "False False", "neither the name nor the change to an imported module carried over"


def test_a_forked_kernel_is_its_own_process_as_popen_would_start_it(template, tmp_path, capfd):
    async def scenario():
        env = {**os.environ, "FORKED_KERNEL_MARK": "from-the-manager"}
        one = await _start(cwd=str(tmp_path), env=env)
        two = await _start()
        try:
            reply, text = await _run(one[1], "import os, sys\nos.write(2, b'stderr-of-the-kernel\\n')\n"
                                             "print(os.getcwd(), os.environ['FORKED_KERNEL_MARK'], os.getpgid(0), "
                                             "os.getpid(), os.getppid(), sys.path.count(''))")
            return one[0].provisioner.pid, reply, text, [(m.connection_file, _ports(m)) for m, _ in (one, two)]
        finally:
            await _stop(one, two)

    pid, reply, text, (first, second) = asyncio.run(scenario())
    assert reply["status"] == "ok"
    cwd, mark, group, kernel_pid, parent, cwd_in_path = text.split()
    assert cwd == str(tmp_path) and mark == "from-the-manager" and cwd_in_path == "1"
    assert int(group) == int(kernel_pid) == pid, "the kernel leads its own process group, as jupyter_client's do"
    assert int(parent) == template.process.pid
    assert first[0] != second[0] and not first[1] & second[1], "own connection file, own ports"
    assert "stderr-of-the-kernel" in capfd.readouterr().err, "the kernel writes to the stderr it was given"


def _ports(manager) -> set[tuple[str, int]]:
    """The kernel's endpoints: a folder-and-number pair per channel (Unix sockets), an address and port over TCP."""
    return {(manager.ip, port) for port in (manager.shell_port, manager.iopub_port, manager.stdin_port,
                                            manager.hb_port, manager.control_port)}


def test_an_interrupt_stops_the_running_cell_of_a_forked_kernel(template):
    async def scenario():
        pair = await _start()
        try:
            running = asyncio.ensure_future(_run(pair[1], "import time\ntime.sleep(60)"))
            await asyncio.sleep(1.0)
            started = time.monotonic()
            await pair[0].interrupt_kernel()
            reply, _ = await asyncio.wait_for(running, 20)
            after, text = await _run(pair[1], "print('still here')")
            return reply, time.monotonic() - started, text
        finally:
            await _stop(pair)

    reply, seconds, text = asyncio.run(scenario())
    assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt" and seconds < 10
    assert text.strip() == "still here"


def test_a_crashed_kernel_leaves_the_template_and_the_other_kernels_running(template):
    async def scenario():
        doomed, survivor = await _start(), await _start()
        try:
            doomed[1].execute("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
            for _ in range(100):
                if not await doomed[0].is_alive():
                    break
                await asyncio.sleep(0.1)
            died = not await doomed[0].is_alive()
            code = await doomed[0].provisioner.poll()
            reply, text = await _run(survivor[1], "print(6 * 7)")
            newcomer = await _start()
            late, late_text = await _run(newcomer[1], "print('new kernel')")
            await _stop(newcomer)
            return died, code, text, late_text
        finally:
            await _stop(doomed, survivor)

    died, code, text, late_text = asyncio.run(scenario())
    assert died and code == -signal.SIGKILL
    assert text.strip() == "42" and late_text.strip() == "new kernel"
    assert template.alive


RUNNER = textwrap.dedent("""
    import asyncio, os, sys, time
    from runbook_lib.runbook import kernels

    async def main():
        with kernels.shared_template() as template:
            kept = []
            for _ in range(2):
                manager = kernels.ForkingKernelManager(kernel_name="python3")
                await manager.start_kernel()
                kept.append(manager)
            print(template.folder, template.process.pid, *(m.provisioner.pid for m in kept), flush=True)
            time.sleep(120)

    asyncio.run(main())
""")


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_no_kernel_or_template_outlives_a_runner_that_is_killed(tmp_path):
    runner = subprocess.Popen([sys.executable, "-c", RUNNER], stdout=subprocess.PIPE, text=True, cwd=tmp_path,
                              env={k: v for k, v in os.environ.items() if k != kernels.TEMPLATE_ENV})
    try:
        folder, *pids = runner.stdout.readline().split()
        pids = [int(p) for p in pids]
        assert len(pids) == 3 and all(psutil.pid_exists(p) for p in pids)
        template = psutil.Process(pids[0])
        assert {c.pid for c in template.children()} == set(pids[1:]), "the kernels are the template's children"
    finally:
        runner.kill()
        runner.wait(10)
    deadline = time.monotonic() + 15
    while not all(_gone(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [p for p in pids if not _gone(p)] == []
    assert not Path(folder).exists(), "the template removed its socket folder"


def test_stopping_the_template_ends_its_kernels(monkeypatch):
    async def scenario(template):
        pair = await _start()
        try:
            _, parent = await _run(pair[1], "import os\nprint(os.getppid())")
            assert int(parent) == template.process.pid
            template.stop()
            for _ in range(100):
                if not await pair[0].is_alive():
                    break
                await asyncio.sleep(0.1)
            return pair[0].provisioner.pid, await pair[0].is_alive()
        finally:
            await _stop(pair)

    with kernels.KernelTemplate.start() as template:
        monkeypatch.setenv(kernels.TEMPLATE_ENV, template.address)
        pid, alive = asyncio.run(scenario(template))
    assert not alive and _gone(pid) and not template.alive


def test_the_template_forks_only_this_interpreters_ipykernel(template):
    fds = [os.open(os.devnull, os.O_RDONLY), *(os.open(os.devnull, os.O_WRONLY) for _ in range(3))]
    try:
        with pytest.raises(kernels.TemplateUnavailable, match="refused"):
            kernels.fork_kernel(template.address, ["/usr/bin/env", "-m", "ipykernel_launcher"], os.getcwd(),
                                dict(os.environ), fds)
    finally:
        for fd in fds:
            os.close(fd)


def test_without_fork_kernels_start_the_normal_way(monkeypatch):
    monkeypatch.setattr(kernels, "fork_available", lambda: False)  # what Windows reports
    monkeypatch.delenv(kernels.TEMPLATE_ENV, raising=False)
    assert kernels.papermill_options()["kernel_manager_class"] is not kernels.ForkingKernelManager

    async def scenario():
        pair = await _start()
        try:
            return (await _run(pair[1], "import os\nprint(os.getppid())"))[1]
        finally:
            await _stop(pair)

    assert int(asyncio.run(scenario())) == os.getpid(), "the provisioner fell back to an ordinary child process"


def _normalised(path: Path, folder: Path) -> list:
    """Cell outputs with what differs between any two runs (times, durations, the run's folder) blanked."""
    text = json.dumps([c.get("outputs", []) for c in nbformat.read(path, as_version=4).cells])
    text = text.replace(str(folder), "FOLDER")
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z?", "TIME", text)
    return json.loads(re.sub(r"in \d+(\.\d+)? s", "in N s", text))


def test_an_executed_notebook_is_the_same_whether_its_kernel_was_forked_or_not(template, tmp_path, monkeypatch):
    monkeypatch.setenv("TLS_RUNBOOK_INTERACTIVE", "0")
    runs = {}
    for way, options in (("started", {}), ("forked", kernels.papermill_options())):
        folder = tmp_path / way
        folder.mkdir()
        output = folder / "02_os_check.ipynb"
        papermill.execute_notebook(str(ROOT / "notebooks" / "02_os_check.ipynb"), str(output), kernel_name="python3",
                                   parameters={"simulator_profile": "win7_wmf51", "evidence_dir": str(folder / "ev")},
                                   progress_bar=False, cwd=str(folder), **options)
        runs[way] = _normalised(output, folder)
    assert options, "the second run used forked kernels"
    assert runs["forked"] == runs["started"]
    assert "Verdict for win7-wmf51" in json.dumps(runs["forked"])


def test_a_forked_kernel_starts_with_what_every_kernel_would_build_at_first_use(template):
    """The template builds the schema validators and loads the NTLM cipher once; a kernel forked from it finds them
    (a kernel used to repeat both: about a tenth of its CPU in a fleet run)."""
    async def scenario():
        pair = await _start()
        try:
            return await _run(pair[1], "import sys\nfrom runbook_lib.core import json_schema\n"
                                       "print(json_schema.validator.cache_info().currsize, "
                                       "'cryptography.hazmat.backends.openssl' in sys.modules)")
        finally:
            await _stop(pair)

    reply, text = asyncio.run(scenario())
    core, remote = (len(list((ROOT / "runbook_lib" / layer / "schemas").glob("*.schema.json")))
                    for layer in ("core", "remote"))
    assert reply["status"] == "ok"
    assert text.split() == [str(core + (core + remote)), "True"], "validators of core alone and of core with remote"


def test_a_template_that_cannot_start_leaves_kernels_starting_the_normal_way(monkeypatch):
    with pytest.raises(kernels.TemplateUnavailable, match="did not start"):
        kernels.KernelTemplate.start(timeout_s=0.0)  # it cannot have imported anything yet
    monkeypatch.delenv(kernels.TEMPLATE_ENV, raising=False)
    monkeypatch.setitem(kernels._own, "template", None)
    monkeypatch.setitem(kernels._own, "failed", False)
    start = kernels.KernelTemplate.start
    monkeypatch.setattr(kernels.KernelTemplate, "start", lambda: start(timeout_s=0.0))

    async def scenario():
        pair = await _start()
        try:
            return (await _run(pair[1], "import os\nprint(os.getppid())"))[1]
        finally:
            await _stop(pair)

    assert int(asyncio.run(scenario())) == os.getpid()
    assert kernels._own["failed"], "one failed start is remembered: later kernels do not wait for it again"


def test_a_forked_kernel_listens_on_unix_sockets_in_the_templates_private_folder(template):
    async def scenario():
        manager, client = await _start()
        try:
            info = manager.get_connection_info()
            sockets = [stat.S_ISSOCK(os.stat(f"{info['ip']}-{info[name]}").st_mode)
                       for name in ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")]
            return info, sockets
        finally:
            await _stop((manager, client))

    info, sockets = asyncio.run(scenario())
    folder = os.path.dirname(template.address)
    assert info["transport"] == "ipc" and info["ip"].startswith(folder + os.sep), "no TCP port chosen in advance"
    assert sockets == [True] * 5, "each channel is a Unix socket the kernel bound"
    assert oct(os.stat(folder).st_mode & 0o777) == "0o700", "only this user reaches the kernel's sockets"


def test_a_forked_kernel_that_cannot_start_exits_at_once_and_says_why(template, tmp_path):
    from jupyter_client.connect import write_connection_file

    # The shell, stdin and control sockets bind; IOPub's path is taken (as a TCP port taken by another process).
    connection, info = write_connection_file(str(tmp_path / "kernel.json"), transport="ipc", ip=str(tmp_path / "k"))
    (tmp_path / f"k-{info['iopub_port']}").mkdir()
    log = tmp_path / "stderr.log"
    bound_r, bound_w = os.pipe()
    fds = [os.open(os.devnull, os.O_RDONLY), os.open(os.devnull, os.O_WRONLY),
           os.open(log, os.O_WRONLY | os.O_CREAT), bound_w]
    try:
        kernel = kernels.fork_kernel(template.address, [sys.executable, "-m", "ipykernel_launcher", "-f", connection],
                                     str(tmp_path), dict(os.environ), fds)
    finally:
        for fd in fds:
            os.close(fd)
    try:
        assert kernel.wait(timeout=30) == 1, "it ended by itself instead of waiting on sockets that never opened"
        assert os.read(bound_r, 1) == b"", "it never said it was listening"
    finally:
        os.close(bound_r)
    assert "ZMQError" in log.read_text()
