"""What the decoding scrubber costs next to the fixed-list one it replaced, and what it finds that the list missed.

Both scrub the same corpus: an evidence bundle given on the command line, or else the project's notebooks with their
HTML copies (nbconvert's HTML is most of a real bundle's bytes), each with the secret written into it in a few forms.
Prints MB/s for both, the ratio, and how many of the tests' independently built forms (tests/leak_forms.py) each
one finds.

    python benchmarks/scrub.py [BUNDLE_DIR] [--rounds 3]
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from leak_forms import HOSTILE_SECRET_CHARS, written_forms  # noqa: E402
from runbook_lib.remote.scrub import Scrubber  # noqa: E402

SECRET = HOSTILE_SECRET_CHARS + "bench-7Qx"


class FixedListScrubber:
    """The baseline: the scrubber this project had before, a fixed list of encodings replaced with bytes.replace."""

    def __init__(self, secret: str):
        forms = {secret, repr(secret)[1:-1], json.dumps(secret)[1:-1], secret.encode("unicode_escape").decode()}
        encoded = {text.encode(encoding) for text in forms for encoding in ("utf-8", "utf-16-le")}
        for raw in (secret.encode("utf-8"), secret.encode("utf-16-le")):
            encoded |= {base64.b64encode(raw).rstrip(b"="), base64.urlsafe_b64encode(raw).rstrip(b"=")}
        self.patterns = sorted(encoded, key=len, reverse=True)

    def scrub_bytes(self, data: bytes) -> tuple[bytes, int]:
        hits = 0
        for pattern in self.patterns:
            hits += data.count(pattern)
            data = data.replace(pattern, b"[REDACTED]")
        return data, hits

    def contains(self, data: bytes) -> bool:
        return any(pattern in data for pattern in self.patterns)


def corpus(bundle: Path | None) -> list[bytes]:
    if bundle is not None:
        return [p.read_bytes() for p in sorted(bundle.rglob("*")) if p.is_file()]
    import nbformat
    from nbconvert import HTMLExporter

    forms = written_forms(SECRET)
    files = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        leak = "\n\n".join(forms[name].decode() for name in ("json", "basic header", "url quote_plus"))
        notebook.cells.append(nbformat.v4.new_markdown_cell(leak))
        files.append(nbformat.writes(notebook).encode())
        files.append(HTMLExporter().from_notebook_node(notebook)[0].encode())
    return files


def throughput(scrubber, files: list[bytes], rounds: int) -> float:
    total = sum(len(f) for f in files) * rounds
    started = time.perf_counter()
    for _ in range(rounds):
        for data in files:
            scrubber.scrub_bytes(data)
    return total / (time.perf_counter() - started) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", nargs="?", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    files = corpus(args.bundle)
    print(f"corpus: {len(files)} files, {sum(len(f) for f in files) / 1e6:.1f} MB")
    baseline, decoding = FixedListScrubber(SECRET), Scrubber([SECRET])
    old_rate, new_rate = throughput(baseline, files, args.rounds), throughput(decoding, files, args.rounds)
    print(f"fixed list (baseline): {old_rate:8.1f} MB/s")
    print(f"decoding scrubber:     {new_rate:8.1f} MB/s")
    print(f"ratio decoding/baseline: {new_rate / old_rate:.3f} (the price of reading every file the way a person would)")
    forms = written_forms(SECRET)
    found_old = sum(baseline.contains(b"x " + form + b" y") for form in forms.values())
    found_new = sum(decoding.contains(b"x " + form + b" y") for form in forms.values())
    print(f"forms found (of {len(forms)} built by tests/leak_forms.py): baseline {found_old}, decoding {found_new}")


if __name__ == "__main__":
    main()
