"""Periodic customer satisfaction surveys (定期满意度调查, seed 000 §4.1 and §8.1): a campaign asks the customers its
criteria select — class of the customer evaluation in force, tier, type, province, owner, team — once per period
(a quarter by default, a half-year or a year). It reuses the revisit's machinery (revisit.py): the same `Survey`
rows (with the campaign, customer and contact person instead of a ticket), signed expiring single-use links of
which only the hash is stored, the public answer page, CSAT 1–5 and NPS 0–10, the phone recording, and a poor
answer's improvement action — opened on the customer, as there is no ticket to reopen.

Draft → sending → closed. Starting writes the target list (one row per customer: its contact person and how they
are reached) and queues the mails; the worker sends them one by one. Each target's mail is claimed by a committed
"being sent" mark *before* the mail leaves, so that a worker killed between the send and the final commit never
mails the person twice (the mark stays "being sent"; it is shown, not retried). A person is asked once per
campaign, and not at all when they answered any survey in the last SERVICEDESK_CAMPAIGN_QUIET_DAYS days."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import unicodedata

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task

from pharmacrm.core import access, audit, wording
from pharmacrm.core.deferred import Message
from pharmacrm.core.ids import is_id
from pharmacrm.core.models import AuditEntry, Team, User
from pharmacrm.core.roles import Cap, Role
from pharmacrm.core.tasks import local_crontab
from pharmacrm.customers import normalise

from . import revisit, services
from .choices import CampaignStatus, LowScore, SurveyChannel, TargetMail, TargetReach
from .models import CampaignTarget, Survey, SurveyCampaign

log = logging.getLogger(__name__)
A = AuditEntry.Action
CLASSES = ("A", "B", "C", "D")
MAX_ATTEMPTS = 3
# how a customer's contact person is chosen: the first reachable by mail, else one to call, else why nobody is asked
RANK = {TargetReach.MAIL: 0, TargetReach.NO_CONSENT: 1, TargetReach.NO_EMAIL: 2, TargetReach.RECENT: 3,
        TargetReach.WITHDRAWN: 4}  # fmt: skip
UNREACHABLE = (TargetReach.NO_PERSON, TargetReach.NO_EMAIL, TargetReach.NO_CONSENT)  # asked on the phone instead
NOT_ASKED = (TargetReach.RECENT, TargetReach.WITHDRAWN)
CRITERIA = ("klass", "tier", "institution_kind", "province", "owner", "team")


# --- who may do what ----------------------------------------------------------------------------------


def may_manage(user) -> bool:
    """Prepare, start and close campaigns: the service managers (as the revisit's settings)."""
    return access.can(user, Cap.MANAGE_SERVICE)


def may_see_results(user) -> bool:
    """The figures, the answers and the export: who sees the service performance."""
    return access.can(user, Cap.VIEW_SERVICE_PERFORMANCE) or may_manage(user)


def may_view(user) -> bool:
    """The campaign pages: the results' readers, and those who handle tickets (they call the customers that no mail
    reaches, within the customers they may see)."""
    return may_see_results(user) or access.can(user, Cap.HANDLE_TICKETS)


def require_view(user) -> None:
    if not may_view(user):
        raise PermissionDenied(_("You may not see satisfaction survey campaigns."))


def targets_for(user, campaign: SurveyCampaign) -> QuerySet:
    """The targets the user may see: every one for the results' readers, else those of customers they may see."""
    qs = CampaignTarget.objects.filter(campaign=campaign)
    if may_see_results(user):
        return qs
    if not may_view(user):
        return qs.none()
    return qs.filter(institution_id__in=access.institutions_for(user).values("id"))


# --- periods ------------------------------------------------------------------------------------------


def period_span(period: str) -> tuple[dt.date, dt.date]:
    """2026Q4 → (2026-10-01, 2026-12-31); 2026H2 → the half-year; 2026 → the year."""
    year = int(period[:4])
    if len(period) == 4:
        return dt.date(year, 1, 1), dt.date(year, 12, 31)
    n = int(period[5])
    first, months = (3 * n - 2, 3) if period[4] == "Q" else (6 * n - 5, 6)
    after = first - 1 + months
    following = dt.date(year + after // 12, after % 12 + 1, 1)
    return dt.date(year, first, 1), following - dt.timedelta(days=1)


def clean_period(value) -> str:
    """The period as stored (2026q4, ２０２６Ｑ４ → 2026Q4); ValidationError naming the field otherwise."""
    label = unicodedata.normalize("NFKC", str(value or "")).strip().upper()
    ok = (
        len(label) == 4 and label.isdigit()
        or len(label) == 6 and label[:4].isdigit() and label[4] == "Q" and label[5] in "1234"
        or len(label) == 6 and label[:4].isdigit() and label[4] == "H" and label[5] in "12"
    )  # fmt: skip
    if not ok or not 2000 <= int(label[:4]) <= 2999:
        raise ValidationError({"period": [_(
            "Write the period as 2026Q4 (a quarter), 2026H2 (a half-year) or 2026 (a year)."
        )]})  # fmt: skip
    start, end = period_span(label)
    today = timezone.localdate()
    # the survey asks how the period went: in it, or soon after (last quarter's survey sent in January)
    if end < today - dt.timedelta(days=92):
        raise ValidationError({"period": [_(
            "The period %(period)s ended on %(date)s: a campaign asks about the current period or the one that just "
            "ended."
        ) % {"period": label, "date": end.isoformat()}]})  # fmt: skip
    if start > today + dt.timedelta(days=366):
        raise ValidationError({"period": [_("The period %(period)s lies more than a year ahead.") % {"period": label}]})
    return label


def current_quarter(today: dt.date | None = None) -> str:
    today = today or timezone.localdate()
    return f"{today.year}Q{(today.month - 1) // 3 + 1}"


def default_name(period: str) -> str:
    """2026年第4季度客户满意度调查, in the site's language (a record for the staff)."""
    with translation.override(settings.LANGUAGE_CODE):
        if "Q" in period:
            return _("%(year)s Q%(n)s customer satisfaction survey") % {"year": period[:4], "n": period[5]}
        if "H" in period:
            return _("%(year)s H%(n)s customer satisfaction survey") % {"year": period[:4], "n": period[5]}
        return _("%(year)s customer satisfaction survey") % {"year": period}


# --- preparing a campaign -------------------------------------------------------------------------------


def _clean(data: dict, *, creating: bool) -> dict:
    from pharmacrm.core.models import Region
    from pharmacrm.customers.choices import InstitutionType, Tier

    errors: dict[str, list[str]] = {}
    out: dict = {}
    if "period" in data or creating:
        try:
            out["period"] = clean_period(data.get("period") or (current_quarter() if creating else ""))
        except ValidationError as e:
            errors.update(e.message_dict)
    if "name" in data or creating:
        name = (data.get("name") or "").replace("\x00", "").strip()
        if not name and "period" in out:
            name = default_name(out["period"])
        if len(name) > 120:
            errors["name"] = [_("The name is too long (at most %(max)d characters).") % {"max": 120}]
        elif not name and "period" not in errors:
            errors["name"] = [_("Give the campaign a name.")]
        out["name"] = name
    checks = {
        "klass": (CLASSES, _("Choose a customer class from A to D, or none.")),
        "tier": (Tier.values, _("Choose a tier from the list, or none.")),
        "institution_kind": ([v for v in InstitutionType.values if v != InstitutionType.DEPARTMENT],
                             _("Choose an institution type from the list (not a department), or none.")),
    }  # fmt: skip
    for field, (allowed, message) in checks.items():
        if field in data or creating:
            value = str(data.get(field) or "").strip()
            if value and value not in allowed:
                errors[field] = [message]
            out[field] = value
    if "province" in data or creating:
        code = str(data.get("province") or "").replace("\x00", "").strip()
        if code and not (len(code) == 6 and code.isdigit()
                         and Region.objects.filter(code=code, level=Region.Level.PROVINCE).exists()):  # fmt: skip
            errors["province"] = [_("No such province: give its six-digit code (北京市 110000).")]
        out["province"] = code
    if "owner" in data or creating:
        owner = data.get("owner")
        if owner is not None and not isinstance(owner, User):
            owner = User.objects.filter(pk=owner).first() if is_id(owner) else None
            if owner is None:
                errors["owner"] = [_("No such user.")]
        out["owner"] = owner
    if "team" in data or creating:
        team = data.get("team")
        if team is not None and not isinstance(team, Team):
            team = Team.objects.filter(pk=team).first() if is_id(team) else None
            if team is None:
                errors["team"] = [_("No such team.")]
        out["team"] = team
    if errors:
        raise ValidationError(errors)
    return out


def _snapshot(c: SurveyCampaign) -> dict:
    return {"name": c.name, "period": c.period, "klass": c.klass, "tier": c.tier, "institution_kind": c.institution_kind,
            "province": c.province, "owner": c.owner_id, "team": c.team_id, "status": c.status}  # fmt: skip


MAX_TARGETS = 20000  # customers a campaign asks at most: its list is written in one transaction when it starts


def too_many(n: int) -> ValidationError:
    return ValidationError({"targets": [_(
        "These criteria select %(n)s customers; a campaign asks at most %(max)s. Narrow the criteria (class, tier, "
        "type, province, owner or team), or run one campaign per region."
    ) % {"n": n, "max": MAX_TARGETS}]})  # fmt: skip


def _refuse_empty(campaign: SurveyCampaign) -> None:
    """No customer, or more than MAX_TARGETS: refused by name when the campaign is saved (and again at its start,
    as customers come and go)."""
    found = _institutions(campaign)[: MAX_TARGETS + 1].count()
    if not found:
        raise ValidationError({"targets": [_(
            "No customer matches these criteria: the campaign would ask nobody. Widen the criteria."
        )]})  # fmt: skip
    if found > MAX_TARGETS:
        raise too_many(_institutions(campaign).count())


def create_campaign(user, data: dict) -> SurveyCampaign:
    access.require(user, Cap.MANAGE_SERVICE)
    clean = _clean(data, creating=True)
    campaign = SurveyCampaign(**clean, created_by=user)
    _refuse_empty(campaign)
    with transaction.atomic():
        campaign.save(force_insert=True)
        audit.record(A.CREATE, campaign, user=user, changes=audit.diff({}, _snapshot(campaign)))
    return campaign


def _lock(campaign: SurveyCampaign) -> SurveyCampaign:
    """The campaign's row, locked against its other changes (start, close, an edit, a phone answer). NO KEY: the rows
    that merely refer to it (a survey answered by its link, checked at that commit) do not wait for it — a phone
    answer holding the campaign while it waited for the survey a link was answering deadlocked PostgreSQL."""
    return SurveyCampaign.objects.select_for_update(no_key=True).get(pk=campaign.pk)


def update_campaign(user, campaign: SurveyCampaign, data: dict, *, version: int | None = None) -> SurveyCampaign:
    """Change a draft's name, period or criteria (a campaign started keeps the list it was sent to)."""
    from pharmacrm.customers.services import ConflictError

    access.require(user, Cap.MANAGE_SERVICE)
    clean = _clean({k: v for k, v in data.items() if k in ("name", "period", *CRITERIA)}, creating=False)
    with transaction.atomic():
        current = _lock(campaign)
        if version is not None and (not is_id(version) or int(version) != current.version):
            raise ConflictError(current.version)
        if current.status != CampaignStatus.DRAFT:
            raise ValidationError({"status": [_("Only a draft campaign can be changed; this one was started.")]})
        before = _snapshot(current)
        for k, v in clean.items():
            setattr(current, k, v)
        _refuse_empty(current)
        current.version += 1
        current.updated_at = timezone.now()
        current.save()
        changes = audit.diff(before, _snapshot(current))
        if changes:
            audit.record(A.UPDATE, current, user=user, changes=changes)
    return current


# --- the target list --------------------------------------------------------------------------------------


def _institutions(campaign: SurveyCampaign) -> QuerySet:
    """The customers the criteria select: active institutions, no departments (asked through their hospital)."""
    from pharmacrm.customers.models import Institution
    from pharmacrm.engagement import plans

    qs = plans.planned(Institution.objects.all())
    if campaign.klass:
        qs = qs.filter(plans.of_class(campaign.klass, plans.class_period()))
    if campaign.tier:
        qs = qs.filter(tier=campaign.tier)
    if campaign.institution_kind:
        qs = qs.filter(kind=campaign.institution_kind)
    if campaign.province:
        qs = qs.filter(province=campaign.province)
    if campaign.owner_id:
        qs = qs.filter(owner_id=campaign.owner_id)
    if campaign.team_id:
        qs = qs.filter(team_id=campaign.team_id)
    return qs


@dataclasses.dataclass
class Candidate:
    institution_id: int
    person_id: int | None
    reach: str
    reach_date: dt.date | None = None
    klass: str = ""


def _recent_answers(person_ids: list[int], now: dt.datetime) -> dict[int, dt.datetime]:
    """{person: their latest answer} of any survey (a revisit's or a campaign's) in the quiet days."""
    since = now - dt.timedelta(days=int(settings.SERVICEDESK_CAMPAIGN_QUIET_DAYS))
    out: dict[int, dt.datetime] = {}
    rows = Survey.objects.filter(answered_at__gte=since).filter(
        Q(person_id__in=person_ids) | Q(ticket__person_id__in=person_ids)
    ).values_list("person_id", "ticket__person_id", "answered_at")  # fmt: skip
    for own, of_ticket, at in rows:
        for pk in {own, of_ticket} - {None}:
            if pk in person_ids and (pk not in out or at > out[pk]):
                out[pk] = at
    return out


def _latest_consents(person_ids: list[int]) -> dict[int, tuple[str, dt.datetime]]:
    from pharmacrm.customers.choices import ConsentPurpose
    from pharmacrm.customers.models import Consent

    out: dict[int, tuple[str, dt.datetime]] = {}
    rows = Consent.objects.filter(person_id__in=person_ids, purpose=ConsentPurpose.SURVEYS).order_by("-at", "-id")
    for pk, status, at in rows.values_list("person_id", "status", "at"):
        out.setdefault(pk, (status, at))
    return out


def person_reach(person, consent: tuple[str, dt.datetime] | None, recent: dt.datetime | None) -> tuple[str, dt.date | None]:
    """How a person can be asked: by mail (an e-mail address and a given, not withdrawn, consent to surveys), or why
    not. A withdrawn consent means they are not asked at all, by mail or phone (PIPL: the purpose was refused)."""
    from pharmacrm.customers.choices import ConsentStatus

    if consent is not None and consent[0] == ConsentStatus.WITHDRAWN:
        return TargetReach.WITHDRAWN, timezone.localtime(consent[1]).date()
    if recent is not None:
        return TargetReach.RECENT, timezone.localtime(recent).date()
    if not (person.email or "").strip():
        return TargetReach.NO_EMAIL, None
    if consent is None or consent[0] != ConsentStatus.GIVEN:
        return TargetReach.NO_CONSENT, None
    return TargetReach.MAIL, None


def candidates(campaign: SurveyCampaign, *, now: dt.datetime | None = None) -> list[Candidate]:
    """The campaign's target list as it stands now: one row per customer, with the contact person to ask.
    ValidationError (targets) when the criteria select more than MAX_TARGETS customers — never a list cut short."""
    from pharmacrm.customers.models import Person
    from pharmacrm.engagement import plans
    from pharmacrm.keyaccounts.models import Score

    now = now or timezone.now()
    inst_ids = list(_institutions(campaign).order_by("id").values_list("id", flat=True)[: MAX_TARGETS + 1])
    if len(inst_ids) > MAX_TARGETS:
        raise too_many(_institutions(campaign).count())
    period = plans.class_period()
    classes = dict(
        Score.objects.filter(kind=plans.EVALUATION, period=period, institution_id__in=inst_ids)
        .values_list("institution_id", "klass")
    ) if period else {}  # fmt: skip
    people: dict[int, list] = {}
    for p in Person.objects.filter(institution_id__in=inst_ids, merged_into__isnull=True).order_by("id"):
        people.setdefault(p.institution_id, []).append(p)
    person_ids = [p.pk for group in people.values() for p in group]
    consents, recent = _latest_consents(person_ids), _recent_answers(person_ids, now)
    out = []
    for inst in inst_ids:
        best = None
        for p in people.get(inst, ()):
            reach, day = person_reach(p, consents.get(p.pk), recent.get(p.pk))
            if best is None or RANK[reach] < RANK[best.reach]:
                best = Candidate(inst, p.pk, reach, day)
        best = best or Candidate(inst, None, TargetReach.NO_PERSON)
        best.klass = classes.get(inst, "") or ""
        out.append(best)
    return out


def start(user, campaign: SurveyCampaign) -> SurveyCampaign:
    """Draft → sending: write the target list (once: the campaign row is locked and must still be a draft) and queue
    the mails, sent by the worker after the commit."""
    from pharmacrm.engagement import plans

    services.require(user, Cap.MANAGE_SERVICE)  # the system actor: a repeating campaign's next one (start_repeats)
    now = timezone.now()
    with transaction.atomic():
        current = _lock(campaign)
        if current.status != CampaignStatus.DRAFT:
            raise ValidationError({"status": [_("This campaign was started already.")]})
        rows = candidates(current, now=now)
        if not rows:
            raise ValidationError({"targets": [_(
                "No customer matches these criteria: the campaign would ask nobody. Widen the criteria."
            )]})  # fmt: skip
        CampaignTarget.objects.bulk_create([
            CampaignTarget(campaign=current, institution_id=r.institution_id, person_id=r.person_id, klass=r.klass,
                           reach=r.reach, reach_date=r.reach_date,
                           mail=TargetMail.QUEUED if r.reach == TargetReach.MAIL else TargetMail.NONE)
            for r in rows
        ], batch_size=500)  # fmt: skip
        current.status, current.started_at = CampaignStatus.SENDING, now
        current.class_period = plans.class_period() or ""
        current.version += 1
        current.updated_at = now
        current.save()
        mailed = sum(1 for r in rows if r.reach == TargetReach.MAIL)
        audit.record(A.UPDATE, current, user=user, changes={"status": [CampaignStatus.DRAFT, CampaignStatus.SENDING]},
                     targets=len(rows), mailed=mailed)  # fmt: skip
        pk = current.pk
        transaction.on_commit(lambda: send_campaign(pk))
    return current


def close(user, campaign: SurveyCampaign) -> SurveyCampaign:
    """Sending → closed: the links not answered yet expire; mails not sent yet are not sent."""
    access.require(user, Cap.MANAGE_SERVICE)
    now = timezone.now()
    with transaction.atomic():
        current = _lock(campaign)
        if current.status != CampaignStatus.SENDING:
            raise ValidationError({"status": [_("Only a campaign being sent can be closed.")]})
        Survey.objects.filter(campaign=current, answered_at=None).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now)).update(expires_at=now)  # fmt: skip
        CampaignTarget.objects.filter(campaign=current, mail__in=[TargetMail.QUEUED, TargetMail.FAILED]).update(
            mail=TargetMail.NONE, last_error=""
        )
        current.status, current.closed_at = CampaignStatus.CLOSED, now
        current.version += 1
        current.updated_at = now
        current.save()
        audit.record(A.UPDATE, current, user=user, changes={"status": [CampaignStatus.SENDING, CampaignStatus.CLOSED]})
    return current


# --- repeating ------------------------------------------------------------------------------------------------

REPEAT_AT = dt.time(9, 0)  # Beijing time, on the period's first working day


def following(period: str) -> str:
    """The period after `period`, of its kind: 2026Q4 → 2027Q1, 2026H2 → 2027H1, 2026 → 2027."""
    year = int(period[:4])
    if len(period) == 4:
        return str(year + 1)
    n, last = int(period[5]), 4 if period[4] == "Q" else 2
    return f"{year + 1}{period[4]}1" if n == last else f"{year}{period[4]}{n + 1}"


def first_working_day(start: dt.date) -> dt.date:
    """The first working day on or after `start` on the service desk's business calendar: China's holidays and
    调休 (元旦, 国庆 …), with the administrators' overrides."""
    from . import calendars, workcalendar
    from .models import BusinessCalendar

    calendar = BusinessCalendar.objects.filter(code="business").first()
    engine = calendars.engine(calendar) if calendar else workcalendar.WorkCalendar()
    return next(iter(engine.working_days(start)))


def repeat_moment(period: str) -> dt.datetime:
    """When a repeating campaign's campaign of `period` is made and started: the period's first working day, 09:00
    Beijing."""
    from zoneinfo import ZoneInfo

    day = first_working_day(period_span(period)[0])
    return dt.datetime.combine(day, REPEAT_AT, tzinfo=ZoneInfo("Asia/Shanghai"))


def _next_repeat(template: SurveyCampaign, today: dt.date) -> str:
    """The next period a repeating campaign makes a campaign of: the one after the latest it (or it itself) covers —
    not one that ended already (repeating turned on again late does not ask about a period gone by)."""
    periods = [template.period, *SurveyCampaign.objects.filter(repeated_from=template).values_list("period", flat=True)]
    period = following(max(periods, key=lambda p: period_span(p)[0]))
    while period_span(period)[1] < today:
        period = following(period)
    return period


def repeat_label(campaign: SurveyCampaign) -> str:
    kind = campaign.period_kind
    return {"quarter": _("Repeat every quarter"), "half": _("Repeat every half-year")}.get(kind, _("Repeat every year"))


def set_repeat(user, campaign: SurveyCampaign, on: bool, *, version: int | None = None) -> SurveyCampaign:
    """Turn repeating on (again: a paused one resumes, and `user` is the one told from now on) or off. Any status: a
    campaign started or closed is the template of the next. Audited."""
    from pharmacrm.customers.services import ConflictError

    access.require(user, Cap.MANAGE_SERVICE)
    with transaction.atomic():
        current = _lock(campaign)
        if version is not None and (not is_id(version) or int(version) != current.version):
            raise ConflictError(current.version)  # a garbled version is as stale as an old one
        if on and current.repeated_from_id:
            raise ValidationError({"repeat": [_(
                "This campaign was made by the repeating campaign “%(name)s”: turn repeating on or off there."
            ) % {"name": current.repeated_from.name}]})  # fmt: skip
        before = {"repeat": current.repeat, "repeat_paused": current.repeat_paused}
        current.repeat, current.repeat_paused = bool(on), ""
        if on:
            current.repeat_by = user
            current.repeat_next_period = _next_repeat(current, timezone.localdate())
            current.repeat_next_at = repeat_moment(current.repeat_next_period)
        else:
            current.repeat_next_period, current.repeat_next_at = "", None
        changes = audit.diff(before, {"repeat": current.repeat, "repeat_paused": current.repeat_paused})
        if not changes and not on:
            return current
        current.version += 1
        current.updated_at = timezone.now()
        current.save()
        audit.record(A.UPDATE, current, user=user, changes=changes,
                     **({"next_period": current.repeat_next_period} if on else {}))  # fmt: skip
    return current


def _pause_repeat(template: SurveyCampaign, reason: str) -> None:
    reason = audit.cut(reason, 300)
    SurveyCampaign.objects.filter(pk=template.pk).update(repeat_paused=reason, updated_at=timezone.now())
    audit.record(A.UPDATE, template, user=services.SYSTEM, changes={"repeat_paused": ["", reason]})
    log.warning("Repeating survey campaign %s paused: %s", template.pk, reason)


def _repeat_name(template: SurveyCampaign, period: str) -> str:
    if template.name == default_name(template.period):
        return default_name(period)
    return f"{template.name} {period}"[:120]


def repeat_one(pk: int, now: dt.datetime | None = None) -> SurveyCampaign | None:
    """Make and start a repeating campaign's next campaign, if it is due: in one transaction with the template's row
    locked — taken (the next period moved on) and made, or neither. A second run (two workers, or the job run again)
    finds it no longer due; a worker that died before the commit left nothing, and the next run makes it. A template
    whose `repeat_by` lost access, or whose criteria now ask nobody, is paused with the reason (shown on its page)."""
    from pharmacrm.notify import services as notify

    now = now or timezone.now()
    with transaction.atomic():
        template = (
            SurveyCampaign.objects.select_for_update(of=("self",)).select_related("repeat_by")
            .filter(pk=pk, repeat=True, repeat_paused="", repeat_next_at__lte=now).first()
        )  # fmt: skip
        if template is None:
            return None
        who = template.repeat_by
        if who is None or not who.is_active or not may_manage(who):
            with translation.override(settings.LANGUAGE_CODE):
                _pause_repeat(template, _(
                    "Paused: %(name)s, who set it to repeat, may no longer run survey campaigns. A manager turns "
                    "repeating on again to take it over."
                ) % {"name": str(who) if who else _("the user")})  # fmt: skip
            return None
        period = template.repeat_next_period
        made = None
        if not SurveyCampaign.objects.filter(repeated_from=template, period=period).exists():
            try:
                with transaction.atomic():
                    made = SurveyCampaign(
                        name=_repeat_name(template, period), period=period,
                        **{f: getattr(template, f) for f in ("klass", "tier", "institution_kind", "province")},
                        owner_id=template.owner_id, team_id=template.team_id, created_by=who, repeated_from=template,
                    )  # fmt: skip
                    made.save(force_insert=True)
                    audit.record(A.CREATE, made, user=services.SYSTEM, changes=audit.diff({}, _snapshot(made)),
                                 repeated_from=template.pk)  # fmt: skip
                    made = start(services.SYSTEM, made)
            except ValidationError as e:  # nobody matches now, or too many: nothing made, the reason kept
                with translation.override(settings.LANGUAGE_CODE):
                    reason = _("Paused: the campaign of %(period)s could not start: %(reason)s") % {
                        "period": period, "reason": " ".join(e.messages)}  # fmt: skip
                _pause_repeat(template, reason)
                notify.send([who], kind="campaign.repeat-paused",
                            title=Message(gettext_lazy("Repeating survey campaign “%(name)s” paused"), name=template.name),
                            body=reason, url=reverse("servicedesk:campaign", args=[template.pk]), obj=template)  # fmt: skip
                return None
        following_period = _next_repeat(template, timezone.localdate(now))
        SurveyCampaign.objects.filter(pk=template.pk).update(
            repeat_next_period=following_period, repeat_next_at=repeat_moment(following_period)
        )
        if made is not None:
            targets = CampaignTarget.objects.filter(campaign=made).count()
            notify.send([who], kind="campaign.repeated",
                        title=Message(gettext_lazy("Survey campaign “%(name)s” started"), name=made.name),
                        body=Message(gettext_lazy("Repeating “%(name)s”: %(n)s customers asked. The next one "
                                                  "starts on %(date)s."), name=template.name, n=targets,
                                     date=timezone.localtime(repeat_moment(following_period)).date().isoformat()),
                        url=reverse("servicedesk:campaign", args=[made.pk]), obj=made)  # fmt: skip
    return made


def start_repeats(now: dt.datetime | None = None) -> int:
    """Every repeating campaign whose next campaign is due: made and started once; returns how many."""
    now = now or timezone.now()
    due = SurveyCampaign.objects.filter(repeat=True, repeat_paused="", repeat_next_at__lte=now)
    return sum(repeat_one(pk, now) is not None for pk in due.order_by("repeat_next_at", "id").values_list("id", flat=True))


@db_periodic_task(crontab(minute="*/15"))
def start_repeating_campaigns() -> int:
    """Every 15 minutes: the repeating campaigns' next campaigns due (a period's first working day, from 09:00
    Beijing), each made and started once."""
    return start_repeats()


# --- sending -------------------------------------------------------------------------------------------------


def claim(target_id: int) -> tuple[CampaignTarget, str] | None:
    """Take one target's mail: the "being sent" mark and the survey (its new link's hash) are committed before the
    mail leaves. Returns (target, link), or None when there is nothing to send (sent, being sent, or no longer
    reachable: the person withdrew their consent or lost their address since the start)."""
    from pharmacrm.customers.models import Person

    now = timezone.now()
    with transaction.atomic():
        taken = CampaignTarget.objects.filter(
            pk=target_id, mail__in=[TargetMail.QUEUED, TargetMail.FAILED], attempts__lt=MAX_ATTEMPTS,
            campaign__status=CampaignStatus.SENDING,
        ).update(mail=TargetMail.SENDING, attempts=F("attempts") + 1)  # fmt: skip
        if not taken:
            return None
        target = CampaignTarget.objects.select_related("campaign").get(pk=target_id)
        person = Person.objects.filter(pk=target.person_id).first()
        reach, day = (TargetReach.NO_PERSON, None) if person is None else person_reach(
            person, _latest_consents([person.pk]).get(person.pk), None
        )  # fmt: skip
        if reach != TargetReach.MAIL:  # changed since the start: not mailed (and, if withdrawn, not asked at all)
            CampaignTarget.objects.filter(pk=target.pk).update(mail=TargetMail.NONE, reach=reach, reach_date=day)
            return None
        token_hash, link = revisit.new_link()
        expires = now + dt.timedelta(days=int(settings.SERVICEDESK_SURVEY_DAYS))
        if target.survey_id:  # an attempt that failed: a new link (the old one was never delivered)
            Survey.objects.filter(pk=target.survey_id).update(token_hash=token_hash, sent_at=now, expires_at=expires,
                                                              sent_to=person.email)  # fmt: skip
        else:
            survey = Survey.objects.create(
                campaign=target.campaign, institution_id=target.institution_id, person=person,
                channel=SurveyChannel.LINK, token_hash=token_hash, sent_to=person.email, sent_at=now,
                expires_at=expires, created_at=now,
            )  # fmt: skip
            CampaignTarget.objects.filter(pk=target.pk).update(survey=survey)
            target.survey = survey
            audit.record(A.CREATE, survey, user=services.SYSTEM, changes={
                "campaign": [None, target.campaign_id], "channel": [None, SurveyChannel.LINK]})  # fmt: skip
    target.person = person
    return target, link


def mail(target: CampaignTarget, link: str, *, reminder: bool = False) -> None:
    """Send the survey mail, or its one reminder (raises on an SMTP failure)."""
    from django.core.mail import EmailMessage

    from .mail import customer_language, send_built

    person = target.person
    days = int(settings.SERVICEDESK_SURVEY_DAYS)
    with translation.override(customer_language(person)):
        subject = _("Your opinion of our service: %(campaign)s") % {"campaign": target.campaign.name}
        body = _(
            "Dear %(name)s,\n\nonce a period we ask our customers how satisfied they are with our products and "
            "service. Please tell us in one minute:\n\n%(link)s\n\nThe link can be used once and is valid for %(days)d "
            "days. Thank you."
        ) % {"name": person.name, "link": link, "days": days}
        if reminder:
            until = timezone.localtime(target.survey.expires_at).date().isoformat()
            subject = _("Reminder: %(subject)s") % {"subject": subject}
            body = _(
                "Dear %(name)s,\n\na few days ago we asked for your opinion of our products and service. If you have "
                "a minute, please tell us:\n\n%(link)s\n\nThe link can be used once, until %(date)s. If you have "
                "answered already, thank you, and please disregard this reminder; we will not remind you again."
            ) % {"name": person.name, "link": link, "date": until}
    address = person.email.strip()
    # as the desk's replies go out: an address such as 张三@公司.cn with SMTPUTF8, never garbled
    send_built(lambda connection: EmailMessage(
        subject=subject, body=body, from_email=settings.SERVICEDESK_MAIL_FROM, to=[address],
        headers={"Auto-Submitted": "auto-generated"}, connection=connection,
    ), address)  # fmt: skip


def mark_sent(target: CampaignTarget) -> None:
    CampaignTarget.objects.filter(pk=target.pk, mail=TargetMail.SENDING).update(mail=TargetMail.SENT, last_error="")


def send_target(target_id: int) -> str:
    """One target's mail: claim (committed), send, mark sent. Returns the mail's state ("" when nothing was sent)."""
    taken = claim(target_id)
    if taken is None:
        return ""
    target, link = taken
    try:
        mail(target, link)
    except Exception as exc:  # noqa: BLE001 — SMTP, network: a failed attempt, tried again by the sweep
        error = normalise.mask_addresses(f"{type(exc).__name__}: {exc}")[:500]
        CampaignTarget.objects.filter(pk=target.pk).update(mail=TargetMail.FAILED, last_error=error)
        log.warning("Survey mail of campaign target %s, attempt %d: %s", target.pk, target.attempts + 1, error)
        return TargetMail.FAILED
    mark_sent(target)
    return TargetMail.SENT


def pending_ids(campaign_id: int | None = None, limit: int = 500) -> list[int]:
    qs = CampaignTarget.objects.filter(mail__in=[TargetMail.QUEUED, TargetMail.FAILED], attempts__lt=MAX_ATTEMPTS,
                                       campaign__status=CampaignStatus.SENDING)  # fmt: skip
    if campaign_id is not None:
        qs = qs.filter(campaign_id=campaign_id)
    return list(qs.order_by("id").values_list("id", flat=True)[:limit])


def send_pending(campaign_id: int | None = None) -> int:
    """Send every mail still to send (queued, or failed and not tried three times); returns how many went out."""
    sent = 0
    while True:
        ids = pending_ids(campaign_id)
        if not ids:
            return sent
        progress = 0
        for pk in ids:
            state = send_target(pk)
            sent += state == TargetMail.SENT
            progress += state != TargetMail.FAILED
        if not progress:  # only failures this round: the sweep tries again later
            return sent


@db_task()
def send_campaign(campaign_id: int) -> int:
    return send_pending(campaign_id)


@db_periodic_task(crontab(minute="*/10"))
def resume_campaign_mails() -> int:
    """A worker that stopped halfway (or an SMTP server that was down): the mails still to send go out."""
    return send_pending()


# --- the reminder -------------------------------------------------------------------------------------------


def reminder_due_ids(now: dt.datetime, limit: int = 500) -> list[int]:
    """The mailed contacts who have not answered SERVICEDESK_CAMPAIGN_REMINDER_DAYS days after the mail, not
    reminded yet, with at least a day left on their link, in a campaign still being sent."""
    days = int(getattr(settings, "SERVICEDESK_CAMPAIGN_REMINDER_DAYS", 7))
    if days <= 0:
        return []
    return list(
        CampaignTarget.objects.filter(
            campaign__status=CampaignStatus.SENDING, mail=TargetMail.SENT, reminded_at__isnull=True,
            survey__answered_at__isnull=True, survey__sent_at__lte=now - dt.timedelta(days=days),
            survey__expires_at__gt=now + dt.timedelta(days=1),
        ).order_by("id").values_list("id", flat=True)[:limit]
    )  # fmt: skip


def remind(target_id: int, now: dt.datetime) -> bool:
    """One reminder: taken (reminded_at, committed) before the mail leaves — never twice, whatever happens after —
    with a link of its own (the first mail's link still answers), to a contact still reachable by mail (consent
    given, an address, no answer to another survey since). True when it was mailed."""
    from pharmacrm.customers.models import Person

    with transaction.atomic():
        taken = CampaignTarget.objects.filter(pk=target_id, reminded_at__isnull=True, mail=TargetMail.SENT,
                                              survey__answered_at__isnull=True).update(reminded_at=now)  # fmt: skip
        if not taken:
            return False
        target = CampaignTarget.objects.select_related("campaign", "survey").get(pk=target_id)
        person = Person.objects.filter(pk=target.person_id).first()
        reach = TargetReach.NO_PERSON if person is None else person_reach(
            person, _latest_consents([person.pk]).get(person.pk),
            _recent_answers([person.pk], now).get(person.pk),
        )[0]  # fmt: skip
        if reach != TargetReach.MAIL:  # withdrew, lost the address, or answered another survey since
            CampaignTarget.objects.filter(pk=target.pk).update(reminder_error=str(TargetReach(reach).label)[:500])
            return False
        token_hash, link = revisit.new_link()
        Survey.objects.filter(pk=target.survey_id).update(reminder_token_hash=token_hash)
    target.person = person
    try:
        mail(target, link, reminder=True)
    except Exception as exc:  # noqa: BLE001 — SMTP, network: one reminder only, the reason kept
        error = normalise.mask_addresses(f"{type(exc).__name__}: {exc}")[:500]
        CampaignTarget.objects.filter(pk=target.pk).update(reminder_error=error)
        log.warning("Survey reminder of campaign target %s: %s", target.pk, error)
        return False
    return True


def remind_pending(now: dt.datetime | None = None) -> int:
    """Every reminder due; returns how many were mailed."""
    now = now or timezone.now()
    return sum(remind(pk, now) for pk in reminder_due_ids(now))


@db_periodic_task(local_crontab(hour=10, minute=0))
def remind_campaign_nonrespondents() -> int:
    """At 10:00 Beijing time (office hours, not the night): one reminder to each contact who has not answered."""
    return remind_pending()


# --- answers -----------------------------------------------------------------------------------------------


def action_owner(institution):
    """Who owns the action a poor campaign answer opens: the customer's owner, else its team's lead, else a manager."""
    team = Team.objects.filter(pk=institution.team_id).select_related("lead").first() if institution.team_id else None
    for candidate in (institution.owner, team.lead if team else None):
        if candidate is not None and candidate.is_active and access.can(candidate, Cap.HANDLE_TICKETS):
            return candidate
    return (
        User.objects.filter(is_active=True, groups__name=Role.MANAGER.value).order_by("id").first()
        or User.objects.filter(is_active=True, groups__name=Role.ADMIN.value).order_by("id").first()
    )


def conclude(user, survey: Survey) -> None:
    """A campaign's answer (inside the caller's transaction): a poor one (a score of 2 or less) opens an improvement
    action on the customer, as a poor revisit does on a ticket's category that says so."""
    from pharmacrm.customers.models import Institution

    action = None
    institution = Institution.objects.filter(pk=survey.institution_id).select_related("owner").first()
    if revisit.is_poor(survey) and institution is not None:
        owner = action_owner(institution)
        if owner is not None:
            campaign = SurveyCampaign.objects.get(pk=survey.campaign_id)
            with translation.override(settings.LANGUAGE_CODE):
                title = _("Poor satisfaction survey answer of %(customer)s (%(campaign)s)") % {
                    "customer": institution.name, "campaign": campaign.name}  # fmt: skip
            action = revisit._create_action(user, {
                "title": title[:200], "description": survey.comment, "owner": owner,
                "due_date": timezone.localdate() + dt.timedelta(days=revisit.ACTION_DAYS),
                "institution": institution, "survey": survey,
            })  # fmt: skip
            Survey.objects.filter(pk=survey.pk).update(outcome=LowScore.ACTION)
            survey.outcome = LowScore.ACTION
    ticket = _to_the_safety_net(user, survey, institution)
    extra = {**({"improvement_action": action.number} if action else {}), **({"ticket": ticket.number} if ticket else {})}
    audit.record(A.UPDATE, survey, user=user, changes={
        "score": [None, survey.score], "recommend": [None, survey.recommend], "outcome": ["", survey.outcome]},
        **extra)  # fmt: skip


def _to_the_safety_net(user, survey: Survey, institution):
    """A comment that speaks of an adverse reaction or a quality problem is taken in as a ticket of the customer
    (its text screened as every ticket's: the flag reaches PV's triage with its hand-off clock from the answer's
    time, day 0 of the regulatory clock). A revisit's comment is screened on its ticket; a campaign's has none."""
    from pharmacrm.safety import screen

    from .choices import Channel
    from .models import TicketCategory

    text = (survey.comment or "").strip()
    if not text or institution is None or not screen.screen(text).signal:
        return None
    category = (
        TicketCategory.objects.filter(active=True, safety_relevant=True).order_by("position", "id").first()
        or TicketCategory.objects.filter(active=True).order_by("position", "id").first()
    )  # fmt: skip
    if category is None:
        return None
    campaign = SurveyCampaign.objects.get(pk=survey.campaign_id)
    with translation.override(settings.LANGUAGE_CODE):  # a record for the staff
        subject = _("Said in the satisfaction survey %(campaign)s") % {"campaign": campaign.name}
    return services.create_ticket(user, {
        "subject": subject[:200], "description": text, "category": category, "institution": institution,
        "person": survey.person, "received_at": survey.answered_at or timezone.now(),
        "channel": Channel.PHONE if survey.channel == SurveyChannel.PHONE else Channel.WEB,
    })  # fmt: skip


def record_phone(user, target: CampaignTarget, score, comment: str = "", recommend=None) -> Survey:
    """An agent records what the target's contact said on the phone (a customer no mail reaches, or one who
    preferred to answer on the phone): once per target; a link sent and not answered no longer counts."""
    services.require(user, Cap.HANDLE_TICKETS)
    if not targets_for(user, target.campaign).filter(pk=target.pk).exists():
        raise PermissionDenied(_("You may not see this customer."))
    score, _solved, comment, recommend = revisit._clean_answers(score, None, comment, recommend, need_solved=False)
    now = timezone.now()
    with transaction.atomic():
        campaign = _lock(target.campaign)
        target = CampaignTarget.objects.select_related("survey").get(pk=target.pk)
        if campaign.status != CampaignStatus.SENDING:
            raise ValidationError({"status": [_("Answers are recorded while the campaign is being sent, not after it "
                                                "was closed.")]})  # fmt: skip
        if target.reach in NOT_ASKED:
            raise ValidationError({"target": [reach_text(target)]})
        if target.survey is not None and target.survey.answered_at is not None:
            raise ValidationError({"target": [_("This customer answered on %(date)s: one answer per campaign.") % {
                "date": timezone.localtime(target.survey.answered_at).date().isoformat()}]})  # fmt: skip
        # the link's answer may be on its way (its UPDATE holds the survey's row, not the campaign): the link is
        # closed only while still unanswered — once that answer is committed, it is the customer's one answer
        if target.survey is not None and not Survey.objects.filter(pk=target.survey_id, answered_at=None).update(
            expires_at=now
        ):  # fmt: skip
            answered = Survey.objects.filter(pk=target.survey_id).values_list("answered_at", flat=True).first()
            raise ValidationError({"target": [_("This customer answered on %(date)s: one answer per campaign.") % {
                "date": timezone.localtime(answered or now).date().isoformat()}]})  # fmt: skip
        survey = Survey.objects.create(
            campaign=campaign, institution_id=target.institution_id, person_id=target.person_id,
            channel=SurveyChannel.PHONE, sent_at=now, answered_at=now, score=score, recommend=recommend,
            comment=comment, recorded_by=user, created_by=user, created_at=now,
        )  # fmt: skip
        CampaignTarget.objects.filter(pk=target.pk).update(survey=survey)
        audit.record(A.CREATE, survey, user=user, changes={"campaign": [None, campaign.pk],
                                                           "channel": [None, SurveyChannel.PHONE]})  # fmt: skip
        conclude(user, survey)
    return survey


def forget_person(sender, instance, **kwargs) -> None:
    """A person deleted (PIPL art. 47, on their request) leaves no e-mail address in the campaign surveys mailed to
    them: their answers stay, anonymous (the deletion empties their person), the address they were sent to does not.
    (A revisit's survey is about a ticket, whose person cannot be deleted.) Connected in apps.py to Person's
    pre_delete, inside the deletion's transaction."""
    Survey.objects.filter(person_id=instance.pk).update(sent_to="")


def reach_text(target: CampaignTarget) -> str:
    label = str(TargetReach(target.reach).label)
    if target.reach_date:
        return label + wording.aside(target.reach_date.isoformat())
    return label


# --- results ---------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Results:
    targeted: int = 0  # asked (by mail or on the phone): every target but those not asked
    mailed: int = 0  # reachable by mail
    sent: int = 0
    interrupted: int = 0  # "being sent" when the worker stopped: perhaps delivered, never sent again
    reminded: int = 0  # the one reminder taken (mailed, or failed with its reason)
    unreachable: int = 0
    not_asked: int = 0
    answered: int = 0
    figures: object = None  # performance.Figures: CSAT and NPS as the service performance computes them
    by_class: list = dataclasses.field(default_factory=list)  # (class, targeted, answered, Figures)

    @property
    def response_rate(self):
        from .performance import Figures

        return Figures._pct(self.answered, self.targeted)


def results(campaign: SurveyCampaign) -> Results:
    from .performance import Figures

    out = Results(figures=Figures(label=campaign.name))
    classes: dict[str, list] = {}
    rows = CampaignTarget.objects.filter(campaign=campaign).values_list(
        "klass", "reach", "mail", "survey__answered_at", "survey__score", "survey__recommend", "reminded_at",
        "reminder_error")  # fmt: skip
    for klass, reach, mail_state, answered_at, score, recommend, reminded_at, reminder_error in rows:
        row = classes.setdefault(klass or "", [0, 0, Figures(label=klass or "—")])
        if reach in NOT_ASKED:
            out.not_asked += 1
            continue
        out.targeted += 1
        row[0] += 1
        out.mailed += reach == TargetReach.MAIL
        out.sent += mail_state == TargetMail.SENT
        out.interrupted += mail_state == TargetMail.SENDING
        out.reminded += reminded_at is not None and not reminder_error
        out.unreachable += reach in UNREACHABLE
        if answered_at is None:
            continue
        out.answered += 1
        row[1] += 1
        for f in (out.figures, row[2]):
            f.csat_sum += score or 0
            f.csat_count += score is not None
            if recommend is not None:
                f.nps_count += 1
                f.promoters += recommend >= 9
                f.detractors += recommend <= 6
    out.by_class = [(k, *classes[k]) for k in sorted(classes, key=lambda k: (k == "", k))]
    return out


def answers(user, campaign: SurveyCampaign) -> QuerySet:
    """The campaign's answered surveys the user may read, newest first."""
    ids = targets_for(user, campaign).values("survey_id")
    return (
        Survey.objects.filter(campaign=campaign, answered_at__isnull=False, pk__in=ids)
        .select_related("institution", "person", "recorded_by").order_by("-answered_at", "-id")
    )  # fmt: skip

