"""`pharmacrm safety …`: the contracts other tools rely on."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from pharmacrm.core.models import AuditEntry
from pharmacrm.safety.e2b import schema

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = io.StringIO()
    call_command("safety", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_list_prints_case_numbers_one_per_line_and_filters_valid(make_case):
    valid = make_case()
    invalid = make_case(reporter_name="", reporter_contact="", reporter_institution="", reporter_qualification="")
    assert run("list").splitlines() == [valid.number, invalid.number]
    assert run("list", "--valid").splitlines() == [valid.number]


def test_export_icsr_writes_a_schema_valid_batch_and_is_audited(make_case, tmp_path):
    first, second = make_case(), make_case()
    out = tmp_path / "batch.xml"
    out.write_bytes(b"an older batch")
    out.chmod(0o644)
    run("export-icsr", first.number, second.number, "--out", str(out))
    assert out.stat().st_mode & 0o777 == 0o600  # patients' data: the owner's only, whatever the umask
    data = out.read_bytes()
    assert schema.validate(data) == []
    assert data.count(b"<PORR_IN049016UV") == 2
    assert AuditEntry.objects.filter(action="export", actor_name__startswith="cli:").exists()


def test_export_icsr_refuses_with_what_to_fill_in_and_writes_nothing(make_case, tmp_path):
    uncoded = make_case(reactions=[{"verbatim": "头晕", "outcome": "1"}])
    out = tmp_path / "batch.xml"
    err = io.StringIO()
    with pytest.raises(CommandError):
        call_command("safety", "export-icsr", uncoded.number, "--out", str(out), stdout=io.StringIO(), stderr=err)
    assert "E.i.2.1b" in err.getvalue() and not out.exists()
    with pytest.raises(CommandError):
        run("export-icsr", "AE-1999-000001", "--out", str(out))


def test_export_icsr_refuses_a_nullified_case_and_writes_nothing(make_case, users, tmp_path):
    """The page and the API never export a nullified case (a duplicate, withdrawn): the operator's command wrote it
    into the partner's batch like any other, and the partner opened the duplicate as a new case."""
    from pharmacrm.safety import services

    kept, duplicate = make_case(), make_case()
    services.set_status(users["pv"], duplicate, "nullified", reason="与 " + kept.number + " 重复")
    out = tmp_path / "batch.xml"
    with pytest.raises(CommandError) as error:
        run("export-icsr", kept.number, duplicate.number, "--out", str(out), "--purpose", "partner")
    assert duplicate.number in str(error.value) and not out.exists()
