"""Amounts and dates in API bodies as people and their ERP exports write them: "¥1,234.50", "１，２３４．５", "1 234.50",
"1234.5元" or a JSON number; 2026/03/15, 2026.3.15, 2026年3月15日 and full-width digits. Answers stay ISO and plain
decimals; what cannot be read is refused under its field, in the reader's language — on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from pharmacrm.cooperation.models import Agreement
from pharmacrm.sales.models import Opportunity

pytestmark = pytest.mark.django_db
AGREEMENTS = "/api/v1/cooperation/agreements/"


def agreement(xiehe, owner, **extra):
    return {"institution": xiehe.pk, "kind": "academic", "title": "心内科学术合作", "company_signer": "王总",
            "customer_signer": "李院长", "start_date": "2026-01-01", "end_date": "2026-12-31", "amount": "120000.00",
            "terms": "双方权利义务……", "payment_terms": "验收后30日内付款", "owner": owner.pk, **extra}  # fmt: skip


@pytest.mark.parametrize("typed", ["¥1,234.50", "￥1,234.5", "１，２３４．５", "1 234.50", "1234.5元", 1234.5, "1234.50"])
def test_an_agreement_amount_is_read_as_typed(api_for, users, xiehe, typed):
    r = api_for("manager").post(AGREEMENTS, agreement(xiehe, users["manager"], amount=typed), format="json")
    assert r.status_code == 201, r.content
    assert r.json()["amount"] == "1234.50"
    assert Agreement.objects.get().amount == Decimal("1234.50")


@pytest.mark.parametrize("typed", ["1.2万", "十二", "1e3", "1_000", "١٢٣", "12.345", True, "1¥234", "12元元", "¥"])
def test_an_amount_that_is_no_amount_is_refused_under_its_field(api_for, users, xiehe, typed):
    body = agreement(xiehe, users["manager"], amount=typed)
    r = api_for("manager").post(AGREEMENTS, body, format="json")
    assert r.status_code == 400 and list(r.json()) == ["amount"], r.content
    if typed != "12.345":
        assert r.json()["amount"] == ["Enter an amount in yuan, such as 1234.50 or ¥1,234.50."]
    assert not Agreement.objects.exists()


@pytest.mark.parametrize("start, end", [
    ("2026/01/01", "2026/12/31"), ("2026.1.1", "2026.12.31"), ("2026年1月1日", "2026年12月31日"),
    ("２０２６－０１－０１", "２０２６／１２／３１"), ("２０２６年１月１日", " 2026-12-31 "),
])  # fmt: skip
def test_agreement_dates_as_erp_exports_write_them_are_read_and_answered_iso(api_for, users, xiehe, start, end):
    r = api_for("manager").post(AGREEMENTS, agreement(xiehe, users["manager"], start_date=start, end_date=end),
                                format="json")  # fmt: skip
    assert r.status_code == 201, r.content
    assert (r.json()["start_date"], r.json()["end_date"]) == ("2026-01-01", "2026-12-31")
    assert Agreement.objects.get().end_date == dt.date(2026, 12, 31)


@pytest.mark.parametrize("typed", ["2026/13/01", "2026年2月30日"])
def test_a_date_the_calendar_lacks_is_refused_as_such_in_any_form(api_for, users, xiehe, typed):
    r = api_for("manager").post(AGREEMENTS, agreement(xiehe, users["manager"], end_date=typed), format="json")
    assert r.status_code == 400 and list(r.json()) == ["end_date"], r.content
    assert "is not a day of the calendar" in r.json()["end_date"][0]


@pytest.mark.parametrize("typed", ["31/12/2026", "2026/12-31", "٢٠٢٦-١٢-٣١", "明年", "2026-12-31T00:00"])
def test_an_unreadable_date_is_refused_naming_the_forms_it_takes(api_for, users, xiehe, typed):
    body = agreement(xiehe, users["manager"], end_date=typed)
    r = api_for("manager").post(AGREEMENTS, body, format="json")
    assert r.status_code == 400, r.content
    assert r.json() == {"end_date": ["Enter a date as YYYY-MM-DD (also accepted: YYYY/MM/DD, YYYY.MM.DD, YYYY年M月D日)."]}
    assert not Agreement.objects.exists()


def test_an_opportunity_takes_an_amount_and_a_close_date_as_typed(api_for, users, xiehe):
    body = {"customer": xiehe.pk, "title": "心内科新品准入", "amount": "¥80,000", "close_date": "2026年6月30日"}
    r = api_for("manager").post("/api/v1/sales/opportunities/", body, format="json")
    assert r.status_code == 201, r.content
    assert (r.json()["amount"], r.json()["close_date"]) == ("80000.00", "2026-06-30")
    r = api_for("manager").post("/api/v1/sales/opportunities/", {**body, "amount": "-1"}, format="json")
    assert r.status_code == 400 and list(r.json()) == ["amount"]
    assert Opportunity.objects.count() == 1


def test_a_competitor_products_reference_price_is_read_as_typed(api_for):
    company = api_for("analyst").post("/api/v1/market/competitors/", {"name": "华海药业"}, format="json").json()
    r = api_for("analyst").post("/api/v1/market/competitor-products/", {
        "company": company["id"], "generic_name": "苯磺酸氨氯地平片", "strength": "5mg×28片",
        "reference_price": "１２．５元"}, format="json")  # fmt: skip
    assert r.status_code == 201, r.content
    assert r.json()["reference_price"] == "12.50"


def test_the_schema_says_a_typed_amount_is_a_number_or_a_string_and_answers_a_decimal_string(client):
    schemas = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()["components"]["schemas"]
    sent = schemas["OpportunityWriteRequest"]["properties"]["amount"]
    assert [kind["type"] for kind in sent["oneOf"]] == ["number", "string"]
    answered = schemas["Opportunity"]["properties"]["amount"]
    assert answered["type"] == "string" and answered["format"] == "decimal"
    sent_day = schemas["OpportunityWriteRequest"]["properties"]["close_date"]
    assert sent_day["type"] == "string" and "format" not in sent_day and sent_day["example"] == "2026-03-15"
    assert schemas["Opportunity"]["properties"]["close_date"]["format"] == "date"  # answered in ISO, as before


def test_the_schema_describes_typed_days_moments_and_percentages_and_answers_iso(client):
    """A client validating its requests against the schema refused 2026/3/15 (`format: date`), 2026年3月15日 14时30分
    (`format: date-time`) and 35% (`format: decimal`), all of which the API reads."""
    import re

    from pharmacrm.core.api_utils import TYPED_DATE_SCHEMA, TYPED_MOMENT_SCHEMA

    schemas = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()["components"]["schemas"]
    day = schemas["AgreementCreateRequest"]["properties"]["end_date"]
    moment = schemas["TicketRequest"]["properties"]["received_at"]
    assert (day["pattern"], moment["pattern"]) == (TYPED_DATE_SCHEMA["pattern"], TYPED_MOMENT_SCHEMA["pattern"])
    assert "format" not in day and "format" not in moment
    for typed in ("2026-12-31", "2026/12/31", "2026.12.31", "2026年12月31日", "２０２６－１２－３１", " 2026 年 12 月 31 日 "):
        assert re.search(day["pattern"], typed), typed
    for typed in ("2026-03-15T14:30:00+08:00", "2026-03-15 14:30", "2026/3/15 14:30", "2026年3月15日 14时30分",
                  "２０２６年３月１５日 １４：３０", "2026-03-15T06:30:00Z"):  # fmt: skip
        assert re.search(moment["pattern"], typed), typed
    for wrong in ("31/12/2026", "明年", "12月31日"):
        assert not re.search(day["pattern"], wrong) and not re.search(moment["pattern"], wrong), wrong
    assert schemas["Ticket"]["properties"]["received_at"]["format"] == "date-time"  # answers unchanged
    assert schemas["Agreement"]["properties"]["end_date"]["format"] == "date"
    weight = schemas["ScoringModelUpdateRequest"]["properties"]["weights"]["additionalProperties"]
    assert [kind["type"] for kind in weight["oneOf"]] == ["number", "string"]
    assert weight["oneOf"][1]["example"] == "12.5%" and "30% is 30" in weight["oneOf"][1]["description"]


def test_the_markets_day_filters_read_the_same_forms(api_for):
    r = api_for("analyst").get("/api/v1/market/intelligence/", {"happened_from": "２０２６／０１／０１"})
    assert r.status_code == 200, r.content
    r = api_for("analyst").get("/api/v1/market/presence/", {"observed_to": "01/31/2026"})
    assert r.status_code == 400 and list(r.json()) == ["observed_to"]


def test_ids_and_whole_numbers_still_take_ascii_digits_only(api_for, users, xiehe):
    written = "".join(chr(ord("０") + int(d)) for d in str(xiehe.pk))
    r = api_for("manager").post(AGREEMENTS, agreement(xiehe, users["manager"], institution=written), format="json")
    assert r.status_code == 400 and r.json() == {"institution": ["A valid integer is required."]}


def test_a_ticket_received_at_a_typed_moment_is_read_in_the_readers_time_zone_and_listed_by_one(api_for, xiehe):
    """2026年2月13日 16时, 2026/2/13 16:00 and full-width digits as a call note writes them: the API took ISO 8601
    only, for the ticket's received_at and for the list's received_after / received_before filters."""
    from django.utils import timezone

    from pharmacrm.servicedesk.models import Ticket

    body = {"subject": "询问说明书用法用量", "channel": "phone", "category": "drug_info", "institution": xiehe.pk}
    r = api_for("agent").post("/api/v1/tickets/", {**body, "received_at": "２０２６年２月１３日 １６时"}, format="json")
    assert r.status_code == 201, r.content
    ticket = Ticket.objects.get()
    assert timezone.localtime(ticket.received_at).strftime("%Y-%m-%d %H:%M") == "2026-02-13 16:00"
    listed = api_for("agent").get("/api/v1/tickets/", {"received_after": "2026/2/13 15:59",
                                                       "received_before": "2026.2.13 16:01"})  # fmt: skip
    assert listed.status_code == 200 and [t["id"] for t in listed.json()["results"]] == [ticket.pk]
    later = api_for("agent").get("/api/v1/tickets/", {"received_after": "2026年2月13日 16时01分"})
    assert later.status_code == 200 and later.json()["results"] == []
    refused = api_for("agent").get("/api/v1/tickets/", {"received_after": "13/02/2026 16:00"})
    assert refused.status_code == 400 and list(refused.json()) == ["received_after"]
    r = api_for("agent").post("/api/v1/tickets/", {**body, "received_at": "2026年2月13日下午4点"}, format="json")
    assert r.status_code == 400 and list(r.json()) == ["received_at"]
    assert "YYYY年M月D日 H时M分" in r.json()["received_at"][0]
