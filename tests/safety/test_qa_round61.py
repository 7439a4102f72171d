"""Session 61: a quality complaint without a reaction owes no ADR report (the demo had given every confirmed flag a
rash); China's 15 days are for serious reactions, a new non-serious one is due in 30 (GVP 2021 art. 135), in new
installs and, through safety 0017, in databases where the shipped rule was left as shipped; what a PV officer reading
Chinese noticed on the case page, the export and the reconciliation."""

from __future__ import annotations

import datetime as dt
import importlib
import re
import types

import pytest
from django.urls import reverse
from django.utils import timezone

from pharmacrm.core.models import AuditEntry
from pharmacrm.safety import services
from pharmacrm.safety.models import Flag, ReportingRule, SafetyClock
from pharmacrm.servicedesk import services as desk

from .conftest import COMPLETE, sign_code

pytestmark = pytest.mark.django_db

DAY0 = timezone.make_aware(dt.datetime(2026, 3, 2, 10, 0))
SERIOUS = [{**COMPLETE["reactions"][0], "hospitalisation": True}]


def _report_clocks(case) -> list[tuple[str, dt.datetime]]:
    return [(c.rule.code, timezone.localtime(c.due_at)) for c in
            SafetyClock.objects.filter(case=case, kind="report").select_related("rule").order_by("due_at")]


def _end_of_day(days: int) -> dt.datetime:
    return timezone.make_aware(dt.datetime(2026, 3, 2, 23, 59, 59) + dt.timedelta(days=days))


# --- 1. a quality complaint without a reaction ------------------------------------------------------------------


def _quality_flag(users, xiehe) -> Flag:
    from pharmacrm.customers.models import Person
    from pharmacrm.servicedesk.models import Product

    product = Product.objects.create(brand_name="安疫宁", generic_name="重组人干扰素α2b注射液",
                                     approval_number="国药准字S20253002", dosage_form="注射剂", strength="300万IU")  # fmt: skip
    ticket = desk.create_ticket(users["agent"], {
        "subject": "注射笔无法正常出药", "description": "客户反映新开的注射笔按下后无法出药，药液未见异常。",
        "channel": "phone", "category": "other", "institution": xiehe, "person": Person.objects.get(name="张伟"),
        "assignee": users["agent"], "product": product, "batch_number": "B2611X07",
    })  # fmt: skip
    return Flag.objects.get(ticket=ticket, kind="quality")  # the net flags the defect


def test_a_quality_complaint_confirmed_from_a_flag_owes_no_adr_report_until_a_reaction_is_recorded(users, xiehe):
    """The demo's QC-2026-000001 — 到货数量与订单不符, a complaint about the goods — showed China's 30-day ADR clock, long
    overdue: the demo had given every confirmed flag a rash. Confirmed as PV confirms it, without a reaction, the
    complaint goes to QA with no regulatory clock; a follow-up that records a reaction (the patient injected a
    clouded solution and got a rash) starts the ADR clock from its own receipt."""
    flag = _quality_flag(users, xiehe)
    case = services.confirm_flag(users["pv"], flag, data={"quality": {"defect": flag.excerpt}})
    assert case.number.startswith("QC-") and case.valid
    assert not case.clocks.filter(kind__in=["report", "investigation"]).exists()
    assert case.quality.defect == flag.excerpt

    heard = timezone.now()
    services.add_follow_up(users["pv"], case, {**{k: COMPLETE[k] for k in ("patient_name", "patient_sex")},
                                               "reactions": COMPLETE["reactions"]},
                           received_at=heard, summary="患者注射后出现皮疹")  # fmt: skip
    assert [code for code, _due in _report_clocks(case)] == ["CN-OTHER"]


def test_the_page_of_a_quality_complaint_without_a_reaction_shows_no_reporting_clock(users, xiehe, web):
    case = services.confirm_flag(users["pv"], _quality_flag(users, xiehe), data={"quality": {"defect": "无法出药"}})
    page = web("pv").get(reverse("safety:case", args=[case.pk])).content.decode()
    assert "CN-OTHER" not in page and "Other reactions: within 30 days" not in page
