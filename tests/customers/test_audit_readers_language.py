"""Customers' consent records and imports on the audit page read in the reader's language, whoever acted: their
entries were named by str() in the actor's language ("Satisfaction surveys · Given", "People · p.csv") and the import
of the sales-target grid showed what it imported as the code "sales targets" to every reader. The entries keep codes
and the file's name; the page labels them when it is read. Entries written before keep their recorded name unless
their changes hold the codes; the chain still verifies."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from django.utils import translation

from pharmacrm.core import audit
from pharmacrm.core.models import AuditEntry
from pharmacrm.customers import services
from pharmacrm.customers.models import ImportJob, Institution, Person
from tests.customers.test_import import three_people, upload, var_dir  # noqa: F401

pytestmark = pytest.mark.django_db


def page_text(client, language: str, **filters) -> str:
    response = client.get("/accounts/audit/", filters, HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 200
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def test_a_consent_recorded_in_english_reads_in_each_readers_language(users, xiehe, client_for):
    person = Person.objects.get(name="张伟")
    with translation.override("en"):  # the administrator works in English
        services.record_consent(users["admin"], person, {"purpose": "surveys", "channel": "email", "status": "given"})
    entry = AuditEntry.objects.get(object_type="customers.consent")
    assert entry.object_repr == "surveys · given"  # codes, not the actor's words
    auditor = client_for("auditor")
    english = page_text(auditor, "en", object_type="customers.consent")
    assert "Satisfaction surveys · Given" in english
    traditional = page_text(auditor, "zh-hant", object_type="customers.consent")
    assert "滿意度調查 · 已同意" in traditional and "Satisfaction surveys" not in traditional
    assert "滿意度調查 · 已同意" not in english and "surveys · given" not in english + traditional
    admin = client_for("admin")  # the administrator's own recent changes on the home page
    assert "Satisfaction surveys · Given" in admin.get(reverse("home"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "surveys · given" not in admin.get(reverse("home"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert audit.verify().ok


def test_a_consent_entry_written_before_reads_from_its_codes_or_as_recorded(users, client_for):
    audit.record(AuditEntry.Action.CREATE, ("customers.consent", "7", "Satisfaction surveys · Withdrawn"),
                 user=users["admin"], changes={"purpose": [None, "surveys"], "status": [None, "withdrawn"]})  # fmt: skip
    audit.record(AuditEntry.Action.UPDATE, ("customers.consent", "8", "Service follow-up · Given"), user=users["admin"])
    traditional = page_text(client_for("auditor"), "zh-hant", object_type="customers.consent")
    assert "滿意度調查 · 已撤回" in traditional and "Service follow-up · Given" in traditional
    assert audit.verify().ok


def test_an_import_by_an_english_user_reads_in_each_readers_language(client_for, xiehe, huey_immediate, var_dir):  # noqa: F811
    kam = client_for("kam")
    kam.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"  # the key-account manager works in English
    kam.post(reverse("customers:import"), {"target": "people", "mode": "all",
                                           "file": upload("名单.csv", three_people(bad_mobile=True))})  # fmt: skip
    job = ImportJob.objects.get()
    assert kam.get(reverse("customers:import-errors", args=[job.pk, "csv"])).status_code == 200
    kam.post(reverse("customers:import-cancel", args=[job.pk]))
    entries = AuditEntry.objects.filter(object_type="customers.importjob", object_id=str(job.pk))
    assert sorted(entries.values_list("action", flat=True)) == ["export", "update"]
    assert set(entries.values_list("object_repr", flat=True)) == {"名单.csv"}  # the file's name, as uploaded
    auditor = client_for("auditor")
    english = page_text(auditor, "en", object_type="customers.importjob")
    assert english.count("People · 名单.csv") == 2 and "import errors" in english
    traditional = page_text(auditor, "zh-hant", object_type="customers.importjob")
    assert traditional.count("聯絡人 · 名单.csv") == 2 and "People" not in traditional
    assert "People · 名单.csv" in kam.get(reverse("home")).content.decode()  # the user's own recent changes
    assert audit.verify().ok


def test_the_sales_target_grids_import_names_what_it_imported_in_the_readers_language(users, client_for):
    # as sales.targets.import_grid records it: an import of no job, what it held given as a code
    audit.record(AuditEntry.Action.IMPORT, ("sales.salestarget", "", "2026"), user=users["manager"],
                 target="sales targets", year=2026, file="目标.xlsx", sha256="0" * 64, cells=24, changed=24)  # fmt: skip
    auditor = client_for("auditor")
    assert "Sales targets" in page_text(auditor, "en", action="import")
    traditional = page_text(auditor, "zh-hant", action="import")
    assert "銷售目標" in traditional and "sales targets" not in traditional


def test_people_moved_by_their_departments_new_type_name_it_in_the_readers_language(users, xiehe, client_for):
    """A department made a hospital takes its people along: their entries showed the raw key "kind_changed" and the
    department's id to every reader."""
    department = Institution.objects.get(name="心内科")
    with translation.override("en"):
        services.update_institution(users["admin"], department, {"kind": "hospital", "parent": None})
    person = Person.objects.get(name="张伟")
    entry = AuditEntry.objects.filter(object_type="customers.person", object_id=str(person.pk)).latest("seq")
    assert entry.extra == {"kind_changed": department.pk}
    auditor = client_for("auditor")
    english = page_text(auditor, "en", object_type="customers.person")
    assert "Institution whose type changed 心内科" in english
    traditional = page_text(auditor, "zh-hant", object_type="customers.person")  # its label: once translated
    assert " 心内科 " in traditional and "kind_changed" not in english + traditional
    assert audit.verify().ok


def test_the_rows_an_import_updated_read_in_the_readers_language(client_for, xiehe, huey_immediate, var_dir):  # noqa: F811
    """An import's entry of the records it updated listed each row as "row: 3; changes: Title: 主任医师, 主治医师" — two
    raw keys, and the title's before and after as if a list — in every language."""
    kam = client_for("kam")
    kam.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    for content in (three_people(), three_people(title="主治医师")):
        kam.post(reverse("customers:import"), {"target": "people", "mode": "all", "file": upload("p.csv", content)})
        kam.post(reverse("customers:import-confirm", args=[ImportJob.objects.latest("pk").pk]), {"mode": "all"})
    assert Person.objects.filter(title="主治医师").count() == 1
    auditor = client_for("auditor")
    english = page_text(auditor, "en", object_type="customers.person", action="update")
    assert "Row: 3" in english and "Changes: Title: 主任医师 → 主治医师" in english  # (jsonb orders the keys its way)
    traditional = page_text(auditor, "zh-hant", object_type="customers.person", action="update")
    assert "列號：3" in traditional and "變更內容：職稱：主任医师 → 主治医师" in traditional
    assert "row:" not in english and "changes:" not in english + traditional
    assert audit.verify().ok
