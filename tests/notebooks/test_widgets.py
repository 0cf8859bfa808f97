"""The widget panel calls the notebook functions and leaves static results; the password does not outlive use."""

import pytest

pytest.importorskip("ipywidgets")

from runbook_lib import notebook as nb  # noqa: E402
from runbook_lib.runbook.widgets import RunbookPanel  # noqa: E402


@pytest.fixture
def panel(tmp_path):
    panel = RunbookPanel(nb.validate_parameters(simulator_profile="ws2016_untouched", evidence_dir=str(tmp_path)))
    yield panel
    panel._close_session()


def test_inspect_button_shows_the_verdict_as_static_html_and_clears_the_password(panel, tmp_path):
    panel.user.value, panel.password.value = "someone", "typed-secret-123"
    panel.buttons["inspect"].click()
    assert panel.password.value == ""
    assert panel.status.value == "inspect: done"
    html = "".join(bundle["text/html"] for bundle in panel.results)
    assert "Verdict for ws2016-untouched" in html and "tls-runbook-simulated" in html
    assert "typed-secret-123" not in html + "".join(b["text/plain"] for b in panel.results)
    assert (tmp_path / "verdict.json").exists()


def test_apply_needs_the_confirmation_step_then_writes_through_the_same_function(panel, tmp_path):
    panel.buttons["apply"].click()
    assert "Make a plan first" in panel.status.value
    panel.buttons["plan"].click()
    panel.buttons["apply"].click()
    assert panel.confirm_row.layout.display == "flex"
    assert panel.session.applied is None, "nothing is written before the confirmation"
    panel.confirm.click()
    assert panel.session.applied.changed_anything and not panel.session.applied.dry_run
    assert panel.confirm_row.layout.display == "none"
    assert "Read-back diff" in "".join(bundle["text/html"] for bundle in panel.results)
    assert (tmp_path / "rollback.reg").exists()
