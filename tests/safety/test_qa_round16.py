"""Safety defects found by the sixteenth session's QA round (qa-desk): regulatory day counting."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from django.utils import timezone

from pharmacrm.safety import services
from pharmacrm.safety.models import SafetyClock
from tests.safety.conftest import sign_code

SH = ZoneInfo("Asia/Shanghai")


def test_the_case_opened_from_a_ticket_keeps_the_customers_words_about_the_reaction(users, xiehe):
    """An order ticket; two days later the pharmacist writes back: "另外，患者服用后出现全身皮疹、瘙痒". The net
    flags it (day 0 = that e-mail). PV confirms the flag: the case's narrative is the ticket's subject and
    description — about the delivery — and the words that reported the reaction are nowhere in the case."""
    from pharmacrm.safety.models import Flag
    from pharmacrm.servicedesk import conversation
    from pharmacrm.servicedesk import services as desk

    ticket = desk.create_ticket(users["agent"], {
        "subject": "到货延迟", "description": "上周订的货还没到。", "channel": "email", "category": "order_delivery",
        "institution": xiehe, "reply_email": "pharmacy@example.com", "assignee": users["agent"],
    })  # fmt: skip
    words = "另外，有位患者服用后出现全身皮疹、瘙痒，已停药。"
    conversation.receive_inbound(ticket, body=words, sender="pharmacy@example.com", subject=f"[{ticket.number}] 到货延迟")
    flag = Flag.objects.get(ticket=ticket)
    case = services.confirm_flag(users["pv"], flag)
    case.refresh_from_db()
    assert "皮疹" in (case.narrative or ""), f"the narrative is {case.narrative!r}"


def test_a_death_reported_on_a_holiday_reaches_pv_within_the_24_hour_clock(users):
    """NMPA: a fatal case is reported at once (CN-DEATH, 24 hours, calendar time) — counted from when the company
    heard of it. A relative writes on the web form on 1 October (National Day) that their father died after taking
    the drug. The net finds 死亡, but the flag gets the ordinary one-*working*-day hand-off: PV is not told until
    the warning on 8 October, a week after the 24-hour deadline — and the case opened then is born overdue."""
    from pharmacrm.notify.models import Notification
    from pharmacrm.safety.models import Flag
    from pharmacrm.servicedesk import services as desk

    day0 = dt.datetime(2026, 10, 1, 10, 0, tzinfo=SH)
    ticket = desk.create_ticket(desk.SYSTEM, {
        "subject": "用药后死亡", "description": "我父亲服用你们的药后第二天死亡了，请给个说法。", "channel": "web",
        "category": "other", "caller_name": "刘女士", "caller_phone": "13900139000", "received_at": day0,
    })  # fmt: skip
    flag = Flag.objects.get(ticket=ticket)
    assert "死亡" in flag.terms
    handoff = SafetyClock.objects.get(flag=flag, kind="handoff")
    told = Notification.objects.filter(recipient=users["pv"]).exists()
    due = timezone.localtime(handoff.due_at, SH)
    assert told or handoff.warn_at <= day0 + dt.timedelta(hours=24), (
        f"hand-off due {due:%Y-%m-%d %H:%M}, first warning {timezone.localtime(handoff.warn_at, SH):%Y-%m-%d %H:%M}; "
        "nobody in PV was told of a reported death"
    )


def test_a_report_sent_on_day_30_is_on_time(make_case, users):
    """NMPA / GVP count reporting limits in calendar days from day 0: a non-serious report is due "不迟于获知信息
    后的30日" — on day 30 at any hour. The call came at 16:00 on day 0; PV submits at 17:00 on day 30: on time
    (it was recorded one day late, with a compulsory reason, and announced overdue at 16:00)."""
    pv = users["pv"]
    day0 = timezone.localtime(timezone.now(), SH).replace(hour=16, minute=0, second=0, microsecond=0)
    day0 -= dt.timedelta(days=31)
    case = make_case(received_at=day0)
    clock = SafetyClock.objects.get(case=case, kind="report")
    assert clock.rule.code == "CN-OTHER"
    due_local = timezone.localtime(clock.due_at, SH)
    assert (due_local.date(), due_local.hour, due_local.minute) == ((day0 + dt.timedelta(days=30)).date(), 23, 59)
    day30_evening = day0 + dt.timedelta(days=30, hours=1)  # 17:00 on day 30
    sub = services.record_submission(pv, case, {"channel": "nmpa", "submitted_at": day30_evening},
                                     otp_code=sign_code(pv))  # fmt: skip
    assert not sub.late
