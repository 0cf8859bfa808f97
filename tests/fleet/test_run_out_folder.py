"""`run --out`: checked before any host is touched (a folder this process can write, with room for the run), and
everything written there is private to the operator."""

import os
import shutil
import stat
import subprocess
import sys
from collections import namedtuple

import pytest

from runbook_lib import bundle, cli


def run_cli(inventory, out):
    return subprocess.run([sys.executable, "-m", "runbook_lib.cli", "run", "--inventory", str(inventory), "--out",
                           str(out)], capture_output=True, text=True, timeout=60)


@pytest.fixture
def inventory(tmp_path, credential):
    path = tmp_path / "hosts.yml"
    path.write_text("hosts:\n  - name: srv01\n    address: 127.0.0.9\n  - name: srv02\n    address: 127.0.0.9\n")
    return path


def test_out_on_a_file_is_one_line_and_exit_2(inventory, tmp_path):
    out = tmp_path / "evidence"
    out.write_text("not a folder")
    result = run_cli(inventory, out)
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1
    assert f"--out {out} is a file, not a folder" in result.stderr
    assert out.read_text() == "not a folder"


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder nobody can write to, root included (as root, the immutable attribute stands in for the mode)."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    if not shutil.which("chattr") or subprocess.run(["chattr", "+i", str(folder)]).returncode != 0:
        pytest.skip("running as root on a file system without the immutable attribute: no folder is read-only")
    yield folder
    subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_out_on_a_read_only_folder_is_one_line_and_exit_2(inventory, read_only_folder):
    result = run_cli(inventory, read_only_folder)
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
    assert f"--out {read_only_folder} is not writable" in result.stderr
    assert not list(read_only_folder.iterdir())


def test_out_without_room_for_the_run_names_the_estimate_per_host(inventory, tmp_path, monkeypatch, capsys):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(bundle.shutil, "disk_usage", lambda path: usage(10 * bundle.MB, 9 * bundle.MB, bundle.MB))
    code = cli.main(["run", "--inventory", str(inventory), "--notebooks", "02,03", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1
    assert "has 1 MB free and this run needs about 9 MB (2 host(s) x 2.0 MB for 2 notebook(s)" in err
    assert not list((tmp_path / "out").iterdir())


def test_evidence_folders_and_files_are_private_to_the_operator(tmp_path):
    from runbook_lib.bundle import LiveBundle
    from runbook_lib.evidence import Scrubber, write_scrubbed
    from runbook_lib.files import private_folder
    from runbook_lib.signing import new_run_key

    live = LiveBundle(tmp_path / "out" / "run", new_run_key())
    live.create({"run_id": "run"}, ["srv01"])
    private_folder(live.root / "hosts" / "srv01")
    write_scrubbed(live.root / "hosts" / "srv01" / "facts.json", "{}", Scrubber([]))
    for path in [live.root, live.root / "hosts", live.root / "hosts" / "srv01"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    for path in [live.root / "manifest.json", live.root / "hosts" / "srv01" / "facts.json"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
