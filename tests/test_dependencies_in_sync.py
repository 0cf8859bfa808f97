"""pyproject.toml, environment.yml and the README list the same dependencies (three install routes, one truth)."""

import re
import sys
from pathlib import Path

import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def normalise(requirement: str) -> str:
    return re.sub(r"\s+", "", requirement).lower()


def pyproject_requirements() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {normalise(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]}


def environment_requirements() -> set[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    [pip_section] = [item for item in env["dependencies"] if isinstance(item, dict)]
    return {normalise(r) for r in pip_section["pip"] if not r.startswith("-")}


def readme_requirements() -> set[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- dependencies -->\s*```text\n(.*?)```", text, re.DOTALL)
    assert block, "README.md has no <!-- dependencies --> block"
    return {normalise(line) for line in block.group(1).splitlines() if line.strip()}


def test_environment_yml_matches_pyproject():
    assert environment_requirements() == pyproject_requirements()


def test_readme_matches_pyproject():
    assert readme_requirements() == pyproject_requirements()


def test_readme_shows_the_two_commands_and_both_install_routes():
    text = (ROOT / "README.md").read_text()
    for phrase in ("make demo", "make test", "conda env create -f environment.yml", "pip install"):
        assert phrase in text
