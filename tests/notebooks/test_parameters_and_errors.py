"""Parameter validation and error-text parsing: fast, no kernel."""

import pytest

from runbook_lib import notebook as nb
from runbook_lib.core.errors import InputError

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


@pytest.mark.parametrize("values, fragment", [
    ({"profile": "maximal"}, "profile must be one of"),
    ({"apply": "yes"}, "apply must be True or False"),
    ({"reboot": 1}, "reboot must be True or False"),
    ({"endpoints": "login.microsoftonline.com"}, "must look like"),
    ({"endpoints": "login.microsoftonline.com:99999"}, "must look like"),
    ({"endpoints": "evil host:443"}, "must look like"),
    ({"endpoints": ""}, "must look like"),
    ({"target": "srv01;Remove-Item C:\\", "inventory": __file__}, "must be a DNS name"),
    ({"target": "..\\..\\windows", "inventory": __file__}, "must be a DNS name"),
    ({"target": "srv01\nInjected: line", "inventory": __file__}, "must be a DNS name"),
    ({"target": "srv01"}, "set inventory"),
    ({"target": "ftp://srv01/wsman"}, "http://HOST:5985/wsman"),
    ({"inventory": "/no/such/hosts.yml", "target": "srv01"}, "not a readable file"),
    ({"simulator_profile": "win95"}, "not a built-in profile"),
    ({"session_fix_mode": "always"}, "session_fix_mode"),
    ({"aply": True}, "unknown parameter 'aply'"),
    ({"error_text": "x" * 20_001}, "longer than"),
    ({"evidence_dir": "bad\x00path"}, "control characters"),
])
def test_bad_parameter_is_one_line_input_error(values, fragment):
    with pytest.raises(InputError) as caught:
        nb.validate_parameters(**values)
    message = str(caught.value)
    assert fragment in message
    assert "\n" not in message and len(message) <= 300


def test_evidence_dir_that_is_a_file_is_refused(tmp_path):
    afile = tmp_path / "evidence"
    afile.write_text("x")
    with pytest.raises(InputError, match="exists and is not a folder"):
        nb.validate_parameters(evidence_dir=str(afile))
    with pytest.raises(InputError, match="cannot be created"):
        nb.validate_parameters(evidence_dir=str(afile / "below"))


def test_defaults_mean_a_simulated_dry_run():
    params = nb.validate_parameters()
    assert params.simulated and not params.apply and not params.reboot
    assert params.endpoints == ("login.microsoftonline.com:443",)


def test_endpoints_are_split_trimmed_and_deduplicated():
    params = nb.validate_parameters(endpoints=" login.microsoftonline.com:443, graph.microsoft.com:443,"
                                              "login.microsoftonline.com:443")
    assert params.endpoints == ("login.microsoftonline.com:443", "graph.microsoft.com:443")


def test_parameters_from_ignores_ipython_names_and_catches_typos():
    namespace = {"In": [""], "Out": {}, "_": None, "get_ipython": print, "nb": nb, "target": "", "apply": False}
    assert nb.parameters_from(namespace).apply is False
    with pytest.raises(InputError, match="unknown parameter 'reeboot'"):
        nb.parameters_from({**namespace, "reeboot": True})


def test_seed_article_text_parses_to_the_code_without_a_tenant():
    parsed = nb.parse_error_text(nb.SEED_ERROR_TEXT)
    assert parsed.kind == "aadsts1002016" and parsed.code == "AADSTS1002016"
    assert parsed.tenant_id is None  # the article's "XXXXXXXXX" is a placeholder, not a tenant


def test_real_error_text_yields_tenant_trace_correlation_and_timestamp():
    text = (f"AADSTS1002016: You are using TLS version 1.0, 1.1 and/or 3DES cipher which are deprecated. "
            f"Your TenantID is: {TENANT.upper()}. Please refer to https://go.microsoft.com/fwlink/?linkid=2161187\r\n"
            "Trace ID: 0a1b2c3d-0000-4000-8000-000000000001\r\nCorrelation ID: 11111111-2222-4333-8444-555555555555"
            "\r\nTimestamp: 2024-05-06 07:08:09Z")
    parsed = nb.parse_error_text(text)
    assert parsed.tenant_id == TENANT
    assert parsed.trace_id == "0a1b2c3d-0000-4000-8000-000000000001"
    assert parsed.correlation_id == "11111111-2222-4333-8444-555555555555"
    assert parsed.timestamp == "2024-05-06 07:08:09Z"


def test_handshake_failure_counts_as_the_same_root_cause():
    parsed = nb.parse_error_text("Connect-MsolService : The request was aborted: Could not create SSL/TLS secure "
                                 "channel.")
    assert parsed.kind == "handshake_failure" and parsed.code is None


def test_other_codes_are_recognised_as_other_errors_and_noise_as_nothing():
    assert nb.parse_error_text("AADSTS50076: multi-factor authentication required").kind == "other_aadsts"
    assert nb.parse_error_text("Access denied") is None
    assert nb.parse_error_text("") is None


def test_interactive_guess_can_be_forced_off_and_is_off_outside_a_kernel(monkeypatch):
    monkeypatch.delenv("TLS_RUNBOOK_INTERACTIVE", raising=False)
    assert nb.is_interactive() is False
    monkeypatch.setenv("TLS_RUNBOOK_INTERACTIVE", "1")
    assert nb.is_interactive() is True
