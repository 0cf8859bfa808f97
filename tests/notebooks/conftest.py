"""Headless notebook runs shared by the tests: every run is started once per session, several at once.

Kernels take seconds to start, so the tests only read the executed notebooks and the evidence files they left.
"""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from notebook_runs import PARALLEL, PROFILES, USER, papermill

from runbook_lib.simulator.fleet import start_node
from runbook_lib.simulator.profile import builtin_profile


@pytest.fixture(scope="session")
def password() -> str:
    return "Pw-" + secrets.token_urlsafe(15)


@pytest.fixture(scope="session")
def credential_env(password) -> dict:
    return {"TLS_RUNBOOK_USER": USER, "TLS_RUNBOOK_PASSWORD": password}


@pytest.fixture(scope="session")
def url_hosts(password):
    """Simulated hosts the tests start themselves and reach by URL, as an operator reaches a real one."""
    nodes = {name: start_node(builtin_profile(name), [(USER, password)], strict=True, boot_seconds=1.5)
             for name in ("win7_wmf51", "ws2016_untouched")}
    yield nodes
    for node in nodes.values():
        node.stop()


@pytest.fixture(scope="session")
def runs(tmp_path_factory, url_hosts, credential_env) -> dict:
    """Every headless run, keyed by (what, notebook[, step]); started together, read by many tests."""
    root = tmp_path_factory.mktemp("notebook-runs")
    jobs: dict = {("simulated", "00"): lambda: papermill("00", root / "sim-00")}
    for kind, profile in PROFILES.items():
        for number in ("01", "02", "03", "04"):
            jobs[(kind, number)] = (lambda number=number, kind=kind, profile=profile: papermill(
                number, root / f"{kind}-{number}", simulator_profile=profile,
                **({"apply": True, "reboot": True} if number == "03" else {})))
    jobs[("bad", "apply")] = lambda: papermill("02", root / "bad-apply", apply="yes")
    jobs[("bad", "typo")] = lambda: papermill("02", root / "bad-typo", aply=True)
    jobs[("chain",)] = lambda: _url_chain(root / "chain", url_hosts["win7_wmf51"], credential_env)
    jobs[("twice",)] = lambda: _apply_twice(root / "twice", url_hosts["ws2016_untouched"], credential_env)
    with ThreadPoolExecutor(PARALLEL) as pool:
        futures = {key: pool.submit(job) for key, job in jobs.items()}
        return {key: future.result() for key, future in futures.items()}


def _url_chain(folder: Path, node, env: dict) -> dict:
    """02 -> 03 (apply, reboot) -> 04 against one host by URL, sharing one evidence folder, as a ticket would."""
    evidence = str(folder / "evidence")
    chain = {}
    for number, extra in (("01", {}), ("02", {}), ("03", {"apply": True, "reboot": True}), ("04", {})):
        chain[number] = papermill(number, folder / number, env=env, target=node.url, evidence_dir=evidence, **extra)
    chain["reboots"] = node.host.reboots
    return chain


def _apply_twice(folder: Path, node, env: dict) -> dict:
    evidence = str(folder / "evidence")
    first = papermill("03", folder / "first", env=env, target=node.url, evidence_dir=evidence, apply=True)
    after_first = node.host.snapshot()
    second = papermill("03", folder / "second", env=env, target=node.url, evidence_dir=evidence, apply=True)
    return {"first": first, "second": second, "unchanged": node.host.snapshot() == after_first}
