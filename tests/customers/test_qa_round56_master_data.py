"""Customer master data, from the fifty-sixth session's QA round: an import that put two institutions each under
the other (after which neither could be edited, and a merge into one of them never ended), a merged duplicate
created again by the next import of its key, and a phone number or e-mail address with punctuation attached kept in
clear in an export's audit entry."""

from __future__ import annotations

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import translation

from pharmacrm.customers import importer, services
from pharmacrm.customers.models import ImportJob, Institution

INSTITUTION_HEADER = "机构名称,机构类型,外部编号,上级机构\n"


@pytest.fixture(autouse=True)
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    return tmp_path


def imported(tmp_path, target: str, text: str, user, dry_run: bool = False, name: str = "") -> ImportJob:
    path = tmp_path / (name or f"{target}.csv")
    path.write_bytes(text.encode("utf-8"))
    return importer.import_file(str(path), target, user, mode="all", dry_run=dry_run)


def errors_en(job: ImportJob) -> list[tuple[int, str, str]]:
    with translation.override("en"):
        return [(e["row"], e["column"], importer.error_text(e)) for e in job.errors]


class QueryLimit:
    """Fails the statement after `limit` queries: a walk that never ends fails the test instead of hanging it."""

    def __init__(self, limit: int):
        self.limit, self.count = limit, 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        if self.count > self.limit:
            raise AssertionError(f"more than {self.limit} queries: a walk that never ends")
        return execute(sql, params, many, context)


# --- 1. a parent loop made by an import ---------------------------------------------------------------------------


@pytest.fixture
def two_pharmacies(users):
    admin = users["admin"]
    return [
        services.create_institution(admin, {"name": name, "kind": "pharmacy", "external_id": ext})
        for name, ext in (("环测试药店甲", "CYC-A"), ("环测试药店乙", "CYC-B"))
    ]


@pytest.mark.parametrize("dry_run", [True, False])
def test_two_rows_putting_two_institutions_each_under_the_other_are_refused(
    users, two_pharmacies, tmp_path, dry_run
):
    """Each row was checked against the database only: 甲 under 乙 (乙 under nothing yet), then 乙 under 甲 (甲 under
    nothing as stored) — "done, 2 updated", and from then on every edit of either was refused (机构不能设为自身的下级)."""
    a, b = two_pharmacies
    text = INSTITUTION_HEADER + "环测试药店甲,药店,CYC-A,CYC-B\n环测试药店乙,药店,CYC-B,CYC-A\n"
    job = imported(tmp_path, "institutions", text, users["admin"], dry_run=dry_run)
    assert job.status == ("previewed" if dry_run else "rejected")
    assert errors_en(job) == [
        (
            3,
            "上级机构",
            "“CYC-A” lies under this institution, as stored or as an earlier row of this file places it: "
            "an institution cannot be placed under itself.",
        )
    ]
    a.refresh_from_db(), b.refresh_from_db()
    assert (a.parent_id, b.parent_id) == (None, None)


@pytest.mark.parametrize("dry_run", [True, False])
def test_a_new_row_cannot_become_the_parent_of_its_own_parent(users, two_pharmacies, tmp_path, dry_run):
    """The check was skipped when the parent was a new row of the file (pending_parent): a new shop under 甲, then 甲
    under the new shop."""
    a, _b = two_pharmacies
    text = INSTITUTION_HEADER + "环测试新药店,药店,CYC-N,CYC-A\n环测试药店甲,药店,CYC-A,CYC-N\n"
    job = imported(tmp_path, "institutions", text, users["admin"], dry_run=dry_run)
    assert job.status == ("previewed" if dry_run else "rejected")
    assert [(row, column) for row, column, _text in errors_en(job)] == [(3, "上级机构")]
    assert "“CYC-N” lies under this institution" in errors_en(job)[0][2]
    a.refresh_from_db()
    assert a.parent_id is None and not Institution.objects.filter(external_id="CYC-N").exists()


def test_a_chain_without_a_loop_is_still_imported(users, two_pharmacies, tmp_path):
    a, b = two_pharmacies
    text = INSTITUTION_HEADER + "环测试新药店,药店,CYC-N,CYC-A\n环测试药店乙,药店,CYC-B,CYC-N\n"
    job = imported(tmp_path, "institutions", text, users["admin"])
    assert (job.status, job.errors, job.created_count, job.updated_count) == ("done", [], 1, 1)
    b.refresh_from_db()
    assert b.parent.external_id == "CYC-N" and b.parent.parent_id == a.pk


def test_a_loop_already_stored_does_not_hang_a_merge(users, two_pharmacies):
    """A merge into an institution of a loop walked the survivor's parents for ever (a query per pass), and so did
    the check whether the duplicate's parent may fill the survivor's empty one."""
    admin = users["admin"]
    a, b = two_pharmacies
    Institution.objects.filter(pk=a.pk).update(parent=b)
    Institution.objects.filter(pk=b.pk).update(parent=a)
    c = services.create_institution(admin, {"name": "环测试药店丙", "kind": "pharmacy"})
    d = services.create_institution(admin, {"name": "环测试药店丁", "kind": "pharmacy"})
    Institution.objects.filter(pk=d.pk).update(parent=a)
    with connection.execute_wrapper(QueryLimit(500)):
        services.merge(users["manager"], Institution.objects.get(pk=a.pk), c)  # the survivor lies in the loop
        services.merge(users["manager"], Institution.objects.get(pk=b.pk), Institution.objects.get(pk=d.pk))
    assert Institution.objects.get(pk=c.pk).merged_into_id == a.pk
    assert Institution.objects.get(pk=d.pk).merged_into_id == b.pk


def test_the_parent_chain_of_a_loop_still_shows_each_institution_once(client_for, users, two_pharmacies):
    a, b = two_pharmacies
    Institution.objects.filter(pk=a.pk).update(parent=b)
    Institution.objects.filter(pk=b.pk).update(parent=a)
    response = client_for("admin").get(reverse("customers:institution", args=[a.pk]))
    assert response.status_code == 200
    assert [n.pk for n in response.context["chain"]] == [b.pk]
