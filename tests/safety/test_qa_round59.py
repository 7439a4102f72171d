"""QA round 59 of the safety pages, as pharmacovigilance and its overseers work with them."""

from __future__ import annotations

import pytest
from lxml import html as lh


@pytest.mark.parametrize(("language", "label"), [("zh-hans", "截止日期"), ("zh-hant", "截止日期"), ("en", "To")])
def test_the_reconciliation_period_ends_at_a_date_not_at_a_mail_recipient(language, label, client_for):
    """The reconciliation's period read "获知日期起 … 收件人" (a mail's recipient): its end took the translation of
    the lower-case "to" that names where a reply was sent."""
    manager = client_for("manager")
    manager.cookies["django_language"] = language
    page = lh.fromstring(manager.get("/safety/reconciliation/").content)
    assert page.xpath("string(//label[@for='id_until'])").strip() == label
    assert "收件人" not in page.xpath("string(//form[@id='period-form'])")


@pytest.fixture
def misdosed_ticket(users, xiehe):
    """A ticket the agent filed under 用药错误: the net finds 误服, a reaction signal to it."""
    from pharmacrm.servicedesk import services as desk

    return desk.create_ticket(users["agent"], {
        "subject": "老人误服两倍剂量", "channel": "phone", "category": "medication_error", "institution": xiehe,
        "description": "家属来电：老人昨天误服了两倍剂量",
    })  # fmt: skip


def test_triage_offers_a_medication_error_for_a_ticket_filed_as_one(misdosed_ticket, client_for):
    """The triage queue preselected 不良反应/事件 for a ticket the agent had filed as 用药错误 (the net reports 误服 as
    a reaction signal), so the one click that confirms it opened the wrong kind of case."""
    from pharmacrm.safety.models import Flag

    flag = Flag.objects.get(ticket=misdosed_ticket, status="pending")
    page = lh.fromstring(client_for("pv").get("/safety/triage/").content)
    chosen = page.xpath(f"//form[@action='/safety/triage/{flag.pk}/confirm/']//select[@name='kind']"
                        "/option[@selected]/@value")  # fmt: skip
    assert chosen == ["medication_error"]


def test_a_flag_confirmed_without_a_kind_opens_the_tickets_kind_of_case(misdosed_ticket, users, xiehe):
    from pharmacrm.safety import services
    from pharmacrm.safety.models import Flag
    from pharmacrm.servicedesk import services as desk

    case = services.confirm_flag(users["pv"], Flag.objects.get(ticket=misdosed_ticket, status="pending"))
    assert case.kind == "medication_error"
    # a reaction on a ticket of another category stays a reaction
    rash = desk.create_ticket(users["agent"], {
        "subject": "用药后皮疹", "channel": "phone", "category": "drug_info", "institution": xiehe,
        "description": "服药后全身皮疹瘙痒",
    })  # fmt: skip
    assert services.confirm_flag(users["pv"], Flag.objects.get(ticket=rash, status="pending")).kind == "adverse_reaction"


def test_a_dechallenge_is_not_read_as_a_rechallenge_on_the_case_page_or_in_the_icsr(make_case, client_for):
    """A drug whose reaction abated when it was stopped (dechallenge "yes") and that was never given again read
    "反应减轻 / 再次出现 / —" on the case page — the choice's label names both results, so PV read a positive
    rechallenge — and the ICSR's free text told the regulator "Dechallenge: Reaction abated / recurred"."""
    from django.utils import translation

    from pharmacrm.safety.e2b import export

    drug = {**services_complete_drug(), "dechallenge": "yes", "rechallenge": ""}
    case = make_case(drugs=[drug])
    pv = client_for("pv")
    page = lh.fromstring(pv.get(f"/safety/cases/{case.pk}/").content)
    with translation.override("zh-hans"):
        abated = translation.pgettext("dechallenge", "Reaction abated")
        both = translation.gettext("Reaction abated / recurred")
    drugs_table = page.xpath("string(//table[.//th[contains(., '再激发')]])")
    assert f"{abated} / —" in drugs_table and both not in drugs_table
    with translation.override("en"):
        xml = export.build([case]).decode()
    assert "Dechallenge: Reaction abated<" in xml and "recurred" not in xml


def services_complete_drug() -> dict:
    from .conftest import COMPLETE

    return dict(COMPLETE["drugs"][0])


@pytest.mark.parametrize("language", ["zh-hans", "zh-hant"])
def test_a_report_sent_on_time_says_so_and_not_that_it_is_normal(language, make_case, users, client_for):
    """A submission made by its deadline read 正常 ("normal", a ticket's clock still within its time) under a column
    headed 正常 on the case page, and 正常 in the reconciliation beside 迟报 for a late one."""
    from django.utils import translation

    from pharmacrm.safety import services

    from .conftest import sign_code

    case = make_case()
    services.record_submission(users["pv"], case, {"channel": "nmpa"}, otp_code=sign_code(users["pv"]))
    with translation.override(language):
        on_time = translation.pgettext("report timeliness", "On time")
        normal = translation.gettext("On time")
    assert normal == "正常"  # a ticket's clock within its time keeps its word
    pv = client_for("pv")
    pv.cookies["django_language"] = language
    page = lh.fromstring(pv.get(f"/safety/cases/{case.pk}/").content)
    table = page.xpath("//table[.//td//*[contains(@class, 'sla-ok')]]")[0]
    headers = [th.text_content().strip() for th in table.xpath(".//th")]
    assert on_time in headers and normal not in headers
    assert table.xpath("string(.//*[contains(@class, 'sla-ok')])").strip() == on_time
    from pharmacrm.safety import reconciliation

    with translation.override(language):  # the reconciliation's column and its XLSX
        assert str(reconciliation.TIMELINESS[reconciliation.ON_TIME]) == on_time != normal


def test_the_ticket_pages_open_a_case_button_offers_a_medication_error_for_one(misdosed_ticket, client_for):
    """The ticket page's 'Open safety case' for PV preselected 不良反应/事件 on a ticket filed under 用药错误."""
    page = lh.fromstring(client_for("pv").get(f"/service/tickets/{misdosed_ticket.pk}/").content)
    chosen = page.xpath("//select[@id='safety-kind']/option[@selected]/@value")
    assert chosen == ["medication_error"]
