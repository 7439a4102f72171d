"""Each user reads notifications and e-mails in their own language, whoever caused them and in whatever
language: the language menu keeps the choice on the account, the bell renders a stored notification's
template in the reader's language, and each recipient's e-mail is written in theirs."""

from __future__ import annotations

import datetime as dt
import html
from zoneinfo import ZoneInfo

from django.utils import translation
from django.utils.translation import gettext_lazy, ngettext_lazy, pgettext_lazy

from pharmacrm.core.deferred import Message, freeze, render_in, thaw
from pharmacrm.core.models import AuditEntry
from pharmacrm.notify import services, tasks
from pharmacrm.notify.models import Delivery, Notification
from pharmacrm.servicedesk import escalation
from pharmacrm.servicedesk import services as desk

SH = ZoneInfo("Asia/Shanghai")
TITLE = gettext_lazy("%(number)s escalated to level %(level)d")


def _ticket(users, xiehe):
    return desk.create_ticket(users["agent"], {
        "subject": "用药错误：剂量看错", "channel": "phone", "category": "medication_error", "institution": xiehe,
        "received_at": dt.datetime(2026, 3, 2, 9, tzinfo=SH), "assignee": users["agent"],
    })  # fmt: skip


# --- frozen texts ----------------------------------------------------------------------------------------


def test_a_frozen_message_renders_in_each_language_with_translated_and_literal_arguments():
    text = Message(TITLE, number="TK-2026-000001", level=2)
    spec = freeze(text)
    assert render_in("zh-hans", spec) == "TK-2026-000001 已升级至第 2 级"
    assert render_in("zh-hant", spec) == "TK-2026-000001 已升級至第 2 級"
    assert render_in("en", spec) == "TK-2026-000001 escalated to level 2"
    decided = Message(gettext_lazy("Key-account proposal %(number)s was %(decision)s"), number="KP-2026-0001",
                      decision=gettext_lazy("approved"))  # fmt: skip
    assert render_in("en", freeze(decided)) == "Key-account proposal KP-2026-0001 was approved"
    assert "批准" in render_in("zh-hans", freeze(decided)) and "KP-2026-0001" in render_in("zh-hant", freeze(decided))
    plural = ngettext_lazy("%(n)s improvement action from the customer evaluation of %(period)s",
                           "%(n)s improvement actions from the customer evaluation of %(period)s", 3)  # fmt: skip
    assert render_in("en", freeze(Message(plural, n=3, period="2026-H1"))) == (
        "3 improvement actions from the customer evaluation of 2026-H1"
    )
    context = pgettext_lazy("notification", "New")
    assert render_in("en", freeze(context)) == "New" and render_in("zh-hans", freeze(context)) == "新"


def test_a_list_argument_is_joined_with_each_readers_separator():
    """The PV hand-off notice's provisional years were joined with 、 when it was sent: an English reader read
    "the official holidays of 2027、2028 are not entered yet"."""
    spec = freeze(Message(gettext_lazy("Provisional: the official holidays of %(years)s are not entered yet, so this "
                                       "deadline counts their weekdays as working days and may move once they are."),
                          years=[2027, 2028]))  # fmt: skip
    assert "the official holidays of 2027, 2028 are not entered yet" in render_in("en", spec)
    assert "2027、2028" in render_in("zh-hans", spec) and "2027、2028" in render_in("zh-hant", spec)


def test_decimal_arguments_stay_numbers_and_a_text_that_cannot_be_formatted_still_reads(users):
    from decimal import Decimal

    services.send([users["agent"]], kind="test.decimal",
                  title=Message(TITLE, number="TK-2026-000011", level=Decimal("2")))  # fmt: skip
    note = Notification.objects.get(kind="test.decimal")
    with translation.override("en"):
        assert note.shown_title == "TK-2026-000011 escalated to level 2"
    score = Message(gettext_lazy("Due %(date)s"), date=Decimal("87.50"))
    assert render_in("en", freeze(score)) == "Due 87.50"
    broken = {"_": "f", "m": {"_": "g", "a": ["%(number)s escalated to level %(level)d"]}, "a": {"number": "TK-1"}}
    assert render_in("en", broken) == "%(number)s escalated to level %(level)d"  # shown as it is, no error


def test_literal_texts_stay_as_written_and_a_translation_that_does_not_fit_falls_back_to_the_source():
    assert freeze("客户写的主题 %(x)s") == "客户写的主题 %(x)s" and thaw("客户写的主题 %(x)s") == "客户写的主题 %(x)s"
    assert freeze(None) == "" and freeze(7) == 7 and thaw(7) == "7"
    moment = dt.datetime(2026, 3, 2, 3, 0, tzinfo=dt.UTC)
    assert render_in("en", freeze(moment)) == "2026-03-02 11:00"  # shown in local time


# --- the bell --------------------------------------------------------------------------------------------


def test_a_notification_caused_by_an_english_user_reads_in_each_recipients_language(
    users, xiehe, client_for, make_user
):
    ticket = _ticket(users, xiehe)
    users["manager"].language = "zh-hant"
    users["manager"].save()
    with translation.override("en"):  # the agent works in English
        escalation.escalate(users["agent"], ticket, reason="Needs the lead", hand_over=False)
    stored = Notification.objects.get(recipient=users["manager"], kind="ticket.escalated")
    assert "升级" in stored.title  # the column: the product's language, whoever acted

    page = client_for("manager").get("/notifications/").content.decode()
    assert f"將 {ticket.number} 升級給您" in page
    english = client_for("manager")
    english.cookies.load({"django_language": "en"})
    users["manager"].language = "en"
    users["manager"].save()
    page = english.get("/notifications/").content.decode()
    assert f"{ticket.number} escalated to you by" in page and "升" not in page

    api = client_for("manager").get("/api/v1/notifications/", HTTP_ACCEPT_LANGUAGE="zh-hant")
    (row,) = [r for r in api.json()["results"] if r["kind"] == "ticket.escalated"]
    assert f"將 {ticket.number} 升級給您" in row["title"] and row["body"] == "Needs the lead"


def test_each_recipients_email_is_written_in_their_language(users, smtp_server):
    agent, manager, expert = users["agent"], users["manager"], users["expert"]
    for user, language, address in ((agent, "en", "agent@pharma.example"), (manager, "zh-hant", "m@pharma.example"),
                                    (expert, "", "e@pharma.example")):  # fmt: skip
        user.language, user.email = language, address
        user.save()
    with translation.override("en"):
        services.send([agent, manager, expert], kind="ticket.escalated",
                      title=Message(TITLE, number="TK-2026-000009", level=2),
                      body=Message(gettext_lazy("Due %(date)s"), date="2026-03-05"), url="/service/")  # fmt: skip
    for d in Delivery.objects.order_by("id"):
        assert tasks.deliver(d.pk) == Delivery.Status.SENT
    got = {m["to"][0]: m["message"] for m in smtp_server.messages}
    assert got["agent@pharma.example"]["Subject"] == "[PharmaCRM] TK-2026-000009 escalated to level 2"
    assert "Due 2026-03-05" in got["agent@pharma.example"].get_content()
    assert "已升級至第 2 級" in got["m@pharma.example"]["Subject"]
    assert "已升级至第 2 级" in got["e@pharma.example"]["Subject"]  # no choice: the product's language
    assert "截止日期 2026-03-05" in got["e@pharma.example"].get_content()


def test_send_many_renders_each_recipient_once_per_language(users):
    agent, manager = users["agent"], users["manager"]
    agent.language, agent.email = "en", "agent@pharma.example"
    agent.save()
    manager.email = "m@pharma.example"
    manager.save()
    n = services.send_many([{"recipients": [agent, manager], "kind": "ticket.warning",
                             "title": Message(TITLE, number="TK-2026-000010", level=1)}])  # fmt: skip
    assert n == 2
    subjects = dict(Delivery.objects.values_list("email", "payload__subject"))
    assert subjects["agent@pharma.example"].endswith("escalated to level 1")
    assert subjects["m@pharma.example"].endswith("已升级至第 1 级")


# --- the language menu keeps the choice --------------------------------------------------------------------


def test_the_language_menu_keeps_the_choice_on_the_account_and_it_follows_the_user(users, client_for):
    c = client_for("agent")
    r = c.post("/i18n/setlang/", {"language": "en", "next": "/notifications/"})
    assert r.status_code == 302 and r["Location"] == "/notifications/"
    users["agent"].refresh_from_db()
    assert users["agent"].language == "en"
    entry = AuditEntry.objects.filter(object_type="core.user", object_id=str(users["agent"].pk)).latest("seq")
    assert entry.changes == {"language": ["", "en"]} and entry.actor_id == users["agent"].pk
    # an administrator's user page loaded before the change gets the conflict, not a silent revert
    stale = {"username": "agent", "display_name": users["agent"].display_name, "language": "", "roles": ["agent"],
             "is_active": "on", "version": users["agent"].version - 1}  # fmt: skip
    from django.urls import reverse

    assert client_for("admin").post(reverse("users-edit", args=[users["agent"].pk]), stale).status_code == 409
    users["agent"].refresh_from_db()
    assert users["agent"].language == "en"

    other_browser = client_for("agent")  # no language cookie: the account's choice applies
    page = other_browser.get("/notifications/")
    assert page.status_code == 200 and 'lang="en"' in page.content.decode()
    assert page.cookies["django_language"].value == "en"

    other_browser.post("/i18n/setlang/", {"language": "zh-hant", "next": "/"})
    users["agent"].refresh_from_db()
    assert users["agent"].language == "zh-hant"
    assert 'lang="zh-hant"' in client_for("agent").get("/notifications/").content.decode()
    # a language the product does not have changes nothing
    other_browser.post("/i18n/setlang/", {"language": "fr", "next": "/"})
    users["agent"].refresh_from_db()
    assert users["agent"].language == "zh-hant"


def test_a_choice_made_on_the_sign_in_page_becomes_the_accounts(users):
    from django.test import Client

    users["rep"].language = "zh-hant"
    users["rep"].save()
    c = Client()
    c.post("/i18n/setlang/", {"language": "en", "next": "/accounts/login/"})  # signed out: a cookie only
    users["rep"].refresh_from_db()
    assert users["rep"].language == "zh-hant"
    c.force_login(users["rep"])
    assert 'lang="en"' in c.get("/notifications/").content.decode()
    users["rep"].refresh_from_db()
    assert users["rep"].language == "en"  # picked just now, by this person: it wins over the saved one


def test_a_language_cookie_left_by_another_user_of_the_browser_is_not_taken_as_a_choice(users):
    from django.test import Client

    users["agent"].language = "en"
    users["agent"].save()
    c = Client()
    c.force_login(users["agent"])
    assert c.get("/notifications/").cookies["django_language"].value == "en"
    c.post("/accounts/logout/")
    c.force_login(users["kam"])  # never chose a language
    c.get("/notifications/")
    users["kam"].refresh_from_db()
    assert users["kam"].language == ""
    assert not AuditEntry.objects.filter(object_type="core.user", object_id=str(users["kam"].pk), action="update").exists()


def test_the_language_is_kept_on_the_account_only_past_the_second_factor(users):
    from django.test import Client

    from tests.conftest import otp_verify

    admin = users["admin"]
    c = Client()
    c.force_login(admin)  # the password only
    c.post("/i18n/setlang/", {"language": "en", "next": "/"})
    admin.refresh_from_db()
    assert admin.language == ""  # nothing stored on a password alone
    assert c.get("/").status_code == 302  # the second-factor page
    admin.refresh_from_db()
    assert admin.language == ""
    otp_verify(c, admin)
    c.get("/")
    admin.refresh_from_db()
    assert admin.language == "en"  # the choice made before, kept once the second factor is passed


def test_without_a_choice_pages_follow_the_browser_and_the_api_follows_accept_language(users, client_for):
    users["analyst"].language = "zh-hant"
    users["analyst"].save()
    c = client_for("analyst")
    r = c.get("/api/v1/notifications/unread-count/", HTTP_ACCEPT_LANGUAGE="en")
    assert r.status_code == 200 and r["Content-Language"] == "en"
    assert "django_language" not in r.cookies  # the API leaves the cookie alone
    page = client_for("auditor").get("/notifications/", HTTP_ACCEPT_LANGUAGE="en")
    assert 'lang="en"' in page.content.decode()
    users["auditor"].refresh_from_db()
    assert users["auditor"].language == ""  # a browser's header is not a choice


def test_the_account_language_costs_a_page_no_query(users, client_for):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries(client) -> int:
        client.get("/notifications/")  # warm: sessions, second factor, the first adoption of a cookie
        with CaptureQueriesContext(connection) as done:
            client.get("/notifications/")
        return len(done.captured_queries)

    plain = queries(client_for("agent"))
    users["rep"].language = "zh-hant"
    users["rep"].save()
    chosen = client_for("rep")
    assert queries(chosen) == plain
    adopted = client_for("expert")
    adopted.cookies.load({"django_language": "en"})
    assert queries(adopted) == plain  # recorded once, on the first page


# --- an administrator sets it (a user who reads only e-mails) ----------------------------------------------


def test_an_administrator_sets_a_users_language_on_the_user_page_and_through_the_api(
    users, client_for, api_for, smtp_server
):
    from django.urls import reverse

    rep = users["rep"]
    rep.email = "rep@pharma.example"
    rep.save()
    admin = client_for("admin")
    page = admin.get(reverse("users-edit", args=[rep.pk]), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    # an apostrophe is escaped as &#x27; by Django, &#39; by the form renderer's Jinja2: the same text to a browser
    assert 'name="language"' in page and "The product's default (简体中文)" in html.unescape(page)
    data = {"username": "rep", "display_name": rep.display_name, "email": rep.email, "language": "en",
            "roles": ["rep"], "is_active": "on", "teams": [t.pk for t in rep.teams.all()], "version": rep.version}  # fmt: skip
    assert admin.post(reverse("users-edit", args=[rep.pk]), data).status_code == 302
    rep.refresh_from_db()
    assert rep.language == "en"
    entry = AuditEntry.objects.filter(object_type="core.user", object_id=str(rep.pk)).latest("seq")
    assert entry.changes["language"] == ["", "en"] and entry.actor == users["admin"]
    services.send([rep], kind="ticket.escalated", title=Message(TITLE, number="TK-2026-000012", level=3))
    assert tasks.deliver(Delivery.objects.get().pk) == Delivery.Status.SENT
    assert smtp_server.messages[0]["message"]["Subject"] == "[PharmaCRM] TK-2026-000012 escalated to level 3"

    api = api_for("admin")
    url = f"/api/v1/users/{rep.pk}/"
    got = api.get(url).json()
    assert got["language"] == "en"
    assert api.patch(url, {"language": "zh-hant", "version": got["version"]}, format="json").status_code == 200
    rep.refresh_from_db()
    assert rep.language == "zh-hant"
    bad = api.patch(url, {"language": "fr", "version": rep.version}, format="json")
    assert bad.status_code == 400 and "language" in bad.json()
    assert api.patch(url, {"language": "", "version": rep.version}, format="json").status_code == 200
    rep.refresh_from_db()
    assert rep.language == ""
