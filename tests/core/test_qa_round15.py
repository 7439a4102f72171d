"""Defects from the fifteenth session's QA round that cut across the apps: no Django admin (it showed every
user's TOTP secret and changed second factors and roles outside the audit trail), and the nightly jobs run at
the hour the documentation gives in China time, not eight hours later (Huey reads a plain crontab in UTC)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from pharmacrm.core import tasks as core_tasks
from pharmacrm.keyaccounts import tasks as ka_tasks
from pharmacrm.sales import tasks as sales_tasks

SH = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize("url", ["/django-admin/", "/django-admin/otp_totp/totpdevice/", "/admin/"])
def test_there_is_no_django_admin_even_for_the_administrator(client_for, url):
    assert client_for("admin").get(url).status_code == 404


@pytest.mark.parametrize(("task", "hour", "minute"), [
    (sales_tasks.refresh_overdue, 1, 10),
    (ka_tasks.scheduled_account_reviews, 3, 10),
    (ka_tasks.scheduled_evaluations, 3, 30),
    (core_tasks.daily_backup, 2, 30),
])  # fmt: skip
def test_nightly_jobs_run_at_their_hour_in_china(task, hour, minute):
    validate = task.task_class().validate_datetime
    local = dt.datetime(2026, 12, 2, hour, minute, tzinfo=SH)
    as_huey_sees_it = local.astimezone(dt.UTC).replace(tzinfo=None)  # Huey hands tasks naive UTC
    assert validate(as_huey_sees_it)
    assert not validate(local.replace(tzinfo=None))  # the same digits in UTC are eight hours later


def test_each_worker_task_audits_under_its_own_request_id(db, huey_immediate):
    """The worker's threads ran one task after another under one audit context: the auditor found tier changes
    of three evaluation runs and a safety-clock update sharing a request id."""
    from huey.contrib.djhuey import db_task

    from pharmacrm.core import audit
    from pharmacrm.core.models import AuditEntry

    @db_task()
    def audited(n):
        audit.record(AuditEntry.Action.UPDATE, ("core.test", str(n), f"任务 {n}"), note="task")

    audit.current()  # what a worker thread had after its first task: an implicit context
    first, second = audited(1), audited(2)
    ids = list(AuditEntry.objects.filter(object_type="core.test").order_by("seq").values_list("request_id", flat=True))
    assert ids == [first.id.replace("-", ""), second.id.replace("-", "")]
    # a request or command that runs a task at once keeps its own id
    token = audit.set_context(audit.RequestContext(request_id="r" * 32))
    try:
        audited(3)
    finally:
        audit.reset_context(token)
    assert AuditEntry.objects.filter(object_type="core.test").order_by("seq").last().request_id == "r" * 32


def test_lists_in_running_text_follow_the_language():
    from django.utils import translation

    from pharmacrm.core.wording import listing

    with translation.override("en"):
        assert listing(["Technical support", "Training"]) == "Technical support, Training"
    with translation.override("zh-hant"):
        assert listing(["技術支持", "培訓"]) == "技術支持、培訓"


def test_the_auditor_reads_each_users_territory_on_the_users_list(client_for, users, beijing):
    """users.view is "roles, teams and territory": the auditor's list showed no territory (the user pages,
    where it is, are for administrators who change users)."""
    from pharmacrm.core.models import Region

    users["rep"].territory.add(Region.objects.get(code="110000"))
    page = client_for("auditor").get("/accounts/users/").content.decode()
    assert "负责区域" in page and "北京市" in page
    assert client_for("auditor").get(f"/accounts/users/{users['rep'].pk}/").status_code == 403


def test_a_form_with_megabytes_of_text_gets_the_products_own_page(client_for, settings):
    """A 3-million-character description got Django's bare English "Bad Request (400)"."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
    agent = client_for("agent")
    response = agent.post("/service/new/", {"subject": "长文本", "description": "药" * 400_000})
    page = response.content.decode()
    assert response.status_code == 400
    assert "1 MB" in page and "附件" in page and '<html lang="zh-hans"' in page


def test_the_audit_viewer_filters_tickets_and_a_wrong_filter_shows_nothing(client_for, users, xiehe):
    """The object-type list held five customer kinds (a ticket could not be chosen), and an impossible date
    range dropped every filter and listed everyone's entries as if they were the result."""
    from pharmacrm.servicedesk import services as desk

    ticket = desk.create_ticket(users["agent"], {"subject": "咨询", "channel": "phone", "category": "drug_info",
                                                 "institution": xiehe})  # fmt: skip
    auditor = client_for("auditor")
    page = auditor.get("/accounts/audit/", {"object_type": "servicedesk.ticket"})
    assert page.status_code == 200 and page.context["form"].is_valid()
    assert ticket.number in page.content.decode() and "北京协和医院" not in page.content.decode()
    wrong = auditor.get("/accounts/audit/", {"actor": "agent", "date_from": "2026-12-03", "date_to": "2026-12-01"})
    assert wrong.context["entries"] == [] or not wrong.context["entries"]
