from pathlib import Path

import pytest

FACTS_DIR = Path(__file__).parent / "facts"


@pytest.fixture
def facts_path():
    """Path of a committed facts fixture by name (without .json)."""
    def resolve(name: str) -> Path:
        return FACTS_DIR / f"{name}.json"
    return resolve
