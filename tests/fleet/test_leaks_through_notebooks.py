"""End to end: a papermill run whose cells write a secret in every form (the tests' own encoders), rendered to HTML as
the runner does, then put into a bundle. Scrubbed on the way in, the bundle verifies and no form can be read back
from it; copied in as it is, verify names both files.

The secret reaches the kernel the way credentials do (environment), plus once as a papermill parameter inside a URL,
which is what papermill writes into the notebook when an operator passes one.
"""

from __future__ import annotations

import base64
import html.parser
import json
import re
import secrets
import shutil

import nbformat
import papermill
import pytest
from nbconvert import HTMLExporter
from papermill.exceptions import PapermillExecutionError

from leak_forms import HOSTILE_SECRET_CHARS, written_forms
from runbook_lib.fleet import evidence
from runbook_lib.fleet.signing import new_run_key

SECRET = HOSTILE_SECRET_CHARS + secrets.token_urlsafe(8)

CELLS = [
    ("parameters", 'target = ""'),
    ("every form", """
import base64, json, os, sys
forms = {name: base64.b64decode(value) for name, value in json.load(open(os.environ["LEAK_FORMS"])).items()}
for name, raw in forms.items():
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    print(name, text)
    print(name, raw)
    print(name, repr(text), file=sys.stderr)
"""),
    ("as html", """
from IPython.display import HTML, JSON, display
secret = os.environ["LEAK_SECRET"]
display(HTML(forms["html minimal"].decode() + "<br>" + forms["html spans"].decode()))
display(JSON({"password": secret}))
display({"text/plain": secret, "application/json": {"p": secret}}, raw=True)
"""),
    ("split", """
import time
print("split: " + secret[:9], end="", flush=True)
time.sleep(0.4)
print(secret[9:], flush=True)
"""),
    ("logged", """
import logging
logging.getLogger("leaky").warning("logon as svc with %s", secret)
target
"""),
    ("traceback", """
raise PermissionError(f"logon refused for {secret!r}")
"""),
]


def _notebook(path):
    notebook = nbformat.v4.new_notebook()
    for tag, source in CELLS:
        cell = nbformat.v4.new_code_cell(source.strip())
        cell.metadata["tags"] = [tag]
        notebook.cells.append(cell)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)


class _Text(html.parser.HTMLParser):
    """The text a reader of the HTML sees (entities decoded), and the text of <pre> blocks joined without breaks."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.all, self.pre, self._in_pre = [], [], 0

    def handle_starttag(self, tag, attrs):
        self._in_pre += tag == "pre"

    def handle_endtag(self, tag):
        self._in_pre -= tag == "pre"

    def handle_data(self, data):
        self.all.append(data)
        if self._in_pre:
            self.pre.append(data)


def readable_text(path) -> str:
    """What a person reading the file could see: notebook outputs and sources decoded, ANSI codes dropped, stream
    outputs joined; HTML text decoded, <pre> blocks joined."""
    if path.suffix == ".ipynb":
        notebook = nbformat.read(path, as_version=4)
        parts = []
        for cell in notebook.cells:
            parts.append(cell.source)
            for output in cell.get("outputs", []):
                parts.append(json.dumps(output, ensure_ascii=False))
                parts.append(output.get("text", "") + "".join(output.get("traceback", [])))
                parts += [value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
                          for value in output.get("data", {}).values()]
            parts.append("".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("name") == "stdout"))
        return re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(parts))
    parser = _Text()
    parser.feed(path.read_text(encoding="utf-8"))
    return "".join(parser.all) + "\n" + "".join(parser.pre)


def forms_readable_in(path, forms: dict[str, bytes]) -> list[str]:
    text = readable_text(path)
    shown = {name: form.decode("utf-8") for name, form in forms.items() if _text_form(form)}
    return sorted(name for name, form in shown.items() if form in text) + \
        (["secret"] if SECRET in text or SECRET.replace("<", "&lt;") in text else [])


def _text_form(form: bytes) -> bool:
    try:
        return "\x00" not in form.decode("utf-8")
    except UnicodeDecodeError:
        return False


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The notebook run once by papermill (its last cell fails, as a logon error would), and its HTML copy."""
    folder = tmp_path_factory.mktemp("leaky")
    forms = written_forms(SECRET)
    (folder / "forms.json").write_text(json.dumps({n: base64.b64encode(f).decode() for n, f in forms.items()}))
    _notebook(folder / "leaky.ipynb")
    staging = folder / "staging"
    staging.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LEAK_SECRET", SECRET)
        patch.setenv("LEAK_FORMS", str(folder / "forms.json"))
        with pytest.raises(PapermillExecutionError, match="PermissionError"):
            papermill.execute_notebook(str(folder / "leaky.ipynb"), str(staging / "leaky.ipynb"), kernel_name="python3",
                                       parameters={"target": f"http://svc:{SECRET}@srv01:5985/wsman"},
                                       progress_bar=False)
    body, _ = HTMLExporter().from_notebook_node(nbformat.read(staging / "leaky.ipynb", as_version=4))
    (staging / "leaky.html").write_text(body, encoding="utf-8")
    return staging, forms


def test_the_executed_notebook_and_its_html_show_the_secret_in_its_forms(executed):
    staging, forms = executed
    for name in ("leaky.ipynb", "leaky.html"):
        shown = forms_readable_in(staging / name, forms)
        assert "secret" in shown and "url quote_plus" in shown and "basic header" in shown, (name, shown)


def test_a_bundle_scrubbed_on_the_way_in_verifies_and_holds_no_readable_form(executed, tmp_path):
    staging, forms = executed
    scrubber = evidence.Scrubber([SECRET])
    for name in ("leaky.ipynb", "leaky.html"):
        assert scrubber.copy(staging / name, tmp_path / "hosts" / "srv01" / name) > len(forms)
    evidence.write_manifest(tmp_path, {"run_id": "leaky", "complete": True,
                                       "hosts": [{"name": "srv01", "state": "done"}]}, new_run_key())
    result = evidence.verify(tmp_path, [SECRET])
    assert result.ok and result.leak_scan, result.lines()
    notebook = tmp_path / "hosts" / "srv01" / "leaky.ipynb"
    nbformat.validate(nbformat.read(notebook, as_version=4))  # redaction keeps the notebook a notebook
    for name in ("leaky.ipynb", "leaky.html"):
        assert forms_readable_in(tmp_path / "hosts" / "srv01" / name, forms) == [], name
        data = (tmp_path / "hosts" / "srv01" / name).read_bytes()
        assert [n for n, form in forms.items() if form in data] == [], name


def test_a_bundle_copied_in_unscrubbed_fails_verify_naming_both_files(executed, tmp_path):
    staging, _ = executed
    for name in ("leaky.ipynb", "leaky.html"):
        (tmp_path / "hosts").mkdir(exist_ok=True)
        shutil.copy(staging / name, tmp_path / "hosts" / name)
    evidence.write_manifest(tmp_path, {"run_id": "leaky", "complete": True, "hosts": []}, new_run_key())
    result = evidence.verify(tmp_path, [SECRET])
    assert result.secrets_found == ["hosts/leaky.html", "hosts/leaky.ipynb"] and not result.ok
