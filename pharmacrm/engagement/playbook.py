"""The customer lifecycle (客户生命周期管理, seed 000 §6.4): the stage playbook and the customers' stage tasks.

A customer is at one lifecycle stage — potential, intent, decision, active (合作中), churned. The **playbook**
(StageAction) says, per stage, what the company wants done when a customer enters it: a call, a visit, material
sent, a demonstration or trial, a satisfaction survey, a revisit — each due within N working days (the service desk's
business calendar: China's holidays and 调休), by the customer's owner or the lead of the customer's team.

**Entering a stage** — by the edit form, the API, an import, an opportunity that moves the customer forward — comes
here through one place: `customers.services.stage_changed`, which `sync` answers. It closes the customer's time in
the stage it left (StageSpell) and that stage's open tasks ("stage left"), opens its time in the new one, and creates
the new stage's tasks (StageTask) for the owner. Entering a stage again within LIFECYCLE_REENTRY_DAYS days (setting,
30) reopens the tasks the customer left there rather than adding new ones. A customer without an owner gets no tasks
(the manager's page counts them). A merged-away customer's open tasks are closed; the survivor keeps its own. The
nightly sweep (`sweep`) catches any customer whose stage changed without passing here (a script, a database fix).

A due date in a year whose holidays are not known yet (the chinese-calendar package and the calendar's overrides
both lack it) is counted as the SLA clocks count it: on the weekly pattern less the public holidays the law fixes
(`provisional_due`), and the task is marked *provisional* on every page. The change of stage is always saved (a rep
winning a deal on 20 December is not refused); the service administrators are already told of the missing year
(servicedesk.calendars.alert_coverage_gaps), and entering its holidays dates the open provisional tasks again in the
same change (`redate_provisional`, called where the SLA clocks are refreshed) — the nightly run too, for a
chinese-calendar upgrade that brings the year. `due_date` itself refuses such a year (CalendarYearMissing).

Who sees which tasks: the owner their own, a team lead those of their teams (the task's team, or its owner a member
of it), managers, administrators and auditors (read) every one. Marking a task done records an interaction."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, Exists, F, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from pharmacrm.core import access, audit
from pharmacrm.core.ids import is_id
from pharmacrm.core.models import AuditEntry, Team, User
from pharmacrm.core.roles import Cap
from pharmacrm.customers.choices import Stage
from pharmacrm.customers.models import Institution, Person

from .models import (
    InteractionChannel,
    StageAction,
    StageActionKind,
    StageAssignee,
    StageSpell,
    StageTask,
)
from .models import StageTaskStatus as TS
from .stage_defaults import PRESET_TITLES  # noqa: F401 (StageAction.label reads it from here)

A = AuditEntry.Action
log = logging.getLogger(__name__)
CALENDAR_CODE = "business"
CHUNK = 1000
MAX_DUE_DAYS = 120  # working days: half a year
REASON_MAX = 500
ORDER = [Stage.POTENTIAL, Stage.INTENT, Stage.DECISION, Stage.ACTIVE]  # the way forward; churned is off it
# how a task done is recorded as an interaction
KIND_CHANNEL = {
    StageActionKind.CALL: InteractionChannel.PHONE, StageActionKind.VISIT: InteractionChannel.VISIT,
    StageActionKind.MATERIAL: InteractionChannel.EMAIL, StageActionKind.DEMO: InteractionChannel.MEETING,
    StageActionKind.SURVEY: InteractionChannel.PHONE, StageActionKind.REVISIT: InteractionChannel.VISIT,
}  # fmt: skip


def reentry_days() -> int:
    return int(getattr(settings, "LIFECYCLE_REENTRY_DAYS", 30))


def stage_label(stage: str) -> str:
    return str(dict(Stage.choices).get(stage, stage))


# --- working days ---------------------------------------------------------------------------------------------


class CalendarYearMissing(ValidationError):
    """A due date falls in (or runs through) a year whose holidays the business calendar does not know."""

    def __init__(self, year: int):
        self.year = year
        super().__init__({"stage": [_(
            "The working-day calendar has no holidays for %(year)s, so a stage task due then cannot be dated yet. A "
            "service administrator enters the year's holidays on the business calendar; the task is dated the night "
            "after."
        ) % {"year": year}]})  # fmt: skip


def calendar():
    """The business calendar's working-day arithmetic (its defaults where a database has none)."""
    from pharmacrm.servicedesk import calendars, workcalendar
    from pharmacrm.servicedesk.models import BusinessCalendar

    try:
        return calendars.engine(CALENDAR_CODE)
    except BusinessCalendar.DoesNotExist:
        return workcalendar.WorkCalendar()


def due_date(start: dt.date, days: int, engine=None) -> dt.date:
    """`days` working days after `start` (0: `start` itself if it is a working day, else the next one). Every year
    counted through must be known to the calendar: CalendarYearMissing otherwise."""
    return _count(start, days, engine or calendar(), strict=True)[0]


def provisional_due(start: dt.date, days: int, engine=None) -> tuple[dt.date, list[int]]:
    """`due_date`, and where a year counted through is not known to the calendar, the SLA clocks' fallback there:
    its weekdays less the public holidays the law fixes (workcalendar.statutory_days). Returns the date and the
    years not known (empty: the date is final)."""
    return _count(start, days, engine or calendar(), strict=False)


def _count(start: dt.date, days: int, engine, *, strict: bool) -> tuple[dt.date, list[int]]:
    known: set[int] = set()
    gaps: list[int] = []

    def check(day: dt.date) -> None:
        if day.year not in known:
            known.add(day.year)
            if not engine.covers(day.year):
                if strict:
                    raise CalendarYearMissing(day.year)
                gaps.append(day.year)

    day, left = start, days
    check(day)
    if days == 0:
        while not engine.is_working_day(day):
            day += dt.timedelta(days=1)
            check(day)
        return day, gaps
    for _step in range(3660):
        day += dt.timedelta(days=1)
        check(day)
        if engine.is_working_day(day):
            left -= 1
            if not left:
                return day, gaps
    raise ValidationError({"due_days": [_("The calendar has no working days: check its weekly pattern.")]})


# --- who may do what ------------------------------------------------------------------------------------------


def may_see_tasks(user) -> bool:
    return access.can(user, Cap.VIEW_STAGE_TASKS)


def sees_all(user) -> bool:
    return access.can(user, Cap.VIEW_STAGE_TASKS) and access.can(user, Cap.ALL_STAGE_TASKS)


def may_edit_playbook(user) -> bool:
    return access.can(user, Cap.MANAGE_PLAYBOOK)


def led_team_ids(user) -> list[int]:
    cached = getattr(user, "_led_team_ids", None)
    if cached is None:
        cached = sorted(Team.objects.filter(lead=user).values_list("id", flat=True))
        user._led_team_ids = cached
    return cached


def tasks_for(user, qs=None):
    """The stage tasks the user may see: their own, their teams' when they lead one, all for managers."""
    qs = StageTask.objects.all() if qs is None else qs
    if not may_see_tasks(user):
        return qs.none()
    if sees_all(user):
        return qs
    q = Q(owner=user)
    led = led_team_ids(user)
    if led:
        q |= Q(team_id__in=led) | Q(owner_id__in=User.objects.filter(teams__in=led).values("pk"))
    return qs.filter(q)


def may_work(user, task: StageTask, *, in_scope: bool = False) -> bool:
    """Mark done or skip: whoever sees the task and records interactions (not the read-only roles)."""
    if not (may_see_tasks(user) and access.can(user, Cap.RECORD_INTERACTIONS)):
        return False
    return in_scope or tasks_for(user).filter(pk=task.pk).exists()


# --- the playbook ---------------------------------------------------------------------------------------------


def actions_by_stage(*, active_only: bool = True) -> dict[str, list[StageAction]]:
    qs = StageAction.objects.all()
    if active_only:
        qs = qs.filter(active=True)
    out: dict[str, list[StageAction]] = {}
    for action in qs.order_by("stage", "position", "id"):
        out.setdefault(action.stage, []).append(action)
    return out


ACTION_FIELDS = ("stage", "position", "kind", "title", "due_days", "assignee", "active")


def check_action(data: dict, action: StageAction | None = None) -> dict:
    """The action's fields checked: every error named by field, nothing saved."""
    errors: dict[str, list[str]] = {}
    out = {f: getattr(action, f) for f in ACTION_FIELDS} if action else {"position": 1, "assignee": "owner",
                                                                          "active": True, "title": ""}  # fmt: skip
    for f in ACTION_FIELDS:
        if f in data and data[f] is not None:
            out[f] = data[f]
    if out.get("stage") not in Stage.values:
        errors["stage"] = [_("Choose a lifecycle stage.")]
    if out.get("kind") not in StageActionKind.values:
        errors["kind"] = [_("Choose what kind of action it is.")]
    if out.get("assignee") not in StageAssignee.values:
        errors["assignee"] = [_("Choose who does it: the owner or the team's lead.")]
    out["title"] = str(out.get("title") or "").strip()
    if not out["title"] and not (action and action.preset):
        errors["title"] = [_("Say in a few words what is to be done.")]
    elif len(out["title"]) > 200:
        errors["title"] = [_("At most 200 characters.")]
    for f, low, high in (("due_days", 0, MAX_DUE_DAYS), ("position", 1, 99)):
        try:
            value = int(out.get(f))
            if isinstance(out.get(f), bool) or not low <= value <= high:
                raise ValueError
            out[f] = value
        except (TypeError, ValueError):
            errors[f] = [_("Give a whole number from %(low)s to %(high)s.") % {"low": low, "high": high}]
    out["active"] = bool(out.get("active"))
    if errors:
        raise ValidationError(errors)
    return out


def save_action(user, data: dict, action: StageAction | None = None, *, version: int | None = None) -> StageAction:
    """Create or change a playbook action (managers); versioned — an edit made from an older version is refused —
    and audited. Tasks already given keep their due date; new ones follow the new rule."""
    from pharmacrm.customers.services import ConflictError

    if not may_edit_playbook(user):
        raise PermissionDenied(_("Only managers change the stage playbook."))
    values = check_action(data, action)
    with transaction.atomic():
        if action is None:
            action = StageAction.objects.create(**values, updated_by=user, updated_at=timezone.now())
            audit.record(A.CREATE, action, user=user, changes=audit.diff({}, _action_snapshot(action)))
            return action
        current = StageAction.objects.select_for_update().get(pk=action.pk)
        if version is not None and (not is_id(version) or int(version) != current.version):
            raise ConflictError(current.version)
        before = _action_snapshot(current)
        for f, value in values.items():
            setattr(current, f, value)
        changes = audit.diff(before, _action_snapshot(current))
        if not changes:
            return current
        current.version += 1
        current.updated_by, current.updated_at = user, timezone.now()
        current.save()
        audit.record(A.UPDATE, current, user=user, changes=changes)
    return current


def _action_snapshot(action: StageAction) -> dict:
    return {f: getattr(action, f) for f in ACTION_FIELDS}


# --- entering a stage -----------------------------------------------------------------------------------------


def _fk(model) -> str:
    return "institution" if model is Institution else "person"


@dataclass
class SyncResult:
    entered: int = 0
    created: int = 0
    reopened: int = 0
    closed: int = 0
    provisional_year: int | None = None  # a due date fell in a year the calendar does not know
    customers: list = field(default_factory=list)
    names: list = field(default_factory=list)  # the first customers', for the audit entry's text

    def label(self) -> str:
        """What the audit entry is about, as the home page's recent changes name it: the customer, or the first of
        several and how many more."""
        first = self.names[0] if self.names else ""
        return first if self.entered <= 1 else f"{first} +{self.entered - 1}"  # cut with "…" by the entry


def sync(model, ids, *, user=None, now: dt.datetime | None = None, source: str = "", created: bool = False) -> SyncResult:
    """Bring these customers' stage history and tasks in line with their stage (see the module's notes). Runs in the
    caller's transaction: a due date the calendar cannot give (CalendarYearMissing) undoes the caller's change.
    `created`: the customers were inserted in this transaction, so they have no stage history and no tasks to look
    up (two queries fewer for each customer a form or the API creates)."""
    now = now or timezone.now()
    ids = sorted({int(i) for i in ids})
    result = SyncResult()
    engine = None
    for start in range(0, len(ids), CHUNK):
        engine = _sync_chunk(model, ids[start : start + CHUNK], user, now, result, engine, created)
    if result.entered:
        fk = _fk(model)
        who = {"user": user} if user is not None else {"actor_name": "worker"}
        audit.record(
            A.UPDATE, ("engagement.stagetask", "", result.label()), **who, lifecycle=fk, customers=result.customers[:200],
            entered=result.entered, created=result.created, reopened=result.reopened, closed=result.closed,
            provisional_year=result.provisional_year, source=source,
        )  # fmt: skip
    return result


def _sync_chunk(model, ids: list[int], user, now: dt.datetime, result: SyncResult, engine, created: bool = False):
    fk = _fk(model)
    rows = list(model.objects.filter(pk__in=ids, merged_into__isnull=True).values_list("pk", "stage", "owner_id",
                                                                                        "team_id", "name"))  # fmt: skip
    names = {r[0]: r[4] for r in rows}
    rows = [r[:4] for r in rows]
    spells = {} if created else {
        getattr(s, f"{fk}_id"): s for s in StageSpell.objects.filter(**{f"{fk}_id__in": ids}, left_at=None)
    }  # fmt: skip
    moving = [r for r in rows if r[0] not in spells or spells[r[0]].stage != r[1]]
    if not moving:
        return engine
    leaving = [spells[r[0]] for r in moving if r[0] in spells]
    if leaving:
        StageSpell.objects.filter(pk__in=[s.pk for s in leaving]).update(left_at=now)
        result.closed += StageTask.objects.filter(
            **{f"{fk}_id__in": [getattr(s, f"{fk}_id") for s in leaving]}, status=TS.OPEN
        ).update(status=TS.LEFT, closed_at=now, updated_at=now, version=F("version") + 1)
    StageSpell.objects.bulk_create([StageSpell(**{f"{fk}_id": pk}, stage=stage, entered_at=now)
                                    for pk, stage, _o, _t in moving])  # fmt: skip
    result.entered += len(moving)
    result.customers += [pk for pk, *_rest in moving]
    result.names += [names[pk] for pk, *_rest in moving[:2]]
    entering = {pk: stage for pk, stage, _o, _t in moving}
    since = now - dt.timedelta(days=reentry_days())
    recent = [] if created else list(StageTask.objects.filter(**{f"{fk}_id__in": list(entering)}, created_at__gte=since)
                                     .values_list("pk", f"{fk}_id", "stage", "status"))  # fmt: skip
    given = {(cid, stage) for _pk, cid, stage, _s in recent if entering.get(cid) == stage}
    reopen = [pk for pk, cid, stage, status in recent if (cid, stage) in given and status == TS.LEFT]
    if reopen:
        result.reopened += StageTask.objects.filter(pk__in=reopen).update(
            status=TS.OPEN, closed_at=None, updated_at=now, version=F("version") + 1
        )
    # the playbook is read only when a task may be given: a customer without an owner gets none
    playbook = actions_by_stage() if any(o is not None and (p, s) not in given for p, s, o, _t in moving) else {}
    teams = {t for _p, _s, _o, t in moving if t}
    leads = (dict(Team.objects.filter(pk__in=teams, lead__is_active=True).values_list("pk", "lead_id"))
             if teams and playbook else {})  # the leads are looked up only for tasks to give  # fmt: skip
    today = timezone.localdate(now)
    dues: dict[int, tuple[dt.date, list[int]]] = {}
    new = []
    for pk, stage, owner, team in moving:
        if owner is None or (pk, stage) in given:
            continue
        for action in playbook.get(stage, []):
            if action.due_days not in dues:
                engine = engine or calendar()
                dues[action.due_days] = provisional_due(today, action.due_days, engine)
                if dues[action.due_days][1]:
                    result.provisional_year = dues[action.due_days][1][0]
            due, gaps = dues[action.due_days]
            who = leads.get(team) if action.assignee == StageAssignee.LEAD and leads.get(team) else owner
            new.append(StageTask(**{f"{fk}_id": pk}, action=action, stage=stage, owner_id=who, team_id=team,
                                 due_on=due, due_provisional=bool(gaps), created_at=now, updated_at=now))  # fmt: skip
    StageTask.objects.bulk_create(new, batch_size=CHUNK)
    result.created += len(new)
    return engine


def on_stage_changed(sender, *, ids=None, since=None, user=None, source: str = "", created: bool = False,
                     **kwargs) -> None:  # fmt: skip
    """customers.services.stage_changed: `ids` of the customers a form, the API or an opportunity saved (in their
    transaction: an error undoes the save), or `since` — every customer an import wrote since then (after it; an
    error there is logged and the nightly sweep tries again)."""
    if sender not in (Institution, Person):
        return
    if ids is not None:
        sync(sender, ids, user=user, source=source, created=created)
        return
    if since is None:
        return
    changed = list(sender.objects.filter(updated_at__gte=since).values_list("pk", flat=True))
    with transaction.atomic():
        sync(sender, changed, user=user, source=source or "import")


def on_merged(sender, *, survivor, duplicate, user=None, **kwargs) -> None:
    """A merged-away customer leaves its stage: its time there ends, its open tasks are closed (the survivor has its
    own, for the stage it is at)."""
    fk = _fk(sender)
    now = timezone.now()
    StageSpell.objects.filter(**{fk: duplicate}, left_at=None).update(left_at=now)
    closed = StageTask.objects.filter(**{fk: duplicate}, status=TS.OPEN).update(
        status=TS.LEFT, closed_at=now, updated_at=now, reason=f"→ {survivor.code}"[:REASON_MAX],
        version=F("version") + 1,
    )  # fmt: skip
    if closed:
        audit.record(A.UPDATE, ("engagement.stagetask", "", str(duplicate)), user=user, lifecycle=fk,
                     customers=[duplicate.pk], closed=closed, merged=survivor.pk)  # fmt: skip


MOVED_KIND = "lifecycle.tasks-moved"


def on_owner_changed(sender, *, moves: dict, user=None, **kwargs) -> None:
    """customers.services.owner_changed (in the saving transaction): see follow_owner."""
    if sender in (Institution, Person):
        follow_owner(sender, moves, user=user)


def follow_owner(model, moves: dict, *, user=None) -> int:
    """Customers changed owner (`moves` {id: (old owner id, new owner id)}): their open stage tasks the old owner had
    go to the new one — those given to the team's lead stay with the lead, done, skipped and closed ones keep who
    had them. One audit entry per old and new owner, and each new owner told once how many tasks came (bell and
    e-mail), not once per task; someone who gives a customer to themselves is not told. Returns how many moved."""
    from django.urls import reverse
    from django.utils.translation import ngettext_lazy

    from pharmacrm.core.deferred import Message
    from pharmacrm.notify import services as notify

    fk = _fk(model)
    now = timezone.now()
    pairs: dict[tuple[int, int], list[int]] = {}
    for pk, (old, new) in moves.items():
        if old and new and old != new:
            pairs.setdefault((int(old), int(new)), []).append(int(pk))
    per_new: dict[int, int] = {}
    for (old, new), ids in sorted(pairs.items()):
        moved = StageTask.objects.filter(**{f"{fk}_id__in": ids}, owner_id=old, status=TS.OPEN).update(
            owner_id=new, reminded_on=None, updated_at=now, version=F("version") + 1
        )
        if moved:
            per_new[new] = per_new.get(new, 0) + moved
            who = {"user": user} if user is not None else {"actor_name": "worker"}
            audit.record(A.UPDATE, ("engagement.stagetask", "", f"{len(ids)}"), **who, lifecycle=fk,
                         customers=ids[:200], owner=[old, new], moved=moved)  # fmt: skip
    url = reverse("engagement:stage-tasks")
    for new, n in sorted(per_new.items()):
        owner = User.objects.filter(pk=new, is_active=True).first()
        if owner is None or (user is not None and owner.pk == user.pk):
            continue
        notify.send(
            [owner], kind=MOVED_KIND, url=url, obj=("engagement.stagetask", ""),
            title=Message(ngettext_lazy("%(n)s open stage task is yours now", "%(n)s open stage tasks are yours now",
                                        n), n=n),
            body=Message(gettext_lazy("You became the owner of their customers: the tasks their previous owner had "
                                      "not done yet are on your list of stage tasks.")),
        )  # fmt: skip
    return sum(per_new.values())


def sweep(now: dt.datetime | None = None) -> int:
    """The nightly catch-up: customers whose stage is not the one their stage history has open (changed by a script
    or a repair, or recorded before the history began) are synced. Returns how many entered a stage."""
    entered = 0
    for model in (Institution, Person):
        fk = _fk(model)
        current = StageSpell.objects.filter(**{fk: OuterRef("pk")}, stage=OuterRef("stage"), left_at=None)
        ids = list(model.objects.filter(merged_into__isnull=True).exclude(Exists(current))
                   .values_list("pk", flat=True))  # fmt: skip
        with transaction.atomic():
            entered += sync(model, ids, now=now, source="sweep").entered
    return entered


def redate_provisional(calendar_row=None, *, user=None, actor_name: str = "worker") -> int:
    """The open tasks whose due date is provisional (or, given before that existed, missing) dated again from the day
    they were given, on the calendar as it is now: final once it knows every year counted through, provisional still
    otherwise. Called in the transaction of a change to the business calendar (`calendar_row`, with who made it:
    servicedesk.calendars refreshes the SLA clocks from the same place) and by the nightly run (a chinese-calendar
    upgrade that brings the year). One audit entry when a date or mark moved. Returns how many became final."""
    if calendar_row is not None and calendar_row.code != CALENDAR_CODE:
        return 0
    engine, moved, final, still = None, 0, 0, 0
    now = timezone.now()
    qs = StageTask.objects.filter(Q(due_provisional=True) | Q(due_on=None), status=TS.OPEN)
    for pk, created, days, was in qs.values_list("pk", "created_at", "action__due_days", "due_on").iterator():
        engine = engine or calendar()
        due, gaps = provisional_due(timezone.localdate(created), days, engine)
        still += bool(gaps)
        changed = StageTask.objects.filter(pk=pk, status=TS.OPEN).update(due_on=due, due_provisional=bool(gaps),
                                                                          updated_at=now)  # fmt: skip
        if changed and (due != was or not gaps):
            moved += 1
            final += not gaps
    if moved:
        who = {"user": user} if user is not None else {"actor_name": actor_name}
        audit.record(A.UPDATE, ("engagement.stagetask", "", str(moved)), **who, redated=final, provisional=still)
    return final


# --- doing the tasks ------------------------------------------------------------------------------------------


def _locked_open(user, task: StageTask, version) -> StageTask:
    from pharmacrm.customers.services import ConflictError

    if not may_work(user, task):
        raise PermissionDenied(_("You may not work on this stage task."))
    current = StageTask.objects.select_for_update().get(pk=task.pk)
    if version not in (None, "") and (not is_id(version) or int(version) != current.version):
        raise ConflictError(current.version)  # a garbled version (not a number) is as stale as an old one
    if current.status != TS.OPEN:
        raise ValidationError({"status": [_("This task is no longer open: it is “%(status)s”.")
                                          % {"status": current.get_status_display()}]})  # fmt: skip
    return current


def complete(user, task: StageTask, *, note: str = "", channel: str = "", version=None) -> StageTask:
    """Mark the task done: the interaction it was (channel from the action's kind unless given, the action's title as
    its subject, the note as its notes) is recorded and linked; audited."""
    from . import services

    note = (note or "").strip()
    if len(note) > 20000:
        raise ValidationError({"note": [_("At most 20,000 characters.")]})
    with transaction.atomic():
        current = _locked_open(user, task, version)
        action = current.action
        data = {
            "channel": channel or KIND_CHANNEL.get(action.kind, InteractionChannel.OTHER),
            "subject": action.label[:200], "notes": note,
            "institution": current.institution, "person": current.person,
        }  # fmt: skip
        interaction = services.record_interaction(user, data)
        now = timezone.now()
        before = {"status": current.status}
        current.status, current.done_at, current.closed_at = TS.DONE, now, now
        current.done_on = timezone.localdate(now)
        current.note, current.interaction = note, interaction
        current.updated_at, current.version = now, current.version + 1
        current.save()
        audit.record(A.UPDATE, current, user=user, changes=audit.diff(before, {"status": current.status}),
                     interaction=interaction.pk)  # fmt: skip
    return current


def skip(user, task: StageTask, *, reason: str, version=None) -> StageTask:
    """Skip the task, saying why (required); audited."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": [_("Say why the task is skipped.")]})
    if len(reason) > REASON_MAX:
        raise ValidationError({"reason": [_("At most %(max)s characters.") % {"max": REASON_MAX}]})
    with transaction.atomic():
        current = _locked_open(user, task, version)
        now = timezone.now()
        current.status, current.reason, current.closed_at = TS.SKIPPED, reason, now
        current.updated_at, current.version = now, current.version + 1
        current.save()
        audit.record(A.UPDATE, current, user=user, changes={"status": [TS.OPEN, TS.SKIPPED]}, reason=reason)
    return current


# --- figures --------------------------------------------------------------------------------------------------


def days_in_stage(customer) -> tuple[str, int | None]:
    fk = _fk(type(customer))
    spell = StageSpell.objects.filter(**{fk: customer}, left_at=None).order_by("-entered_at").first()
    if spell is None or spell.stage != customer.stage:
        return customer.stage, None
    return spell.stage, (timezone.localdate() - timezone.localdate(spell.entered_at)).days


@dataclass
class OwnerRow:
    owner_id: int | None
    name: str
    open: int = 0
    overdue: int = 0
    done: int = 0
    done_on_time: int = 0
    per_stage: dict = field(default_factory=dict)

    @property
    def on_time_pct(self) -> int | None:
        return round(self.done_on_time * 100 / self.done) if self.done else None


def owner_summary(qs, today: dt.date) -> list[OwnerRow]:
    """Per owner: open, overdue, done, done on time, open per stage — one grouped query."""
    rows: dict[int | None, OwnerRow] = {}
    grouped = (
        qs.order_by().values("owner_id", "stage")
        .annotate(
            open=Count("pk", filter=Q(status=TS.OPEN)),
            overdue=Count("pk", filter=Q(status=TS.OPEN, due_on__lt=today)),
            done=Count("pk", filter=Q(status=TS.DONE)),
            on_time=Count("pk", filter=Q(status=TS.DONE, done_on__lte=F("due_on"))),
        )
    )  # fmt: skip
    for r in grouped:
        row = rows.setdefault(r["owner_id"], OwnerRow(r["owner_id"], ""))
        row.open += r["open"]
        row.overdue += r["overdue"]
        row.done += r["done"]
        row.done_on_time += r["on_time"]
        row.per_stage[r["stage"]] = row.per_stage.get(r["stage"], 0) + r["open"]
    names = {u.pk: u.display_name or u.username for u in User.objects.filter(pk__in=[k for k in rows if k])}
    for key, row in rows.items():
        row.name = names.get(key, "—")
    return sorted(rows.values(), key=lambda r: (-r.overdue, -r.open, r.name))


def quarter_start(day: dt.date) -> dt.date:
    return dt.date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


def conversion(quarters: int = 4, today: dt.date | None = None) -> list[dict]:
    """Per quarter (the last `quarters`, this one included): how many customers entered each stage, how many of
    those that entered potential, intent and decision moved on to the next stage of the way forward (by now), and the
    average days they spent in each stage before leaving it. Grouped queries over the stage history."""
    today = today or timezone.localdate()
    start = quarter_start(today)
    starts = [start]
    for _i in range(quarters - 1):
        start = quarter_start(start - dt.timedelta(days=1))
        starts.append(start)
    starts.reverse()
    first = timezone.make_aware(dt.datetime.combine(starts[0], dt.time.min))
    spells = StageSpell.objects.filter(entered_at__gte=first)
    out = []
    entered: dict[tuple[dt.date, str], int] = {}
    left_days: dict[tuple[dt.date, str], list[float]] = {}
    # one pass over the quarter's spells (per customer: the next spell tells where it went)
    rows = list(spells.order_by("institution_id", "person_id", "entered_at", "id")
                .values_list("institution_id", "person_id", "stage", "entered_at", "left_at"))  # fmt: skip
    moved: dict[tuple[dt.date, str], int] = {}
    for i, (inst, person, stage, at, left) in enumerate(rows):
        q = quarter_start(timezone.localdate(at))
        entered[(q, stage)] = entered.get((q, stage), 0) + 1
        if left is not None:
            left_days.setdefault((q, stage), []).append((left - at).total_seconds() / 86400)
        if i + 1 < len(rows) and rows[i + 1][:2] == (inst, person) and stage in ORDER[:-1]:
            if rows[i + 1][2] == ORDER[ORDER.index(stage) + 1]:
                moved[(q, stage)] = moved.get((q, stage), 0) + 1
    for q in starts:
        steps = []
        for stage in ORDER[:-1]:
            n = entered.get((q, stage), 0)
            m = moved.get((q, stage), 0)
            steps.append({"stage": stage, "label": stage_label(stage), "next": stage_label(ORDER[ORDER.index(stage) + 1]),
                          "entered": n, "moved": m, "pct": round(m * 100 / n) if n else None})  # fmt: skip
        days = {s: left_days.get((q, s)) for s in Stage.values}
        out.append({
            "quarter": f"{q.year} Q{(q.month - 1) // 3 + 1}", "start": q, "steps": steps,
            "entered": {s: entered.get((q, s), 0) for s in Stage.values},
            "days": {s: (round(sum(v) / len(v), 1) if v else None) for s, v in days.items()},
        })  # fmt: skip
    return out


def without_owner() -> dict[str, int]:
    """Customers (active) per stage that have no owner, so get no stage tasks."""
    counts: dict[str, int] = {}
    for model in (Institution, Person):
        for r in model.objects.filter(merged_into__isnull=True, owner__isnull=True).order_by().values("stage").annotate(n=Count("pk")):
            counts[r["stage"]] = counts.get(r["stage"], 0) + r["n"]
    return counts


# --- the morning reminder -------------------------------------------------------------------------------------

REMINDER_KIND = "lifecycle.overdue"


def remind(today: dt.date | None = None) -> int:
    """The morning reminder (the worker's `remind_stage_tasks`): each active owner of open stage tasks past their due
    date that were not reminded of yet is told how many (bell and e-mail), once per task: the tasks are marked
    reminded. Returns how many owners were told."""
    from django.urls import reverse
    from django.utils.translation import ngettext_lazy

    from pharmacrm.core.deferred import Message
    from pharmacrm.notify import services as notify

    today = today or timezone.localdate()
    due = StageTask.objects.filter(status=TS.OPEN, due_on__lt=today, reminded_on=None, owner__isnull=False,
                                   owner__is_active=True)  # fmt: skip
    per_owner: dict[int, list[int]] = {}
    for pk, owner_id in due.values_list("pk", "owner_id"):
        per_owner.setdefault(owner_id, []).append(pk)
    if not per_owner:
        return 0
    owners = User.objects.in_bulk(list(per_owner))
    url = reverse("engagement:stage-tasks") + "?when=overdue"
    for pk, owner in sorted(owners.items()):
        n = len(per_owner[pk])
        title = Message(ngettext_lazy("%(n)s stage task of yours is overdue", "%(n)s stage tasks of yours are overdue",
                                      n), n=n)  # fmt: skip
        body = Message(gettext_lazy("Do them, or skip them saying why, on your list of stage tasks."))
        with transaction.atomic():
            notify.send([owner], kind=REMINDER_KIND, title=title, body=body, url=url,
                        obj=("engagement.stagetask", today.isoformat()))  # fmt: skip
            StageTask.objects.filter(pk__in=per_owner[pk]).update(reminded_on=today)
    audit.record(A.CREATE, ("notify.notification", "", str(len(owners))), actor_name="worker", kind=REMINDER_KIND,
                 owner=sorted(owners), count=sum(len(per_owner[pk]) for pk in owners))  # fmt: skip
    return len(owners)
