"""Credentials by reference: resolved late, shown never."""

from __future__ import annotations

import keyring
import keyring.backend
import pytest
from keyring.credentials import SimpleCredential
from keyring.errors import KeyringError

from runbook_lib.core.errors import CredentialError, InputError
from runbook_lib.remote import Credential, resolve_credential

SECRET = "S3cr3t!pa55"


class MemoryKeyring(keyring.backend.KeyringBackend):
    """A keyring that keeps entries in a dict; one default credential per service, like Credential Manager."""

    priority = 1

    def __init__(self):
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}
        self.broken = False

    def get_password(self, service, username):
        if self.broken:
            raise KeyringError("backend locked")
        return self.entries.get((service, username))

    def set_password(self, service, username, password):
        self.entries[(service, username)] = password

    def delete_password(self, service, username):
        self.entries.pop((service, username), None)

    def get_credential(self, service, username):
        if self.broken:
            raise KeyringError("backend locked")
        for (svc, user), password in self.entries.items():
            if svc == service and (username is None or user == username):
                return SimpleCredential(user, password)
        return None


@pytest.fixture
def memory_keyring():
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


def test_env_reference_reads_user_and_password_variables():
    env = {"FLEET_USER": "CONTOSO\\svc-tls", "FLEET_PASSWORD": SECRET}
    assert resolve_credential("env:FLEET", environ=env) == Credential("CONTOSO\\svc-tls", SECRET)


def test_default_reference_is_env_tls_runbook(monkeypatch):
    monkeypatch.setenv("TLS_RUNBOOK_USER", "admin")
    monkeypatch.setenv("TLS_RUNBOOK_PASSWORD", SECRET)
    assert resolve_credential() == Credential("admin", SECRET)


@pytest.mark.parametrize("missing", ["FLEET_USER", "FLEET_PASSWORD"])
def test_missing_variable_is_named_without_any_value(missing):
    env = {"FLEET_USER": "admin", "FLEET_PASSWORD": SECRET}
    del env[missing]
    with pytest.raises(CredentialError) as caught:
        resolve_credential("env:FLEET", environ=env)
    message = str(caught.value)
    assert missing in message and "\n" not in message
    assert SECRET not in message and "admin" not in message


def test_empty_password_variable_is_refused():
    with pytest.raises(CredentialError, match="FLEET_PASSWORD is empty"):
        resolve_credential("env:FLEET", environ={"FLEET_USER": "a", "FLEET_PASSWORD": ""})


def test_env_prefix_must_be_a_variable_name():
    with pytest.raises(InputError):
        resolve_credential("env:FLEET-1", environ={})


def test_repr_and_str_never_show_the_password():
    credential = Credential("admin", SECRET)
    for shown in (repr(credential), str(credential), f"{credential}", repr([credential]), repr({"c": credential})):
        assert SECRET not in shown
    assert "admin" in repr(credential) and "hidden" in repr(credential)


def test_keyring_reference_with_user_reads_that_entry(memory_keyring):
    memory_keyring.set_password("tls-runbook", "CONTOSO\\svc", SECRET)
    assert resolve_credential("keyring:tls-runbook/CONTOSO\\svc") == Credential("CONTOSO\\svc", SECRET)


def test_keyring_reference_without_user_uses_the_services_credential(memory_keyring):
    memory_keyring.set_password("fleet", "svc", SECRET)
    assert resolve_credential("keyring:fleet") == Credential("svc", SECRET)


def test_missing_keyring_entry_names_service_and_user_only(memory_keyring):
    with pytest.raises(CredentialError) as caught:
        resolve_credential("keyring:fleet/svc")
    assert "'fleet'" in str(caught.value) and "'svc'" in str(caught.value)


def test_keyring_service_without_default_credential_suggests_the_user_form(memory_keyring):
    with pytest.raises(CredentialError, match="keyring:fleet/USER"):
        resolve_credential("keyring:fleet")


def test_keyring_backend_failure_is_one_line(memory_keyring):
    memory_keyring.broken = True
    with pytest.raises(CredentialError, match="keyring backend failed: KeyringError"):
        resolve_credential("keyring:fleet/svc")


@pytest.mark.parametrize("reference", ["keyring:", "keyring:fleet/"])
def test_malformed_keyring_reference_is_input_error(reference, memory_keyring):
    with pytest.raises(InputError):
        resolve_credential(reference)


def test_prompt_asks_for_user_and_password(monkeypatch):
    asked = []
    credential = resolve_credential(
        "prompt", ask_user=lambda p: asked.append(p) or "admin", ask_password=lambda p: asked.append(p) or SECRET
    )
    assert credential == Credential("admin", SECRET)
    assert asked == ["User name: ", "Password for admin: "]


def test_prompt_with_user_asks_only_for_the_password_through_getpass(monkeypatch):
    monkeypatch.setattr("getpass.getpass", lambda prompt="": SECRET)
    monkeypatch.setattr("builtins.input", lambda prompt="": pytest.fail("the user name was given"))
    assert resolve_credential("prompt:admin") == Credential("admin", SECRET)


def test_prompt_without_user_reads_it_through_input(monkeypatch):
    monkeypatch.setattr("getpass.getpass", lambda prompt="": SECRET)
    monkeypatch.setattr("builtins.input", lambda prompt="": " admin ")
    assert resolve_credential("prompt") == Credential("admin", SECRET)


def test_empty_prompt_answer_is_refused():
    with pytest.raises(CredentialError, match="no password"):
        resolve_credential("prompt:admin", ask_password=lambda p: "")


@pytest.mark.parametrize("reference", [SECRET, "hunter2:xyz", "vault:secret/tls"])
def test_unknown_reference_does_not_echo_text_that_may_be_a_password(reference):
    with pytest.raises(InputError) as caught:
        resolve_credential(reference)
    assert "hunter2" not in str(caught.value) and SECRET not in str(caught.value)
    assert "env:PREFIX" in str(caught.value)


def test_unknown_but_scheme_like_reference_names_the_scheme():
    with pytest.raises(InputError, match="'vault'"):
        resolve_credential("vault:secret/tls")
