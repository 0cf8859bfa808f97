"""`run --resume` continues only a partial run it can trust, with the run's own parameters, and never while the run
is still being written. Each refusal is one line and exit 2."""

import subprocess
import sys

import pytest

from runbook_lib.bundle import hold_run

def resume(root, *extra):
    return subprocess.run([sys.executable, "-m", "runbook_lib.cli", "run", "--resume", str(root), *extra],
                          capture_output=True, text=True, timeout=60)

def assert_refused(result, words):
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
    assert words in result.stderr, result.stderr

def test_a_complete_run_has_nothing_to_resume(signed_bundle, credential):
    root, _, _ = signed_bundle
    assert_refused(resume(root), "is complete: nothing to resume")

def test_a_run_still_being_written_is_not_resumed(signed_bundle, credential):
    root, _, _ = signed_bundle
    with hold_run(root):
        assert_refused(resume(root), "is being written by another tls-runbook process")

def test_a_tampered_run_is_not_resumed(signed_bundle, credential):
    root, _, _ = signed_bundle
    (root / "hosts" / "srv02" / "facts.json").write_text("{}")
    assert_refused(resume(root), "does not verify (changed: hosts/srv02/facts.json)")

@pytest.mark.parametrize("extra, words", [(["--apply"], "drop --apply"),
                                          (["--parallel", "8", "--limit", "srv01"], "drop --limit, --parallel")])
def test_resume_keeps_the_runs_own_parameters(signed_bundle, credential, extra, words):
    root, _, _ = signed_bundle
    assert_refused(resume(root, *extra), words)

def test_a_folder_that_is_no_run_is_not_resumed(tmp_path, credential):
    assert_refused(resume(tmp_path), "not an evidence bundle")
    assert not list(tmp_path.parent.glob(f".{tmp_path.name}.running"))
