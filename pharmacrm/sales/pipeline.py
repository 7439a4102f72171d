"""The sales pipeline (销售线索与商机管理, seed 000 §2.2–2.4): opportunities with customers moved through the seed's steps
— 线索 lead → 需求分析 needs analysis → 方案 proposal → 谈判 negotiation → 签约 won, or 输单 lost — who sees and works
which, their stage history, the funnel of a period and the morning reminder of stale opportunities.

A lead from a hospital nobody knew yet is a customer record at the lifecycle stage *potential*, as everywhere in the
product; an opportunity moves its customer's stage forward (potential → intent → decision, won → active), never back.

Definitions (docs/sales-pipeline.md; the funnel page says them too), for a period in Beijing days:

- funnel: the opportunities *created* in the period, counted at every stage they reached (one created at the proposal
  stage reached the lead and needs-analysis stages too; a lost one reached the stages it passed before it was lost);
- conversion from a stage to the next: reached the next / reached this one;
- win rate: won / (won + lost) of the opportunities *closed* in the period; average deal size: the won amount over the
  number won; days to win: from the Beijing day created to the day won, averaged;
- weighted forecast: the open opportunities now, by expected close month, amount × the probability of their stage
  (PROBABILITY; settings PHARMACRM_PIPELINE_PROBABILITY overrides a stage's);
- stale: an open opportunity whose next-step date or expected close date has passed (before today, Beijing).

Everything is counted by the database in a fixed number of grouped queries, whatever the number of opportunities."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import TruncMonth
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from pharmacrm.core import access, audit, personal
from pharmacrm.core.models import AuditEntry, Team, User
from pharmacrm.core.roles import Cap
from pharmacrm.customers.choices import Source
from pharmacrm.customers.choices import Stage as CustomerStage
from pharmacrm.customers.models import Institution
from pharmacrm.customers.services import ConflictError
from pharmacrm.servicedesk.performance import LOCAL, Period, current_period, parse_period  # noqa: F401

from . import targets
from .models import Opportunity, OpportunityMove, yuan
from .services import half_up

A = AuditEntry.Action
S = Opportunity.Stage
OPEN = (S.LEAD, S.NEEDS, S.PROPOSAL, S.NEGOTIATION)
STEPS = (
    S.LEAD,
    S.NEEDS,
    S.PROPOSAL,
    S.NEGOTIATION,
    S.WON,
)  # the funnel's order; `reached` is an index into it
CLOSED = (S.WON, S.LOST)
PROBABILITY = {S.LEAD: 10, S.NEEDS: 25, S.PROPOSAL: 50, S.NEGOTIATION: 75, S.WON: 100, S.LOST: 0}
NOTICE_KIND = "sales.pipeline"
FORECAST_MONTHS = 6
# the customer's lifecycle stage an opportunity's stage brings it to, at least (customers.choices.Stage)
CUSTOMER_STAGE = {
    S.LEAD: CustomerStage.INTENT, S.NEEDS: CustomerStage.INTENT, S.PROPOSAL: CustomerStage.DECISION,
    S.NEGOTIATION: CustomerStage.DECISION, S.WON: CustomerStage.ACTIVE,
}  # fmt: skip
CUSTOMER_RANK = {
    CustomerStage.POTENTIAL: 0,
    CustomerStage.INTENT: 1,
    CustomerStage.DECISION: 2,
    CustomerStage.ACTIVE: 3,
}
FIELDS = ("institution", "contact", "title", "product", "amount_fen", "close_date", "owner", "team", "source",
          "competitor", "next_step", "next_step_date")  # fmt: skip
# free text a reader who sees personal data masked is shown masked (personal.FREE_TEXT_OF): an edit by such a user puts
# each mask still in it back as stored
TEXTS = personal.FREE_TEXT_OF["sales.opportunity"]
MAX_YUAN = targets.MAX_YUAN


def probability(stage: str) -> int:
    """The percentage a stage's amount counts with in the weighted forecast."""
    custom = getattr(settings, "PHARMACRM_PIPELINE_PROBABILITY", None) or {}
    return int(custom.get(str(stage), PROBABILITY[S(stage)]))


def beijing_today(now: dt.datetime | None = None) -> dt.date:
    return (now or timezone.now()).astimezone(LOCAL).date()


def stage_label(stage: str) -> str:
    try:
        return str(S(stage).label)
    except ValueError:
        return stage or "—"


# --- who sees what ----------------------------------------------------------------------------------------


@dataclass
class Scope:
    """Every opportunity (`everything`), or the user's own and those of the teams they belong to or lead."""

    everything: bool = False
    user: User | None = None
    team_ids: list[int] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return "all" if self.everything else "own"


def scope_for(user) -> Scope:
    """Managers, administrators, analysts, auditors: everything (auditors and analysts read only); reps and
    key-account managers their own and their teams' (a team lead: the teams they lead too). PermissionDenied for
    anyone else."""
    if access.can(user, Cap.VIEW_ALL_PIPELINE):
        return Scope(everything=True, user=user)
    if access.can(user, Cap.WORK_PIPELINE):
        cached = getattr(user, "_pipeline_teams", None)
        if cached is None:
            cached = sorted(
                set(user.teams.values_list("id", flat=True))
                | set(Team.objects.filter(lead=user).values_list("id", flat=True))
            )
            user._pipeline_teams = cached
        return Scope(user=user, team_ids=cached)
    raise PermissionDenied(
        _("The sales pipeline is for sales reps, key-account managers, managers and analysts.")
    )


def may_see(user) -> bool:
    try:
        scope_for(user)
    except PermissionDenied:
        return False
    return True


def may_work(user) -> bool:
    return access.can(user, Cap.WORK_PIPELINE)


def in_scope(scope: Scope, opp: Opportunity) -> bool:
    return (
        scope.everything
        or opp.owner_id == scope.user.pk
        or (opp.team_id is not None and opp.team_id in scope.team_ids)
    )


def opportunities_for(user, qs=None, scope: Scope | None = None):
    scope = scope or scope_for(user)
    qs = Opportunity.objects.all() if qs is None else qs
    if scope.everything:
        return qs
    q = Q(owner_id=scope.user.pk)
    if scope.team_ids:
        q |= Q(team_id__in=scope.team_ids)
    return qs.filter(q)


def may_change(user, opp: Opportunity) -> bool:
    return may_work(user) and in_scope(scope_for(user), opp)


def require_change(user, opp: Opportunity) -> None:
    if not may_change(user, opp):
        raise PermissionDenied(_("You do not have permission to do this."))


def owners_offered(user):
    """Who an opportunity may be given to: active users who work opportunities (everyone's, for a manager; the user
    and the members of their teams otherwise)."""
    from django.contrib.auth.models import Group

    from pharmacrm.core.roles import MATRIX

    roles = [r.value for r in MATRIX[Cap.WORK_PIPELINE]]
    qs = User.objects.filter(is_active=True).filter(
        Q(groups__in=Group.objects.filter(name__in=roles)) | Q(is_superuser=True)
    )
    scope = scope_for(user)
    if not scope.everything:
        qs = qs.filter(Q(pk=user.pk) | Q(teams__in=scope.team_ids))
    return qs.distinct().order_by("username")


# --- checking what is entered -------------------------------------------------------------------------------


def amount_fen(raw) -> int:
    """An expected amount as typed (120000, 120,000.00, ¥120000, full-width digits) in fen; ValidationError with the
    reason (the caller names the field)."""
    try:
        fen = targets.amount_fen(raw)
    except ValidationError as e:
        if e.messages == [_("a target cannot be negative")]:
            raise ValidationError(_("an amount cannot be negative")) from None
        raise
    if fen is None:
        raise ValidationError(_("This field is required."))
    return fen


class OpportunityConflict(ConflictError):
    """The opportunity was moved or changed by someone else since it was loaded: nothing was saved."""

    def __init__(self, current: Opportunity):
        super().__init__(current.version)
        who = ""
        if current.owner_id and current.owner:
            who = current.owner.display_name or current.owner.username
        self.args = (
            _("Someone else changed this opportunity while you were working on it (it is now at the stage "
              "“%(stage)s”), so nothing was saved. Reload it and apply your change again.") % {"stage": stage_label(current.stage)},
        )  # fmt: skip
        self.who = who

    def __str__(self) -> str:
        return self.args[0]


def _date_ok(value, name: str, errors: dict) -> None:
    if value is not None and not (dt.date(2000, 1, 1) <= value <= dt.date(2999, 12, 31)):
        errors.setdefault(name, []).append(_("Give a date between 2000 and 2999."))


def clean(user, data: dict, instance: Opportunity | None = None) -> dict:
    """The opportunity's fields from `data` (model instances, dates, fen; missing keys keep the instance's) checked
    together: ValidationError({field: [reasons]}) naming every bad field. Defaults for a new one: the customer's
    owner (or the user), the customer's team (or the owner's), the customer's information source."""
    errors: dict[str, list] = {}
    out = {f: data.get(f, getattr(instance, f, None) if instance else None) for f in FIELDS}
    scope = scope_for(user)
    inst = out["institution"]
    if inst is None:
        errors["institution"] = [_("Choose the customer.")]
    elif inst.merged_into_id or not access.can_see(user, inst):
        if instance is None or inst.pk != instance.institution_id:
            errors["institution"] = [_("No such customer, or you may not see it.")]
    title = (out["title"] or "").strip()
    out["title"] = title
    if not title:
        errors["title"] = [_("This field is required.")]
    elif len(title) > 200:
        errors["title"] = [_("At most 200 characters.")]
    if out["amount_fen"] is None:
        errors["amount_fen"] = [_("This field is required.")]
    elif out["amount_fen"] < 0:
        errors["amount_fen"] = [_("an amount cannot be negative")]
    elif out["amount_fen"] >= MAX_YUAN * 100:
        errors["amount_fen"] = [_("at most 12 digits before the decimal point")]
    if out["close_date"] is None:
        errors["close_date"] = [_("This field is required.")]
    _date_ok(out["close_date"], "close_date", errors)
    _date_ok(out["next_step_date"], "next_step_date", errors)
    contact = out["contact"]
    if (
        contact is not None
        and inst is not None
        and inst.pk not in (contact.institution_id, contact.department_id)
    ):
        errors["contact"] = [_("This person does not work at the customer.")]
    if instance is None and inst is not None and "institution" not in errors:
        if "owner" not in data or data.get("owner") is None:
            owner = inst.owner if inst.owner_id else None
            if owner is None or not owner.is_active or not access.can(owner, Cap.WORK_PIPELINE):
                owner = user if may_work(user) else None
            if owner is not None and not scope.everything and owner.pk != user.pk:
                team_ok = inst.team_id in scope.team_ids or owner.teams.filter(pk__in=scope.team_ids).exists()
                owner = owner if team_ok else user
            out["owner"] = owner
        if "team" not in data or data.get("team") is None:
            team = inst.team if inst.team_id else None
            owner = out["owner"]
            if (
                owner is not None
                and not scope.everything
                and owner.pk == user.pk
                and team is not None
                and team.pk not in scope.team_ids
            ):  # the rep's own, not a team they are not in
                team = None
            if team is None and owner is not None:
                team = owner.teams.order_by("name").first()
            out["team"] = team
        if not data.get("source"):
            out["source"] = inst.source or ""
    out["source"] = out["source"] or ""
    if out["source"] and out["source"] not in Source.values:
        errors["source"] = [_("Choose one of the information sources.")]
    for name, limit in (("competitor", 100), ("next_step", 200)):
        out[name] = (out[name] or "").strip()
        if len(out[name]) > limit:
            errors[name] = [_("At most %(n)s characters.") % {"n": limit}]
    owner = out["owner"]
    if owner is not None and (not owner.is_active or not access.can(owner, Cap.WORK_PIPELINE)):
        errors["owner"] = [
            _("%(name)s does not work sales opportunities.") % {"name": owner.display_name or owner.username}
        ]
    elif not scope.everything and "owner" not in errors:
        mine = owner is not None and owner.pk == user.pk
        team = out["team"]
        if not mine and not (team is not None and team.pk in scope.team_ids):
            errors["owner"] = [_("Give the opportunity to yourself or to someone of your teams (with that team): you "
                                 "would not see it otherwise.")]  # fmt: skip
        elif team is not None and team.pk not in scope.team_ids and (instance is None or team.pk != instance.team_id):
            # one's own opportunity filed under another team showed in that team's list and funnel
            errors["team"] = [_("Choose one of your own teams.")]
    if errors:
        raise ValidationError(errors)
    return out


# --- changing opportunities -----------------------------------------------------------------------------


def _shown(name: str, value):
    """A field's value as the audit trail keeps it."""
    if name == "amount_fen":
        return None if value is None else str(yuan(value))
    if hasattr(value, "pk"):
        return value.pk  # a record by its id, as the customers' changes keep it: the audit page names it
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _audit_name(name: str) -> str:
    return "amount" if name == "amount_fen" else name


def _advance_customer(user, opp: Opportunity) -> None:
    """The customer's lifecycle stage moved forward to the opportunity's (never back; a churned customer only when
    won back) — audited."""
    target = CUSTOMER_STAGE.get(opp.stage)
    if target is None:
        return
    inst = Institution.objects.filter(pk=opp.institution_id).only("pk", "stage", "name").first()
    if inst is None:
        return
    now_stage = inst.stage
    if now_stage == CustomerStage.CHURNED:
        if target != CustomerStage.ACTIVE:
            return
    elif CUSTOMER_RANK.get(now_stage, 0) >= CUSTOMER_RANK[target]:
        return
    done = Institution.objects.filter(pk=inst.pk, stage=now_stage).update(
        stage=target, version=F("version") + 1, updated_at=timezone.now()
    )
    if done:
        audit.record(
            A.UPDATE, inst, user=user, changes={"stage": [now_stage, str(target)]}, opportunity=opp.pk
        )
        from pharmacrm.customers.services import stage_changed

        stage_changed.send(sender=Institution, ids=[inst.pk], user=user, source="opportunity")


def create(user, data: dict, *, stage: str = S.LEAD, source: str = "form") -> Opportunity:
    """A new opportunity (WORK_PIPELINE, the customer visible to the user) at an open stage; audited, its first stage
    in its history, its customer's lifecycle stage moved forward."""
    if not may_work(user):
        raise PermissionDenied(_("You do not have permission to do this."))
    if stage not in OPEN:
        raise ValidationError({"stage": [_("A new opportunity starts at an open stage; move it to won or lost "
                                           "afterwards.")]})  # fmt: skip
    with transaction.atomic():
        values = clean(user, data)
        now = timezone.now()
        opp = Opportunity.objects.create(**values, stage=stage, reached=STEPS.index(S(stage)), created_by=user,
                                         created_at=now, updated_at=now)  # fmt: skip
        OpportunityMove.objects.create(opportunity=opp, from_stage="", to_stage=stage, at=now, by=user)
        changes = {
            _audit_name(f): [None, _shown(f, values[f])] for f in FIELDS if values[f] not in (None, "")
        }
        changes["stage"] = [None, str(stage)]
        audit.record(A.CREATE, opp, user=user, changes=changes, source=source)
        _advance_customer(user, opp)
    return opp


def _locked(opp: Opportunity, version: int | None) -> Opportunity:
    current = Opportunity.objects.select_for_update().filter(pk=opp.pk).first()
    if current is None:
        raise ValidationError(_("This opportunity no longer exists."))
    if version is not None and current.version != version:
        current = Opportunity.objects.select_related("owner").get(pk=opp.pk)
        raise OpportunityConflict(current)
    return current


def update(user, opp: Opportunity, data: dict, version: int | None, *, source: str = "form") -> Opportunity:
    """Change an opportunity's details (not its stage: `move`); refused as a conflict when `version` is stale."""
    require_change(user, opp)
    with transaction.atomic():
        current = _locked(opp, version)
        data = personal.restore_free_text(user, data, current, TEXTS)  # masks shown to the editor: as stored
        values = clean(user, data, instance=current)
        changes = {}
        for f in FIELDS:
            before = getattr(current, f)
            if (before.pk if hasattr(before, "pk") else before) != (
                values[f].pk if hasattr(values[f], "pk") else values[f]
            ):
                changes[_audit_name(f)] = [_shown(f, before), _shown(f, values[f])]
                setattr(current, f, values[f])
        if not changes:
            return current
        current.version += 1
        current.updated_at = timezone.now()
        current.save()
        audit.record(A.UPDATE, current, user=user, changes=changes, source=source)
    return current


def move(user, opp: Opportunity, stage: str, version: int | None, *, lost_reason: str = "", lost_note: str = "",
         won_on: dt.date | None = None, next_step: str | None = None, next_step_date: dt.date | None = None,
         source: str = "form", today: dt.date | None = None) -> Opportunity:  # fmt: skip
    """Move an opportunity to `stage` (audited, in its history): lost needs a reason (with details for "other"), won
    its day (today by default, never in the future). The customer's lifecycle stage follows forward. A stale
    `version` — someone else moved or changed it since — refuses the move (OpportunityConflict)."""
    require_change(user, opp)
    today = today or beijing_today()
    errors: dict[str, list] = {}
    if stage not in S.values:
        errors["stage"] = [_("Choose one of the stages.")]
    lost_reason, lost_note = (lost_reason or "").strip(), (lost_note or "").strip()
    if stage == S.LOST:
        if not lost_reason:
            errors["lost_reason"] = [_("Give the reason the opportunity was lost.")]
        elif lost_reason not in Opportunity.LostReason.values:
            errors["lost_reason"] = [_("Choose one of the reasons.")]
        elif lost_reason == Opportunity.LostReason.OTHER and not lost_note:
            errors["lost_note"] = [_("Say what the other reason was.")]
    if stage == S.WON:
        won_on = won_on or today
        if won_on > today:
            errors["won_on"] = [_("The day it was won cannot lie in the future.")]
        elif won_on.year < 2000:
            errors["won_on"] = [_("Give a date between 2000 and 2999.")]
    if next_step is not None and len(next_step.strip()) > 200:
        errors["next_step"] = [_("At most %(n)s characters.") % {"n": 200}]
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        current = _locked(opp, version)
        if current.stage == stage:
            raise ValidationError({"stage": [_("The opportunity is at this stage already.")]})
        texts = personal.restore_free_text(user, {"next_step": next_step, "lost_note": lost_note}, current, TEXTS)
        next_step, lost_note = texts["next_step"], texts["lost_note"]  # masks shown to the editor: as stored
        if stage == S.WON and won_on < current.created_at.astimezone(LOCAL).date():
            raise ValidationError(
                {"won_on": [_("The day it was won lies before the opportunity was created.")]}
            )
        before = {f: getattr(current, f) for f in ("stage", "lost_reason", "lost_note", "won_on", "closed_on",
                                                   "next_step", "next_step_date")}  # fmt: skip
        if (
            current.stage == S.WON
        ):  # a win corrected: the furthest stage is the one it moves to, at most negotiation
            current.reached = min(current.reached, STEPS.index(S.NEGOTIATION))
        if stage != S.LOST:
            current.reached = max(current.reached, STEPS.index(S(stage)))
        current.stage = stage
        current.lost_reason, current.lost_note = (lost_reason, lost_note) if stage == S.LOST else ("", "")
        current.won_on = won_on if stage == S.WON else None
        current.closed_on = won_on if stage == S.WON else today if stage == S.LOST else None
        if next_step is not None:
            current.next_step = next_step.strip()
        if next_step_date is not None or next_step is not None:
            current.next_step_date = next_step_date
        now = timezone.now()
        current.version += 1
        current.updated_at = now
        current.save()
        OpportunityMove.objects.create(
            opportunity=current, from_stage=before["stage"], to_stage=stage, at=now, by=user
        )
        changes = {
            f: [_shown(f, v), _shown(f, getattr(current, f))]
            for f, v in before.items()
            if v != getattr(current, f)
        }
        audit.record(A.UPDATE, current, user=user, changes=changes, source=source)
        _advance_customer(user, current)
    return current


# --- staleness and the morning reminder -------------------------------------------------------------------


def stale_q(today: dt.date) -> Q:
    return Q(stage__in=OPEN) & (Q(next_step_date__lt=today) | Q(close_date__lt=today))


def staleness(opp: Opportunity, today: dt.date) -> str:
    """What is stale about it: "n<next-step date>" and/or "c<close date>" passed; "" when nothing (or closed)."""
    if opp.stage not in OPEN:
        return ""
    parts = []
    if opp.next_step_date and opp.next_step_date < today:
        parts.append(f"n{opp.next_step_date.isoformat()}")
    if opp.close_date and opp.close_date < today:
        parts.append(f"c{opp.close_date.isoformat()}")
    return " ".join(parts)


def remind_stale(today: dt.date | None = None) -> int:
    """Tell each active owner of stale opportunities about those not yet reminded of *this* staleness (one
    notification per owner, bell and e-mail): a next step or a close date moved and passed again is reminded again,
    the same one not every morning. Returns how many opportunities were reminded of."""
    from django.urls import reverse
    from django.utils.translation import ngettext_lazy

    from pharmacrm.core.deferred import Message
    from pharmacrm.notify import services as notify

    today = today or beijing_today()
    due: dict[int, list[Opportunity]] = {}
    rows = (
        Opportunity.objects.filter(stale_q(today), owner__isnull=False, owner__is_active=True)
        .select_related("owner").order_by("close_date", "id")
    )  # fmt: skip
    for opp in rows:
        key = staleness(opp, today)
        if key and key != opp.stale_reminded:
            opp.stale_reminded = key
            due.setdefault(opp.owner_id, []).append(opp)
    if not due:
        return 0
    url = reverse("sales:pipeline") + "?view=list&stale=on&mine=on"
    with transaction.atomic():
        for opps in due.values():
            n = len(opps)
            # a list: joined with each reader's separator when read (、 in Chinese, ", " in English)
            titles = [o.title for o in opps[:10]] + (["…"] if n > 10 else [])
            notify.send(
                [opps[0].owner], kind=NOTICE_KIND, url=url, obj=("sales.opportunity", str(opps[0].pk)),
                title=Message(ngettext_lazy("%(n)s opportunity of yours is overdue: its next step or close date has passed",
                                            "%(n)s opportunities of yours are overdue: their next step or close date has passed",
                                            n), n=n),
                body=Message(gettext_lazy("Set the next step, or move them on, win or lose them: %(titles)s"), titles=titles),
            )  # fmt: skip
        Opportunity.objects.bulk_update([o for opps in due.values() for o in opps], ["stale_reminded"])
        audit.record(A.CREATE, ("notify.notification", "", str(len(due))), actor_name="worker", kind=NOTICE_KIND,
                     owner=sorted(due),
                     opportunities=sorted(o.pk for opps in due.values() for o in opps))  # fmt: skip
    return sum(len(v) for v in due.values())


# --- the funnel -------------------------------------------------------------------------------------------


def _pct(part, whole) -> Decimal | None:
    return half_up(Decimal(part) * 100 / whole, "0.1") if whole else None


@dataclass
class Figures:
    """One row of the funnel: everyone in scope, an owner or a team."""

    key: str
    label: str
    reached: list[int] = field(
        default_factory=lambda: [0] * len(STEPS)
    )  # created in the period, per stage reached
    created: int = 0
    won: int = 0
    lost: int = 0
    won_fen: int = 0
    days_to_win: int = 0  # summed over the won
    open_count: int = 0
    open_fen: int = 0
    weighted_fen: int = 0

    @property
    def conversions(self) -> list[Decimal | None]:
        """From each stage to the next (lead → needs, …, negotiation → won), in %."""
        return [_pct(self.reached[i + 1], self.reached[i]) for i in range(len(STEPS) - 1)]

    @property
    def win_rate(self) -> Decimal | None:
        return _pct(self.won, self.won + self.lost)

    @property
    def won_amount(self) -> Decimal:
        return yuan(self.won_fen)

    @property
    def average_deal(self) -> Decimal | None:
        return yuan(round(Decimal(self.won_fen) / self.won)) if self.won else None

    @property
    def average_days_to_win(self) -> Decimal | None:
        return half_up(Decimal(self.days_to_win) / self.won, "0.1") if self.won else None

    @property
    def open_amount(self) -> Decimal:
        return yuan(self.open_fen)

    @property
    def weighted(self) -> Decimal:
        return yuan(self.weighted_fen)


@dataclass
class ForecastMonth:
    key: str  # 2026-12, or "overdue" for close dates before this month
    count: int = 0
    amount_fen: int = 0
    weighted_fen: int = 0

    @property
    def amount(self) -> Decimal:
        return yuan(self.amount_fen)

    @property
    def weighted(self) -> Decimal:
        return yuan(self.weighted_fen)


@dataclass
class Funnel:
    period: Period
    scope: Scope
    today: dt.date
    total: Figures
    owners: list[Figures]
    teams: list[Figures]
    forecast: list[ForecastMonth]
    lost_reasons: list[tuple[str, str, int]]  # (code, label, count), most first

    @property
    def steps(self) -> list[tuple[str, str, int]]:
        return [(str(s), str(s.label), n) for s, n in zip(STEPS, self.total.reached, strict=True)]


def _days(period: Period) -> tuple[dt.date, dt.date]:
    return period.start.date(), period.end.date()


def funnel(user, period: Period, *, today: dt.date | None = None, qs=None) -> Funnel:
    """The funnel, conversion, win rate, deal size, days to win, lost reasons (of `period`) and the weighted forecast
    (from today) of the opportunities the user may see (narrowed by `qs`), in total, per owner and per team."""
    scope = scope_for(user)
    today = today or beijing_today()
    base = opportunities_for(user, qs, scope=scope).order_by()
    first, after = _days(period)
    total = Figures("total", _("Total"))
    owners: dict[int | None, Figures] = {}
    teams: dict[int | None, Figures] = {}

    def rows_of(owner_id, team_id) -> list[Figures]:
        return [total, owners.setdefault(owner_id, Figures(f"u{owner_id}", "")),
                teams.setdefault(team_id, Figures(f"t{team_id}", ""))]  # fmt: skip

    counts = {f"r{i}": Count("pk", filter=Q(reached__gte=i)) for i in range(len(STEPS))}
    created = base.filter(created_at__gte=period.start, created_at__lt=period.end)
    for row in created.values("owner_id", "team_id").annotate(n=Count("pk"), **counts):
        for fig in rows_of(row["owner_id"], row["team_id"]):
            fig.created += row["n"]
            for i in range(len(STEPS)):
                fig.reached[i] += row[f"r{i}"]
    closed = base.filter(closed_on__gte=first, closed_on__lt=after)
    for owner_id, team_id, fen, won_on, created_at in closed.filter(stage=S.WON).values_list(
        "owner_id", "team_id", "amount_fen", "won_on", "created_at"
    ):
        days = (won_on - created_at.astimezone(LOCAL).date()).days
        for fig in rows_of(owner_id, team_id):
            fig.won += 1
            fig.won_fen += fen
            fig.days_to_win += max(days, 0)
    reasons: dict[str, int] = {}
    for row in (
        closed.filter(stage=S.LOST).values("owner_id", "team_id", "lost_reason").annotate(n=Count("pk"))
    ):
        for fig in rows_of(row["owner_id"], row["team_id"]):
            fig.lost += row["n"]
        reasons[row["lost_reason"]] = reasons.get(row["lost_reason"], 0) + row["n"]
    this_month = today.replace(day=1)
    months = [ForecastMonth("overdue")]
    index = this_month.year * 12 + this_month.month - 1
    keys = []
    for i in range(FORECAST_MONTHS):
        y, m = divmod(index + i, 12)
        keys.append(f"{y}-{m + 1:02d}")
    months += [ForecastMonth(k) for k in keys] + [ForecastMonth("later")]
    by_key = {m.key: m for m in months}
    opened = base.filter(stage__in=OPEN).annotate(month=TruncMonth("close_date"))
    for row in opened.values("owner_id", "team_id", "stage", "month").annotate(
        n=Count("pk"), fen=Sum("amount_fen")
    ):
        fen = int(row["fen"] or 0)
        weighted = round(Decimal(fen) * probability(row["stage"]) / 100)
        for fig in rows_of(row["owner_id"], row["team_id"]):
            fig.open_count += row["n"]
            fig.open_fen += fen
            fig.weighted_fen += weighted
        month = row["month"]
        if isinstance(month, dt.datetime):
            month = month.date()
        key = f"{month.year}-{month.month:02d}"
        bucket = by_key["overdue"] if month < this_month else by_key.get(key, by_key["later"])
        bucket.count += row["n"]
        bucket.amount_fen += fen
        bucket.weighted_fen += weighted
    names = {
        u.pk: u.display_name or u.username
        for u in User.objects.filter(pk__in=[k for k in owners if k]).only("pk", "username", "display_name")
    }
    team_names = {t.pk: t.shown_name for t in Team.objects.filter(pk__in=[k for k in teams if k])}
    for pk, fig in owners.items():
        fig.label = names.get(pk, _("No owner")) if pk else _("No owner")
    for pk, fig in teams.items():
        fig.label = team_names.get(pk, _("No team")) if pk else _("No team")
    labels = dict(Opportunity.LostReason.choices)
    ranked = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
    return Funnel(
        period, scope, today, total,
        sorted(owners.values(), key=lambda f: (-f.won_fen, -f.weighted_fen, f.label)),
        sorted(teams.values(), key=lambda f: (-f.won_fen, -f.weighted_fen, f.label)),
        months, [(code, str(labels.get(code, code or "—")), n) for code, n in ranked],
    )  # fmt: skip


def time_in_stage(
    opp: Opportunity, moves: list[OpportunityMove], now: dt.datetime | None = None
) -> list[dict]:
    """Its history with the days spent at each stage (until the next move, or now for the current one)."""
    now = now or timezone.now()
    out = []
    for i, m in enumerate(moves):
        until = moves[i + 1].at if i + 1 < len(moves) else (now if opp.is_open else None)
        days = None if until is None else half_up(Decimal((until - m.at).total_seconds()) / 86400, "0.1")
        out.append({"move": m, "from": stage_label(m.from_stage) if m.from_stage else "", "to": stage_label(m.to_stage),
                    "days": days})  # fmt: skip
    return out
