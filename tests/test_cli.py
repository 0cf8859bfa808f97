"""The tls-runbook command as an operator runs it: exit codes, one-line errors, files written."""

import json
import subprocess
import sys

import pytest

import runbook_lib


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "runbook_lib.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=60)


def test_version_prints_the_package_version():
    result = run("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"tls-runbook {runbook_lib.__version__}"


def test_assess_prints_verdict_json_and_exits_zero_for_an_affected_host(facts_path):
    result = run("assess", facts_path("win7_wmf51"), "--profile", "minimal")
    assert result.returncode == 0, result.stderr
    verdict = json.loads(result.stdout)
    assert verdict["schema"] == "tls-runbook/verdict/v1" and verdict["affected"] is True
    assert verdict["restart"] == "new_process"


def test_assess_table_is_a_readable_summary(facts_path):
    result = run("assess", facts_path("ws2019_tls12_disabled_by_gpo"), "--format", "table")
    assert result.returncode == 0
    assert "outcome BLOCKED" in result.stdout and "gpo.managed" in result.stdout
    assert "\033[" not in result.stdout, "no colour codes when stdout is not a terminal"


@pytest.mark.parametrize("content", [
    '{"schema": "tls-runbook/host-facts/v1", ',  # truncated
    '{"schema": "tls-runbook/host-facts/v2"}',  # unknown schema
    '{"schema": "tls-runbook/host-facts/v1", "host": 5}',  # wrong type
])
def test_bad_facts_exit_2_with_one_line_and_no_traceback(tmp_path, content):
    path = tmp_path / "bad.json"
    path.write_text(content)
    result = run("assess", path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("tls-runbook: error: facts: ")


def test_missing_file_and_bad_arguments_are_bad_input(tmp_path):
    assert run("assess", tmp_path / "absent.json").returncode == 2
    result = run("assess", tmp_path / "x.json", "--profile", "maximal")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1


def test_plan_writes_fix_and_rollback_files(tmp_path, facts_path):
    result = run("plan", facts_path("win7_wmf51"), "--profile", "recommended", "--reg-out", tmp_path / "fix.reg",
                 "--rollback-out", tmp_path / "undo.reg")
    assert result.returncode == 0, result.stderr
    assert "14 change(s), restart: reboot" in result.stdout
    assert (tmp_path / "fix.reg").read_bytes().startswith(b"\xff\xfe")
    assert (tmp_path / "undo.reg").read_bytes().startswith(b"\xff\xfe")


def test_plan_into_a_missing_folder_is_one_line_bad_input(tmp_path, facts_path):
    result = run("plan", facts_path("win7_wmf51"), "--reg-out", tmp_path / "no" / "fix.reg",
                 "--rollback-out", tmp_path / "no" / "undo.reg")
    assert result.returncode == 2 and "its folder does not exist" in result.stderr and "Traceback" not in result.stderr
