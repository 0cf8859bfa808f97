"""The forms in which Python, papermill, nbconvert, HTTP and PowerShell tooling could write a secret, built here
with encoders of the tests' own, never with the product's scrubber, so a leak test is not checked against the list
it tests.

``written_forms(secret)`` maps a name to the bytes a file would hold. Each form is whole (a Basic header, a JSON
blob), so "this form is gone" means the file no longer holds it anywhere.
"""

from __future__ import annotations

import base64
import json
import struct
from html.entities import codepoint2name

HOSTILE_SECRET_CHARS = 'Tr0ub4dor&3 "é€😀\\/<x>%+\''  # escapes of every family, 1- to 4-byte UTF-8, a surrogate pair


# --- text escapes -----------------------------------------------------------------------------------------------
def html_named(text: str) -> str:
    return "".join(f"&{codepoint2name[ord(ch)]};" if ord(ch) in codepoint2name else ch for ch in text)


def html_decimal(text: str) -> str:
    return "".join(f"&#{ord(ch)};" for ch in text)


def html_hex(text: str) -> str:
    return "".join(f"&#x{ord(ch):X};" for ch in text)


def html_minimal(text: str) -> str:
    """What a template engine does: only the five characters that matter in markup."""
    table = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}
    return "".join(table.get(ch, ch) for ch in text)


_UNRESERVED = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def percent(text: str, *, plus: bool = False, lower: bool = False, every_byte: bool = False) -> str:
    out = []
    for byte in text.encode("utf-8"):
        if plus and byte == 0x20:
            out.append("+")
        elif byte in _UNRESERVED and not every_byte:
            out.append(chr(byte))
        else:
            out.append(f"%{byte:02x}" if lower else f"%{byte:02X}")
    return "".join(out)


def backslash_x(raw: bytes) -> str:
    return "".join(f"\\x{byte:02x}" for byte in raw)


def backslash_octal(raw: bytes) -> str:
    return "".join(f"\\{byte:03o}" for byte in raw)


def backslash_u(text: str) -> str:
    """JavaScript-style: every character as \\uXXXX, astral ones as a surrogate pair."""
    units = struct.unpack(f">{len(text.encode('utf-16-be', 'surrogatepass')) // 2}H",
                          text.encode("utf-16-be", "surrogatepass"))
    return "".join(f"\\u{unit:04x}" for unit in units)


def clixml(text: str) -> str:
    """PowerShell CLIXML: every UTF-16 code unit as _xHHHH_ (as it does for control characters)."""
    raw = text.encode("utf-16-be", "surrogatepass")
    return "".join(f"_x{raw[i] << 8 | raw[i + 1]:04X}_" for i in range(0, len(raw), 2))


def ansi_split(text: str) -> str:
    """A coloured traceback: colour codes around the value and in the middle of it."""
    middle = len(text) // 2
    return f"\x1b[0;31m{text[:middle]}\x1b[1;32m{text[middle:]}\x1b[0m"


def html_split(text: str) -> str:
    middle = len(text) // 2
    return f'<span class="ansi-red-fg">{html_minimal(text[:middle])}</span><span class="ansi-green-fg">' \
           f'{html_minimal(text[middle:])}</span>'


# --- binary encodings ------------------------------------------------------------------------------------------
def nt_hash(secret: str) -> bytes:
    """MD4 (RFC 1320) written out here, separately from the product's."""
    data = secret.encode("utf-16-le", "surrogatepass")
    message = bytearray(data) + b"\x80" + b"\x00" * ((55 - len(data)) % 64) + struct.pack("<Q", len(data) * 8)
    h = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476]

    def rotate(x, n):
        x &= 0xFFFFFFFF
        return ((x << n) | (x >> (32 - n))) & 0xFFFFFFFF

    for block in range(0, len(message), 64):
        x = struct.unpack("<16I", message[block : block + 64])
        a, b, c, d = h
        for i in range(16):
            k, s = i, (3, 7, 11, 19)[i % 4]
            a, b, c, d = d, rotate(a + ((b & c) | (~b & d)) + x[k], s), b, c
        for i in range(16):
            k, s = (i % 4) * 4 + i // 4, (3, 5, 9, 13)[i % 4]
            a, b, c, d = d, rotate(a + ((b & c) | (b & d) | (c & d)) + x[k] + 0x5A827999, s), b, c
        for i in range(16):
            k, s = (0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15)[i], (3, 9, 11, 15)[i % 4]
            a, b, c, d = d, rotate(a + (b ^ c ^ d) + x[k] + 0x6ED9EBA1, s), b, c
        h = [(v + w) & 0xFFFFFFFF for v, w in zip(h, (a, b, c, d))]
    return struct.pack("<4I", *h)


def base64_variants(raw: bytes, name: str) -> dict[str, bytes]:
    """Standard and URL-safe, padded and not, at byte offsets 0, 1 and 2 of a longer blob."""
    forms = {}
    for offset in range(3):
        blob = b"x" * offset + raw + b"!?"[: (offset + 1) % 3]
        for alphabet, encode in (("std", base64.b64encode), ("urlsafe", base64.urlsafe_b64encode)):
            encoded = encode(blob)
            forms[f"{name} base64 {alphabet} offset {offset}"] = encoded
            forms[f"{name} base64 {alphabet} offset {offset} unpadded"] = encoded.rstrip(b"=")
    return forms


def written_forms(secret: str, user: str = "CONTOSO\\svc-tls") -> dict[str, bytes]:
    utf8 = secret.encode("utf-8")
    le, be = secret.encode("utf-16-le", "surrogatepass"), secret.encode("utf-16-be", "surrogatepass")
    forms: dict[str, bytes] = {
        "plain": utf8,
        "python repr": repr(secret).encode(),
        "python ascii()": ascii(secret).encode(),
        "bytes repr": repr(utf8).encode(),
        "json": json.dumps({"password": secret}).encode(),
        "json not ascii": json.dumps({"password": secret}, ensure_ascii=False).encode(),
        "json in json": json.dumps({"cell": json.dumps({"password": secret})}).encode(),
        "unicode_escape": secret.encode("unicode_escape"),
        "backslash x": backslash_x(utf8).encode(),
        "backslash octal": backslash_octal(utf8).encode(),
        "backslash u": backslash_u(secret).encode(),
        "html named": html_named(secret).encode(),
        "html decimal": html_decimal(secret).encode(),
        "html hex": html_hex(secret).encode(),
        "html minimal": html_minimal(secret).encode(),
        "html of json": html_minimal(json.dumps(secret)).encode(),
        "json of html": json.dumps(html_minimal(secret)).encode(),
        "url quote": percent(secret).encode(),
        "url quote lower": percent(secret, lower=True).encode(),
        "url quote_plus": percent(secret, plus=True).encode(),
        "url every byte": percent(secret, every_byte=True).encode(),
        "url in a query": b"https://login.example/?user=svc&password=" + percent(secret, plus=True).encode(),
        "url twice": percent(percent(secret)).encode(),
        "clixml": clixml(secret).encode(),
        "ansi coloured": ansi_split(secret).encode(),
        "html spans": html_split(secret).encode(),
        "json of ansi": json.dumps(ansi_split(secret)).encode(),
        "utf-16-le": le,
        "utf-16-le with bom": b"\xff\xfe" + le,
        "utf-16-be": be,
        "utf-16-be with bom": b"\xfe\xff" + be,
        "utf-16-le at an odd offset": b"\x01" + le,
        "hex lower": utf8.hex().encode(),
        "hex upper": utf8.hex().upper().encode(),
        "hex of utf-16-le": le.hex().encode(),
        "nt hash hex upper": nt_hash(secret).hex().upper().encode(),
        "nt hash hex lower": nt_hash(secret).hex().encode(),
        "nt hash base64": base64.b64encode(nt_hash(secret)),
        "nt hash raw": nt_hash(secret),
        "basic header": b"Authorization: Basic " + base64.b64encode(f"{user}:{secret}".encode()),
        "base64 json blob": base64.b64encode(json.dumps({"user": user, "password": secret, "n": 1}).encode()),
        "base64 of utf-16-le": base64.b64encode(le),
        "base64 of utf-16-be": base64.b64encode(be),
        "base64 wrapped at 76": base64.encodebytes(b"header " * 20 + utf8 + b" trailer" * 20),
        "base64 of base64": base64.b64encode(base64.b64encode(b"k=" + utf8)),
        "base64 of json-escaped": base64.b64encode(json.dumps(secret).encode()),
        "base64 in json": json.dumps({"token": base64.b64encode(b"user:" + utf8).decode()}).encode(),
    }
    for raw, name in ((utf8, "utf-8"), (le, "utf-16-le"), (be, "utf-16-be")):
        forms.update(base64_variants(raw, name))
    return forms
