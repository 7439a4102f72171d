"""Demo data for `pharmacrm demo`: the manager (factory leadership) has the service performance, the sales attainment
and the key-account progress report mailed each month or quarter, the first of them sent last month; an analyst the
complaint analysis each quarter — so that `make run` shows scheduled reports. Loaded once (its own marker)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from pharmacrm.core.models import Counter, User

from . import services
from .models import Frequency, Report, ReportSubscription

MARKER = "demo:report-subscriptions"
PLAN = (
    ("manager", Report.SERVICE_PERFORMANCE, Frequency.MONTH, True),
    ("manager", Report.SALES_ATTAINMENT, Frequency.MONTH, True),
    ("manager", Report.KEYACCOUNT_PROGRESS, Frequency.QUARTER, False),
    ("analyst", Report.COMPLAINT_ANALYSIS, Frequency.QUARTER, False),
)


def load() -> int:
    if Counter.objects.filter(name=MARKER).exists():
        return 0
    now = timezone.now()
    made = 0
    with transaction.atomic():
        for username, report, frequency, sent in PLAN:
            user = User.objects.filter(username=username, is_active=True).first()
            if user is None or not user.email:
                continue
            if ReportSubscription.objects.filter(user=user, report=report, frequency=frequency, team=None).exists():
                continue  # kept from an earlier load (a demo loaded again after its markers were cleared)
            sub = services.subscribe(user, {"report": report, "frequency": frequency}, now=now)
            if sent:  # as the worker left it after last month's mail
                last = services.period_before(frequency, now)
                ReportSubscription.objects.filter(pk=sub.pk).update(
                    last_period=last.key, last_sent_at=last.end.replace(hour=services.SEND_HOUR)
                )
            made += 1
        Counter.objects.create(name=MARKER, value=made)
    return made
