"""The field check in 00_start_here: the same check as ``tls-runbook check``, through runbook_lib, writing nothing."""

from runbook_lib import notebook as nb
from runbook_lib.remote.scripts import LANGUAGE_MODE_ERROR


def test_the_check_cell_against_a_locked_down_built_in_host_says_simulated_and_why_it_will_not_work(tmp_path,
                                                                                                    monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TLS_RUNBOOK_INTERACTIVE", "0")
    with nb.collect_results() as shown:
        nb.field_check(nb.validate_parameters(simulator_profile="ws2019_constrained_language"))
    [bundle] = shown
    text, page = bundle["text/plain"], bundle["text/html"]
    assert text.startswith("*** SIMULATED HOST") and "SIMULATED HOST: results come from" in page
    [line] = [line for line in text.splitlines() if "language mode" in line]
    assert "will not work" in line and LANGUAGE_MODE_ERROR in line
    assert "<td style='text-align:left;font-weight:bold;color:#c62828'>will not work</td>" in page
    assert list(tmp_path.iterdir()) == []  # no evidence folder: the check writes nothing


def test_the_start_here_notebook_runs_the_check_headless(runs):
    run = runs[("simulated", "00")]
    assert run.returncode == 0, run.stderr[-2000:]
    text = run.text()
    assert "every operation a run uses works" in text and "AADSTS1002016: this host is affected" in text
