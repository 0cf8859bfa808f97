"""The simulated Schannel reads a cipher-order policy the way Windows does.

Windows 10 / Server 2016 and later ignore an elliptic-curve suffix on a suite name; earlier releases know an ECDHE
suite only by its suffixed name (https://learn.microsoft.com/windows/win32/secauthn/cipher-suites-in-schannel,
https://learn.microsoft.com/windows/win32/secauthn/tls-cipher-suites-in-windows-8-1). The endpoint, like Entra,
chooses one of its own suites before 3DES when the client offers both.
"""

import pytest

from runbook_lib.core import acceptance
from runbook_lib.core.registry import Registry, RegistryValue
from runbook_lib.simulator.windows import WindowsTls, suite_parts

POLICY = "HKLM\\SOFTWARE\\Policies\\Microsoft\\Cryptography\\Configuration\\SSL\\00010002"
ENDPOINT = "login.microsoftonline.com:443"
TLS_1_0_TO_1_2 = 192 | 768 | 3072  # Tls, Tls11, Tls12: what SchUseStrongCrypto=1 makes Windows PowerShell ask for
SUFFIXED = ("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384_P384,TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384_P256,"
            "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256_P256,TLS_RSA_WITH_3DES_EDE_CBC_SHA")
UNSUFFIXED = "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384,TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,TLS_RSA_WITH_3DES_EDE_CBC_SHA"


def windows(version, product="server"):
    return WindowsTls(version, 0, product, "x64", (), "5.1.14393.4583")


def boot_with_policy(functions):
    return Registry([RegistryValue(POLICY, "Functions", "REG_SZ", functions, True)])


def negotiated(handshake):
    """(handshake completed, protocol, CipherAlgorithm) as SslStream would report them."""
    return handshake.ok, handshake.protocol, suite_parts(handshake.suite)[0] if handshake.suite else None


@pytest.mark.parametrize("version", [(10, 0, 14393), (10, 0, 17763), (6, 3, 9600), (6, 2, 9200)])
def test_curve_suffixed_policy_gives_tls12_with_a_suite_entra_accepts(version):
    handshake = windows(version).handshake(boot_with_policy(SUFFIXED), TLS_1_0_TO_1_2, ENDPOINT)
    assert negotiated(handshake) == (True, "Tls12", "Aes256")


def test_before_windows_10_an_ecdhe_name_without_its_curve_is_skipped():
    handshake = windows((6, 3, 9600)).handshake(boot_with_policy(UNSUFFIXED), TLS_1_0_TO_1_2, ENDPOINT)
    assert negotiated(handshake) == (True, "Tls12", "TripleDes")
    assert acceptance.session_outcome(handshake.protocol, "TripleDes") == acceptance.LEGACY


def test_windows_10_takes_the_same_names_without_a_curve():
    handshake = windows((10, 0, 14393)).handshake(boot_with_policy(UNSUFFIXED), TLS_1_0_TO_1_2, ENDPOINT)
    assert negotiated(handshake) == (True, "Tls12", "Aes256")


def test_entra_takes_its_own_suite_even_when_the_policy_lists_3des_first():
    policy = "TLS_RSA_WITH_3DES_EDE_CBC_SHA,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
    handshake = windows((10, 0, 20348)).handshake(boot_with_policy(policy), TLS_1_0_TO_1_2, ENDPOINT)
    assert negotiated(handshake) == (True, "Tls12", "Aes128")
