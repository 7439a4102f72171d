"""Scheduled reports (/reports/, /api/v1/report-subscriptions/, the worker's send_due_reports): a report mailed to
the subscriber's own address after each period, as the page's export counts it for them at that moment — through a
real SMTP server into a real IMAP mailbox."""

from __future__ import annotations

import datetime as dt
import io
import socket
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from openpyxl import load_workbook

from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Role
from pharmacrm.reports import kinds, services
from pharmacrm.reports.models import ReportSubscription
from tests.mailservers import imap_server, mail_settings, smtp_server  # noqa: F401
from tests.servicedesk import test_performance as perf

BJ = ZoneInfo("Asia/Shanghai")
INBOX = "other@hospital.test"  # one of the test mail server's mailboxes
desk, november = perf.desk, perf.november  # November 2026's tickets of the performance tests


def bj(y, m, d, h=0, mi=0) -> dt.datetime:
    return dt.datetime(y, m, d, h, mi, tzinfo=BJ)


@pytest.fixture(autouse=True)
def _english():
    from django.utils import translation

    with translation.override("en"):  # the services' messages, read in English here
        yield


@pytest.fixture
def inbox(db, mail_settings, imap_server):  # noqa: F811
    imap_server.empty(INBOX)
    return imap_server


@pytest.fixture
def manager(users):
    user = users["manager"]
    user.email = INBOX
    user.save()
    return user


def workbook_rows(part) -> list[list]:
    return [list(r) for r in load_workbook(io.BytesIO(part.get_content())).active.iter_rows(values_only=True)]


# --- when ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("frequency", "after", "expected"), [
    ("month", bj(2026, 12, 5, 10), bj(2027, 1, 1, 8)),
    ("month", bj(2027, 1, 1, 7, 59), bj(2027, 1, 1, 8)),
    ("month", bj(2027, 1, 1, 8), bj(2027, 2, 1, 8)),  # at 08:00 itself the run is due: the next is a month on
    ("quarter", bj(2026, 12, 5, 10), bj(2027, 1, 1, 8)),
    ("quarter", bj(2026, 4, 1, 9), bj(2026, 7, 1, 8)),
    ("year", bj(2026, 12, 5, 10), bj(2027, 1, 1, 8)),
])  # fmt: skip
def test_the_next_mail_is_at_eight_beijing_on_the_first_day_of_the_next_period(frequency, after, expected):
    assert services.next_run(frequency, after) == expected


def test_the_period_mailed_is_the_whole_one_before_in_beijing_days():
    at = bj(2027, 1, 1, 8)  # 2027-01-01 00:00 UTC is still 2026 in UTC's count: Beijing's is what counts
    assert [services.period_before(f, at).key for f in ("month", "quarter", "year")] == ["2026-12", "2026-Q4", "2026"]


# --- sending ---------------------------------------------------------------------------------------------------


def test_the_report_is_mailed_once_with_the_pages_figures(users, manager, november, inbox):
    manager.language = "en"  # the account's language, whatever the worker's
    manager.save()
    sub = services.subscribe(manager, {"report": "service_performance"}, now=bj(2026, 11, 20))
    assert sub.next_run_at == bj(2026, 12, 1, 8)
    assert services.send_due(bj(2026, 12, 1, 7, 59)) == 0  # not yet
    assert services.send_due(bj(2026, 12, 1, 8, 5)) == 1
    [message] = inbox.messages(INBOX)
    assert message["Subject"] == "Service performance 2026-11 (scheduled report)"
    assert message["Auto-Submitted"] == "auto-generated"
    [attachment] = [p for p in message.iter_attachments()]
    assert attachment.get_filename().startswith("Service-performance-2026-11-")
    rows = workbook_rows(attachment)
    total = next(r for r in rows if r[0] == "Total")
    assert total[1] == 6  # the six tickets received in November (Beijing), as on the page
    # once: the sweep again, the same day, mails nothing more; the next is January's
    assert services.send_due(bj(2026, 12, 1, 9)) == 0
    assert len(inbox.messages(INBOX)) == 1
    sub.refresh_from_db()
    assert (sub.last_period, sub.next_run_at, sub.last_error) == ("2026-11", bj(2027, 1, 1, 8), "")
    entry = AuditEntry.objects.filter(action=AuditEntry.Action.EXPORT, actor=manager).latest("seq")
    assert (entry.extra["report"], entry.extra["period"], entry.extra["channel"]) == ("service_performance", "2026-11", "mail")
    assert INBOX not in str(entry.extra)  # the address masked in the trail


def test_a_chinese_account_gets_it_in_chinese(users, manager, november, inbox):
    services.subscribe(manager, {"report": "service_performance"}, now=bj(2026, 11, 20))
    services.send_due(bj(2026, 12, 1, 8, 5))
    [message] = inbox.messages(INBOX)
    assert message["Subject"] == "服务绩效 2026-11（定期报表）"


def test_a_worker_killed_mid_send_does_not_mail_twice(users, manager, november, inbox):
    sub = services.subscribe(manager, {"report": "service_performance"}, now=bj(2026, 11, 20))
    at = bj(2026, 12, 1, 8, 5)
    assert services.claim(sub.pk, at) is not None  # taken and committed; the worker dies before it mails
    assert services.send_due(at + dt.timedelta(minutes=15)) == 0  # being sent: not taken again
    services.send_due(at + services.STALE + dt.timedelta(minutes=1))
    sub.refresh_from_db()
    assert sub.sending_since is None and sub.next_run_at == bj(2027, 1, 1, 8)
    assert "may have arrived" in sub.last_error
    assert inbox.messages(INBOX) == []  # never sent twice: here, never sent at all


def test_a_mail_server_down_is_tried_again_then_given_up_for_the_period(users, manager, november, inbox, settings):
    sub = services.subscribe(manager, {"report": "service_performance"}, now=bj(2026, 11, 20))
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        settings.EMAIL_PORT = s.getsockname()[1]
    at = bj(2026, 12, 1, 8, 5)
    for attempt in range(1, services.MAX_ATTEMPTS + 1):
        assert services.send_due(at + attempt * dt.timedelta(minutes=15)) == 0
        sub.refresh_from_db()
        assert "ConnectionRefusedError" in sub.last_error
        assert sub.next_run_at == (bj(2026, 12, 1, 8) if attempt < services.MAX_ATTEMPTS else bj(2027, 1, 1, 8))
    assert not AuditEntry.objects.filter(action=AuditEntry.Action.EXPORT, actor=manager).exists()


def test_who_may_no_longer_see_it_is_not_mailed_and_the_subscription_says_why(users, desk, november, inbox):
    lead = desk["lead"]
    lead.email = INBOX
    lead.save()
    sub = services.subscribe(lead, {"report": "complaint_analysis", "team": desk["one"]}, now=bj(2026, 11, 20))
    desk["one"].lead = None  # no longer the team's lead
    desk["one"].save()
    assert services.send_due(bj(2026, 12, 1, 8, 5)) == 0
    sub.refresh_from_db()
    assert not sub.active and "no longer see" in sub.last_error
    assert inbox.messages(INBOX) == []


def test_a_deactivated_account_is_not_mailed(users, manager, november, inbox):
    sub = services.subscribe(manager, {"report": "sales_attainment"}, now=bj(2026, 11, 20))
    manager.is_active = False
    manager.save()
    services.send_due(bj(2026, 12, 1, 8, 5))
    sub.refresh_from_db()
    assert not sub.active and "deactivated" in sub.last_error
    assert inbox.messages(INBOX) == []


# --- subscribing -----------------------------------------------------------------------------------------------


def test_the_same_subscription_twice_is_refused(users, manager):
    services.subscribe(manager, {"report": "sales_attainment"})
    with pytest.raises(ValidationError) as e:
        services.subscribe(manager, {"report": "sales_attainment"})
    assert "already" in " ".join(e.value.message_dict["report"])
    assert ReportSubscription.objects.filter(user=manager).count() == 1
    services.subscribe(manager, {"report": "sales_attainment", "frequency": "quarter"})  # another frequency: fine


@pytest.mark.parametrize(("data", "field"), [
    ({"report": "salary"}, "report"), ({"report": "sales_attainment", "frequency": "weekly"}, "frequency"),
    ({"report": "sales_attainment", "team": "the team"}, "team"),  # attainment is not made per team
])  # fmt: skip
def test_bad_input_names_the_field(users, manager, team_north, data, field):
    if data.get("team"):
        data["team"] = team_north
    with pytest.raises(ValidationError) as e:
        services.subscribe(manager, data)
    assert field in e.value.message_dict
    assert not ReportSubscription.objects.exists()


def test_an_account_without_an_address_cannot_subscribe(users):
    with pytest.raises(ValidationError) as e:
        services.subscribe(users["analyst"], {"report": "complaint_analysis"})
    assert "no e-mail address" in " ".join(e.value.message_dict["report"])


def test_a_team_outside_the_users_scope_is_refused(users, desk):
    lead = desk["lead"]
    lead.email = INBOX
    lead.save()
    with pytest.raises(ValidationError) as e:
        services.subscribe(lead, {"report": "service_performance", "team": desk["two"]})
    assert "team" in e.value.message_dict


@pytest.mark.parametrize("role", [r.value for r in Role])
def test_each_role_is_offered_the_reports_whose_page_it_may_open(client_for, users, role):
    user = users[role]
    offered = {k.report for k in kinds.offered(user)}
    client = client_for(role)
    for kind in kinds.KINDS.values():
        status = client.get(reverse(kind.page)).status_code
        assert (status == 200) == (kind.report in offered), (role, kind.report, status)
    page = client.get(reverse("reports:subscriptions"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    if role == Role.AUDITOR:  # reads every report, schedules none (test_the_auditor_schedules_no_report)
        assert "Your role only reads" in page and 'name="report"' not in page
        return
    for kind in kinds.KINDS.values():
        assert (f'value="{kind.report}"' in page) == (kind.report in offered)
    # a report the role may not see is refused by name when posted anyway
    hidden = [k for k in kinds.KINDS if k not in offered]
    if hidden:
        user.email = INBOX
        user.save()
        with pytest.raises(ValidationError) as e:
            services.subscribe(user, {"report": hidden[0]})
        assert "may not see this report" in " ".join(e.value.message_dict["report"])


# --- the page and the API ----------------------------------------------------------------------------------------


def test_the_page_subscribes_pauses_resumes_and_stops(client_for, users, manager):
    client = client_for("manager")
    url = reverse("reports:subscriptions")
    response = client.post(url, {"report": "sales_attainment", "frequency": "quarter"}, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 302
    sub = ReportSubscription.objects.get(user=manager)
    again = client.post(url, {"report": "sales_attainment", "frequency": "quarter"}, HTTP_ACCEPT_LANGUAGE="en")
    assert again.status_code == 400 and "already" in again.content.decode()
    act = reverse("reports:subscription", args=[sub.pk])
    client.post(act, {"action": "pause", "version": sub.version})
    sub.refresh_from_db()
    assert not sub.active
    stale = client.post(act, {"action": "resume", "version": 1}, follow=True, HTTP_ACCEPT_LANGUAGE="en")
    assert "Someone else changed" in stale.content.decode()
    client.post(act, {"action": "resume", "version": sub.version})
    sub.refresh_from_db()
    assert sub.active
    client.post(act, {"action": "delete", "version": sub.version})
    assert not ReportSubscription.objects.filter(pk=sub.pk).exists()
    actions = list(AuditEntry.objects.filter(object_type="reports.reportsubscription").order_by("seq").values_list("action", flat=True))
    assert actions == ["create", "update", "update", "delete"]


def test_each_button_clicked_twice_acts_once_and_says_what_was_done(client_for, users, manager):
    """A double click answered the second time with an error: "Mail me a report" that the subscription exists
    already, "Pause" or "Resume" that someone else changed it (the first click had moved its version), "Stop" a
    missing page. Each now does nothing more and says what was done; a form without its version is stale."""
    import re

    client = client_for("manager")
    url = reverse("reports:subscriptions")
    token = re.search(r'name="form_token" value="([A-Za-z0-9_-]+)"', client.get(url).content.decode()).group(1)
    form = {"report": "sales_attainment", "frequency": "quarter", "form_token": token}
    assert client.post(url, form).status_code == 302
    again = client.post(url, form, follow=True, HTTP_ACCEPT_LANGUAGE="en")
    assert again.status_code == 200 and "This form was already sent" in again.content.decode()
    sub = ReportSubscription.objects.get(user=manager)  # one
    act = reverse("reports:subscription", args=[sub.pk])

    stale = client.post(act, {"action": "pause"}, follow=True, HTTP_ACCEPT_LANGUAGE="en")  # no version: stale
    assert "Someone else changed" in stale.content.decode() and ReportSubscription.objects.get(pk=sub.pk).active
    loaded = {"action": "pause", "version": sub.version}
    client.post(act, loaded)
    twice = client.post(act, loaded, follow=True, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Paused: nothing is mailed until you resume it." in twice and "Someone else changed" not in twice
    sub.refresh_from_db()
    stop = {"action": "delete", "version": sub.version}
    client.post(act, stop)
    stopped = client.post(act, stop, follow=True, HTTP_ACCEPT_LANGUAGE="en")
    assert stopped.status_code == 200 and "this report is no longer mailed to you" in stopped.content.decode()
    assert AuditEntry.objects.filter(object_type="reports.reportsubscription", action="create").count() == 1


def test_the_auditor_schedules_no_report(client_for, users, django_capture_on_commit_callbacks):
    """The auditor changes nothing: adding, changing or mailing a scheduled report is refused before the form or the
    body is read (403, audited as every refused write); stopping one kept from before stops mails to itself."""
    from rest_framework.test import APIClient

    from tests.api.conftest import token_for

    auditor = users["auditor"]
    auditor.email = INBOX
    auditor.save()
    client = client_for("auditor")
    url = reverse("reports:subscriptions")
    assert client.post(url, {"report": "sales_attainment", "frequency": "quarter"}).status_code == 403
    assert client.post(url, {}).status_code == 403  # refused before the form's errors: not a 400
    with pytest.raises(PermissionDenied):
        services.subscribe(auditor, {"report": "sales_attainment"})
    kept = ReportSubscription.objects.create(user=auditor, report="sales_attainment", frequency="month",
                                             next_run_at=bj(2027, 1, 1, 8))  # fmt: skip
    act = reverse("reports:subscription", args=[kept.pk])
    for action in ("pause", "now"):
        assert client.post(act, {"action": action, "version": kept.version}).status_code == 403
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(auditor)}", HTTP_ACCEPT_LANGUAGE="en")
    refused = api.post("/api/v1/report-subscriptions/", {"report": "sales_attainment"}, format="json")
    assert refused.status_code == 403 and "only reads" in refused.json()["detail"]
    assert api.post("/api/v1/report-subscriptions/", {"frequency": "weekly"}, format="json").status_code == 403
    assert api.patch(f"/api/v1/report-subscriptions/{kept.pk}/", {"active": False}, format="json").status_code == 403
    assert api.post(f"/api/v1/report-subscriptions/{kept.pk}/send-now/").status_code == 403
    kept.refresh_from_db()
    assert kept.active and kept.version == 1 and ReportSubscription.objects.filter(user=auditor).count() == 1
    denied = AuditEntry.objects.filter(action="access_denied", actor=auditor)
    assert denied.count() == 8 and not AuditEntry.objects.filter(object_type="reports.reportsubscription").exists()
    page = client.get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'value="delete"' in page and 'value="pause"' not in page and 'value="now"' not in page
    client.post(act, {"action": "delete", "version": kept.version})
    assert not ReportSubscription.objects.filter(pk=kept.pk).exists()


def test_another_users_subscription_is_not_found(client_for, users, manager):
    sub = services.subscribe(manager, {"report": "sales_attainment"})
    analyst = users["analyst"]
    assert client_for("analyst").post(reverse("reports:subscription", args=[sub.pk]), {"action": "delete"}).status_code == 404
    from rest_framework.test import APIClient

    from tests.api.conftest import token_for

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(analyst)}")
    assert api.get("/api/v1/report-subscriptions/").json()["count"] == 0
    assert api.delete(f"/api/v1/report-subscriptions/{sub.pk}/").status_code == 404
    assert ReportSubscription.objects.filter(pk=sub.pk).exists()


def test_the_api_lists_creates_changes_and_stops_ones_own(users, manager):
    from rest_framework.test import APIClient

    from tests.api.conftest import token_for

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(manager)}", HTTP_ACCEPT_LANGUAGE="en")
    made = api.post("/api/v1/report-subscriptions/", {"report": "complaint_analysis", "frequency": "quarter"}, format="json")
    assert made.status_code == 201, made.content
    pk = made.json()["id"]
    bad = api.post("/api/v1/report-subscriptions/", {"report": "complaint_analysis", "frequency": "weekly"}, format="json")
    assert bad.status_code == 400 and "frequency" in bad.json()
    conflict = api.patch(f"/api/v1/report-subscriptions/{pk}/", {"active": False}, format="json", HTTP_IF_MATCH="7")
    assert conflict.status_code == 409
    paused = api.patch(f"/api/v1/report-subscriptions/{pk}/", {"active": False}, format="json", HTTP_IF_MATCH="1")
    assert paused.status_code == 200 and paused.json()["active"] is False
    assert api.get("/api/v1/report-subscriptions/").json()["count"] == 1
    assert api.delete(f"/api/v1/report-subscriptions/{pk}/").status_code == 204


@pytest.mark.parametrize(("lang", "title"), [("zh-hans", "定期报表"), ("en", "Scheduled reports"), ("zh-hant", "定期報表")])
def test_the_page_in_three_languages(client_for, users, manager, lang, title):
    services.subscribe(manager, {"report": "service_performance"})
    html = client_for("manager").get(reverse("reports:subscriptions"), HTTP_ACCEPT_LANGUAGE=lang).content.decode()
    assert title in html and 'data-report="service_performance"' in html


def test_mail_the_last_period_now(users, manager, november, inbox, huey_immediate, django_capture_on_commit_callbacks):
    sub = services.subscribe(manager, {"report": "service_performance"})
    with django_capture_on_commit_callbacks(execute=True):
        services.send_now(manager, sub)
    [message] = inbox.messages(INBOX)
    assert message["Subject"].endswith("（定期报表）")  # the account's language: the default, Chinese
    sub.refresh_from_db()
    assert sub.next_run_at > dt.datetime.now(tz=BJ) and sub.last_sent_at is not None


def test_a_workbook_that_cannot_be_made_is_tried_again_not_taken_for_sent(users, manager, november, inbox, monkeypatch):
    import dataclasses

    sub = services.subscribe(manager, {"report": "sales_attainment"}, now=bj(2026, 11, 20))

    def broken(user, period, team):
        raise RuntimeError("the rollups are being rebuilt")

    kind = kinds.KINDS["sales_attainment"]
    monkeypatch.setitem(kinds.KINDS, "sales_attainment", dataclasses.replace(kind, build=broken))
    assert services.send_due(bj(2026, 12, 1, 8, 5)) == 0
    sub.refresh_from_db()
    assert sub.sending_since is None and "RuntimeError" in sub.last_error
    assert sub.next_run_at == bj(2026, 12, 1, 8) and sub.active  # due still: the next sweep tries again
    monkeypatch.setitem(kinds.KINDS, "sales_attainment", kind)  # the rollups are back
    assert services.send_due(bj(2026, 12, 1, 8, 20)) == 1
    assert len(inbox.messages(INBOX)) == 1


@pytest.mark.parametrize(("lang", "dosing"), [("zh-hans", "给药频次"), ("zh-hant", "給藥頻次")])
def test_how_often_a_report_is_mailed_is_not_called_a_doses_frequency(client_for, users, manager, lang, dosing):
    """The page's column and the form's field read 给药频次 — the safety forms' word for how often a drug is given —
    as the plain msgid "Frequency" is translated there; so did the subscription's field in the audit trail."""
    services.subscribe(manager, {"report": "sales_attainment", "frequency": "quarter"})
    page = client_for("manager").get(reverse("reports:subscriptions"), HTTP_ACCEPT_LANGUAGE=lang).content.decode()
    assert dosing not in page
    from django.utils import translation

    with translation.override(lang):
        assert dosing not in str(ReportSubscription._meta.get_field("frequency").verbose_name)


def test_the_key_account_progress_report_is_titled_by_the_day_it_is_as_of_not_by_the_period(
    client_for, users, manager, inbox
):
    """QA: "Mail the last period now" mailed the key-account progress report titled 2026-Q3, but its workbook was as
    of the day it was sent (it lists the accounts and their plans as they stand, an account listed in Q4 too): it
    cannot be counted as of a past day, so its subject, file name and text say the day it is as of."""
    from pharmacrm.reports.services import _today

    manager.language = "en"
    manager.save()
    sub = services.subscribe(manager, {"report": "keyaccount_progress", "frequency": "quarter"}, now=bj(2026, 9, 20))
    assert services.send_due(bj(2026, 10, 1, 8, 5)) == 1  # after 2026-Q3
    [message] = inbox.messages(INBOX)
    today = _today().isoformat()
    assert message["Subject"] == f"Key-account progress report as of {today} (scheduled report)"
    assert "Q3" not in message["Subject"]
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == f"Key-account-progress-report-{today.replace('-', '')}.xlsx"
    body = message.get_body(preferencelist=("plain",)).get_content()
    assert f"as of {today}" in body and "not as of the end of 2026-Q3" in body
    entry = AuditEntry.objects.filter(action=AuditEntry.Action.EXPORT, actor=manager).latest("seq")
    assert (entry.extra["period"], entry.extra["as_of"]) == ("2026-Q3", today)
    # the page: no period beside the last mail, and the button says what it mails
    html = client_for("manager").get(reverse("reports:subscriptions"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Mail it now, as of today" in html and "2026-Q3" not in html
    sub.refresh_from_db()
    assert sub.last_sent_at is not None
