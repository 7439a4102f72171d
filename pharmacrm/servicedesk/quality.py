"""Quality reviews of handled tickets (服务质检, seed 000 §8.1 服务准确率 "专业咨询准确率≥90%", §8.2 KPI monitoring).

A reviewer samples the tickets an agent handled and judges each against four criteria:

- **accurate** (答复准确): what the customer was told about the product — indications, dosage, storage, supply —
  was correct and complete enough to act on;
- **compliant** (合规): no off-label claims or promises, personal data handled as the policy says, a suspected
  adverse reaction or medication error handed to pharmacovigilance;
- **complete** (记录完整): the ticket records the request, the customer, the product and batch, and the resolution;
- **courteous** (服务规范): the service standard was kept (greeting, tone, the customer informed of the outcome).

A criterion not met needs the finding written down (the agent is told, and learns from it). The share of reviewed
tickets whose answer was accurate is the **accuracy** of the service performance (performance.compute), judged
against a service goal like every other figure.

Who reviews: the holders of Cap.REVIEW_SERVICE_QUALITY (leadership, product experts) any ticket they may see; the
lead of a team the tickets of that team. Nobody reviews a ticket they answered: its assignee, or anyone who replied
to the customer on it (a product expert who gave the answer during an escalation). Who reads a review: reviewers,
the agent it judged (recorded with it: feedback) and the ticket's assignee now, the lead of the ticket's team, and who
sees every team's performance (analysts, auditors). Reviewers see every agent's figures on the quality page: they
choose whose tickets to sample.

A ticket is reviewed once it is resolved, customer-informed or closed; it has one review, which its reviewer or a
service manager may correct (optimistic locking; every change audited)."""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from pharmacrm.core import access, audit, personal
from pharmacrm.core.deferred import Message
from pharmacrm.core.ids import is_id
from pharmacrm.core.models import AuditEntry, Team, User
from pharmacrm.core.roles import Cap
from pharmacrm.customers.services import ConflictError

from . import performance
from .choices import AppealStatus, EventKind
from .models import QualityReview, Ticket, TicketEvent

A = AuditEntry.Action
MAX_COMMENT = 4000
REVIEWABLE = performance.DONE
CRITERIA = {
    "accurate": gettext_lazy("Answer accurate"),
    "compliant": gettext_lazy("Compliant"),
    "complete": gettext_lazy("Record complete"),
    "courteous": gettext_lazy("Service standard kept"),
}
CRITERIA_HELP = {
    "accurate": gettext_lazy("What the customer was told about the product (indications, dosage, storage, supply) "
                             "was correct."),
    "compliant": gettext_lazy("No off-label claims or promises; personal data handled by the policy; a suspected "
                              "adverse reaction or medication error handed to pharmacovigilance."),
    "complete": gettext_lazy("The ticket records the request, the customer, the product and batch, and the "
                             "resolution."),
    "courteous": gettext_lazy("Greeting, tone, and the customer informed of the outcome, as the service standard "
                              "asks."),
}  # fmt: skip


# --- who may do what --------------------------------------------------------------------------------------


def led_teams(user) -> list[int]:
    """The teams the user leads (read once per user object: the ticket page asks several times)."""
    if not getattr(user, "is_authenticated", False):
        return []
    if not hasattr(user, "_quality_led_teams"):
        user._quality_led_teams = list(Team.objects.filter(lead=user).values_list("id", flat=True))
    return user._quality_led_teams


def may_review_some(user) -> bool:
    """Whether the user reviews tickets at all: a reviewer, or the lead of a team who may handle tickets."""
    if access.can(user, Cap.REVIEW_SERVICE_QUALITY):
        return True
    return access.can(user, Cap.HANDLE_TICKETS) and bool(led_teams(user))


def may_review_at_all(user, ticket: Ticket) -> bool:
    """Whether the user's role reviews this ticket: a service manager, a product expert, the lead of its team."""
    return access.can(user, Cap.REVIEW_SERVICE_QUALITY) or (
        access.can(user, Cap.HANDLE_TICKETS) and ticket.team_id in led_teams(user)
    )


def refusal(user, ticket: Ticket) -> str:
    """Why the user may not review this ticket now ("" when they may)."""
    if not may_review_at_all(user, ticket):
        return refusal_text()
    if answered(user, ticket):
        return _("Nobody reviews a ticket they handled themselves: ask a colleague or your team lead.")
    if ticket.merged_into_id is not None:
        return _("A merged duplicate is not reviewed: review the ticket it was merged into.")
    if ticket.status not in REVIEWABLE:
        return _("A ticket is reviewed once it is resolved, customer-informed or closed.")
    return ""


def answered(user, ticket: Ticket) -> bool:
    """Whether the user holds the ticket or replied to the customer on it."""
    if ticket.assignee_id is not None and ticket.assignee_id == user.pk:
        return True
    return TicketEvent.objects.filter(
        ticket=ticket, actor=user, kind__in=(EventKind.RESPONDED, EventKind.REPLY)
    ).exists()


def may_review(user, ticket: Ticket) -> bool:
    return not refusal(user, ticket)


def may_correct(user, review: QualityReview) -> bool:
    """The reviewer, or a service manager, corrects a review — also once its ticket was reopened, and a team lead
    their review also once the ticket moved to another team — never a review of a ticket they answered."""
    if review.reviewer_id != user.pk and not access.can(user, Cap.MANAGE_SERVICE):
        return False
    if review.appeal_status:  # appealed: the decision on the appeal corrects it, and then it stands
        return False
    if not (access.can(user, Cap.REVIEW_SERVICE_QUALITY)
            or (access.can(user, Cap.HANDLE_TICKETS) and review.ticket.team_id in led_teams(user))
            or (review.reviewer_id == user.pk and may_review_some(user))):  # fmt: skip
        return False
    return not answered(user, review.ticket) and review.agent_id != user.pk


def may_read(user, ticket: Ticket, review: QualityReview | None = None) -> bool:
    """Reviewers, who sees every team's performance, the agent the review judged, the review's author (a team lead,
    also once the ticket moved to another team), the ticket's assignee and the lead of its team."""
    if access.can(user, Cap.REVIEW_SERVICE_QUALITY) or access.can(user, Cap.VIEW_SERVICE_PERFORMANCE):
        return True
    if user.pk in (ticket.assignee_id, getattr(review, "agent_id", None), getattr(review, "reviewer_id", None)):
        return True
    return access.can(user, Cap.VIEW_TICKETS) and ticket.team_id is not None and ticket.team_id in led_teams(user)


def reviews_for(user, qs: QuerySet | None = None) -> QuerySet:
    """The reviews the user may read, of tickets the user may see."""
    qs = QualityReview.objects.all() if qs is None else qs
    if not access.can(user, Cap.VIEW_TICKETS):
        return qs.none()
    if not (access.can(user, Cap.REVIEW_SERVICE_QUALITY) or access.can(user, Cap.VIEW_SERVICE_PERFORMANCE)):
        qs = qs.filter(
            Q(agent=user) | Q(reviewer=user) | Q(ticket__assignee=user) | Q(ticket__team_id__in=led_teams(user))
        )
    if not access.can(user, Cap.ALL_CUSTOMERS):
        qs = qs.filter(ticket_id__in=access.tickets_for(user, Ticket.objects.all()).values("id"))
    return qs


# --- recording ---------------------------------------------------------------------------------------------


def _clean(data: dict) -> dict:
    errors: dict[str, list[str]] = {}
    out: dict = {}
    for name in CRITERIA:
        value = data.get(name)
        if not isinstance(value, bool):
            errors[name] = [_("Say whether this criterion was met: yes or no.")]
        else:
            out[name] = value
    comment = _plain(data.get("comment"))
    if len(comment) > MAX_COMMENT:
        errors["comment"] = [_("At most %(n)d characters.") % {"n": MAX_COMMENT}]
    elif not comment and len(out) == len(CRITERIA) and not all(out.values()):
        errors["comment"] = [_("Write down what was found: the agent reads it to learn from it.")]
    out["comment"] = comment
    if errors:
        raise ValidationError(errors)
    return out


def _shown(values: dict) -> dict:
    return {k: values[k] for k in (*CRITERIA, "comment") if k in values}


def _tell_agent(review: QualityReview) -> None:
    """The agent judged finds a review with a finding in the bell (and by e-mail): what to learn from is the point.
    The findings stay on the ticket page: free text about a case (an adverse reaction, a patient) is not mailed."""
    from pharmacrm.notify import services as notify

    ticket = review.ticket
    if review.agent_id is None or review.passed:
        return
    missed = sum(1 for name in CRITERIA if not getattr(review, name))
    notify.send(
        [review.agent], kind="quality.finding",
        title=Message(gettext_lazy("Quality review of %(number)s: criteria not met"), number=ticket.number),
        body=Message(gettext_lazy("%(count)d of the four criteria not met. The findings are on the ticket."),
                     count=missed),
        url=reverse("servicedesk:ticket", args=[ticket.pk]) + "#quality", obj=ticket,
    )  # fmt: skip


def review(user, ticket: Ticket, data: dict) -> QualityReview:
    """Record the review of a ticket. ValidationError naming the field, PermissionDenied for who may not review
    it; the same review sent again (a double click, a retried request) returns the one recorded."""
    reason = refusal(user, ticket)
    if reason:
        raise PermissionDenied(reason)
    clean = _clean(data)
    existing = _recorded(user, ticket, clean)
    if existing is not None:
        return existing
    with transaction.atomic():
        try:
            with transaction.atomic():
                obj = QualityReview.objects.create(ticket=ticket, reviewer=user, agent_id=ticket.assignee_id, **clean)
        except IntegrityError:  # reviewed at the same moment: the same request twice, or someone else
            existing = _recorded(user, ticket, clean)
            if existing is not None:
                return existing
            raise ValidationError(
                {"ticket": [_("This ticket has just been reviewed by someone else: reload it.")]}
            ) from None
        audit.record(A.CREATE, obj, user=user, changes={
            "ticket": [None, ticket.number], "agent": [None, ticket.assignee_id],
            **{k: [None, v] for k, v in _shown(clean).items()}})  # fmt: skip
        _tell_agent(obj)
    return obj


def _recorded(user, ticket: Ticket, clean: dict) -> QualityReview | None:
    """The ticket's review when this reviewer recorded the same already (a double click, a retried request);
    ValidationError when the ticket has another review; None when it has none."""
    existing = QualityReview.objects.filter(ticket=ticket).select_related("reviewer").first()
    if existing is None:
        return None
    if existing.reviewer_id == user.pk and all(getattr(existing, k) == v for k, v in clean.items()):
        return existing
    raise ValidationError({"ticket": [_("This ticket has been reviewed already (by %(reviewer)s): correct that review "
                                        "instead.") % {"reviewer": existing.reviewer or "—"}]})  # fmt: skip


def correct(user, obj: QualityReview, data: dict, *, version: int | None) -> QualityReview:
    """Change a review: its reviewer or a service manager, with the version they loaded (ConflictError if stale);
    not once it was appealed."""
    if obj.appeal_status:
        raise PermissionDenied(_("This review was appealed: the decision on the appeal corrects it."))
    if not may_correct(user, obj):
        raise PermissionDenied(_("A review is corrected by its reviewer or a service manager."))
    if version is not None and (not is_id(version) or int(version) != obj.version):
        raise ConflictError(obj.version)
    data = personal.restore_free_text(user, data, obj, ("comment",))  # the masks a masked reviewer was shown: as stored
    clean = _clean({**{k: getattr(obj, k) for k in (*CRITERIA, "comment")}, **data})
    before = {k: getattr(obj, k) for k in clean}
    changed = [k for k, v in clean.items() if v != before[k]]
    if not changed:
        return obj
    now = timezone.now()
    with transaction.atomic():
        done = QualityReview.objects.filter(pk=obj.pk, version=obj.version).update(
            version=F("version") + 1, updated_at=now, **{k: clean[k] for k in changed}
        )
        if done != 1:
            current = QualityReview.objects.filter(pk=obj.pk).values_list("version", flat=True).first()
            raise ConflictError(current or 0)
        was_passed = obj.passed
        for k in changed:
            setattr(obj, k, clean[k])
        obj.version, obj.updated_at = obj.version + 1, now
        audit.record(A.UPDATE, obj, user=user, changes=audit.diff(
            {k: before[k] for k in changed}, {k: clean[k] for k in changed}))  # fmt: skip
        if was_passed or any(k in changed for k in CRITERIA):
            _tell_agent(obj)
    return obj


# --- appeals (质检申诉) -----------------------------------------------------------------------------------------

MAX_APPEAL = 2000


def appeal_refusal(user, review: QualityReview) -> str:
    """Why the user may not appeal this review now ("" when they may): the agent it judged, once, against a finding."""
    if review.agent_id is None or review.agent_id != user.pk or not access.can(user, Cap.HANDLE_TICKETS):
        return _("Only the agent a review judged may appeal it.")
    if review.passed:
        return _("A review without a finding has nothing to appeal.")
    if review.appeal_status:
        return _("This review has been appealed already: an appeal is made once.")
    return ""


def may_decide(user, review: QualityReview) -> bool:
    """A service manager decides an appeal — neither its reviewer nor its agent, nor anyone who answered the ticket."""
    return (
        review.appeal_status == AppealStatus.OPEN and access.can(user, Cap.MANAGE_SERVICE)
        and user.pk not in (review.reviewer_id, review.agent_id) and not answered(user, review.ticket)
    )  # fmt: skip


def decide_refusal(user, review: QualityReview) -> str:
    """Why the user may not decide this review's appeal now ("" when they may)."""
    if review.appeal_status in (AppealStatus.ACCEPTED, AppealStatus.REJECTED):  # a retried or a second decision
        return _("This appeal has been decided already.")
    if not may_decide(user, review):
        return _("An appeal is decided by a service manager who neither reviewed nor handled the ticket.")
    return ""


def _save(obj: QualityReview, now, fields: dict, version: int | None) -> None:
    if version is not None and (not is_id(version) or int(version) != obj.version):
        raise ConflictError(obj.version)
    done = QualityReview.objects.filter(pk=obj.pk, version=obj.version).update(
        version=F("version") + 1, updated_at=now, **fields
    )
    if done != 1:
        current = QualityReview.objects.filter(pk=obj.pk).values_list("version", flat=True).first()
        raise ConflictError(current or 0)
    for k, v in fields.items():
        setattr(obj, k, v)
    obj.version, obj.updated_at = obj.version + 1, now


def _plain(value) -> str:
    """The text as typed, without control and format characters (NUL, \\x01, zero-width …) but with its line breaks
    and tabs: a finding or an appeal made only of them is none, as on the web form."""
    text = str(value or "").replace("\r\n", "\n")
    return "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cf")).strip()


def _text(value, field: str, limit: int, missing: str) -> str:
    text = _plain(value)
    if not text:
        raise ValidationError({field: [missing]})
    if len(text) > limit:
        raise ValidationError({field: [_("At most %(n)d characters.") % {"n": limit}]})
    return text


def appeal(user, obj: QualityReview, reason, *, version: int | None) -> QualityReview:
    """The agent appeals the review's finding, with the reason; the reviewer and the service managers are told."""
    refused = appeal_refusal(user, obj)
    if refused:
        raise PermissionDenied(refused)
    reason = _text(reason, "appeal", MAX_APPEAL, _("Say why the finding is wrong: the manager decides on it."))
    now = timezone.now()
    with transaction.atomic():
        _save(obj, now, {"appeal": reason, "appealed_at": now, "appeal_status": AppealStatus.OPEN}, version)
        audit.record(A.UPDATE, obj, user=user, changes={"appeal_status": ["", AppealStatus.OPEN],
                                                          "appeal": ["", reason]})  # fmt: skip
        _tell_deciders(obj)
    return obj


def _tell_deciders(review: QualityReview) -> None:
    from pharmacrm.core.roles import MATRIX
    from pharmacrm.notify import services as notify

    roles = [r.value for r in MATRIX[Cap.MANAGE_SERVICE]]
    candidates = (User.objects.filter(is_active=True).filter(Q(groups__name__in=roles) | Q(is_superuser=True))
                  .exclude(pk__in=[review.reviewer_id, review.agent_id]).distinct())  # fmt: skip
    managers = [u for u in candidates if may_decide(u, review)]  # the few service managers, each checked
    reviewer = [review.reviewer] if review.reviewer_id else []
    notify.send(
        [*managers, *reviewer], kind="quality.appeal",
        title=Message(gettext_lazy("Quality review of %(number)s appealed"), number=review.ticket.number),
        body=Message(gettext_lazy("%(agent)s appeals the finding. A service manager decides on it."),
                     agent=str(review.agent or "")),
        url=reverse("servicedesk:ticket", args=[review.ticket_id]) + "#quality", obj=review.ticket,
    )  # fmt: skip


def decide_appeal(user, obj: QualityReview, accepted: bool, answer, criteria: dict | None = None, *,
                  version: int | None) -> QualityReview:  # fmt: skip
    """Accept the appeal — the review is corrected to `criteria` (the four, as the decider judges them now; an
    accepted appeal changes at least one) — or reject it; the answer is required; the agent is told."""
    refused = decide_refusal(user, obj)
    if refused:
        raise PermissionDenied(refused)
    answer = _text(answer, "appeal_answer", MAX_APPEAL, _("Give the reason for the decision: the agent reads it."))
    fields: dict = {"appeal_status": AppealStatus.ACCEPTED if accepted else AppealStatus.REJECTED,
                    "appeal_answer": answer, "appeal_decided_by": user, "appeal_decided_at": timezone.now()}  # fmt: skip
    if accepted:
        judged = {k: (criteria or {}).get(k) for k in CRITERIA}
        bad = [k for k, v in judged.items() if not isinstance(v, bool)]
        if bad:
            raise ValidationError({k: [_("Say whether this criterion was met: yes or no.")] for k in bad})
        harsher = [k for k in CRITERIA if getattr(obj, k) and not judged[k]]
        if harsher:  # an appeal is the agent's: it never adds a finding nobody wrote down
            raise ValidationError({k: [_("An accepted appeal only turns a criterion not met into met.")]
                                   for k in harsher})  # fmt: skip
        if all(judged[k] == getattr(obj, k) for k in CRITERIA):
            raise ValidationError({"accurate": [_("An accepted appeal changes the judgement: mark what the agent "
                                                  "did right.")]})  # fmt: skip
        fields.update(judged)
    before = {k: getattr(obj, k) for k in (*CRITERIA, "appeal_status")}
    with transaction.atomic():
        _save(obj, fields["appeal_decided_at"], fields, version)
        after = {k: getattr(obj, k) for k in before}
        audit.record(A.UPDATE, obj, user=user, changes={**audit.diff(before, after), "appeal_answer": ["", answer]})
        _tell_agent_decision(obj)
    return obj


def _tell_agent_decision(review: QualityReview) -> None:
    from pharmacrm.notify import services as notify

    if review.agent_id is None:
        return
    accepted = review.appeal_status == AppealStatus.ACCEPTED
    template = (gettext_lazy("Your appeal of the quality review of %(number)s was accepted") if accepted
                else gettext_lazy("Your appeal of the quality review of %(number)s was rejected"))  # fmt: skip
    notify.send(
        [review.agent], kind="quality.appeal_decided", title=Message(template, number=review.ticket.number),
        body=gettext_lazy("The decision and its reason are on the ticket."),
        url=reverse("servicedesk:ticket", args=[review.ticket_id]) + "#quality", obj=review.ticket,
    )  # fmt: skip


# --- the quality page ----------------------------------------------------------------------------------------


def _pct(part: int, whole: int) -> Decimal | None:
    if not whole:
        return None
    return (Decimal(100) * part / whole).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


@dataclass
class AgentRow:
    agent_id: int | None
    label: str = ""
    handled: int = 0  # tickets received in the period and now resolved, informed or closed
    reviewed: int = 0
    met: dict = field(default_factory=lambda: dict.fromkeys(CRITERIA, 0))

    @property
    def coverage(self) -> Decimal | None:
        return _pct(self.reviewed, self.handled)

    @property
    def rates(self) -> dict:
        return {name: _pct(n, self.reviewed) for name, n in self.met.items()}

    @property
    def accuracy(self) -> Decimal | None:
        return _pct(self.met["accurate"], self.reviewed)

    def add(self, other: AgentRow) -> None:
        self.handled += other.handled
        self.reviewed += other.reviewed
        for k in CRITERIA:
            self.met[k] += other.met[k]

    def as_dict(self) -> dict:
        return {
            "agent": self.agent_id, "agent_name": self.label, "handled": self.handled, "reviewed": self.reviewed,
            "coverage": _float(self.coverage),
            **{f"{k}_rate": _float(v) for k, v in self.rates.items()},
        }  # fmt: skip


def _float(v) -> float | None:
    return None if v is None else float(v)


def scope_for(user) -> performance.Scope:
    """Reviewers and who sees every team's performance: every ticket; a team lead: their teams'; an agent: their
    own. PermissionDenied for the rest."""
    if access.can(user, Cap.REVIEW_SERVICE_QUALITY):
        return performance.Scope(everything=True)
    try:
        return performance.scope_for(user)
    except PermissionDenied:
        raise PermissionDenied(
            _("Quality reviews are for those who handle tickets, their team leads, reviewers and managers.")
        ) from None


def may_see_page(user) -> bool:
    try:
        scope_for(user)
    except PermissionDenied:
        return False
    return True


def _team_check(scope: performance.Scope, team: Team | None) -> None:
    if team is not None and not scope.everything and (scope.team_ids is None or team.pk not in scope.team_ids):
        raise PermissionDenied(_("You may not see this team's performance."))


def agent_rows(user, period: performance.Period, team: Team | None = None) -> tuple[list[AgentRow], AgentRow]:
    """Per agent: the tickets received in the period that are now handled (resolved, informed or closed), how many
    were reviewed, and the share meeting each criterion; and the totals. Two grouped queries."""
    scope = scope_for(user)
    _team_check(scope, team)
    tickets = performance._tickets(user, scope, performance.Query(period=period, team=team))
    rows: dict = {}
    for r in tickets.filter(status__in=REVIEWABLE).values("assignee_id").annotate(n=Count("id")).order_by():
        rows.setdefault(r["assignee_id"], AgentRow(r["assignee_id"])).handled = r["n"]
    # the reviews of the tickets handled (a ticket reopened since its review is not handled now: coverage ≤ 100 %)
    reviewed = QualityReview.objects.filter(ticket_id__in=tickets.filter(status__in=REVIEWABLE).values("id"))
    for r in reviewed.values("ticket__assignee_id").annotate(
        n=Count("id"), **{k: Count("id", filter=Q(**{k: True})) for k in CRITERIA}
    ).order_by():  # fmt: skip
        row = rows.setdefault(r["ticket__assignee_id"], AgentRow(r["ticket__assignee_id"]))
        row.reviewed = r["n"]
        row.met = {k: r[k] for k in CRITERIA}
    names = {u.pk: str(u) for u in User.objects.filter(pk__in=[k for k in rows if k is not None])}
    total = AgentRow(None, label=_("Total"))
    for key, row in rows.items():
        row.label = names.get(key, _("Unassigned")) if key is not None else _("Unassigned")
        total.add(row)
    ordered = sorted(rows.values(), key=lambda r: (r.agent_id is None, -r.handled, r.label))
    return ordered, total


def period_reviews(user, period: performance.Period, team: Team | None = None, *, agent: int | None = None,
                   findings: bool = False, appeals: bool = False) -> QuerySet:  # fmt: skip
    """The reviews of the tickets received in the period that the user may read, the latest first. The appeals
    waiting (`appeals`) are all those the user may read, of any period: an appeal waits for its decision whenever its
    ticket came in, and also once the ticket was merged into another."""
    scope = scope_for(user)
    _team_check(scope, team)
    if appeals:
        qs = reviews_for(user)
        if team is not None:
            qs = qs.filter(ticket__team=team)
    else:
        tickets = performance._tickets(user, scope, performance.Query(period=period, team=team))
        qs = reviews_for(user).filter(ticket_id__in=tickets.values("id"))
    if agent is not None:
        qs = qs.filter(ticket__assignee_id=agent)
    if findings:
        qs = qs.filter(~Q(accurate=True, compliant=True, complete=True, courteous=True))
    if appeals:
        qs = qs.filter(appeal_status=AppealStatus.OPEN)
    return qs.select_related("ticket", "ticket__assignee", "agent", "reviewer").order_by("-reviewed_at", "-id")


def next_to_review(user, period: performance.Period, team: Team | None = None,
                   agent: int | None = None) -> Ticket | None:  # fmt: skip
    """A random handled ticket of the period not yet reviewed that the user may review (never their own): the
    sample a reviewer works through. Without an agent chosen, a ticket of the agent whose handled tickets are least
    covered by reviews so far (of those with a ticket to draw; one of the tied agents at random, each as likely), so
    that every agent's work is sampled in turn rather than the busiest agent's most. Three queries."""
    if not may_review_some(user):
        raise PermissionDenied(refusal_text())
    scope = scope_for(user)
    _team_check(scope, team)
    answered_by_user = TicketEvent.objects.filter(
        ticket=OuterRef("pk"), actor=user, kind__in=(EventKind.RESPONDED, EventKind.REPLY)
    )
    handled = performance._tickets(user, scope, performance.Query(period=period, team=team)).filter(
        status__in=REVIEWABLE
    )
    if not access.can(user, Cap.REVIEW_SERVICE_QUALITY):
        handled = handled.filter(team_id__in=led_teams(user))
    tickets = handled.filter(quality_review__isnull=True).exclude(assignee=user).exclude(Exists(answered_by_user))
    if agent is not None:
        return tickets.filter(assignee_id=agent).order_by("?").first()
    least = _least_covered(handled, tickets)
    if not least:
        return None
    chosen = random.choice(least)  # one of the tied agents, each as likely: not weighted by their ticket count
    return tickets.filter(Q(assignee__isnull=True) if chosen is None else Q(assignee_id=chosen)).order_by("?").first()


def _least_covered(handled: QuerySet, drawable: QuerySet) -> list[int | None]:
    """The agents (None: unassigned) with a ticket in `drawable` whose share of `handled` tickets reviewed is the
    lowest; a quality review belongs to one ticket, so counting them through the join counts each ticket once."""
    coverage = {
        r["assignee_id"]: Fraction(r["reviewed"], r["n"])
        for r in handled.values("assignee_id").annotate(n=Count("id"), reviewed=Count("quality_review")).order_by()
    }
    agents = set(drawable.order_by().values_list("assignee_id", flat=True).distinct())
    if not agents:
        return []
    low = min(coverage.get(a, Fraction(0)) for a in agents)
    return sorted((a for a in agents if coverage.get(a, Fraction(0)) == low), key=lambda a: (a is None, a or 0))


def refusal_text() -> str:
    return _("Quality reviews are for service managers, product experts and the lead of the ticket's team.")
