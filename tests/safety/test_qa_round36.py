"""Safety defects found by the thirty-sixth review round: a country typed in Chinese characters and a number that
only Python reads, both kept until the export refused them; the regulator's rejection of a closed case's report
leaving its other clocks stopped on an open case; a life-threatening unexpected reaction in a clinical study (a
SUSAR), due in 7 days, not 15."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from pharmacrm.core.models import AuditEntry
from pharmacrm.safety import services
from pharmacrm.safety.models import SafetyCase, SafetyClock
from tests.api import conftest as api_fixtures

from .conftest import COMPLETE, sign_code
from .test_case_pages import form_data

pytestmark = pytest.mark.django_db
api_for = api_fixtures.api_for  # token clients per role


# --- 1. the country in Chinese characters, a number Python reads but E2B does not ---------------------------------


@pytest.mark.parametrize("country", ["美国", "中国"])
def test_a_country_typed_in_chinese_characters_is_refused_at_the_field(api_for, country):
    """美国 and 中国 are two letters to Python (str.isalpha), so a case opened with the country typed as a Chinese
    officer names it was saved; C.1.1 then read "美国-PHARMACRM-AE-…" and the export, days later, refused E.i.9.
    The field now asks for the ISO code at once, in the officer's language."""
    response = api_for("pv", lang="zh-hans").post("/api/v1/safety/cases/", {**COMPLETE, "country": country},
                                                  format="json")  # fmt: skip
    assert response.status_code == 400
    assert response.json()["country"] == ["请输入两位字母的国家代码（ISO 3166），例如 CN。"]
    assert not SafetyCase.objects.exists()


def test_the_edit_page_names_the_country_typed_in_chinese(client_for, make_case):
    case = make_case()
    response = client_for("pv").post(reverse("safety:case-edit", args=[case.pk]),
                                     form_data(case, reporter_country="中国"))  # fmt: skip
    assert response.status_code == 400
    assert 'id="field-reporter_country"' in response.content.decode()
    assert "请输入两位字母的国家代码" in response.content.decode()
    case.refresh_from_db()
    assert case.reporter_country == "CN"  # as it was


@pytest.mark.parametrize("age", ["1e2", "٤٥", "4_5"])
def test_a_number_the_export_cannot_take_is_refused_when_typed(api_for, age):
    """float() reads 1e2, 4_5 and Arabic-Indic ٤٥; they were stored as typed and the ICSR refused them at export."""
    response = api_for("pv").post("/api/v1/safety/cases/", {**COMPLETE, "patient_age": age}, format="json")
    assert response.status_code == 400
    assert response.json()["patient_age"] == ["Enter a number."]


@pytest.mark.parametrize(("typed", "stored"), [("４５", "45"), ("60.5", "60.5"), ("ＣＮ", "CN"), ("us", "US")])
def test_full_width_digits_and_country_letters_are_still_taken(api_for, typed, stored):
    field = "patient_weight_kg" if typed[0] in "６60" else "patient_age" if typed[0] in "４" else "reporter_country"
    response = api_for("pv").post("/api/v1/safety/cases/", {**COMPLETE, field: typed}, format="json")
    assert response.status_code == 201, response.content
    assert getattr(SafetyCase.objects.get(), field) == stored


# --- 2. a rejected report of a closed case -------------------------------------------------------------------------

FATAL = [{**COMPLETE["reactions"][0], "outcome": "5", "death": True}]


def test_a_rejected_report_of_a_closed_case_starts_its_stopped_clocks_again(make_case, users, client_for):
    """A death reported within the day; the case closed, with a reason, before its 15-day investigation report (its
    clock stopped). The regulator then rejected the report: the case was open again — "being assessed", the report
    owed — but the investigation clock stayed "Stopped: case closed without a report" on the open case, never in the
    due list nor warned of. A rejection that reopens a closed case now starts its stopped clocks again, as reopening
    it by hand does, and the audit entry names the status change."""
    pv = users["pv"]
    sign_code(pv)
    case = make_case(reactions=FATAL, received_at=timezone.now() - dt.timedelta(hours=3))
    sub = services.record_submission(pv, case, {"channel": "nmpa", "message_id": "B-36"}, otp_code=sign_code(pv))
    case.refresh_from_db()
    services.set_status(pv, case, "closed", reason="调查报告由医院直接提交", version=case.version)
    investigation = SafetyClock.objects.get(case=case, kind="investigation")
    assert investigation.stopped_at is not None

    services.record_ack(pv, sub, accepted=False, errors=["E.i.2.1b: invalid code"], ack_message_id="ACK-36")

    case.refresh_from_db()
    assert case.status == "assessing"
    investigation.refresh_from_db()
    assert investigation.stopped_at is None and investigation.met_at is None
    assert investigation.next_check_at is not None  # the worker watches it again
    assert investigation in services.due_clocks()
    page = client_for("pv").get(reverse("safety:case", args=[case.pk])).content.decode()
    assert "已停止" not in page
    entry = AuditEntry.objects.filter(object_id=str(case.pk), action="update").order_by("-id").first()
    assert entry.changes["status"] == ["closed", "assessing"]
