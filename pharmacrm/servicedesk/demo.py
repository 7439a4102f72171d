"""Demo tickets for `pharmacrm demo`: about 150 tickets of the last two weeks across every category and
channel, in every status — some answered in time, some waiting on the customer, some resolved and
closed, a few already past their deadline — so that queues, badges and clocks show a lived-in desk. With
them: the product catalogue and answer templates, assignment rules and agent profiles, replies and
internal notes, phone revisits (a poor one opens an improvement action) and a linked pair of tickets.
Loaded once (its own marker), also into a database whose customer demo data came earlier."""

from __future__ import annotations

import datetime as dt
import random

from django.db import transaction
from django.utils import timezone

from pharmacrm.core.models import Counter, Team, User

from . import conversation, knowledge_demo, linking, revisit, routing_demo, services
from .choices import Channel, Impact, MessageKind, RootCause, Status
from .models import Product

MARKER = "demo:tickets"

# category → subjects a Chinese service hotline hears
SUBJECTS = {
    "medication_error": ["患者误服双倍剂量", "护士配药时混淆了规格", "儿童误服成人剂型"],
    "adverse_reaction": ["用药后出现皮疹瘙痒", "静脉滴注后寒战发热", "服药两周后肝功能异常"],
    "product_use": ["注射笔无法正常出药", "分散片溶解后有絮状物", "包装铝箔难以撕开"],
    "service_process": ["发票开具延迟", "退货流程不清楚", "学术资料申请无人跟进"],
    "relationship": ["药剂科反映拜访频率过高", "经销商对返利政策有异议"],
    "drug_info": ["咨询药品储存条件", "咨询与华法林合用的相互作用", "咨询说明书更新内容", "咨询医保报销范围"],
    "usage_guidance": ["咨询肾功能不全患者剂量调整", "咨询孕期用药安全性", "咨询漏服后如何补服"],
    "order_delivery": ["订单延迟到货", "到货数量与订单不符", "冷链运输温度记录缺失"],
    "service_attitude": ["对热线接听态度不满意"],
    "other": ["索取学术会议资料", "咨询产品招标资质文件"],
}
CHANNEL_WEIGHTS = {Channel.PHONE: 6, Channel.EMAIL: 2, Channel.WEB: 1, Channel.VISIT: 1}
HANDLERS = ("agent", "expert", "support", "aftersales")
ROOT_CAUSES = [RootCause.USAGE, RootCause.INFORMATION, RootCause.LOGISTICS, RootCause.PRODUCT_QUALITY, RootCause.NO_FAULT]
# a complaint's cause follows its kind, so that the complaint analysis' Pareto reads like a real desk's
COMPLAINT_CAUSES = {
    "order_delivery": [RootCause.LOGISTICS, RootCause.LOGISTICS, RootCause.LOGISTICS, RootCause.PRODUCT_QUALITY,
                       RootCause.NO_FAULT],
    "service_attitude": [RootCause.STAFF, RootCause.STAFF, RootCause.SERVICE_PROCESS],
    "service_process": [RootCause.SERVICE_PROCESS, RootCause.SERVICE_PROCESS, RootCause.INFORMATION],
    "relationship": [RootCause.SERVICE_PROCESS, RootCause.INFORMATION, RootCause.OTHER],
}  # fmt: skip
HISTORY_MARKER = "demo:complaint-history"
HISTORY_MONTHS = 11


PRODUCT_CATEGORIES = {"medication_error", "adverse_reaction", "product_use", "drug_info", "usage_guidance",
                      "order_delivery"}
REPLIES = [
    "您好，已为您核实：该药品请于 2–8℃ 冷藏保存，避免冷冻。如有其他疑问请随时联系我们。",
    "您好，关于您咨询的剂量调整问题，我们的医学信息专员已整理说明书相关内容，稍后发送至您的邮箱。",
    "您好，您反映的到货问题已转交物流部门，预计明天上午前给您答复。",
]
NOTES = ["已与物流部确认批次出库记录。", "客户情绪较急，请优先处理。", "需要医学部确认后再答复客户。"]
REVISIT_COMMENTS = {True: ["问题已解决，感谢及时回复。", "处理很专业。"], False: ["等待时间太长。", "问题没有彻底解决。"]}


def _link_a_pair(user) -> None:
    """Two open tickets about the same delivery: linked as related, so the links panel has something."""
    from .models import Ticket

    pair = list(Ticket.objects.filter(category__code="order_delivery", status__in=["new", "assigned", "in_progress"])
                .order_by("id")[:2])  # fmt: skip
    if len(pair) == 2:
        linking.link(user, pair[0], pair[1])


def _working_moment(rng: random.Random, now: dt.datetime, days_back: int) -> dt.datetime:
    day = timezone.localtime(now).date() - dt.timedelta(days=days_back)
    minute = rng.choice([rng.randint(8 * 60 + 30, 11 * 60 + 50), rng.randint(13 * 60 + 30, 17 * 60 + 20)])
    moment = dt.datetime.combine(day, dt.time(minute // 60, minute % 60), timezone.get_current_timezone())
    return min(moment, now - dt.timedelta(minutes=5))


TICKETS = 150  # the desk's last two weeks at the full demo's 300 institutions


def ticket_count(scale: float) -> int:
    """How many desk tickets a demo of `scale` gets: in proportion to its customers, never so few that a status of
    the ticket's lifecycle would be missing (60 walk every one with the demo's seed)."""
    return max(60, round(TICKETS * scale))


def load(people, seed: int = 2026, count: int = TICKETS) -> int:
    """Create the demo tickets unless they are there; returns how many were made."""
    if Counter.objects.filter(name=MARKER).exists():
        return 0
    rng = random.Random(seed)
    users = {u.username: u for u in User.objects.filter(username__in=(*HANDLERS, "kam", "rep", "manager", "admin"))}
    if "agent" not in users or not people:
        return 0
    now = timezone.now()
    made = 0
    with transaction.atomic():
        knowledge_demo.seed_demo()
        routing_demo.seed_demo()
        products = list(Product.objects.filter(active=True).order_by("id"))
        hotline = Team.objects.filter(name=routing_demo.HOTLINE).first()
        for i in range(count):
            category = rng.choice(list(SUBJECTS))
            received = _working_moment(rng, now, rng.randint(0, 14))
            person = rng.choice(people) if rng.random() < 0.85 else None
            data = {
                "subject": rng.choice(SUBJECTS[category]), "category": category, "received_at": received,
                "channel": rng.choices(list(CHANNEL_WEIGHTS), weights=list(CHANNEL_WEIGHTS.values()))[0],
                "description": "客户来电反映情况，已记录详细经过，待进一步核实。",
            }  # fmt: skip
            if products and category in PRODUCT_CATEGORIES:
                data["product"] = rng.choice(products)
                data["batch_number"] = f"{received:%y%m}{rng.randint(100, 999)}"
            if person is not None:
                data["person"], data["institution"] = person, person.institution
            else:
                data["caller_name"] = rng.choice(["王先生", "李女士", "张女士", "刘先生"])
                data["caller_phone"] = f"13{rng.randint(0, 9)}{rng.randint(10_000_000, 99_999_999)}"
            handler = users.get(rng.choice(HANDLERS)) or users["agent"]
            queue_only = hotline is not None and rng.random() < 0.12
            if queue_only:  # left in the team queue for someone to pick up: stays new
                data["team"] = hotline
            ticket = services.create_ticket(users["agent"], data)
            if not queue_only:
                _progress(rng, ticket, handler, received, now, i)
            made += 1
        _link_a_pair(users["agent"])
        _demo_reviews(rng, users)
        if "manager" in users:
            _demo_goals(users["manager"], hotline)
        Counter.objects.create(name=MARKER, value=made)
    return made


FINDINGS = {
    "accurate": "告知的储存条件有误：本品应2–8℃冷藏，已辅导并请其复核知识库条目。",
    "compliant": "答复中提及说明书外用法，属超说明书宣传，已提醒合规要求。",
    "complete": "工单未记录批号与回访结果，已要求补全。",
    "courteous": "未告知客户处理结果即关闭，已辅导服务规范。",
}


def _demo_reviews(rng: random.Random, users: dict) -> None:
    """Quality reviews (服务质检) of about three in five handled tickets: the product expert reviews the others'
    tickets, the manager the expert's; one in five with a finding, each criterion in turn."""
    from . import quality
    from .models import Ticket

    reviewers = [users[name] for name in ("expert", "manager") if name in users]
    if not reviewers:
        return
    made = 0
    for ticket in Ticket.objects.filter(status__in=quality.REVIEWABLE).select_related("assignee").order_by("id"):
        if rng.random() >= 0.6:
            continue
        reviewer = next((r for r in reviewers if r.pk != ticket.assignee_id), None)
        if reviewer is None or not quality.may_review(reviewer, ticket):
            continue
        data = dict.fromkeys(quality.CRITERIA, True)
        data["comment"] = ""
        if made % 5 == 2:
            missed = list(FINDINGS)[made // 5 % len(FINDINGS)]
            data[missed], data["comment"] = False, FINDINGS[missed]
        quality.review(reviewer, ticket, data)
        made += 1
    _demo_appeals(users)


APPEALS = ("已在备注中记录批号，系统显示延迟同步。", "说明书【贮藏】项写明遮光、密封、15–25℃保存，答复与说明书一致。")


def _demo_appeals(users: dict) -> None:
    """Agents appeal two findings (质检申诉): the administrator rejected the first, the second waits for a manager."""
    from . import quality
    from .models import QualityReview

    decider = users.get("admin")
    appealed = 0
    for review in QualityReview.objects.filter(appeal_status="").select_related("ticket", "agent").order_by("id"):
        if review.agent is None or quality.appeal_refusal(review.agent, review):  # no finding, or no agent
            continue
        quality.appeal(review.agent, review, APPEALS[appealed], version=review.version)
        if appealed == 0 and decider is not None and quality.may_decide(decider, review):
            quality.decide_appeal(decider, review, False, "复核工单记录，批号未登记，维持原质检结论。",
                                  version=review.version)  # fmt: skip
        appealed += 1
        if appealed == len(APPEALS):
            return


# the service goals a desk starts from (服务目标), and the hotline's own: it answers faster than the desk as a whole
DESK_GOALS = {"resolution_rate": "85", "fr_median": "4", "res_p90": "72", "fr_sla": "90", "res_sla": "85",
              "csat": "4.2", "nps": "30", "complaint_rate": "90",
              "accuracy": "90"}  # fmt: skip
HOTLINE_GOALS = {"fr_median": "1", "fr_sla": "95"}


def _demo_goals(manager, hotline) -> None:
    from . import goals
    from .models import ServiceGoalChange

    if ServiceGoalChange.objects.exists():  # goals someone set already: theirs stand
        return

    since = timezone.now() - dt.timedelta(days=365)  # the goals the desk has worked to all year: its past months judged
    goals.save(manager, DESK_GOALS, source="demo", since=since)
    if hotline is not None:
        goals.save(manager, HOTLINE_GOALS, team=hotline, source="demo", since=since)


IMPACT_NOTES = {
    Impact.MINOR: "客户等待时间较长，已致歉并说明改进措施。",
    Impact.MODERATE: "影响客户正常采购安排，已安排专人跟进并补发。",
    Impact.SEVERE: "客户表示将向上级主管部门反映，已上报质量与合规部门。",
}


def demo_impact(rng: random.Random, ticket) -> dict:
    """A plausible impact assessment when the demo resolves a complaint (nothing for other tickets)."""
    if not ticket.category.complaint:
        return {}
    customer = rng.choices([Impact.NONE, Impact.MINOR, Impact.MODERATE, Impact.SEVERE], [2, 5, 2, 1])[0]
    company = rng.choices([Impact.NONE, Impact.MINOR, Impact.MODERATE], [4, 4, 1])[0]
    return {"customer_impact": customer, "company_impact": company, "impact_note": IMPACT_NOTES.get(customer, "")}


def _progress(rng: random.Random, ticket, handler, received: dt.datetime, now: dt.datetime, i: int) -> None:
    """Walk the ticket along its lifecycle at plausible times; the newest stay new."""
    age = now - received
    stage = rng.random()
    if age < dt.timedelta(hours=2) or stage < 0.12:
        return  # as routed (assigned by the rules, or new in a team queue)
    step = received + dt.timedelta(minutes=rng.randint(10, 90))
    ticket.assignee = handler
    services.transition(handler, ticket, Status.ASSIGNED, at=min(step, now))
    if stage < 0.2:
        return  # assigned, untouched: some of these run past their deadline
    step += dt.timedelta(minutes=rng.randint(5, 120))
    if rng.random() < 0.5:
        conversation.post_message(handler, ticket, kind=MessageKind.REPLY, body=rng.choice(REPLIES), at=min(step, now))
    else:
        services.record_response(handler, ticket, at=min(step, now))
    if rng.random() < 0.4:
        conversation.post_message(handler, ticket, kind=MessageKind.NOTE, body=rng.choice(NOTES), at=min(step, now))
    services.transition(handler, ticket, Status.IN_PROGRESS, at=min(step, now))
    if stage < 0.35:
        return
    if stage < 0.45:
        services.transition(handler, ticket, Status.WAITING, at=min(step + dt.timedelta(hours=1), now))
        return
    step += dt.timedelta(hours=rng.randint(1, 30))
    if step >= now:
        return
    services.transition(handler, ticket, Status.RESOLVED, at=step, resolution_summary="已向客户说明处理结果。",
                        root_cause=rng.choice(COMPLAINT_CAUSES.get(ticket.category.code, ROOT_CAUSES)),
                        **demo_impact(rng, ticket))  # fmt: skip
    if stage < 0.6:
        return
    step += dt.timedelta(hours=rng.randint(1, 8))
    if step < now:
        services.transition(handler, ticket, Status.INFORMED, at=step, informed_channel=Channel.PHONE)
        if stage > 0.75 and step + dt.timedelta(days=1) < now:
            services.transition(handler, ticket, Status.CLOSED, at=step + dt.timedelta(days=1))
            if rng.random() < 0.7:  # the revisit call; now and then a customer is not happy
                score = rng.choices([5, 4, 3, 2], weights=[6, 3, 1, 1])[0]
                revisit.record_phone_revisit(handler, ticket, score, score > 2, rng.choice(REVISIT_COMMENTS[score > 2]))


def load_complaint_history(people, seed: int = 2027) -> int:
    """A year of complaints for the complaint analysis' trend (the demo desk's tickets are of the last two weeks):
    two to five a month over the eleven months before this one, each handled — resolved with its cause and impact,
    the customer informed, closed — and a severe one followed by an improvement action. Loaded once (its marker)."""
    from .models import TicketCategory

    if Counter.objects.filter(name=HISTORY_MARKER).exists():
        return 0
    users = {u.username: u for u in User.objects.filter(username__in=("agent", "aftersales", "manager"))}
    if "agent" not in users or "manager" not in users or not people:
        return 0
    rng = random.Random(seed)
    codes = list(TicketCategory.objects.filter(complaint=True, code__in=list(COMPLAINT_CAUSES)).values_list(
        "code", flat=True))  # fmt: skip
    if not codes:
        return 0
    products = list(Product.objects.filter(active=True).order_by("id"))
    today = timezone.localdate()
    made = 0
    with transaction.atomic():
        for back in range(HISTORY_MONTHS, 0, -1):
            year, month = divmod(today.year * 12 + today.month - 1 - back, 12)
            first = dt.date(year, month + 1, 1)
            for _n in range(rng.randint(2, 5)):
                category = rng.choice(codes)
                day = first + dt.timedelta(days=rng.randint(0, 20))
                received = timezone.make_aware(dt.datetime.combine(day, dt.time(rng.randint(9, 16), rng.choice([0, 20, 40]))))
                person = rng.choice(people)
                data = {"subject": rng.choice(SUBJECTS[category]), "category": category, "received_at": received,
                        "channel": Channel.PHONE, "person": person, "institution": person.institution,
                        "description": "客户来电投诉，已记录详细经过。"}  # fmt: skip
                if products and category == "order_delivery":
                    data["product"] = rng.choice(products)
                handler = users.get("aftersales") if category == "order_delivery" else users["agent"]
                ticket = services.create_ticket(users["agent"], data)
                ticket.assignee = handler or users["agent"]
                services.transition(ticket.assignee, ticket, Status.ASSIGNED, at=received + dt.timedelta(minutes=20))
                services.record_response(ticket.assignee, ticket, at=received + dt.timedelta(minutes=rng.randint(30, 180)))
                done = received + dt.timedelta(hours=rng.choice([3, 8, 20, 30, 52]))
                impact = demo_impact(rng, ticket)
                services.transition(ticket.assignee, ticket, Status.RESOLVED, at=done, resolution_summary="已向客户说明处理结果。",
                                    root_cause=rng.choice(COMPLAINT_CAUSES[category]), **impact)  # fmt: skip
                services.transition(ticket.assignee, ticket, Status.INFORMED, at=done + dt.timedelta(hours=2),
                                    informed_channel=Channel.PHONE)  # fmt: skip
                services.transition(ticket.assignee, ticket, Status.CLOSED, at=done + dt.timedelta(days=1))
                if impact.get("customer_impact") == Impact.SEVERE:
                    action = revisit.create_action(users["manager"], {
                        "ticket": ticket, "title": "针对严重投诉的整改：" + ticket.subject, "owner": users["manager"],
                        "due_date": today + dt.timedelta(days=rng.randint(7, 30)),
                    })  # fmt: skip
                    if back > 2:  # the older ones put right already
                        revisit.transition_action(users["manager"], action, "done", outcome="已完成整改并回访客户。")
                made += 1
        Counter.objects.create(name=HISTORY_MARKER, value=made)
    return made
