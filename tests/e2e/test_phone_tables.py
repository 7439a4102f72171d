"""On a phone, the service performance page opened zoomed out to about four screens' width, its text unreadable:
the goal marks read out to screen readers (.visually-hidden, absolutely positioned) in the far columns of the wide
table escaped the scrolling .table-wrap, which was no containing block, and stretched the page. The table now
scrolls on its own and the page keeps the phone's width."""

import datetime as dt

import pytest
from django.utils import timezone

from pharmacrm.servicedesk import goals
from pharmacrm.servicedesk import services as desk
from pharmacrm.servicedesk.models import SlaClock

from .conftest import close_quietly, open_context, shot, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_the_performance_page_keeps_a_phones_width(browser, live_server, users, xiehe):
    goals.save(users["admin"], {"resolution_rate": "85", "fr_sla": "90", "res_sla": "90"},
               since=timezone.now() - dt.timedelta(days=400))  # fmt: skip
    ticket = desk.create_ticket(users["agent"], {"subject": "说明书咨询", "channel": "phone", "category": "drug_info",
                                                 "institution": xiehe})  # fmt: skip
    SlaClock.objects.filter(ticket=ticket).update(breached_at=timezone.now())  # both deadlines missed: far columns
    context = open_context(browser, live_server, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    try:
        sign_in(page, "manager")
        page.goto("/service/performance/")
        assert page.locator(".performance-table .visually-hidden").count() > 0  # a goal missed, read out
        widths = page.evaluate("() => [window.innerWidth, document.documentElement.scrollWidth]")
        shot(page, "performance-phone")
        assert widths == [390, 390]
        table = page.locator(".performance-table").first
        assert table.evaluate("t => t.closest('.table-wrap').scrollWidth > t.closest('.table-wrap').clientWidth")
    finally:
        close_quietly(context)
