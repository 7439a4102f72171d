"""Demo evaluation and key-account programme for `pharmacrm demo`, after the demo purchases:

* NPS answers (0–10) on the demo revisit surveys, consistent with their 1–5 score; key opinion leaders of a
  few large hospitals, entered by marketing;
* the scheduled runs of six months ago (customer evaluation and key-account identification), then the
  ones of today, so that classes A–D, candidates and the movement between the two periods show;
* the key-account programme, through its services: two top candidates of six months ago listed (marketing's
  proposal, five department opinions, leadership's signed approval) with a full service team, an approved
  service plan in the four areas plus a free item (some done, one overdue), a signed agreement with its
  signed copy, two service meetings with action items, a trial offer and last quarter's evaluation; one
  proposal rejected with a comment; one waiting for leadership's decision; one in review with two opinions.

Leadership signs with a fresh one-time code, as in the UI: the demo gives the manager a throw-away
authenticator for each signature and removes it afterwards; the demo manager's own authenticator (secret in
var/demo-credentials.txt) is for signing by hand.
What happened weeks ago is dated back (proposal, review, decision and signature times, plan decisions,
completions, the scheduled runs); the audit trail keeps the moment the demo wrote each step.
Deterministic (random.Random(SEED)); loaded once (marker `demo:keyaccounts`)."""

from __future__ import annotations

import datetime as dt
import random
from contextlib import contextmanager

from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.utils import timezone

from pharmacrm.core import signatures
from pharmacrm.core.models import Counter, Signature, User

from . import evaluation, services
from .choices import (
    ItemStatus,
    MeetingCadence,
    ModelKind,
    Opinion,
    PlanArea,
    ProposalStatus,
    TeamRole,
    TrialStatus,
    Trigger,
)
from .models import (
    Agreement,
    EvaluationRun,
    KeyAccount,
    MeetingAction,
    PlanItem,
    Proposal,
    Review,
    Score,
    ServicePlan,
    TeamMember,
    TeamTenure,
)

MARKER = "demo:keyaccounts"
SEED = 2611
USERS = ("analyst", "manager", "kam", "expert", "support", "aftersales", "agent", "pv")

# (area, title, standard, owner, deadline in days from today, final status, progress %)
PLAN_ITEMS = [
    (PlanArea.SUPPLY, "核心品种月度备货保障（安心宁、护肝康）", "月度需求预测提前 15 天确认；到货率 ≥ 98%；紧急订单 48 小时内送达。",
     "kam", -95, ItemStatus.DONE, 100),
    (PlanArea.SUPPLY, "专属冷链配送通道", "冷链全程温度记录可追溯；每批随货附温度报告；温度偏差当日通报。",
     "kam", 45, ItemStatus.IN_PROGRESS, 40),
    (PlanArea.TECH_SUPPORT, "药剂科用药咨询专线", "工作日 2 小时内响应，复杂问题 24 小时内书面答复。",
     "support", -60, ItemStatus.DONE, 100),
    (PlanArea.TECH_SUPPORT, "肾功能不全患者剂量调整技术支持", "提供循证资料包，并安排 1 次科室专题讨论。",
     "support", 20, ItemStatus.PLANNED, 0),
    (PlanArea.AFTER_SALES, "季度回访与满意度调查", "每季度回访药剂科及 2 个重点科室；满意度 ≥ 4.5 分。",
     "aftersales", -70, ItemStatus.DONE, 100),
    (PlanArea.AFTER_SALES, "投诉与质量问题快速处理机制", "24 小时内响应，7 个工作日内给出调查结论并书面反馈。",
     "aftersales", 90, ItemStatus.PLANNED, 0),
    (PlanArea.TRAINING, "新版说明书与合理用药培训", "面向临床药师及护士培训 2 场，签到 ≥ 40 人次，课后测验合格率 ≥ 90%。",
     "expert", -12, ItemStatus.IN_PROGRESS, 60),  # overdue: one session held, the second one slipped
    (PlanArea.TRAINING, "药品不良反应监测与上报培训", "完成 1 场培训并考核，合格率 ≥ 90%。",
     "expert", 60, ItemStatus.PLANNED, 0),
    (PlanArea.FREE, "免费学术资料与患者教育手册", "每季度提供 200 份患者教育手册及最新指南解读。",
     "expert", -30, ItemStatus.DONE, 100),
]  # fmt: skip

OPINIONS = [  # (user, department, opinion, comment)
    ("analyst", "marketing", Opinion.SUPPORT, "采购额与采购频次均居前列，学科影响力强，建议列为重点客户。"),
    ("kam", "sales", Opinion.SUPPORT, "合作稳定，回款及时，院方希望建立专属服务团队。"),
    ("agent", "service", Opinion.NEUTRAL, "近半年服务工单以用药咨询为主，无重大投诉。"),
    ("pv", "qa", Opinion.SUPPORT, "不良反应上报规范，可作为药物警戒合作单位。"),
    ("expert", "rnd", Opinion.SUPPORT, "临床科室有意参与新规格产品试用。"),
]


def _at(today: dt.date, days_ago: int, hour: int = 10, minute: int = 0) -> dt.datetime:
    day = today - dt.timedelta(days=days_ago)
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour, minute)))


@contextmanager
def _one_time_code(user: User):
    """A fresh code from a throw-away authenticator of `user`, removed afterwards."""
    from django_otp.oath import totp
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.create(user=user, name="demo signature", confirmed=True)
    try:
        code = totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits)
        yield f"{code:0{device.digits}d}"
    finally:
        device.delete()


def _date_signature(sig_id: int | None, at: dt.datetime) -> None:
    if sig_id is None:
        return
    sig = Signature.objects.get(pk=sig_id)
    sig.signed_at = at.astimezone(dt.UTC)  # as stored and read back: the digest covers its text
    sig.digest = signatures._digest(sig)
    sig.save(update_fields=["signed_at", "digest"])


# --- surveys and market influence ------------------------------------------------------------------


def _nps(rng: random.Random) -> int:
    """Most revisit answers also say how likely the customer is to recommend us, in line with the score."""
    from pharmacrm.servicedesk.models import Survey

    ranges = {5: (9, 10), 4: (7, 9), 3: (5, 7), 2: (2, 5), 1: (0, 3)}
    done = 0
    for survey in Survey.objects.filter(score__isnull=False, recommend__isnull=True).order_by("id"):
        if rng.random() < 0.8:
            Survey.objects.filter(pk=survey.pk).update(
                recommend=rng.randint(*ranges.get(survey.score, (5, 8)))
            )
            done += 1
    return done


def _influence(analyst: User, rng: random.Random) -> int:
    """Key opinion leaders of the largest buying 三甲 hospitals, as marketing enters them."""
    from pharmacrm.customers.models import Institution, Person
    from pharmacrm.sales.models import MonthlyRollup

    from .influence import save_influence

    buyers = MonthlyRollup.objects.values("institution_id")
    hospitals = Institution.objects.filter(kind="hospital", grade="3A", pk__in=buyers).order_by(
        "-beds", "id"
    )[:8]
    done = 0
    for inst in hospitals:
        leaders = list(Person.objects.filter(institution=inst, role__in=["dept_head", "doctor"])
                       .order_by("role", "id")[: rng.randint(2, 6)])  # fmt: skip
        if not leaders:
            continue
        names = "、".join(f"{p.name}（{p.department.name if p.department_id else p.title}）" for p in leaders)
        save_influence(analyst, inst, {"kol_count": len(leaders), "kol_names": names, "assessment": None,
                                       "notes": "省级专业委员会委员，牵头区域医联体用药规范。"})  # fmt: skip
        done += 1
    return done


# --- evaluation runs -------------------------------------------------------------------------------


def _month_end_before(day: dt.date, months: int) -> dt.date:
    first = day.replace(day=1)
    for _i in range(months - 1):
        first = (first - dt.timedelta(days=1)).replace(day=1)
    return first - dt.timedelta(days=1)


def _scheduled_runs(as_of: dt.date, *, apply: bool, dated: bool) -> None:
    """The nightly runs of `as_of` (identification and evaluation); earlier ones dated to that night."""
    for kind in (ModelKind.EVALUATION, ModelKind.CANDIDATE):
        run = evaluation.run(kind, trigger=Trigger.SCHEDULE, as_of=as_of, apply=apply)
        if dated:
            started = timezone.make_aware(dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(2, 30)))
            finished = started + (run.finished_at - run.started_at)
            EvaluationRun.objects.filter(pk=run.pk).update(started_at=started, finished_at=finished)
            Score.objects.filter(run=run).update(computed_at=finished)


def _candidates(period: str, exclude: set[int]) -> list[Score]:
    scores = Score.objects.filter(kind=ModelKind.CANDIDATE, period=period).select_related("institution")
    ranked = [
        s
        for s in scores.order_by("-candidate", "-score", "institution_id")
        if s.institution_id not in exclude
    ]
    return [s for s in ranked if s.institution.merged_into_id is None]


def _on_time_share(institution_id: int, period: str) -> float:
    """The share paid on time in the customer's evaluation of `period` (1.0 when unknown)."""
    score = Score.objects.filter(
        kind=ModelKind.EVALUATION, period=period, institution_id=institution_id
    ).first()
    credit = next((c for c in (score.components if score else []) if c["name"] == "credit"), {})
    return float((credit.get("detail") or {}).get("on_time_share", 1))


# --- the programme ---------------------------------------------------------------------------------


def _proposal(
    u: dict, institution, reason: str, opinions, today: dt.date, proposed: int, submitted: int | None
):
    """Marketing's proposal with department opinions, sent for decision unless `submitted` is None."""
    proposal = services.propose(u["analyst"], institution, reason=reason)
    for i, (who, department, opinion, comment) in enumerate(opinions):
        services.give_opinion(u[who], proposal, opinion=opinion, comment=comment, department=department)
        Review.objects.filter(proposal=proposal, reviewer=u[who]).update(at=_at(today, proposed - 1 - i, 15))
    Proposal.objects.filter(pk=proposal.pk).update(proposed_at=_at(today, proposed, 9, 30))
    if submitted is not None:
        services.submit_for_decision(u["analyst"], Proposal.objects.get(pk=proposal.pk))
        Proposal.objects.filter(pk=proposal.pk).update(submitted_at=_at(today, submitted, 11))
    return Proposal.objects.get(pk=proposal.pk)


def _decide(manager: User, proposal: Proposal, *, approve: bool, comment: str, at: dt.datetime) -> Proposal:
    with _one_time_code(manager) as code:
        services.decide(manager, proposal, approve=approve, comment=comment, otp_code=code)
    proposal = Proposal.objects.get(pk=proposal.pk)
    Proposal.objects.filter(pk=proposal.pk).update(decided_at=at)
    _date_signature(proposal.signature_id, at)
    return proposal


def _signed_copy(agreement: Agreement, signed_on: dt.date) -> bytes:
    """A stand-in for the scanned signature page: a one-page PDF."""
    from pharmacrm.core import pdf

    name = agreement.account.institution.name
    lines = [
        f"协议编号：{agreement.number}",
        f"甲方（客户）：{name}",
        "乙方（服务方）：PharmaCRM 演示药业有限公司",
        f"协议期限：{agreement.start_date:%Y-%m-%d} 至 {agreement.end_date:%Y-%m-%d}",
        "",
        "双方已阅读并同意本协议及所附服务方案的全部条款。",
        "",
        f"甲方（盖章）：{name}　　　授权代表签字：________",
        "乙方（盖章）：PharmaCRM 演示药业有限公司　　　授权代表签字：________",
        f"签署日期：{signed_on:%Y年%m月%d日}",
    ]
    try:
        title = f"重点客户服务协议（签署页）{agreement.number}"
        doc = pdf.document(title, heading=False)  # the regular face only: each face embedded costs time
        doc.set_font(pdf.FAMILY, size=15)
        doc.multi_cell(0, 10, title, align="C", new_x="LMARGIN", new_y="NEXT")
        doc.set_font(pdf.FAMILY, size=11)
        for line in lines:
            doc.multi_cell(0, 8, line, new_x="LMARGIN", new_y="NEXT")
        return pdf.to_bytes(doc)
    except RuntimeError:  # no Chinese font on this machine: the page in Latin letters
        from fpdf import FPDF

        doc = FPDF()
        doc.add_page()
        doc.set_font("Helvetica", size=12)
        for line in (f"Service agreement {agreement.number} - signature page",
                     f"Term: {agreement.start_date} to {agreement.end_date}", f"Signed on {signed_on}"):  # fmt: skip
            doc.cell(0, 10, line, new_x="LMARGIN", new_y="NEXT")
        return bytes(doc.output())


def _has_pdf_font() -> bool:
    """Whether this machine can make the agreements' PDFs: `make run` goes on without fonts-noto-cjk, and
    the demo then leaves the agreements out rather than failing whole."""
    from pharmacrm.core import pdf

    try:
        pdf.fonts()
    except RuntimeError:
        return False
    return True


def _account(u: dict, score: Score, today: dt.date, shift: int, product, rng: random.Random, *,
             monthly: bool = False) -> KeyAccount:  # fmt: skip
    """One listed key account with everything a year of the programme brings (`shift` days later for the
    second one). `monthly`: its team meets monthly, and its last meeting is seven weeks old — the service meeting is
    overdue (the list, its page, the work pages and the progress report flag it; the worker tells the team)."""
    inst = score.institution

    def d(days: int) -> dt.datetime:  # `days` ago, shifted
        return _at(today, days + shift)

    reason = (f"{inst.name}在 {score.period} 重点客户识别中得分 {score.score}，采购额与采购频次均达到满分，"
              "学科影响力强，合作稳定，建议列为重点客户并配置专属服务团队。")  # fmt: skip
    proposal = _proposal(u, inst, reason, OPINIONS, today, 150 + shift, 140 + shift)
    proposal = _decide(u["manager"], proposal, approve=True, at=d(137),
                       comment="同意列为重点客户。请项目经理两周内组建服务团队并提交服务方案。")  # fmt: skip
    account = proposal.account
    KeyAccount.objects.filter(pk=account.pk).update(listed_at=d(137))
    for who, role in (("kam", TeamRole.PROJECT_MANAGER), ("expert", TeamRole.PRODUCT_EXPERT),
                      ("support", TeamRole.TECH_SUPPORT), ("aftersales", TeamRole.AFTER_SALES)):  # fmt: skip
        services.add_member(u["manager"], account, u[who], role)
    TeamMember.objects.filter(account=account).update(since=d(136).date())
    TeamTenure.objects.filter(account=account).update(start=d(136).date())

    _past_tickets(u, KeyAccount.objects.get(pk=account.pk), today, shift, rng)

    kam, manager = u["kam"], u["manager"]
    start = d(125).date()
    plan = services.start_plan(kam, account, valid_from=start, valid_to=start + dt.timedelta(days=364),
                               goals=f"保障{inst.short_name or inst.name}核心品种稳定供应；提升药剂科及临床科室的"
                                     "用药咨询响应速度；完成合理用药与不良反应上报培训；客户满意度 ≥ 4.5 分。")  # fmt: skip
    items = []
    for area, title, standard, owner, due, status, progress in PLAN_ITEMS:
        deadline = today + dt.timedelta(days=due + (shift if due > 0 else -shift // 3))
        item = services.save_item(kam, plan, {"area": area, "title": title, "standard": standard,
                                              "owner": u[owner], "deadline": max(deadline, today)})  # fmt: skip
        if deadline < today:  # written months ago, when the deadline lay ahead: dated back like the rest
            PlanItem.objects.filter(pk=item.pk).update(deadline=deadline)
        items.append((item, status, progress))
    services.submit_plan(kam, ServicePlan.objects.get(pk=plan.pk))
    with _one_time_code(manager) as code:
        services.decide_plan(manager, ServicePlan.objects.get(pk=plan.pk), approve=True, otp_code=code,
                             comment="方案覆盖供货、技术支持、售后和培训四个方面，同意执行。")  # fmt: skip
    plan = ServicePlan.objects.get(pk=plan.pk)
    ServicePlan.objects.filter(pk=plan.pk).update(created_at=d(133), submitted_at=d(128), decided_at=d(125))
    _date_signature(plan.signature_id, d(125))
    for item, status, progress in items:
        if status == ItemStatus.PLANNED:
            continue
        item = PlanItem.objects.get(pk=item.pk)
        note = "已按计划完成。" if status == ItemStatus.DONE else "第一场培训已完成，第二场因院方排期推迟。" \
            if item.deadline < today else "按计划推进中。"  # fmt: skip
        services.update_progress(item.owner, item, status=status, progress=progress, note=note)
        if status == ItemStatus.DONE:
            done = timezone.make_aware(dt.datetime.combine(item.deadline - dt.timedelta(days=rng.randint(2, 9)),
                                                           dt.time(16, 30)))  # fmt: skip
            PlanItem.objects.filter(pk=item.pk).update(completed_at=done)

    if _has_pdf_font():  # an agreement's PDF is issued at generation, which needs the Chinese font
        # its term within the plan's validity (generate_agreement refuses one past it)
        agreement = services.generate_agreement(kam, account, start_date=d(115).date(), end_date=plan.valid_to)
        signed_on = d(116).date()
        upload = SimpleUploadedFile(
            f"{agreement.number}-签署页.pdf", _signed_copy(agreement, signed_on), "application/pdf"
        )
        # issued weeks ago, then signed (a signing is never dated before the issue)
        Agreement.objects.filter(pk=agreement.pk).update(created_at=d(118), issued_at=d(118))
        services.record_signed(kam, Agreement.objects.get(pk=agreement.pk), signed_date=signed_on, upload=upload)

    attendees = (f"院方：药剂科主任、临床科室代表；我方：{kam.display_name}（项目经理）、{u['expert'].display_name}"
                 f"（产品专家）、{u['support'].display_name}（技术支持）、{u['aftersales'].display_name}（售后）")  # fmt: skip
    first = services.record_meeting(kam, account, {
        "held_at": d(80), "title": "第三季度重点客户服务沟通会", "attendees": attendees,
        "minutes": "1. 回顾 7–8 月供货情况：到货率 99%，8 月一批次到货数量差异已核实。\n"
                   "2. 药剂科提出肾功能不全患者剂量调整的资料需求。\n"
                   "3. 商定第四季度合理用药培训安排。",
    }, actions=[
        {"title": "核对 8 月到货差异并补发", "owner": kam, "due_date": (d(80) + dt.timedelta(days=10)).date()},
        {"title": "提供肾功能不全剂量调整资料包", "owner": u["support"], "due_date": (d(80) + dt.timedelta(days=20)).date()},
        {"title": "确定合理用药培训日程", "owner": u["expert"], "due_date": (d(80) + dt.timedelta(days=30)).date()},
    ])  # fmt: skip
    if monthly:
        services.set_meeting_cadence(kam, KeyAccount.objects.get(pk=account.pk), MeetingCadence.MONTHLY)
    held = d(40) if monthly else d(14)
    second = services.record_meeting(kam, account, {
        "held_at": held, "title": f"{timezone.localtime(held).month} 月服务进展回顾会", "attendees": attendees,
        "minutes": "1. 服务方案执行进度：供货、咨询专线、季度回访按期完成；第二场培训推迟。\n"
                   "2. 院方对冷链配送通道的温度报告表示满意。\n"
                   "3. 讨论 2027 年度备货计划及新规格产品试用反馈。",
    }, actions=[
        {"title": "补办第二场合理用药培训", "owner": u["expert"], "due_date": today + dt.timedelta(days=10)},
        {"title": "提交 2027 年度备货计划", "owner": kam, "due_date": today + dt.timedelta(days=25)},
        {"title": "回访心内科试用反馈", "owner": u["aftersales"], "due_date": (held + dt.timedelta(days=7)).date()},
    ])  # fmt: skip
    for meeting in (first, second):
        type(meeting).objects.filter(pk=meeting.pk).update(
            created_at=meeting.held_at + dt.timedelta(hours=20)
        )
    for action in MeetingAction.objects.filter(
        meeting__in=[first, second], due_date__lt=today
    ).select_related("meeting__account", "owner"):
        services.complete_action(action.owner, action)
        done = timezone.make_aware(dt.datetime.combine(action.due_date - dt.timedelta(days=1), dt.time(17)))
        MeetingAction.objects.filter(pk=action.pk).update(done_at=done)

    if product is not None:
        trial = services.offer_trial(kam, account, product=product, offered_on=d(40).date(),
                                     notes="新规格（预充式注射器）优先试用 20 支，收集临床使用反馈。")  # fmt: skip
        services.update_trial(kam, trial, status=TrialStatus.ACCEPTED, notes="感染科、肿瘤科已开始试用。")
    return account


PAST_TICKETS = [  # (category, subject, handler, hours to the first response, hours to resolution, revisit score)
    ("drug_info", "咨询药品储存条件", "expert", 1, 5, 5),
    ("usage_guidance", "咨询肾功能不全患者剂量调整", "expert", 2, 26, 5),
    ("order_delivery", "到货数量与订单不符", "aftersales", 1, 30, 4),
    ("drug_info", "咨询说明书更新内容", "support", 3, 8, 4),
    ("usage_guidance", "咨询漏服后如何补服", "expert", 1, 4, 5),
    ("service_process", "发票开具延迟", "aftersales", 4, 50, 3),
]


def _past_tickets(u: dict, account: KeyAccount, today: dt.date, shift: int, rng: random.Random) -> None:
    """Last quarter's service of the key account — questions answered by its team and revisited by phone — so
    that its quarterly service evaluation is computed from data, not from the "no data" defaults."""
    from pharmacrm.customers.models import Person
    from pharmacrm.servicedesk import revisit
    from pharmacrm.servicedesk import services as desk
    from pharmacrm.servicedesk.choices import Channel, RootCause, Status
    from pharmacrm.servicedesk.demo import demo_impact

    people = list(Person.objects.filter(institution__in=[account.institution_id, *account.institution.children.values_list(
        "id", flat=True)]).order_by("id")[:6])  # fmt: skip
    quarter_start = dt.date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
    last_start = (quarter_start - dt.timedelta(days=1)).replace(day=1)
    last_start = last_start.replace(month=3 * ((last_start.month - 1) // 3) + 1)
    listed = timezone.localdate(account.listed_at)
    first = max(last_start, listed + dt.timedelta(days=7))
    span = (quarter_start - dt.timedelta(days=10) - first).days
    if span < len(PAST_TICKETS):
        return
    for n, (category, subject, who, respond_h, resolve_h, score) in enumerate(PAST_TICKETS):
        day = first + dt.timedelta(days=(n * span) // len(PAST_TICKETS) + shift % 3)
        while day.weekday() >= 5:
            day += dt.timedelta(days=1)
        received = timezone.make_aware(dt.datetime.combine(day, dt.time(9 + n % 5, 10 * (n % 6))))
        data = {"subject": subject, "category": category, "received_at": received, "channel": Channel.PHONE,
                "description": "重点客户来电，已记录详细情况。"}  # fmt: skip
        if people:
            person = people[n % len(people)]
            data["person"], data["institution"] = person, person.institution
        else:
            data["institution"] = account.institution
        handler = u[who]
        ticket = desk.create_ticket(u["agent"], data)
        ticket.assignee = handler
        desk.transition(handler, ticket, Status.ASSIGNED, at=received + dt.timedelta(minutes=15))
        desk.record_response(handler, ticket, at=received + dt.timedelta(hours=respond_h))
        desk.transition(handler, ticket, Status.IN_PROGRESS, at=received + dt.timedelta(hours=respond_h))
        done = received + dt.timedelta(hours=resolve_h)
        desk.transition(handler, ticket, Status.RESOLVED, at=done, resolution_summary="已向客户说明处理结果。",
                        root_cause=rng.choice([RootCause.INFORMATION, RootCause.USAGE, RootCause.LOGISTICS]),
                        **demo_impact(rng, ticket))  # fmt: skip
        desk.transition(handler, ticket, Status.INFORMED, at=done + dt.timedelta(hours=1), informed_channel=Channel.PHONE)
        desk.transition(handler, ticket, Status.CLOSED, at=done + dt.timedelta(days=1))
        revisit.record_phone_revisit(u["agent"], ticket, score, score > 3,
                                     "处理及时，很专业。" if score > 3 else "开票等待时间偏长。")  # fmt: skip


def _rejected(u: dict, score: Score, today: dt.date, share: float) -> Proposal:
    """A candidate leadership says no to, with the reason (its late payments when it pays late)."""
    inst = score.institution
    opinions = [
        OPINIONS[0][:3] + ("采购规模较大，请领导结合回款与信用情况决定。",),
        ("kam", "sales", Opinion.SUPPORT, "客户关系良好，希望获得专属服务支持；回款问题已在跟进。"),
        ("pv", "qa", Opinion.NEUTRAL, "质量方面无异议。"),
    ]
    reason = f"{inst.name}在 {score.period} 重点客户识别中得分 {score.score}，采购额较高，建议列为重点客户。"
    proposal = _proposal(u, inst, reason, opinions, today, 75, 68)
    if share < 0.8:
        comment = f"暂不列入：按期回款比例仅 {share:.0%}，存在逾期应收。请销售部跟进回款，下一评估周期再议。"
    else:
        comment = "暂不列入：本年度重点客户名额已满，优先保障已列名客户的服务质量；建议下一评估周期重新提议。"
    return _decide(u["manager"], proposal, approve=False, at=_at(today, 64, 16), comment=comment)


def _open_proposals(u: dict, today: dt.date) -> list[Proposal]:
    """The two best current candidates: one waiting for leadership's decision, one still in review."""
    taken = set(Proposal.objects.values_list("institution_id", flat=True))
    current = _candidates(evaluation.month_label(today), taken)[:2]  # candidates first
    made = []
    for i, score in enumerate(current):
        # proposed days ago, possibly before this month's period began: no period named
        reason = (f"{score.institution.name}在重点客户识别中得分 {score.score}，"
                  "采购额与增长均表现突出，建议列为重点客户。")  # fmt: skip
        if i == 0:
            made.append(
                _proposal(u, score.institution, reason, [OPINIONS[0], OPINIONS[1], OPINIONS[2]], today, 12, 5)
            )
        else:
            made.append(_proposal(u, score.institution, reason, [OPINIONS[1], OPINIONS[4]], today, 3, None))
    return made


def _quiet_notifications(since_id: int, open_ids: list[int]) -> None:
    """What the programme told people weeks ago has been read; the open proposals wait in the inboxes."""
    from pharmacrm.notify.models import Notification

    old = Notification.objects.filter(id__gt=since_id, kind__startswith="keyaccounts.")
    old = old.exclude(object_type=Proposal._meta.label_lower, object_id__in=[str(i) for i in open_ids])
    old.update(read_at=timezone.now())


def load(seed: int = SEED) -> int:
    """Load the demo evaluation and programme unless they are there; returns how many key accounts."""
    from pharmacrm.notify.models import Notification
    from pharmacrm.sales.models import MonthlyRollup
    from pharmacrm.servicedesk.models import Product

    if Counter.objects.filter(name=MARKER).exists():
        return 0
    u = {x.username: x for x in User.objects.filter(username__in=USERS, is_active=True)}
    if set(u) != set(USERS) or not MonthlyRollup.objects.exists():
        return 0
    rng = random.Random(seed)
    today = timezone.localdate()
    earlier = _month_end_before(today, 6)
    products = Product.objects.filter(active=True)  # a biologic's new presentation, else any product
    product = (
        products.filter(approval_number__startswith="国药准字S").order_by("id").first() or products.first()
    )
    with transaction.atomic():
        since = Notification.objects.order_by("-id").values_list("id", flat=True).first() or 0
        _nps(rng)
        _influence(u["analyst"], rng)
        # applied: when it is the evaluation of a half-year (six months before December or June), it is the period
        # in force and today's run gives interim standings only — left unapplied, the demo had no VIP customers
        _scheduled_runs(earlier, apply=True, dated=True)
        ranked = _candidates(evaluation.month_label(earlier), set())
        listed = [s for s in ranked if s.institution.kind == "hospital"][:2] or ranked[:2]
        # the best candidate was listed first (numbers follow the dates)
        accounts = [
            # the first listed meets monthly and is overdue for its meeting; the other keeps the quarterly default
            _account(u, s, today, 9 * (len(listed) - 1 - i), product, rng, monthly=i == 0) for i, s in enumerate(listed)
        ]
        others = [s for s in ranked[2:12] if s not in listed]
        if others:
            shares = {s.pk: _on_time_share(s.institution_id, evaluation.half_year(earlier)) for s in others}
            worst = min(others, key=lambda s: shares[s.pk])
            _rejected(u, worst, today, shares[worst.pk])
        _scheduled_runs(today, apply=True, dated=False)
        opened = _open_proposals(u, today)
        evaluation.scheduled(today)  # the quarterly evaluation of the key accounts
        services.scheduled_reviews(today)  # and their service evaluation of last quarter
        _quiet_notifications(since, [p.pk for p in opened if p.status in (ProposalStatus.REVIEW,
                                                                           ProposalStatus.SUBMITTED)])  # fmt: skip
        Counter.objects.create(name=MARKER, value=len(accounts))
    return len(accounts)
