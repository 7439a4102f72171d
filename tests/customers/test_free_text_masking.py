"""Contact details typed into a customer's free text (needs, notes): a phone number, an e-mail address or an ID card
number written there was shown in clear to the roles that see personal data masked (agent, expert, support,
after-sales, analyst, auditor) — on the 360 page and its history, in the API, the exports and the audit trail. They
are masked as the structured fields are (138****8000, z***@example.com, 110***********1234), and a person's are shown
in clear after a reveal with a reason, as their contact details. What is stored is not changed."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers import normalise, services
from pharmacrm.customers.models import Person
from pharmacrm.customers.normalise import mask_contacts
from tests.api.conftest import api_for  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db

NOTES = "家属电话 139-1234-5678，邮箱li.na@example.com"
NEEDS = "身份证 110101199003071234 复印件"


# --- the one function ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "shown"),
    [
        ("请回电 138 0013 8000", "请回电 138****8000"),
        ("手机13800138000。", "手机138****8000。"),
        ("+86 138-0013-8000 张", "138****8000 张"),
        ("+8613800138000", "138****8000"),
        ("全角１３８００１３８０００", "全角138****8000"),
        ("座机010-69156114转", "座机010****6114转"),
        ("(0755)8888 8888", "075****8888"),
        ("0571 8888 6666", "057****6666"),
        ("邮箱zhang@example.com", "邮箱z***@example.com"),
        ("邮箱ｚｈａｎｇ＠ｅｘａｍｐｌｅ．ｃｏｍ", "邮箱z***@example.com"),
        ("mail: li.na@hospital.cn,", "mail: l***@hospital.cn,"),
        ("身份证110101199003071234。", "身份证110***********1234。"),
        ("ID 11010119900307123X", "ID 110***********123X"),
    ],
)
def test_contact_details_in_a_text_are_masked_as_the_fields_are(typed, shown):
    assert mask_contacts(typed) == shown


@pytest.mark.parametrize(
    "text",
    [
        "订单号2024010112345678901",  # longer than a phone or an ID number
        "批号 1380013800012",
        "床位 2000 张，三甲",
        "2026-03-15 回访",
        "",
    ],
)
def test_other_numbers_and_words_are_left_as_typed(text):
    assert mask_contacts(text) == text


# --- ID card numbers: a resident ID card number (GB 11643), not any 18 digits ------------------------------------


@pytest.mark.parametrize(
    ("typed", "shown"),
    [
        ("110101199003071233", "110***********1233"),  # its check character fits, born 1990-03-07
        ("家属 11010519491231002X 复印件", "家属 110***********002X 复印件"),
        ("证件 11010519491231002x。", "证件 110***********002x。"),
        # named an ID card number just before it: a person's, even with a digit mistyped
        ("身份证 110101199003071234", "身份证 110***********1234"),
        ("证件号码：110101199003071234", "证件号码：110***********1234"),
        ("ID no. 110101199003071234", "ID no. 110***********1234"),
    ],
)
def test_a_resident_id_card_number_is_masked(typed, shown):
    assert mask_contacts(typed) == shown
    assert normalise.restore_contacts(shown, typed) == typed


@pytest.mark.parametrize(
    "text",
    [
        "统一社会信用代码 91110108710001554X",  # an 18-digit credit code ending in X: an institution's, not a person's
        "91110108710001554X",
        "事业单位 121000004000100041",  # all digits, its credit check character fits
        "110101199003071234",  # the check character does not fit, and nothing says it is an ID card number
        "110101199013071237",  # the check character fits, but there is no 13th month
        "110101188903071235",  # born before 1900
        "110101209903071235",  # born in the future
        "订单号 202401011234567890",
    ],
)
def test_eighteen_digits_that_are_no_id_card_number_are_left_as_typed(text):
    assert mask_contacts(text) == text


# --- a run of digits named another identifier just before it ------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "订单号 13800138000 已发货",
        "订单号：85291234567",
        "单号13800138000",
        "快递单号 13800138000",
        "批号13800138000",
        "生产批号：85291234567",
        "发票号码 010-12345678",
        "合同编号 13800138000",
        "统一社会信用代码：13800138000",
        "order no. 13800138000",
        "Order #13800138000",
        "batch: 85291234567",
        "Invoice No: 13800138000",
        "SO-13800138000",
        "PO13800138000",
        "FP13800138000",  # an invoice number as the demo data writes them
        "HY-13800138000",
        "XS13800138000",
        "订单号 852-9123-4567",
        "单号 110101199003071233",  # an ID card number's digits, named an order number
    ],
)
def test_a_number_named_an_order_batch_or_invoice_number_is_left_as_typed(text):
    assert mask_contacts(text) == text


@pytest.mark.parametrize(
    ("typed", "shown"),
    [
        ("85291234567", "+852 ****4567"),  # nothing says otherwise: personal data errs on masking
        ("13800138000", "138****8000"),
        ("订单联系人 13800138000", "订单联系人 138****8000"),
        ("订单号 12345，电话 13800138000", "订单号 12345，电话 138****8000"),  # the label names the number after it only
        ("订单号 +852 9123 4567", "订单号 +852 ****4567"),  # written with its +: a phone
        ("TEL13800138000", "TEL138****8000"),
        ("TEL-13800138000", "TEL-138****8000"),
        ("WANG13800138000", "WANG138****8000"),  # a name in capitals
        ("Tel-13800138000", "Tel-138****8000"),
        ("证件编号 110101199003071233", "证件编号 110***********1233"),
    ],
)
def test_a_number_not_named_another_identifier_is_masked(typed, shown):
    assert mask_contacts(typed) == shown
    assert normalise.restore_contacts(shown, typed) == typed


def test_an_order_number_cut_short_at_the_end_of_a_title_is_left_as_typed():
    assert normalise.mask_contacts_cut("订单号 1391234", 11) == "订单号 1391234"
    assert normalise.mask_contacts_cut("请回电 1391234", 11) == "请回电 139****"


def test_an_order_number_in_a_persons_notes_is_shown_and_the_phone_masked(client_for, api_for, xiehe,  # noqa: F811
                                                                          admin_user):
    notes = "订单号 13800138000 已发货，批号：85291234567；收货人电话 13912345678"
    person = Person.objects.get(name="张伟", institution=xiehe)
    services.update_person(admin_user, person, {"notes": notes}, version=person.version)
    shown = "订单号 13800138000 已发货，批号：85291234567；收货人电话 139****5678"
    assert shown in client_for("agent").get(f"/customers/people/{person.pk}/").content.decode()
    assert api_for("agent").get(f"/api/v1/people/{person.pk}/").json()["notes"] == shown


def test_a_credit_code_in_an_institutions_notes_is_shown_and_an_id_card_number_masked(client_for, xiehe,
                                                                                        admin_user):
    notes = "开票：统一社会信用代码 91110108710001554X；联系人证件 11010519491231002X"
    hospital = services.update_institution(admin_user, xiehe, {"notes": notes}, version=xiehe.version)
    page = client_for("agent").get(f"/customers/institutions/{hospital.pk}/").content.decode()
    assert "统一社会信用代码 91110108710001554X" in page
    assert "联系人证件 110***********002X" in page and "11010519491231002X" not in page


# --- where the text is shown ------------------------------------------------------------------------


@pytest.fixture
def doctor(xiehe, admin_user):
    person = Person.objects.get(name="张伟", institution=xiehe)
    return services.update_person(admin_user, person, {"notes": NOTES, "needs": NEEDS}, version=person.version)


@pytest.fixture
def hospital(xiehe, admin_user):
    return services.update_institution(admin_user, xiehe, {"notes": NOTES}, version=xiehe.version)


def _clear_in(text: str) -> bool:
    return any(v in text for v in ("139-1234-5678", "li.na@example.com", "110101199003071234"))


@pytest.mark.parametrize("role", ["agent", "expert", "support", "aftersales", "analyst", "auditor"])
def test_the_360_pages_mask_the_free_text_for_roles_that_see_personal_data_masked(client_for, doctor, hospital, role):
    client = client_for(role)
    page = client.get(f"/customers/people/{doctor.pk}/").content.decode()
    assert "家属电话 139****5678" in page and "l***@example.com" in page and "110***********1234" in page
    assert not _clear_in(page)  # neither in the profile nor in the history tab's before and after
    page = client.get(f"/customers/institutions/{hospital.pk}/").content.decode()
    assert "家属电话 139****5678" in page and not _clear_in(page)
    assert Person.objects.get(pk=doctor.pk).notes == NOTES  # what is stored is unchanged


@pytest.mark.parametrize("role", ["rep", "kam", "admin"])
def test_roles_that_see_personal_data_read_it_as_typed(client_for, doctor, hospital, role):
    page = client_for(role).get(f"/customers/people/{doctor.pk}/").content.decode()
    assert "139-1234-5678" in page and "li.na@example.com" in page and "110101199003071234" in page
    assert "139-1234-5678" in client_for(role).get(f"/customers/institutions/{hospital.pk}/").content.decode()


def test_a_reveal_with_a_reason_shows_the_free_text_and_is_audited(client_for, doctor, admin_user):
    person = services.update_person(
        admin_user, doctor, {"mobile": "", "email": "", "birthday": None}, version=doctor.version
    )  # nothing in the structured fields: the free text alone is read in clear
    page = client_for("agent").post(f"/customers/people/{person.pk}/reveal/", {"reason": "回访家属"}).content.decode()
    assert "家属电话 139-1234-5678" in page and "110101199003071234" in page
    entry = AuditEntry.objects.get(action="read_personal", actor__username="agent")
    assert entry.extra["reason"] == "回访家属" and {"needs", "notes"} <= set(entry.extra["fields"])


def test_the_api_masks_the_free_text_and_shows_it_after_a_reveal(api_for, doctor, hospital):  # noqa: F811
    agent = api_for("agent")
    listed = agent.get("/api/v1/people/").json()["results"]
    shown = next(p for p in listed if p["id"] == doctor.pk)
    assert shown["notes"] == "家属电话 139****5678，邮箱l***@example.com"
    assert shown["needs"] == "身份证 110***********1234 复印件"
    one = agent.get(f"/api/v1/people/{doctor.pk}/").json()
    assert not _clear_in(str(one)) and "_texts" not in one["contact"]
    revealed = agent.get(f"/api/v1/people/{doctor.pk}/", {"reveal_reason": "回访家属"}).json()
    assert revealed["notes"] == NOTES and revealed["needs"] == NEEDS
    assert api_for("analyst").get(f"/api/v1/institutions/{hospital.pk}/").json()["notes"] == (
        "家属电话 139****5678，邮箱l***@example.com"
    )
    assert api_for("rep").get(f"/api/v1/institutions/{hospital.pk}/").json()["notes"] == NOTES


def _export(client, target: str) -> str:
    response = client.get(reverse("customers:export", args=[target, "csv"]))
    assert response.status_code == 200
    return b"".join(response.streaming_content).decode("utf-8-sig")


def test_exports_mask_the_free_text_for_roles_that_see_personal_data_masked(client_for, doctor, hospital, tmp_path, settings):
    settings.VAR_DIR = tmp_path
    for target in ("people", "institutions"):
        masked = _export(client_for("analyst"), target)
        assert "139****5678" in masked and not _clear_in(masked), target
        rows = list(csv.reader(io.StringIO(_export(client_for("kam"), target))))
        assert any(NOTES in row for row in rows), target


def test_the_audit_trail_masks_the_free_text_for_the_auditor_not_the_administrator(client_for, api_for, doctor):  # noqa: F811
    auditor = client_for("auditor").get("/accounts/audit/", {"object_type": "customers.person"}).content.decode()
    assert "139****5678" in auditor and not _clear_in(auditor)
    assert "139-1234-5678" in client_for("admin").get("/accounts/audit/", {"object_type": "customers.person"}).content.decode()
    entries = api_for("auditor").get("/api/v1/audit/", {"object_type": "customers.person"}).json()["results"]
    notes = [e["changes"]["notes"] for e in entries if "notes" in (e["changes"] or {})]
    assert notes and all(not _clear_in(str(n)) for n in notes)
    recorded = AuditEntry.objects.filter(object_type="customers.person", object_id=str(doctor.pk))
    assert any((e.changes or {}).get("notes") == ["", NOTES] for e in recorded)  # the trail itself is as recorded


def test_an_editor_who_sees_the_text_masked_keeps_the_real_details_when_saving_it(client_for, api_for, doctor, hospital):  # noqa: F811
    """The agent edits customers: the edit form shows the notes masked too, and the masks sent back (by the form or a
    GET then PATCH through the API) are put back as stored — the notes are not overwritten with 139****5678."""
    page = client_for("agent").get(f"/customers/people/{doctor.pk}/edit/").content.decode()
    assert "139****5678" in page and not _clear_in(page)
    page = client_for("agent").get(f"/customers/institutions/{hospital.pk}/edit/").content.decode()
    assert "139****5678" in page and not _clear_in(page)
    agent = api_for("agent")
    shown = agent.get(f"/api/v1/people/{doctor.pk}/").json()
    r = agent.patch(f"/api/v1/people/{doctor.pk}/", {"notes": shown["notes"] + "。已回访", "version": shown["version"]},
                    format="json")  # fmt: skip
    assert r.status_code == 200, r.content
    assert Person.objects.get(pk=doctor.pk).notes == NOTES + "。已回访"
    assert r.json()["notes"] == shown["notes"] + "。已回访"


# --- imported back -------------------------------------------------------------------------------------------


def _csv(rows) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode("utf-8-sig")


def test_a_masked_export_imported_back_keeps_the_real_details_in_the_free_text(client_for, users, doctor, hospital, tmp_path, settings):
    """An analyst's export shows the notes masked (家属电话 139****5678); a key-account manager who imports it back
    (or a corrected copy) keeps the real numbers and addresses: the round trip changes nothing — the check says so
    row by row — and an added sentence is saved after the real details, never after their masks."""
    from pharmacrm.customers import importer
    from pharmacrm.customers.models import Institution

    settings.VAR_DIR = tmp_path
    rows = list(csv.reader(io.StringIO(_export(client_for("analyst"), "institutions"))))
    header = rows[0]
    row = next(r for r in rows[1:] if r[header.index("机构名称")] == hospital.name)
    assert row[header.index("备注")] == "家属电话 139****5678，邮箱l***@example.com"
    path = tmp_path / "institutions.csv"
    path.write_bytes(_csv(rows))
    version = Institution.objects.get(pk=hospital.pk).version
    check = importer.import_file(path, "institutions", users["kam"], dry_run=True)
    assert check.updated_count == 0 and check.unchanged_count >= 1, check.errors
    shown = next(p for p in check.preview if hospital.name in str(p["cells"]))
    assert shown["action"] == "unchanged"
    job = importer.import_file(path, "institutions", users["kam"])
    assert job.updated_count == 0 and job.error_count == 0
    stored = Institution.objects.get(pk=hospital.pk)
    assert stored.notes == NOTES and stored.version == version
    # people: the masked notes and needs as the analyst's export gives them, one sentence added to the notes
    small = [["内部编号", "姓名", "需求", "备注"],
             [doctor.code, doctor.name, mask_contacts(NEEDS), mask_contacts(NOTES) + "。已回访"]]  # fmt: skip
    path = tmp_path / "people.csv"
    path.write_bytes(_csv(small))
    job = importer.import_file(path, "people", users["kam"])
    assert (job.updated_count, job.error_count) == (1, 0), job.errors
    person = Person.objects.get(pk=doctor.pk)
    assert person.needs == NEEDS and person.notes == NOTES + "。已回访"
    update = AuditEntry.objects.filter(action="update", object_type="customers.person").latest("seq")
    assert update.extra["rows"][0]["changes"] == {"notes": [NOTES, NOTES + "。已回访"]}


def test_the_free_text_is_not_searched_so_a_masked_number_cannot_be_confirmed_by_searching_it(client_for, api_for, doctor, hospital):  # noqa: F811
    """The search box, the lists' q and the API search (the API lists have no text filter) read names, pinyin, codes and the structured contact fields
    only (the last through the audited, limited contact look-up): a number or address typed into the notes finds
    nothing, so searching 13912345678 tells a masked user nothing about 139****5678 in the notes."""
    agent = api_for("agent")
    for query in ("13912345678", "139-1234-5678", "li.na@example.com", "110101199003071234", "家属电话"):
        assert agent.get("/api/v1/search/", {"q": query}).json()["results"] == [], query
        page = client_for("agent").get("/customers/search/", {"q": query}).content.decode()
        assert f"/customers/people/{doctor.pk}/" not in page and f"/customers/institutions/{hospital.pk}/" not in page
        listing = client_for("agent").get("/customers/people/", {"q": query}).content.decode()
        assert f"/customers/people/{doctor.pk}/" not in listing, query
    # a whole number is a contact look-up: audited (masked) and counted, as any other
    assert AuditEntry.objects.filter(action="read_personal", object_repr="search", actor__username="agent").exists()


def test_a_consents_evidence_is_masked_for_roles_that_see_personal_data_masked(client_for, api_for, doctor, admin_user):  # noqa: F811
    """A consent's evidence holds what proves it, often a number (短信回复"同意"，来自139-1234-5678): it was shown in
    clear on the person's page and in the API to the roles that see the person's mobile masked."""
    services.record_consent(admin_user, doctor, {"purpose": "marketing", "channel": "sms", "status": "given",
                                                 "evidence": '短信回复"同意"，来自139-1234-5678'})  # fmt: skip
    page = client_for("agent").get(f"/customers/people/{doctor.pk}/").content.decode()
    assert '来自139****5678' in page and not _clear_in(page)
    rows = api_for("analyst").get("/api/v1/consents/", {"person": doctor.pk}).json()["results"]
    assert [r["evidence"] for r in rows] == ['短信回复"同意"，来自139****5678']
    assert "来自139-1234-5678" in client_for("kam").get(f"/customers/people/{doctor.pk}/").content.decode()
    assert api_for("kam").get("/api/v1/consents/", {"person": doctor.pk}).json()["results"][0]["evidence"].endswith(
        "139-1234-5678")


def test_a_deleted_persons_consent_evidence_is_masked_in_the_audit_trail(client_for, api_for, doctor, admin_user):  # noqa: F811
    """A deleted person's consent records are kept whole in the deletion's audit entry, evidence included: the
    auditor read the evidence in clear there (the person, whose live record decided the masking, was gone)."""
    services.record_consent(admin_user, doctor, {"purpose": "marketing", "channel": "sms", "status": "given",
                                                 "evidence": '短信回复"同意"，来自139-1234-5678'})  # fmt: skip
    pk = doctor.pk
    services.delete_customer(admin_user, doctor)
    query = {"object_type": "customers.person", "object_id": pk}
    page = client_for("auditor").get("/accounts/audit/", query).content.decode()
    assert "来自139****5678" in page and "139-1234-5678" not in page
    rows = api_for("auditor").get("/api/v1/audit/", query).json()["results"]
    kept = next(r for r in rows if r["action"] == "delete")["extra"]["consents"]
    assert [c["evidence"] for c in kept] == ['短信回复"同意"，来自139****5678']
    assert "来自139-1234-5678" in client_for("admin").get("/accounts/audit/", query).content.decode()
    # what is kept is not changed
    entry = AuditEntry.objects.get(action="delete", object_type="customers.person", object_id=str(pk))
    assert entry.extra["consents"][0]["evidence"] == '短信回复"同意"，来自139-1234-5678'
