"""Demo communication plans for `pharmacrm demo`: the default annual plan per customer class (seed 002 三.(一) asks
for one per class — goal, channel, frequency — and names no frequency, so these are a starting point the managers
change): class A a visit a month and a call every two weeks, B a visit a quarter and a call a month, C a call a
quarter, D a call a half-year. Loaded once (marker `demo:communication-plans`), for this year, by the demo manager."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from pharmacrm.core.models import Counter, User

MARKER = "demo:communication-plans"

DEFAULT_PLANS = [
    ("A", "重点维护：每月拜访了解用药需求与学术支持，双周电话跟进。", [("visit", 1, "month"), ("phone", 2, "month")]),
    ("B", "稳定合作：每季度拜访介绍新产品，每月电话保持联系。", [("visit", 1, "quarter"), ("phone", 1, "month")]),
    ("C", "提升潜力：每季度电话了解需求与采购计划。", [("phone", 1, "quarter")]),
    ("D", "基础联系：每半年电话回访，分析原因并寻找改进机会。", [("phone", 1, "half")]),
]


def load() -> int:
    """The default plans of this year unless they were loaded; returns how many plans."""
    from . import plans

    if Counter.objects.filter(name=MARKER).exists():
        return 0
    manager = User.objects.filter(username="manager", is_active=True).first()
    if manager is None:
        return 0
    year = timezone.localdate().year
    with transaction.atomic():
        made = 0
        for klass, goal, lines in DEFAULT_PLANS:
            data = {"year": year, "klass": klass, "goal": goal,
                    "lines": [{"channel": c, "minimum": n, "period": p} for c, n, p in lines]}  # fmt: skip
            if not plans.check(data):
                plans.save_plan(manager, data)
                made += 1
        Counter.objects.create(name=MARKER, value=made)
    return made


STAGE_MARKER = "demo:stage-tasks"
STAGE_TASK_CUSTOMERS = 80  # owned customers given stage tasks


def load_stage_tasks(seed: int = 46) -> int:
    """The lifecycle for the demo, cheaply (a few bulk queries, no per-record service): every demo customer's stage
    as entered some days ago (the customers were bulk-created, not through the forms), and for up to
    STAGE_TASK_CUSTOMERS owned institutions their stage's playbook tasks in every state — open, overdue, done, skipped
    with a reason, closed when the stage was left. Once (marker `demo:stage-tasks`). Returns how many tasks."""
    import datetime as dt
    import random

    from django.db.models import Exists, OuterRef

    from pharmacrm.customers.models import Institution, Person

    from . import playbook
    from .models import StageSpell, StageTask
    from .models import StageTaskStatus as TS

    if Counter.objects.filter(name=STAGE_MARKER).exists():
        return 0
    rng = random.Random(seed)
    now = timezone.now()
    with transaction.atomic():
        for model, fk in ((Institution, "institution"), (Person, "person")):
            current = StageSpell.objects.filter(**{fk: OuterRef("pk")}, left_at=None)
            rows = model.objects.active().exclude(Exists(current)).values_list("pk", "stage").order_by("pk")
            StageSpell.objects.bulk_create(
                [StageSpell(**{f"{fk}_id": pk}, stage=stage, entered_at=now - dt.timedelta(days=5 + pk % 200))
                 for pk, stage in rows], batch_size=2000)  # fmt: skip
        playbook_actions = playbook.actions_by_stage()
        customers = list(
            Institution.objects.active().filter(owner__isnull=False).exclude(kind="department")
            .exclude(Exists(StageTask.objects.filter(institution=OuterRef("pk"))))
            .values_list("pk", "stage", "owner_id", "team_id").order_by("pk")[:STAGE_TASK_CUSTOMERS]
        )  # fmt: skip
        engine = playbook.calendar()
        dues: dict[tuple, tuple[dt.date, list[int]]] = {}
        tasks = []
        states = [TS.OPEN, TS.OPEN, TS.DONE, TS.SKIPPED, TS.LEFT]
        for n, (pk, stage, owner, team) in enumerate(customers):
            back = 3 + rng.randrange(40)  # the stage was entered this many days ago
            given = now - dt.timedelta(days=back)
            StageSpell.objects.filter(institution_id=pk, left_at=None).update(entered_at=given)
            for action in playbook_actions.get(stage, []):
                key = (back, action.due_days)
                if key not in dues:
                    dues[key] = playbook.provisional_due(timezone.localdate(given), action.due_days, engine)
                status = states[(n + action.position) % len(states)]
                task = StageTask(institution_id=pk, action=action, stage=stage, owner_id=owner, team_id=team,
                                 due_on=dues[key][0], due_provisional=bool(dues[key][1]), status=status, created_at=given, updated_at=given)  # fmt: skip
                if status == TS.DONE:
                    task.done_at = task.closed_at = given + dt.timedelta(days=rng.randrange(1, 8))
                    task.done_on = timezone.localdate(task.done_at)
                    task.note = "已完成，客户反馈良好。"
                elif status == TS.SKIPPED:
                    task.closed_at = given + dt.timedelta(days=1)
                    task.reason = "客户近期不便接待，改为下季度再联系。"
                elif status == TS.LEFT:
                    task.closed_at = given + dt.timedelta(days=2)
                tasks.append(task)
        StageTask.objects.bulk_create(tasks, batch_size=2000)
        Counter.objects.create(name=STAGE_MARKER, value=len(tasks))
    return len(tasks)


INTERACTIONS_MARKER = "demo:interactions"
INTERACTION_MONTHS = 13  # a year and the month before it: the channel effect of last year's months, and their trend
# contacts per month by tier (a key account's team is there every week, a regular customer hears from its rep once
# or twice a month); new customers are left to their first follow-up
CONTACTS_PER_MONTH = {"key": 4.0, "vip": 2.5, "regular": 1.2}
CHANNEL_MIX = (("visit", 34), ("phone", 26), ("wechat", 24), ("email", 8), ("meeting", 6), ("other", 2))
SUBJECTS = {
    "visit": ["例行拜访，了解本月用药需求", "拜访科室主任，介绍新规格产品", "拜访药剂科，沟通下季度采购计划",
              "陪同产品专家拜访，解答临床使用问题"],
    "phone": ["电话跟进采购计划", "电话确认到货情况", "电话回访用药反馈", "电话沟通回款安排"],
    "wechat": ["微信发送产品说明书更新", "微信沟通学术会议安排", "微信跟进样品使用情况", "微信确认拜访时间"],
    "email": ["邮件发送报价单", "邮件发送资质文件", "邮件确认合同条款"],
    "meeting": ["参加科室学术会", "区域学术研讨会交流", "新品上市推介会"],
    "other": ["展会现场交流", "行业协会活动交流"],
}  # fmt: skip


def load_interactions(seed: int = 53) -> int:
    """A year of the reps' and key-account managers' contacts with the customers they own (visits, calls, WeChat,
    e-mail, meetings), so that the interactions list, the communication plans' contacts and the channel effect show
    a lived-in system. Existing customers only (tier regular, VIP or key account; a new customer awaits its first
    follow-up), each contact after the customer was recorded and before today, by the customer's owner, half of
    them with one of its people. Bulk-created (demo records, no audit entries or safety screening: their texts
    mention no reaction). Once (marker `demo:interactions`). Returns how many interactions."""
    import datetime as dt
    import random

    from pharmacrm.customers.models import Institution, Person

    from .models import Interaction

    if Counter.objects.filter(name=INTERACTIONS_MARKER).exists():
        return 0
    rng = random.Random(seed)
    now = timezone.now()
    start = now - dt.timedelta(days=30 * INTERACTION_MONTHS)
    customers = list(
        Institution.objects.active().filter(owner__isnull=False, parent__isnull=True, tier__in=CONTACTS_PER_MONTH)
        .values_list("pk", "tier", "owner_id", "created_at").order_by("pk")
    )  # fmt: skip
    people: dict[int, list[int]] = {}
    for pk, institution in Person.objects.active().filter(
            institution_id__in=[c[0] for c in customers]).values_list("pk", "institution_id").order_by("pk"):
        people.setdefault(institution, []).append(pk)
    channels = [c for c, _w in CHANNEL_MIX]
    weights = [w for _c, w in CHANNEL_MIX]
    rows = []
    for pk, tier, owner, created in customers:
        since = max(start, created)
        span = (now - since).total_seconds()
        if span < 86400:
            continue
        count = round(CONTACTS_PER_MONTH[tier] * span / (30 * 86400) * rng.uniform(0.6, 1.4))
        for _n in range(count):
            channel = rng.choices(channels, weights)[0]
            at = since + dt.timedelta(seconds=rng.uniform(0, span - 3600))
            at = at.replace(hour=rng.randint(1, 9), minute=rng.randrange(60))  # 09:00–17:59 in Beijing (UTC+8)
            if at >= now or at < since:
                continue
            person = rng.choice(people[pk]) if people.get(pk) and rng.random() < 0.5 else None
            rows.append(Interaction(institution_id=pk, person_id=person, channel=channel, received_at=at,
                                    subject=rng.choice(SUBJECTS[channel]), created_by_id=owner, created_at=at,
                                    updated_at=at))  # fmt: skip
    with transaction.atomic():
        Interaction.objects.bulk_create(rows, batch_size=2000)
        Counter.objects.create(name=INTERACTIONS_MARKER, value=len(rows))
    return len(rows)
