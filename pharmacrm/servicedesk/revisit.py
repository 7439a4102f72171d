"""The closed loop's last step (回访): satisfaction surveys and improvement actions.

A survey goes to the customer as a signed, expiring, single-use link (only the hash of its random token is
stored), or an agent records the answers of a phone revisit. A poor answer (a score of 2 or less, or "not
solved") reopens the ticket or opens an improvement action, as the ticket's category says
(`TicketCategory.low_score_action`). Improvement actions (改进措施) have an owner and a due date and are
tracked to closure: open → in progress → done (with the outcome) or cancelled (with the reason)."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets

from django.conf import settings
from django.core import signing
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Case, F, IntegerField, Q, QuerySet, Value, When
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from pharmacrm.core import access, audit, personal
from pharmacrm.core.deferred import Message
from pharmacrm.core.ids import is_id
from pharmacrm.core.models import AuditEntry, Counter, User
from pharmacrm.core.roles import MATRIX, Cap, Role
from pharmacrm.customers.services import ConflictError

from . import services
from .choices import REOPENABLE, ActionStatus, EventKind, LowScore, MessageKind, Status, SurveyChannel
from .models import ImprovementAction, Survey, Ticket

A = AuditEntry.Action
SURVEY_SALT = "pharmacrm.servicedesk.survey-link"
SURVEYABLE = frozenset({Status.RESOLVED, Status.INFORMED, Status.CLOSED})
POOR_SCORE = 2  # this score or less is a poor revisit
DUE_YEARS = (2000, 2999)  # an improvement action's due date, as the key-account programme's dates
ACTION_DAYS = 14  # an improvement action opened by a poor revisit is due in two weeks
MAX_COMMENT = 2000

# the period an action opened from a customer evaluation ends its title with ([2026H2], [2026Q4]): the evaluation
# recognises the period's action by it, so that a closed one is not opened again by the period's next run
PERIOD_TAG = re.compile(r"\[\d{4}(?:H[12]|Q[1-4])\]$")

# what an improvement action may become from each status
ACTION_TRANSITIONS: dict[str, frozenset[str]] = {
    ActionStatus.OPEN: frozenset({ActionStatus.IN_PROGRESS, ActionStatus.DONE, ActionStatus.CANCELLED}),
    ActionStatus.IN_PROGRESS: frozenset({ActionStatus.DONE, ActionStatus.CANCELLED}),
    ActionStatus.DONE: frozenset(),
    ActionStatus.CANCELLED: frozenset(),
}
CLOSED_ACTIONS = frozenset({ActionStatus.DONE, ActionStatus.CANCELLED})


class SurveyUnavailable(Exception):
    """A survey link that cannot be answered: `reason` is "invalid" (forged, tampered, unknown), "used"
    (answered already) or "expired"."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class ActionTransitionRefused(ValidationError):
    """A status change an improvement action's lifecycle does not allow (the API answers 409)."""


# --- survey links ----------------------------------------------------------------------------------


def _signer() -> signing.TimestampSigner:
    return signing.TimestampSigner(salt=SURVEY_SALT)


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def survey_url(token: str) -> str:
    """The absolute address of a survey link (what goes into the mail or the SMS)."""
    return settings.PUBLIC_BASE_URL.rstrip("/") + reverse("public:survey", args=[token])


def new_link() -> tuple[str, str]:
    """(hash to store, link to send) of a new signed single-use survey link: the raw token is never stored."""
    raw = secrets.token_urlsafe(24)
    return _hash(raw), survey_url(_signer().sign(raw))


def _raw_of(token: str) -> str:
    """The random value inside a signed token; a forged or tampered token is refused before any query."""
    try:
        return _signer().unsign(str(token or "")[:200])
    except signing.BadSignature:
        raise SurveyUnavailable("invalid") from None


def may_survey(ticket: Ticket) -> bool:
    return ticket.status in SURVEYABLE and not ticket.merged_into_id  # a duplicate: the revisit is the survivor's


def _refuse_without_consent(ticket: Ticket) -> None:
    """A person who withdrew their consent to satisfaction surveys is not asked (PIPL: the purpose was refused)."""
    if ticket.person_id is None:
        return
    from pharmacrm.customers.choices import ConsentPurpose, ConsentStatus
    from pharmacrm.customers.models import Consent

    latest = (
        Consent.objects.filter(person_id=ticket.person_id, purpose=ConsentPurpose.SURVEYS)
        .order_by("-at", "-id").values_list("status", "at").first()
    )  # fmt: skip
    if latest is not None and latest[0] == ConsentStatus.WITHDRAWN:
        raise ValidationError({"ticket": [
            _("The customer withdrew their consent to satisfaction surveys on %(date)s: no revisit is made.")
            % {"date": timezone.localtime(latest[1]).date().isoformat()}
        ]})  # fmt: skip


def _refuse_second_answer(ticket: Ticket) -> None:
    """One answer per ticket: the customer who already answered the revisit (by the link or on the phone) is
    not asked again until the ticket has been reopened (and resolved again) since. A second link after a poor
    answer counted both answers in the satisfaction figures and the key-account evaluation."""
    answered = Survey.objects.filter(ticket=ticket, answered_at__isnull=False)
    reopened = ticket.events.filter(kind=EventKind.REOPENED).order_by("-at").values_list("at", flat=True).first()
    if reopened is not None:
        answered = answered.filter(answered_at__gt=reopened)
    last = answered.order_by("-answered_at", "-id").first()
    if last is not None:
        raise ValidationError({"ticket": [
            _("The customer already answered the revisit of this ticket on %(date)s (satisfaction %(score)s): one "
              "answer per ticket. A new revisit is possible once the ticket has been reopened and resolved again.")
            % {"date": timezone.localtime(last.answered_at).date().isoformat(), "score": last.score}
        ]})  # fmt: skip


def _require_surveyable(ticket: Ticket) -> None:
    _refuse_without_consent(ticket)
    if ticket.merged_into_id:  # one request, one revisit: on the ticket it goes on in
        raise ValidationError({"ticket": [services.merged_refusal(ticket)]})
    if not may_survey(ticket):
        raise ValidationError(
            {
                "ticket": [
                    _(
                        "A revisit is possible once the ticket is resolved, the customer informed or it is closed."
                    )
                ]
            }
        )
    _refuse_second_answer(ticket)


def _event(ticket: Ticket, user, data: dict) -> None:
    services._event(ticket, EventKind.SURVEY, user, at=timezone.now(), data=data)


def _seeded_raw(user, seed: str) -> str:
    """The random value of the link a send form with this one-time token `seed` makes: derived from the token
    under the site's secret, so that the same form sent again (a double click) can show the link the first one
    made (send_survey's answer is lost when the browser shows the second's) — the raw value is still not stored."""
    from django.utils.crypto import salted_hmac

    return salted_hmac(SURVEY_SALT + ".form", f"{user.pk}:{seed}", algorithm="sha256").hexdigest()[:32]


def link_again(user, survey: Survey, seed: str) -> str | None:
    """The link of `survey` when the send form with one-time token `seed` made it and it can still be answered; a
    new signature of the same value (the survey is found by the value, not by the signature)."""
    raw = _seeded_raw(user, seed) if seed else ""
    if not raw or survey.token_hash != _hash(raw) or survey.answered_at or survey.expires_at <= timezone.now():
        return None
    return survey_url(_signer().sign(raw))


def send_survey(user, ticket: Ticket, *, seed: str = "") -> tuple[Survey, str]:
    """Create a survey link for the customer of a resolved, informed or closed ticket. With the customer's
    e-mail address it is posted as a reply (and so e-mailed); otherwise the agent sends the returned link
    by SMS or WeChat. Returns (survey, link) — the link is not stored; only the send form with the same one-time
    token `seed` can have it shown again (link_again)."""
    services.require(user, Cap.HANDLE_TICKETS)
    _require_surveyable(ticket)
    raw = _seeded_raw(user, seed) if seed else secrets.token_urlsafe(24)
    token = _signer().sign(raw)
    link = survey_url(token)
    now = timezone.now()
    days = int(settings.SERVICEDESK_SURVEY_DAYS)
    with transaction.atomic():
        _lock_ticket(ticket)
        last = (
            Survey.objects.filter(ticket=ticket, channel=SurveyChannel.LINK, created_by=user, answered_at=None,
                                  created_at__gte=now - SENT_AGAIN, expires_at__gt=now)  # not one a reopening ended
            .order_by("-created_at").first()
        )  # fmt: skip
        if last is not None:  # the button pressed twice: one link, one e-mail
            raise ValidationError(_(
                "A survey link was sent at %(time)s; it was not sent again. If the customer did not get it, send a "
                "new one in a few minutes."
            ) % {"time": timezone.localtime(last.created_at).strftime("%H:%M")})
        # a new link replaces the ones not answered yet: one answer per ticket, one improvement action
        Survey.objects.filter(ticket=ticket, channel=SurveyChannel.LINK, answered_at=None, expires_at__gt=now).update(
            expires_at=now
        )
        survey = Survey.objects.create(
            ticket=ticket, channel=SurveyChannel.LINK, token_hash=_hash(raw), sent_to=ticket.reply_email or "",
            sent_at=now, expires_at=now + dt.timedelta(days=days),
            created_by=user if getattr(user, "is_authenticated", False) else None, created_at=now,
        )  # fmt: skip
        _event(ticket, user, {"survey": survey.pk, "channel": SurveyChannel.LINK, "sent": True,
                              "emailed": bool(ticket.reply_email)})  # fmt: skip
        audit.record(A.CREATE, survey, user=user, changes={"ticket": [None, ticket.number],
                                                           "channel": [None, SurveyChannel.LINK]})  # fmt: skip
        if ticket.reply_email:
            from . import conversation

            # the language the customer wrote in (kept on the ticket at intake, or as an agent set it since): a
            # request sent in Traditional Chinese or English got its survey in Simplified Chinese
            with translation.override(ticket.language or settings.LANGUAGE_CODE):
                body = _(
                    "Dear customer,\n\nyour request %(number)s “%(subject)s” has been handled. Please tell us in "
                    "one minute whether it was solved and how satisfied you are:\n\n%(link)s\n\nThe link can be "
                    "used once and is valid for %(days)d days. Thank you."
                ) % {"number": ticket.number, "subject": ticket.subject, "link": link, "days": days}
            conversation.post_message(user, ticket, kind=MessageKind.REPLY, body=body)
    return survey, link


def survey_for_token(token: str) -> Survey:
    """The survey a link stands for, if it can still be answered (SurveyUnavailable otherwise)."""
    raw = _raw_of(token)
    hashed = _hash(raw)
    survey = (  # a campaign's reminder has a link of its own: either link answers the survey
        Survey.objects.filter(Q(token_hash=hashed) | Q(reminder_token_hash=hashed), channel=SurveyChannel.LINK)
        .select_related("ticket", "campaign")
        .first()
    )
    if survey is None:
        raise SurveyUnavailable("invalid")
    if survey.answered_at is not None:
        raise SurveyUnavailable("used")
    if survey.expires_at is not None and survey.expires_at <= timezone.now():
        raise SurveyUnavailable("expired")
    return survey


def _clean_answers(score, solved, comment, recommend=None, *, need_solved: bool = True
                   ) -> tuple[int, bool | None, str, int | None]:  # fmt: skip
    """`need_solved`: a revisit asks whether the ticket's request was solved; a campaign's survey (no ticket) does not."""
    errors: dict[str, list[str]] = {}
    if recommend in ("", None):
        recommend = None
    else:
        try:
            recommend = int(recommend)
        except (TypeError, ValueError):
            recommend = -1
        if not 0 <= recommend <= 10:
            errors["recommend"] = [_("Choose from 0 (not at all likely) to 10 (extremely likely), or leave it empty.")]
    try:
        score = int(score)
    except (TypeError, ValueError):
        score = 0
    if not 1 <= score <= 5:
        errors["score"] = [_("Choose a score from 1 (very dissatisfied) to 5 (very satisfied).")]
    if isinstance(solved, str):
        solved = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}.get(
            solved.lower()
        )
    if not need_solved and solved is None:
        pass
    elif solved not in (True, False):
        errors["solved"] = [_("Say whether the request was solved.")]
    comment = (comment or "").replace("\x00", "").strip()
    if len(comment) > MAX_COMMENT:
        errors["comment"] = [
            _("The comment is too long (at most %(max)d characters).") % {"max": MAX_COMMENT}
        ]
    if errors:
        raise ValidationError(errors)
    return score, solved, comment, recommend


def answer_survey(token: str, score, solved, comment: str = "", recommend=None) -> Survey:
    """The customer's answers through the link: once only (a conditional UPDATE decides between two
    answers sent at the same time), never after the expiry. `recommend` is the optional net promoter
    answer (0–10)."""
    survey = survey_for_token(token)
    score, solved, comment, recommend = _clean_answers(score, solved, comment, recommend,
                                                       need_solved=survey.ticket_id is not None)  # fmt: skip
    now = timezone.now()
    with transaction.atomic():
        done = Survey.objects.filter(pk=survey.pk, answered_at__isnull=True, expires_at__gt=now).update(
            answered_at=now, score=score, solved=solved, comment=comment, recommend=recommend
        )
        if done != 1:
            survey.refresh_from_db()
            raise SurveyUnavailable("used" if survey.answered_at else "expired")
        survey.answered_at, survey.score, survey.solved, survey.comment = now, score, solved, comment
        survey.recommend = recommend
        _conclude(services.SYSTEM, survey)
    return survey


def record_phone_revisit(user, ticket: Ticket, score, solved, comment: str = "", recommend=None) -> Survey:
    """An agent records what the customer said on a revisit call (`recommend`: the optional 0–10 answer)."""
    services.require(user, Cap.HANDLE_TICKETS)
    _require_surveyable(ticket)
    score, solved, comment, recommend = _clean_answers(score, solved, comment, recommend)
    now = timezone.now()
    with transaction.atomic():
        _lock_ticket(ticket)
        same = Survey.objects.filter(
            ticket=ticket, channel=SurveyChannel.PHONE, recorded_by=user, score=score, solved=solved, comment=comment,
            recommend=recommend, created_at__gte=now - dt.timedelta(minutes=10),
        ).first()  # fmt: skip
        if same is not None:  # the form sent twice: one revisit, one improvement action
            raise ValidationError(_("This revisit was already recorded at %(time)s; it was not recorded again.")
                                  % {"time": timezone.localtime(same.created_at).strftime("%H:%M")})  # fmt: skip
        # the customer answered on the phone: a link sent before and not answered yet no longer counts (one
        # answer, one improvement action)
        Survey.objects.filter(ticket=ticket, channel=SurveyChannel.LINK, answered_at=None, expires_at__gt=now).update(
            expires_at=now
        )
        survey = Survey.objects.create(
            ticket=ticket, channel=SurveyChannel.PHONE, sent_at=now, answered_at=now, score=score, solved=solved,
            recommend=recommend, comment=comment, recorded_by=user, created_by=user, created_at=now,
        )  # fmt: skip
        _conclude(user, survey)
    return survey


SENT_AGAIN = dt.timedelta(minutes=2)  # a survey link sent again after this is a deliberate new link


def _lock_ticket(ticket: Ticket) -> None:
    """Two sends of the same form in parallel wait for each other here and see what the first wrote."""
    list(Ticket.objects.select_for_update().filter(pk=ticket.pk).values_list("pk", flat=True))


def is_poor(survey: Survey) -> bool:
    return (survey.score is not None and survey.score <= POOR_SCORE) or survey.solved is False


def _conclude(user, survey: Survey) -> None:
    """Record the answers on the ticket and act on a poor revisit (inside the caller's transaction). What the
    customer said is screened like every other customer text: a reaction first told on the revisit was heard
    then (day 0 of the regulatory clock)."""
    from pharmacrm.safety import net

    if survey.ticket_id is None:  # a campaign's survey: about the customer, not a ticket
        from . import campaigns

        campaigns.conclude(user, survey)
        return
    ticket = Ticket.objects.select_related("category", "team").get(pk=survey.ticket_id)
    survey.ticket = ticket
    if (survey.comment or "").strip():
        net.screen_ticket(ticket, [survey.comment], heard_at=survey.answered_at or timezone.now())
    outcome, action = "", None
    if is_poor(survey):
        outcome = ticket.category.low_score_action or LowScore.ACTION
        if outcome == LowScore.ACTION:
            owner = default_owner(ticket)
            if owner is None:
                outcome = LowScore.REOPEN  # nobody to own an action: the ticket itself goes back to work
            else:
                with translation.override(settings.LANGUAGE_CODE):  # a record for the staff, whatever the
                    title = _("Poor revisit of %(number)s") % {"number": ticket.number}  # customer's language
                action = _create_action(user, {
                    "title": title,
                    "description": survey.comment, "owner": owner,
                    "due_date": timezone.localdate() + dt.timedelta(days=ACTION_DAYS),
                    "ticket": ticket, "survey": survey,
                })  # fmt: skip
        # a link sent before the ticket was merged as a duplicate: the request goes on in the survivor
        reopened = Ticket.objects.get(pk=ticket.merged_into_id) if ticket.merged_into_id else ticket
        if outcome == LowScore.REOPEN and reopened.status in REOPENABLE:
            with translation.override(settings.LANGUAGE_CODE):  # the ticket's history, not the customer's page
                note = _("Reopened after a poor revisit (score %(score)s, solved: %(solved)s).") % {
                    "score": survey.score, "solved": _("yes") if survey.solved else _("no")}  # fmt: skip
            services.transition(user, reopened, Status.IN_PROGRESS, note=note)
            # back in the assignee's queue with what is left of its resolution time: they must know why (unless
            # they recorded the phone revisit themselves)
            if reopened.assignee_id != getattr(user, "pk", None):
                services.tell_assignee(reopened, Message(
                    gettext_lazy("%(number)s was reopened after a poor revisit: %(subject)s"),
                    number=reopened.number, subject=reopened.subject,
                ), kind="ticket.reopened")  # fmt: skip
        if outcome:
            Survey.objects.filter(pk=survey.pk).update(outcome=outcome)
            survey.outcome = outcome
    data = {"survey": survey.pk, "channel": survey.channel, "score": survey.score, "solved": survey.solved,
            "recommend": survey.recommend, "outcome": outcome}  # fmt: skip
    if action is not None:
        data["action"] = action.number
    _event(ticket, user, data)
    audit.record(A.UPDATE, survey, user=user, changes={
        "score": [None, survey.score], "solved": [None, survey.solved], "recommend": [None, survey.recommend],
        "outcome": ["", outcome]})  # fmt: skip


# --- improvement actions ---------------------------------------------------------------------------


def next_action_number(at: dt.datetime | None = None) -> str:
    year = timezone.localtime(at or timezone.now()).year
    return f"IA-{year}-{Counter.allocate(f'improvement:{year}'):04d}"


def owners() -> QuerySet:
    """Active users who may own an improvement action (those who handle tickets)."""
    roles = [r.value for r in MATRIX[Cap.HANDLE_TICKETS]]
    return User.objects.filter(is_active=True, groups__name__in=roles).distinct().order_by("username")


def default_owner(ticket: Ticket):
    """Who owns the action a poor revisit opens: the team's lead, else the assignee, else a manager."""
    for candidate in (ticket.team.lead if ticket.team_id else None, ticket.assignee):
        if candidate is not None and candidate.is_active and access.can(candidate, Cap.HANDLE_TICKETS):
            return candidate
    return (
        User.objects.filter(is_active=True, groups__name=Role.MANAGER.value).order_by("id").first()
        or User.objects.filter(is_active=True, groups__name=Role.ADMIN.value).order_by("id").first()
    )


def actions_for(user, qs: QuerySet | None = None) -> QuerySet:
    """Improvement actions the user may see: every one for service managers; otherwise those they own or
    created and those of tickets they may see."""
    qs = ImprovementAction.objects.all() if qs is None else qs
    if not access.can(user, Cap.VIEW_TICKETS):
        return qs.none()
    if access.can(user, Cap.MANAGE_SERVICE):
        return qs
    tickets = access.tickets_for(user).values("id")
    return qs.filter(Q(owner=user) | Q(created_by=user) | Q(ticket_id__in=tickets))


def mark_openable(user, actions: list[ImprovementAction]) -> list[ImprovementAction]:
    """Set `openable` on each action: whether the user may open its page (actions_for). Pages that list the
    actions of a customer (a key account, its evaluation) link only those, and show the others' numbers as text."""
    if actions:
        shown = actions_for(user, ImprovementAction.objects.filter(pk__in=[a.pk for a in actions]))
        ids = set(shown.values_list("pk", flat=True))
        for action in actions:
            action.openable = action.pk in ids
    return actions


def may_work_on(user, action: ImprovementAction) -> bool:
    """Owners work on their actions; service managers on every one."""
    if not access.can(user, Cap.HANDLE_TICKETS):
        return False
    return access.can(user, Cap.MANAGE_SERVICE) or action.owner_id == user.pk


def require_work(user, action: ImprovementAction) -> None:
    """PermissionDenied unless the user works on this improvement action (its owner or a service manager)."""
    _require_work(user, action)


def _require_work(user, action: ImprovementAction) -> None:
    if not (isinstance(user, services.SystemActor) or may_work_on(user, action)):
        raise PermissionDenied(_("Only the owner or a service manager may change this improvement action."))


def _clean_action(data: dict, *, creating: bool, stored_due: dt.date | None = None) -> dict:
    errors: dict[str, list[str]] = {}
    out = {}
    if "title" in data or creating:
        title = (data.get("title") or "").replace("\x00", "").strip()
        if not title:
            errors["title"] = [_("Say in a few words what is to be put right.")]
        out["title"] = title[:200]
    if "description" in data:
        out["description"] = (data.get("description") or "").replace("\x00", "").strip()[:20000]
    if "owner" in data or creating:
        owner = data.get("owner")
        if owner is None:
            errors["owner"] = [_("Choose who owns the action.")]
        elif not (owner.is_active and access.can(owner, Cap.HANDLE_TICKETS)):
            errors["owner"] = [_("This user cannot own improvement actions.")]
        out["owner"] = owner
    if "due_date" in data or creating:
        due = data.get("due_date")
        if not isinstance(due, dt.date):
            errors["due_date"] = [_("Give the due date.")]
        elif creating and due < timezone.localdate():
            errors["due_date"] = [_("The due date cannot lie in the past.")]
        elif not DUE_YEARS[0] <= due.year <= DUE_YEARS[1] and due != stored_due:
            # as the key-account programme's dates: 9999-12-31 (an ERP's "no end", a slip of the year) parked the
            # action out of every overdue list for good; one stored before this rule is kept while it is not changed
            errors["due_date"] = [_("Enter a date between 2000 and 2999.")]
        out["due_date"] = due
    if errors:
        raise ValidationError(errors)
    return out


def _create_action(user, data: dict) -> ImprovementAction:
    clean = _clean_action(data, creating=True)
    now = timezone.now()
    with transaction.atomic():
        action = ImprovementAction.objects.create(
            number=next_action_number(now), ticket=data.get("ticket"), survey=data.get("survey"),
            institution=data.get("institution"), generated=data.get("generated", ""),
            generated_params=data.get("generated_params") or {},
            created_by=user if getattr(user, "is_authenticated", False) else None, created_at=now, updated_at=now,
            **clean,
        )  # fmt: skip
        audit.record(A.CREATE, action, user=user, changes={
            "number": [None, action.number], "owner": [None, action.owner_id],
            "due_date": [None, action.due_date], "ticket": [None, action.ticket_id]})  # fmt: skip
        if action.owner_id != getattr(user, "pk", None):
            _tell_owner(action)
    return action


def _tell_owner(action: ImprovementAction) -> None:
    """The owner of an action finds it in the bell (and by e-mail)."""
    from pharmacrm.notify import services as notify

    notify.send(
        [action.owner], kind="improvement.assigned",
        title=Message(gettext_lazy("Improvement action %(number)s: %(title)s"), number=action.number,
                      title=action.title_message()),
        body=Message(gettext_lazy("Due %(date)s"), date=action.due_date.isoformat()),
        url=reverse("servicedesk:improvement", args=[action.pk]), obj=action,
    )  # fmt: skip


def create_action(user, data: dict) -> ImprovementAction:
    """Open an improvement action by hand. Service managers open any; someone who handles tickets opens one
    on a ticket they may see, owned by themselves. The same one sent again within ten minutes is not opened
    twice: the first is returned, with `sent_again` set."""
    services.require(user, Cap.HANDLE_TICKETS)
    ticket = data.get("ticket")
    if not access.can(user, Cap.MANAGE_SERVICE):
        if ticket is None:
            raise ValidationError({"ticket": [_("Choose the ticket the action is about.")]})
        if data.get("owner") is not None and data["owner"].pk != user.pk:
            raise ValidationError(
                {"owner": [_("Only a service manager may give an action to someone else.")]}
            )
        data = {**data, "owner": user}
    if ticket is not None and not access.can_see_ticket(user, ticket):
        raise ValidationError({"ticket": [_("No such ticket, or you may not see it.")]})
    with transaction.atomic():
        if getattr(user, "is_authenticated", False):
            # one at a time per author, so that a retry's two requests cannot both miss each other
            list(User.objects.select_for_update().filter(pk=user.pk).values_list("pk", flat=True))
            same = _opened_just_now(user, data)
            if same is not None:
                same.sent_again = True
                return same
        return _create_action(user, data)


SAME_ACTION_WINDOW = dt.timedelta(minutes=10)


def _opened_just_now(user, data: dict) -> ImprovementAction | None:
    """The action this user opened in the last ten minutes for the same ticket or customer, with the same
    title, description, owner and due date: the request sent again (an app's retry after a lost answer, a
    double click), not a second action — the owner would work on both."""
    clean = _clean_action(data, creating=True)
    return (
        ImprovementAction.objects.filter(
            created_by=user, created_at__gte=timezone.now() - SAME_ACTION_WINDOW, ticket=data.get("ticket"),
            institution=data.get("institution"), survey=data.get("survey"), title=clean["title"],
            description=clean.get("description", ""), owner=clean["owner"], due_date=clean["due_date"],
        )  # fmt: skip
        .order_by("-created_at")
        .first()
    )


def _save_action(action: ImprovementAction, fields, expected: int) -> None:
    values = {f: getattr(action, f) for f in fields}
    now = timezone.now()
    done = ImprovementAction.objects.filter(pk=action.pk, version=expected).update(
        version=F("version") + 1, updated_at=now, **values
    )
    if done != 1:
        current = ImprovementAction.objects.filter(pk=action.pk).values_list("version", flat=True).first()
        raise ConflictError(current or 0)
    action.version, action.updated_at = expected + 1, now


def _check_version(action: ImprovementAction, version) -> None:
    # a garbled version (not a number) is as stale as an old one
    if version is not None and (not is_id(version) or int(version) != action.version):
        raise ConflictError(action.version)


def update_action(
    user, action: ImprovementAction, data: dict, *, version: int | None = None
) -> ImprovementAction:
    """Change the title, description, due date or (service managers only) the owner."""
    services.require(user, Cap.HANDLE_TICKETS)
    _require_work(user, action)
    _check_version(action, version)
    if action.status in CLOSED_ACTIONS:
        raise ActionTransitionRefused(_("A closed improvement action cannot be changed."))
    data = {k: v for k, v in data.items() if k in ("title", "description", "owner", "due_date")}
    for index, key in enumerate(("title", "description")):
        # the text the evaluation wrote, shown in the reader's language and sent back unchanged: not a rewording, the
        # action keeps its stored text and reads in each reader's language still
        if key in data and action.reads_as_generated(index, data[key]):
            data[key] = getattr(action, key)
    # an owner shown the description masked (an agent) keeps the customer's number where its mask still stands
    data = personal.restore_free_text(user, data, action, personal.FREE_TEXT_OF["servicedesk.improvementaction"])
    if "owner" in data and data["owner"] != action.owner and not access.can(user, Cap.MANAGE_SERVICE):
        raise ValidationError({"owner": [_("Only a service manager may give an action to someone else.")]})
    clean = _clean_action(data, creating=False, stored_due=action.due_date)
    tag = PERIOD_TAG.search(action.title)
    if tag and "title" in clean and not clean["title"].endswith(tag.group()):
        # a title reworded by its owner keeps the evaluation's period: without it, the action closed, the
        # period's next run (after every order import) opened a second one for the same customer and period
        clean["title"] = f"{clean['title'][: 199 - len(tag.group())].rstrip()} {tag.group()}"
    before = {k: getattr(action, k) for k in clean}
    changed = [k for k, v in clean.items() if v != before[k]]
    if not changed:
        return action
    with transaction.atomic():
        expected = action.version
        for key in changed:
            setattr(action, key, clean[key])
        _save_action(action, ["owner_id" if k == "owner" else k for k in changed], expected)
        audit.record(A.UPDATE, action, user=user, changes=audit.diff(
            {k: before[k] for k in changed}, {k: clean[k] for k in changed}))  # fmt: skip
        if "owner" in changed and action.owner_id != user.pk:
            _tell_owner(action)
    return action


def _cut(text: str, limit: int) -> str:
    """`text` as an audit entry keeps it: cut at `limit` characters with "…", so that a number cut there is masked
    by the cut rule for the readers who see personal data masked (personal.free_text)."""
    return text[:limit] + "…" if len(text) > limit else text


def transition_action(user, action: ImprovementAction, to_status: str, *, version: int | None = None,
                      outcome: str = "", reason: str = "") -> ImprovementAction:  # fmt: skip
    """open → in progress → done (the outcome is required) or cancelled (the reason is required)."""
    services.require(user, Cap.HANDLE_TICKETS)
    _require_work(user, action)
    _check_version(action, version)
    if to_status not in ACTION_TRANSITIONS.get(action.status, ()):
        label = ActionStatus(to_status).label if to_status in ActionStatus.values else to_status
        raise ActionTransitionRefused(
            _("An improvement action that is “%(from)s” cannot become “%(to)s”.")
            % {"from": ActionStatus(action.status).label, "to": label}
        )
    outcome, reason = (outcome or "").replace("\x00", "").strip(), (reason or "").replace("\x00", "").strip()
    if to_status == ActionStatus.DONE and not outcome:
        raise ValidationError({"outcome": [_("Describe what was done.")]})
    if to_status == ActionStatus.CANCELLED and not reason:
        raise ValidationError({"reason": [_("Say why the action is cancelled.")]})
    before = action.status
    with transaction.atomic():
        expected = action.version
        action.status = to_status
        fields = ["status"]
        if to_status in CLOSED_ACTIONS:
            action.outcome = (outcome or reason)[:20000]
            action.closed_at = timezone.now()
            fields += ["outcome", "closed_at"]
        _save_action(action, fields, expected)
        audit.record(A.UPDATE, action, user=user, changes={"status": [before, to_status]},
                     **({"outcome": _cut(action.outcome, 500)} if to_status in CLOSED_ACTIONS else {}))  # fmt: skip
    return action


def work_order() -> list:
    """How improvement actions are listed: those still to do first (in progress, then open — each by due date,
    the most pressing first), then the closed ones. Ordering by the stored status put "cancelled" and "done"
    before "in_progress" and "open" (alphabetically), burying the work still to do under finished actions."""
    rank = Case(
        When(status=ActionStatus.IN_PROGRESS, then=Value(0)), When(status=ActionStatus.OPEN, then=Value(1)),
        default=Value(2), output_field=IntegerField(),
    )  # fmt: skip
    return [rank, "due_date", "id"]


def overdue_q(today: dt.date | None = None) -> Q:
    return Q(due_date__lt=today or timezone.localdate()) & ~Q(status__in=CLOSED_ACTIONS)
