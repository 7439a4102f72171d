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
