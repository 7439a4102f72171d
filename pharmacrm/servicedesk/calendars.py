"""Business calendars for the rest of the service desk: the clock arithmetic for a calendar (cached per
calendar version), overrides written with an audit entry, and the warning for a year whose holidays
nobody has entered."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from pharmacrm.core import access, audit, builtin
from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Cap

from . import workcalendar
from .models import BusinessCalendar, CalendarOverride

log = logging.getLogger(__name__)
_cache: dict[int, tuple[int, workcalendar.WorkCalendar]] = {}
_lock = threading.Lock()


def engine(calendar: BusinessCalendar | int | str) -> workcalendar.WorkCalendar:
    """The clock arithmetic of a calendar (a row, its id or its code). Cached per process and rebuilt
    when the calendar's version moves — every change to it or its overrides bumps the version."""
    if not isinstance(calendar, BusinessCalendar):
        key = {"code": calendar} if isinstance(calendar, str) else {"pk": calendar}
        calendar = BusinessCalendar.objects.get(**key)
    cached = _cache.get(calendar.pk)
    if cached is not None and cached[0] == calendar.version:
        return cached[1]
    built = calendar.engine()
    with _lock:
        _cache[calendar.pk] = (calendar.version, built)
    return built


def _bump(calendar: BusinessCalendar) -> None:
    BusinessCalendar.objects.filter(pk=calendar.pk).update(version=F("version") + 1, updated_at=timezone.now())
    calendar.refresh_from_db(fields=["version", "updated_at"])


def _check_actor(user, system_actor: str) -> dict:
    """Who changes a calendar: an administrator, or (only from the `holidays` command) the OS account."""
    if user is None:
        if not system_actor:
            raise PermissionDenied(_("You do not have permission to do this."))
        return {"actor_name": system_actor}
    access.require(user, Cap.MANAGE_SERVICE)
    return {"user": user}


def set_override(
    user, calendar: BusinessCalendar, day: dt.date, working: bool, note: str = "", *, system_actor: str = ""
) -> CalendarOverride:
    """Make `day` a working day or a holiday on `calendar` (e.g. next year's official schedule before the
    chinese-calendar package knows it); audited."""
    return set_overrides(user, calendar, [day], working, note, system_actor=system_actor)[0]


MAX_OVERRIDE_DAYS = 31  # a holiday period at once (the Spring Festival is 8 or 9 days)


def set_overrides(
    user, calendar: BusinessCalendar, days: list[dt.date], working: bool, note: str = "", *, system_actor: str = ""
) -> list[CalendarOverride]:
    """Make each of `days` (a holiday period: the Spring Festival week) a working day or a holiday on `calendar`,
    in one change: one version, one audit entry naming every date, one recomputation of the open tickets."""
    who = _check_actor(user, system_actor)
    days = sorted(set(days))
    if not days:
        return []
    with transaction.atomic():
        before = dict(
            CalendarOverride.objects.filter(calendar=calendar, date__in=days).values_list("date", "working")
        )
        out = [
            CalendarOverride.objects.update_or_create(
                calendar=calendar, date=day, defaults={"working": working, "note": note[:100]}
            )[0]
            for day in days
        ]
        _bump(calendar)
        audit.record(
            AuditEntry.Action.UPDATE, calendar, changes={str(day): [before.get(day), working] for day in days},
            note=out[0].note, **who,
        )  # fmt: skip
        _refresh(calendar, who)
    return out


def remove_override(user, calendar: BusinessCalendar, day: dt.date, *, system_actor: str = "") -> bool:
    return remove_overrides(user, calendar, [day], system_actor=system_actor) == 1


def remove_overrides(user, calendar: BusinessCalendar, days: list[dt.date], *, system_actor: str = "") -> int:
    """Remove the overrides of `days` (a holiday period entered wrongly) in one change — one version, one audit entry
    naming every date removed, one recomputation of the open tickets; nothing when none of them had one. Returns how
    many were removed."""
    who = _check_actor(user, system_actor)
    with transaction.atomic():
        found = CalendarOverride.objects.filter(calendar=calendar, date__in=set(days))
        before = dict(found.values_list("date", "working"))
        if not before:
            return 0
        found.delete()
        _bump(calendar)
        audit.record(AuditEntry.Action.UPDATE, calendar,
                     changes={str(day): [working, None] for day, working in sorted(before.items())}, **who)  # fmt: skip
        _refresh(calendar, who)
    return len(before)


def _refresh(calendar: BusinessCalendar, who: dict) -> None:
    """In the change's transaction: the open tickets' clocks are rebuilt by the worker once it commits, the
    pending safety hand-offs counted on the calendar are re-planned now (`who` changed it, for their audit), and the
    open stage tasks with a provisional due date are dated again."""
    from pharmacrm.engagement import playbook
    from pharmacrm.safety import net

    from .tasks import refresh_after_commit

    refresh_after_commit(calendar_id=calendar.pk)
    net.calendar_changed(calendar, **who)
    playbook.redate_provisional(calendar, **who)


@dataclass(frozen=True)
class CoverageGap:
    calendar: BusinessCalendar
    year: int


def coverage_gaps(today: dt.date | None = None) -> list[CoverageGap]:
    """Calendars that follow China's holidays but know nothing of this year — or, from November on (when
    the State Council publishes the next year's schedule), of next year. Their clocks fall back to the
    weekly pattern there, so administrators are told to enter the schedule as overrides."""
    today = today or timezone.localdate()
    years = [today.year] + ([today.year + 1] if today.month >= 11 else [])
    gaps = []
    for calendar in BusinessCalendar.objects.filter(official_holidays=True, always_on=False):
        for year in engine(calendar).uncovered_years(years):
            gaps.append(CoverageGap(calendar, year))
    return gaps


GAP_TOLD = "servicedesk:calendar-gap"  # Counter rows `…:<calendar id>:<year>`: the administrators were told of it
GAP_KIND = "servicedesk.calendar-gap"


def alert_coverage_gaps(today: dt.date | None = None) -> int:
    """The worker, every morning: for each calendar without a year's holidays (coverage_gaps), a WARNING in the
    log, where operators' monitoring looks, every day until the schedule is entered — and the service
    administrators (those who may change the calendars) told once per calendar and year, in the bell and by e-mail,
    with the year's page where it is entered. Only the home page said so before, to an administrator who opened it:
    deadlines counted into the year on the weekly pattern went on being provisional unnoticed. Returns how many
    gaps were told now."""
    from django.urls import reverse
    from django.utils.translation import gettext_lazy

    from pharmacrm.core.deferred import Message
    from pharmacrm.core.models import Counter, User
    from pharmacrm.core.roles import MATRIX
    from pharmacrm.notify import services as notify

    told = 0
    for gap in coverage_gaps(today):
        log.warning(
            "business calendar %s has no holiday schedule for %s: its deadlines there count the weekly pattern less "
            "the days the law fixes; enter the State Council's schedule (pharmacrm holidays set … --calendar %s)",
            gap.calendar.code, gap.year, gap.calendar.code,
        )  # fmt: skip
        with transaction.atomic():
            _row, created = Counter.objects.get_or_create(name=f"{GAP_TOLD}:{gap.calendar.pk}:{gap.year}")
            if not created:
                continue  # told already (or by another worker now): once per calendar and year
            roles = [r.value for r in MATRIX[Cap.MANAGE_SERVICE]]
            admins = [u for u in User.objects.filter(is_active=True, groups__name__in=roles).distinct().order_by("pk")
                      if access.can(u, Cap.MANAGE_SERVICE)]  # fmt: skip
            notify.send(
                admins, kind=GAP_KIND, obj=gap.calendar,
                title=Message(gettext_lazy("Enter the holidays of %(year)s on the calendar “%(calendar)s”"),
                              year=str(gap.year), calendar=builtin.text(gap.calendar.name)),
                body=Message(gettext_lazy(
                    "The calendar has no official schedule for %(year)s yet: deadlines in %(year)s leave out only the "
                    "public holidays the law fixes and are marked provisional. Enter the State Council's schedule, "
                    "its holidays and swapped working days (调休), on the calendar's page for %(year)s."),
                    year=str(gap.year)),
                url=reverse("servicedesk:settings-calendar-year", args=[gap.calendar.code, gap.year]),
            )  # fmt: skip
            told += 1
    return told


def provisional_years(calendar_engine: workcalendar.WorkCalendar, now: dt.datetime, due: dt.datetime) -> tuple[int, ...]:
    """The years up to a working-time deadline whose official holidays are not known (next year's schedule
    before an administrator enters it): the deadline was counted on the weekly pattern there and may move, which
    the pages say beside it."""
    years = range(timezone.localtime(min(now, due)).year, timezone.localtime(due).year + 1)
    return tuple(calendar_engine.uncovered_years(years))


# --- the calendar itself ---------------------------------------------------------------------------

CALENDAR_FIELDS = ("code", "name", "time_zone", "windows", "workdays", "official_holidays", "always_on")


def _calendar_snapshot(calendar: BusinessCalendar) -> dict:
    return {f: getattr(calendar, f) for f in CALENDAR_FIELDS}


def _validate_calendar(calendar: BusinessCalendar) -> None:
    try:
        calendar.full_clean(exclude=["version", "updated_at"])
    except ValidationError as e:
        raise ValidationError({k: [str(m) for m in v] for k, v in e.message_dict.items()}) from None
    if not calendar.always_on and not calendar.windows:
        raise ValidationError({"windows": [_("Give at least one working window, or make the calendar 24×7.")]})
    if not calendar.always_on and not calendar.workdays:
        raise ValidationError({"workdays": [_("Give at least one working weekday, or make the calendar 24×7.")]})


def create_calendar(user, data: dict) -> BusinessCalendar:
    access.require(user, Cap.MANAGE_SERVICE)
    calendar = BusinessCalendar(**{k: v for k, v in data.items() if k in CALENDAR_FIELDS})
    _validate_calendar(calendar)
    with transaction.atomic():
        calendar.save(force_insert=True)
        audit.record(AuditEntry.Action.CREATE, calendar, user=user, changes=audit.diff({}, _calendar_snapshot(calendar)))
    return calendar


def update_calendar(user, calendar: BusinessCalendar, data: dict, *, version: int | None = None) -> BusinessCalendar:
    """Change the time zone, working windows, weekdays or holiday rule: the calendar's version moves (every
    worker rebuilds its arithmetic) and the open tickets on it get their deadlines recomputed. A stale
    `version` is a conflict. The code never changes."""
    from pharmacrm.customers.services import ConflictError

    access.require(user, Cap.MANAGE_SERVICE)
    if "code" in data and data["code"] != calendar.code:
        raise ValidationError({"code": [_("A calendar's code cannot change; create a new calendar instead.")]})
    before = _calendar_snapshot(calendar)
    for key, value in data.items():
        if key in CALENDAR_FIELDS:
            setattr(calendar, key, value)
    _validate_calendar(calendar)
    changes = audit.diff(before, _calendar_snapshot(calendar))
    if not changes:
        return calendar
    with transaction.atomic():
        moved = BusinessCalendar.objects.filter(pk=calendar.pk, **({"version": version} if version else {})).update(
            **{f: getattr(calendar, f) for f in CALENDAR_FIELDS if f != "code"},
            version=F("version") + 1, updated_at=timezone.now(),
        )  # fmt: skip
        if not moved:
            raise ConflictError(BusinessCalendar.objects.filter(pk=calendar.pk).values_list("version", flat=True).first() or 0)
        calendar.refresh_from_db(fields=["version", "updated_at"])
        audit.record(AuditEntry.Action.UPDATE, calendar, user=user, changes=changes)
        _refresh(calendar, {"user": user})
    return calendar
