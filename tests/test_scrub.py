"""The scrubber finds a secret in every form a tool could write it and removes it, without a list of those forms:
the forms here come from the tests' own encoders (tests/leak_forms.py)."""

from __future__ import annotations

import secrets

import pytest

from leak_forms import HOSTILE_SECRET_CHARS, written_forms
from runbook_lib import evidence
from runbook_lib.scrub import MIN_SECRET, REDACTED, Scrubber
from runbook_lib.signing import new_run_key

SECRET = HOSTILE_SECRET_CHARS + secrets.token_urlsafe(8)
OTHER = HOSTILE_SECRET_CHARS + secrets.token_urlsafe(8)  # same shape, different value
FORMS = written_forms(SECRET)


def embedded(form: bytes) -> bytes:
    return b"before the form " + form + b" after the form"


@pytest.mark.parametrize("name", FORMS)
def test_every_written_form_is_found(name):
    assert Scrubber([SECRET]).contains(embedded(FORMS[name])), name


@pytest.mark.parametrize("name", FORMS)
def test_every_written_form_is_removed_and_the_text_around_it_kept(name):
    scrubbed, replaced = Scrubber([SECRET]).scrub_bytes(embedded(FORMS[name]))
    assert replaced >= 1 and FORMS[name] not in scrubbed
    assert not Scrubber([SECRET]).contains(scrubbed)
    assert scrubbed.startswith(b"before the form") and scrubbed.endswith(b"the form")
    assert REDACTED.encode() in scrubbed or REDACTED.encode("utf-16-le") in scrubbed \
        or REDACTED.encode("utf-16-be") in scrubbed


@pytest.mark.parametrize("name", FORMS)
def test_a_different_secret_of_the_same_shape_is_not_reported(name):
    assert not Scrubber([SECRET]).contains(embedded(written_forms(OTHER)[name])), name


def test_every_form_at_once_in_one_file_is_removed():
    data = b"\n".join(embedded(form) for form in FORMS.values())
    scrubbed, replaced = Scrubber([SECRET]).scrub_bytes(data)
    assert replaced >= len(FORMS)
    assert [name for name, form in FORMS.items() if form in scrubbed] == []
    assert scrubbed.count(b"before the form") == len(FORMS)


def test_values_too_short_to_tell_from_text_are_not_looked_for():
    scrubber = Scrubber(["abc", "", None])
    assert not scrubber.active and scrubber.scrub_bytes(b"abc abc") == (b"abc abc", 0)
    assert len("abcd") == MIN_SECRET and Scrubber(["abcd"]).contains(b"xx abcd")


def test_several_secrets_are_each_found():
    scrubbed, replaced = Scrubber([SECRET, OTHER]).scrub_bytes(embedded(FORMS["json"]) + written_forms(OTHER)["html named"])
    assert replaced == 2 and SECRET.encode() not in scrubbed


def test_verify_says_the_leak_scan_was_skipped_when_no_credential_is_at_hand(tmp_path):
    (tmp_path / "notes.txt").write_text(SECRET)
    evidence.write_manifest(tmp_path, {"run_id": "r1", "complete": True, "hosts": []}, new_run_key())
    skipped = evidence.verify(tmp_path, [])
    assert skipped.ok and not skipped.leak_scan
    assert any(line.startswith("leak scan SKIPPED") for line in skipped.lines())
    checked = evidence.verify(tmp_path, [SECRET])
    assert checked.leak_scan and checked.secrets_found == ["notes.txt"] and not checked.ok
    assert not any("SKIPPED" in line for line in checked.lines())
