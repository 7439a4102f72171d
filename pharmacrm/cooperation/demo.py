"""Demo cooperation agreements for `pharmacrm demo`: about twenty agreements of every type and status, with
projects in every state — being planned, running with an overdue task, accepted and awaiting the rest of their
settlement, closed — written through the services (numbered, audited) so that `make run` looks lived-in.
Deterministic; loaded once (marker `demo:cooperation`)."""

from __future__ import annotations

import datetime as dt
import random

from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.utils import timezone

from pharmacrm.core import access
from pharmacrm.core.models import Counter, User
from pharmacrm.core.roles import Cap

from . import services
from .models import Agreement, AgreementType

MARKER = "demo:cooperation"
SEED = 4502
TITLES = {
    AgreementType.ACADEMIC: ["心血管学术年会合作", "基层医生继续教育项目", "糖尿病规范化诊疗学术合作"],
    AgreementType.CLINICAL: ["IV期临床研究合作", "真实世界研究合作"],
    AgreementType.DISTRIBUTION: ["区域药品配送协议", "院内药房供应合作"],
    AgreementType.TECHNICAL: ["合理用药信息化技术服务", "药学门诊技术支持"],
    AgreementType.TRAINING: ["护理人员用药培训", "药师临床技能培训"],
    AgreementType.OTHER: ["患者教育公益合作"],
}


def _pdf() -> SimpleUploadedFile:
    from fpdf import FPDF

    doc = FPDF()
    doc.add_page()
    doc.set_font("helvetica", size=12)
    doc.cell(text="Signed cooperation agreement (demo)")
    return SimpleUploadedFile("合作协议签署版.pdf", bytes(doc.output()), content_type="application/pdf")


def load(seed: int = SEED) -> int:
    """Returns how many agreements it made (0 when they are there already or the demo users are missing)."""
    from pharmacrm.customers.models import Institution

    if Counter.objects.filter(name=MARKER).exists():
        return 0
    users = {u.username: u for u in User.objects.filter(username__in=["rep", "kam", "manager"], is_active=True)}
    if len(users) < 3:
        return 0
    rng = random.Random(seed)
    today = timezone.localdate()
    hospitals = list(Institution.objects.active().filter(kind="hospital", owner__in=[users["rep"], users["kam"]])
                     .select_related("owner").order_by("id")[:20])  # fmt: skip
    if len(hospitals) < 4:
        hospitals += list(Institution.objects.active().filter(kind="hospital").order_by("id")[: 20 - len(hospitals)])
    if not hospitals:
        return 0
    kinds = list(TITLES)
    made = 0
    # the teams each may record an agreement into: their own and those they lead; leadership any (services' rule)
    teams = {u.pk: None if access.can(u, Cap.ALL_COOPERATION) else set(services._team_ids(u)) for u in users.values()}
    with transaction.atomic():
        for i in range(20):
            hospital = hospitals[i % len(hospitals)]
            owner = hospital.owner if hospital.owner_id in (users["rep"].pk, users["kam"].pk) else users["manager"]
            kind = kinds[i % len(kinds)]
            start = today - dt.timedelta(days=rng.randint(60, 300))
            end = start + dt.timedelta(days=365 + rng.choice([0, 0, 181]))
            state = ("draft", "signed", "running", "accepted", "closed", "planning", "expiring", "expired",
                     "terminated", "running")[i % 10]  # fmt: skip
            if state == "expiring":  # its renewal reminder goes out at the worker's next run
                end = today + dt.timedelta(days=rng.randint(5, 25))
            agreement = services.create_agreement(owner, {
                "institution": hospital.pk, "kind": kind, "title": rng.choice(TITLES[kind]), "company_signer": "李国强",
                "customer_signer": "院办主任", "start_date": start, "end_date": end,
                "amount": str(rng.choice([50000, 80000, 120000, 200000, 350000])),
                "terms": "甲方提供合作场地与专家资源；乙方提供经费与学术支持；双方遵守《药品管理法》及反商业贿赂规定。",
                "payment_terms": "项目验收合格后30日内凭发票支付。", "owner": owner.pk,
                # in one of the owner's own teams (or none): who records an agreement may not put it in another's
                "team": hospital.team_id if teams[owner.pk] is None or hospital.team_id in teams[owner.pk] else "",
            })  # fmt: skip
            made += 1
            if state == "draft":
                continue
            services.record_signed(owner, agreement, signed_date=start, upload=_pdf(), version=agreement.version)
            if state == "signed":
                continue
            if state == "terminated":
                services.terminate(owner, agreement, agreement.version)
                continue
            services.put_in_force(owner, agreement, agreement.version)
            if state in ("expiring", "expired"):
                if state == "expired":  # the worker's next run finds its term over
                    Agreement.objects.filter(pk=agreement.pk).update(end_date=today - dt.timedelta(days=3))
                continue
            _project(owner, agreement, state, rng, today)
    services.sweep()  # the reminders, expiries and overdue alerts the worker would have sent by now
    Counter.objects.create(name=MARKER, value=made)
    return made


def _project(owner, agreement, state: str, rng: random.Random, today: dt.date) -> None:
    start = agreement.start_date + dt.timedelta(days=10)
    project = services.create_project(owner, agreement, {
        "title": f"{agreement.title}（{today.year}年度）", "goal": "完成协议约定的合作内容并通过双方验收。",
        "responsible": owner.pk, "start_date": start, "end_date": agreement.end_date,
        "budget": str(agreement.amount or 50000),
    })  # fmt: skip
    services.add_task(owner, project, {"title": "制定实施方案", "owner": owner.pk, "deadline": start + dt.timedelta(days=14)})
    if state == "planning":
        return
    services.start_project(owner, project, project.version)
    services.update_task(owner, project.tasks.get(), {"status": "done"})
    services.add_task(owner, project, {"title": "提交阶段总结", "owner": owner.pk,
                                       "deadline": today - dt.timedelta(days=rng.randint(2, 10))})  # fmt: skip
    services.add_check(owner, project, {"checked_on": today - dt.timedelta(days=20), "progress": 60,
                                        "problems": "部分专家日程冲突", "measures": "调整会议时间，增加线上场次"})  # fmt: skip
    if state == "running":
        return
    services.update_task(owner, project.tasks.order_by("-id").first(), {"status": "done"})
    services.record_acceptance(owner, project, {"accepted_on": today - dt.timedelta(days=5), "result": "passed",
                                                "standards": "按协议完成全部会议与培训场次，资料齐全", "accepted_by": "科教处"})  # fmt: skip
    project.refresh_from_db()
    due = agreement.amount or project.budget
    services.set_amount_due(owner, project, {"amount_due": str(due), "settlement_due_date": today + dt.timedelta(days=25)},
                            project.version)  # fmt: skip
    if state == "accepted":
        services.add_payment(owner, project, {"paid_on": today - dt.timedelta(days=2), "amount": str(due / 2),
                                              "invoice_number": f"FP{rng.randint(10000000, 99999999)}"})  # fmt: skip
        return
    services.add_payment(owner, project, {"paid_on": today - dt.timedelta(days=2), "amount": str(due),
                                          "invoice_number": f"FP{rng.randint(10000000, 99999999)}"})  # fmt: skip
    project.refresh_from_db()
    services.close_project(owner, project, project.version)
