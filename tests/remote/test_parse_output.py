"""Reading a script's result back: the marker block wins over any noise; errors come back as one line."""

from __future__ import annotations

import pytest

from runbook_lib.core.errors import RemoteScriptFailed
from runbook_lib.remote import parse_output, read_output, render_output

PROBE = {"probes": [{"endpoint": "login.microsoftonline.com:443", "mode": "tls12", "ok": True,
                     "protocol": "Tls12", "cipher": "Aes256", "error": None}]}
CLIXML_ERROR = (
    b"#< CLIXML\r\n<Objs Version=\"1.1.0.1\" xmlns=\"http://schemas.microsoft.com/powershell/2004/04\">"
    b"<Obj S=\"progress\" RefId=\"0\"><TN RefId=\"0\"><T>System.Management.Automation.PSCustomObject</T></TN>"
    b"<MS><I64 N=\"SourceId\">1</I64></MS></Obj>"
    b"<S S=\"Error\">Cannot bind parameter 'Path'._x000D__x000A_</S>"
    b"<S S=\"Error\">At line:1 char:1_x000D__x000A_</S></Objs>"
)


def test_good_output_returns_the_result_despite_profile_noise():
    stdout = ("Loading personal profile...\r\n" + render_output("probe", PROBE) + "trailing noise\r\n").encode("ascii")
    assert parse_output("probe", stdout, b"", 0) == PROBE


def test_warnings_come_back_beside_the_result():
    out = read_output("probe", render_output("probe", PROBE, warnings=("registry read through the process view",)), "", 0)
    assert out.data == PROBE and out.warnings == ("registry read through the process view",)


def test_result_wrapped_by_a_narrow_console_is_reassembled():
    head, doc, tail = render_output("probe", PROBE).split("\r\n")[1:4]
    wrapped = "\r\n".join([head, *(doc[i:i + 40] for i in range(0, len(doc), 40)), tail])
    assert parse_output("probe", wrapped, "", 0) == PROBE


def test_non_ascii_text_survives_as_json_escapes():
    failed = dict(PROBE["probes"][0], ok=False, protocol=None, cipher=None, error="Échec de l’authentification")
    result = {"probes": [failed]}
    text = render_output("probe", result)
    assert text.isascii()
    assert parse_output("probe", text.encode("ascii"), b"", 0) == result


def test_clixml_error_is_raised_as_its_own_one_line_text():
    with pytest.raises(RemoteScriptFailed) as caught:
        parse_output("inspect", b"", CLIXML_ERROR, 1, host="web01")
    assert str(caught.value) == "web01: inspect: Cannot bind parameter 'Path'. At line:1 char:1"


def test_plain_stderr_without_markers_is_reported():
    with pytest.raises(RemoteScriptFailed, match="The command line is too long"):
        parse_output("probe", b"", b"The command line is too long.\r\n", 1)


def test_missing_markers_and_silence_name_the_exit_code():
    with pytest.raises(RemoteScriptFailed, match="exit code 3"):
        parse_output("probe", b"some output but no result block", b"", 3)


def test_progress_only_clixml_is_not_mistaken_for_an_error_text():
    progress = CLIXML_ERROR.split(b"<S S=")[0] + b"</Objs>"
    with pytest.raises(RemoteScriptFailed, match="exit code 0"):
        parse_output("probe", b"", progress, 0)


def test_script_error_reported_as_data_is_raised_with_its_text():
    with pytest.raises(RemoteScriptFailed) as caught:
        parse_output("journal", render_output("journal", error="no journal for apply_id a1 on this host"), "", 0, host="h")
    assert str(caught.value) == "h: journal: no journal for apply_id a1 on this host"


@pytest.mark.parametrize(
    "stdout, problem",
    [
        (render_output("probe", PROBE) * 2, "2 result blocks"),
        (render_output("reboot", {"scheduled": True}), "not a probe result"),
        ("<<<TLS-RUNBOOK-RESULT\r\n{not json\r\nTLS-RUNBOOK-RESULT>>>", "not JSON"),
        (render_output("probe", {"probes": "none"}), "'probes'"),
        (render_output("probe", PROBE).replace('"warnings":[]', '"warnings":"x"'), "warnings"),
    ],
)
def test_malformed_result_blocks_are_refused(stdout, problem):
    with pytest.raises(RemoteScriptFailed, match=problem):
        parse_output("probe", stdout, "", 0)


def test_session_fix_result_needs_integer_protocols_not_booleans():
    bad = {"before": True, "after": 3072, "mode": "pin", "error": None, "probes": []}
    with pytest.raises(RemoteScriptFailed, match="'before'"):
        parse_output("session_fix", render_output("session_fix", bad), "", 0)


def test_inspect_result_must_be_host_facts():
    doc = {"schema": "other", "host": "h", "os": {}, "registry": [], "observed": {}, "hotfixes": []}
    with pytest.raises(RemoteScriptFailed, match="host-facts"):
        parse_output("inspect", render_output("inspect", doc), "", 0)
