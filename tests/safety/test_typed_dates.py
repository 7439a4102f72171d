"""Safety dates as a report, a phone note or an input method writes them: day 0 and the other moments as
2025/11/3 9:05, 2025年11月3日 9时5分 or in full-width digits, a reaction's onset or a drug's start known to the month
(2025年10月, 2025/10, 2025.10) or the year (2025年) — on the pages and in the API, stored at the precision typed; the
E2B(R3) export writes exactly what it wrote for the same dates sent in ISO; what is no date is refused at its field
(on SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from pharmacrm.safety.e2b import export
from pharmacrm.safety.models import CaseVersion, SafetyCase
from tests.api import conftest as api_fixtures

from .conftest import COMPLETE

pytestmark = pytest.mark.django_db
api_for = api_fixtures.api_for  # token clients per role, as this module's fixture

CASES = "/api/v1/safety/cases/"
MOMENT_FORMS = ("Enter a date and time as YYYY-MM-DD HH:MM (also accepted: YYYY/MM/DD HH:MM, YYYY.MM.DD HH:MM, "
                "YYYY年M月D日 H时M分).")  # fmt: skip
API_MOMENT_FORMS = ("Datetime has wrong format. Use one of these formats instead: "
                    "YYYY-MM-DDThh:mm[:ss][+HH:MM|-HH:MM|Z], YYYY-MM-DD hh:mm, YYYY/MM/DD hh:mm, YYYY年M月D日 H时M分.")
PARTIAL_FORMS = "Enter a date (2026-03-15), a month (2026-03) or a year (2026)."


def _local(case_moment) -> str:
    return timezone.localtime(case_moment).strftime("%Y-%m-%d %H:%M")


def _case(api, **typed):
    body = {**COMPLETE, "drugs": [{**COMPLETE["drugs"][0], "start_date": typed.pop("start", None),
                                   "stop_date": typed.pop("stop", None)}],
            "reactions": [{**COMPLETE["reactions"][0], "onset_date": typed.pop("onset", None),
                           "end_date": typed.pop("end", None)}], **typed}  # fmt: skip
    return api.post(CASES, body, format="json")


def test_the_api_reads_typed_moments_and_partial_dates_at_the_precision_typed(api_for):
    r = _case(api_for("pv"), received_at="2025/11/3 9:05", latest_received_at="２０２５年１１月４日　１４时３０分",
              onset="2025 年 10 月", end="2025/10/20", start="２０２５.１０", stop="2025年")  # fmt: skip
    assert r.status_code == 201, r.content
    case = SafetyCase.objects.get()
    assert (_local(case.received_at), _local(case.latest_received_at)) == ("2025-11-03 09:05", "2025-11-04 14:30")
    reaction, drug = case.reactions.get(), case.drugs.get()
    assert (reaction.onset_date, reaction.onset_precision) == (dt.date(2025, 10, 1), "month")
    assert (reaction.end_date, reaction.end_precision) == (dt.date(2025, 10, 20), "day")
    assert (drug.start_date, drug.start_precision, drug.stop_date, drug.stop_precision) == (
        dt.date(2025, 10, 1), "month", dt.date(2025, 1, 1), "year")  # fmt: skip
    body = r.json()
    assert (body["reactions"][0]["onset_date"], body["drugs"][0]["stop_date"]) == ("2025-10", "2025")
    assert dt.datetime.fromisoformat(body["received_at"]) == case.received_at  # answered in ISO, as before


def _same_ids(xml: str) -> str:
    """The batch with its records' generated ids (UUIDs of each case's rows) left out."""
    return re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "UUID", xml)


def test_the_e2b_export_of_typed_dates_is_the_export_of_the_same_dates_sent_in_iso(api_for):
    api = api_for("pv")
    iso = _case(api, received_at="2025-11-03T09:05:00+08:00", latest_received_at="2025-11-04T14:30",
                onset="2025-10", end="2025-10-20", start="2025-10", stop="2025")  # fmt: skip
    typed = _case(api, received_at="2025年11月3日 9时5分", latest_received_at="2025.11.4 14:30",
                  onset="2025年10月", end="2025年10月20日", start="2025/10", stop="２０２５年")  # fmt: skip
    assert iso.status_code == typed.status_code == 201, (iso.content, typed.content)
    first, second = SafetyCase.objects.order_by("pk")
    now = dt.datetime(2025, 11, 5, 10, 0, tzinfo=dt.UTC)
    xml_iso = _same_ids(export.build([first], message_id="B-1", now=now).decode())
    xml_typed = _same_ids(export.build([second], message_id="B-1", now=now).decode().replace(second.number,
                                                                                             first.number))
    assert xml_typed == xml_iso
    assert 'value="202510"' in xml_iso and 'value="2025"' in xml_iso  # E.i.4 and G.k.4.r.5 at the precision sent


@pytest.mark.parametrize(("field", "typed"), [
    ("received_at", "2025-11-03 下午3点"), ("received_at", "3/11/2025 09:00"), ("received_at", "٢٠٢٥-١١-٠٣T٠٩:٠٠"),
    ("received_at", "2025/11/31 09:00"), ("latest_received_at", "2025年11月4日"),
])  # fmt: skip
def test_the_api_refuses_a_moment_it_cannot_read_naming_the_field_and_the_forms(api_for, field, typed):
    r = _case(api_for("pv"), **{"received_at": "2025-11-03 09:05", field: typed})
    assert r.status_code == 400 and r.json() == {field: [API_MOMENT_FORMS]}, r.content
    assert not SafetyCase.objects.exists()


@pytest.mark.parametrize("typed", ["2025-10/20", "٢٠٢٥", "2025年13月", "去年十月", "20251020"])
def test_the_api_refuses_a_partial_date_it_cannot_read_under_its_row_and_field(api_for, typed):
    r = _case(api_for("pv"), received_at="2025/11/3 9:05", onset=typed)
    assert r.status_code == 400, r.content
    assert r.json() == {"reactions": {"0": {"onset_date": [PARTIAL_FORMS]}}}
    assert not SafetyCase.objects.exists()


def test_the_pages_read_a_typed_day_0_a_follow_up_received_and_an_onset_month(web):
    pv = web("pv")
    form = pv.get(reverse("safety:case-new")).content.decode()
    field = re.search(r'<input[^>]*name="received_at"[^>]*>', form).group(0)
    assert 'type="text"' in field and 'placeholder="e.g. 2026-03-15 14:30"' in field  # a picker took no typed moment
    response = pv.post(reverse("safety:case-new"), {
        "kind": "adverse_reaction", "received_at": "２０２５年１１月３日 ９时５分", "reporter_name": "刘药师",
        "reporter_qualification": "2", "patient_name": "赵某", "patient_age": "60", "drug_brand_name": "罗氏芬",
        "reaction_verbatim": "恶心呕吐", "reaction_onset_date": "2025 年 10 月", "narrative": "服药后恶心呕吐。",
    })  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:3000]
    case = SafetyCase.objects.get()
    assert _local(case.received_at) == "2025-11-03 09:05"
    assert (case.reactions.get().onset_date, case.reactions.get().onset_precision) == (dt.date(2025, 10, 1), "month")
    from .test_case_pages import form_data

    data = form_data(case, received_at="2025/11/4 10:30", summary="医院补充：患者已住院",
                     **{"reactions-0-onset_date": "2025.10"})  # fmt: skip
    assert pv.post(reverse("safety:case-follow-up", args=[case.pk]), data).status_code == 302
    follow = CaseVersion.objects.get(case=case, sequence=1)
    assert _local(follow.received_at) == "2025-11-04 10:30"


def test_the_pages_refuse_a_moment_or_a_partial_date_they_cannot_read_at_its_field(web):
    pv = web("pv")
    response = pv.post(reverse("safety:case-new"), {
        "kind": "adverse_reaction", "received_at": "11/03/2025 09:05", "reaction_verbatim": "恶心",
        "reaction_onset_date": "2025-10/20",
    })  # fmt: skip
    assert response.status_code == 400 and not SafetyCase.objects.exists()
    page = response.content.decode().replace("&#x27;", "'")
    assert re.search(r'id="field-received_at".*?' + re.escape(MOMENT_FORMS), page, re.S)
    assert re.search(r'id="field-reaction_onset_date".*?a month \(2026-03\)', page, re.S)


def test_the_typed_date_fields_show_an_example_they_accept_in_the_readers_language(web):
    """The placeholders were the bare patterns YYYY-MM-DD HH:MM and YYYY-MM-DD, in English on a Chinese page; each is
    now an example of what its field reads ("e.g. 2026-03-15 14:30"), a message translated as the page is — and
    typed as shown, each example is taken."""
    pv = web("pv")
    form = pv.get(reverse("safety:case-new")).content.decode()
    moment = re.search(r'<input[^>]*name="received_at"[^>]*>', form).group(0)
    onset = re.search(r'<input[^>]*name="reaction_onset_date"[^>]*>', form).group(0)
    assert 'placeholder="e.g. 2026-03-15 14:30"' in moment and 'placeholder="e.g. 2026-03-15"' in onset
    assert "YYYY" not in moment + onset
    response = pv.post(reverse("safety:case-new"), {
        "kind": "adverse_reaction", "received_at": "2026-03-15 14:30", "reporter_name": "刘药师",
        "reporter_qualification": "2", "patient_name": "赵某", "patient_age": "60", "drug_brand_name": "罗氏芬",
        "reaction_verbatim": "恶心呕吐", "reaction_onset_date": "2026-03-15", "narrative": "服药后恶心呕吐。",
    })  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:3000]
    case = SafetyCase.objects.get()
    assert _local(case.received_at) == "2026-03-15 14:30"
    assert case.reactions.get().onset_date == dt.date(2026, 3, 15)
