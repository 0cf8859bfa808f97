"""HTTPS listeners offer what the host's Schannel offers servers: TLS 1.0 only on an untouched Windows 7 / 2008 R2."""

import time

import pytest

from runbook_lib.core.engine import assess
from runbook_lib.core.errors import TlsVersionMismatch
from runbook_lib.core.plan import RemediationPlan
from runbook_lib.runbook.operations import inspect_host
from runbook_lib.remote.target import connect


def test_a_tls10_only_listener_is_explained_and_the_fix_and_a_reboot_cure_it(simulated):
    node = simulated("win7_wmf51", https=True)
    url = node.url
    with pytest.raises(TlsVersionMismatch) as caught:
        inspect_host(connect(url, ca_trust_path=node.server.ca_path))
    message = str(caught.value)
    assert "offers only TLS 1.0" in message and "http://" in message and "5985" in message
    host = node.host  # the fix as applied over http://, then the reboot that makes Schannel load it
    facts = host.profile.initial_facts(host.hostname)
    host.registry = RemediationPlan.from_verdict(assess(facts), facts).apply_to(host.registry)
    host.reboot()
    deadline = time.monotonic() + 10
    while True:
        try:
            assert inspect_host(connect(url, ca_trust_path=node.server.ca_path)).simulated
            break
        except Exception:  # noqa: BLE001 - down while it reboots
            assert time.monotonic() < deadline, "the listener did not come back with TLS 1.2"
            time.sleep(0.2)


def test_a_listener_whose_host_speaks_tls12_is_reached_as_before(simulated):
    node = simulated("ws2016_untouched", https=True)
    assert inspect_host(connect(node.url, ca_trust_path=node.server.ca_path)).os.version == "10.0.14393"
