"""Demo data for `pharmacrm demo`: last quarter's satisfaction survey campaign (上季度客户满意度调查), closed, with
about forty customers asked — most by mail (their contact gave the surveys consent), the rest called — and their
answers, two poor ones having opened improvement actions on the customer; so that `make run` shows a campaign's
figures, per class, and its answers. And this quarter's, prepared by the manager and not started yet. Loaded once
(its own marker)."""

from __future__ import annotations

import datetime as dt
import random

from django.db import transaction
from django.utils import timezone

from pharmacrm.core.models import Counter

from . import campaigns, services
from .choices import CampaignStatus, SurveyChannel, TargetMail, TargetReach
from .models import CampaignTarget, Survey, SurveyCampaign

MARKER = "demo:survey-campaign"
COMMENTS = {5: ["服务很及时，学术支持到位。", "配送准时，联系顺畅。"], 4: ["整体满意，希望资料更新更快。", ""],
            3: ["一般，有时电话不好打通。", ""], 2: ["到货经常延迟，希望改进。"], 1: ["投诉处理太慢，很不满意。"]}  # fmt: skip


def _last_quarter(today: dt.date) -> str:
    q = (today.month - 1) // 3 + 1
    return f"{today.year}Q{q - 1}" if q > 1 else f"{today.year - 1}Q4"


def load(seed: int = 2026, count: int = 40) -> int:
    """Create the campaign unless it is there; returns how many customers it asked."""
    from pharmacrm.customers.choices import Channel, ConsentPurpose, ConsentStatus
    from pharmacrm.customers.models import Consent, Person

    if Counter.objects.filter(name=MARKER).exists():
        return 0
    rng = random.Random(seed)
    period = _last_quarter(timezone.localdate())
    start, end = campaigns.period_span(period)
    tz = timezone.get_current_timezone()
    started = dt.datetime.combine(end - dt.timedelta(days=20), dt.time(9), tzinfo=tz)
    people = list(
        Person.objects.active().filter(institution__isnull=False, institution__merged_into__isnull=True)
        .exclude(institution__kind="department").select_related("institution").order_by("institution_id", "id")[:400]
    )  # fmt: skip
    chosen, seen = [], set()
    for p in people:
        if p.institution_id not in seen:
            seen.add(p.institution_id)
            chosen.append(p)
    chosen = chosen[:count]
    if not chosen:
        return 0
    from pharmacrm.engagement import plans
    from pharmacrm.keyaccounts.models import Score

    class_period = plans.class_period() or ""
    classes = dict(Score.objects.filter(kind=plans.EVALUATION, period=class_period,
                                        institution_id__in=[p.institution_id for p in chosen])
                   .values_list("institution_id", "klass")) if class_period else {}  # fmt: skip
    weights = {5: 5, 4: 6, 3: 3, 2: 1, 1: 1}
    nps = {5: (9, 10), 4: (7, 9), 3: (5, 7), 2: (2, 5), 1: (0, 3)}
    with transaction.atomic():
        campaign = SurveyCampaign.objects.create(
            name=campaigns.default_name(period), period=period, status=CampaignStatus.CLOSED, started_at=started,
            closed_at=dt.datetime.combine(end, dt.time(18), tzinfo=tz), created_at=started, updated_at=started,
            class_period=class_period,
        )  # fmt: skip
        poor = n_answers = 0
        for i, person in enumerate(chosen):
            by_mail = bool(person.email) and i % 4 != 3
            if by_mail:
                Consent.objects.create(person=person, purpose=ConsentPurpose.SURVEYS, channel=Channel.EMAIL,
                                       status=ConsentStatus.GIVEN, at=started - dt.timedelta(days=60),
                                       evidence="演示数据：客户在学术会议签到表上勾选同意接受满意度调查。")  # fmt: skip
            target = CampaignTarget.objects.create(
                campaign=campaign, institution_id=person.institution_id, person=person,
                klass=classes.get(person.institution_id) or "", reach=TargetReach.MAIL if by_mail else TargetReach.NO_CONSENT,
                mail=TargetMail.SENT if by_mail else TargetMail.NONE, attempts=1 if by_mail else 0,
            )  # fmt: skip
            answers = rng.random() < (0.65 if by_mail else 0.5)
            if not (by_mail or answers):
                continue
            sent = started + dt.timedelta(minutes=i)
            score = rng.choices(list(weights), weights=list(weights.values()))[0] if answers else None
            if score is not None:
                n_answers += 1
                if n_answers == 3 and not poor:  # one poor answer at least, whatever the scale: its action shows
                    score = 2
            if score is not None and score <= 2:
                if poor >= 2:
                    score = 3
                poor += 1
            answered = sent + dt.timedelta(days=rng.randint(0, 12), hours=rng.randint(1, 8)) if answers else None
            survey = Survey.objects.create(
                campaign=campaign, institution_id=person.institution_id, person=person,
                channel=SurveyChannel.LINK if by_mail else SurveyChannel.PHONE, sent_to=person.email if by_mail else "",
                sent_at=sent, expires_at=sent + dt.timedelta(days=14) if by_mail else None, answered_at=answered,
                score=score, recommend=rng.randint(*nps[score]) if score and rng.random() < 0.85 else None,
                comment=rng.choice(COMMENTS[score]) if score else "", created_at=sent,
            )  # fmt: skip
            CampaignTarget.objects.filter(pk=target.pk).update(survey=survey)
            if score is not None:
                campaigns.conclude(services.SYSTEM, survey)  # a poor answer opens its improvement action
        _draft_this_quarter()
        Counter.objects.create(name=MARKER, value=len(chosen))
    return len(chosen)


def _draft_this_quarter() -> None:
    """This quarter's campaign, prepared by the manager (every customer) and not started: what a manager finds on
    the page in the quarter's last weeks, to check the customers and start."""
    from pharmacrm.core.models import User

    manager = User.objects.filter(username="manager", is_active=True).first()
    if manager is not None:
        campaigns.create_campaign(manager, {"period": campaigns.current_quarter()})
