"""Settings that expose the credential are said out loud; a URL never carries one; a CA path only goes with https."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest

from runbook_lib.core.errors import InputError, SecurityWarning
from runbook_lib.remote import Credential, WinRMTransport
from runbook_lib.remote.target import connect, parse_winrm_url

SECRET = "Hunter2-Pa55"
CREDENTIAL = Credential("svc", SECRET)


def security_warnings(**options) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        WinRMTransport("srv01", CREDENTIAL, **options)
    return [str(w.message) for w in caught if issubclass(w.category, SecurityWarning)]


def test_basic_over_https_is_warned_about():
    [message] = security_warnings(auth="basic", https=True)
    assert "Basic authentication sends the password" in message and "https://srv01:5986/wsman" in message


def test_basic_over_http_allowed_unencrypted_is_warned_about():
    [message] = security_warnings(auth="basic", allow_unencrypted=True)
    assert "over http nothing protects it" in message


def test_certificate_validation_off_is_warned_about_and_with_basic_both_are():
    [message] = security_warnings(https=True, validate_certificate=False)
    assert "certificate validation is off" in message
    assert len(security_warnings(auth="basic", https=True, validate_certificate=False)) == 2


def test_ntlm_with_validated_certificates_is_quiet():
    assert security_warnings() == [] and security_warnings(https=True) == []


def test_the_command_line_shows_a_warning_as_one_line(tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("hosts:\n  - name: web01\n    address: 127.0.0.1\n    port: 9\n    scheme: https\n"
                         "    auth: basic\n    validate_certificate: false\n")
    env = {**os.environ, "TLS_RUNBOOK_USER": "svc", "TLS_RUNBOOK_PASSWORD": SECRET}
    # The bad endpoint stops the command right after connecting is set up, before any network traffic.
    result = subprocess.run([sys.executable, "-m", "runbook_lib.cli", "inspect", "web01", "--inventory", inventory,
                             "--endpoint", "x:99999"], capture_output=True, text=True, env=env, timeout=60)
    warning_lines = [line for line in result.stderr.splitlines() if line.startswith("tls-runbook: warning: ")]
    assert len(warning_lines) == 2, result.stderr
    assert "Basic authentication" in warning_lines[0] and "certificate validation is off" in warning_lines[1]
    assert result.returncode == 2 and result.stderr.splitlines()[-1].startswith("tls-runbook: error: ")
    assert "Traceback" not in result.stderr and SECRET not in result.stderr


@pytest.mark.parametrize("url", [
    f"http://svc:{SECRET}@srv01/wsman",
    f"https://svc:{SECRET}@srv01:5986/wsman",
    f"HTTP://svc:{SECRET}@srv01:notaport/wsman",
    f"http://:{SECRET}@srv01/wsman",
    f"http://svc:{SECRET}@[::1]:5985/wsman",
    f"http://svc:{SECRET}@srv01?x#y",
])
def test_a_url_with_user_info_is_refused_without_repeating_it(url):
    with pytest.raises(InputError) as caught:
        parse_winrm_url(url)
    assert "user info" in str(caught.value) and SECRET not in str(caught.value)


@pytest.mark.parametrize("url", ["http://srv01/wsman?user=x", "http://srv01/wsman#x", "http://srv01:0/wsman",
                                 "http://srv\t01/wsman", "http://srv01/wsman\n", "http://srv01:99999/wsman"])
def test_urls_that_would_lose_a_part_silently_are_refused(url):
    with pytest.raises(InputError):
        parse_winrm_url(url)


def test_a_ca_path_goes_with_https_only_and_must_exist(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    with pytest.raises(InputError, match="for https targets"):
        connect("http://srv01/wsman", credential=CREDENTIAL, ca_trust_path=str(ca))
    with pytest.raises(InputError, match="not a readable file"):
        connect("https://srv01/wsman", credential=CREDENTIAL, ca_trust_path=str(tmp_path / "missing.pem"))
    assert connect("https://srv01/wsman", credential=CREDENTIAL, ca_trust_path=str(ca)).endpoint == \
        "https://srv01:5986/wsman"
