"""Review round 22: notifications as their readers see them later — the words of a serious-outcome notice after
the reader left PV."""

from __future__ import annotations

from django.contrib.auth.models import Group
from django.utils import translation

from pharmacrm.core.roles import Role
from pharmacrm.notify.models import Notification


def _serious_notice(users) -> Notification:
    from pharmacrm.servicedesk import services as desk

    desk.create_ticket(desk.SYSTEM, {
        "subject": "投诉", "description": "我父亲张三丰服用你们的药后第二天死亡了。", "channel": "web",
        "category": "other", "caller_name": "张女士", "caller_phone": "13900139000",
    })  # fmt: skip
    note = Notification.objects.get(recipient=users["pv"], kind="safety.serious")
    assert "张三丰" in note.body  # the PV officer read the customer's words when it came
    return note


def _leave_pv(user) -> None:
    user.groups.set([Group.objects.get(name=Role.AGENT.value)])  # moved to the call centre


def test_a_pv_officer_moved_to_another_role_no_longer_reads_the_patients_name_in_the_bell(client_for, users):
    note = _serious_notice(users)
    client = client_for("pv")
    _leave_pv(users["pv"])

    page = client.get("/notifications/").content.decode()

    assert note.shown_title in page  # the notice stays in the list
    assert "张三丰" not in page


def test_the_api_no_longer_gives_the_patients_name_to_a_former_pv_officer(api_for, users):
    note = _serious_notice(users)
    api = api_for("pv")
    _leave_pv(users["pv"])

    listed = api.get("/api/v1/notifications/").json()
    one = api.get(f"/api/v1/notifications/{note.pk}/").json()

    (row,) = [r for r in listed["results"] if r["id"] == note.pk]
    assert row["title"] and row["body"] == "" and one["body"] == ""
    assert "张三丰" not in str(listed) + str(one)


def test_the_pv_officer_still_reads_the_customers_words(client_for, api_for, users):
    note = _serious_notice(users)

    assert "张三丰" in client_for("pv").get("/notifications/").content.decode()
    assert "张三丰" in api_for("pv").get(f"/api/v1/notifications/{note.pk}/").json()["body"]


def test_a_flag_notice_opened_after_leaving_pv_says_so_instead_of_a_forbidden_page(client_for, users):
    note = _serious_notice(users)
    client = client_for("pv")
    _leave_pv(users["pv"])

    with translation.override("en"):
        response = client.get(f"/notifications/{note.pk}/open/", HTTP_ACCEPT_LANGUAGE="en", follow=True)

    assert response.redirect_chain == [("/notifications/", 302)]
    assert "You can no longer open what this notification is about: " in response.content.decode()


def test_an_email_waiting_for_its_retry_goes_out_in_the_language_the_recipient_has_when_it_is_sent(
    users, smtp_server
):
    from django.utils.translation import gettext_lazy

    from pharmacrm.core.deferred import Message
    from pharmacrm.notify import services, tasks
    from pharmacrm.notify.models import Delivery

    expert = users["expert"]  # a product expert from the Hong Kong office, who reads English
    expert.email = "expert@pharma.example"
    expert.save()
    services.send([expert], kind="ticket.escalated", url="/service/tickets/9/",
                  title=Message(gettext_lazy("%(number)s escalated to level %(level)d"), number="TK-2026-000009",
                                level=2))  # fmt: skip
    delivery = Delivery.objects.get()
    # the administrator sets the expert's language while the mail waits (the SMTP server was down)
    expert.language = "en"
    expert.save()

    assert tasks.deliver(delivery.pk) == Delivery.Status.SENT

    (got,) = smtp_server.messages
    assert got["message"]["Subject"] == "[PharmaCRM] TK-2026-000009 escalated to level 2"
    assert "Open: " in got["message"].get_content() and "查看：" not in got["message"].get_content()


def test_the_group_chat_reads_what_happened_to_the_ticket_in_chinese_not_the_event_code(admin_user, receiver):
    from pharmacrm.notify import services, tasks
    from pharmacrm.notify.models import Delivery

    services.create_endpoint(admin_user, {"name": "客服主管群", "url": receiver.url, "format": "wecom"})
    receiver.answer_body = b'{"errcode":0,"errmsg":"ok"}'
    ticket = {"number": "TK-2026-000009", "subject": "说明书咨询", "status": "in_progress", "priority": "high",
              "url": "http://x/service/tickets/9/"}  # fmt: skip
    services.emit("ticket.breached", {"ticket": ticket, "kind": "breached"})

    assert tasks.deliver(Delivery.objects.get().pk) == Delivery.Status.SENT

    lines = receiver.requests[0]["json"]["markdown"]["content"].split("\n")
    assert lines[1] == "> 已超时"
    assert not any("ticket.breached" in line for line in lines)


def test_a_serious_outcome_email_waiting_for_its_retry_leaves_out_the_patients_name_once_the_reader_left_pv(
    users, smtp_server
):
    from pharmacrm.notify import tasks
    from pharmacrm.notify.models import Delivery

    pv = users["pv"]
    pv.email = "pv@pharma.example"
    pv.save()
    note = _serious_notice(users)
    delivery = Delivery.objects.get(notification=note)
    _leave_pv(pv)  # moved to the call centre while the mail waited (the SMTP server was down)

    assert tasks.deliver(delivery.pk) == Delivery.Status.SENT

    (got,) = smtp_server.messages
    assert got["to"] == ["pv@pharma.example"] and "张三丰" not in got["message"].get_content()


def test_a_quality_complaint_email_waiting_for_its_retry_leaves_out_its_text_once_the_qa_owner_left_pv(
    users, make_user, smtp_server
):
    """The bell and the API no longer show the text of a notification about a case its reader left (the docs say
    an e-mail still waiting leaves it out too); the e-mail went out with the customer's words all the same."""
    import datetime as dt

    from django.utils import timezone

    from pharmacrm.notify import tasks
    from pharmacrm.notify.models import Delivery
    from pharmacrm.safety import services as safety

    qa = make_user("qa1", Role.PV)
    qa.email = "qa1@pharma.example"
    qa.save()
    case = safety.create_case(users["pv"], {
        "kind": "quality", "received_at": timezone.now() - dt.timedelta(hours=2), "reporter_name": "李药师",
        "drugs": [{"role": "1", "brand_name": "阿莫灵", "batch": "B240301"}],
        "quality": {"batch": "B240301", "defect": "患者王建国的药盒里铝塑板漏装一粒"},
    })  # fmt: skip
    safety.update_quality(users["pv"], case, {"qa_owner": qa})
    note = Notification.objects.get(recipient=qa, kind="safety.qa-handoff")
    delivery = Delivery.objects.get(notification=note)
    _leave_pv(qa)  # moved to the call centre while the mail waited (the SMTP server was down)

    assert tasks.deliver(delivery.pk) == Delivery.Status.SENT

    (got,) = smtp_server.messages
    assert got["to"] == ["qa1@pharma.example"] and case.number in got["message"]["Subject"]
    assert "王建国" not in got["message"].get_content()
