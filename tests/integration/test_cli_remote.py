"""tls-runbook simulate / inspect / probe as an operator runs them, in separate processes."""

import json
import os
import subprocess
import sys

import pytest


def cli(*args, env, timeout=60):
    return subprocess.run([sys.executable, "-m", "runbook_lib.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout)


def without_runbook_variables():
    return {k: v for k, v in os.environ.items() if not k.startswith("TLS_RUNBOOK_")}


@pytest.fixture
def simulator_process(password):
    """``simulate`` with its own account variables; the runbook side gets the same account through its own."""
    simulator_env = {**without_runbook_variables(), "TLS_RUNBOOK_SIM_USER": "runbook-admin",
                     "TLS_RUNBOOK_SIM_PASSWORD": password}
    env = {**without_runbook_variables(), "TLS_RUNBOOK_USER": "runbook-admin", "TLS_RUNBOOK_PASSWORD": password}
    process = subprocess.Popen([sys.executable, "-m", "runbook_lib.cli", "simulate", "--profile", "win7_wmf51",
                                "--address", "127.0.0.9", "--port", "0", "--strict"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=simulator_env)
    url = process.stdout.readline().strip()
    yield url, env
    process.terminate()
    _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    assert password not in stderr


def test_simulate_prints_its_url_first_and_inspect_reads_facts_through_it(simulator_process, password, tmp_path):
    url, env = simulator_process
    assert url.startswith("http://127.0.0.9:") and url.endswith("/wsman")
    result = cli("inspect", url, "-o", tmp_path / "facts.json", env=env)
    assert result.returncode == 0, result.stderr
    facts = json.loads((tmp_path / "facts.json").read_text())
    assert facts["simulated"] is True and facts["os"]["version"] == "6.1.7601"
    verdict = cli("assess", tmp_path / "facts.json", "--format", "table", env=env)
    assert verdict.stdout.startswith("*** SIMULATED HOST")
    for output in (result.stdout, result.stderr, verdict.stdout, (tmp_path / "facts.json").read_text()):
        assert password not in output


def test_probe_exits_1_when_the_host_would_fail_and_says_simulated(simulator_process, password):
    url, env = simulator_process
    result = cli("probe", url, env=env)
    assert result.returncode == 1
    assert result.stdout.startswith("*** SIMULATED HOST") and "AADSTS1002016" in result.stdout
    [request] = [line for line in result.stdout.splitlines() if "  app  " in line]
    assert "HTTP 400, AADSTS1002016" in request and "REFUSED" in request  # the application-level probe


def test_wrong_password_is_a_one_line_error_without_the_password(simulator_process, password):
    url, env = simulator_process
    wrong = cli("inspect", url, env={**env, "TLS_RUNBOOK_PASSWORD": password + "x"})
    assert wrong.returncode == 1 and len(wrong.stderr.strip().splitlines()) == 1
    assert "refused" in wrong.stderr and password not in wrong.stderr


def test_bad_targets_are_bad_input(password):
    env = {**os.environ, "TLS_RUNBOOK_USER": "u", "TLS_RUNBOOK_PASSWORD": password}
    for target in ("ftp://x/wsman", "http://bad host/wsman", "srv01"):
        result = cli("inspect", target, env=env)
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, target


def test_simulate_lists_profiles_and_runs_a_fleet_folder_one_address_each(password, tmp_path):
    from runbook_lib.simulator.profile import builtin_profile_names

    env = {**without_runbook_variables(), "TLS_RUNBOOK_USER": "runbook-admin", "TLS_RUNBOOK_PASSWORD": password,
           "TLS_RUNBOOK_SIM_USER": "runbook-admin", "TLS_RUNBOOK_SIM_PASSWORD": password}
    listed = cli("simulate", "--list", env=env)
    assert [line.split()[0] for line in listed.stdout.splitlines()] == builtin_profile_names()
    import shutil
    from importlib import resources

    profiles = resources.files("runbook_lib.simulator").joinpath("profiles")
    for name in ("ws2016_untouched", "ws2022_healthy"):
        shutil.copy(profiles.joinpath(f"{name}.json"), tmp_path / f"{name}.json")
    process = subprocess.Popen([sys.executable, "-m", "runbook_lib.cli", "simulate", "--fleet", str(tmp_path),
                                "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = [process.stdout.readline().split() for _ in range(2)]
        assert [name for _, name in lines] == ["ws2016-untouched", "ws2022-healthy"]
        assert lines[0][0].startswith("http://127.0.0.2:") and lines[1][0].startswith("http://127.0.0.3:")
        result = cli("inspect", lines[1][0], env=env)
        assert json.loads(result.stdout)["os"]["version"] == "10.0.20348"
    finally:
        process.terminate()
        process.communicate(timeout=10)


def test_simulate_takes_its_account_from_its_own_variables_only(password):
    production_only = {**without_runbook_variables(), "TLS_RUNBOOK_USER": "runbook-admin",
                       "TLS_RUNBOOK_PASSWORD": password}
    refused = cli("simulate", "--profile", "win7_wmf51", "--port", "0", env=production_only, timeout=30)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.strip().splitlines() == ["tls-runbook: error: environment variable TLS_RUNBOOK_SIM_USER "
                                                   "is not set"]


def test_the_runbook_never_logs_on_with_the_simulators_variables(simulator_process, password):
    url, env = simulator_process
    result = cli("inspect", url, "--credential", "env:TLS_RUNBOOK_SIM",
                 env={**env, "TLS_RUNBOOK_SIM_USER": "runbook-admin", "TLS_RUNBOOK_SIM_PASSWORD": password})
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "simulator's own account" in result.stderr and password not in result.stderr


def test_an_unset_credential_variable_is_bad_input(simulator_process):
    url, env = simulator_process
    result = cli("inspect", url, env=without_runbook_variables())
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["tls-runbook: error: environment variable TLS_RUNBOOK_USER is not set"]


def test_a_killed_simulator_leaves_no_nt_hash_on_disk(password, tmp_path):
    """The NTLM account file lives in memory: neither while running nor after SIGKILL is the hash in a file."""
    from runbook_lib.remote.ntlm_hash import nt_hash

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    simulator_env = {**without_runbook_variables(), "TMPDIR": str(scratch), "TLS_RUNBOOK_SIM_USER": "runbook-admin",
                     "TLS_RUNBOOK_SIM_PASSWORD": password}
    process = subprocess.Popen([sys.executable, "-m", "runbook_lib.cli", "simulate", "--profile", "ws2016_untouched",
                                "--address", "127.0.0.10", "--port", "0"], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, env=simulator_env)
    try:
        url = process.stdout.readline().strip()
        logged_on = cli("inspect", url, env={**without_runbook_variables(), "TLS_RUNBOOK_USER": "runbook-admin",
                                              "TLS_RUNBOOK_PASSWORD": password})
        assert logged_on.returncode == 0, logged_on.stderr
        hashes = [nt_hash(password).hex().upper().encode(), nt_hash(password).hex().encode()]

        def files_holding_the_hash():
            return [p for p in scratch.rglob("*") if p.is_file() and any(h in p.read_bytes() for h in hashes)]

        assert files_holding_the_hash() == []
    finally:
        process.kill()
        process.wait(10)
    assert files_holding_the_hash() == [] and list(scratch.iterdir()) == []
