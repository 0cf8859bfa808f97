"""Finding credential values in evidence files, in whatever form a tool wrote them, and removing them.

A list of encodings to search for always misses the next one (HTML entities inside a notebook's JSON, base64 at an
offset inside a Basic header, a URL-encoded password in a repr). So a file is read the way a person would read it:

- escapes of every family that Python, JSON, HTML, URLs, terminals (ANSI colours), CLIXML and nbformat produce are
  decoded together, pass after pass, until nothing changes, and HTML tags are dropped;
- the secret goes through the same decoding, so any combination of those layers is found, in any order;
- runs of base64 (standard or URL-safe, any alignment, padded or not, wrapped or not) and of hex (either case) are
  decoded and read again the same way, to a bounded depth, so a Basic header or a base64 JSON blob is opened;
- UTF-16 text (little or big endian) is read as text too, and raw UTF-16 bytes are searched for anywhere;
- what no decoding gives back is searched for as itself: the NT hash of the secret, which logs on as well as the
  secret does (pass-the-hash), in raw, hex or base64 form.

Scrubbing replaces the whole form in which a secret was found (the escaped run, the base64 blob) with ``[REDACTED]``.
"""

from __future__ import annotations

import binascii
import html
import re
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from .ntlm_hash import nt_hash
from ..core.files import private_folder, write_atomic

MIN_SECRET = 4  # shorter values would match ordinary text everywhere
REDACTED = "[REDACTED]"
_MAX_DEPTH = 3  # base64 inside base64 inside base64: each level is read completely
_MAX_PASSES = 8  # decoding passes per view; real files settle after two or three
_MAX_SCRUB_ROUNDS = 5

# One decoding pass: every escape family at once, left to right. Each alternative starts with a literal character,
# which lets the regex engine skip ahead to the next candidate instead of trying every alternative at every position.
_ESCAPE = re.compile(r"""
    \\(?P<u>u[0-9a-fA-F]{4}(?:\\u[0-9a-fA-F]{4})*)  # JSON, Python, JavaScript (surrogate pairs included)
  | \\(?P<U>U[0-9a-fA-F]{8})                        # Python
  | \\(?P<x>x[0-9a-fA-F]{2}(?:\\x[0-9a-fA-F]{2})*)  # Python bytes and str repr
  | \\(?P<oct>[0-3][0-7]{2}(?:\\[0-3][0-7]{2})*)    # C, git, shells
  | \\(?P<char>[nrtbfva0'"\\/])                     # one-character escapes
  | %(?P<pct>[0-9a-fA-F]{2}(?:%[0-9a-fA-F]{2})*)    # URLs, forms (quote and quote_plus)
  | &(?P<entity>\#[0-9]{1,7};?|\#[xX][0-9a-fA-F]{1,6};?|[A-Za-z][A-Za-z0-9]{1,31};?)   # HTML, XML
  | _(?P<clixml>x[0-9A-Fa-f]{4}_(?:_x[0-9A-Fa-f]{4}_)*)   # PowerShell CLIXML
  | \x1b(?P<ansi>\[[0-?]*[\ -/]*[@-~]|\][^\x07\x1b]{0,512}(?:\x07|\x1b\\))   # terminal colours (tracebacks)
  | <(?P<tag>/?[A-Za-z][A-Za-z0-9:-]{0,40}(?:\s[^<>]{0,2000})?/?>\s*)         # HTML tags (nbconvert's spans)
  | "(?P<join>\s*,[\ \t]*\r?\n\s*"                  # nbformat: one string per line of a multi-line text
      | \s*\]\s*\},\s*\{\s*"name":\s*"std(?:out|err)",\s*"output_type":\s*"stream",\s*"text":\s*\[\s*")
                                                    # nbformat: a cell's consecutive stream outputs
""", re.VERBOSE)
_CHAR_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", "v": "\v", "a": "\a", "0": "\0"}
_URLSAFE = str.maketrans("-_", "+/")


def _bytes_as_text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _hex_units(text: str, prefix: str, width: int) -> list[int]:
    """The numbers in a run such as ``\\u00e9\\u0041`` (prefix ``\\u``, width 4)."""
    return [int(text[i + len(prefix) : i + len(prefix) + width], 16) for i in range(0, len(text), len(prefix) + width)]


def _replacement(match: re.Match[str]) -> str:
    kind, text = match.lastgroup, match.group()
    if kind in ("u", "clixml"):  # UTF-16 code units: an astral character is a surrogate pair
        units = _hex_units(text, "\\u", 4) if kind == "u" else _hex_units(text.replace("_", ""), "x", 4)
        return b"".join(unit.to_bytes(2, "big") for unit in units).decode("utf-16-be", errors="surrogatepass")
    if kind == "U":
        code = int(text[2:], 16)
        return chr(code) if code <= 0x10FFFF else text
    if kind == "x":
        return _bytes_as_text(bytes(_hex_units(text, "\\x", 2)))
    if kind == "oct":
        return _bytes_as_text(bytes(int(text[i + 1 : i + 4], 8) for i in range(0, len(text), 4)))
    if kind == "char":
        return _CHAR_ESCAPES.get(text[1], text[1])
    if kind == "pct":
        return _bytes_as_text(bytes(_hex_units(text, "%", 2)))
    if kind == "entity":
        return html.unescape(text)
    return ""  # terminal codes, tags and nbformat's line structure carry no text


# --- decoding with a way back to the original positions ------------------------------------------------------
@dataclass
class _Pass:
    """One decoding pass: its substitutions as (new_start, new_end, old_start, old_end), in order."""

    edits: list[tuple[int, int, int, int]]

    def __post_init__(self) -> None:
        self._starts = [edit[0] for edit in self.edits]

    def back(self, start: int, end: int) -> tuple[int, int]:
        """The span of the text before this pass that became ``[start, end)``; a partly covered edit counts whole."""
        return self._old_start(start), self._old_end(end)

    def _edit_at(self, position: int) -> tuple[int, int, int, int] | None:
        index = bisect_right(self._starts, position) - 1
        return self.edits[index] if index >= 0 else None

    def _old_start(self, position: int) -> int:
        edit = self._edit_at(position)
        if edit is None:
            return position
        _, new_end, old_start, old_end = edit
        return old_start if position < new_end else old_end + (position - new_end)

    def _old_end(self, end: int) -> int:
        edit = self._edit_at(end - 1)
        if edit is None:
            return end
        _, new_end, _, old_end = edit
        return old_end if end - 1 < new_end else old_end + (end - new_end)


def _decode_pass(text: str) -> tuple[str, _Pass | None]:
    pieces: list[str] = []
    edits: list[tuple[int, int, int, int]] = []
    last = shift = 0
    for match in _ESCAPE.finditer(text):
        replacement = _replacement(match)
        start, end = match.span()
        if replacement == match.group():
            continue
        pieces += [text[last:start], replacement]
        edits.append((start + shift, start + shift + len(replacement), start, end))
        shift += len(replacement) - (end - start)
        last = end
    if not edits:
        return text, None
    pieces.append(text[last:])
    return "".join(pieces), _Pass(edits)


class _Decoding:
    """Decodes a text pass by pass, yielding each reading (the original first), and maps spans of any reading back
    to the original. Readings are not kept: a large file costs one or two copies at a time, not one per pass."""

    def __init__(self, text: str):
        self._text = text
        self._passes: list[_Pass] = []

    def readings(self) -> Iterator[str]:
        text = self._text
        yield text
        for _ in range(_MAX_PASSES):
            text, applied = _decode_pass(text)
            if applied is None:
                return
            self._passes.append(applied)
            yield text

    def back(self, level: int, start: int, end: int) -> tuple[int, int]:
        """The span of the original text that became ``[start, end)`` of reading number ``level``."""
        for applied in reversed(self._passes[:level]):
            start, end = applied.back(start, end)
        return start, end


def _folded(text: str) -> str:
    """quote_plus writes a space as '+': both sides are compared with '+' read as a space."""
    return text.replace("+", " ")


def _secret_readings(secret: str) -> set[str]:
    """A secret as each decoding pass leaves it, folded. Every reading of a file is compared with every reading of
    a secret: decoding all families at once can, at a secret's edge, join its last character with the file's next
    one (a trailing backslash before a closing quote), which one pass earlier had not happened yet."""
    return {_folded(reading) for reading in _Decoding(secret).readings()}


# --- reading bytes as text ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _View:
    """Bytes read as text in one encoding; positions in the text map back to byte offsets."""

    text: str
    encoding: str
    errors: str

    def byte_offset(self, index: int) -> int:
        return len(self.text[:index].encode(self.encoding, self.errors))


def _views(data: bytes) -> Iterator[_View]:
    yield _View(data.decode("utf-8", errors="surrogateescape"), "utf-8", "surrogateescape")
    if len(data) < 8:
        return
    zeros_at_odd, zeros_at_even = data[1::2].count(0), data[0::2].count(0)
    even = data[: len(data) // 2 * 2]
    if data.startswith(b"\xff\xfe") or zeros_at_odd * 4 > len(data) // 2:
        yield _View(even.decode("utf-16-le", errors="surrogatepass"), "utf-16-le", "surrogatepass")
    if data.startswith(b"\xfe\xff") or zeros_at_even * 4 > len(data) // 2:
        yield _View(even.decode("utf-16-be", errors="surrogatepass"), "utf-16-be", "surrogatepass")


def _worth_reading(data: bytes) -> bool:
    """Decoded blob bytes that could hold text (UTF-8 or UTF-16) rather than an image or random bytes. Mostly is
    enough: a run found in running text often carries a neighbouring word that decodes to a few bad bytes."""
    if len(data) < MIN_SECRET:
        return False
    if data.isascii() or data.decode("utf-8", errors="replace").count("\ufffd") * 8 <= len(data):
        return True
    return len(data) >= 8 and max(data[1::2].count(0), data[0::2].count(0)) * 4 > len(data) // 2


def _base64_decodings(run: str) -> Iterator[bytes]:
    """The run decoded from each of its four possible starting points (it may begin mid-quantum)."""
    core = "".join(run.split()).rstrip("=").translate(_URLSAFE)
    for offset in range(4):
        piece = core[offset:]
        if len(piece) % 4 == 1:
            piece = piece[:-1]
        try:
            yield binascii.a2b_base64(piece + "=" * (-len(piece) % 4))
        except (binascii.Error, ValueError):
            continue


def _hex_decodings(run: str) -> Iterator[bytes]:
    for offset in range(2):
        piece = run[offset:]
        yield bytes.fromhex(piece[: len(piece) // 2 * 2])


# --- the scrubber ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Leak:
    """Where a secret was found in a file: a byte span, and the encoding a replacement there must be written in."""

    start: int
    end: int
    encoding: str


class Scrubber:
    """Finds and removes the given secret values; values shorter than MIN_SECRET are ignored (see there)."""

    def __init__(self, secrets: Iterable[str]):
        values = sorted({s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET})
        self.active = bool(values)
        raw: dict[bytes, str] = {}  # byte forms, and the encoding a replacement of each is written in
        for s in values:
            for encoding in ("utf-8", "utf-16-le", "utf-16-be"):
                raw[s.encode(encoding, errors="surrogatepass")] = encoding if encoding != "utf-8" else "ascii"
            raw[nt_hash(s)] = "ascii"
        self._raw = sorted(raw.items(), key=lambda item: len(item[0]), reverse=True)
        # What a reader of a file sees: the secret decoded as the file is, and every byte form shown one character
        # per byte (as a bytes repr, \\u00XX escapes or a latin-1 reading show bytes).
        texts = {form for s in values for form in _secret_readings(s)}
        texts |= {_folded(needle.decode("latin-1")) for needle in raw}
        self._texts = sorted((t for t in texts if len(t) >= MIN_SECRET), key=len, reverse=True)
        shortest = min([len(t.encode("utf-8", errors="surrogatepass")) for t in self._texts]
                       + [len(needle) for needle, _ in self._raw], default=MIN_SECRET)
        # Runs start where the previous character cannot belong to them, so the engine does not retry every
        # position inside a long word.
        self._base64_run = re.compile(r"(?<![A-Za-z0-9+/_-])(?:(?:[A-Za-z0-9+/]{16,}\r?\n)+[A-Za-z0-9+/]*={0,2}"
                                      r"|[A-Za-z0-9+/_-]{%d,}={0,2})" % max(2, -(-4 * shortest // 3)))
        self._hex_run = re.compile(r"(?<![0-9a-fA-F])[0-9a-fA-F]{%d,}" % (2 * shortest))

    # -- finding
    def find(self, data: bytes) -> list[Leak]:
        """Every place a secret is in ``data``, as byte spans (possibly overlapping)."""
        return self._find(data, 0) if self.active else []

    def contains(self, data: bytes) -> bool:
        return bool(self.find(data))

    def _find(self, data: bytes, depth: int) -> list[Leak]:
        leaks = [Leak(start, start + len(needle), encoding) for needle, encoding in self._raw
                 for start in _occurrences(data, needle)]
        for view in _views(data):
            decoding, spans, reading, level = _Decoding(view.text), [], "", 0
            for level, reading in enumerate(decoding.readings()):
                folded = _folded(reading)
                spans += [(level, start, start + len(needle)) for needle in self._texts
                          for start in _occurrences(folded, needle)]
            if depth < _MAX_DEPTH:  # blobs are read once all escapes around them are gone (wrapped base64 in JSON)
                spans += [(level, *match.span()) for match, decodings in self._blobs(reading)
                          if self._blob_leaks(match.group(), decodings, depth)]
            for level, start, end in spans:
                start, end = decoding.back(level, start, end)
                leaks.append(Leak(view.byte_offset(start), view.byte_offset(end),
                                  "ascii" if view.encoding == "utf-8" else view.encoding))
        return leaks

    def _blobs(self, text: str) -> Iterator[tuple[re.Match[str], Callable[[str], Iterator[bytes]]]]:
        yield from ((match, _base64_decodings) for match in self._base64_run.finditer(text))
        yield from ((match, _hex_decodings) for match in self._hex_run.finditer(text))

    def _blob_leaks(self, run: str, decodings: Callable[[str], Iterator[bytes]], depth: int) -> bool:
        return any(any(needle in decoded for needle, _ in self._raw)
                   or (_worth_reading(decoded) and bool(self._find(decoded, depth + 1))) for decoded in decodings(run))

    # -- removing
    def scrub_bytes(self, data: bytes) -> tuple[bytes, int]:
        """``data`` with every found form replaced by [REDACTED]; and how many places were replaced."""
        replaced = 0
        for _ in range(_MAX_SCRUB_ROUNDS):
            leaks = _merged(self.find(data))
            if not leaks:
                break
            for leak in reversed(leaks):
                data = data[: leak.start] + REDACTED.encode(leak.encoding) + data[leak.end :]
            replaced += len(leaks)
        return data, replaced

    def copy(self, source: Path, destination: Path) -> int:
        """Copy one file, scrubbed, privately and atomically; returns how many places held a secret."""
        data, replaced = self.scrub_bytes(source.read_bytes())
        private_folder(destination.parent)
        write_atomic(destination, data)
        return replaced


def _occurrences(haystack, needle) -> Iterator[int]:
    start = haystack.find(needle)
    while start >= 0:
        yield start
        start = haystack.find(needle, start + 1)


def _merged(leaks: list[Leak]) -> list[Leak]:
    """Overlapping spans become one, keeping the encoding of the first, in file order."""
    merged: list[Leak] = []
    for leak in sorted(leaks, key=lambda item: (item.start, -item.end)):
        if merged and leak.start < merged[-1].end:
            last = merged[-1]
            merged[-1] = Leak(last.start, max(last.end, leak.end), last.encoding)
        else:
            merged.append(leak)
    return merged


def write_scrubbed(path: Path | str, data: bytes | str, scrubber: Scrubber) -> int:
    """How a file enters a bundle: credential values removed, then written privately and atomically (see
    :func:`runbook_lib.core.files.write_atomic`). Returns how many credential occurrences were removed. An executed
    notebook being saved over and over enters cell by cell instead, through the same scrubber
    (``runbook_lib.fleet.host_chain._EvidenceIO``), so that a cell already scrubbed is not read again."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    clean, hits = scrubber.scrub_bytes(raw)
    write_atomic(path, clean)
    return hits
