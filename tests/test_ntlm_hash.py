"""MD4 and the NT hash against published vectors (hashlib may not offer MD4 under OpenSSL 3)."""

import pytest

from runbook_lib.remote.ntlm_hash import md4, nt_hash


@pytest.mark.parametrize("message, digest", [  # RFC 1320, appendix A.5
    (b"", "31d6cfe0d16ae931b73c59d7e0c089c0"),
    (b"a", "bde52cb31de33e46245e05fbdbd6fb24"),
    (b"abc", "a448017aaf21d8525fc10ae87aa6729d"),
    (b"message digest", "d9130a8164549fe818874806e1c7014b"),
    (b"abcdefghijklmnopqrstuvwxyz", "d79e1c308aa5bbcdeea8ed63df412da9"),
    (b"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
     "e33b4ddc9c38f2199c3e7b164fcc0536"),
])
def test_md4_matches_rfc_1320(message, digest):
    assert md4(message).hex() == digest


def test_nt_hash_of_password_is_the_well_known_value():
    assert nt_hash("password").hex().upper() == "8846F7EAEE8FB117AD06BDD830B7586C"


def test_the_tests_own_md4_agrees_with_the_product():
    from leak_forms import nt_hash as independent

    for secret in ("password", "Tr0ub4dor&3 é€😀", "x" * 200):
        assert independent(secret) == nt_hash(secret)
