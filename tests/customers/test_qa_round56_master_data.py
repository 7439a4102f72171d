"""Customer master data, from the fifty-sixth session's QA round: an import that put two institutions each under
the other (after which neither could be edited, and a merge into one of them never ended), a merged duplicate
created again by the next import of its key, and a phone number or e-mail address with punctuation attached kept in
clear in an export's audit entry."""

from __future__ import annotations

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import translation

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers import importer, normalise, services
from pharmacrm.customers.models import ImportJob, Institution, Person

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


# --- 2. a key a merge freed, imported again -------------------------------------------------------------------------


PEOPLE_HEADER = "姓名,外部编号\n"


def test_a_person_merged_away_is_not_created_again_by_their_external_id(users, tmp_path):
    """Person B (MRG-B) merged into A (MRG-A): the merge frees MRG-B, and a row with it was "1 created" — the
    duplicate back again. The row names the survivor, which keeps a key of its own: updating it from the row would
    replace MRG-A, so the row is refused, naming the survivor."""
    admin = users["admin"]
    a = services.create_person(admin, {"name": "合并测试甲", "external_id": "MRG-A"})
    b = services.create_person(admin, {"name": "合并测试乙", "external_id": "MRG-B"})
    services.merge(users["manager"], a, b)
    for dry_run in (True, False):
        job = imported(tmp_path, "people", PEOPLE_HEADER + "合并测试乙,MRG-B\n", admin, dry_run=dry_run)
        assert (job.status, job.created_count) == ("previewed" if dry_run else "rejected", 0)
        assert errors_en(job) == [
            (
                2,
                "外部编号",
                (
                    f"“MRG-B” belonged to a record that was merged into 合并测试甲 ({a.code}), which has a key of its own: "
                    f"this row would replace it. Update {a.code} by its own key, or delete this row."
                ),
            )
        ]
    assert Person.objects.filter(name="合并测试乙", merged_into__isnull=True).count() == 0
    a.refresh_from_db()
    assert a.external_id == "MRG-A"
    # the survivor's own row is imported as ever
    job = imported(tmp_path, "people", PEOPLE_HEADER + "合并测试甲,MRG-A\n", admin)
    assert (job.status, job.created_count, job.errors) == ("done", 0, [])


def test_a_freed_key_follows_merges_of_merges(users, tmp_path):
    admin, manager = users["admin"], users["manager"]
    a, b, c = (
        services.create_person(admin, {"name": name, "external_id": ext})
        for name, ext in (("合并测试甲", "MRG-A"), ("合并测试乙", "MRG-B"), ("合并测试丙", "MRG-C"))
    )
    services.merge(manager, c, b)
    services.merge(manager, a, Person.objects.get(pk=c.pk))
    job = imported(tmp_path, "people", PEOPLE_HEADER + "合并测试乙,MRG-B\n", admin, dry_run=True)
    assert [e["params"]["survivor_code"] for e in job.errors] == [a.code]
    assert job.created_count == 0


def test_a_freed_key_updates_a_survivor_that_has_none(users, tmp_path):
    """The survivor lost its own key since the merge: the row is that customer's, and gives it the key back."""
    admin = users["admin"]
    a = services.create_person(admin, {"name": "合并测试甲", "external_id": "MRG-A"})
    b = services.create_person(admin, {"name": "合并测试乙", "external_id": "MRG-B"})
    services.merge(users["manager"], a, b)
    Person.objects.filter(pk=a.pk).update(external_id=None)
    job = imported(tmp_path, "people", "姓名,外部编号,职称\n合并测试甲,MRG-B,主任医师\n", admin)
    assert (job.status, job.created_count, job.updated_count, job.errors) == ("done", 0, 1, [])
    a.refresh_from_db()
    assert (a.external_id, a.title) == ("MRG-B", "主任医师")


@pytest.fixture
def merged_hospital(users, beijing):
    admin = users["admin"]
    survivor = services.create_institution(admin, {
        "name": "合并测试医院", "kind": "hospital", "region": beijing,
        "credit_code": normalise.make_credit_code("12110000400000561"),
    })  # fmt: skip
    duplicate = services.create_institution(admin, {
        "name": "合并测试医院东院", "kind": "hospital", "region": beijing,
        "credit_code": normalise.make_credit_code("12110000400000562"),
    })  # fmt: skip
    freed = duplicate.credit_code
    services.merge(users["manager"], survivor, duplicate)
    return survivor, freed


def test_a_hospital_merged_away_is_not_created_again_by_its_credit_code(users, merged_hospital, tmp_path):
    survivor, freed = merged_hospital
    job = imported(tmp_path, "institutions", f"机构名称,机构类型,统一社会信用代码\n合并测试医院东院,医院,{freed}\n",
                   users["admin"], dry_run=True)  # fmt: skip
    assert (job.status, job.created_count) == ("previewed", 0)
    assert errors_en(job) == [
        (
            2,
            "统一社会信用代码",
            (
                f"“{freed}” belonged to a record that was merged into 合并测试医院 ({survivor.code}), which has a key of its "
                f"own: this row would replace it. Update {survivor.code} by its own key, or delete this row."
            ),
        )
    ]


def test_a_freed_credit_code_names_the_survivor_as_institution_and_parent(users, merged_hospital, tmp_path):
    """所属机构 with the merged hospital's credit code was "没有信用代码…为“…”的机构"; the order import and the KOL
    sheet read such a code as the survivor already."""
    admin = users["admin"]
    survivor, freed = merged_hospital
    people = imported(tmp_path, "people", f"姓名,所属机构,手机\n合并测试医生,{freed},13912345601\n", admin)
    assert (people.status, people.errors) == ("done", [])
    assert Person.objects.get(name="合并测试医生").institution_id == survivor.pk
    departments = imported(
        tmp_path, "institutions", f"机构名称,机构类型,上级机构\n合并测试心内科,科室,{freed}\n", admin
    )
    assert (departments.status, departments.errors) == ("done", [])
    assert Institution.objects.get(name="合并测试心内科").parent_id == survivor.pk


# --- 3. a phone number or address typed into an export's search --------------------------------------------------


@pytest.mark.parametrize("typed, kept", [
    ("13970412390,", "139****2390,"),
    ("电话13970412390", "电话139****2390"),
    ("tel:13970412390", "tel:139****2390"),
    ("陈强 chenqiang66＠126.com", "陈强 c***@126.com"),
    ("陈强 139 7041 2390", "陈强 139****2390"),
    ("陈强,chenqiang66@126.com;", "陈强,c***@126.com;"),
    ("陈强", "陈强"),
    ("13800138000 110101750315001", "138****8000 110***********5001"),
])  # fmt: skip
def test_a_phone_or_address_with_punctuation_is_masked_in_the_export_audit(client_for, xiehe, typed, kept):
    response = client_for("analyst").get(reverse("customers:export", args=["people", "csv"]), {"q": typed})
    assert response.status_code == 200
    b"".join(response.streaming_content)
    entry = AuditEntry.objects.filter(action="export").latest("seq")
    assert entry.extra["filters"]["q"] == kept
    assert "13970412390" not in str(entry.extra) and "chenqiang66" not in str(entry.extra)
