"""A verdict reads well in JupyterLab (HTML), in exported evidence and in a terminal."""

import json
import re

from runbook_lib.core import facts
from runbook_lib.core.engine import assess
from runbook_lib.core.verdict import Verdict


def verdict_for(name, facts_path, **overrides):
    host = facts.load(facts_path(name))
    if overrides:
        doc = host.to_dict()
        doc.update(overrides)
        host = facts.from_dict(doc)
    return assess(host)


def test_html_has_findings_table_with_coloured_severities_and_source_links(facts_path):
    html = verdict_for("ws2019_tls12_disabled_by_gpo", facts_path)._repr_html_()
    assert "class='tls-runbook-findings'" in html
    assert re.search(r"color:#8b0000;font-weight:bold'>blocker<", html)
    assert "href='https://learn.microsoft.com/" in html
    assert "SIMULATED" not in html


def test_hostile_registry_text_is_escaped_in_html(facts_path):
    doc = facts.load(facts_path("win7_wmf51")).to_dict()
    doc["registry"].append({"path": "HKLM\\SOFTWARE\\Microsoft\\.NETFramework\\v4.0.30319",
                            "name": "SchUseStrongCrypto", "type": "REG_SZ", "data": "<script>alert(1)</script>",
                            "policy": False})
    html = assess(facts.from_dict(doc))._repr_html_()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>" not in html


def test_simulated_host_says_so_in_html_text_and_json(facts_path):
    verdict = verdict_for("win7_wmf51", facts_path, simulated=True)
    assert "SIMULATED" in verdict._repr_html_()
    assert verdict.render_text().startswith("*** SIMULATED HOST")
    assert verdict.to_dict()["simulated"] is True


def test_mimebundle_offers_plain_html_and_json(facts_path):
    bundle = verdict_for("win7_wmf51", facts_path)._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html", "application/json"}
    assert bundle["application/json"]["schema"] == "tls-runbook/verdict/v1"


def test_terminal_colours_only_when_asked(facts_path):
    verdict = verdict_for("ws2019_tls12_disabled_by_gpo", facts_path)
    assert "\033[1;31m" in verdict.render_text(colour=True)
    assert "\033[" not in verdict.render_text()


def test_verdict_json_reads_back(facts_path):
    verdict = verdict_for("win7_wmf51", facts_path)
    assert Verdict.from_dict(json.loads(verdict.dumps())) == verdict


def test_every_finding_points_to_its_section_in_findings_doc_in_html_and_text(facts_path):
    verdict = verdict_for("ws2019_tls12_disabled_by_gpo", facts_path)
    html, text = verdict._repr_html_(), verdict.render_text()
    assert verdict.findings
    for finding in verdict.findings:
        assert f"<code>{finding.id}</code><br><span class='tls-runbook-finding-docs'" in html
        assert f"docs/findings.md#{finding.id}</span>" in html
        assert f"{finding.id}: {finding.message}\n            {finding.source}\n" \
               f"            docs/findings.md#{finding.id}" in text


def test_findings_doc_reference_is_not_stored_in_verdict_json(facts_path):
    verdict = verdict_for("ws2019_tls12_disabled_by_gpo", facts_path)
    assert all(set(f) == {"id", "severity", "message", "source"} for f in verdict.to_dict()["findings"])
    assert "docs/findings.md" not in verdict.dumps()
