"""Session 37 review: every message about a ticket caller's name names the field (as the customers' TOO_LONG
messages do), on every path that takes one — the intake and edit pages, the public web form, the API — in the
three languages; provisional deadlines are marked in the queue and on the board as on the ticket page."""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import translation

from pharmacrm.servicedesk import editing, services
from pharmacrm.servicedesk.models import Ticket
from tests.servicedesk.conftest import intake, public_form

LONG = "王" * 51
NAMED = {
    "en": "The caller's name is too long: at most 50 characters (it has 51).",
    "zh-hans": "来电人姓名过长：最多 50 个字符（当前为 51 个）。",
    "zh-hant": "來電人姓名過長：最多 50 個字元（當前為 51 個）。",
}


@pytest.mark.parametrize("lang", list(NAMED))
def test_the_service_names_the_callers_name_when_it_is_too_long_in_every_language(users, caller_ticket, lang):
    """editing said only "At most 50 characters." (最多 50 个字符。): which field, and by how much, was left to guess."""
    with translation.override(lang):
        with pytest.raises(ValidationError) as exc:
            editing.edit_ticket(users["agent"], caller_ticket, {"caller_name": LONG}, version=caller_ticket.version)
        assert exc.value.message_dict == {"caller_name": [NAMED[lang]]}
        with pytest.raises(ValidationError) as exc:
            services.create_ticket(users["agent"], {"subject": "咨询", "channel": "phone", "category": "drug_info",
                                                    "caller_name": LONG})  # fmt: skip
        assert exc.value.message_dict == {"caller_name": [NAMED[lang]]}
    assert Ticket.objects.count() == 1
    assert len(editing._personal("caller_name", "王" * 50)) == 50


def test_the_intake_and_edit_pages_name_the_callers_name(users, client_for, caller_ticket):
    """The pages answered Django's "Ensure this value has at most 50 characters (it has 51)." — and the browser cut
    a longer name pasted in without a word."""
    agent = client_for("agent")
    page = agent.get("/service/new/").content.decode()
    assert not re.search(r'name="caller_name"[^>]*maxlength', page)
    response = intake(agent, caller_name=LONG)
    assert response.status_code != 302
    assert response.context["form"].errors["caller_name"] == [NAMED["zh-hans"]]
    assert NAMED["zh-hans"] in response.content.decode()
    assert Ticket.objects.count() == 1

    form = {"subject": caller_ticket.subject, "description": "", "category": caller_ticket.category_id,
            "product": "", "batch_number": "", "institution": "", "person": "", "caller_name": LONG,
            "caller_phone": "", "reply_email": "", "version": caller_ticket.version}  # fmt: skip
    response = client_for("agent").post(f"/service/tickets/{caller_ticket.pk}/edit/", form,
                                        HTTP_ACCEPT_LANGUAGE="zh-hant")  # fmt: skip
    assert response.status_code == 400
    assert response.context["form"].errors["caller_name"] == [NAMED["zh-hant"]]
    assert Ticket.objects.get(pk=caller_ticket.pk).caller_name == "李女士"


def test_the_api_names_the_callers_name_on_intake_and_edit(api_for, caller_ticket):
    """DRF answered "Ensure this field has no more than 50 characters." under caller_name."""
    api = api_for("agent")
    body = {"subject": "来电咨询", "channel": "phone", "category": "drug_info", "caller_name": LONG}
    answer = api.post("/api/v1/tickets/", body, format="json")
    assert answer.status_code == 400 and answer.json() == {"caller_name": [NAMED["en"]]}
    answer = api.patch(f"/api/v1/tickets/{caller_ticket.pk}/details/",
                       {"caller_name": LONG, "version": caller_ticket.version}, format="json")  # fmt: skip
    assert answer.status_code == 400 and answer.json() == {"caller_name": [NAMED["en"]]}
    answer = api_for("agent", lang="zh-hans").post("/api/v1/tickets/", body, format="json")
    assert answer.json() == {"caller_name": [NAMED["zh-hans"]]}
    assert Ticket.objects.count() == 1
    answer = api.post("/api/v1/tickets/", {**body, "caller_name": "王" * 50}, format="json")
    assert answer.status_code == 201, answer.content




@pytest.mark.parametrize(("lang", "too_long", "missing"), [
    ("en", "Your name is too long: at most 50 characters (it has 51).", "Enter your name."),
    ("zh-hans", "您的姓名过长：最多 50 个字符（当前为 51 个）。", "请填写您的姓名。"),
    ("zh-hant", "您的姓名過長：最多 50 個字元（當前為 51 個）。", "請填寫您的姓名。"),
])  # fmt: skip
def test_the_public_form_names_the_name_field(db, users, lang, too_long, missing):
    """The web form's name (the ticket's caller's name) answered "This field is required." and Django's "Ensure this
    value has at most 50 characters" — neither says which field."""
    web = Client(HTTP_ACCEPT_LANGUAGE=lang)
    response = web.post("/help/", public_form(name=LONG))
    assert response.status_code == 400
    assert response.context["form"].errors["name"] == [too_long]
    response = web.post("/help/", public_form(name=""))
    assert response.context["form"].errors["name"] == [missing]
    assert not Ticket.objects.exists()


# --- provisional deadlines: marked in the queue and on the board as on the ticket page -----------------------------

EXPLAINED = "暂定：%s 年的法定节假日尚未录入，此截止时间暂将当年的周工作日都按工作日计算，录入后可能变动。"


def marks(page: str) -> list[tuple[str, str]]:
    """(years, title) of each provisional mark on a page."""
    return re.findall(r'<span class="small provisional" data-uncovered="([^"]*)" title="([^"]*)">', page)


def test_the_queue_marks_a_provisional_deadline_with_the_ticket_pages_explanation(users, xiehe, client_for, api_for):
    """A deadline counted into 2027, whose holidays nobody entered yet, read "provisional" on the ticket page only:
    the queue's badge showed it as firm as any other."""
    from tests.servicedesk.test_review36_calendar import new_years_eve_ticket

    ticket = new_years_eve_ticket(users, xiehe)
    services.assign(users["agent"], ticket, assignee=users["agent"])
    agent = client_for("agent")
    queue = agent.get("/service/").content.decode()
    assert ticket.number in queue
    assert marks(queue) == [("2027", EXPLAINED % "2027")]
    assert "暂定</span>" in queue  # the short mark the row has room for
    # the agent's list on the board shows the same badge
    board_list = client_for("manager").get(f"/service/board/agents/{users['agent'].pk}/").content.decode()
    assert marks(board_list) == [("2027", EXPLAINED % "2027")]
    # the ticket page keeps its sentence under each deadline, without the short mark besides
    page = agent.get(f"/service/tickets/{ticket.pk}/").content.decode()
    assert page.count(EXPLAINED % "2027") == 2 and marks(page) == []

    admin = api_for("admin")
    for day in ("2027-01-01", "2027-02-06", "2027-10-01"):  # the year entered: New Year, Spring Festival, National Day
        assert admin.post("/api/v1/calendars/business/overrides/", {"date": day, "working": False},
                          format="json").status_code == 201  # fmt: skip
    services.refresh_pending()
    assert marks(agent.get("/service/").content.decode()) == []


def test_the_board_marks_provisional_deadlines_breaching_soon_and_breached(users, xiehe, client_for, monkeypatch):
    """The board's 'Breaching soon' and 'Breached' rows showed a provisional deadline as firm. An installed
    chinese-calendar that does not know the current year yet (as in early January, before it is updated and before
    an administrator enters the schedule) makes this year's deadlines provisional."""
    import datetime as dt

    from django.utils import timezone

    from pharmacrm.servicedesk import workcalendar
    from pharmacrm.servicedesk.models import SlaClock

    year = timezone.localdate().year
    monkeypatch.setattr(workcalendar, "official_years", lambda: range(2004, year))
    now = timezone.now()
    data = {"subject": "咨询用法", "channel": "phone", "category": "drug_info", "institution": xiehe}
    soon, late = (services.create_ticket(users["agent"], dict(data)) for _ in range(2))
    # stored state as the worker leaves it: one deadline an hour ahead, one an hour past
    SlaClock.objects.filter(ticket=soon, kind="first_response").update(due_at=now + dt.timedelta(hours=1),
                                                                        next_check_at=now + dt.timedelta(hours=1))
    SlaClock.objects.filter(ticket=late, kind="first_response").update(due_at=now - dt.timedelta(hours=1),
                                                                        breached_at=now - dt.timedelta(hours=1))
    Ticket.objects.filter(pk=late.pk).update(next_due_at=now - dt.timedelta(hours=1))  # fmt: skip

    page = client_for("manager").get("/service/board/").content.decode()
    soon_panel = page.split('id="soon"')[1].split('id="breached"')[0]
    breached_panel = page.split('id="breached"')[1].split("</section>")[0]
    assert soon.number in soon_panel and late.number in breached_panel
    assert marks(soon_panel) == [(str(year), EXPLAINED % year)]
    assert marks(breached_panel) == [(str(year), EXPLAINED % year)]

    monkeypatch.undo()  # the package knows the year: nothing is provisional
    page = client_for("manager").get("/service/board/").content.decode()
    assert marks(page) == []


# --- a late calendar correction: resolved and closed tickets keep their record --------------------------------------


def test_a_late_calendar_correction_leaves_resolved_tickets_breaches_and_the_calendar_pages_say_so(
    users, xiehe, client_for
):
    """Decision (session 37): a resolved or closed ticket keeps the deadlines it was judged against — most
    helpdesks freeze closed records, so that a period's SLA figures do not move afterwards. The pages did not say
    so: an administrator entering 2027's schedule in January expected the breaches it disproves to go."""
    from pharmacrm.servicedesk.choices import ClockKind, Status
    from pharmacrm.servicedesk.models import SlaClock
    from tests.servicedesk.test_review36_calendar import ADD, at, business, due, new_years_eve_ticket

    resolved, running = new_years_eve_ticket(users, xiehe), new_years_eve_ticket(users, xiehe)
    services.transition(users["agent"], resolved, Status.RESOLVED, version=resolved.version, at=at(2027, 1, 5, 12),
                        resolution_summary="已电话告知用法", root_cause="usage")  # fmt: skip
    judged = {c.kind: (c.due_at, c.breached_at, c.fulfilled_at) for c in SlaClock.objects.filter(ticket=resolved)}
    assert judged[ClockKind.FIRST_RESPONSE] == (at(2027, 1, 4, 10), at(2027, 1, 4, 10), at(2027, 1, 5, 12))

    admin = client_for("admin")
    from django.urls import reverse

    year_page = reverse("servicedesk:settings-calendar-year", args=["business", 2027])
    for url in (reverse("servicedesk:settings-calendars"), year_page):
        page = admin.get(url).content.decode()
        assert 'id="closed-tickets-frozen"' in page
        assert "已解决和已关闭的工单保留当时据以判定的时限" in page
    # the company closes 4–6 January 2027: the first response of the resolved ticket was not late after all
    r = admin.post(ADD, {"date": "2027-01-04", "until": "2027-01-06", "working": "0", "note": "年终盘点停工",
                         "version": business().version})  # fmt: skip
    assert r.status_code == 302
    services.refresh_pending()
    assert due(running)[ClockKind.FIRST_RESPONSE] == at(2027, 1, 7, 10)  # the open ticket follows the calendar
    assert {c.kind: (c.due_at, c.breached_at, c.fulfilled_at) for c in SlaClock.objects.filter(ticket=resolved)} == judged

    # reopened, it is counted again on the calendar as it is now
    resolved.refresh_from_db()
    services.transition(users["agent"], resolved, Status.IN_PROGRESS, version=resolved.version, at=at(2027, 1, 8, 9))
    clock = SlaClock.objects.get(ticket=resolved, kind=ClockKind.FIRST_RESPONSE)
    assert (clock.due_at, clock.breached_at) == (at(2027, 1, 7, 10), None)
