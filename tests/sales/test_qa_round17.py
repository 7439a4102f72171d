"""Session 17 review (issue 5): a prepayment (款到发货) — paid before the order date — is imported and counts as
paid on time; a payment dated more than a year before its order is still named as a likely typo."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from pharmacrm.sales import services
from pharmacrm.sales.models import OrderLine

from .conftest import line


def test_a_prepayment_is_imported_and_counts_as_paid_on_time(run_import, xiehe):
    order_day = timezone.localdate() - dt.timedelta(days=40)
    prepaid = order_day - dt.timedelta(days=3)
    job = run_import([
        line("SO-P1", 1, order_day, xiehe, "P1", 10, "100", payment_due=order_day, paid_date=prepaid),
        line("SO-P2", 1, order_day, xiehe, "P1", 10, "100", paid_date=order_day - dt.timedelta(days=400)),
    ])  # fmt: skip

    assert job.created_count == 1 and job.error_count == 1
    [error] = job.errors
    assert (error["row"], error["column"], error["code"]) == (3, "付款日期", "paid_long_before")
    assert OrderLine.objects.get(order_number="SO-P1").paid_date == prepaid
    credit = services.credit(xiehe.pk)
    assert credit.on_time_share == Decimal(1) and credit.outstanding == Decimal("0.00")


def test_a_line_the_erp_no_longer_has_is_removed_with_a_reason_and_the_figures_follow(run_import, xiehe, client_for):
    from django.urls import reverse

    from pharmacrm.core.models import AuditEntry
    from pharmacrm.sales.models import MonthlyRollup

    day = timezone.localdate() - dt.timedelta(days=20)
    job = run_import([line("SO-R1", 1, day, xiehe, "P1", 10, "100"), line("SO-R1", 2, day, xiehe, "P2", 5, "40")])
    assert job.created_count == 2
    wrong = OrderLine.objects.get(order_number="SO-R1", line_number=2)
    url = reverse("sales:order-line-remove", args=[wrong.pk])

    # no reason: refused and said
    r = client_for("manager").post(url, {"reason": "", "next": "/sales/orders/"}, follow=True, HTTP_ACCEPT_LANGUAGE="en")
    assert "Say why the line is removed" in r.content.decode() and OrderLine.objects.filter(pk=wrong.pk).exists()
    # those who may not import neither see the control nor may post
    page = client_for("kam").get(reverse("sales:orders"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "SO-R1" in page and "Remove line" not in page
    assert client_for("kam").post(url, {"reason": "ERP 已删除"}).status_code == 403

    r = client_for("manager").post(url, {"reason": "ERP 中该行已删除", "next": "/sales/orders/"}, follow=True,
                                   HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip

    assert "Line SO-R1/2 was removed" in r.content.decode()
    assert not OrderLine.objects.filter(pk=wrong.pk).exists()
    rollup = MonthlyRollup.objects.get(institution=xiehe, month=day.replace(day=1))
    assert (rollup.amount_fen, rollup.lines) == (100_000, 1)  # ¥1,000.00 left of ¥1,200.00
    entry = AuditEntry.objects.get(action="delete", object_type="sales.orderline", object_id=str(wrong.pk))
    assert entry.extra["reason"] == "ERP 中该行已删除" and entry.changes["amount"] == ["200.00", None]
    assert entry.actor.username == "manager"


def test_a_removed_lines_audit_entry_keeps_its_batch_and_product_name(run_import, xiehe, api_for):
    """The removal's entry is what stays of the line: it listed the product code but not the batch (which a recall
    traces) nor the product name, which a corrected line's entry lists."""
    from pharmacrm.core.models import AuditEntry

    day = timezone.localdate() - dt.timedelta(days=20)
    run_import([line("SO-R4", 1, day, xiehe, "YP1001", 10, "100", batch_number="25A001", product_name="安心宁 5mg")])
    pk = OrderLine.objects.get(order_number="SO-R4").pk

    removed = api_for("manager").post(f"/api/v1/order-lines/{pk}/remove/", {"reason": "ERP 已删除"}, format="json")

    assert removed.status_code == 204
    entry = AuditEntry.objects.get(action="delete", object_type="sales.orderline", object_id=str(pk))
    assert entry.changes["batch_number"] == ["25A001", None]
    assert entry.changes["product_name"] == ["安心宁 5mg", None]


def test_the_removal_sent_twice_says_the_line_is_removed_already(run_import, xiehe, client_for):
    """A double click on Remove (or the page sent again) posts the form twice: the second answer was a 404 error page,
    "No such order line", instead of the list saying the line is gone."""
    from django.urls import reverse

    day = timezone.localdate() - dt.timedelta(days=20)
    run_import([line("SO-R5", 1, day, xiehe, "P1", 10, "100"), line("SO-R5", 2, day, xiehe, "P1", 1, "100")])
    pk = OrderLine.objects.get(order_number="SO-R5", line_number=2).pk
    url, form = reverse("sales:order-line-remove", args=[pk]), {"reason": "ERP 中该行已删除", "next": "/sales/orders/"}
    client = client_for("manager")
    assert client.post(url, form).status_code == 302

    again = client.post(url, form, follow=True, HTTP_ACCEPT_LANGUAGE="en")

    assert again.status_code == 200 and again.redirect_chain[0][0] == "/sales/orders/"
    assert "This line has been removed already." in again.content.decode()
    assert client.post(reverse("sales:order-line-remove", args=[pk + 1000]), form).status_code == 404


def test_the_api_removes_a_line_for_importers_only(run_import, xiehe, api_for):
    day = timezone.localdate() - dt.timedelta(days=20)
    run_import([line("SO-R2", 1, day, xiehe, "P1", 10, "100")])
    pk = OrderLine.objects.get(order_number="SO-R2").pk
    url = f"/api/v1/order-lines/{pk}/remove/"

    assert api_for("kam").post(url, {"reason": "ERP 已删除"}, format="json").status_code == 403
    assert api_for("manager").post(url, {}, format="json").status_code == 400
    assert api_for("manager").post(url, {"reason": "ERP 已删除"}, format="json").status_code == 204
    assert api_for("manager").post(url, {"reason": "ERP 已删除"}, format="json").status_code == 404


def test_the_api_schema_says_a_line_removed_already_answers_404(api_for, db):
    """The schema documented "400: No reason, or removed already"; a second removal answers 404 (as api.md says and
    the test above checks), so an integration written from the schema looked for the wrong status."""
    import json

    spec = json.loads(api_for("admin").get("/api/schema/?format=json").content)
    responses = spec["paths"]["/api/v1/order-lines/{id}/remove/"]["post"]["responses"]

    assert "removed already" in responses["404"]["description"]
    assert "removed already" not in responses["400"]["description"]


ROLES = ["admin", "manager", "kam", "agent", "expert", "support", "aftersales", "rep", "pv", "analyst", "auditor"]


@pytest.mark.parametrize("role", ROLES)
def test_who_may_remove_an_order_line_web_and_api(role, run_import, xiehe, api_for, client_for):
    from django.urls import reverse

    day = timezone.localdate() - dt.timedelta(days=20)
    run_import([line("SO-R3", 1, day, xiehe, "P1", 10, "100"), line("SO-R3", 2, day, xiehe, "P1", 1, "100")])
    first, second = OrderLine.objects.filter(order_number="SO-R3").order_by("line_number")
    allowed = role in ("admin", "manager")

    api = api_for(role).post(f"/api/v1/order-lines/{first.pk}/remove/", {"reason": "ERP 已删除"}, format="json")
    web = client_for(role).post(reverse("sales:order-line-remove", args=[second.pk]), {"reason": "ERP 已删除"})

    assert api.status_code == (204 if allowed else 403)
    assert web.status_code == (302 if allowed else 403)
    assert OrderLine.objects.filter(order_number="SO-R3").count() == (0 if allowed else 2)


def test_a_removal_reason_pasted_with_a_nul_byte_is_kept_without_it_not_a_server_error(run_import, xiehe, client_for):
    # PostgreSQL refuses a NUL in the audit entry's JSON: the removal failed (500) on the page
    from django.urls import reverse

    from pharmacrm.core.models import AuditEntry

    day = timezone.localdate() - dt.timedelta(days=20)
    run_import([line("SO-R9", 1, day, xiehe, "P1", 10, "100")])
    pk = OrderLine.objects.get(order_number="SO-R9").pk
    r = client_for("manager").post(reverse("sales:order-line-remove", args=[pk]), {"reason": "ERP\x00 已删除　"})

    assert r.status_code == 302 and not OrderLine.objects.filter(pk=pk).exists()
    entry = AuditEntry.objects.get(object_type="sales.orderline", object_id=str(pk), action=AuditEntry.Action.DELETE)
    assert entry.extra["reason"] == "ERP 已删除"
