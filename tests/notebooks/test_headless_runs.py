"""papermill runs every notebook headless; the tests read verdicts and outcomes from evidence files and outputs."""

import json

import pytest

from notebook_runs import PROFILES

EXPECTED_VERDICT = {"fixable": "fixable", "healthy": "compliant", "blocked": "blocked"}
# 04 runs on a fresh simulated host of its own: nothing was applied there.
EXPECTED_OUTCOME = {"fixable": "fixable", "healthy": "compliant", "blocked": "blocked"}  # 04 alone: a dry run
EXPECTED_DIAGNOSIS = {"fixable": "app_does_not_ask", "healthy": "works", "blocked": "os_cannot"}


def verdict_word(doc):
    if doc["blockers"]:
        return "blocked"
    return "compliant" if not doc["changes"] and not doc["affected"] else "fixable"


@pytest.mark.parametrize("kind", PROFILES)
@pytest.mark.parametrize("number", ["01", "02", "03", "04"])
def test_notebook_runs_headless_against_each_simulated_profile(runs, number, kind):
    run = runs[(kind, number)]
    assert run.returncode == 0, run.stderr[-2000:]
    assert all(c["metadata"]["papermill"]["status"] == "completed" for c in run.cells if c["cell_type"] == "code")
    assert "SIMULATED HOST" in run.text()


@pytest.mark.parametrize("kind", PROFILES)
def test_cause_notebook_tells_the_os_apart_from_the_application(runs, kind):
    cause = runs[(kind, "01")].evidence_json(f"{_host(kind)}/cause.json")
    assert cause["diagnosis"] == EXPECTED_DIAGNOSIS[kind]
    assert cause["simulated"] is True


@pytest.mark.parametrize("kind", PROFILES)
def test_os_check_writes_facts_and_the_expected_verdict(runs, kind):
    run = runs[(kind, "02")]
    facts = run.evidence_json(f"{_host(kind)}/facts.json")
    verdict = run.evidence_json(f"{_host(kind)}/verdict.json")
    assert facts["schema"] == "tls-runbook/host-facts/v1" and verdict["schema"] == "tls-runbook/verdict/v1"
    assert verdict_word(verdict) == EXPECTED_VERDICT[kind]
    assert f"Verdict for {_host(kind)}" in _html(run)
    if kind == "blocked":
        assert "gpo.managed" in verdict["blockers"] and "Group Policy" in _html(run)


@pytest.mark.parametrize("kind", PROFILES)
def test_remediation_with_apply_and_reboot_leaves_the_expected_state(runs, kind):
    run = runs[(kind, "03")]
    folder = run.evidence / _host(kind)
    report = json.loads((folder / "apply-report.json").read_text())
    after = json.loads((folder / "verdict-after.json").read_text())
    if kind == "fixable":
        assert report["changed"] and report["completed"] and not report["dry_run"]
        assert (folder / "fix.reg").exists() and (folder / "rollback.reg").exists()
        assert verdict_word(after) == "compliant"
        assert "restarted: last boot" in run.text()
    elif kind == "healthy":
        assert not report["changed"] and report["results"] == []
        assert verdict_word(after) == "compliant"
    else:
        assert verdict_word(after) == "blocked"


@pytest.mark.parametrize("kind", PROFILES)
def test_session_fix_notebook_records_the_fix_and_the_outcome(runs, kind):
    run = runs[(kind, "04")]
    outcome = run.evidence_json(f"{_host(kind)}/outcome.json")
    assert set(outcome) >= {"host", "simulated", "outcome", "blockers", "restart"}
    assert outcome["outcome"] == EXPECTED_OUTCOME[kind]
    assert outcome["simulated"] is True
    fix = run.evidence_json(f"{_host(kind)}/session-fix.json")
    assert fix["mode"] == "bor" and fix["ok"] is (kind != "blocked")
    if kind == "blocked":
        assert outcome["blockers"] == ["gpo.managed"]


def test_start_here_runs_without_a_host_and_shows_no_widgets_headless(runs):
    run = runs[("simulated", "00")]
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Interactive panel: only in JupyterLab" in run.text()
    assert "application/vnd.jupyter.widget-view+json" not in run.output.read_text()


def test_url_target_chain_fixes_the_host_after_a_reboot(runs):
    chain = runs[("chain",)]
    for number in ("01", "02", "03", "04"):
        assert chain[number].returncode == 0, chain[number].stderr[-2000:]
    evidence = chain["03"].evidence
    outcome = json.loads((evidence / "outcome.json").read_text())
    assert outcome["outcome"] == "fixed_after_reboot" and outcome["restart"] == "reboot"
    assert verdict_word(json.loads((evidence / "verdict.json").read_text())) == "fixable"
    assert chain["reboots"] == 1
    # The proof the seed article's readers want: the token request that got AADSTS1002016 now gets past TLS.
    answers = {name: [p["aadsts"] for p in json.loads((evidence / name).read_text())["observed"]["probes"]
                      if p["mode"] == "app"] for name in ("facts.json", "facts-after.json")}
    assert answers == {"facts.json": [1002016], "facts-after.json": [700016]}
    assert "AADSTS700016" in chain["03"].text() and "AADSTS1002016" in chain["01"].text()


def test_second_apply_changes_nothing_and_says_so(runs):
    twice = runs[("twice",)]
    assert twice["first"].returncode == 0 and twice["second"].returncode == 0, twice["second"].stderr[-2000:]
    assert twice["unchanged"]
    report = twice["second"].evidence_json("apply-report.json")
    assert report["changed"] is False and not report["dry_run"]
    assert "Nothing changed" in twice["second"].text()
    history = list((twice["second"].evidence / "history").glob("*/rollback.reg"))
    assert len(history) == 1, "the first apply's rollback file must survive the second run"


def test_bad_parameter_stops_at_the_validation_cell_with_one_line(runs):
    for key, fragment in ((("bad", "apply"), "InputError: apply must be True or False, got 'yes'"),
                          (("bad", "typo"), "InputError: unknown parameter 'aply'")):
        run = runs[key]
        assert run.returncode != 0
        code = [c for c in run.cells if c["cell_type"] == "code"]
        failed = [c for c in code if c["metadata"]["papermill"]["status"] == "failed"]
        assert len(failed) == 1 and "parameters_from" in "".join(failed[0]["source"])
        errors = [o for o in failed[0]["outputs"] if o["output_type"] == "error"]
        assert errors and len(errors[0]["traceback"]) == 1 and errors[0]["traceback"][0].startswith(fragment)
        after = code[code.index(failed[0]) + 1:]
        assert all(c["metadata"]["papermill"]["status"] == "pending" for c in after)


def _host(kind):
    return PROFILES[kind].replace("_", "-")


def _html(run):
    return "\n".join("".join(o.get("data", {}).get("text/html", "")) for c in run.cells for o in c.get("outputs", []))
