"""What a worker leaves when it is told to stop: none of the processes it started, even ones started meanwhile."""

import os
import subprocess
import sys
import time

import psutil
import pytest

FORK_SERVER_UNDER_A_WORKER = r"""
import os, sys, time
from runbook_lib.fleet import supervision

reader, writer = os.pipe()
if os.fork() == 0:  # a fork server, as the kernel template is: it forks kernels, each in its own session
    os.close(reader)
    while True:
        pid = os.fork()
        if pid == 0:
            os.close(writer)
            os.setsid()
            time.sleep(60)
            os._exit(0)
        os.write(writer, b"%d\n" % pid)
        time.sleep(0.002)
os.close(writer)
time.sleep(0.5)
supervision.kill_children()
with os.fdopen(reader) as forked:
    print(" ".join(forked.read().split()))
"""


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the kernel template forks on POSIX only")
def test_killing_a_workers_children_leaves_no_kernel_its_fork_server_forked_while_they_were_killed(tmp_path):
    output, errors = tmp_path / "forked.txt", tmp_path / "errors.txt"
    with output.open("w") as stdout, errors.open("w") as stderr:  # files: a survivor holding a pipe would hang run
        done = subprocess.run([sys.executable, "-c", FORK_SERVER_UNDER_A_WORKER], stdout=stdout, stderr=stderr,
                              timeout=60)
    forked = [int(pid) for pid in output.read_text().split()]
    assert done.returncode == 0 and len(forked) > 20, errors.read_text()
    deadline = time.monotonic() + 5  # an orphan killed at the end is reaped by init a moment later
    while any(_alive(pid) for pid in forked) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [pid for pid in forked if _alive(pid)]
    for pid in left:
        psutil.Process(pid).kill()
    assert not left, f"{len(left)} of {len(forked)} forked process(es) outlived kill_children"
