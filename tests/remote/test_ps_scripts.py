"""Static checks on the PowerShell that runs on targets: it must parse and stay within Windows PowerShell 2.0."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import pytest
import tree_sitter
import tree_sitter_powershell

from runbook_lib.remote import OPERATIONS, compose

PS_DIR = Path(resources.files("runbook_lib.remote").joinpath("ps"))
SCRIPTS = sorted(PS_DIR.glob("*.ps1"))
PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))
SAMPLE_ARGS = {
    "inspect": {"host": "web01", "values": [{"path": "HKLM\\SOFTWARE\\X", "name": "Y"}], "endpoints": ["a.b:443"]},
    "apply": {"apply_id": "run-1", "changes": [{"path": "HKLM\\SOFTWARE\\X", "name": "Y", "type": "REG_DWORD", "data": 1}]},
    "probe": {"endpoints": ["login.microsoftonline.com:443"], "timeout_ms": 5000},
    "session_fix": {"mode": "bor", "endpoints": ["login.microsoftonline.com:443"]},
    "reboot": {"delay_s": 5},
    "last_boot": {},
    "journal": {"apply_id": "run-1", "claim_if_absent": True},
    "restore": {"apply_id": "run-1", "values": [{"path": "HKLM\\SOFTWARE\\X", "name": "Y"}]},
    "preflight": {},
}

# Constructs that do not exist in Windows PowerShell 2.0 / .NET 3.5, or that the runbook must not depend on.
FORBIDDEN = {
    "ConvertTo-Json": r"\bConvertTo-Json\b",
    "ConvertFrom-Json": r"\bConvertFrom-Json\b",
    "Get-CimInstance": r"\bGet-CimInstance\b",
    "[pscustomobject]": r"\[\s*pscustomobject\s*\]",
    "[ordered]": r"\[\s*ordered\s*\]",
    "::new(": r"::\s*new\s*\(",
    "-in": r"(?<![\w-])-in\b",
    "-notin": r"(?<![\w-])-notin\b",
    ".ForEach(": r"\.\s*ForEach\s*\(",
    ".Where(": r"\.\s*Where\s*\(",
    "$PSItem": r"\$PSItem\b",
    "Invoke-WebRequest": r"\bInvoke-WebRequest\b",
    "Invoke-RestMethod": r"\bInvoke-RestMethod\b",
    "class": r"(?m)^\s*class\s+\w+",
    "using namespace": r"\busing\s+namespace\b",
    "-shl/-shr (3.0)": r"(?<![\w-])-sh[lr]\b",
    "TLS enum names (.NET 3.5 lacks them)": r"(SecurityProtocolType|SslProtocols)\]\s*::\s*Tls",
    "numeric cast to a TLS enum (refused for unnamed bits)": r"\[[\w.]*(SecurityProtocolType|SslProtocols)\]\s*[\d$(\[]",
    "simplified Where-Object/ForEach-Object (3.0)": r"\b(Where-Object|ForEach-Object)\s+(?!\{)",
    # .NET Framework has these on Directory/DirectoryInfo; PowerShell 7's .NET has them only as static
    # FileSystemAclExtensions methods, so common.ps1 finds them by reflection (Get-TrDirectorySecurity).
    "ACL instance methods (absent in PowerShell 7)": r"\.(Get|Set)AccessControl\s*\(",
    "CreateDirectory with a security descriptor (absent in PowerShell 7)": r"CreateDirectory\s*\([^)]*,",
}

# Shapes that break delivery through `powershell -Command -` (see runbook_lib.remote.scripts): the block drops
# empty lines, so a here-string would change; a statement opened on one line and continued on the next must not
# look finished on its first line (PowerShell 5.1.14393 ran `function f` alone); `exit` would end the process
# before the result is written.
DELIVERY_BREAKERS = {
    "backtick line continuation": r"`\s*$",
    "opening brace on its own line": r"(?m)^\s*\{",
    "keyword without its block on the same line": r"(?im)^\s*(\}\s*)?(else|try|finally|catch(\s*\[[^\]]*\])?)\s*$",
    "exit": r"(?i)(?<![\w-])exit\b",
}


def _nodes(source: str) -> list[tree_sitter.Node]:
    found, stack = [], [parse(source).root_node]
    while stack:
        node = stack.pop()
        found.append(node)
        stack.extend(node.children)
    return found


def delivery_breakers_in(source: str) -> list[str]:
    code = code_only(source)
    found = [name for name, pattern in DELIVERY_BREAKERS.items() if re.search(pattern, code, flags=re.MULTILINE)]
    nodes = _nodes(source)
    if any("here_string" in node.type for node in nodes):
        found.append("here-string")
    if any(node.type == "comment" and node.text.startswith(b"<#") for node in nodes):
        found.append("block comment")
    return found


def parse(source: str) -> tree_sitter.Tree:
    return PARSER.parse(source.encode("utf-8"))


def broken_nodes(tree: tree_sitter.Tree) -> list[str]:
    found, stack = [], [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            found.append(f"{node.type} at line {node.start_point[0] + 1}")
        stack.extend(node.children)
    return found


def code_only(source: str) -> str:
    """The source with comments and string text blanked (sub-expressions inside strings stay: they are code)."""
    data = bytearray(source.encode("utf-8"))
    stack = [parse(source).root_node]
    while stack:
        node = stack.pop()
        if node.type in ("comment", "verbatim_string_characters", "verbatim_here_string_characters"):
            data[node.start_byte : node.end_byte] = b" " * (node.end_byte - node.start_byte)
            continue
        if node.type in ("expandable_string_literal", "expandable_here_string_literal"):
            code = [(c.start_byte, c.end_byte) for c in node.children if c.type == "sub_expression"]
            for i in range(node.start_byte, node.end_byte):
                if not any(start <= i < end for start, end in code):
                    data[i] = 0x20
            stack.extend(c for c in node.children if c.type == "sub_expression")
            continue
        stack.extend(node.children)
    return data.decode("utf-8")


def forbidden_in(source: str) -> list[str]:
    code = code_only(source)
    return [name for name, pattern in FORBIDDEN.items() if re.search(pattern, code, flags=re.IGNORECASE)]


def test_every_operation_has_a_script_and_nothing_else_is_shipped():
    assert {p.stem for p in SCRIPTS} == set(OPERATIONS) | {"common"}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_parses_without_error_or_missing_nodes(script):
    assert broken_nodes(parse(script.read_text(encoding="utf-8"))) == []


@pytest.mark.parametrize("operation", OPERATIONS)
def test_composed_script_parses_without_error_or_missing_nodes(operation):
    assert broken_nodes(parse(compose(operation, SAMPLE_ARGS[operation]))) == []


def test_parse_check_reports_a_broken_script():
    assert broken_nodes(parse("if ($a { Write-Output 'x'\n")) != []


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_uses_no_construct_missing_from_powershell_2(script):
    assert forbidden_in(script.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    "sample, construct",
    [
        ("$x = $a | ConvertTo-Json", "ConvertTo-Json"),
        ("$o = [PSCustomObject]@{ a = 1 }", "[pscustomobject]"),
        ("if ($a -in $b) { }", "-in"),
        ("if ($a -notin $b) { }", "-notin"),
        ("$c = [Text.StringBuilder]::new()", "::new("),
        ("$a.ForEach({ $_ })", ".ForEach("),
        ("class Foo { }", "class"),
        ("[Net.ServicePointManager]::SecurityProtocol = [Net.SecurityProtocolType]::Tls12", "TLS enum names (.NET 3.5 lacks them)"),
        ("Get-ChildItem | Where-Object Name -eq 'x'", "simplified Where-Object/ForEach-Object (3.0)"),
        ("$p = [System.Security.Authentication.SslProtocols]3072", "numeric cast to a TLS enum (refused for unnamed bits)"),
        ("$p = [Net.SecurityProtocolType]$n", "numeric cast to a TLS enum (refused for unnamed bits)"),
        ("$acl = (Get-Item $d).GetAccessControl()", "ACL instance methods (absent in PowerShell 7)"),
        ("[IO.Directory]::CreateDirectory($d, $sd)", "CreateDirectory with a security descriptor (absent in PowerShell 7)"),
    ],
)
def test_forbidden_construct_is_detected_in_code(sample, construct):
    assert construct in forbidden_in(sample)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_has_no_shape_that_console_input_would_break(script):
    assert delivery_breakers_in(script.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    "sample, breaker",
    [
        ("$t = @'\nx\n'@", "here-string"),
        ("Get-Item x `\n  -Force", "backtick line continuation"),
        ("<# note #>\n$a = 1", "block comment"),
        ("function f\n{\n}", "opening brace on its own line"),
        ("try { a }\ncatch\n{ b }", "keyword without its block on the same line"),
        ("if ($a) { exit 1 }", "exit"),
    ],
)
def test_delivery_breaker_is_detected(sample, breaker):
    assert breaker in delivery_breakers_in(sample)


def test_forbidden_words_inside_comments_and_strings_are_not_code():
    assert forbidden_in("# ConvertTo-Json -in\n$m = 'uses ConvertTo-Json and -in'\n$n = \"no ::new( here\"") == []


def test_code_inside_a_string_subexpression_is_still_checked():
    assert "ConvertTo-Json" in forbidden_in('$m = "x $($a | ConvertTo-Json)"')


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_is_ascii_so_any_code_page_reads_it(script):
    script.read_bytes().decode("ascii")


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_first_line_declares_the_operation(script):
    first = script.read_text(encoding="utf-8").splitlines()[0]
    assert first == f"# tls-runbook-operation: {script.stem}"


def _defined_functions(source: str) -> set[str]:
    return {m.lower() for m in re.findall(r"(?im)^\s*function\s+([\w-]+)", source)}


def _called_runbook_functions(source: str) -> set[str]:
    names, stack = set(), [parse(source).root_node]
    while stack:
        node = stack.pop()
        if node.type == "command_name":
            names.add(node.text.decode().lower())
        stack.extend(node.children)
    return {n for n in names if re.fullmatch(r"[a-z]+-tr\w+", n)}


@pytest.mark.parametrize("operation", OPERATIONS)
def test_every_runbook_function_called_is_defined(operation):
    source = compose(operation, SAMPLE_ARGS[operation])
    assert _called_runbook_functions(source) <= _defined_functions(source)
    assert _called_runbook_functions(source), "the check found no calls at all"


@pytest.mark.parametrize("operation", OPERATIONS)
def test_operation_reports_errors_as_data(operation):
    source = (PS_DIR / f"{operation}.ps1").read_text(encoding="utf-8")
    assert re.search(rf"Write-TrError '{operation}' \$_", source)
    assert re.search(rf"Write-TrResult(Json)? '{operation}'", source)


def test_wmi_is_reached_only_through_the_helper_that_also_works_without_get_wmiobject():
    """PowerShell 7 has no Get-WmiObject: Get-TrWmiObjects falls back to System.Management, so nothing else may
    call it directly."""
    uses = {p.name: len(re.findall(r"(?i)\bGet-WmiObject\b", code_only(p.read_text(encoding="utf-8"))))
            for p in SCRIPTS}
    assert {name: n for name, n in uses.items() if n} == {"common.ps1": 2}  # the Get-Command check and the call


def test_xml_is_loaded_through_a_reader_with_no_dtd_and_no_resolver():
    """A Registry.xml in the GP history cache is a file on the target: it must not make the script fetch or expand."""
    source = (PS_DIR / "inspect.ps1").read_text(encoding="utf-8")
    loads = re.findall(r"\.Load\(([^\n]*)\)", code_only(source))
    assert loads and all("[System.Xml.XmlReader]::Create(" in argument for argument in loads)
    assert "$settings.XmlResolver = $null" in source and "$doc.XmlResolver = $null" in source
    assert "$settings.DtdProcessing = 'Prohibit'" in source and "$settings.ProhibitDtd = $true" in source


def test_rsop_is_read_from_root_rsop_computer_with_a_powershell_2_cmdlet():
    source = (PS_DIR / "inspect.ps1").read_text(encoding="utf-8")
    assert "Get-WmiObject -Namespace $Namespace -Class $Class" in (PS_DIR / "common.ps1").read_text(encoding="utf-8")
    for wmi_class in ("RSOP_Session", "RSOP_GPO", "RSOP_RegistryPolicySetting"):
        assert f"Get-TrWmiObjects '{wmi_class}' $ns" in source
    assert "$ns = 'root\\rsop\\computer'" in source
