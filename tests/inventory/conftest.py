from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def fixture_path():
    """Path of a committed inventory fixture by file name."""
    return lambda name: FIXTURES / name


@pytest.fixture
def write_inventory(tmp_path):
    """Write an inventory file with the given name and text; return its path."""
    def write(name: str, text: str | bytes) -> Path:
        path = tmp_path / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8", newline="")
        return path
    return write
