"""The .reg files read the way regedit writes them, and rollback restores the exact prior state."""

import pytest

from runbook_lib.core import facts, regfile
from runbook_lib.core.engine import assess
from runbook_lib.core.errors import RegFileError
from runbook_lib.core.plan import RemediationPlan
from runbook_lib.core.regfile import RegOperation


def plan_for(name, facts_path, profile="recommended"):
    host = facts.load(facts_path(name))
    return host, RemediationPlan.from_verdict(assess(host, profile), host)


def test_fix_file_is_utf16le_with_bom_crlf_and_the_regedit_header(tmp_path, facts_path):
    _, plan = plan_for("win7_wmf51", facts_path)
    plan.write(tmp_path / "fix.reg", tmp_path / "undo.reg")
    raw = (tmp_path / "fix.reg").read_bytes()
    assert raw.startswith(b"\xff\xfe")
    text = raw[2:].decode("utf-16-le")
    assert text.startswith("Windows Registry Editor Version 5.00\r\n")
    assert "\n" not in text.replace("\r\n", "")
    assert ("[HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Control\\SecurityProviders\\SCHANNEL\\Protocols"
            "\\TLS 1.2\\Client]\r\n\"Enabled\"=dword:00000001\r\n\"DisabledByDefault\"=dword:00000000") in text
    assert '"DefaultSecureProtocols"=dword:00000880' in text


def test_rollback_deletes_values_that_did_not_exist(facts_path):
    _, plan = plan_for("win7_wmf51", facts_path, "minimal")
    assert plan.rollback_reg().endswith(
        "[HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\.NETFramework\\v4.0.30319]\r\n\"SchUseStrongCrypto\"=-\r\n\r\n")


def test_rollback_restores_a_reg_sz_as_a_reg_sz(facts_path):
    host, plan = plan_for("ws2019_reg_sz_values", facts_path, "minimal")
    assert '"SchUseStrongCrypto"="1"' in plan.rollback_reg()
    assert plan.rollback(plan.apply_to(host.registry)) == host.registry


def test_round_trip_through_the_written_files_restores_the_original(tmp_path, facts_path):
    host, plan = plan_for("win7_wmf51", facts_path)
    plan.write(tmp_path / "fix.reg", tmp_path / "undo.reg")
    fixed = regfile.apply(host.registry, regfile.parse((tmp_path / "fix.reg").read_bytes()))
    assert assess(host.with_registry(fixed)).changes == ()
    restored = regfile.apply(fixed, regfile.parse((tmp_path / "undo.reg").read_bytes()))
    assert restored == host.registry


def test_rollback_restores_values_and_never_deletes_a_key(facts_path):
    host = facts.load(facts_path("win7_wmf51"))
    rollback = RemediationPlan.from_verdict(assess(host, "minimal"), host).rollback_reg()
    assert "[-HKEY_LOCAL_MACHINE" not in rollback and '"=-' in rollback
    assert "values only: keys the fix created stay" in rollback


@pytest.mark.parametrize("reg_type, data", [
    ("REG_SZ", 'quote " and back\\slash'),
    ("REG_EXPAND_SZ", "%SystemRoot%\\system32"),
    ("REG_MULTI_SZ", ["TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", "TLS_RSA_WITH_AES_128_CBC_SHA"] * 4),
    ("REG_BINARY", "00ff10" * 40),
    ("REG_QWORD", 2**40 + 5),
    ("REG_DWORD", 0xFFFFFFFF),
])
def test_every_value_kind_survives_render_and_parse(reg_type, data):
    op = RegOperation("HKLM\\SOFTWARE\\Test", "Value", reg_type, data)
    text = regfile.render([op])
    assert all(len(line) <= 80 for line in text.split("\r\n")), "regedit wraps hex at 80 columns"
    assert regfile.parse(regfile.to_bytes(text)) == [op]


@pytest.mark.parametrize("text, words", [
    ("REGEDIT4\r\n", "first line"),
    ("Windows Registry Editor Version 5.00\r\n\"a\"=dword:1\r\n", "outside a key"),
    ("Windows Registry Editor Version 5.00\r\n[HKLM\\A]\r\n\"a\"=dword:zz\r\n", "cannot read"),
    ("Windows Registry Editor Version 5.00\r\n[HKEY_CURRENT_USER\\A]\r\n", "HKLM"),
])
def test_unreadable_reg_files_are_one_line_errors(text, words):
    with pytest.raises(RegFileError, match=words):
        regfile.parse(text)
