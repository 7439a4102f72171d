"""Demo safety and quality cases: every kind, valid and invalid, some complete enough to export (with a few
well-known public MedDRA codes), follow-ups, submissions on time and late, a rejected acknowledgement,
quality complaints with CAPA, triaged and untriaged flags, and interactions. Loaded once (marker
`demo:safety`), after the service-desk demo (whose adverse-reaction tickets the net has flagged)."""

from __future__ import annotations

import datetime as dt
import random

from django.db import transaction
from django.utils import timezone

from pharmacrm.core import access, signatures
from pharmacrm.core.models import Counter, Signature, User

from . import services
from .choices import (
    AckStatus,
    CaseKind,
    Channel,
    ClockKind,
    Jurisdiction,
    RecallDecision,
    SignalKind,
    SignalStatus,
)
from .models import Flag, SafetyCase, SafetyClock, Submission

MARKER = "demo:safety"
MEDDRA = "27.1"
# (verbatim, LLT code) — public, widely cited MedDRA codes; a deployer with a licence codes the rest
RASH, DIZZY, NAUSEA, VOMIT, HEADACHE = ("全身皮疹", "10037844"), ("头晕", "10013573"), ("恶心", "10028813"), \
    ("呕吐", "10047700"), ("头痛", "10019211")  # fmt: skip
PRURITUS, ANAPHYLAXIS, URTICARIA = ("瘙痒", "10037087"), ("过敏性休克", "10002198"), ("荨麻疹", "10046735")
INEFFECTIVE, OVERDOSE, OFF_LABEL, PREGNANCY = ("用药无效", "10013709"), ("用药过量", "10033295"), \
    ("超说明书用药", "10053762"), ("妊娠期暴露", "10073513")  # fmt: skip

DISMISSALS = [
    "客户咨询说明书中已列出的不良反应，本人未用药，非不良反应病例。",
    "核实后为原患疾病症状，用药前已存在，与本品无关。",
    "同一事件已由医院直报并在既有病例中随访，重复标记。",
    "客户描述的是竞品用药后的情况，已告知向该企业报告。",
]
PATIENTS = [("王XX", "2", "45"), ("李XX", "1", "67"), ("赵XX", "2", "31"), ("陈XX", "1", "8"), ("刘XX", "2", "29"),
            ("周XX", "1", "52"), ("孙XX", "2", "73"), ("吴XX", "1", "40")]  # fmt: skip


def _reaction(term: tuple[str, str], coded: bool, **flags) -> dict:
    row = {"verbatim": term[0], "outcome": "5" if flags.get("death") else "2", **flags}
    if coded:
        row.update(meddra_version=MEDDRA, meddra_llt=term[1], meddra_pt=term[1])
    return row


def _drug(product, batch: str, **extra) -> dict:
    return {"role": "1", "product": product, "brand_name": product.brand_name, "generic_name": product.generic_name,
            "approval_number": product.approval_number, "dosage_form": product.dosage_form, "batch": batch,
            "manufacturer": "PharmaCRM 演示药业有限公司", **extra}  # fmt: skip


def _confirmed(flag: Flag, patient: dict, *, coded: bool) -> dict:
    """What PV adds when confirming a flag into a case: a reaction of the kind the flag signals. A quality defect
    (the pen that jams, flakes in the solution) is a product quality complaint without a reaction — no patient, no
    adverse event, so no ADR reporting clock: it goes to QA with the defect the ticket describes."""
    if flag.kind == SignalKind.QUALITY:
        return {"quality": {"defect": (flag.excerpt or "").strip()[:2000]}}
    term = INEFFECTIVE if flag.kind == SignalKind.LACK_OF_EFFICACY else RASH
    return {**patient, "reactions": [_reaction(term, coded)]}


def load() -> int:
    """Create the demo cases unless they are there; returns how many cases were made."""
    if Counter.objects.filter(name=MARKER).exists():
        return 0
    from pharmacrm.customers.models import Person
    from pharmacrm.engagement import services as engagement
    from pharmacrm.servicedesk.models import Product

    users = {u.username: u for u in User.objects.filter(username__in=("pv", "rep", "kam", "agent", "manager"))}
    products = list(Product.objects.filter(active=True).order_by("id")[:6])
    if "pv" not in users or not products:
        return 0
    pv, rng, now = users["pv"], random.Random(4), timezone.now()
    made: list[SafetyCase] = []

    def at(days: float) -> dt.datetime:
        return now - dt.timedelta(days=days)

    def patient(i: int) -> dict:
        name, sex, age = PATIENTS[i % len(PATIENTS)]
        return {"patient_name": name, "patient_sex": sex, "patient_age": age, "patient_age_unit": "a"}

    reporter = {"reporter_name": "张伟", "reporter_contact": "13800138000", "reporter_institution": "北京协和医院",
                "reporter_qualification": "1"}  # fmt: skip
    with transaction.atomic():
        # interactions: a rep's hospital visit where a doctor mentions a reaction (flagged by the net)
        person = None
        if "rep" in users:  # one of the rep's own customers
            person = access.people_for(users["rep"], Person.objects.active().filter(institution__isnull=False)) \
                .select_related("institution").order_by("id").first()  # fmt: skip
        if person is not None:
            for days, subject, notes in (
                (2, "拜访心内科主任", "主任反映有两位患者服用后出现头晕、心悸，已停药观察。"),
                (1, "学术会议交流", "介绍新适应症，医生对剂量调整有疑问，没有不良反应报告。"),
                (0.3, "药剂科例行沟通", "讨论下季度采购计划及配送时间。"),
            ):  # fmt: skip
                engagement.record_interaction(users["rep"], {
                    "institution": person.institution, "person": person, "channel": "visit",
                    "received_at": at(days), "subject": subject, "notes": notes, "product": products[0],
                })  # fmt: skip

        # flags from the service-desk demo: what came in more than two days ago has been triaged (a few
        # confirmed into cases, the rest dismissed with a reason); the recent ones wait in the queue
        pending = list(Flag.objects.filter(status=SignalStatus.PENDING, ticket__isnull=False).order_by("received_at", "id"))
        old = [f for f in pending if f.received_at < at(2)]
        for i, flag in enumerate(old):
            if i % 3 == 0:
                made.append(services.confirm_flag(pv, flag, data=_confirmed(flag, patient(i), coded=i % 2 == 0)))
            else:
                services.dismiss_flag(pv, flag, reason=DISMISSALS[i % len(DISMISSALS)])
            # triaged the morning after, as a PV team would have: the hand-off met in time; flagged when the ticket came
            # in, as the net flags it (not when the demo loaded, months after its triage)
            decided = flag.received_at + dt.timedelta(hours=rng.randint(2, 20))
            Flag.objects.filter(pk=flag.pk).update(decided_at=decided, created_at=flag.received_at)
            SafetyClock.objects.filter(flag=flag).update(met_at=decided)

        p = products
        complete = [  # (kind, days since day 0, reactions, extra)
            (CaseKind.ADVERSE_REACTION, 3, [_reaction(RASH, True), _reaction(PRURITUS, True)], {"expectedness": "expected"}),
            (CaseKind.ADVERSE_REACTION, 6, [_reaction(ANAPHYLAXIS, True, life_threatening=True, hospitalisation=True,
                                                      outcome="2")], {"expectedness": "unexpected"}),
            (CaseKind.ADVERSE_REACTION, 12, [_reaction(DIZZY, True), _reaction(NAUSEA, True)], {}),
            (CaseKind.MEDICATION_ERROR, 4, [_reaction(VOMIT, True)], {}),
            (CaseKind.LACK_OF_EFFICACY, 9, [_reaction(INEFFECTIVE, True)], {}),
            (CaseKind.OVERDOSE, 2, [_reaction(OVERDOSE, True), _reaction(HEADACHE, True)], {}),
            (CaseKind.OFF_LABEL, 20, [_reaction(OFF_LABEL, True)], {}),
            (CaseKind.PREGNANCY, 15, [_reaction(PREGNANCY, True)], {"patient_pregnancy": "妊娠 12 周"}),
            (CaseKind.PAEDIATRIC, 1, [_reaction(URTICARIA, True)], {}),
            (CaseKind.MISUSE, 8, [_reaction(DIZZY, False)], {}),  # valid, but not coded: export refused
            (CaseKind.ADVERSE_REACTION, 0.5, [_reaction(ANAPHYLAXIS, True, death=True, outcome="5")],
             {"expectedness": "unexpected"}),  # fatal: 24-hour clock and the investigation report
        ]  # fmt: skip
        first_complete = len(made)
        for i, (kind, days, reactions, extra) in enumerate(complete):
            product = p[i % len(p)]
            made.append(services.create_case(pv, {
                "kind": kind, "received_at": at(days), **patient(i), **reporter,
                "narrative": f"{PATIENTS[i % len(PATIENTS)][0]}使用{product.brand_name}后出现{reactions[0]['verbatim']}，"
                             "报告人电话告知，已停药并对症处理。",
                "causality_reporter": "probable", "causality_company": "possible",
                "drugs": [_drug(product, f"B{2609 + i:04d}{rng.randint(10, 99)}", dose="1", dose_unit="{tbl}",
                                route="口服", frequency="每日 2 次", action_taken="1", dechallenge="yes")],
                "reactions": reactions, **extra,
            }))  # fmt: skip
        # invalid ones, of every kind: each misses one of the four criteria (a follow-up task collects it)
        for i, kind in enumerate(CaseKind):
            missing = ("patient", "reporter", "product", "reaction")[i % 4]
            data = {"kind": kind, "received_at": at(1 + i % 5), **patient(i), **reporter,
                    "drugs": [_drug(p[i % len(p)], "")], "reactions": [_reaction(HEADACHE, False)]}  # fmt: skip
            if kind == CaseKind.QUALITY:  # a complaint without a reaction needs a reporter and the product
                data.update(reactions=[], reporter_name="", reporter_contact="", reporter_institution="",
                            quality={"defect": "瓶盖密封不严，有渗漏。"})  # fmt: skip
            elif missing == "patient":
                data.update(patient_name="", patient_sex="", patient_age="")
            elif missing == "reporter":
                data.update(reporter_name="", reporter_contact="", reporter_institution="")
            elif missing == "product":
                data["drugs"] = []
            else:
                data["reactions"] = []
            made.append(services.create_case(pv, data))

        # a follow-up with new information (hospitalised): its own 15-day clock from its own receipt
        services.add_follow_up(pv, made[first_complete + 2], {"reactions": [_reaction(DIZZY, True, hospitalisation=True),
                                                             _reaction(NAUSEA, True)]},  # fmt: skip
                               received_at=at(2), summary="医院回电：患者因头晕加重住院观察 2 天。")

        # quality complaints: one closed (batch, investigation, recall decision, CAPA), one open with QA
        qa = services.create_case(pv, {
            "kind": CaseKind.QUALITY, "received_at": at(25), **reporter, "drugs": [_drug(p[1 % len(p)], "B2608QC1")],
            "quality": {"product": p[1 % len(p)], "batch": "B2608QC1", "expiry_date": (now + dt.timedelta(days=500)).date(),
                        "defect": "药片表面有黑色斑点，同批次两盒均有。"},
        })  # fmt: skip
        services.update_quality(pv, qa, {"qa_owner": pv, "investigation_outcome": "留样检验合格；斑点为包装运输中受潮所致。",
                                         "root_cause": "铝塑泡罩热封温度偏低。", "recall_decision": RecallDecision.NO_RECALL,
                                         "recall_reason": "留样合格，单一批次个别现象，风险评估为低。"})  # fmt: skip
        services.add_capa(pv, qa, {"action": "调整热封温度并增加密封性抽检", "owner": pv,
                                   "due_date": (now + dt.timedelta(days=20)).date()})  # fmt: skip
        services.set_status(pv, SafetyCase.objects.get(pk=qa.pk), "closed")
        made.append(qa)
        made.append(services.create_case(pv, {
            "kind": CaseKind.QUALITY, "received_at": at(2), "reporter_institution": "上海瑞金医院药剂科",
            "quality": {"product": p[0], "batch": "B2611X07", "defect": "注射液中可见白色异物。"},
        }))  # fmt: skip

        _submissions(pv, made, now)
        Counter.objects.create(name=MARKER, value=len(made))
    return len(made)


def _signature(pv: User, case: SafetyCase, at: dt.datetime) -> Signature:
    """Demo submissions carry a signature record like real ones (real ones need the officer's code)."""
    sig = Signature(user=pv, signed_at=at, meaning=signatures.Meaning.APPROVED_FOR_SUBMISSION,
                    object_type="safety.safetycase", object_id=str(case.pk), object_label=case.number)  # fmt: skip
    sig.digest = signatures._digest(sig)
    sig.save()
    return sig


def _submit(pv: User, case: SafetyCase, at: dt.datetime, *, late_reason: str = "", ack: str = AckStatus.ACCEPTED,
            errors: list[str] | None = None) -> Submission:  # fmt: skip
    clocks = list(SafetyClock.objects.filter(case=case, met_at__isnull=True, kind=ClockKind.REPORT))
    late = [c for c in clocks if c.due_at < at]
    delay = max(((at - c.due_at).days + 1 for c in late), default=0)
    sub = Submission.objects.create(
        case=case, case_version=case.versions.order_by("-sequence").first(), clock=clocks[0] if clocks else None,
        jurisdiction=Jurisdiction.CN, channel=Channel.NMPA, submitted_at=at, submitted_by=pv,
        signature=_signature(pv, case, at), message_id=f"PHARMACRM-DEMO-{case.number}", late=bool(late),
        delay_days=delay, late_reason=late_reason, ack_status=ack, ack_at=at + dt.timedelta(hours=2) if ack != "pending" else None,
        ack_errors=errors or [],
    )  # fmt: skip
    SafetyClock.objects.filter(pk__in=[c.pk for c in clocks]).update(met_at=at, next_check_at=None)
    SafetyCase.objects.filter(pk=case.pk).update(status="assessing" if ack == AckStatus.REJECTED else "submitted")
    return sub


def _submissions(pv: User, made: list[SafetyCase], now: dt.datetime) -> None:
    coded = [c for c in made if c.valid and c.kind != CaseKind.QUALITY and c.reactions.filter(meddra_llt__gt="").exists()]
    if len(coded) < 4:
        return
    _submit(pv, coded[0], now - dt.timedelta(days=1))  # on time, accepted
    old = next((c for c in coded if c.kind == CaseKind.OFF_LABEL), coded[1])
    _submit(pv, old, now - dt.timedelta(hours=6),  # 20 days after day 0 — on time for the 30-day rule
            ack=AckStatus.PENDING)
    late = next((c for c in coded if c.kind == CaseKind.PREGNANCY), coded[2])
    SafetyClock.objects.filter(case=late, met_at__isnull=True).update(due_at=now - dt.timedelta(days=2))
    _submit(pv, late, now - dt.timedelta(hours=3), late_reason="报告人补充资料延迟，医院病历 11 月 27 日才提供。")
    rejected = coded[3]
    _submit(pv, rejected, now - dt.timedelta(hours=12), ack=AckStatus.REJECTED,
            # the texts the regulator's gateway returns, in Chinese as the NMPA's are (data, not translated by us)
            errors=["E.i.2.1b：MedDRA 低位语编码 10046735 在 MedDRA 26.0 版中无效",
                    "C.2.r.4：原始报告来源的职业为必填项"])  # fmt: skip
    SafetyClock.objects.filter(case=rejected, kind=ClockKind.REPORT).update(met_at=None)
    for clock in SafetyClock.objects.filter(case=rejected, kind=ClockKind.REPORT):
        clock.next_check_at = services._next_check(clock)
        clock.save(update_fields=["next_check_at"])
