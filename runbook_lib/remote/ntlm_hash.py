"""The NT hash of a password (MD4 of its UTF-16LE form): the simulator stores its accounts as it, and the evidence
scrubber looks for it, since the hash logs on as well as the password does (pass-the-hash).

MD4 is implemented here (RFC 1320) because OpenSSL 3 builds of hashlib no longer offer it.
"""

from __future__ import annotations

import struct

_MASK = 0xFFFFFFFF


def _rotl(value: int, shift: int) -> int:
    value &= _MASK
    return ((value << shift) | (value >> (32 - shift))) & _MASK


_ROUNDS = (
    (lambda x, y, z: (x & y) | (~x & z), 0, range(16), (3, 7, 11, 19)),
    (lambda x, y, z: (x & y) | (x & z) | (y & z), 0x5A827999, (0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15),
     (3, 5, 9, 13)),
    (lambda x, y, z: x ^ y ^ z, 0x6ED9EBA1, (0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15), (3, 9, 11, 15)),
)


def md4(data: bytes) -> bytes:
    padded = bytearray(data) + b"\x80"
    padded += b"\x00" * ((56 - len(padded)) % 64)
    padded += struct.pack("<Q", (8 * len(data)) & 0xFFFFFFFFFFFFFFFF)
    state = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476]
    for offset in range(0, len(padded), 64):
        words = struct.unpack("<16I", padded[offset : offset + 64])
        a, b, c, d = state
        for function, constant, order, shifts in _ROUNDS:
            for step, index in enumerate(order):
                a = _rotl(a + function(b, c, d) + words[index] + constant, shifts[step % 4])
                a, b, c, d = d, a, b, c
        state = [(old + new) & _MASK for old, new in zip(state, (a, b, c, d))]
    return struct.pack("<4I", *state)


def nt_hash(password: str) -> bytes:
    return md4(password.encode("utf-16-le", errors="surrogatepass"))
