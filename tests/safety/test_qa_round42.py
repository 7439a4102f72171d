"""Session 42: what a pharmacovigilance officer types is checked where it is typed."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from lxml import etree

from pharmacrm.core.models import AuditEntry
from pharmacrm.safety.models import SafetyCase
from tests.api import conftest as api_fixtures

from .conftest import COMPLETE

pytestmark = pytest.mark.django_db
api_for = api_fixtures.api_for  # token clients per role

# --- 1. MedDRA codes, the MedDRA version, the dose and its unit ------------------------------------------------------

BAD_REACTION = {**COMPLETE["reactions"][0], "meddra_llt": "1003784", "meddra_version": "27"}
BAD_DRUG = {**COMPLETE["drugs"][0], "dose": "两片", "dose_unit": "小勺", "indication_meddra": "CAP"}
REFUSED = {  # field: (zh-hans, en)
    "reactions[0].meddra_llt": ("MedDRA 编码为 8 位数字（例如 10037844）。", "A MedDRA code has 8 digits (e.g. 10037844)."),
    "reactions[0].meddra_version": ("MedDRA 版本请按发布版本填写，例如 27.1。",
                                    "Write the MedDRA version as its release, e.g. 27.1."),
    "drugs[0].indication_meddra": ("MedDRA 编码为 8 位数字（例如 10037844）。", "A MedDRA code has 8 digits (e.g. 10037844)."),
    "drugs[0].dose": ("剂量请填写大于 0 的数字（例如 0.5），单位填在“剂量单位”中。",
                      "Enter the dose as a number greater than 0 (e.g. 0.5); its unit goes in the dose unit."),
    "drugs[0].dose_unit": ("“小勺”不是监管机构能识别的单位：请填写 UCUM 代码（mg、mL、[iU]）或毫克、毫升、国际单位、片、粒等。",
                           "“小勺” is not a unit the regulator can read: write a UCUM code (mg, mL, [iU]) or 毫克, 毫升, "
                           "国际单位, 片, 粒 …."),
}  # fmt: skip


def test_a_mistyped_meddra_code_version_dose_or_unit_is_refused_at_its_field_in_the_readers_language(api_for):
    """A code copied with a digit missing (1003784), a version typed 27, a dose written 两片 and a unit 小勺 were taken
    and kept: the export refused them only when the report was due, days later — the weight and the age were already
    checked as typed, the dose and the codes were not."""
    for language, at in (("zh-hans", 0), ("en", 1)):
        response = api_for("pv", lang=language).post(
            "/api/v1/safety/cases/", {**COMPLETE, "reactions": [BAD_REACTION], "drugs": [BAD_DRUG]}, format="json"
        )  # fmt: skip
        assert response.status_code == 400, response.content
        body = response.json()
        for field, messages in REFUSED.items():
            assert body[field] == [messages[at]], (language, field, body)
    assert not SafetyCase.objects.exists()


@pytest.mark.parametrize(("dose", "unit"), [("0", "mg"), ("-1", "mg"), ("1e2", "mg"), ("2", "mg per day")])
def test_a_dose_that_is_no_amount_or_a_unit_with_words_is_refused(api_for, dose, unit):
    response = api_for("pv", lang="en").post(
        "/api/v1/safety/cases/", {**COMPLETE, "drugs": [{**COMPLETE["drugs"][0], "dose": dose, "dose_unit": unit}]},
        format="json",
    )  # fmt: skip
    assert response.status_code == 400, response.content
    assert set(response.json()) == ({"drugs[0].dose"} if dose != "2" else {"drugs[0].dose_unit"})
    assert not SafetyCase.objects.exists()


@pytest.mark.parametrize(("dose", "unit", "stored"), [
    ("0.5", "g", "0.5"), ("０．５", "毫克", "0.5"), ("2", "片", "2"), ("1", "{DF}", "1"), ("10", "mg/kg", "10"),
    (".5", "[iU]", ".5"), ("", "", ""),
])  # fmt: skip
def test_doses_and_units_the_export_takes_are_saved(make_case, dose, unit, stored):
    case = make_case(drugs=[{**COMPLETE["drugs"][0], "dose": dose, "dose_unit": unit}],
                     reactions=[{**COMPLETE["reactions"][0], "meddra_llt": "１００３７８４４", "meddra_version": "２７．１"}])
    drug, reaction = case.drugs.get(), case.reactions.get()
    assert (drug.dose, drug.dose_unit) == (stored, unit)
    assert (reaction.meddra_llt, reaction.meddra_version) == ("10037844", "27.1")


def test_the_case_form_says_a_mistyped_code_or_dose_at_its_field_and_keeps_the_case(client_for, make_case):
    from .test_case_pages import form_data, html

    case = make_case()
    version = case.version
    url = reverse("safety:case-edit", args=[case.pk])
    refused = client_for("pv").post(url, form_data(case, **{
        "reactions-0-meddra_llt": "1003784", "reactions-0-meddra_version": "27", "drugs-0-dose": "两片",
        "drugs-0-dose_unit": "小勺",
    }))  # fmt: skip
    assert refused.status_code == 400
    page = html(refused)

    def at(field: str) -> str:
        return re.search(rf'id="field-{field}".*?</div>', page, re.S).group(0)

    assert REFUSED["reactions[0].meddra_llt"][0] in at("reactions-0-meddra_llt")
    assert REFUSED["reactions[0].meddra_version"][0] in at("reactions-0-meddra_version")
    assert REFUSED["drugs[0].dose"][0] in at("drugs-0-dose")
    assert REFUSED["drugs[0].dose_unit"][0] in at("drugs-0-dose_unit")
    case.refresh_from_db()
    assert case.version == version and case.drugs.get().dose == "2" and case.reactions.get().meddra_llt == "10037844"
    assert not AuditEntry.objects.filter(action=AuditEntry.Action.UPDATE, object_id=str(case.pk)).exists()


def test_a_follow_up_with_a_mistyped_code_changes_nothing(api_for, make_case):
    from django.utils import timezone

    case = make_case()
    response = api_for("pv", lang="en").post(f"/api/v1/safety/cases/{case.pk}/follow-ups/", {
        "follow_up_received_at": timezone.now().replace(microsecond=0).isoformat(), "summary": "医院补充编码",
        "reactions": [BAD_REACTION], "version": case.version}, format="json")  # fmt: skip
    assert response.status_code == 400, response.content
    assert set(response.json()) == {"reactions[0].meddra_llt", "reactions[0].meddra_version"}
    fresh = SafetyCase.objects.get(pk=case.pk)
    assert fresh.version == case.version and fresh.versions.count() == 1


def test_an_incoming_icsr_keeps_its_senders_codes_for_the_officer_to_correct(make_case, users):
    """A partner's file is not the officer's to retype: a code the sender got wrong does not refuse the file (its
    clock runs from its receipt); the case holds it as sent, the import warns of it, and the export names it until it
    is corrected."""
    from pharmacrm.safety.e2b import export, importer

    case = make_case()
    root = etree.fromstring(export.release([case]).xml)
    [llt] = root.xpath("//*[local-name()='observation'][*[local-name()='code'][@code='29']]/*[local-name()='value']")
    llt.set("code", "1003784")
    SafetyCase.objects.filter(pk=case.pk).delete()

    [imported] = importer.import_file(users["pv"], etree.tostring(root), source_name="partner.xml")

    assert imported.reactions.get().meddra_llt == "1003784"
    # the officer is told on the import page (and in the API's answer) what to correct, as for a value cut short
    assert [w for w in imported.import_warnings if "reactions[0].meddra_llt" in w] == [
        f"{imported.worldwide_id}: reactions[0].meddra_llt: MedDRA 编码为 8 位数字（例如 10037844）。"
        "上报前请在病例中更正。"]
    with pytest.raises(export.ExportRefused) as refused:
        export.release([imported])
    assert [p.field for p in refused.value.problems] == ["reactions[0].meddra_llt"]


# --- 2. an elderly patient's birth date --------------------------------------------------------------------------------


def test_an_elderly_patients_birth_date_is_taken_by_the_api_and_exported(api_for):
    """A patient of 88 (born 1938) was refused by the API as "This date is too long ago: check it." — the floor of the
    API's other dates (1950) was put on the birth date too, though ADRs are most reported in the elderly; the case form
    took it."""
    from pharmacrm.safety.e2b import export

    response = api_for("pv", lang="en").post("/api/v1/safety/cases/", {**COMPLETE, "patient_birth_date": "1938-05-17"},
                                             format="json")  # fmt: skip
    assert response.status_code == 201, response.content
    assert response.json()["patient_birth_date"] == "1938-05-17"
    case = SafetyCase.objects.get(pk=response.json()["id"])
    xml = export.release([case]).xml.decode()
    assert '<birthTime value="19380517"/>' in xml


BIRTH_TOO_OLD = {"zh-hans": "出生日期早于 150 年前，应为输入错误：请核对年份。",
                 "en": "A birth date more than 150 years ago is a typing error: check the year."}


def test_a_birth_date_more_than_150_years_ago_is_refused_at_its_field(api_for, client_for, make_case):
    """The other way round, a year mistyped (1856 for 1956) was taken by the case form (and 0001 with it), and the
    ICSR said the patient was 170."""
    from .test_case_pages import form_data, html

    for language, message in BIRTH_TOO_OLD.items():
        response = api_for("pv", lang=language).post("/api/v1/safety/cases/", {
            **COMPLETE, "patient_birth_date": "1856-05-17"}, format="json")  # fmt: skip
        assert response.status_code == 400, response.content
        assert response.json() == {"patient_birth_date": [message]}
    assert not SafetyCase.objects.exists()

    case = make_case()
    version = case.version
    refused = client_for("pv").post(reverse("safety:case-edit", args=[case.pk]),
                                    form_data(case, patient_birth_date="0001-05-17"))  # fmt: skip
    assert refused.status_code == 400
    field = re.search(r'id="field-patient_birth_date".*?</div>', html(refused), re.S).group(0)
    assert BIRTH_TOO_OLD["zh-hans"] in field
    case.refresh_from_db()
    assert case.version == version and case.patient_birth_date is None


# --- 3. the most recent information (C.1.5) and the follow-ups ----------------------------------------------------------


def test_the_most_recent_information_cannot_predate_a_follow_up(api_for, make_case, users):
    """A follow-up received on the 4th, then C.1.5 corrected through the API to the 2nd (after day 0, so it was taken):
    the ICSR told the regulator the newest information was older than the follow-up it carried."""
    import datetime as dt

    from django.utils import timezone

    from pharmacrm.safety import services

    now = timezone.now().replace(microsecond=0)
    case = make_case(received_at=now - dt.timedelta(days=5))
    services.add_follow_up(users["pv"], case, {"narrative": "住院记录：皮疹消退"}, received_at=now - dt.timedelta(days=1),
                           summary="医院补充住院记录")  # fmt: skip
    case.refresh_from_db()
    follow_up = timezone.localtime(now - dt.timedelta(days=1)).strftime("%Y-%m-%d %H:%M")
    api = api_for("pv", lang="en")
    response = api.patch(f"/api/v1/safety/cases/{case.pk}/", {
        "latest_received_at": (now - dt.timedelta(days=3)).isoformat(), "version": case.version}, format="json")
    assert response.status_code == 400, response.content
    assert response.json() == {"latest_received_at": [
        f"The most recent information cannot predate the follow-up received {follow_up}."]}
    fresh = SafetyCase.objects.get(pk=case.pk)
    assert (fresh.version, fresh.latest_received_at) == (case.version, case.latest_received_at)

    later = now - dt.timedelta(hours=2)
    response = api.patch(f"/api/v1/safety/cases/{case.pk}/", {
        "latest_received_at": later.isoformat(), "version": case.version}, format="json")
    assert response.status_code == 200, response.content
    assert SafetyCase.objects.get(pk=case.pk).latest_received_at == later
