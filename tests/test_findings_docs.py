"""Every finding the code can emit has its section in docs/findings.md, with the Microsoft sources it cites, and the
project's documentation links only to what the repository holds.

The finding ids are read from the code itself (an AST walk), not from a list kept by hand: every ``Finding(...)``
built from a literal, and every call of a function that builds one from its parameters (the engine's ``add``).
An id, severity or source the walk cannot resolve fails the test, naming the line, so a new kind of expression is
taught here rather than skipped. The engine run over every committed facts file then checks the walk missed
nothing.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from runbook_lib.core import facts, knowledge
from runbook_lib.core.engine import assess
from runbook_lib.core.group_policy import Claim
from runbook_lib.core.verdict import FINDINGS_DOC, PROFILES, SEVERITIES, Finding

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "runbook_lib"
FACTS_DIR = Path(__file__).parent / "facts"
_FINDING_FIELDS = [field.name for field in dataclasses.fields(Finding)]


# --- what the code can emit ---------------------------------------------------------------------------------------
@dataclasses.dataclass
class Emitted:
    severities: set[str] = dataclasses.field(default_factory=set)
    sources: set[str] = dataclasses.field(default_factory=set)  # URLs
    where: list[str] = dataclasses.field(default_factory=list)


class Unresolved(Exception):
    """An id, severity or source expression this test does not know how to enumerate."""


def _modules() -> dict[Path, ast.Module]:
    return {path: ast.parse(path.read_text(encoding="utf-8"), str(path)) for path in sorted(PACKAGE.rglob("*.py"))}


def _functions(tree: ast.Module) -> list[ast.FunctionDef]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)]


def _enclosing(tree: ast.Module) -> dict[ast.AST, ast.FunctionDef | None]:
    """Each node's innermost enclosing function (None at module level)."""
    owner: dict[ast.AST, ast.FunctionDef | None] = {}

    def visit(node: ast.AST, function: ast.FunctionDef | None) -> None:
        for child in ast.iter_child_nodes(node):
            owner[child] = function
            visit(child, child if isinstance(child, ast.FunctionDef) else function)

    visit(tree, None)
    return owner


def _finding_argument(call: ast.Call, field: str) -> ast.expr | None:
    index = _FINDING_FIELDS.index(field)
    for keyword in call.keywords:
        if keyword.arg == field:
            return keyword.value
    return call.args[index] if index < len(call.args) else None


def _is_finding_call(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Finding"


def _all_os_rows() -> list[knowledge.OsRow]:
    """Every row knowledge.os_row can return: its module-level rows and the ones it builds per version."""
    rows = [value for value in vars(knowledge).values() if isinstance(value, knowledge.OsRow)]
    for major, minor in ((5, 2), (6, 0), (6, 1), (6, 2), (6, 3), (10, 0)):
        for build in (3790, 6001, 6002, 7601, 9200, 9600, 10240, 14393, 17763, 19045, 20348, 22000, 26100):
            for service_pack in (0, 1, 2):
                for product_type in ("workstation", "server", "domain_controller"):
                    rows.append(knowledge.os_row((major, minor, build), service_pack, product_type))
    return rows


def _assigned(function: ast.FunctionDef | None, name: str, line: str) -> ast.expr:
    values = [node.value for node in ast.walk(function) if isinstance(node, ast.Assign)
              for target in node.targets if isinstance(target, ast.Name) and target.id == name] if function else []
    if len(values) != 1:
        raise Unresolved(f"{line}: {name!r} is not assigned exactly once in its function")
    return values[0]


def _strings(expr: ast.expr, function: ast.FunctionDef | None, line: str) -> set[str]:
    """The values of a string expression built from literals, conditionals and locals assigned from them."""
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return {expr.value}
    if isinstance(expr, ast.IfExp):
        return _strings(expr.body, function, line) | _strings(expr.orelse, function, line)
    if isinstance(expr, ast.Name):
        return _strings(_assigned(function, expr.id, line), function, line)
    raise Unresolved(f"{line}: cannot enumerate {ast.unparse(expr)!r}")


def _os_row_field(expr: ast.expr, function: ast.FunctionDef | None, line: str) -> str:
    if isinstance(expr, ast.Name):
        expr = _assigned(function, expr.id, line)
    if isinstance(expr, ast.Attribute) and expr.attr in {f.name for f in dataclasses.fields(knowledge.OsRow)}:
        return expr.attr
    raise Unresolved(f"{line}: the id part {ast.unparse(expr)!r} is not a field of the OS matrix")


def _ids(expr: ast.expr, function: ast.FunctionDef | None, line: str) -> set[str]:
    """Literal ids, and f-string ids whose one placeholder is a field of the OS matrix (``update.{KB}``)."""
    if isinstance(expr, ast.JoinedStr):
        placeholders = [part for part in expr.values if isinstance(part, ast.FormattedValue)]
        if len(placeholders) != 1:
            raise Unresolved(f"{line}: cannot enumerate {ast.unparse(expr)!r}")
        field = _os_row_field(placeholders[0].value, function, line)
        values = {getattr(row, field) for row in _all_os_rows()} - {None}
        if not values:
            raise Unresolved(f"{line}: no OS row has a {field}")
        template = "".join(part.value if isinstance(part, ast.Constant) else "{}" for part in expr.values)
        return {template.format(value) for value in values}
    if isinstance(expr, ast.IfExp):
        return _ids(expr.body, function, line) | _ids(expr.orelse, function, line)
    return _strings(expr, function, line)


def _claim_tags(modules: dict[Path, ast.Module]) -> set[str]:
    """Every tag a Group Policy claim can cite: the literals passed as ``cites`` to ``Claim(...)``."""
    index = [field.name for field in dataclasses.fields(Claim)].index("cites")
    tags = set()
    for path, tree in modules.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Claim":
                value = next((k.value for k in node.keywords if k.arg == "cites"), None) or node.args[index]
                tags |= _strings(value, None, f"{path.name}:{node.lineno}")
    return tags


def _returned_tags(modules: dict[Path, ast.Module], name: str, line: str) -> set[str]:
    for tree in modules.values():
        for function in _functions(tree):
            if function.name == name:
                return set().union(*(_strings(node.value, function, line) for node in ast.walk(function)
                                     if isinstance(node, ast.Return) and node.value is not None))
    raise Unresolved(f"{line}: no function {name!r}")


def _tags(expr: ast.expr, function: ast.FunctionDef | None, modules: dict[Path, ast.Module], line: str) -> set[str]:
    """The source tags (keys of knowledge.SOURCES) an expression can take."""
    if isinstance(expr, ast.IfExp):
        return _tags(expr.body, function, modules, line) | _tags(expr.orelse, function, modules, line)
    if isinstance(expr, ast.Attribute) and expr.attr == "cites":
        return _claim_tags(modules)
    if isinstance(expr, ast.Subscript) and ast.unparse(expr.value).endswith("suite_names.sources") \
            and ast.unparse(expr.slice) == "0":
        return {names.sources[0] for names in knowledge.SUITE_NAMES.values()}
    if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name):
        return _returned_tags(modules, expr.func.id, line)
    return _strings(expr, function, line)


def _emitters(modules: dict[Path, ast.Module]) -> dict[str, dict[str, int]]:
    """Functions that build a Finding from their own parameters: name -> {field: index of the call argument}."""
    emitters = {}
    for tree in modules.values():
        for function in _functions(tree):
            params = [arg.arg for arg in function.args.args]
            offset = 1 if params[:1] == ["self"] else 0
            for call in filter(_is_finding_call, ast.walk(function)):
                fields = {}
                for field in ("id", "severity", "source"):
                    expr = _finding_argument(call, field)
                    if isinstance(expr, ast.Subscript) and ast.unparse(expr.value).endswith("SOURCES"):
                        expr = expr.slice  # the parameter is a tag
                    if isinstance(expr, ast.Name) and expr.id in params:
                        fields[field] = params.index(expr.id) - offset
                if fields:
                    emitters[function.name] = fields
    return emitters


def emitted_by_code() -> dict[str, Emitted]:
    modules = _modules()
    emitters = _emitters(modules)
    found: dict[str, Emitted] = {}
    for path, tree in modules.items():
        owner = _enclosing(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            line = f"{path.relative_to(ROOT)}:{node.lineno}"
            function = owner.get(node)
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            if _is_finding_call(node):
                if function is not None and function.name in emitters:
                    continue  # the emitter itself: its calls are what count
                if not node.args and [k.arg for k in node.keywords] == [None]:
                    continue  # Finding(**doc): reading back a verdict this project wrote
                id_expr, severity_expr = _finding_argument(node, "id"), _finding_argument(node, "severity")
                ids = _ids(id_expr, function, line)
                severities = _strings(severity_expr, function, line)
                urls = _strings(_finding_argument(node, "source"), function, line)
            elif name in emitters and len(node.args) > max(emitters[name].values()):
                fields = emitters[name]
                ids = _ids(node.args[fields["id"]], function, line)
                severities = _strings(node.args[fields["severity"]], function, line)
                urls = {knowledge.SOURCES[tag] for tag in _tags(node.args[fields["source"]], function, modules, line)}
            else:
                continue
            for finding_id in ids:
                entry = found.setdefault(finding_id, Emitted())
                entry.severities |= severities
                entry.sources |= urls
                entry.where.append(line)
    return found


# --- what the documentation says ----------------------------------------------------------------------------------
_ANCHOR = re.compile(r'^<a id="([^"]+)"></a>\n(.*)$', re.MULTILINE)


def sections(text: str) -> dict[str, str]:
    """id -> the text of its section: from its anchor to the next anchor or ``##`` heading."""
    found: dict[str, str] = {}
    for match in _ANCHOR.finditer(text):
        finding_id, heading = match.groups()
        assert heading == f"### `{finding_id}`", f"the anchor {finding_id!r} is not followed by its own heading"
        assert finding_id not in found, f"two sections for {finding_id!r}"
        rest = text[match.end():]
        end = re.search(r'^(<a id="|## )', rest, re.MULTILINE)
        found[finding_id] = rest[:end.start()] if end else rest
    return found


def documented_severities(section: str) -> set[str]:
    line = re.search(r"^\*\*Severity:\*\* (.*)$", section, re.MULTILINE)
    assert line, "no **Severity:** line"
    return {word for word in re.findall(r"[a-z]+", line.group(1)) if word in SEVERITIES}


def check(code: dict[str, Emitted], docs: dict[str, str]) -> list[str]:
    """Every way the two disagree, one line each."""
    problems = [f"{finding_id} (emitted at {', '.join(code[finding_id].where)}) has no section in {FINDINGS_DOC}"
                for finding_id in sorted(set(code) - set(docs))]
    problems += [f"{FINDINGS_DOC} has a section for {finding_id}, which no code emits"
                 for finding_id in sorted(set(docs) - set(code))]
    for finding_id in sorted(set(code) & set(docs)):
        problems += [f"the section {finding_id} lacks the source it cites: {url}"
                     for url in sorted(code[finding_id].sources) if url not in docs[finding_id]]
        missing = code[finding_id].severities - documented_severities(docs[finding_id])
        problems += [f"the section {finding_id} does not give the severity {severity}" for severity in sorted(missing)]
    return problems


@pytest.fixture(scope="module")
def code() -> dict[str, Emitted]:
    return emitted_by_code()


@pytest.fixture(scope="module")
def findings_doc() -> str:
    return (ROOT / FINDINGS_DOC).read_text(encoding="utf-8")


def test_every_finding_the_code_can_emit_has_a_section_with_its_sources_and_no_section_is_orphaned(code, findings_doc):
    assert len(code) > 30  # the walk found the engine's findings at all
    problems = check(code, sections(findings_doc))
    assert not problems, "\n".join(problems)


def test_the_check_fails_when_a_section_a_source_or_a_severity_is_missing(code):
    complete = {finding_id: f"**Severity:** {', '.join(sorted(e.severities))}.\n\n" + "\n".join(sorted(e.sources))
                for finding_id, e in code.items()}
    assert check(code, complete) == []
    without_section = {k: v for k, v in complete.items() if k != "cipher.no_entra_suite"}
    assert [p.split(" (")[0] for p in check(code, without_section)] == ["cipher.no_entra_suite"]
    assert "runbook_lib/core/findings.py:" in check(code, without_section)[0]
    url = knowledge.SOURCES["X4"]
    without_source = dict(complete, **{"cipher.no_entra_suite": complete["cipher.no_entra_suite"].replace(url, "")})
    assert check(code, without_source) == [f"the section cipher.no_entra_suite lacks the source it cites: {url}"]
    orphan = dict(complete, **{"cipher.retired": "**Severity:** info."})
    assert check(code, orphan) == [f"{FINDINGS_DOC} has a section for cipher.retired, which no code emits"]
    wrong_severity = dict(complete, **{"client.pwsh": complete["client.pwsh"].replace("error, ", "")})
    assert check(code, wrong_severity) == ["the section client.pwsh does not give the severity error"]


def test_ids_built_from_the_os_matrix_are_enumerated_from_it(code):
    updates = {row.required_update for row in _all_os_rows()} | {row.winhttp_update for row in _all_os_rows()}
    assert {f"update.{kb}" for kb in updates - {None}} == {i for i in code if i.startswith("update.")}
    assert code["update.KB3140245"].severities == {"blocker", "warning"}
    assert code["gpo.managed"].sources >= {knowledge.SOURCES[tag] for tag in ("G1", "G3", "S1", "X1", "X2", "X10")}
    assert code["guard.change_dropped"].sources == {knowledge.SOURCES[tag] for tag in ("S1", "W1", "N1")}


def test_an_expression_the_walk_cannot_enumerate_is_an_error_not_a_skip():
    tree = ast.parse("def f(x):\n    return Finding(x.kind, 'info', 'm', 'https://example.invalid')\n")
    call = next(node for node in ast.walk(tree) if _is_finding_call(node))
    with pytest.raises(Unresolved, match="cannot enumerate 'x.kind'"):
        _ids(_finding_argument(call, "id"), tree.body[0], "example.py:2")


def test_findings_the_engine_emits_on_every_committed_host_are_documented_with_their_source(code, findings_doc):
    docs = sections(findings_doc)
    emitted, reasons = {}, set()
    for path in sorted(FACTS_DIR.glob("*.json")):
        host = facts.load(path)
        for profile in PROFILES:
            verdict = assess(host, profile)
            emitted.update({(f.id, f.source, f.severity): path.name for f in verdict.findings})
            reasons |= {change.reason for change in verdict.changes}
    problems = []
    for (finding_id, source, severity), where in sorted(emitted.items()):
        if finding_id not in code or source not in code[finding_id].sources \
                or severity not in code[finding_id].severities:
            problems.append(f"{finding_id} {severity} {source} (on {where}) was missed by the walk of the code")
        if source not in docs.get(finding_id, ""):
            problems.append(f"{finding_id} (on {where}) has no section in {FINDINGS_DOC} citing {source}")
    assert not problems, "\n".join(problems)
    table = findings_doc[findings_doc.index("## Reasons in a plan"):]
    assert [reason for reason in sorted(reasons) if f"`{reason}`" not in table] == []


# --- links and the workspace ----------------------------------------------------------------------------------------
def project_docs() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    explicit = set(re.findall(r'<a id="([^"]+)"></a>', text))
    return explicit | {_slug(h) for h in re.findall(r"^#+ (.*)$", text, re.MULTILINE)}


def test_readme_and_docs_link_only_to_files_and_anchors_in_the_repository():
    dangling = []
    for path in project_docs():
        text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.DOTALL)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            file_part, _, fragment = target.partition("#")
            linked = (path.parent / unquote(file_part)).resolve() if file_part else path
            if not linked.exists():
                dangling.append(f"{path.relative_to(ROOT)}: {target} (no such file)")
            elif fragment and linked.suffix == ".md" and unquote(fragment) not in anchors(linked):
                dangling.append(f"{path.relative_to(ROOT)}: {target} (no such anchor)")
    assert not dangling, "\n".join(dangling)


def test_readme_and_docs_never_point_into_the_workspace_outside_the_repository():
    mentions = [f"{path.relative_to(ROOT)}:{number}" for path in project_docs()
                for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if "shared/" in line]
    assert not mentions, "README and docs are all a clone has; they mention shared/ at " + ", ".join(mentions)


def test_tls_knowledge_lists_every_source_the_engine_can_cite_under_the_same_tag():
    text = (ROOT / "docs" / "tls-knowledge.md").read_text(encoding="utf-8")
    table = dict(re.findall(r"^\| ([A-Z]+[0-9]+) \| (.*) \|$", text, re.MULTILINE))
    wrong = [f"{tag}: {url}" for tag, url in sorted(knowledge.SOURCES.items()) if url not in table.get(tag, "")]
    assert not wrong, "not in docs/tls-knowledge.md's sources under this tag:\n" + "\n".join(wrong)
