"""The net end to end in a real Chromium: an agent logs a call in which the customer mentions a rash; the
ticket appears in PV's triage queue with the term marked; the PV officer confirms it and lands on a new
case whose day 0 is the call, linked back from the ticket page."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from pharmacrm.safety.models import SafetyCase
from pharmacrm.servicedesk import services as desk
from tests.safety.conftest import sign_code

from .conftest import shot, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_rash_mentioned_on_the_hotline_becomes_a_case_through_triage(page, users, xiehe):
    called = timezone.now() - dt.timedelta(hours=3)
    ticket = desk.create_ticket(users["agent"], {
        "subject": "来电咨询用法", "description": "张医生说一位患者静脉滴注后出现全身皮疹，已停药。", "channel": "phone",
        "category": "drug_info", "institution": xiehe, "caller_name": "张医生", "received_at": called,
    })  # fmt: skip

    code = sign_code(users["pv"])
    sign_in(page, "pv")
    page.fill("#id_code", code)
    with page.expect_navigation():
        page.press("#id_code", "Enter")

    page.goto(reverse("safety:triage"))
    row = page.locator("tr.flag-row").filter(has_text=ticket.number)
    assert row.locator("mark").first.inner_text() == "皮疹"
    shot(page, "safety-triage")
    with page.expect_navigation():
        row.locator("form.confirm-form button[type=submit]").click()

    case = SafetyCase.objects.get(source_ticket=ticket)
    assert page.url.endswith(reverse("safety:case", args=[case.pk]))
    assert case.received_at == called  # day 0: the call, not the triage
    page.goto(reverse("servicedesk:ticket", args=[ticket.pk]))
    assert page.locator(f"a[href='{reverse('safety:case', args=[case.pk])}']").count() >= 1
