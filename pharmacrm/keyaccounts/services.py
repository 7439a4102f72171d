"""The key-account programme (seed 001 §3): every state change of proposals, reviews, approvals, service
teams, plans, agreements, meetings, trials and key-account evaluations. Each function checks permission,
validates, writes in one transaction and records an audit entry; views, API, tasks and commands call
these and nothing else.

Leadership decisions (listing, de-listing, a service plan) are electronic signatures: the approver
re-enters a fresh one-time code (core/signatures.py), checked outside the decision's transaction."""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import hashlib
import logging
import re
import unicodedata
import uuid
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Avg, Case, Count, F, Max, Q, Value, When
from django.db.models.functions import TruncDate
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext, ngettext_lazy

from pharmacrm.core import access, amendments, audit, dueclock, personal, signatures, uploads
from pharmacrm.core.deferred import Message
from pharmacrm.core.ids import is_id
from pharmacrm.core.models import KEY_ACCOUNT_TEAM_PREFIX, AuditEntry, Counter, Team, User
from pharmacrm.core.roles import READ_ONLY_ROLES, REVIEW_DEPARTMENT, Cap, Role
from pharmacrm.core.wording import listing
from pharmacrm.customers.choices import Tier
from pharmacrm.customers.models import Institution

from .choices import (
    CADENCE_MONTHS,
    OPEN_ITEM,
    OPEN_PROPOSAL,
    AccountStatus,
    AgreementStatus,
    Department,
    ItemStatus,
    MeetingCadence,
    Opinion,
    PlanArea,
    PlanStatus,
    ProposalKind,
    ProposalStatus,
    TeamRole,
    TrialStatus,
)
from .models import (
    Agreement,
    AgreementAmendment,
    KeyAccount,
    Meeting,
    MeetingAction,
    PlanItem,
    Proposal,
    Review,
    ServicePlan,
    TeamMember,
    TeamTenure,
    TrialOffer,
)

log = logging.getLogger(__name__)
A = AuditEntry.Action
NOT_ALLOWED = gettext_lazy("You do not have permission to do this.")  # lazy: read in the language of each request
SIGNED_COPY_MAX = 20 * 1024 * 1024
SIGNED_COPY_TYPES = {b"%PDF": ".pdf", b"\x89PNG": ".png", b"\xff\xd8\xff": ".jpg"}
# the extensions a signed copy's name may keep for the type its content shows
SIGNED_COPY_SUFFIXES = {".pdf": (".pdf",), ".png": (".png",), ".jpg": (".jpg", ".jpeg", ".jpe")}
# extensions of other scan or document types, which a name given with them loses (a PDF sent as scan.tif → scan.pdf)
OTHER_DOCUMENT_SUFFIXES = {".gif", ".bmp", ".tif", ".tiff", ".webp", ".heic", ".heif", ".doc", ".docx", ".ofd"}

# The system roles a member of a service team must hold for each team role (seed 001 §2.1).
TEAM_ROLE_NEEDS = {
    TeamRole.PROJECT_MANAGER: {Role.KAM, Role.MANAGER},
    TeamRole.PRODUCT_EXPERT: {Role.EXPERT},
    TeamRole.TECH_SUPPORT: {Role.SUPPORT},
    TeamRole.AFTER_SALES: {Role.AFTERSALES},
}


def _clean(text, limit: int = 20000) -> str:
    return str(text or "").replace("\x00", "").strip()[:limit]


def _number(prefix: str, at: dt.datetime | None = None, width: int = 4) -> str:
    year = timezone.localtime(at or timezone.now()).year
    return f"{prefix}-{year}-{Counter.allocate(f'keyaccounts:{prefix}:{year}'):0{width}d}"


def _notify(recipients, kind: str, title, body, url: str, obj) -> None:
    from pharmacrm.notify import services as notify

    people = [u for u in recipients if u is not None and u.is_active]
    if people:
        notify.send(people, kind=kind, title=title, body=body, url=url, obj=obj)


def _users_with(cap: Cap) -> list[User]:
    from pharmacrm.core.roles import MATRIX

    roles = [r.value for r in MATRIX[cap]]
    return [u for u in User.objects.filter(is_active=True, groups__name__in=roles).distinct() if access.can(u, cap)]


class DecisionRefused(PermissionDenied):
    """This member of the leadership may not decide on this proposal or plan (they proposed it, sent it, wrote it,
    changed it, submitted it or deliver part of it): another member must. The message says why; the pages show it with the
    decision form, the API answers 403 with it."""


class StaleVersion(ValidationError):
    """The record changed since the user loaded it (optimistic lock): a ValidationError under `version` for the
    pages' forms; the API answers 409 with `current_version` (the record's version now, None if it is gone)."""

    def __init__(self, current_version: int | None):
        super().__init__(
            {"version": [_("Someone else changed this record while you were editing it. Reload the page and "
                           "make your change again.")]}  # fmt: skip
        )
        self.current_version = current_version


# The version the API's changes need and the client did not send (api_programme): refused by _check_version, that
# is after the permission checks, so that a user who may not make the change hears that first.
VERSION_NOT_SENT = -1


def _check_version(obj, version) -> None:
    if version == VERSION_NOT_SENT:
        raise ValidationError(
            {"version": [_("Send the version you loaded (the version field or an If-Match header), so that "
                           "changes made by others in the meantime are not overwritten.")]}  # fmt: skip
        )
    if version is not None and (not is_id(version) or int(version) != obj.version):
        raise StaleVersion(obj.version)


def _save_versioned(obj, fields: list[str], expected: int) -> None:
    """Write `fields` only if nobody changed the row since `expected` (optimistic lock)."""
    values = {f: getattr(obj, f) for f in fields}
    done = type(obj).objects.filter(pk=obj.pk, version=expected).update(version=expected + 1, **values)
    if not done:
        raise StaleVersion(type(obj).objects.filter(pk=obj.pk).values_list("version", flat=True).first())
    obj.version = expected + 1


# --- reading -------------------------------------------------------------------------------------------


def accounts_for(user, qs=None):
    """Key accounts the user may see: everyone in the programme sees the list (VIEW_KEY_ACCOUNTS), scoped
    to the customers they may see."""
    qs = KeyAccount.objects.all() if qs is None else qs
    if not access.can(user, Cap.VIEW_KEY_ACCOUNTS):
        return qs.none()
    scope = access.institution_scope_q(user)
    if scope is None:
        return qs
    team_accounts = TeamMember.objects.filter(user=user).values("account_id")
    return qs.filter(Q(institution_id__in=Institution.objects.filter(scope).values("id")) | Q(pk__in=team_accounts))


def proposals_for(user, qs=None):
    qs = Proposal.objects.all() if qs is None else qs
    if not access.can(user, Cap.VIEW_KEY_ACCOUNTS):
        return qs.none()
    scope = access.institution_scope_q(user)
    return qs if scope is None else qs.filter(institution_id__in=Institution.objects.filter(scope).values("id"))


def active_account(institution_id: int) -> KeyAccount | None:
    return KeyAccount.objects.filter(institution_id=institution_id, status=AccountStatus.ACTIVE).first()


def key_tier_message() -> str:
    return _("The key-account tier is granted and withdrawn through the key-account programme (proposal, "
             "cross-department review and leadership approval), not by editing the customer.")  # fmt: skip


def is_listed(customer) -> bool:
    """Whether the customer (an institution) has an active key-account file; a person never has one."""
    return (isinstance(customer, Institution) and customer.pk is not None
            and KeyAccount.objects.filter(institution_id=customer.pk, status=AccountStatus.ACTIVE).exists())  # fmt: skip


def tier_change_error(customer, tier: str | None) -> str | None:
    """Why an edit may not give `customer` (an institution or person; None or unsaved when new) the tier
    `tier`, or None: only the programme's listing and de-listing set and clear "key account" — an edit may
    neither set it on a customer without an active key-account file nor move a listed one off it. Keeping
    the tier a customer already has is no change."""
    current = customer.tier if customer is not None and customer.pk is not None else None
    if not tier or tier == current:
        return None
    if tier == Tier.KEY or current == Tier.KEY:
        listed = is_listed(customer)
        if (tier == Tier.KEY and not listed) or (current == Tier.KEY and listed):
            return key_tier_message()
    return None


def is_member(user, account: KeyAccount) -> bool:
    return TeamMember.objects.filter(account=account, user=user).exists()


def is_project_manager(user, account: KeyAccount) -> bool:
    return TeamMember.objects.filter(account=account, user=user, role=TeamRole.PROJECT_MANAGER).exists()


def may_manage(user, account: KeyAccount) -> bool:
    """Run the account (team, plan drafts, agreements, meetings, trials): administrators, managers and the
    account's project manager — not every key-account manager, and never the auditor."""
    roles = access.roles_of(user)
    if not roles or roles & {Role.AUDITOR}:
        return False
    if roles & {Role.ADMIN, Role.MANAGER} and access.can(user, Cap.MANAGE_KEY_ACCOUNTS):
        return True
    return is_project_manager(user, account)


def require_manage(user, account: KeyAccount) -> None:
    if not may_manage(user, account):
        raise PermissionDenied(NOT_ALLOWED)


def require_trial_recorder(user, account: KeyAccount) -> None:
    """Who records a new-product trial offer for the account: its service team (may_record) or a product expert
    (the knowledge base's editors) — never the auditor."""
    if not may_record(user, account) and not access.can(user, Cap.MANAGE_KNOWLEDGE):
        raise PermissionDenied(NOT_ALLOWED)
    if user.roles & {Role.AUDITOR}:
        raise PermissionDenied(NOT_ALLOWED)


def require_active(account: KeyAccount) -> None:
    """A de-listed account's file is kept as it was: no new plans, items, progress, agreements, meetings or
    trials (the service team no longer serves it; its clocks were stopped when it was closed)."""
    status = KeyAccount.objects.filter(pk=account.pk).values_list("status", flat=True).first()
    if status != AccountStatus.ACTIVE:
        raise ValidationError(_("This key account has been de-listed."))


def current_plan(account: KeyAccount) -> ServicePlan | None:
    return account.plans.filter(status=PlanStatus.APPROVED).order_by("-version_number").first()


def open_plan(account: KeyAccount) -> ServicePlan | None:
    return account.plans.filter(status__in=[PlanStatus.DRAFT, PlanStatus.SUBMITTED, PlanStatus.REJECTED]).first()


def team_for_institution(institution_id: int | None) -> Team | None:
    """The service team of the institution's (or its parent hospital's) active key account."""
    if not institution_id:
        return None
    row = (
        KeyAccount.objects.filter(status=AccountStatus.ACTIVE, team__isnull=False)
        .filter(Q(institution_id=institution_id) | Q(institution__children__id=institution_id))
        .values_list("team_id", flat=True)
        .first()
    )
    return Team.objects.filter(pk=row).first() if row else None


def team_can_take_tickets(team: Team) -> bool:
    """Whether someone active in the team handles tickets (the service desk's own test of who may be given
    one): a team nobody could work for would strand every ticket sent to it."""
    from pharmacrm.core.roles import READ_ONLY_ROLES
    from pharmacrm.servicedesk import routing

    return (
        User.objects.filter(routing._handler_q(), teams=team, is_active=True)
        .exclude(groups__name__in=[r.value for r in READ_ONLY_ROLES]).exists()
    )  # fmt: skip


def ticket_team(ticket) -> Team | None:
    """The service desk's key-account hook: a key account's tickets go to its service team — once the team
    has an active member who handles tickets. Until then (a newly approved account) they route as any other
    ticket (the customer's key-account tier still boosts them) instead of waiting in an empty queue."""
    institution_id = ticket.institution_id
    if institution_id is None and ticket.person_id:
        institution_id = ticket.person.institution_id
    team = team_for_institution(institution_id)
    return team if team is not None and team_can_take_tickets(team) else None


# --- proposals, reviews, decisions ---------------------------------------------------------------------


def _latest_candidate(institution: Institution):
    from .models import Score

    return Score.objects.filter(institution=institution, kind="candidate").order_by("-as_of", "-computed_at").first()


def hospital_of(institution: Institution) -> Institution:
    """The institution a department belongs to (through departments of departments); the institution itself
    when it is no department."""
    seen = set()
    while institution.is_department and institution.parent_id and institution.pk not in seen:
        seen.add(institution.pk)
        institution = Institution.objects.get(pk=institution.parent_id)
    return institution


def department_refusal(institution: Institution) -> str | None:
    """Why `institution` cannot be proposed as a key account, or None: a department buys and is served through
    its hospital (its tickets go to the hospital's service team), it is never a key account of its own."""
    if not institution.is_department:
        return None
    return _("%(department)s is a department of %(hospital)s: a department is served as part of its hospital's "
             "key account. Propose %(hospital)s instead.") % {
        "department": institution.name, "hospital": hospital_of(institution).name}  # fmt: skip


def propose(user, institution: Institution, *, reason: str, kind: str = ProposalKind.LIST) -> Proposal:
    """Propose listing (or de-listing) a customer; the latest candidate score and its explanation are
    copied into the proposal so reviewers see what the proposer saw."""
    access.require(user, Cap.PROPOSE_KEY_ACCOUNTS)
    if not access.can_see(user, institution):
        raise PermissionDenied(NOT_ALLOWED)
    reason = _clean(reason)
    errors: dict[str, list[str]] = {}
    if kind not in ProposalKind.values:
        errors["kind"] = [_("Choose listing or de-listing.")]
    if not reason:
        errors["reason"] = [_("Say why this customer should be listed or de-listed.")]
    if institution.merged_into_id:
        errors["institution"] = [_("This customer was merged into another record.")]
    department = department_refusal(institution) if kind == ProposalKind.LIST else None
    if department:
        errors.setdefault("institution", []).append(department)
    account = active_account(institution.pk)
    if kind == ProposalKind.LIST and account is not None:
        errors["institution"] = [_("This customer is already a key account (%(number)s).") % {"number": account.number}]
    if kind == ProposalKind.DELIST and account is None:
        errors["institution"] = [_("This customer is not a key account.")]
    if Proposal.objects.filter(institution=institution, kind=kind, status__in=OPEN_PROPOSAL).exists():
        errors.setdefault("institution", []).append(_("A proposal for this customer is already open."))
    if errors:
        raise ValidationError(errors)
    score = _latest_candidate(institution)
    now = timezone.now()
    try:
        with transaction.atomic():
            proposal = Proposal.objects.create(
                number=_number("KP", now), kind=kind, institution=institution, account=account, reason=reason,
                score=score.score if score else None, components=score.components if score else [],
                proposed_by=user, proposed_at=now,
            )  # fmt: skip
            audit.record(A.CREATE, proposal, user=user, changes={
                "number": [None, proposal.number], "kind": [None, kind], "institution": [None, institution.pk]})  # fmt: skip
            url = reverse("keyaccounts:proposal", args=[proposal.pk])
            title = Message(gettext_lazy("Key-account proposal %(number)s: %(name)s"), number=proposal.number,
                            name=institution.name)  # fmt: skip
            _notify([u for u in reviewers_of(institution) if u.pk != user.pk], "keyaccounts.review",
                    title, gettext_lazy("Please give your department's opinion."), url, proposal)  # fmt: skip
    except IntegrityError:
        raise ValidationError({"institution": [_("A proposal for this customer is already open.")]}) from None
    return proposal


def departments_of(user) -> list[str]:
    return sorted({REVIEW_DEPARTMENT[r] for r in user.roles if r in REVIEW_DEPARTMENT})


def reviewers_of(institution: Institution) -> list[User]:
    """Who is asked for a department's opinion on a proposal for `institution`: the active users the review
    inbox lists it for — the review capability with a department to speak for, and the proposal in
    proposals_for(user), i.e. the key-account pages and a customer they may see (a rep outside the
    customer's territory is not asked to review what answers 404). A fixed number of queries: the reviewers
    come with their roles, teams and territories, from which access.visible_from_rows decides each one's
    scope without a query of its own (access.prime_scope, from what was prefetched)."""
    from pharmacrm.core.roles import MATRIX

    row = (institution.pk, *(getattr(institution, column) for column in access.SCOPE_COLUMNS["institution"]))
    people = (
        User.objects.filter(is_active=True, groups__name__in=[r.value for r in MATRIX[Cap.REVIEW_KEY_ACCOUNTS]])
        .distinct().order_by("pk").prefetch_related("groups", "territory", "teams__territory")
    )  # fmt: skip
    found = []
    for person in people:
        if not (access.can(person, Cap.REVIEW_KEY_ACCOUNTS) and departments_of(person)
                and access.can(person, Cap.VIEW_KEY_ACCOUNTS)):  # fmt: skip
            continue
        access.prime_scope(person)
        if access.visible_from_rows(person, "institution", [row]):
            found.append(person)
    return found


def give_opinion(user, proposal: Proposal, *, opinion: str, comment: str = "", department: str = "") -> Review:
    """A department's opinion; a reviewer may revise theirs while the proposal is in review. The proposal is read
    again under its lock before the opinion is saved: an opinion is saved before the proposal goes to leadership (the
    sending waits for it) or refused after, never written into a proposal leadership is deciding."""
    access.require(user, Cap.REVIEW_KEY_ACCOUNTS)
    if not proposals_for(user).filter(pk=proposal.pk).exists():
        raise PermissionDenied(NOT_ALLOWED)
    if proposal.status != ProposalStatus.REVIEW:
        raise ValidationError(_("This proposal is no longer in review."))
    allowed = departments_of(user)
    department = department or (allowed[0] if allowed else "")
    errors = {}
    if department not in allowed:
        errors["department"] = [_("You cannot speak for this department.")]
    if opinion not in Opinion.values:
        errors["opinion"] = [_("Choose support, no objection or oppose.")]
    # a reviewer shown their comment masked and sending it back: the masks still in it are the stored details
    stored = Review.objects.filter(proposal=proposal, reviewer=user).first()
    comment = _clean(personal.restore_free_text(user, {"comment": comment}, stored, ("comment",))["comment"])
    if opinion == Opinion.OPPOSE and not comment:
        errors["comment"] = [_("Say why you oppose.")]
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        # the proposal as it is now, held until the opinion is saved: sent to leadership (or withdrawn) since it was
        # read above, it is no longer in review. submit_for_decision, withdraw and decide write the proposal's row,
        # then the audit chain, as this does
        status = Proposal.objects.select_for_update().filter(pk=proposal.pk).values_list("status", flat=True).first()
        if status != ProposalStatus.REVIEW:
            raise ValidationError(_("This proposal is no longer in review."))
        # a revised opinion is audited with the one it replaces (and the reasons given): the trail showed every revision
        # as a first opinion, the opposition and its reason it replaced nowhere in the entry
        before = Review.objects.filter(proposal=proposal, reviewer=user).values("department", "opinion", "comment").first()
        after = {"department": department, "opinion": opinion, "comment": comment}
        if before == after:  # the same opinion sent again (a double click): no change
            return Review.objects.get(proposal=proposal, reviewer=user)
        review, created = Review.objects.update_or_create(
            proposal=proposal, reviewer=user, defaults={**after, "at": timezone.now()},
        )  # fmt: skip
        audit.record(A.CREATE if created else A.UPDATE, proposal, user=user, changes={"review": [before, after]})
    return review


def require_sender(user, proposal: Proposal) -> None:
    """PermissionDenied unless the user may send the proposal to leadership (may_send)."""
    access.require(user, Cap.PROPOSE_KEY_ACCOUNTS)
    if not proposals_for(user).filter(pk=proposal.pk).exists():
        raise PermissionDenied(NOT_ALLOWED)
    if not may_send(user, proposal):
        # leadership decides what marketing sends: a manager must not close the review of someone else's
        # proposal and then approve it themselves
        raise PermissionDenied(_("Only the proposer or marketing sends a proposal to leadership."))


def may_send(user, proposal: Proposal) -> bool:
    """The proposer, or marketing (which leads the review), sends a proposal to leadership."""
    return access.can(user, Cap.PROPOSE_KEY_ACCOUNTS) and (
        proposal.proposed_by_id == user.pk or Department.MARKETING in departments_of(user)
    )


def review_others_needed() -> int:
    """How many departments besides marketing must have given their opinion before a proposal goes to
    leadership (KEYACCOUNTS_REVIEW_OTHER_DEPARTMENTS, 1 unless configured; at most all four others)."""
    others = len(Department.values) - 1
    return max(0, min(others, int(getattr(settings, "KEYACCOUNTS_REVIEW_OTHER_DEPARTMENTS", 1))))


def review_shortfall(proposal: Proposal) -> str | None:
    """What the review still lacks before the proposal may go to leadership, or None. Seed 001 §3.1:
    marketing leads the review and the other departments take part, so marketing's opinion alone is not
    enough — it needs those of review_others_needed() other departments."""
    given = set(proposal.reviews.values_list("department", flat=True))
    if Department.MARKETING not in given:
        return _("Marketing leads the review: record marketing's opinion before sending it on.")
    needed = review_others_needed()
    if len(given - {Department.MARKETING}) >= needed:
        return None
    others = listing(label for value, label in Department.choices if value != Department.MARKETING)
    return ngettext(
        "The review is cross-department: besides marketing, at least %(count)d other department "
        "(%(departments)s) must give its opinion before the proposal goes to leadership.",
        "The review is cross-department: besides marketing, at least %(count)d other departments "
        "(%(departments)s) must give their opinions before the proposal goes to leadership.",
        needed,
    ) % {"count": needed, "departments": others}


def submit_for_decision(user, proposal: Proposal, *, version: int | None = None) -> Proposal:
    """Marketing closes the review and sends the proposal to leadership; it needs marketing's opinion and
    those of other departments (review_shortfall)."""
    require_sender(user, proposal)
    _check_version(proposal, version)
    if proposal.status != ProposalStatus.REVIEW:
        raise ValidationError(_("Only a proposal in review can be sent for decision."))
    shortfall = review_shortfall(proposal)
    if shortfall:
        raise ValidationError(shortfall)
    with transaction.atomic():
        proposal.status, proposal.submitted_at, proposal.submitted_by = ProposalStatus.SUBMITTED, timezone.now(), user
        _save_versioned(proposal, ["status", "submitted_at", "submitted_by"], proposal.version)
        audit.record(A.UPDATE, proposal, user=user, changes={"status": [ProposalStatus.REVIEW, proposal.status]})
        url = reverse("keyaccounts:proposal", args=[proposal.pk])
        title = Message(gettext_lazy("Decision needed: key-account proposal %(number)s"), number=proposal.number)
        # the leaders who may decide it: not who proposed or sent it (_check_decider refuses them)
        deciders = [u for u in _users_with(Cap.APPROVE_KEY_ACCOUNTS) if u.pk not in (proposal.proposed_by_id, user.pk)]
        _notify(deciders, "keyaccounts.decide", title, proposal.institution.name, url, proposal)
    return proposal


def _withdraw_refusal(user, proposal: Proposal) -> Exception | None:
    """Why `user` may not withdraw `proposal` (the error withdraw() raises), or None when they may: the
    proposer while it is in review; leadership (or an administrator) while it is open, also once it waits
    for leadership. The page shows the button by the same rule (may_withdraw)."""
    if not access.can(user, Cap.PROPOSE_KEY_ACCOUNTS) or not proposals_for(user).filter(pk=proposal.pk).exists():
        return PermissionDenied(NOT_ALLOWED)
    leadership = bool(access.roles_of(user) & {Role.ADMIN, Role.MANAGER})
    if proposal.status == ProposalStatus.SUBMITTED and not leadership:
        return PermissionDenied(_("This proposal waits for leadership: only leadership can close it now."))
    if proposal.proposed_by_id != user.pk and not leadership:
        return PermissionDenied(_("Only the proposer can withdraw this proposal."))
    if proposal.status not in OPEN_PROPOSAL:
        return ValidationError(_("Only an open proposal can be withdrawn."))
    return None


def may_withdraw(user, proposal: Proposal) -> bool:
    """Whether withdraw() would accept: the page offers the button only then."""
    return _withdraw_refusal(user, proposal) is None


def withdraw(user, proposal: Proposal, *, version: int | None = None) -> Proposal:
    """The proposer withdraws while the proposal is in review; once it waits for leadership, only
    leadership (or an administrator) closes it. `version` is the proposal's version the user saw, as for every other
    step of the workflow: a proposal sent to leadership or decided since is not closed unseen
    (StaleVersion)."""
    access.require(user, Cap.PROPOSE_KEY_ACCOUNTS)
    refusal = _withdraw_refusal(user, proposal)
    if refusal is not None:
        raise refusal
    _check_version(proposal, version)
    with transaction.atomic():
        old = proposal.status
        proposal.status = ProposalStatus.WITHDRAWN
        _save_versioned(proposal, ["status"], proposal.version)
        audit.record(A.UPDATE, proposal, user=user, changes={"status": [old, proposal.status]})
        if proposal.proposed_by_id != user.pk:  # leadership closed it: the proposer hears it, as of a decision
            title = Message(gettext_lazy("Key-account proposal %(number)s was withdrawn by %(name)s"),
                            number=proposal.number, name=str(user))  # fmt: skip
            _notify([proposal.proposed_by], "keyaccounts.decided", title, proposal.institution.name,
                    reverse("keyaccounts:proposal", args=[proposal.pk]), proposal)  # fmt: skip
    return proposal


def _check_decider(user, proposal: Proposal) -> None:
    access.require(user, Cap.APPROVE_KEY_ACCOUNTS)
    if proposal.proposed_by_id == user.pk:
        raise DecisionRefused(_("You cannot decide on your own proposal: another member of the leadership must."))
    if proposal.submitted_by_id == user.pk:
        raise DecisionRefused(
            _("You sent this proposal for decision: another member of the leadership must decide it.")
        )


def decide(user, proposal: Proposal, *, approve: bool, comment: str = "", otp_code: str = "",
           version: int | None = None) -> Proposal:  # fmt: skip
    """Leadership approves or rejects, signing with a fresh one-time code. Approving a listing opens the
    key-account file with its service team and makes the customer's tier "key account"; approving a
    de-listing closes the file and gives the customer back its tier from before."""
    _check_decider(user, proposal)
    _check_version(proposal, version)
    if proposal.status != ProposalStatus.SUBMITTED:
        raise ValidationError(_("This proposal is not waiting for a decision."))
    comment = _clean(comment)
    if not approve and not comment:
        raise ValidationError({"comment": [_("Say why the proposal is rejected.")]})
    _check_still_unlisted(proposal, approve)  # before the one-time code is used up
    meaning = signatures.Meaning.APPROVED if approve else signatures.Meaning.REJECTED
    signatures.verify(user, otp_code, meaning, proposal)  # outside the transaction: failures stay audited
    now = timezone.now()
    with transaction.atomic():
        locked = Proposal.objects.select_for_update().get(pk=proposal.pk)
        if locked.status != ProposalStatus.SUBMITTED or locked.version != proposal.version:
            raise ValidationError(_("Someone decided on this proposal meanwhile. Reload the page."))
        _check_still_unlisted(proposal, approve)
        if proposal.kind != ProposalKind.LIST and proposal.account_id:
            # a de-listing closes the file: its account, plans in force and agreements are taken before the audit
            # chain (the signature's entry), in the order team and plan changes (account, then the chain), progress
            # reports (plan, item, then the chain) and the worker's agreement expiry (agreement, then the chain)
            # take them — the other way round, they deadlocked on PostgreSQL
            KeyAccount.objects.select_for_update().filter(pk=proposal.account_id).first()
            list(ServicePlan.objects.select_for_update().filter(account_id=proposal.account_id, status=PlanStatus.APPROVED)
                 .order_by("pk").values_list("pk", flat=True))  # fmt: skip
            list(Agreement.objects.select_for_update().filter(account_id=proposal.account_id)
                 .filter(Q(status__in=[AgreementStatus.DRAFT, AgreementStatus.SIGNED]) | Q(next_check_at__isnull=False))
                 .order_by("pk").values_list("pk", flat=True))  # fmt: skip
        sig = signatures.record(user, meaning, proposal, reason=comment,
                                label=f"{proposal.number} {proposal.institution.name}")  # fmt: skip
        proposal.status = ProposalStatus.APPROVED if approve else ProposalStatus.REJECTED
        proposal.decided_by, proposal.decided_at, proposal.decision_comment, proposal.signature = user, now, comment, sig
        if approve and proposal.kind == ProposalKind.LIST:
            proposal.account = _open_account(user, proposal.institution, now)
        elif approve:
            _close_account(user, proposal.account, now)
        _save_versioned(
            proposal, ["status", "decided_by", "decided_at", "decision_comment", "signature", "account"], proposal.version
        )
        audit.record(A.UPDATE, proposal, user=user, changes={"status": [ProposalStatus.SUBMITTED, proposal.status]},
                     comment=comment, signature_id=sig.pk)  # fmt: skip
        url = reverse("keyaccounts:proposal", args=[proposal.pk])
        word = gettext_lazy("approved") if approve else gettext_lazy("rejected")
        title = Message(gettext_lazy("Key-account proposal %(number)s was %(decision)s"), number=proposal.number,
                        decision=word)  # fmt: skip
        _notify([proposal.proposed_by], "keyaccounts.decided", title, comment, url, proposal)
    return proposal


def _check_still_unlisted(proposal: Proposal, approve: bool) -> None:
    """A listing is approved only for a customer that is no key account: it can have become one since it was
    proposed — a duplicate record holding an active file merged into it — and a second file for it broke the
    decision (the database allows one active file per customer). Leadership rejects (or closes) the proposal."""
    if not approve or proposal.kind != ProposalKind.LIST:
        return
    account = active_account(proposal.institution_id)
    if account is not None:
        raise ValidationError(_("This customer is already a key account (%(number)s).") % {"number": account.number})


def _set_tier(user, institution: Institution, tier: str, reason: str) -> str:
    old = Institution.objects.filter(pk=institution.pk).values_list("tier", flat=True).first()
    if old != tier:
        Institution.objects.filter(pk=institution.pk).update(tier=tier, version=F("version") + 1, updated_at=timezone.now())
        audit.record(A.UPDATE, institution, user=user, changes={"tier": [old, tier]}, reason=reason)
    return old or ""


TEAM_PREFIX = KEY_ACCOUNT_TEAM_PREFIX  # 重点客户服务组·


def service_team(institution: Institution, number: str) -> Team:
    """The service team of a file opened for the customer: the team of its earlier file when it is listed again (the
    same team, under the name it has had, its tickets' history with it: de-listing emptied it, so it starts without
    members), else a new team named after the customer — its short name, its full name when another team has that
    name (two hospitals both short-named 市人民医院), and only then with the file's number. (A customer listed again
    used to get a second team named after it with the moment of approval, 重点客户服务组·协和医院·20261205155641.)"""
    earlier = (KeyAccount.objects.filter(institution=institution, team__isnull=False)
               .order_by("-listed_at", "-id").values_list("team_id", flat=True).first())  # fmt: skip
    if earlier is not None:
        return Team.objects.get(pk=earlier)
    limit = Team._meta.get_field("name").max_length
    customers = [institution.short_name or institution.name, institution.name]
    for customer in customers:
        customer = customer[: limit - len(TEAM_PREFIX)]
        if not Team.objects.filter(name=f"{TEAM_PREFIX}{customer}").exists():
            # named in the product's language, with what it is named from: it reads in each reader's (Team.shown_name)
            return Team.objects.create(name=f"{TEAM_PREFIX}{customer}", generated="key_account",
                                       generated_params={"customer": customer})  # fmt: skip
    customer = customers[0][: limit - len(TEAM_PREFIX) - len(number) - 1]
    return Team.objects.create(name=f"{TEAM_PREFIX}{customer}·{number}", generated="key_account",
                               generated_params={"customer": customer, "suffix": number})  # fmt: skip


def _open_account(user, institution: Institution, now) -> KeyAccount:
    number = _number("KA", now)
    team = service_team(institution, number)
    account = KeyAccount.objects.create(number=number, institution=institution, team=team, listed_at=now)
    account.previous_tier = _set_tier(user, institution, Tier.KEY, "key-account listing")
    account.save(update_fields=["previous_tier"])
    _arm_meeting_clock(account)  # the first service meeting is due a cadence after the listing
    _refresh_candidate(institution.pk)  # a key account is no candidate any more
    audit.record(A.CREATE, account, user=user, changes={"number": [None, account.number], "institution": [None, institution.pk],
                                                         "service_team": [None, team.pk]})  # fmt: skip
    return account


def _refresh_candidate(institution_id: int) -> None:
    from . import evaluation

    evaluation.refresh_candidate_flag(institution_id)


def tier_after_delisting(account: KeyAccount) -> str:
    """The tier a de-listed customer goes back to: the one it had before listing, unless that was "key
    account" (a tier only the programme gives), then what its customer evaluation's class maps to in the period
    in force (evaluation.in_force; else its latest) when its model changes tiers, else regular."""
    from .models import Score

    if account.previous_tier and account.previous_tier != Tier.KEY and account.previous_tier in Tier.values:
        return account.previous_tier
    from . import evaluation

    scores = Score.objects.filter(institution_id=account.institution_id, kind="evaluation").exclude(klass="")
    # the period in force (the last evaluated in full), not the interim standings of the half-year under way
    in_force = evaluation.in_force("evaluation")
    score = scores.filter(period=in_force).select_related("model").first() if in_force else None
    if score is None:
        score = scores.select_related("model").order_by("-as_of", "-computed_at").first()
    if score is not None and score.model.apply_tiers:
        tier = ((score.model.benefits or {}).get(score.klass) or {}).get("tier")
        if tier in (Tier.NEW, Tier.REGULAR, Tier.VIP):
            return tier
    return Tier.REGULAR


def _close_account(user, account: KeyAccount, now) -> None:
    """De-listing: the file closes, the customer loses the key-account tier (and with it the service desk's
    boost), the plan's clocks stop, the agreements still in force end (no renewal reminder for a customer
    no longer served), and the open tickets waiting unassigned in the account's team go back to the
    service desk's ordinary routing."""
    account.status, account.delisted_at = AccountStatus.DELISTED, now
    # no meeting is due for a customer nobody serves: its meeting clock stops with the plan's
    account.next_check_at = account.claimed_until = None
    account.save(update_fields=["status", "delisted_at", "next_check_at", "claimed_until"])
    # the team serves it no more: later periods' scorecards leave it out
    TeamTenure.objects.filter(account=account, end__isnull=True).update(end=timezone.localtime(now).date())
    _set_tier(user, account.institution, tier_after_delisting(account), "key-account de-listing")
    _refresh_candidate(account.institution_id)  # above the threshold: a candidate again
    for plan in account.plans.filter(status=PlanStatus.APPROVED):
        plan.items.update(next_check_at=None, claimed_until=None)
    MeetingAction.objects.filter(meeting__account=account, next_check_at__isnull=False).update(
        next_check_at=None, claimed_until=None)  # a closed file's open actions are overdue for nobody
    account.agreements.filter(next_check_at__isnull=False).update(next_check_at=None, claimed_until=None)
    today = timezone.localtime(now).date()
    agreements = account.agreements.filter(status__in=[AgreementStatus.DRAFT, AgreementStatus.SIGNED])
    for agreement in agreements.select_for_update().order_by("pk"):
        agreement.refresh_from_db()  # as it is now: an amendment applied on the way may have renewed an earlier one
        if agreement.status not in (AgreementStatus.DRAFT, AgreementStatus.SIGNED):
            continue
        old = agreement.status
        if old == AgreementStatus.SIGNED:
            # an amendment whose day has come is applied; the one still waiting for its day lapses, never applied
            amendments.lapse(agreement, SERVICE_TERMS, amendments.LapseCause.ENDED, user=user, today=today)
        past = old == AgreementStatus.SIGNED and agreement.end_date < today  # over already: the sweep was late
        agreement.status = AgreementStatus.EXPIRED if past else AgreementStatus.ENDED
        agreement.next_check_at = agreement.claimed_until = None
        _save_versioned(agreement, ["status", "next_check_at", "claimed_until"], agreement.version)
        audit.record(A.UPDATE, agreement, user=user, changes={"status": [old, agreement.status]},
                     reason="key-account de-listing")  # fmt: skip
    changes = {"status": [AccountStatus.ACTIVE, AccountStatus.DELISTED]}
    changes.update(_disband_team(account))
    audit.record(A.UPDATE, account, user=user, changes=changes)
    _reroute_tickets(account)


def _disband_team(account: KeyAccount) -> dict:
    """The service team of a de-listed file serves nobody: its members leave the team (the file's TeamMember rows and
    tenures stay, the record of who served the customer) and it has no lead. Left in it, they kept the team's queue
    and the notifications of tickets waiting in it, and its project manager its board and the safety escalations of
    its former members (safety.services.managers_of: the leads of their teams). A listing again reuses the team
    (service_team), empty until members are added. Returns the audit changes, none when it was empty already."""
    if not account.team_id:
        return {}
    links = User.teams.through.objects.filter(team_id=account.team_id)
    members = sorted(links.values_list("user_id", flat=True))
    lead = Team.objects.filter(pk=account.team_id).values_list("lead_id", flat=True).first()
    links.delete()
    Team.objects.filter(pk=account.team_id).update(lead=None)
    changes = {}
    if members:
        changes["team_members"] = [members, []]
    if lead is not None:
        changes["team_lead"] = [lead, None]
    return changes


def _reroute_tickets(account: KeyAccount) -> int:
    """The open tickets waiting unassigned in a (de-listed) account's team are routed again as any other
    ticket: the first matching assignment rule's team and, by its method, an agent (the service desk's
    routing, without a second priority boost); without a matching rule, the general queue."""
    from pharmacrm.servicedesk import routing
    from pharmacrm.servicedesk import services as desk
    from pharmacrm.servicedesk.choices import OPEN_STATUSES, AssignMethod, EventKind
    from pharmacrm.servicedesk.models import Ticket

    if not account.team_id:
        return 0
    tickets = Ticket.objects.filter(team_id=account.team_id, assignee__isnull=True, status__in=OPEN_STATUSES)
    moved = 0
    for ticket in tickets.select_related("category", "person", "institution").order_by("id"):
        rule = routing.matching_rule(ticket)
        team = rule.team if rule is not None else None
        agent = routing.pick_agent(team, ticket, rule=rule) if rule is not None and rule.method != AssignMethod.QUEUE else None
        if team is not None:
            desk.assign(desk.SYSTEM, ticket, assignee=agent, team=team)
        else:  # no rule: the general queue (assign cannot take a ticket out of its team)
            before = [ticket.assignee_id, ticket.team_id]
            ticket.team = None
            desk._save(ticket, ["team_id"], ticket.version)
            desk._event(ticket, EventKind.ASSIGNED, desk.SYSTEM, at=timezone.now(), data={"assignee": None, "team": None})
            audit.record(A.UPDATE, ticket, user=desk.SYSTEM, changes={"assignee": [before, [None, None]]},
                         reason="key-account de-listing")  # fmt: skip
        moved += 1
    return moved


# --- the service team -----------------------------------------------------------------------------------


def add_member(user, account: KeyAccount, member: User, role: str) -> TeamMember:
    """Put a user in the account's service team; they must hold the system role the team role needs. The
    project manager leads the team (tickets routed to the team reach them first); an account has one."""
    require_manage(user, account)
    if account.status != AccountStatus.ACTIVE:
        raise ValidationError(_("This key account has been de-listed."))
    errors = {}
    if role not in TeamRole.values:
        errors["role"] = [_("Choose a team role.")]
    elif not (member.is_active and member.roles & TEAM_ROLE_NEEDS[TeamRole(role)]):
        errors["user"] = [_("%(user)s does not have the role a %(team_role)s needs.")
                          % {"user": member, "team_role": TeamRole(role).label}]  # fmt: skip
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        KeyAccount.objects.select_for_update().filter(pk=account.pk).first()  # two additions: one after the other
        require_active(account)  # as it is now: de-listed since the page was read, the addition is refused
        if role == TeamRole.PROJECT_MANAGER:
            # one project manager leads an account: handing it over is removing the current one first
            current = (TeamMember.objects.filter(account=account, role=TeamRole.PROJECT_MANAGER)
                       .exclude(user=member).select_related("user").first())  # fmt: skip
            if current is not None:
                raise ValidationError({"role": [_(
                    "%(user)s is already this account's project manager; an account has one. To hand it over, "
                    "remove %(user)s from the role first."
                ) % {"user": current.user}]})  # fmt: skip
        row, created = TeamMember.objects.get_or_create(account=account, user=member, role=role)
        if not created:
            raise ValidationError({"user": [_("%(user)s is already in the team in this role.") % {"user": member}]})
        TeamTenure.objects.create(account=account, user=member, role=role, start=row.since)
        if account.team_id:
            member.teams.add(account.team)
            if role == TeamRole.PROJECT_MANAGER and account.team.lead_id is None:
                Team.objects.filter(pk=account.team_id).update(lead=member)
        audit.record(A.UPDATE, account, user=user, changes={"team": [None, {"user": member.pk, "role": role}]})
        if member.pk != user.pk:  # seed 001 §3.2: the team learns of its key account, and of its place in it
            _notify([member], "keyaccounts.team",
                    Message(gettext_lazy("You joined the service team of key account %(number)s: %(name)s"),
                            number=account.number, name=account.institution.name),
                    Message(gettext_lazy("Team role: %(role)s. Your open work for the account is on your "
                                         "key-account page."), role=TeamRole(role).label),
                    reverse("keyaccounts:account", args=[account.pk]) + "#team", account)  # fmt: skip
    return row


MEMBER_ACTIONS_NAMED = 5  # open plan items, and open meeting actions, a refused removal names


def _first_named(things: list, name) -> str:
    """The first MEMBER_ACTIONS_NAMED of `things`, each `name(thing)`, as one list in the reader's language; an
    ellipsis for more."""
    named = [name(t) for t in things[:MEMBER_ACTIONS_NAMED]]
    if len(things) > MEMBER_ACTIONS_NAMED:
        named.append("…")
    return listing(named)


def open_actions_message(actions: list[MeetingAction]) -> str:
    """Why a member is not removed yet: the open meeting actions they own, named (at most MEMBER_ACTIONS_NAMED, an
    ellipsis for more), with the meeting each came from and its due date, to give to someone else first."""
    named = _first_named(actions, lambda a: _("“%(title)s” (meeting “%(meeting)s”, due %(date)s)") % {
        "title": a.title, "meeting": a.meeting.title, "date": a.due_date.isoformat()})  # fmt: skip
    return _("Give this member's open meeting actions to someone else first (Edit, under Service meetings): "
             "%(actions)s.") % {"actions": named}  # fmt: skip


def open_items_message(items: list[PlanItem]) -> str:
    """Why a member is not removed yet: the open plan items they own in the plan in force or its draft, named (at most
    MEMBER_ACTIONS_NAMED, an ellipsis for more) with their plan version and deadline, to give to someone else first."""
    named = _first_named(items, lambda i: _("“%(title)s” (service plan v%(version)s, due %(date)s)") % {
        "title": i.title, "version": i.plan.version_number, "date": i.deadline.isoformat()})  # fmt: skip
    return _("Give this member's open plan items to someone else first (Edit, on a draft of the service plan; the "
             "plan in force changes with its next version): %(items)s.") % {"items": named}  # fmt: skip


def remove_member(user, member: TeamMember) -> None:
    """Take a member out of the account's team. A member who leaves it (holding no other role in it) must have handed
    over their open plan items and their open meeting actions first: the removal is refused, naming the items and
    the actions."""
    account = member.account
    require_manage(user, account)
    with transaction.atomic():
        # one change of the team and its items at a time (save_item takes the same lock): an item given to this
        # member while they are removed is either seen here or refused there, never owned by someone outside
        KeyAccount.objects.select_for_update().filter(pk=account.pk).first()
        # a closed file is kept as it was: its team is the one that served the customer (read under the lock, so
        # that a removal sent while the account is de-listed is refused too)
        require_active(account)
        # removed meanwhile by someone else (two managers, or the API and the page, at once): nothing more to do — a
        # second "left the team" in the account's history, and a removal told as done, for a removal that was not
        if not TeamMember.objects.filter(pk=member.pk).exists():
            raise ValidationError(_("No such team member."))
        # items of a superseded version can no longer be handed over: only the plan in force and the draft count;
        # a member who stays in the team in another role keeps delivering theirs
        owned = PlanItem.objects.filter(plan__account=account, owner=member.user, status__in=OPEN_ITEM)
        stays = TeamMember.objects.filter(account=account, user=member.user).exclude(pk=member.pk).exists()
        refusals = []
        if not stays:
            items = list(owned.exclude(plan__status=PlanStatus.SUPERSEDED).select_related("plan")
                         .order_by("plan__version_number", "deadline", "id")[:MEMBER_ACTIONS_NAMED + 1])  # fmt: skip
            if items:
                refusals.append(open_items_message(items))
        # so are their open meeting actions (edit_action gives one to another member): left with them, an action would
        # stay owned by someone outside the team, on their work page, and nobody in the team would see to it
        if not stays:
            actions = list(MeetingAction.objects.filter(meeting__account=account, owner=member.user_id,
                                                        done_at__isnull=True)
                           .select_related("meeting").order_by("due_date", "id")[:MEMBER_ACTIONS_NAMED + 1])  # fmt: skip
            if actions:
                refusals.append(open_actions_message(actions))
        if refusals:
            raise ValidationError(refusals)
        member.delete()
        # the last day served: their scorecards up to today still count this account
        TeamTenure.objects.filter(account=account, user=member.user_id, role=member.role, end__isnull=True).update(
            end=timezone.localdate()
        )
        if account.team_id and not TeamMember.objects.filter(account=account, user=member.user).exists():
            member.user.teams.remove(account.team)
            if account.team.lead_id == member.user_id:
                pm = TeamMember.objects.filter(account=account, role=TeamRole.PROJECT_MANAGER).first()
                Team.objects.filter(pk=account.team_id).update(lead=pm.user if pm else None)
        audit.record(A.UPDATE, account, user=user, changes={"team": [{"user": member.user_id, "role": member.role}, None]})


# --- service plans ----------------------------------------------------------------------------------


def start_plan(user, account: KeyAccount, *, goals: str = "", valid_from=None, valid_to=None) -> ServicePlan:
    """A new draft version; it starts as a copy of the plan in force (if any)."""
    require_manage(user, account)
    if account.status != AccountStatus.ACTIVE:
        raise ValidationError(_("This key account has been de-listed."))
    if open_plan(account) is not None:
        raise ValidationError(_("A draft of this plan is already being worked on."))
    _check_validity(valid_from, valid_to)
    base = current_plan(account)
    # a date left empty is taken from the plan in force: the validity the draft gets, with the one given, must not end
    # before it starts (an end given alone, before the plan in force's start, made a draft that ended before it began)
    start = valid_from or (base.valid_from if base else None)
    end = valid_to or (base.valid_to if base else None)
    if start and end and end < start:
        raise ValidationError({"valid_to" if valid_to else "valid_from": [
            _("With the other date taken from the plan in force, the validity would end before it starts (%(start)s "
              "to %(end)s): give both the start and the end.") % {"start": start.isoformat(), "end": end.isoformat()}
        ]})  # fmt: skip
    last = account.plans.order_by("-version_number").values_list("version_number", flat=True).first() or 0
    try:
        with transaction.atomic():
            plan = ServicePlan.objects.create(
                account=account, version_number=last + 1, goals=_clean(goals) or (base.goals if base else ""),
                valid_from=start, valid_to=end, created_by=user,
            )  # fmt: skip
            if base is not None:
                PlanItem.objects.bulk_create([
                    PlanItem(plan=plan, area=i.area, title=i.title, standard=i.standard, owner=i.owner,
                             deadline=i.deadline, status=i.status, progress=i.progress, progress_note=i.progress_note,
                             completed_at=i.completed_at, carried_from=i)
                    for i in base.items.all()
                ])  # fmt: skip
            plan.editors.add(user)
            audit.record(A.CREATE, plan, user=user, changes={"version_number": [None, plan.version_number]})
    except IntegrityError:
        raise ValidationError(_("A draft of this plan is already being worked on.")) from None
    return plan


def _check_validity(valid_from, valid_to) -> None:
    errors = {}
    for field, value in (("valid_from", valid_from), ("valid_to", valid_to)):
        if value and not 2000 <= value.year <= 2999:  # 9999-12-31 ("no end" in an ERP) broke the account page
            errors[field] = [_("Give a date between the years 2000 and 2999; leave the end empty for no end.")]
    if errors:
        raise ValidationError(errors)
    if valid_from and valid_to and valid_to < valid_from:
        raise ValidationError({"valid_to": [_("The end lies before the start.")]})


def update_plan(user, plan: ServicePlan, *, goals: str, valid_from=None, valid_to=None,
                version: int | None = None) -> ServicePlan:
    """A draft's (or returned plan's) needs and goals and its validity, corrected before it is submitted. The
    validity may not leave out an item's deadline: the items' deadlines are moved first (items carried over from
    the plan in force with a deadline that passed are not held against the new start)."""
    _require_editable(user, plan)
    _check_version(plan, version)
    _check_validity(valid_from, valid_to)
    today = timezone.localdate()
    errors: dict[str, list[str]] = {}
    items = list(plan.items.exclude(status=ItemStatus.CANCELLED).order_by("deadline", "id"))
    early = [i for i in items if valid_from and i.deadline < valid_from and i.deadline >= today]
    late = [i for i in items if valid_to and i.deadline > valid_to]
    if early:
        errors["valid_from"] = [ngettext(
            "%(count)d service item falls due before this start: %(items)s. Move its deadline first.",
            "%(count)d service items fall due before this start: %(items)s. Move their deadlines first.",
            len(early)) % {"count": len(early), "items": listing([i.title for i in early[:5]])}]  # fmt: skip
    if late:
        errors["valid_to"] = [ngettext(
            "%(count)d service item falls due after this end: %(items)s. Move its deadline first.",
            "%(count)d service items fall due after this end: %(items)s. Move their deadlines first.",
            len(late)) % {"count": len(late), "items": listing([i.title for i in late[:5]])}]  # fmt: skip
    if errors:
        raise ValidationError(errors)
    new = {"goals": _clean(goals), "valid_from": valid_from, "valid_to": valid_to}
    changes = {k: [getattr(plan, k), v] for k, v in new.items() if getattr(plan, k) != v}
    if not changes:
        return plan
    with transaction.atomic():
        for k, v in new.items():
            setattr(plan, k, v)
        _save_versioned(plan, list(new), plan.version)
        plan.editors.add(user)
        audit.record(A.UPDATE, plan, user=user, changes=changes)
    return plan


def _require_editable(user, plan: ServicePlan) -> None:
    require_manage(user, plan.account)
    require_active(plan.account)
    if plan.status not in (PlanStatus.DRAFT, PlanStatus.REJECTED):
        raise ValidationError(_("Only a draft (or a returned plan) can be changed."))


def _clean_item(data: dict, plan: ServicePlan, item: PlanItem | None = None) -> dict:
    """An item's fields checked. Its deadline lies within the plan's validity (when the plan has one) and, for a
    new item or a moved deadline, not in the past (an item carried over with a deadline that passed keeps it)."""
    account = plan.account
    errors: dict[str, list[str]] = {}
    out = {}
    out["area"] = data.get("area")
    if out["area"] not in PlanArea.values:
        errors["area"] = [_("Choose the area of the service.")]
    out["title"] = _clean(data.get("title"), 200)
    if not out["title"]:
        errors["title"] = [_("Name the service.")]
    out["standard"] = _clean(data.get("standard"))
    if not out["standard"]:
        errors["standard"] = [_("Say what standard the service must meet.")]
    owner = data.get("owner")
    if owner is None or not TeamMember.objects.filter(account=account, user=owner).exists():
        errors["owner"] = [_("The owner must be a member of the account's service team.")]
    out["owner"] = owner
    deadline = data.get("deadline")
    if not isinstance(deadline, dt.date):
        errors["deadline"] = [_("Give the deadline.")]
    elif not 2000 <= deadline.year <= 2999:
        errors["deadline"] = [_("Give a deadline between the years 2000 and 2999.")]
    elif item is None or deadline != item.deadline:
        wrong = []
        start, end = plan.valid_from, plan.valid_to
        if (start and deadline < start) or (end and deadline > end):
            if start and end:
                wrong.append(_("The deadline must lie within the plan's validity, %(start)s to %(end)s.")
                             % {"start": start.isoformat(), "end": end.isoformat()})  # fmt: skip
            elif start:
                wrong.append(_("The deadline cannot lie before the plan's validity starts on %(date)s.")
                             % {"date": start.isoformat()})  # fmt: skip
            else:
                wrong.append(_("The deadline cannot lie after the plan's validity ends on %(date)s.")
                             % {"date": end.isoformat()})  # fmt: skip
        if deadline < timezone.localdate():
            wrong.append(_("The deadline cannot lie in the past."))
        if wrong:
            errors["deadline"] = wrong
    out["deadline"] = deadline
    if errors:
        raise ValidationError(errors)
    return out


def save_item(user, plan: ServicePlan, data: dict, item: PlanItem | None = None, version: int | None = None) -> PlanItem:
    _require_editable(user, plan)
    if item is not None and item.plan_id != plan.pk:
        raise PermissionDenied(NOT_ALLOWED)
    clean = _clean_item(data, plan, item)
    with transaction.atomic():
        # the owner is still in the team: not removed since they were checked (remove_member takes the same lock)
        KeyAccount.objects.select_for_update().filter(pk=plan.account_id).first()
        require_active(plan.account)  # as it is now: de-listed since the form was checked, the item is refused
        # the plan as it is now, held until the item is saved: submitted, or approved by a decision signed since the
        # form was checked, its items are what leadership reviews or signed (a change after approval is a new
        # version); the item would have changed them unseen
        if not ServicePlan.objects.select_for_update().filter(
            pk=plan.pk, status__in=[PlanStatus.DRAFT, PlanStatus.REJECTED]
        ).exists():
            raise ValidationError(_("Only a draft (or a returned plan) can be changed."))
        if not TeamMember.objects.filter(account_id=plan.account_id, user=clean["owner"]).exists():
            raise ValidationError({"owner": [_("The owner must be a member of the account's service team.")]})
        if item is None:
            # the same item sent twice (a double click, the browser's "send again", a client retrying): added once. The
            # same is what matches an item across versions (_item_key): area, title, owner and deadline
            same = (
                PlanItem.objects.filter(plan=plan, area=clean["area"], title=clean["title"], owner=clean["owner"],
                                        deadline=clean["deadline"]).exclude(status=ItemStatus.CANCELLED).first()
            )  # fmt: skip
            if same is not None:
                raise AlreadyRecorded(
                    _("This service item is in the plan already: “%(title)s” (%(area)s), owned by %(owner)s, due "
                      "%(date)s. Nothing new was saved.")
                    % {"title": same.title, "area": same.get_area_display(), "owner": same.owner,
                       "date": same.deadline.isoformat()},
                    same,
                )  # fmt: skip
            item = PlanItem.objects.create(plan=plan, **clean)
            plan.editors.add(user)
            audit.record(A.CREATE, item, user=user, changes={k: [None, getattr(item, k if k != "owner" else "owner_id")]
                                                              for k in clean})  # fmt: skip
        else:
            _check_version(item, version)
            before = {k: getattr(item, k) for k in clean}
            for k, v in clean.items():
                setattr(item, k, v)
            _save_versioned(item, list(clean), item.version)
            plan.editors.add(user)
            audit.record(A.UPDATE, item, user=user, changes=audit.diff(
                {k: getattr(v, "pk", v) for k, v in before.items()}, {k: getattr(v, "pk", v) for k, v in clean.items()}))
    return item


def delete_item(user, item: PlanItem, version: int | None = None) -> None:
    """Removes a draft's item. `version` is the item's version the user saw: an item someone else changed since is
    not deleted (StaleVersion), as it would not be saved over; nor is one whose plan was submitted meanwhile."""
    _require_editable(user, item.plan)
    _check_version(item, version)
    with transaction.atomic():
        # the plan and the item as they are now, held until the item is gone: a plan submitted or an item edited by
        # someone else since this user loaded them keeps the item
        plan = ServicePlan.objects.select_for_update().select_related("account").get(pk=item.plan_id)
        _require_editable(user, plan)
        now = PlanItem.objects.select_for_update().filter(pk=item.pk).values_list("version", flat=True)
        now = now.first()
        if now is None or now != (item.version if version is None else int(version) if is_id(version) else None):
            raise StaleVersion(now)
        plan.editors.add(user)
        audit.record(A.DELETE, item, user=user, changes={"title": [item.title, None]})
        item.delete()


def submit_plan(user, plan: ServicePlan, *, version: int | None = None) -> ServicePlan:
    _require_editable(user, plan)
    _check_version(plan, version)
    if not plan.items.exists():
        raise ValidationError(_("Add the service items before submitting the plan."))
    missing = [a.label for a in (PlanArea.SUPPLY, PlanArea.TECH_SUPPORT, PlanArea.AFTER_SALES, PlanArea.TRAINING)
               if not plan.items.filter(area=a).exclude(status=ItemStatus.CANCELLED).exists()]  # fmt: skip
    if missing:
        raise ValidationError(_("A service plan covers product supply, technical support, after-sales and "
                                "training; missing: %(areas)s.") % {"areas": listing(missing)})  # fmt: skip
    with transaction.atomic():
        old = plan.status
        changes = {"status": [old, PlanStatus.SUBMITTED]}
        if plan.decided_at is not None:
            # a returned plan submitted again waits for a new decision: the return (kept in the signatures and the
            # audit trail) no longer shows as its decision in the versions table and the API
            changes["decision_comment"] = [plan.decision_comment, ""]
            plan.decided_by = plan.decided_at = plan.signature = None
            plan.decision_comment = ""
        plan.status, plan.submitted_at, plan.submitted_by = PlanStatus.SUBMITTED, timezone.now(), user
        _save_versioned(plan, ["status", "submitted_at", "submitted_by", "decided_by", "decided_at",
                               "decision_comment", "signature"], plan.version)  # fmt: skip
        audit.record(A.UPDATE, plan, user=user, changes=changes)
        url = reverse("keyaccounts:account", args=[plan.account_id]) + "#plan"
        title = Message(gettext_lazy("Service plan for review: %(name)s (version %(v)s)"),
                        name=plan.account.institution.name, v=plan.version_number)  # fmt: skip
        # the leaders who may review it: not who wrote, changed or submitted it or delivers an item (decide_plan
        # refuses them)
        reviewers = [u for u in _users_with(Cap.APPROVE_KEY_ACCOUNTS) if may_decide_plan(u, plan)]
        _notify(reviewers, "keyaccounts.plan", title, "", url, plan)
    return plan


def plans_user_may_decide(user, qs=None):
    """The plans `user` may review as leadership: they hold the approval right and neither wrote (created, or changed
    or removed anything of the version: its editors) nor submitted the plan nor own any of its items (nobody reviews
    their own plan: another member of the leadership must). The one rule behind the review inbox, the decision form
    on the plan, the reviewers told of a submission and decide_plan; a fixed number of subqueries whatever the number
    of plans."""
    qs = ServicePlan.objects.all() if qs is None else qs
    if not access.can(user, Cap.APPROVE_KEY_ACCOUNTS):
        return qs.none()
    delivered = PlanItem.objects.filter(owner=user).values("plan_id")
    edited = ServicePlan.editors.through.objects.filter(user=user).values("serviceplan_id")
    return qs.exclude(created_by=user).exclude(submitted_by=user).exclude(pk__in=delivered).exclude(pk__in=edited)


def may_decide_plan(user, plan: ServicePlan) -> bool:
    return plans_user_may_decide(user, ServicePlan.objects.filter(pk=plan.pk)).exists()


def own_plan_message() -> str:
    """Why a member of the leadership may not review this plan (see plans_user_may_decide)."""
    return _("You cannot review a plan you wrote, submitted or deliver: another member of the leadership must.")


def edited_plan_message() -> str:
    """Why a member of the leadership who changed a plan version written by someone else may not review it."""
    return _("You changed this version of the plan (its needs and goals, validity or service items), so you are one of "
             "its authors and cannot review it: another member of the leadership must.")  # fmt: skip


def plan_refusal(user, plan: ServicePlan) -> str | None:
    """Why `user` may not review `plan` as leadership (said with the decision form and by decide_plan), or None when
    they may (plans_user_may_decide)."""
    if may_decide_plan(user, plan):
        return None
    if not access.can(user, Cap.APPROVE_KEY_ACCOUNTS):
        return str(NOT_ALLOWED)
    if user.pk in (plan.created_by_id, plan.submitted_by_id) or plan.items.filter(owner=user).exists():
        return own_plan_message()
    return edited_plan_message()


def in_plan_order(items):
    """Plan items in the order the plan shows them: by area as PlanArea lists the areas (product supply,
    technical support, after-sales, training, free services), then by deadline. The plan on the key-account
    page and the agreement's PDF both list items in this order."""
    rank = Case(*(When(area=value, then=Value(n)) for n, value in enumerate(PlanArea.values)),
                default=Value(len(PlanArea.values)))  # fmt: skip
    return items.order_by(rank, "deadline", "id")


def decide_plan(user, plan: ServicePlan, *, approve: bool, comment: str = "", otp_code: str = "",
                version: int | None = None) -> ServicePlan:  # fmt: skip
    """Leadership reviews a submitted plan (signed). An approved plan supersedes the one in force and its
    open items start their deadline clocks; a returned plan can be edited and submitted again."""
    access.require(user, Cap.APPROVE_KEY_ACCOUNTS)
    refusal = plan_refusal(user, plan)
    if refusal is not None:
        raise DecisionRefused(refusal)
    _check_version(plan, version)
    require_active(plan.account)
    if plan.status != PlanStatus.SUBMITTED:
        raise ValidationError(_("This plan is not waiting for a decision."))
    comment = _clean(comment)
    if not approve and not comment:
        raise ValidationError({"comment": [_("Say what must change.")]})
    meaning = signatures.Meaning.APPROVED if approve else signatures.Meaning.REJECTED
    signatures.verify(user, otp_code, meaning, plan)
    now = timezone.now()
    with transaction.atomic():
        # The plans first — the one decided and the one in force — then the audit chain (the signature's entry):
        # the order in which progress reports (update_progress) and the worker's overdue sweep take them. Taken the
        # other way round, a progress report holding the plan in force and waiting for the audit chain, and this
        # approval holding the chain and waiting for the plan, deadlocked on PostgreSQL. Held from here on, the
        # plan in force is read as it is once a sweep recording its overdue alerts has committed: the alerts
        # are carried into the new version, not sent again from it.
        list(plan.account.plans.select_for_update().filter(Q(pk=plan.pk) | Q(status=PlanStatus.APPROVED))
             .order_by("pk").values_list("pk", flat=True))  # fmt: skip
        require_active(plan.account)  # de-listed while this waited for the plans (the de-listing takes them too)
        sig = signatures.record(user, meaning, plan, reason=comment,
                                label=f"{plan.account.number} v{plan.version_number}")  # fmt: skip
        old = plan.status
        plan.status = PlanStatus.APPROVED if approve else PlanStatus.REJECTED
        plan.decided_by, plan.decided_at, plan.decision_comment, plan.signature = user, now, comment, sig
        if approve:
            # locked (above): progress reported on it meanwhile is either carried over or refused, never lost
            in_force = plan.account.plans.filter(status=PlanStatus.APPROVED).exclude(pk=plan.pk).first()
            handed = _carry_progress(in_force, plan) if in_force is not None else []
            for previous in plan.account.plans.filter(status=PlanStatus.APPROVED).exclude(pk=plan.pk):
                previous.status = PlanStatus.SUPERSEDED
                previous.save(update_fields=["status"])
                previous.items.update(next_check_at=None, claimed_until=None)
                audit.record(A.UPDATE, previous, user=user, changes={"status": [PlanStatus.APPROVED, PlanStatus.SUPERSEDED]})
            for item in plan.items.filter(status__in=OPEN_ITEM, overdue_notified_at__isnull=True):
                item.next_check_at = deadline_moment(item.deadline)
                item.save(update_fields=["next_check_at"])
        _save_versioned(plan, ["status", "decided_by", "decided_at", "decision_comment", "signature"], plan.version)
        audit.record(A.UPDATE, plan, user=user, changes={"status": [old, plan.status]}, signature_id=sig.pk)
        url = reverse("keyaccounts:account", args=[plan.account_id]) + "#plan"
        word = gettext_lazy("approved") if approve else gettext_lazy("returned for changes")
        title = Message(gettext_lazy("Service plan %(number)s v%(v)s was %(decision)s"), number=plan.account.number,
                        v=plan.version_number, decision=word)  # fmt: skip
        pms = [m.user for m in plan.account.members.filter(role=TeamRole.PROJECT_MANAGER).select_related("user")]
        told = pms + ([plan.created_by] if plan.created_by else [])
        _notify(told, "keyaccounts.plan", title, comment, url, plan)
        if approve:
            _tell_item_owners(plan, url, {u.pk for u in told})
            _tell_previous_owners(user, plan, handed, url)
    return plan


def _tell_item_owners(plan: ServicePlan, url: str, told: set[int]) -> None:
    """Once a plan version comes into force, each member who owns open items of it (and was not told of the
    approval already) hears which items they deliver and by when: until then only the project manager and the
    plan's author heard of it, and an owner first learned of an item from its overdue alert."""
    owned: dict[int, list[PlanItem]] = {}
    for item in in_plan_order(plan.items.filter(status__in=OPEN_ITEM).select_related("owner")):
        if item.owner_id not in told:
            owned.setdefault(item.owner_id, []).append(item)
    for items in owned.values():
        count = len(items)
        title = Message(ngettext_lazy("Service plan %(number)s v%(v)s is in force: you deliver %(count)d service item",
                                      "Service plan %(number)s v%(v)s is in force: you deliver %(count)d service items",
                                      count), number=plan.account.number, v=plan.version_number, count=count)  # fmt: skip
        body = [_item_aside(i.title, i.deadline.isoformat()) for i in items[:20]]  # joined in each reader's language
        _notify([items[0].owner], "keyaccounts.plan", title, body, url, plan)


def _item_aside(item: str, detail: str) -> Message:
    """A service item and a remark on it in a notification, bracketed as its reader's language writes brackets."""
    return Message(gettext_lazy("%(item)s (%(detail)s)"), item=item, detail=detail)


def _tell_previous_owners(user, plan: ServicePlan, handed: list[tuple[PlanItem, PlanItem]], url: str) -> None:
    """Once a version that gives open items of the plan in force to other owners comes into force, each member they
    were taken from hears which items are no longer theirs and who delivers them now (the new owners are told by
    _tell_item_owners). `handed` holds (item of the new version, the item of the old one it was copied from); the
    decider is not told of their own decision."""
    taken: dict[int, list[PlanItem]] = {}
    for item, source in handed:
        if item.status in OPEN_ITEM and item.owner_id != source.owner_id and source.owner_id != user.pk:
            taken.setdefault(source.owner_id, []).append(item)
    owners = {u.pk: u for u in User.objects.filter(pk__in=list(taken))}
    for owner_id, items in taken.items():
        items = list(in_plan_order(PlanItem.objects.filter(pk__in=[i.pk for i in items]).select_related("owner")))
        count = len(items)
        title = Message(ngettext_lazy(
            "Service plan %(number)s v%(v)s is in force: %(count)d service item you delivered was handed over",
            "Service plan %(number)s v%(v)s is in force: %(count)d service items you delivered were handed over",
            count), number=plan.account.number, v=plan.version_number, count=count)  # fmt: skip
        body = Message(gettext_lazy("Delivered now by: %(items)s"),
                       items=[_item_aside(i.title, str(i.owner)) for i in items[:20]])  # fmt: skip
        _notify([owners.get(owner_id)], "keyaccounts.plan", title, body, url, plan)


CARRIED = ["status", "progress", "progress_note", "completed_at", "overdue_notified_at"]
PROGRESS = CARRIED[:-1]  # a moved deadline or a new owner: the overdue alert starts afresh


def _item_key(item: PlanItem) -> tuple:
    return (item.area, item.title, item.owner_id, item.deadline)


def _started_before_links(plan: ServicePlan) -> bool:
    """Whether the draft was started before plan items carried the item they were copied from (migration
    keyaccounts 0005): only such a draft may hold copied items without the link."""
    from django.db.migrations.recorder import MigrationRecorder

    applied = (
        MigrationRecorder(transaction.get_connection()).migration_qs
        .filter(app="keyaccounts", name="0005_planitem_carried_from").values_list("applied", flat=True).first()
    )  # fmt: skip
    return applied is None or plan.created_at < applied


def _carry_progress(previous: ServicePlan, plan: ServicePlan) -> list[tuple[PlanItem, PlanItem]]:
    """A new version's items were copied from the plan in force when its draft was started; owners kept
    reporting progress on the plan in force meanwhile. On approval each copied item takes over its
    original's progress — whatever the draft changed in its title, standard, owner or deadline — so that
    nothing done is lost, and its overdue alert unless the deadline or the owner changed, so that nobody is
    told twice about the same overdue item and a new owner is told once. Items added to the draft, and items
    moved to another area, start afresh.

    Drafts started before items carried the link are matched by area, title, owner and deadline. A later
    draft whose copied items were all deleted is not one of them: what it holds was added, and starts afresh.

    Returns the items handed to another owner, each with the item it was copied from (_tell_previous_owners)."""
    old = {item.pk: item for item in previous.items.all()}
    items = list(plan.items.all())
    if any(item.carried_from_id for item in items) or not _started_before_links(plan):
        pairs = [(item, old[item.carried_from_id]) for item in items if item.carried_from_id in old]
    else:
        by_key: dict[tuple, list[PlanItem]] = {}
        for item in old.values():
            by_key.setdefault(_item_key(item), []).append(item)
        new: dict[tuple, list[PlanItem]] = {}
        for item in items:
            new.setdefault(_item_key(item), []).append(item)
        pairs = [(same[0], by_key[key][0]) for key, same in new.items() if len(same) == 1 and len(by_key.get(key, [])) == 1]
    changed, handed = [], []
    for item, source in pairs:
        if item.owner_id != source.owner_id:
            handed.append((item, source))
        if item.area != source.area:
            continue  # moved to another area: another commitment, which starts afresh
        # the overdue alert stays with the same deadline and owner; a new deadline or a new owner is told
        fields = CARRIED if (item.deadline, item.owner_id) == (source.deadline, source.owner_id) else PROGRESS
        if any(getattr(item, f) != getattr(source, f) for f in fields):
            for f in fields:
                setattr(item, f, getattr(source, f))
            changed.append(item)
    if changed:
        PlanItem.objects.bulk_update(changed, CARRIED)
    return handed


def deadline_moment(day: dt.date) -> dt.datetime:
    """An item is overdue once its deadline day has ended (local time)."""
    return timezone.make_aware(dt.datetime.combine(day + dt.timedelta(days=1), dt.time()))


def may_update_progress(user, item: PlanItem) -> bool:
    return item.owner_id == user.pk or may_manage(user, item.plan.account)


def require_progress_reporter(user, item: PlanItem) -> None:
    """The item's owner or whoever runs the account reports its progress — never the auditor."""
    if not may_update_progress(user, item) or user.roles & {Role.AUDITOR}:
        raise PermissionDenied(NOT_ALLOWED)


def update_progress(user, item: PlanItem, *, status: str, progress: int | None = None, note: str = "",
                    version: int | None = None) -> PlanItem:  # fmt: skip
    """The owner (or the project manager) reports progress on an item of the plan in force."""
    require_progress_reporter(user, item)
    require_active(item.plan.account)
    if item.plan.status != PlanStatus.APPROVED:
        raise ValidationError(_("Progress is reported on the plan in force."))
    _check_version(item, version)
    errors = {}
    if status not in ItemStatus.values:
        errors["status"] = [_("Choose a status.")]
    elif status == ItemStatus.CANCELLED and item.status != ItemStatus.CANCELLED and not may_manage(user, item.plan.account):
        # a commitment of the approved plan is dropped by the account's leaders (or a new plan version), not by
        # its owner: it would leave the overdue list and their scorecard
        errors["status"] = [_("Only the project manager or a manager may cancel an item of the plan in force.")]
    if progress is not None and not (0 <= int(progress) <= 100):
        errors["progress"] = [_("Progress is a percentage from 0 to 100.")]
    elif (item.status == ItemStatus.DONE and status in OPEN_ITEM
          and int(progress if progress is not None else item.progress) == 100):  # fmt: skip
        # reopened, it is not finished: kept at the 100 % that "done" gave it, the plan and the progress report
        # showed an open item as complete
        errors["progress"] = [_("A reopened item is not finished: give its progress, below 100 %.")]
    if errors:
        raise ValidationError(errors)
    # the note is part of the report: the one it replaces stays in the audit trail (as a trial offer's notes do)
    note = personal.restore_free_text(user, {"progress_note": note}, item, ("progress_note",))["progress_note"]
    before = {"status": item.status, "progress": item.progress, "progress_note": item.progress_note}
    after = {
        "status": status,
        "progress": 100 if status == ItemStatus.DONE else int(progress if progress is not None else item.progress),
        "progress_note": _clean(note) or item.progress_note,
    }
    changes = audit.diff(before, after)
    if not changes:
        # the same report sent again (a double click, the page saved unchanged): no change, no version, no entry
        return item
    was_done = item.status == ItemStatus.DONE
    item.status, item.progress, item.progress_note = after["status"], after["progress"], after["progress_note"]
    now = timezone.now()
    if status in OPEN_ITEM:
        item.completed_at = None
        item.next_check_at = None if item.overdue_notified_at else deadline_moment(item.deadline)
    else:
        # a done item saved again (a note added) keeps the day it was done: restamped, work delivered on time
        # would count late on the scorecard and in the evaluation
        if status != ItemStatus.DONE:
            item.completed_at = None
        elif not (was_done and item.completed_at):
            item.completed_at = now
        item.next_check_at = None
    with transaction.atomic():
        # the plan may have been superseded since the item was read: what is reported there would be lost
        if not ServicePlan.objects.select_for_update().filter(pk=item.plan_id, status=PlanStatus.APPROVED).exists():
            raise ValidationError(_("A new version of this service plan came into force meanwhile: report the "
                                    "progress on it."))  # fmt: skip
        require_active(item.plan.account)  # de-listed while this report waited for the plan: the file is closed
        _save_versioned(item, ["status", "progress", "progress_note", "completed_at", "next_check_at"], item.version)
        audit.record(A.UPDATE, item, user=user, changes=changes)
    return item


def sweep_plan_items(now: dt.datetime | None = None, limit: int = 500) -> int:
    """The worker: each open item of a plan in force that passed its deadline is reported overdue once, to
    its owner, the account's project manager and the managers. Leases through core/dueclock."""
    now = now or timezone.now()
    ids = dueclock.claim_batch(PlanItem, dueclock.due_ids(PlanItem, now, limit=limit), now)
    told = 0
    for item in PlanItem.objects.filter(pk__in=ids).select_related("plan__account__institution", "owner"):
        with transaction.atomic():
            # the item's plan first, then the item: the order of decide_plan (and of progress reports). A new version
            # approved meanwhile waits here until this alert is recorded, then carries it over (the item is not
            # alerted again from the new version); one approved first has superseded this plan, whose items are
            # no longer watched (the new version's copy is alerted instead). The audit chain is taken last, once the
            # alert is stored: after the plan, as decide_plan and progress reports take it.
            plan_status = ServicePlan.objects.select_for_update().values_list("status", flat=True).get(pk=item.plan_id)
            fresh = PlanItem.objects.select_for_update().get(pk=item.pk)
            due = (fresh.status in OPEN_ITEM and plan_status == PlanStatus.APPROVED
                   and fresh.plan.account.status == AccountStatus.ACTIVE and fresh.overdue_notified_at is None)  # fmt: skip
            if due and fresh.deadline < timezone.localtime(now).date():
                account = item.plan.account
                pms = [m.user for m in account.members.filter(role=TeamRole.PROJECT_MANAGER).select_related("user")]
                managers = list(User.objects.filter(is_active=True, groups__name=Role.MANAGER))
                title = Message(gettext_lazy("Overdue service item for %(name)s: %(title)s"),
                                name=account.institution.name, title=item.title)  # fmt: skip
                body = Message(gettext_lazy("Deadline %(date)s; owner %(owner)s."), date=item.deadline.isoformat(),
                               owner=str(item.owner))  # fmt: skip
                url = reverse("keyaccounts:account", args=[account.pk]) + "#plan"
                _notify([item.owner, *pms, *managers], "keyaccounts.overdue", title, body, url, item)
                fresh.overdue_notified_at = now
                told += 1
            fresh.next_check_at = None
            fresh.claimed_until = None
            fresh.save(update_fields=["overdue_notified_at", "next_check_at", "claimed_until"])
            if fresh.overdue_notified_at == now:
                _audit_alert(fresh, "overdue_notified_at", now)
    return told


def _audit_alert(obj, field: str, now: dt.datetime) -> None:
    """The worker's stamp of an alert sent (overdue, renewal) in the audit trail, as a change by the system: in
    the alert's own transaction, so that an alert is never recorded without its entry, nor the other way round."""
    audit.record(A.UPDATE, obj, changes={field: [None, now]}, actor_name="system")


def sweep_meeting_actions(now: dt.datetime | None = None, limit: int = 500) -> int:
    """The worker: each open meeting action of an account served whose due day has ended is reported overdue once,
    to the people a plan item's alert tells — its owner, the account's project manager and the managers. Leases
    through core/dueclock; the alert and its record commit together, so a killed worker's lease runs out and the
    action is alerted by the next sweep, never twice, and of two workers one wins each action."""
    now = now or timezone.now()
    ids = dueclock.claim_batch(MeetingAction, dueclock.due_ids(MeetingAction, now, limit=limit), now)
    told = 0
    for action in MeetingAction.objects.filter(pk__in=ids).select_related("meeting__account__institution"):
        with transaction.atomic():
            # the account first, then the action: the order of edit_action, record_meeting and the de-listing, so
            # that an action handed over or a file closed meanwhile is read as it is once that has committed
            account = KeyAccount.objects.select_for_update().select_related("institution").get(
                pk=action.meeting.account_id)
            fresh = MeetingAction.objects.select_for_update().select_related("owner").get(pk=action.pk)
            watched = (fresh.done_at is None and account.status == AccountStatus.ACTIVE
                       and fresh.overdue_notified_at is None)  # fmt: skip
            fresh.next_check_at = None
            if watched and fresh.due_date < timezone.localtime(now).date():
                pms = [m.user for m in account.members.filter(role=TeamRole.PROJECT_MANAGER).select_related("user")]
                managers = list(User.objects.filter(is_active=True, groups__name=Role.MANAGER))
                title = Message(gettext_lazy("Overdue meeting action for %(name)s: %(title)s"),
                                name=account.institution.name, title=fresh.title)  # fmt: skip
                body = Message(gettext_lazy("Due %(date)s; owner %(owner)s; from the meeting “%(meeting)s”."),
                               date=fresh.due_date.isoformat(), owner=str(fresh.owner),
                               meeting=action.meeting.title)  # fmt: skip
                url = reverse("keyaccounts:account", args=[account.pk]) + "#meetings"
                _notify([fresh.owner, *pms, *managers], "keyaccounts.overdue", title, body, url, fresh)
                fresh.overdue_notified_at = now
                told += 1
            elif watched:
                fresh.next_check_at = deadline_moment(fresh.due_date)  # its due date was moved on meanwhile
            fresh.claimed_until = None
            fresh.save(update_fields=["overdue_notified_at", "next_check_at", "claimed_until"])
            if fresh.overdue_notified_at == now:
                _audit_alert(fresh, "overdue_notified_at", now)
    return told


# --- agreements ------------------------------------------------------------------------------------------


def _renewal_moment(agreement: Agreement) -> dt.datetime:
    """When the renewal reminder goes out: `renewal_notice_days` before the end the agreement will have once an
    amendment waiting for its day applies (amendments.reminded_end), else before its end."""
    day = amendments.reminded_end(agreement) - dt.timedelta(days=agreement.renewal_notice_days)
    return timezone.make_aware(dt.datetime.combine(day, dt.time(9)))


def _expiry_moment(agreement: Agreement) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(agreement.end_date + dt.timedelta(days=1), dt.time()))


def _start_moment(agreement: Agreement) -> dt.datetime:
    """The first moment of the agreement's term (its start day, China time): when a renewal signed ahead of time takes
    over from the agreements it renews."""
    return timezone.make_aware(dt.datetime.combine(agreement.start_date, dt.time()))


def _renewed_by(agreement: Agreement):
    """The signed agreements of the account that `agreement` renews: those whose term began before its own, and any of
    an earlier plan version (its plan replaced theirs, whatever the dates)."""
    return agreement.account.agreements.filter(
        Q(start_date__lt=agreement.start_date) | Q(plan__version_number__lt=agreement.plan.version_number),
        status=AgreementStatus.SIGNED,
    ).exclude(pk=agreement.pk)  # fmt: skip


def _renewing(agreement: Agreement, today: dt.date):
    """The signed agreements of the account that renew `agreement` and whose term has begun by `today` (the converse
    of _renewed_by)."""
    return agreement.account.agreements.filter(
        Q(start_date__gt=agreement.start_date) | Q(plan__version_number__gt=agreement.plan.version_number),
        status=AgreementStatus.SIGNED, start_date__lte=today,
    ).exclude(pk=agreement.pk)  # fmt: skip


def _renewal_reached(agreement: Agreement, end: dt.date):
    """The signed renewal of `agreement` (of its account, its term beginning later or of a later plan version, not
    begun yet: the agreement would be renewed already) whose term an amendment ending on `end` would reach into — the
    earliest such; None when the new end keeps clear of every one, or does not move later (an end already within a
    renewal's term, which takes over on its start day, is only ever shortened)."""
    if end <= agreement.end_date:
        return None
    return agreement.account.agreements.filter(
        Q(start_date__gt=agreement.start_date) | Q(plan__version_number__gt=agreement.plan.version_number),
        status=AgreementStatus.SIGNED, start_date__lte=end,
    ).exclude(pk=agreement.pk).order_by("start_date", "pk").first()  # fmt: skip


def _mark_renewed(earlier_ones, user=None, renewal: Agreement | None = None) -> None:
    """The agreements a renewal whose term has begun takes over from go out of force, under their locks and with a new
    version: a form opened before (a better scan) is refused, not bringing one back in force. An amendment of theirs
    still waiting for its day lapses, renewed by `renewal` (amendments.lapse)."""
    for earlier in earlier_ones.select_for_update().order_by("pk"):
        amendments.lapse(earlier, SERVICE_TERMS, amendments.LapseCause.RENEWED, user=user, renewal=renewal)
        earlier.status, earlier.next_check_at = AgreementStatus.RENEWED, None
        earlier.version += 1
        earlier.save(update_fields=["status", "next_check_at", "version"])
        who = {"user": user} if user is not None else {"actor_name": "system"}
        audit.record(A.UPDATE, earlier, changes={"status": [AgreementStatus.SIGNED, earlier.status]}, **who)


def overlapping_agreement(plan: ServicePlan, start: dt.date, end: dt.date, today: dt.date | None = None,
                          exclude: Agreement | None = None):  # fmt: skip
    """An agreement of the same plan version whose term overlaps start–end and which is issued and not signed
    yet, or signed and still in force; None when there is none (a renewal's term starts after theirs). `exclude`: the
    agreement whose own term is changed."""
    today = today or timezone.localdate()
    return (
        Agreement.objects.filter(plan=plan, status__in=[AgreementStatus.DRAFT, AgreementStatus.SIGNED],
                                 start_date__lte=end, end_date__gte=start)
        .exclude(status=AgreementStatus.SIGNED, end_date__lt=today)
        .exclude(pk=getattr(exclude, "pk", None))
        .order_by("start_date", "id").first()
    )  # fmt: skip


def default_agreement_term(account: KeyAccount, today: dt.date | None = None) -> tuple[dt.date, dt.date]:
    """The term the agreement form proposes: the approved plan's validity when it has one (from today if it
    started more than a year ago), else a year from today; after an agreement of the plan that is issued or
    in force, the renewal: the same length from the day after it ends."""
    today = today or timezone.localdate()
    plan = current_plan(account)
    if plan is not None and plan.valid_from and plan.valid_to and plan.valid_from < plan.valid_to and (
        plan.valid_to >= today
    ):
        start, end = max(plan.valid_from, today - dt.timedelta(days=365)), plan.valid_to
    else:
        start = today
        end = dt.date(today.year + 1, 2, 28) if (today.month, today.day) == (2, 29) else \
            today.replace(year=today.year + 1) - dt.timedelta(days=1)  # fmt: skip
    latest = None
    if plan is not None:
        latest = (Agreement.objects.filter(plan=plan, status__in=[AgreementStatus.DRAFT, AgreementStatus.SIGNED],
                                           end_date__gte=today).order_by("-end_date").first())  # fmt: skip
    if latest is not None and latest.end_date >= start:
        # the same length: a term of whole months or years renews for as many (a year is a year, across 29
        # February too); any other term for as many days
        months, days = _calendar_length(start, end + dt.timedelta(days=1))
        length = end - start
        start = latest.end_date + dt.timedelta(days=1)
        end = _months_later(start, months) - dt.timedelta(days=1) if months and not days else start + length
    if plan is not None and plan.valid_from and start < plan.valid_from:  # a plan valid from a later day: from then
        start, end = plan.valid_from, max(end, plan.valid_from + (end - start))
    if plan is not None and plan.valid_to and end > plan.valid_to >= start:
        end = plan.valid_to  # a renewal runs to the end of the plan's validity at most (`generate_agreement`)
    return start, end


def _term_errors(start_date, end_date, renewal_notice_days, today: dt.date, *, start_window: bool = True) -> dict:
    """An agreement's term as generating it checks it, per field: both days given, the start within a year back and two
    years ahead (`start_window`), the end after the start and at most ten years on, the renewal reminder (days before
    the end) between 0 and 365 and after the start."""
    errors = {}
    if not isinstance(start_date, dt.date):
        errors["start_date"] = [_("Give the start date.")]
    elif start_window and not (today - dt.timedelta(days=366) <= start_date <= today + dt.timedelta(days=366 * 2)):
        errors["start_date"] = [_("The start lies within a year back and two years ahead.")]
    if not isinstance(end_date, dt.date):
        errors["end_date"] = [_("Give the end date.")]
    elif isinstance(start_date, dt.date) and end_date <= start_date:
        errors["end_date"] = [_("The end must come after the start.")]
    elif isinstance(start_date, dt.date) and end_date > start_date + dt.timedelta(days=366 * 10):
        errors["end_date"] = [_("An agreement runs for at most ten years.")]
    if not (0 <= int(renewal_notice_days or 0) <= 365):
        errors["renewal_notice_days"] = [_("Remind between 0 and 365 days before the end.")]
    elif isinstance(start_date, dt.date) and isinstance(end_date, dt.date) and "end_date" not in errors and (
        (end_date - start_date).days < int(renewal_notice_days or 0)
    ):
        errors["renewal_notice_days"] = [_("The reminder would come before the agreement starts.")]
    return errors


def _within_validity(plan: ServicePlan | None, start_date, end_date) -> dict:
    """An agreement's term lies within its plan's validity (an open side of the validity leaves that side free): the
    agreement is the plan's commitments, which hold from its validity's start to its end. The fields refused."""
    errors = {}
    if plan is None:
        return errors
    if plan.valid_to and isinstance(start_date, dt.date) and start_date > plan.valid_to:
        errors["start_date"] = [_("The service plan in force is valid until %(date)s: approve a new version of the "
                                  "plan (with its new validity) to renew the agreement after it.")
                                % {"date": plan.valid_to.isoformat()}]  # fmt: skip
    elif plan.valid_from and isinstance(start_date, dt.date) and start_date < plan.valid_from:
        errors["start_date"] = [_("The agreement starts within its service plan's validity: on %(date)s or later.")
                                % {"date": plan.valid_from.isoformat()}]  # fmt: skip
    if plan.valid_to and isinstance(end_date, dt.date) and end_date > plan.valid_to and "start_date" not in errors:
        errors["end_date"] = [_("The agreement ends within its service plan's validity: on %(date)s or before.")
                              % {"date": plan.valid_to.isoformat()}]  # fmt: skip
    return errors


def _months_later(day: dt.date, months: int) -> dt.date:
    """The same day `months` later; the first of the month after when that month has no such day (so that a term
    ends the day before: a year from 29 February 2028 ends on 28 February 2029, a month from 31 January on 28/29
    February)."""
    import calendar

    year, month = divmod(day.month - 1 + months, 12)
    year, month = day.year + year, month + 1
    if day.day > calendar.monthrange(year, month)[1]:
        return dt.date(year + month // 12, month % 12 + 1, 1)
    return day.replace(year=year, month=month)


def _calendar_length(start: dt.date, stop: dt.date) -> tuple[int, int]:
    """(whole months, remaining days) from start to stop: 2026-07-30 → 2027-07-30 is (12, 0)."""
    months = max((stop.year - start.year) * 12 + stop.month - start.month, 0)
    while months > 0 and _months_later(start, months) > stop:
        months -= 1
    return months, (stop - _months_later(start, months)).days


def generate_agreement(user, account: KeyAccount, *, start_date: dt.date, end_date: dt.date,
                       renewal_notice_days: int = 60) -> Agreement:  # fmt: skip
    """A numbered agreement (AG-YYYY-NNNN) from the plan in force, with its bilingual PDF made and kept now:
    every copy downloaded later is this document (`agreement_document`)."""
    require_manage(user, account)
    require_active(account)
    plan = current_plan(account)
    errors = {}
    if plan is None:
        errors["plan"] = [_("An agreement is generated from an approved service plan; this account has none yet.")]
    today = timezone.localdate()
    for field, messages in _term_errors(start_date, end_date, renewal_notice_days, today).items():
        errors.setdefault(field, messages)
    for field, messages in _within_validity(plan, start_date, end_date).items():
        errors.setdefault(field, messages)
    if errors:
        raise ValidationError(errors)
    now = timezone.now()
    with transaction.atomic():
        # one generation at a time per account (a double click): the second one sees the first one's agreement
        KeyAccount.objects.select_for_update().filter(pk=account.pk).first()
        clash = overlapping_agreement(plan, start_date, end_date, today)
        if clash is not None:
            raise ValidationError({"start_date": [_(
                "Agreement %(number)s (%(status)s) already covers this plan version from %(start)s to %(end)s: "
                "record its signing or issue it again rather than generating another one. A renewal starts "
                "after %(end)s."
            ) % {"number": clash.number, "status": clash.get_status_display(), "start": clash.start_date.isoformat(),
                 "end": clash.end_date.isoformat()}]})  # fmt: skip
        agreement = Agreement.objects.create(
            number=_number("AG", now), account=account, plan=plan, start_date=start_date, end_date=end_date,
            renewal_notice_days=int(renewal_notice_days), created_by=user, created_at=now,
        )  # fmt: skip
        path = _issue(agreement)  # the PDF is made once, now; a failure leaves no agreement behind
        try:
            audit.record(A.CREATE, agreement, user=user, changes={
                "number": [None, agreement.number], "plan": [None, plan.pk], "start_date": [None, start_date],
                "end_date": [None, end_date], "document_sha256": [None, agreement.document_sha256]})  # fmt: skip
        except BaseException:
            path.unlink(missing_ok=True)
            raise
    return agreement


class DocumentUnavailable(Exception):
    """The issued PDF of an agreement is missing or was altered; the message says so, for the user."""


def _issue(agreement: Agreement) -> Path:
    """Render the agreement's PDF and keep it as its document (in the caller's transaction); the file."""
    from . import agreement_pdf

    return _keep_document(agreement, agreement_pdf.render, f"{agreement.number}-issued")


def _keep_document(obj, render, stem: str) -> Path:
    """Render `obj`'s PDF (an agreement, an amendment) and keep it as its `document`, with its SHA-256 (and, for an
    agreement, the moment it was issued), in the caller's transaction; the file."""
    try:
        data = render(obj)
    except RuntimeError as e:  # no PDF font on this machine: say so, make nothing
        raise ValidationError(str(e)) from None
    path = agreements_dir() / f"{stem}-{uuid.uuid4().hex}.pdf"
    partial = path.with_name(path.name + ".part")
    try:
        partial.write_bytes(data)
        partial.replace(path)
        fields = {"document": path.name, "document_sha256": hashlib.sha256(data).hexdigest()}
        if isinstance(obj, Agreement):
            fields["issued_at"] = timezone.now()
        for name, value in fields.items():
            setattr(obj, name, value)
        type(obj).objects.filter(pk=obj.pk).update(**fields)
    except BaseException:
        partial.unlink(missing_ok=True)
        path.unlink(missing_ok=True)
        raise
    return path


def agreement_document(agreement: Agreement) -> bytes:
    """The agreement's PDF as issued, checked against its fingerprint. An agreement generated before
    documents were kept (no `document`) is rendered from its plan as before."""
    if not agreement.document:
        from . import agreement_pdf

        return agreement_pdf.render(agreement)
    try:
        return _kept_document(agreement)
    except DocumentUnavailable:
        # issued again since `agreement` was read (the copy it names was replaced): the copy issued now
        issued = (agreement.document, agreement.document_sha256)
        agreement.refresh_from_db(fields=["document", "document_sha256", "issued_at", "version"])
        if (agreement.document, agreement.document_sha256) == issued or not agreement.document:
            raise
        return _kept_document(agreement)


def _checked_file(agreement: Agreement, name: str, sha256: str, missing, altered,
                  folder: Path | None = None) -> tuple[bytes, Path]:  # fmt: skip
    """A kept file of the agreement (or of an amendment: anything with a `number`), read from `folder` (the agreements')
    and checked against the SHA-256 taken when it was stored: missing or changed since, it is reported
    (DocumentUnavailable) with these messages, never handed out."""
    path = (folder or agreements_dir()) / Path(name).name
    try:
        data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        raise DocumentUnavailable(missing % {"number": agreement.number}) from None
    if sha256 and hashlib.sha256(data).hexdigest() != sha256:
        log.error("agreement %s: the kept file %s does not match its SHA-256 %s", agreement.number, path, sha256)
        raise DocumentUnavailable(altered % {"number": agreement.number})
    return data, path


def _kept_document(agreement: Agreement) -> bytes:
    return _checked_file(
        agreement, agreement.document, agreement.document_sha256,
        _("The issued copy of agreement %(number)s is missing from the storage. Restore it from a backup: it "
          "is not generated again, so that only one version of the document exists."),
        _("The issued copy of agreement %(number)s does not match its fingerprint: it was changed outside "
          "PharmaCRM. Restore it from a backup."),
    )[0]  # fmt: skip


def signed_copy_data(agreement: Agreement) -> tuple[bytes, str]:
    """The signed copy as it was uploaded, checked against the SHA-256 taken then, and its stored extension: a copy
    missing from the storage or changed since is reported (DocumentUnavailable), never handed out as the signed
    contract. The caller makes sure there is one (`agreement.signed_copy`)."""
    data, path = _checked_file(
        agreement, agreement.signed_copy, agreement.signed_copy_sha256,
        _("The signed copy of agreement %(number)s is missing from the storage. Restore it from a backup."),
        _("The signed copy of agreement %(number)s does not match its fingerprint: it was changed outside "
          "PharmaCRM. Restore it from a backup."),
    )  # fmt: skip
    return data, path.suffix


def replaced_plan_message() -> str:
    """Why a draft agreement whose plan version was replaced is neither signed nor issued again."""
    return _("This agreement was generated from a plan version that has been replaced: generate the agreement "
             "again from the plan in force.")  # fmt: skip


def plan_replaced(agreement: Agreement) -> bool:
    """Whether a draft agreement's plan version is no longer the one in force (a newer version was approved since
    it was generated): its services no longer hold, so it is neither signed nor issued again. Reads the plan as
    loaded with the agreement (the services check it again as stored)."""
    return agreement.status == AgreementStatus.DRAFT and agreement.plan.status != PlanStatus.APPROVED


def reissue_document(user, agreement: Agreement, *, version: int | None = None) -> Agreement:
    """Issue a draft agreement's PDF again from its plan version and the customer record as they are now (a
    corrected address, a renamed owner). A signed agreement keeps the document that was signed; a draft from
    before documents were kept gets its first kept copy. A draft whose plan version was replaced by a newer one
    is not issued again (replaced_plan_message): the document would offer services no longer in force."""
    require_manage(user, agreement.account)
    require_active(agreement.account)
    _check_version(agreement, version)
    if agreement.status != AgreementStatus.DRAFT:
        raise ValidationError(_("Only an agreement that is not signed yet can be issued again."))
    if not ServicePlan.objects.filter(pk=agreement.plan_id, status=PlanStatus.APPROVED).exists():
        raise ValidationError(replaced_plan_message())
    old_name, old_digest = agreement.document, agreement.document_sha256
    with transaction.atomic():
        # the account, then the agreement, then its plan: the order the signing (record_signed) takes them in. Taking
        # the plan first, an issue and a signing of the same draft at once deadlocked on PostgreSQL
        KeyAccount.objects.select_for_update().filter(pk=agreement.account_id).first()
        list(Agreement.objects.select_for_update().filter(pk=agreement.pk).values_list("pk", flat=True))
        # the plan as it is now, held while the document is made: a newer version approved meanwhile (decide_plan takes
        # the plan in force first too) either waits for this issue or has replaced the plan, and this is refused
        if not ServicePlan.objects.select_for_update().filter(pk=agreement.plan_id, status=PlanStatus.APPROVED).exists():
            raise ValidationError(replaced_plan_message())
        path = _issue(agreement)
        try:
            _save_versioned(agreement, ["document", "document_sha256", "issued_at"], agreement.version)
            audit.record(A.UPDATE, agreement, user=user, changes={"document_sha256": [old_digest or None,
                         agreement.document_sha256]}, reissued=True)  # fmt: skip
        except BaseException:
            path.unlink(missing_ok=True)
            raise
    if old_name:
        (agreements_dir() / Path(old_name).name).unlink(missing_ok=True)
    return agreement


def agreements_shown(account_ids, today: dt.date | None = None) -> dict[int, Agreement]:
    """Per account, the agreement its summaries show (the key-account list, a customer's key-account block, the
    progress report): the signed agreement whose term covers today; else the next signed one (the earliest to start
    after today); else the latest one generated. A renewal generated or signed ahead of time does not hide the
    agreement the customer is served under (one query)."""
    today = today or timezone.localdate()
    latest: dict[int, Agreement] = {}
    upcoming: dict[int, Agreement] = {}
    in_force: dict[int, Agreement] = {}
    for ag in Agreement.objects.filter(account_id__in=list(account_ids)).order_by("created_at", "id"):
        latest[ag.account_id] = ag
        if ag.status != AgreementStatus.SIGNED:
            continue
        if ag.start_date <= today <= ag.end_date:
            in_force[ag.account_id] = ag
        elif ag.start_date > today and (
            ag.account_id not in upcoming or ag.start_date < upcoming[ag.account_id].start_date
        ):
            upcoming[ag.account_id] = ag
    return {**latest, **upcoming, **in_force}


def agreements_dir() -> Path:
    path = Path(settings.VAR_DIR) / "agreements"
    path.mkdir(parents=True, exist_ok=True)
    return path


# what record_signed and _issue write: AG-2026-0001-<uuid>.pdf, AG-2026-0001-issued-<uuid>.pdf (and its .part); an
# amendment's signed copy and PDF (amend_term): AG-2026-0001-amendment-<uuid>.pdf, AG-2026-0001-amendment-issued-<uuid>.pdf
KEPT_FILE = re.compile(r"AG-\d{4}-\d+-(?:amendment-)?(?:issued-)?[0-9a-f]{32}\.(?:pdf|png|jpg)(?:\.part)?")
ORPHAN_AGE = dt.timedelta(days=1)


def sweep_orphaned_files(now: dt.datetime | None = None) -> int:
    """The worker: delete the signed copies and issued PDFs that no agreement names, once a day old. The file is
    written before the transaction that records it; a worker or web process killed in between left it behind.
    Named means the copy in force, the issued document, an amendment's signed copy or PDF, or a replaced signed copy
    that an audit entry of its agreement names (those stay archived). A file younger than a day may be an upload still under way. One audit
    entry per sweep that deleted something, with the count and the names. Returns how many."""
    now = now or timezone.now()
    cutoff = (now - ORPHAN_AGE).timestamp()
    folder = agreements_dir()
    old = []
    for path in folder.iterdir():
        try:
            if KEPT_FILE.fullmatch(path.name) and path.is_file() and path.stat().st_mtime < cutoff:
                old.append(path)
        except FileNotFoundError:  # deleted meanwhile (a draft issued again)
            continue
    if not old:
        return 0
    # read after the listing: a file recorded meanwhile is named here
    named = {
        Path(n).name for pair in Agreement.objects.values_list("signed_copy", "document") for n in pair if n
    }
    named |= {Path(n).name for pair in AgreementAmendment.objects.values_list("signed_copy", "document")
              for n in pair if n}  # fmt: skip
    history = AuditEntry.objects.filter(object_type="keyaccounts.agreement").values_list("changes", "extra")
    for changes, extra in history.iterator():
        named.update(_file_names(changes), _file_names(extra))
    gone = []
    for path in old:
        if path.name not in named:
            path.unlink(missing_ok=True)
            gone.append(path.name)
    if gone:
        log.warning("agreements: %d file(s) no agreement names deleted: %s", len(gone), ", ".join(gone))
        audit.record(A.DELETE, ("keyaccounts.agreement", "", str(len(gone))), actor_name="worker",
                     count=len(gone), files=sorted(gone))  # fmt: skip
    return len(gone)


def _file_names(value, kept: re.Pattern = KEPT_FILE) -> set[str]:
    """Every kept file's name (of the pattern `kept`) an audit entry's changes or details hold, at any depth."""
    if isinstance(value, str):
        return {Path(value).name} if kept.fullmatch(Path(value).name) else set()
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return {name for item in items for name in _file_names(item, kept)}


def issued_on(agreement: Agreement) -> dt.date:
    """The day the agreement's document was issued (generated, or issued again while a draft)."""
    return timezone.localtime(agreement.issued_at or agreement.created_at).date()


def record_signed(user, agreement: Agreement, *, signed_date: dt.date, upload, version: int | None = None) -> Agreement:
    """Record the signing: the date and the scanned signed copy (PDF, PNG or JPEG, at most 20 MB, type
    checked from the content), neither before the agreement was issued nor in the future. The renewal
    reminder clock starts. A signed agreement of the account whose term began earlier (or of an earlier plan version)
    counts as renewed once this one's term has begun: at once when it has, else on its start day (sweep_agreements).
    Until then it stays signed and in force — a renewal signed months ahead does not end the agreement the customer
    is served under."""
    require_manage(user, agreement.account)
    require_active(agreement.account)
    _check_version(agreement, version)
    errors = {}
    if agreement.status not in (AgreementStatus.DRAFT, AgreementStatus.SIGNED):
        errors["status"] = [_("This agreement has expired or been renewed.")]
    elif agreement.status == AgreementStatus.DRAFT and getattr(current_plan(agreement.account), "pk", None) != (
        agreement.plan_id
    ):
        # its plan was replaced by a newer version: the customer would sign services that no longer hold
        errors["status"] = [replaced_plan_message()]
    if not isinstance(signed_date, dt.date):
        errors["signed_date"] = [_("Give the date it was signed.")]
    elif signed_date > timezone.localdate():
        errors["signed_date"] = [_("The signing date cannot be in the future.")]
    elif signed_date < issued_on(agreement):
        errors["signed_date"] = [_("The signing date cannot lie before the agreement was issued (%(date)s).")
                                 % {"date": issued_on(agreement).isoformat()}]  # fmt: skip
    elif signed_date > agreement.end_date:  # signed after its term: it would expire the moment it is recorded
        errors["signed_date"] = [_("The signing date cannot lie after the agreement's end (%(date)s): generate an "
                                   "agreement for the term that was signed.")
                                 % {"date": agreement.end_date.isoformat()}]  # fmt: skip
    if upload is None:
        errors["signed_copy"] = [_("Upload the signed copy.")]
    elif upload.size is not None and upload.size > SIGNED_COPY_MAX:
        errors["signed_copy"] = [_("The file is too large; the limit is 20 MB.")]
    if errors:
        raise ValidationError(errors)
    path, copy_name, copy_sha256 = uploads.keep_scan(
        "signed_copy", upload, agreements_dir(), agreement.number,
        wrong_type=_("Upload the signed copy as a PDF, PNG or JPEG file."))  # fmt: skip
    try:
        with transaction.atomic():
            # the account first, as the de-listing takes it before the agreements: taking this agreement and then the
            # earlier ones it renews, against a de-listing ending them in the other order, deadlocked on PostgreSQL.
            # Under it the file is read as it is now: de-listed meanwhile, the signing is refused.
            KeyAccount.objects.select_for_update().filter(pk=agreement.account_id).first()
            require_active(agreement.account)
            # the reminder the worker may have sent since the page was read (it leaves the version alone): the
            # clock goes on from the row as it is now, under its lock
            agreement.renewal_notified_at = (
                Agreement.objects.select_for_update().values_list("renewal_notified_at", flat=True).get(pk=agreement.pk)
            )
            # its plan version as it is now, held: a newer version approved meanwhile (decide_plan holds the plans
            # while it replaces one) has replaced it, and the signing of a draft of it is refused, as above
            if agreement.status == AgreementStatus.DRAFT and not ServicePlan.objects.select_for_update().filter(
                pk=agreement.plan_id, status=PlanStatus.APPROVED
            ).exists():
                raise ValidationError({"status": [replaced_plan_message()]})
            old, old_date = agreement.status, agreement.signed_date
            old_copy, old_copy_sha256 = agreement.signed_copy, agreement.signed_copy_sha256
            agreement.status, agreement.signed_date = AgreementStatus.SIGNED, signed_date
            agreement.signed_copy, agreement.signed_copy_sha256 = path.name, copy_sha256
            agreement.signed_copy_name = copy_name
            _arm_clock(agreement, user)
            _save_versioned(agreement, ["status", "signed_date", "signed_copy", "signed_copy_sha256",
                                        "signed_copy_name", "next_check_at"], agreement.version)  # fmt: skip
            changes = {"status": [old, agreement.status], "signed_date": [old_date, signed_date]}
            if old_copy:
                # a better scan: the copy it replaces stays archived in var/agreements/ (a signed copy is never
                # deleted), and this entry names it and its fingerprint, so that no file is left nobody points to
                changes |= {"file": [old_copy, agreement.signed_copy],
                            "sha256": [old_copy_sha256, agreement.signed_copy_sha256]}  # fmt: skip
            audit.record(A.UPDATE, agreement, user=user, changes=changes, sha256=agreement.signed_copy_sha256,
                         document_sha256=agreement.document_sha256)  # fmt: skip
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return agreement


def _arm_clock(agreement: Agreement, user) -> None:
    """A signed agreement's next look by the worker (sweep_agreements), from its term as it is now (signed, or amended
    since): the renewal reminder, or (reminded already) the expiry after the end. The agreements it renews
    (_renewed_by) go out of force from the day its term begins: begun already, now; else they stay in force and the
    worker looks again on its start day. Under the account's and the agreement's locks; the caller saves it."""
    agreement.next_check_at = (
        _renewal_moment(agreement) if agreement.renewal_notified_at is None else _expiry_moment(agreement)
    )
    earlier_ones = _renewed_by(agreement)
    if agreement.start_date <= timezone.localdate():
        _mark_renewed(earlier_ones, user, renewal=agreement)
    elif earlier_ones.exists():
        agreement.next_check_at = min(agreement.next_check_at, _start_moment(agreement))
        # signed ahead of its start: an amendment of an agreement it renews that would stretch that one's term into
        # this one's lapses now (the renewal supersedes it); one that keeps clear of it applies on its day
        for earlier in earlier_ones.select_for_update().order_by("pk"):
            amendments.lapse(earlier, SERVICE_TERMS, amendments.LapseCause.RENEWED, user=user, renewal=agreement,
                             overlapping=(agreement.start_date, agreement.end_date))  # fmt: skip
    _look_when_amended(agreement)


def lapsing_on_delisting(proposal: Proposal) -> list:
    """The amendments waiting for their day that approving the de-listing `proposal` makes lapse (_close_account: the
    agreements in force end), for the decision form to say so beforehand."""
    if proposal.kind != ProposalKind.DELIST or proposal.account_id is None:
        return []
    today = timezone.localdate()
    found = []
    for agreement in Agreement.objects.filter(account_id=proposal.account_id, status=AgreementStatus.SIGNED).order_by("pk"):
        found += amendments.lapsing(agreement, today=today)
    return found


def lapsing_on_signing(agreement: Agreement) -> list:
    """The amendments waiting for their day that recording the signing of `agreement` (a renewal) would make lapse
    (_arm_clock): of the agreements it renews, those whose new term overlaps its own (every one once its term has
    begun). For the signing form to say so beforehand."""
    if agreement.status != AgreementStatus.DRAFT:
        return []
    today = timezone.localdate()
    overlapping = None if agreement.start_date <= today else (agreement.start_date, agreement.end_date)
    found = []
    for earlier in _renewed_by(agreement).order_by("pk"):
        found += amendments.lapsing(earlier, overlapping=overlapping, today=today)
    return found


def _look_when_amended(agreement: Agreement) -> None:
    """An amendment signed ahead of its effective date: the worker looks on that day too (and applies it)."""
    waiting = amendments.pending(agreement) if agreement.pk else None
    if waiting is not None:
        day = timezone.make_aware(dt.datetime.combine(waiting.effective_date, dt.time()))
        agreement.next_check_at = min(agreement.next_check_at, day) if agreement.next_check_at else day


def signed_copy_name(name: str, suffix: str) -> str:
    """The name a signed copy is kept and offered for download under: the uploader's, with the extension of
    the type its content shows (`suffix`, as sniffed) — a PDF sent as 签署页.jpg is kept as 签署页.pdf, so
    the copy opens in the right program. At most 200 characters."""
    base = Path(name or "").name.strip()
    current = Path(base).suffix.lower()
    if current in SIGNED_COPY_SUFFIXES.get(suffix, (suffix,)):
        return base[:200] if len(base) <= 200 else base[: 200 - len(current)] + Path(base).suffix
    known = {s for suffixes in SIGNED_COPY_SUFFIXES.values() for s in suffixes} | OTHER_DOCUMENT_SUFFIXES
    stem = Path(base).stem if current in known else base
    return (stem or "signed-copy")[: 200 - len(suffix)] + suffix


def _opens(upload, suffix: str) -> bool:
    """Whether the file really is what its first bytes say: a PDF pypdf can read, an image Pillow verifies."""
    try:
        if suffix == ".pdf":
            from pypdf import PdfReader

            return len(PdfReader(upload).pages) > 0
        from PIL import Image

        with Image.open(upload) as image:
            image.verify()
        return True
    except Exception:  # a damaged file fails in many ways, all of them "not a real file"
        return False
    finally:
        upload.seek(0)


def sweep_agreements(now: dt.datetime | None = None, limit: int = 500) -> int:
    """The worker: a renewal reminder once, `renewal_notice_days` before the end, to the project manager
    and the managers — not for an agreement a signed one ending later follows (its reminder is that one's); at the end
    a signed agreement expires, or counts as renewed when a signed renewal of it has begun by then. On the start day
    of a renewal signed ahead of time, the agreements it renews go out of force (renewed)."""
    now = now or timezone.now()
    ids = dueclock.claim_batch(Agreement, dueclock.due_ids(Agreement, now, limit=limit), now)
    told = 0
    today = timezone.localtime(now).date()
    for agreement in Agreement.objects.filter(pk__in=ids).select_related("account__institution"):
        with transaction.atomic():
            # the account first, then the agreement: the order of record_signed, so that a renewal signed meanwhile is
            # read as it is once that has committed
            KeyAccount.objects.select_for_update().filter(pk=agreement.account_id).first()
            fresh = Agreement.objects.select_for_update().get(pk=agreement.pk)
            fresh.claimed_until, fresh.next_check_at = None, None
            before = fresh.status
            if fresh.status == AgreementStatus.SIGNED:
                # an amendment signed ahead of time whose day has come: its term first (amendments.term_on today)
                amendments.apply_due(fresh, SERVICE_TERMS, today)
            # a signed agreement of the account whose term ends after this one's: the renewal is signed already (the
            # renewal came back signed before this one was recorded, so signing this one did not mark it renewed).
            # The reminder follows that one, at its own end; this one only expires.
            renewed_by = (
                Agreement.objects.filter(account_id=fresh.account_id, status=AgreementStatus.SIGNED,
                                         end_date__gt=fresh.end_date).exclude(pk=fresh.pk).exists()
            )  # fmt: skip
            if fresh.status == AgreementStatus.SIGNED and fresh.start_date <= today:
                # its term has begun: the agreements it renews, signed ahead of it, go out of force now
                _mark_renewed(_renewed_by(fresh), renewal=fresh)
            if fresh.status == AgreementStatus.SIGNED and today > fresh.end_date:
                # over: renewed when a signed renewal has begun (whichever of the two the sweep reads first), else expired
                begun = _renewing(fresh, today).order_by("start_date", "pk").first()
                fresh.status = AgreementStatus.RENEWED if begun else AgreementStatus.EXPIRED
                if begun:  # nothing should wait any more (its day came by the day after the end): lapses if it does
                    amendments.lapse(fresh, SERVICE_TERMS, amendments.LapseCause.RENEWED, renewal=begun, today=today)
                audit.record(A.UPDATE, fresh, changes={"status": [AgreementStatus.SIGNED, fresh.status]},
                             actor_name="system")  # fmt: skip
            elif fresh.status == AgreementStatus.SIGNED and fresh.renewal_notified_at is None and renewed_by:
                fresh.next_check_at = _expiry_moment(fresh)
            elif fresh.status == AgreementStatus.SIGNED and fresh.renewal_notified_at is None and (
                now < _renewal_moment(fresh)
            ):
                # looked at on its start day (above), before its reminder is due: the reminder's clock again
                fresh.next_check_at = _renewal_moment(fresh)
            elif fresh.status == AgreementStatus.SIGNED and fresh.renewal_notified_at is None:
                account = agreement.account
                pms = [m.user for m in account.members.filter(role=TeamRole.PROJECT_MANAGER).select_related("user")]
                managers = list(User.objects.filter(is_active=True, groups__name=Role.MANAGER))
                # the end it will have once an amendment waiting for its day applies (amendments.reminded_end): kept
                # as the end it was for, an amendment moving the end elsewhere brings one for the new end
                fresh.renewal_notified_for = amendments.reminded_end(fresh)
                title = Message(gettext_lazy("Service agreement %(number)s with %(name)s ends on %(date)s: time to renew"),
                                number=fresh.number, name=account.institution.name,
                                date=fresh.renewal_notified_for.isoformat())  # fmt: skip
                url = reverse("keyaccounts:account", args=[account.pk]) + "#agreements"
                _notify([*pms, *managers], "keyaccounts.renewal", title, "", url, fresh)
                fresh.renewal_notified_at = now
                fresh.next_check_at = _expiry_moment(fresh)
                told += 1
            elif fresh.status == AgreementStatus.SIGNED:
                # reminded already and looked at on its start day (a renewal signed after its own reminder): its end
                fresh.next_check_at = _expiry_moment(fresh)
            if fresh.status == AgreementStatus.SIGNED:
                _look_when_amended(fresh)  # an amendment still ahead: looked at on its day too
            if fresh.status != before:
                # a new version: a form opened before (a better scan) is refused instead of bringing the agreement
                # back in force. The reminder alone leaves it: a scan sent from a page opened before it is still
                # right, and record_signed reads the reminder's clock under the row's lock
                fresh.version += 1
            fresh.save(update_fields=["status", "claimed_until", "next_check_at", "renewal_notified_at",
                                      "renewal_notified_for", "version"])  # fmt: skip
            if fresh.renewal_notified_at == now:
                _audit_alert(fresh, "renewal_notified_at", now)
    return told


# --- changing an agreement's term -------------------------------------------------------------------------


def signed_term_message() -> str:
    """Why a signed agreement's term is not edited: it changes by an amendment, which the customer signs too."""
    return _("This agreement is signed: its term changes only by an amendment, with the new term, the "
             "reason and the day it takes effect.")  # fmt: skip


def _clash_message(clash: Agreement) -> str:
    return _("Agreement %(number)s (%(status)s) already covers this plan version from %(start)s to %(end)s: the term "
             "may not overlap it.") % {"number": clash.number, "status": clash.get_status_display(),
                                       "start": clash.start_date.isoformat(), "end": clash.end_date.isoformat()}  # fmt: skip


def change_term(user, agreement: Agreement, *, start_date, end_date, version: int | None = None) -> Agreement:
    """Correct the term of an agreement not signed yet (a typo in its end): by those who may generate it
    (access.may_change_agreement_term), on the version they loaded, with the rules of generating it (_term_errors, its
    plan's validity, no other agreement of the plan over it). Its PDF is issued again with the new term (the copy
    issued before is replaced, as by reissue_document); the change is audited with the term before and after and both
    fingerprints. The renewal reminder is counted from the term when the agreement is signed. A signed agreement's
    term changes by an amendment only (amend_term). The same term again is no change: no new version, no entry."""
    access.require_agreement_term(user, agreement)
    require_active(agreement.account)
    _check_version(agreement, version)
    if agreement.status != AgreementStatus.DRAFT:
        raise ValidationError({"status": [signed_term_message() if agreement.status == AgreementStatus.SIGNED
                                          else _("This agreement has expired or been renewed.")]})  # fmt: skip
    if not ServicePlan.objects.filter(pk=agreement.plan_id, status=PlanStatus.APPROVED).exists():
        raise ValidationError({"status": [replaced_plan_message()]})
    today = timezone.localdate()
    errors = _term_errors(start_date, end_date, agreement.renewal_notice_days, today)
    for field, messages in _within_validity(agreement.plan, start_date, end_date).items():
        errors.setdefault(field, messages)
    if errors:
        raise ValidationError(errors)
    previous = (agreement.start_date, agreement.end_date)
    if (start_date, end_date) == previous:
        return agreement
    old_name, old_digest = agreement.document, agreement.document_sha256
    with transaction.atomic():
        # the order of reissue_document and record_signed: the account, the agreement, its plan (held while the
        # document is made: a newer version approved meanwhile replaced it, and this is refused)
        KeyAccount.objects.select_for_update().filter(pk=agreement.account_id).first()
        list(Agreement.objects.select_for_update().filter(pk=agreement.pk).values_list("pk", flat=True))
        if not ServicePlan.objects.select_for_update().filter(pk=agreement.plan_id, status=PlanStatus.APPROVED).exists():
            raise ValidationError({"status": [replaced_plan_message()]})
        clash = overlapping_agreement(agreement.plan, start_date, end_date, today, exclude=agreement)
        if clash is not None:
            raise ValidationError({"start_date": [_clash_message(clash)]})
        agreement.start_date, agreement.end_date = start_date, end_date
        path = _issue(agreement)  # the PDF with the corrected term
        try:
            _save_versioned(agreement, ["start_date", "end_date", "document", "document_sha256", "issued_at"],
                            agreement.version)  # fmt: skip
            changes = {"start_date": [previous[0], start_date], "end_date": [previous[1], end_date]}
            changes = {k: v for k, v in changes.items() if v[0] != v[1]}
            audit.record(A.UPDATE, agreement, user=user, changes={
                **changes, "document_sha256": [old_digest or None, agreement.document_sha256]})  # fmt: skip
        except BaseException:
            agreement.start_date, agreement.end_date = previous
            path.unlink(missing_ok=True)
            raise
    if old_name:
        (agreements_dir() / Path(old_name).name).unlink(missing_ok=True)
    return agreement


def validity_label(plan: ServicePlan) -> str:
    """A plan's validity as a span of days, an open side as "…": 2026-01-01 – 2026-12-31, 2026-01-01 – …"""
    return f"{plan.valid_from.isoformat() if plan.valid_from else '…'} – {plan.valid_to.isoformat() if plan.valid_to else '…'}"


class ServiceTerms(amendments.Terms):
    """Amendments of a key account's service agreements (core/amendments.py): a signed agreement of an account still
    served, by those who run the account; its new term keeps the rules of generating it and within the validity of the
    plan it was generated from; the renewal reminder follows the new end; the amendment's PDF is kept as the
    agreement's."""

    amendment_model = AgreementAmendment
    amendable_statuses = (AgreementStatus.SIGNED, AgreementStatus.EXPIRED)  # expired: an extension (clean)
    title_zh, title_en = "重点客户专属服务协议", "Key-Account Service Agreement"

    def check_version(self, agreement, version) -> None:
        _check_version(agreement, version)

    def stale(self, current_version):
        return StaleVersion(current_version)

    def not_amendable(self, agreement) -> str | None:
        if KeyAccount.objects.filter(pk=agreement.account_id).values_list("status", flat=True).first() != (
            AccountStatus.ACTIVE
        ):
            return _("This key account has been de-listed.")
        if agreement.status == AgreementStatus.DRAFT:
            return amendments.not_signed_message()
        if agreement.status in (AgreementStatus.RENEWED, AgreementStatus.EXPIRED):
            # run out: extended by an amendment, unless a signed agreement of the account took over from it
            renewal = (
                agreement.account.agreements.filter(
                    Q(start_date__gt=agreement.start_date) | Q(plan__version_number__gt=agreement.plan.version_number),
                    status__in=[AgreementStatus.SIGNED, AgreementStatus.EXPIRED, AgreementStatus.RENEWED],
                ).exclude(pk=agreement.pk).order_by("start_date", "id").first()
            )  # fmt: skip
            if renewal is not None:
                return _("This agreement was renewed by %(number)s (from %(start)s): amend that one instead.") % {
                    "number": renewal.number, "start": renewal.start_date.isoformat()}  # fmt: skip
            if agreement.status == AgreementStatus.RENEWED:
                return _("This agreement was renewed: amend the agreement that renewed it instead.")
        if agreement.status not in self.amendable_statuses:
            return _("This agreement ended when the key account was de-listed.")
        return None

    def term_errors(self, agreement, start, end) -> dict:
        today = timezone.localdate()
        # the start a year back at most, as when generating: unless the amendment leaves it as it is
        errors = _term_errors(start, end, agreement.renewal_notice_days, today, start_window=start != agreement.start_date)
        plan = agreement.plan
        before = plan.valid_from and start < plan.valid_from
        if before or (plan.valid_to and end > plan.valid_to):
            errors.setdefault("start_date" if before else "end_date", [_(
                "The new term %(start)s – %(end)s lies outside the validity of the service plan the agreement was "
                "generated from (v%(version)s, valid %(validity)s): an amendment keeps within it. To serve the customer "
                "beyond it, approve a new plan version and generate a new agreement from it."
            ) % {"start": start.isoformat(), "end": end.isoformat(), "version": plan.version_number,
                 "validity": validity_label(plan)}])  # fmt: skip
        renewal = _renewal_reached(agreement, end)
        if renewal is not None:
            errors.setdefault("end_date", [_(
                "The new end %(end)s reaches into the term of %(number)s, the signed renewal of this agreement from "
                "%(start)s: an amendment may not stretch the term into its renewal's. End it on %(last)s at the latest, "
                "or amend the renewal instead."
            ) % {"end": end.isoformat(), "number": renewal.number, "start": renewal.start_date.isoformat(),
                 "last": (renewal.start_date - dt.timedelta(days=1)).isoformat()}])  # fmt: skip
        clash = overlapping_agreement(plan, start, end, today, exclude=agreement)
        if clash is not None and getattr(renewal, "pk", None) != clash.pk:
            errors.setdefault("start_date", [_clash_message(clash)])
        return errors

    def lock(self, agreement) -> None:
        # the account first, as the signing, the worker's sweep and the de-listing take it
        KeyAccount.objects.select_for_update().filter(pk=agreement.account_id).first()

    def follow_end(self, user, agreement, previous):
        # the renewal reminder follows the new end: one sent for another end goes out again before the new end (at
        # once when its day has passed), and the worker's next look is counted from the new term
        changes = amendments.rearm_reminder(agreement, agreement.end_date)
        fields = ["renewal_notified_at", "renewal_notified_for", "next_check_at"]
        if agreement.status == AgreementStatus.EXPIRED and agreement.end_date >= timezone.localdate():
            # an expired agreement extended: signed (in force) again
            changes["status"] = [agreement.status, AgreementStatus.SIGNED]
            agreement.status = AgreementStatus.SIGNED
            fields.append("status")
        _arm_clock(agreement, user)
        return fields, changes

    def schedule(self, agreement, amendment):
        # the renewal reminder follows the end the amendment sets from now on (amendments.reminded_end): one sent for
        # the end in force goes out again before the new end (at once when that day has passed) when the end moves.
        # The worker looks at it then, and on the amendment's day (sweep_agreements applies it, then reminds or expires)
        changes = amendments.rearm_reminder(agreement, amendment.end_date)
        agreement.next_check_at = (
            _renewal_moment(agreement) if agreement.renewal_notified_at is None else _expiry_moment(agreement)
        )
        if agreement.start_date > timezone.localdate() and _renewed_by(agreement).exists():
            agreement.next_check_at = min(agreement.next_check_at, _start_moment(agreement))
        _look_when_amended(agreement)
        return ["next_check_at", "renewal_notified_at", "renewal_notified_for"], changes

    def files_dir(self) -> Path:
        return agreements_dir()

    def parties(self, agreement):
        account = agreement.account
        inst = account.institution
        return ("乙方（重点客户）Party B (key account)",
                {"name": inst.name, "credit_code": inst.credit_code, "address": inst.address},
                [["重点客户编号 Key-account No.", "", account.number]])  # fmt: skip

    def issue(self, amendment) -> Path:
        return _keep_document(amendment, lambda a: amendments.render(a, self), f"{amendment.agreement.number}-amendment-issued")


SERVICE_TERMS = ServiceTerms()


def amend_term(user, agreement: Agreement, data: dict, *, version: int | None = None) -> AgreementAmendment:
    """Record an amendment (补充协议) of a signed agreement's term: `data` holds start_date, end_date, effective_date,
    reason and an optional signed_copy (core/amendments.record). The agreement's term becomes the new one; its PDF
    stays as signed."""
    return amendments.record(user, agreement, SERVICE_TERMS, data, version=version)


def attach_amendment_copy(user, amendment: AgreementAmendment, upload) -> AgreementAmendment:
    """The signed copy of an amendment recorded without one, uploaded later; once only (core/amendments.attach_signed_copy)."""
    return amendments.attach_signed_copy(user, amendment, SERVICE_TERMS, upload)


def amendment_document(amendment: AgreementAmendment) -> bytes:
    """The amendment's PDF as kept when it was recorded, checked against its fingerprint."""
    return _checked_file(
        amendment, amendment.document, amendment.document_sha256,
        _("The issued copy of amendment %(number)s is missing from the storage. Restore it from a backup."),
        _("The issued copy of amendment %(number)s does not match its fingerprint: it was changed outside "
          "PharmaCRM. Restore it from a backup."),
    )[0]  # fmt: skip


def amendment_signed_copy(amendment, folder: Path | None = None) -> tuple[bytes, str]:
    """An amendment's signed copy as uploaded, checked against its SHA-256, and its stored extension (the caller makes
    sure there is one). `amendment` of either app, its files kept in `folder` (the agreements' by default; a
    cooperation agreement's in var/cooperation/)."""
    data, path = _checked_file(
        amendment, amendment.signed_copy, amendment.signed_copy_sha256,
        _("The signed copy of amendment %(number)s is missing from the storage. Restore it from a backup."),
        _("The signed copy of amendment %(number)s does not match its fingerprint: it was changed outside "
          "PharmaCRM. Restore it from a backup."), folder,
    )  # fmt: skip
    return data, path.suffix


# --- meetings and trials -------------------------------------------------------------------------------


def may_record(user, account: KeyAccount) -> bool:
    return (may_manage(user, account) or is_member(user, account)) and not (user.roles & {Role.AUDITOR})


class AlreadyRecorded(ValidationError):
    """The same meeting or trial offer is recorded already (a form sent twice): nothing new is written, nobody is
    told again; `existing` is the record there is, the message names it."""

    def __init__(self, message: str, existing) -> None:
        super().__init__(message, code="duplicate")
        self.existing = existing


def listed_on(account: KeyAccount) -> dt.date:
    """The day the account's listing was approved (its file's `listed_at`, local), as stored: the caller's copy may be
    older. Meetings and trial offers of the programme are dated from it on, and the progress report counts the
    meetings from it on."""
    listed = KeyAccount.objects.filter(pk=account.pk).values_list("listed_at", flat=True).get()
    return timezone.localtime(listed).date()


def since_listing(meetings):
    """The programme's meetings: those held from their account's listing day on (Beijing time). The progress report
    counts them, the account's page counts and lists them, the API lists them. A meeting dated earlier was recorded
    before record_meeting refused such dates: no meeting of the programme, it is shown apart, as before the listing
    (`before_listing`), with its minutes and action items."""
    return meetings.filter(held_at__date__gte=TruncDate("account__listed_at"))


def before_listing(meetings):
    """The meetings dated before their account's listing day (see since_listing)."""
    return meetings.filter(held_at__date__lt=TruncDate("account__listed_at"))


def held_before_listing(meeting: Meeting) -> bool:
    """Whether this meeting is dated before its account's listing day (the rule of since_listing, in Python)."""
    return timezone.localtime(meeting.held_at).date() < timezone.localtime(meeting.account.listed_at).date()


# --- the meeting cadence (定期服务会议, seed 001 三.3) ------------------------------------------------------------

# Seed 001 says the team meets the customer regularly (定期) and names no period: each file sets its own, quarterly by
# default because the account's service evaluation (AccountReview) is quarterly — a meeting each quarter discusses
# the quarter just evaluated.
MEETING_CADENCE_DEFAULT = MeetingCadence.QUARTERLY
# The team is reminded this many days before a meeting falls due: a week is what arranging a meeting with a
# hospital's pharmacy director and clinical heads takes, and less than a quarter of the shortest cadence (a month),
# so the reminder never comes before the last meeting's minutes are written.
MEETING_NOTICE_DAYS = 7


def add_months(day: dt.date, months: int) -> dt.date:
    """The same day `months` later; the last day of that month when it has no such day (a monthly cadence from 31
    January is due on 28 February, 29 in a leap year). Not _months_later, which gives the first of the month after:
    an agreement's term ends the day before; a meeting is due on the day itself."""
    year, month = divmod(day.month - 1 + months, 12)
    year, month = day.year + year, month + 1
    return day.replace(year=year, month=month, day=min(day.day, calendar.monthrange(year, month)[1]))


@dataclasses.dataclass(frozen=True)
class MeetingDue:
    """Where a key account stands with its service meetings on `today`: its cadence, the day of the last meeting held
    since the listing (None before the first), the day the next one is due (None for a de-listed file: nobody serves
    it), whether that day is near (within MEETING_NOTICE_DAYS) or has ended (overdue), and by how many days."""

    cadence: str
    last: dt.date | None
    due: dt.date | None
    today: dt.date

    @property
    def overdue(self) -> bool:
        return self.due is not None and self.today > self.due

    @property
    def days_overdue(self) -> int | None:
        return (self.today - self.due).days if self.overdue else None

    @property
    def due_soon(self) -> bool:
        return self.due is not None and not self.overdue and self.today >= self.due - dt.timedelta(days=MEETING_NOTICE_DAYS)

    @property
    def cadence_label(self) -> str:
        return str(MeetingCadence(self.cadence).label)


def _meeting_due(account: KeyAccount, last: dt.datetime | None, today: dt.date) -> MeetingDue:
    last_day = timezone.localtime(last).date() if last is not None else None
    due = None
    if account.status == AccountStatus.ACTIVE:
        base = last_day or timezone.localtime(account.listed_at).date()
        due = add_months(base, CADENCE_MONTHS[MeetingCadence(account.meeting_cadence)])
    return MeetingDue(account.meeting_cadence, last_day, due, today)


def meeting_dues(accounts, today: dt.date | None = None) -> dict[int, MeetingDue]:
    """Each account's MeetingDue (one query whatever the number of accounts): the next meeting is due a cadence after
    the last one held since the listing (since_listing: what the progress report counts), after the listing day
    before the first."""
    accounts = list(accounts)
    today = today or timezone.localdate()
    last = dict(
        since_listing(Meeting.objects.filter(account_id__in=[a.pk for a in accounts]))
        .values("account_id").annotate(last=Max("held_at")).values_list("account_id", "last")
    )  # fmt: skip
    return {a.pk: _meeting_due(a, last.get(a.pk), today) for a in accounts}


def meeting_due(account: KeyAccount, today: dt.date | None = None) -> MeetingDue:
    return meeting_dues([account], today)[account.pk]


def _meeting_reminder_moment(due: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(due - dt.timedelta(days=MEETING_NOTICE_DAYS), dt.time(9)))


def _meeting_check_at(account: KeyAccount, state: MeetingDue) -> dt.datetime | None:
    """When the worker must look at the account's meeting clock next: the reminder's morning (09:00, China time,
    MEETING_NOTICE_DAYS before the due day), then the end of the due day; nothing once the overdue alert for this due
    day went out (a meeting recorded or a new cadence moves the due day and arms the clock again), nor for a closed
    file. A moment already past is looked at by the next sweep."""
    if state.due is None or account.meeting_overdue_notified_for == state.due:
        return None
    if account.meeting_due_notified_for == state.due:
        return deadline_moment(state.due)
    return _meeting_reminder_moment(state.due)


def _arm_meeting_clock(account: KeyAccount) -> None:
    """Set the account's meeting clock from what is stored now (call under the account's lock, in the transaction of
    the change that moved the due day)."""
    fresh = KeyAccount.objects.get(pk=account.pk)  # its cadence and alerts as stored, not the caller's copy
    account.next_check_at = _meeting_check_at(fresh, meeting_due(fresh))
    account.claimed_until = None
    KeyAccount.objects.filter(pk=account.pk).update(next_check_at=account.next_check_at, claimed_until=None)


def may_set_cadence(user, account: KeyAccount) -> bool:
    """Who sets a key account's meeting cadence: whoever runs the account (may_manage: its project manager, managers
    and administrators; never the auditor), on a file still served."""
    return account.status == AccountStatus.ACTIVE and may_manage(user, account) and not (
        access.roles_of(user) & READ_ONLY_ROLES)  # fmt: skip


def set_meeting_cadence(user, account: KeyAccount, cadence, *, version: int | None = None) -> KeyAccount:
    """Set how often the account's service meetings are due (MeetingCadence). The next due day follows at once (the
    last meeting, or the listing day, plus the new cadence), its alerts afresh; audited with the values before and
    after. The same cadence again is no change (no version, no entry)."""
    if not may_manage(user, account) or access.roles_of(user) & READ_ONLY_ROLES:
        raise PermissionDenied(NOT_ALLOWED)
    require_active(account)
    if cadence not in MeetingCadence.values:
        raise ValidationError({"meeting_cadence": [
            _("Choose how often the service meetings are due: %(choices)s.")
            % {"choices": listing([str(label) for label in MeetingCadence.labels])}]})  # fmt: skip
    with transaction.atomic():
        fresh = KeyAccount.objects.select_for_update().get(pk=account.pk)
        if fresh.status != AccountStatus.ACTIVE:  # de-listed while the form was open
            raise ValidationError(_("This key account has been de-listed."))
        _check_version(fresh, version)  # changed by someone else since the page or the client read it: 409
        old = fresh.meeting_cadence
        if old == cadence:
            account.meeting_cadence, account.version = fresh.meeting_cadence, fresh.version
            return account
        fresh.meeting_cadence = cadence
        _save_versioned(fresh, ["meeting_cadence"], fresh.version)
        _arm_meeting_clock(fresh)
        audit.record(A.UPDATE, fresh, user=user, changes={"meeting_cadence": [old, cadence]})
    account.meeting_cadence, account.version = fresh.meeting_cadence, fresh.version
    account.next_check_at = fresh.next_check_at
    return account


def sweep_meeting_cadence(now: dt.datetime | None = None, limit: int = 500) -> int:
    """The worker: a key account served whose next service meeting falls due within MEETING_NOTICE_DAYS days is
    reminded once, and once more when the due day has ended without a meeting (overdue) — each alert once per due
    day, to the account's service team (the project manager among them; the managers when the team is empty). Leases
    through core/dueclock; the alert, its stamp and its audit entry commit together, so that a worker killed while
    sending leaves the lease to run out and the next sweep sends it, never twice, and of two workers one wins."""
    now = now or timezone.now()
    today = timezone.localtime(now).date()
    ids = dueclock.claim_batch(KeyAccount, dueclock.due_ids(KeyAccount, now, limit=limit), now)
    told = 0
    for pk in ids:
        with transaction.atomic():
            # the account first: the lock record_meeting, set_meeting_cadence and the de-listing take
            account = KeyAccount.objects.select_for_update().select_related("institution").get(pk=pk)
            state = meeting_due(account, today)
            stamped = None
            if state.due is not None and state.overdue and account.meeting_overdue_notified_for != state.due:
                title = Message(gettext_lazy("Service meeting overdue for %(name)s"), name=account.institution.name)
                body = Message(gettext_lazy("The %(cadence)s service meeting was due %(date)s (last meeting: %(last)s)."),
                               cadence=_CADENCE_WORDS[account.meeting_cadence], date=state.due.isoformat(),
                               last=state.last.isoformat() if state.last else "—")  # fmt: skip
                stamped = "meeting_overdue_notified_for"
            elif (state.due is not None and state.due_soon and account.meeting_due_notified_for != state.due
                  and account.meeting_overdue_notified_for != state.due):  # fmt: skip
                title = Message(gettext_lazy("Service meeting due for %(name)s"), name=account.institution.name)
                body = Message(gettext_lazy("The %(cadence)s service meeting is due %(date)s (last meeting: %(last)s)."),
                               cadence=_CADENCE_WORDS[account.meeting_cadence], date=state.due.isoformat(),
                               last=state.last.isoformat() if state.last else "—")  # fmt: skip
                stamped = "meeting_due_notified_for"
            if stamped is not None:
                team = [m.user for m in account.members.select_related("user").order_by("role", "id")]
                if not any(u.is_active for u in team):
                    team = list(User.objects.filter(is_active=True, groups__name=Role.MANAGER))
                url = reverse("keyaccounts:account", args=[account.pk]) + "#meetings"
                _notify(team, "keyaccounts.meeting", title, body, url, account)
                old = getattr(account, stamped)
                setattr(account, stamped, state.due)
                told += 1
            account.next_check_at = _meeting_check_at(account, state)
            account.claimed_until = None
            account.save(update_fields=["meeting_due_notified_for", "meeting_overdue_notified_for", "next_check_at",
                                        "claimed_until"])  # fmt: skip
            if stamped is not None:
                audit.record(A.UPDATE, account, changes={stamped: [old, state.due]}, actor_name="system")
    return told


# the cadence as the alert's sentence reads it ("The quarterly service meeting is due …")
_CADENCE_WORDS = {
    MeetingCadence.MONTHLY: gettext_lazy("monthly"),
    MeetingCadence.BIMONTHLY: gettext_lazy("two-monthly"),
    MeetingCadence.QUARTERLY: gettext_lazy("quarterly"),
    MeetingCadence.HALF_YEARLY: gettext_lazy("half-yearly"),
}


# How far a meeting's time may lie ahead of the server's clock: a device's clock running a little fast, not more. A day
# ahead (as allowed before) counted a meeting not held yet as the last one, and cleared "meeting overdue" until then.
MEETING_CLOCK_SKEW = dt.timedelta(minutes=5)


def _moment(value: dt.datetime) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M")


def record_meeting(user, account: KeyAccount, data: dict, actions: list[dict] = ()) -> Meeting:
    """A service meeting with its minutes and action items (each owner is told).

    Action `n` (from 1) is a row of title, owner and due date; a row with any of them filled needs all three, and
    is due on or after the day of the meeting. The meeting is held on or after the day the customer was listed
    (`listed_on`), and not later than now (MEETING_CLOCK_SKEW allowed). Its errors come under `action_<n>_title`,
    `action_<n>_owner` and `action_<n>_due`. The same meeting (account, start time to the minute, title) recorded again
    is refused with AlreadyRecorded naming the one there is."""
    if not may_record(user, account):
        raise PermissionDenied(NOT_ALLOWED)
    require_active(account)
    errors: dict[str, list[str]] = {}
    held_at = data.get("held_at")
    if not isinstance(held_at, dt.datetime):
        errors["held_at"] = [_("Give the date and time of the meeting.")]
        held_at = None
    elif held_at > timezone.now() + MEETING_CLOCK_SKEW:
        errors["held_at"] = [
            _("The time the meeting was held (%(held)s) lies in the future: minutes are recorded for a meeting that "
              "took place. Check the date and the time.") % {"held": _moment(held_at)}
        ]  # fmt: skip
    elif held_at.year < 2000:
        errors["held_at"] = [_("Give a date from the year 2000 on.")]
    title, minutes = _clean(data.get("title"), 200), _clean(data.get("minutes"), 50000)
    if not title:
        errors["title"] = [_("Give the meeting a title.")]
    if not minutes:
        errors["minutes"] = [_("Write the minutes.")]
    held_on = None  # the meeting's day, where the clock on the wall showed it
    if held_at is not None:
        held_on = (timezone.localtime(held_at) if timezone.is_aware(held_at) else held_at).date()
        listed = listed_on(account)
        if "held_at" not in errors and held_on < listed:
            # a service meeting of the programme is held while the customer is a key account: one dated earlier
            # would count in the progress report for a time nobody served it
            errors["held_at"] = [_("The meeting date cannot lie before %(date)s, when the customer became a key "
                                   "account.") % {"date": listed.isoformat()}]  # fmt: skip
    clean_actions = []
    team = set(TeamMember.objects.filter(account=account).values_list("user_id", flat=True))
    for n, a in enumerate(actions or [], start=1):
        t = _clean(a.get("title"), 200)
        owner, due = a.get("owner"), a.get("due_date")
        if not (t or owner is not None or due not in (None, "")):
            continue  # an empty row
        row_ok = True
        if not t:
            errors[f"action_{n}_title"] = [_("Give the action a title, or clear its owner and due date.")]
            row_ok = False
        if owner is None:
            errors[f"action_{n}_owner"] = [_("Choose who owns this action.")]
            row_ok = False
        elif owner.pk not in team:  # whoever the page, the API or a script offers
            errors[f"action_{n}_owner"] = [_("The owner must be a member of the account's service team.")]
            row_ok = False
        if not isinstance(due, dt.date):
            errors[f"action_{n}_due"] = [_("Give the due date.")]
            row_ok = False
        elif not 2000 <= due.year <= 2999:  # as edit_action: 9999-12-31 (an ERP's "no end") broke the overdue clock
            errors[f"action_{n}_due"] = [_("Enter a date between 2000 and 2999.")]
            row_ok = False
        elif held_on is not None and due < held_on:
            errors[f"action_{n}_due"] = [_("An action is due on or after the day of the meeting (%(date)s).")
                                         % {"date": held_on.isoformat()}]  # fmt: skip
            row_ok = False
        if row_ok:
            clean_actions.append((t, owner, due))
    if errors:
        raise ValidationError(errors)
    minute = held_at.replace(second=0, microsecond=0)
    with transaction.atomic():
        KeyAccount.objects.select_for_update().filter(pk=account.pk).first()  # one recording per account at a time
        same = (
            Meeting.objects.filter(account=account, title=title, held_at__gte=minute,
                                   held_at__lt=minute + dt.timedelta(minutes=1))
            .select_related("created_by").order_by("id").first()
        )  # fmt: skip
        if same is not None:
            raise AlreadyRecorded(
                _("This meeting is recorded already: “%(title)s”, held %(held)s, recorded by %(user)s at "
                  "%(recorded)s. Nothing new was saved.")
                % {"title": same.title, "held": _moment(same.held_at), "user": same.created_by or "—",
                   "recorded": _moment(same.created_at)},
                same,
            )  # fmt: skip
        # the owners are still in the team: not removed since they were checked (remove_member takes the same lock)
        team = set(TeamMember.objects.filter(account=account).values_list("user_id", flat=True))
        gone = {f"action_{n}_owner": [_("The owner must be a member of the account's service team.")]
                for n, (_t, owner, _d) in enumerate(clean_actions, start=1) if owner.pk not in team}  # fmt: skip
        if gone:
            raise ValidationError(gone)
        meeting = Meeting.objects.create(account=account, held_at=held_at, title=title, minutes=minutes,
                                         attendees=_clean(data.get("attendees"), 2000), created_by=user)  # fmt: skip
        rows = MeetingAction.objects.bulk_create(
            [MeetingAction(meeting=meeting, title=t, owner=o, due_date=d, next_check_at=deadline_moment(d))
             for t, o, d in clean_actions]  # each due date a clock: the overdue alert (sweep_meeting_actions)
        )  # fmt: skip
        audit.record(A.CREATE, meeting, user=user, changes={"title": [None, title], "actions": [None, len(rows)]})
        # the next meeting is due a cadence after this one (if it is the latest): its alerts start afresh
        _arm_meeting_clock(account)
        url = reverse("keyaccounts:account", args=[account.pk]) + "#meetings"
        for row in rows:
            _notify([row.owner], "keyaccounts.action",
                    Message(gettext_lazy("Action from the meeting “%(meeting)s”: %(title)s"), meeting=title,
                            title=row.title),
                    Message(gettext_lazy("Due %(date)s"), date=row.due_date), url, meeting)  # fmt: skip
    return meeting


def may_complete_action(user, action: MeetingAction) -> bool:
    """Who ticks an action item off (or opens it again): its owner, and whoever may correct it (may_edit_action: the
    account's team, its project manager, managers and administrators) — one rule for both, as the team keeps its
    meetings' record. (Only the owner and those who run the account could tick one off, while any member could
    correct it, and so give it to themselves to tick it off.) Never a read-only role."""
    if access.roles_of(user) & {Role.AUDITOR}:
        return False
    return action.owner_id == user.pk or may_edit_action(user, action)


def complete_action(user, action: MeetingAction, done: bool = True) -> MeetingAction:
    account = action.meeting.account
    if not may_complete_action(user, action):
        raise PermissionDenied(NOT_ALLOWED)
    require_active(account)  # a closed file is kept as it was (the page offers no button; the API neither)
    if done == (action.done_at is not None):
        return action  # a repeated request changes nothing: the action keeps the moment it was first done
    with transaction.atomic():
        # read again under its lock: two clicks at once (the owner and the manager, or a double click) are one change
        action = MeetingAction.objects.select_for_update().select_related("meeting").get(pk=action.pk)
        if done == (action.done_at is not None):
            return action
        old = action.done_at
        action.done_at = timezone.now() if done else None
        action.version += 1  # an edit from a page read before this is refused (edit_action), not saved over it
        # as a plan item's progress report: done, nothing is left to watch; reopened, it is watched again unless its
        # overdue alert went out already (the same owner and due date are not told twice)
        action.next_check_at = None if done or action.overdue_notified_at else deadline_moment(action.due_date)
        action.claimed_until = None
        action.save(update_fields=["done_at", "version", "next_check_at", "claimed_until"])
        audit.record(A.UPDATE, action.meeting, user=user, changes={"action": [str(old), str(action.done_at)]},
                     action_id=action.pk)  # fmt: skip
    return action


def may_edit_action(user, action: MeetingAction) -> bool:
    """Who corrects an open action item (its text, owner, due date): whoever may record the account's meetings — its
    team, its project manager, managers and administrators —, never the auditor."""
    return may_record(user, action.meeting.account)


def edit_action(user, action: MeetingAction, *, title: str, owner, due_date, version: int | None = None) -> MeetingAction:
    """Correct an open action item of a meeting: its text, its owner (a member of the account's service team: this is
    how an action is handed over) and its due date (on or after the day of the meeting). `version` is the action's
    version the user loaded: an action changed or ticked off since is refused with StaleVersion. A done action is
    reopened first. Audited with the values before and after; a new owner is told as an owner is told when the
    meeting is recorded, the owner it was taken from that it is no longer theirs (unless they handed it over
    themselves), and an owner whose action someone else moved is told of the new due date. A save that
    changes nothing is no change (no new version, no audit entry)."""
    account = action.meeting.account
    if not may_edit_action(user, action):
        raise PermissionDenied(NOT_ALLOWED)
    require_active(account)  # a closed file is kept as it was
    if action.done_at is not None:
        raise ValidationError(_("This action item is done: reopen it to change it."))
    _check_version(action, version)
    errors: dict[str, list[str]] = {}
    # an owner shown the text with its contact details masked (the page's form, a GET then PATCH) sends the masks
    # back: each is put back as stored, never saved in place of the real number or address
    title = personal.restore_free_text(user, {"title": title}, action, ("title",))["title"]
    title = _clean(title, 200)
    if not title:
        errors["title"] = [_("Give the action a title.")]
    if owner is None:
        errors["owner"] = [_("Choose who owns this action.")]
    elif not TeamMember.objects.filter(account=account, user=owner).exists():
        errors["owner"] = [_("The owner must be a member of the account's service team.")]
    held_on = timezone.localtime(action.meeting.held_at).date()
    if not isinstance(due_date, dt.date):
        errors["due_date"] = [_("Give the due date.")]
    elif due_date != action.due_date and not 2000 <= due_date.year <= 2999:
        errors["due_date"] = [_("Enter a date between 2000 and 2999.")]
    elif due_date != action.due_date and due_date < held_on:  # as when it was recorded; one kept stays as it is
        errors["due_date"] = [_("An action is due on or after the day of the meeting (%(date)s).")
                              % {"date": held_on.isoformat()}]  # fmt: skip
    if errors:
        raise ValidationError(errors)
    before = {"title": action.title, "owner": action.owner_id, "due_date": action.due_date}
    after = {"title": title, "owner": owner.pk, "due_date": due_date}
    changes = audit.diff(before, after)
    if not changes:
        return action
    previous_owner = action.owner
    with transaction.atomic():
        # the account first, as remove_member and record_meeting take it: the new owner is still in the team when the
        # action is written, and a removal waits for it (then finds the action theirs, and names it)
        KeyAccount.objects.select_for_update().filter(pk=account.pk).first()
        require_active(account)
        if not TeamMember.objects.filter(account=account, user=owner).exists():
            raise ValidationError({"owner": [_("The owner must be a member of the account's service team.")]})
        expected = action.version
        # as a plan item in a new version: a moved due date or a new owner starts the overdue alert afresh (told once
        # the new date has passed, or at once if it has already); a corrected text keeps the clock as it is
        clock = {}
        if due_date != before["due_date"] or owner.pk != before["owner"]:
            clock = {"overdue_notified_at": None, "next_check_at": deadline_moment(due_date), "claimed_until": None}
        # written only if nobody changed it (or ticked it off) since it was loaded: either moves its version
        done = MeetingAction.objects.filter(pk=action.pk, version=expected, done_at__isnull=True).update(
            title=title, owner=owner, due_date=due_date, version=expected + 1, **clock
        )
        if not done:
            raise StaleVersion(MeetingAction.objects.filter(pk=action.pk).values_list("version", flat=True).first())
        action.title, action.owner, action.due_date, action.version = title, owner, due_date, expected + 1
        for field, value in clock.items():
            setattr(action, field, value)
        audit.record(A.UPDATE, action, user=user, changes=changes, meeting_id=action.meeting_id)
        url = reverse("keyaccounts:account", args=[account.pk]) + "#meetings"
        meeting = action.meeting
        if owner.pk != previous_owner.pk:
            if owner.pk != user.pk:  # told as the owners are told when the meeting is recorded
                _notify([owner], "keyaccounts.action",
                        Message(gettext_lazy("Action from the meeting “%(meeting)s”: %(title)s"), meeting=meeting.title,
                                title=title),
                        Message(gettext_lazy("Handed over to you by %(user)s. Due %(date)s"), user=str(user),
                                date=due_date), url, meeting)  # fmt: skip
            if previous_owner.pk != user.pk:  # the owner it was taken from: no longer theirs (nor on their work page)
                _notify([previous_owner], "keyaccounts.action",
                        Message(gettext_lazy("Action from the meeting “%(meeting)s” handed over: %(title)s"),
                                meeting=meeting.title, title=title),
                        Message(gettext_lazy("Handed over to %(owner)s by %(user)s: it is no longer yours. Due "
                                             "%(date)s"), owner=str(owner), user=str(user), date=due_date),
                        url, meeting)  # fmt: skip
        elif due_date != before["due_date"] and owner.pk != user.pk:
            _notify([owner], "keyaccounts.action",
                    Message(gettext_lazy("Action from the meeting “%(meeting)s” moved: %(title)s"),
                            meeting=meeting.title, title=title),
                    Message(gettext_lazy("Due %(date)s (was %(before)s), changed by %(user)s"), date=due_date,
                            before=before["due_date"], user=str(user)), url, meeting)  # fmt: skip
    return action


def offer_trial(user, account: KeyAccount, *, product, notes: str = "", offered_on: dt.date | None = None) -> TrialOffer:
    """Record a new-product trial offered to a key account (seed 001 §2.2: R&D's priority trials). It was offered
    on or after the day the customer became a key account and not later than today (no date: today). The same
    product offered to the same account on the same day again is refused with AlreadyRecorded."""
    require_trial_recorder(user, account)
    require_active(account)
    errors: dict[str, list[str]] = {}
    if product is None:
        errors["product"] = [_("Choose the product offered.")]
    today = timezone.localdate()
    offered_on = offered_on or today
    listed = listed_on(account)
    if not isinstance(offered_on, dt.date):
        errors["offered_on"] = [_("Give the date of the offer.")]
    elif offered_on > today:
        errors["offered_on"] = [_("The offer date cannot lie in the future: record a trial once it was offered.")]
    elif offered_on < listed:
        errors["offered_on"] = [_("The offer date cannot lie before %(date)s, when the customer became a key "
                                  "account.") % {"date": listed.isoformat()}]  # fmt: skip
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        KeyAccount.objects.select_for_update().filter(pk=account.pk).first()  # one recording per account at a time
        same = (
            TrialOffer.objects.filter(account=account, product=product, offered_on=offered_on)
            .select_related("created_by").order_by("id").first()
        )
        if same is not None:
            raise AlreadyRecorded(
                _("This trial offer is recorded already: %(product)s, offered on %(date)s (%(status)s), recorded "
                  "by %(user)s. Nothing new was saved.")
                % {"product": product, "date": offered_on.isoformat(), "status": same.get_status_display(),
                   "user": same.created_by or "—"},
                same,
            )  # fmt: skip
        trial = TrialOffer.objects.create(account=account, product=product, notes=_clean(notes),
                                          offered_on=offered_on, created_by=user)  # fmt: skip
        audit.record(A.CREATE, trial, user=user, changes={"product": [None, product.pk],
                                                          "offered_on": [None, offered_on]})  # fmt: skip
    return trial


def update_trial(
    user, trial: TrialOffer, *, status: str, notes: str = "", version: int | None = None
) -> TrialOffer:
    """The customer's answer or the trial's end. `version` is the trial's version the user loaded: a trial someone
    else updated since is refused with StaleVersion, so that their answer is not overwritten unseen. Empty notes keep
    those there are. A save that changes nothing (the same status, the same notes) is no change: the trial keeps its
    version and the audit trail gets no entry, as for a plan's goals or a ticket's details."""
    if not may_record(user, trial.account) and not access.can(user, Cap.MANAGE_KNOWLEDGE):
        raise PermissionDenied(NOT_ALLOWED)
    require_active(trial.account)
    _check_version(trial, version)
    if status not in TrialStatus.values:
        raise ValidationError({"status": [_("Choose a status.")]})
    notes = personal.restore_free_text(user, {"notes": notes}, trial, ("notes",))["notes"]  # masks shown: as stored
    before = {"status": trial.status, "notes": trial.notes}
    after = {"status": status, "notes": _clean(notes) if notes else trial.notes}
    changes = audit.diff(before, after)  # the notes replaced stay in the trail
    if not changes:
        return trial
    with transaction.atomic():
        trial.status, trial.notes = after["status"], after["notes"]
        _save_versioned(trial, ["status", "notes"], trial.version)
        audit.record(A.UPDATE, trial, user=user, changes=changes)
    return trial


def add_measure(user, account: KeyAccount, *, title: str, owner: User, due_date: dt.date, description: str = ""):
    """An improvement measure after a key-account evaluation: a service-desk improvement action on the
    customer, tracked to closure there. The same measure sent again within ten minutes (a double click, Back and
    send) is not opened twice: the first is returned, with `sent_again` set, as an action opened by hand is."""
    from pharmacrm.servicedesk import revisit

    require_manage(user, account)
    require_active(account)
    data = {"title": title, "description": description, "owner": owner, "due_date": due_date,
            "institution": account.institution}  # fmt: skip
    with transaction.atomic():
        # one at a time per author, so that the two requests of a double click cannot both miss each other
        list(User.objects.select_for_update().filter(pk=user.pk).values_list("pk", flat=True))
        same = revisit._opened_just_now(user, data)
        if same is not None:
            same.sent_again = True
            return same
        return revisit._create_action(user, data)


# --- key-account evaluation and scorecards ----------------------------------------------------------------

REVIEW_WEIGHTS = {"satisfaction": 30, "response": 20, "resolution": 20, "complaints": 15, "plan": 15}
RESPONSE_TARGET_H = Decimal(24)
RESOLUTION_TARGET_H = Decimal(48)


# a key-account evaluation's period once read (period_label): a year, or a year and its quarter — in ASCII digits
REVIEW_PERIOD = re.compile(r"([0-9]{4})(?:Q([1-4]))?")


def period_label(label) -> str:
    """The period as evaluations are stored: 2026q3, ２０２６Ｑ３ (a Chinese input method's full width) → 2026Q3.
    Other digits stay as typed (٢٠٢٦Q٣, Arabic-Indic): period_bounds refuses them, as the evaluation results read
    their periods (evaluation.period_of). Read with int(), they passed and were stored as a period of their own beside
    2026Q3."""
    return unicodedata.normalize("NFKC", str(label or "")).strip().upper()


def period_bounds(label: str, *, ended: bool = True) -> tuple[dt.date, dt.date]:
    """2026Q3 → (2026-07-01, 2026-09-30); 2026 → the year. Years 2000–2999, written with ASCII digits; with `ended`,
    the period must be over (an evaluation of a quarter still running would score defaults). Read as period_label
    reads it."""
    match = REVIEW_PERIOD.fullmatch(period_label(label))
    year = int(match[1]) if match else 0
    if not 2000 <= year <= 2999:
        raise ValidationError({"period": [_("Write the period as 2026Q3 (a quarter) or 2026 (a year).")]})
    q = int(match[2] or 0)
    if q == 0:
        start, end = dt.date(year, 1, 1), dt.date(year, 12, 31)
    else:
        start = dt.date(year, 3 * q - 2, 1)
        end = (dt.date(year + 1, 1, 1) if q == 4 else dt.date(year, 3 * q + 1, 1)) - dt.timedelta(days=1)
    if ended and end >= timezone.localdate():
        raise ValidationError({"period": [_("This period has not ended yet: evaluate a quarter or a year that is over.")]})
    return start, end


def _hours(pairs) -> Decimal | None:
    values = [(b - a).total_seconds() / 3600 for a, b in pairs if a and b and b >= a]
    return (Decimal(str(sum(values) / len(values)))).quantize(Decimal("0.01")) if values else None


def served_items(items):
    """The plan items that fell due while their customer was served. A de-listed customer is served no more (its
    file is closed: nobody can report progress on it): its items left open that fall due from the de-listing day
    on count against nobody; those the team let pass while it still served the customer stay missed."""
    return items.annotate(delisted_on=TruncDate("plan__account__delisted_at")).exclude(
        plan__account__status=AccountStatus.DELISTED,
        completed_at__isnull=True,
        deadline__gte=F("delisted_on"),
    )


def overdue_q(today: dt.date, account: str = "plan__account__") -> Q:
    """Plan items that are overdue today (open, their deadline passed), as served_items counts them: a de-listed
    customer's items left open whose deadline came from the de-listing day on are overdue for nobody (the file is
    closed, nobody can report on them); those missed while it was served stay overdue. `account` is the path from
    the queried model to its key account."""
    return Q(status__in=OPEN_ITEM, deadline__lt=today) & ~Q(
        **{f"{account}status": AccountStatus.DELISTED, "deadline__gte": TruncDate(f"{account}delisted_at")}
    )


def overdue_until(account: KeyAccount, today: dt.date) -> dt.date:
    """An open item of `account` is overdue when its deadline lies before this day (see overdue_q)."""
    if account.status == AccountStatus.DELISTED and account.delisted_at:
        return min(today, timezone.localtime(account.delisted_at).date())
    return today


def item_overdue(item: PlanItem, today: dt.date | None = None) -> bool:
    """Whether the key-account page flags a plan item overdue (and the API's `overdue`): an open item of the plan in
    force whose deadline day has ended (China time, calendar days: the day its overdue alert goes out), on a de-listed
    file only if it was missed while the customer was served (overdue_until). Reads item.plan.account."""
    plan = item.plan
    return (plan.status == PlanStatus.APPROVED and item.status in OPEN_ITEM
            and item.deadline < overdue_until(plan.account, today or timezone.localdate()))  # fmt: skip


def action_overdue(action: MeetingAction, today: dt.date | None = None) -> bool:
    """Whether the key-account page flags a meeting action overdue (and the API's `overdue`): open, its due day ended
    (as a plan item's deadline), on a de-listed file only if missed while it was served. Reads action.meeting.account."""
    return action.done_at is None and action.due_date < overdue_until(action.meeting.account,
                                                                      today or timezone.localdate())  # fmt: skip


def _due_items(items, *, with_account: bool = False) -> list[tuple]:
    """(owner_id, deadline, completed_at) of the plan items that fell due, each commitment once: a new plan
    version copies the items of the one in force, so an item counts in the version that was in force on its
    deadline day (before the first approval: the first approved version). `with_account`: (owner_id,
    account_id, deadline, completed_at)."""
    rows = list(items.values_list("plan_id", "plan__account_id", "owner_id", "deadline", "completed_at"))
    accounts = {r[1] for r in rows}
    versions: dict[int, list[tuple[dt.date, int]]] = {}
    for plan_id, account_id, decided_at in (
        ServicePlan.objects.filter(account_id__in=accounts, status__in=[PlanStatus.APPROVED, PlanStatus.SUPERSEDED])
        .order_by("version_number").values_list("id", "account_id", "decided_at")
    ):  # fmt: skip
        day = timezone.localtime(decided_at).date() if decided_at else dt.date.min
        versions.setdefault(account_id, []).append((day, plan_id))
    out = []
    for plan_id, account_id, owner_id, deadline, completed in rows:
        chain = versions.get(account_id) or [(dt.date.min, plan_id)]
        in_force = chain[0][1]
        for day, pk in chain:
            if day <= deadline:
                in_force = pk
        if in_force == plan_id:
            out.append((owner_id, account_id, deadline, completed) if with_account else (owner_id, deadline, completed))
    return out


def _paused_spans(tickets) -> dict[int, list]:
    """Per ticket that ever waited on the customer or was reopened, its status history [(at, to_status)]: the
    time it waited on the customer (and, for the resolution, the time it stood resolved before it was reopened)
    is taken out of its wait, as the service desk's SLA clocks take it out (servicedesk.services.rebuild_clocks:
    PAUSED_STATUSES stop both clocks, DONE_STATUSES between a resolution and a reopen stop the resolution clock).
    Tickets that never did are not read (one query finds the others)."""
    from pharmacrm.servicedesk.choices import EventKind
    from pharmacrm.servicedesk.models import TicketEvent
    from pharmacrm.servicedesk.services import PAUSED_STATUSES

    paused = TicketEvent.objects.filter(ticket__in=tickets.values("id")).filter(
        Q(kind=EventKind.REOPENED) | Q(to_status__in=list(PAUSED_STATUSES))
    )
    events: dict[int, list] = {}
    for ticket_id, at, to_status in (
        TicketEvent.objects.filter(ticket__in=paused.values("ticket_id"))
        .exclude(to_status="")
        .order_by("ticket_id", "at", "id").values_list("ticket_id", "at", "to_status")
    ):  # fmt: skip
        events.setdefault(ticket_id, []).append(_StatusStep(at, to_status))
    return events


class _StatusStep:
    """What servicedesk.services._intervals reads of a ticket event."""

    __slots__ = ("at", "to_status")

    def __init__(self, at, to_status):
        self.at, self.to_status = at, to_status


def _wait(history: list | None, statuses: frozenset, start: dt.datetime, end: dt.datetime) -> tuple:
    """(start, end less the spans of `history` spent in `statuses` up to `end`): the wait as the SLA clock
    counts it, in hours as the customer waits them (not working time)."""
    if not history:
        return start, end
    from pharmacrm.servicedesk.services import _intervals

    stopped = sum(((b - a) for a, b in _intervals(history, statuses, end) if b > a), dt.timedelta(0))
    return start, end - stopped


def review_default() -> Decimal:
    """The neutral value of a key-account evaluation measure without data: the customer evaluation model's
    default for a customer nobody rated (its default_satisfaction, 60 unless configured)."""
    from . import scoring
    from .models import ScoringModel

    fallback = scoring.DEFAULT_PARAMS["default_satisfaction"]
    params = ScoringModel.objects.filter(kind="evaluation", active=True).values_list("params", flat=True).first()
    try:
        return Decimal(str((params or {}).get("default_satisfaction", fallback)))
    except ArithmeticError:
        return Decimal(str(fallback))


def listing_error(account: KeyAccount, start: dt.date, end: dt.date) -> str | None:
    """Why the period start–end cannot be evaluated for the account: it ended before the customer was listed,
    or began after it was de-listed (its service team did not serve it then); None when it can."""
    listed = timezone.localtime(account.listed_at).date() if account.listed_at else None
    delisted = timezone.localtime(account.delisted_at).date() if account.delisted_at else None
    if listed is not None and end < listed:
        return _("This period ended before the customer was listed as a key account (%(date)s): evaluate a "
                 "period from the listing on.") % {"date": listed.isoformat()}  # fmt: skip
    if delisted is not None and start > delisted:
        return _("This period began after the customer was de-listed (%(date)s): evaluate a period up to "
                 "the de-listing.") % {"date": delisted.isoformat()}  # fmt: skip
    return None


def _review_tickets(account: KeyAccount, start: dt.date, end: dt.date, *, served: bool = True):
    """(start and end as times, the institution and its departments' ids, the tickets) an evaluation of the account
    for start–end counts: with `served`, only from the moment the file was listed to the moment it was de-listed —
    a customer de-listed and listed again within a quarter has two files, and each file's evaluation counts the
    tickets (complaints, surveys, quality cases) of its own days, never the other's (nor those of the days between,
    when the customer was no key account). Without it, the whole of start–end (how evaluations were computed before
    session 41, for recompute_review_waits)."""
    from pharmacrm.servicedesk.models import Ticket

    tz = timezone.get_current_timezone()
    t0 = dt.datetime.combine(start, dt.time(), tzinfo=tz)
    t1 = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tzinfo=tz)
    if served and account.listed_at:
        t0 = max(t0, account.listed_at)
    if served and account.delisted_at:
        t1 = max(t0, min(t1, account.delisted_at))
    inst_ids = [account.institution_id, *Institution.objects.filter(parent_id=account.institution_id).values_list("id", flat=True)]
    tickets = Ticket.objects.filter(Q(institution_id__in=inst_ids) | Q(person__institution_id__in=inst_ids),
                                    received_at__gte=t0, received_at__lt=t1, merged_into__isnull=True)  # fmt: skip
    return t0, t1, inst_ids, tickets


def _counted_clocks(tickets):
    """The SLA clocks an evaluation averages: the met ones, and a ticket still waiting for its answer (or its
    resolution) with the time it has waited so far — left out, a quarter whose tickets were never answered would
    look faster than one whose were."""
    from pharmacrm.servicedesk.models import SlaClock
    from pharmacrm.servicedesk.services import DONE_STATUSES

    return SlaClock.objects.filter(ticket__in=tickets.values("id")).filter(
        Q(fulfilled_at__isnull=False) | ~Q(ticket__status__in=DONE_STATUSES)
    )


def average_waits(tickets, now: dt.datetime, *, as_of: dt.datetime | None = None, before_session_31: bool = False):
    """(average first response, average resolution) in hours of the tickets' clocks, as the customer waits them.

    The SLA clocks' definition (docs/servicedesk.md): the time a ticket waited on the customer is nobody's wait for
    an answer or a resolution, and the days a reopened ticket stood resolved before the customer came back are no
    wait for its resolution. Counted, a customer who took a week to send the batch number made the team's average
    resolution a week longer than the desk's own clock said.

    `as_of`: the figures as an evaluation computed then saw them (recompute_review_waits): tickets taken in later
    and clocks met later count as they stood. `before_session_31`: the rule evaluations were computed with before
    (only the resolved days before a reopen taken out), to recognise a stored evaluation made with it."""
    from pharmacrm.servicedesk.choices import ClockKind
    from pharmacrm.servicedesk.services import DONE_STATUSES, PAUSED_STATUSES

    clocks = _counted_clocks(tickets)
    if as_of is not None:
        clocks = clocks.filter(ticket__created_at__lte=as_of, started_at__lte=as_of)
        now = as_of
    histories = _paused_spans(tickets)
    if before_session_31:
        stops = {ClockKind.FIRST_RESPONSE: frozenset(), ClockKind.RESOLUTION: DONE_STATUSES}
    else:
        stops = {ClockKind.FIRST_RESPONSE: PAUSED_STATUSES, ClockKind.RESOLUTION: PAUSED_STATUSES | DONE_STATUSES}
    waits: dict[str, list] = {ClockKind.FIRST_RESPONSE: [], ClockKind.RESOLUTION: []}
    for ticket_id, kind, a, b in clocks.values_list("ticket_id", "kind", "started_at", "fulfilled_at"):
        if kind in waits:
            end = now if b is None or b > now else b
            waits[kind].append(_wait(histories.get(ticket_id), stops[kind], a, end))
    return _hours(waits[ClockKind.FIRST_RESPONSE]), _hours(waits[ClockKind.RESOLUTION])


# the audit entry's reason for a recomputed evaluation, in no language (the audit trail records data)
RECOMPUTE_REASON = "response and resolution without the time waiting on the customer (rule of session 31)"


def recompute_review_waits(review, user=None) -> str:
    """Put an evaluation stored before session 31 right: its average response and resolution times (and the two
    measures and the score made of them) still counted the time its tickets waited on the customer. Recomputed as
    the evaluation saw its tickets then (its computed_at), with today's rule. Returns "changed"; "right" when the
    stored figures are today's rule's already (a second run, a later evaluation, no ticket ever waited); "unknown"
    when they are neither rule's — the tickets changed since (merged, moved): such an evaluation is left as it is,
    and "Evaluate again" recomputes it from today's data. Only the first two change the record (audited)."""
    from . import scoring
    from .models import AccountReview

    stored = (review.avg_response_hours, review.avg_resolution_hours)
    now = review.computed_at
    # the tickets of the file's own days (since session 41), or of the whole period (as evaluations were computed
    # before): a stored figure is recognised in either
    for served in (True, False):
        _t0, _t1, _ids, tickets = _review_tickets(review.account, review.start, review.end, served=served)
        if stored == average_waits(tickets, now, as_of=now):
            return "right"
    for served in (True, False):
        _t0, _t1, _ids, tickets = _review_tickets(review.account, review.start, review.end, served=served)
        today_rule = average_waits(tickets, now, as_of=now)
        if stored == average_waits(tickets, now, as_of=now, before_session_31=True):
            break
    else:
        return "unknown"
    response, resolution = today_rule
    components = [dict(c) for c in review.components or []]
    for component in components:
        hours = {"response": response, "resolution": resolution}.get(component.get("name"))
        target = {"response": RESPONSE_TARGET_H, "resolution": RESOLUTION_TARGET_H}.get(component.get("name"))
        if hours is None or target is None or component.get("default"):
            continue
        value = Decimal(100) if hours == 0 else min(Decimal(100), target / hours * 100)
        value = scoring.q2(value)
        component["value"] = str(value)
        component["contribution"] = str(scoring.q2(value * Decimal(component["weight"])))
    score = sum((Decimal(c["contribution"]) for c in components), Decimal(0))
    with transaction.atomic():
        # only what it read: a review evaluated again meanwhile (another computed_at) is right by construction
        updated = AccountReview.objects.filter(
            pk=review.pk, computed_at=review.computed_at, avg_response_hours=stored[0], avg_resolution_hours=stored[1]
        ).update(avg_response_hours=response, avg_resolution_hours=resolution, components=components, score=score)
        if not updated:
            return "right"
        audit.record(A.UPDATE, review, user=user, changes={
            "avg_response_hours": [stored[0], response], "avg_resolution_hours": [stored[1], resolution],
            "score": [review.score, score],
        }, reason=RECOMPUTE_REASON, period=review.period)  # fmt: skip
    review.avg_response_hours, review.avg_resolution_hours = response, resolution
    review.components, review.score = components, score
    return "changed"


def recompute_stored_waits(user=None) -> dict[str, int]:
    """recompute_review_waits for every stored evaluation, each in its own transaction (killed half-way, it is
    simply run again: those already done read "right"). Returns the count of each outcome."""
    from .models import AccountReview

    counts = {"changed": 0, "right": 0, "unknown": 0}
    reviews = AccountReview.objects.select_related("account").order_by("pk")
    for review in reviews.exclude(avg_response_hours=None, avg_resolution_hours=None).iterator(chunk_size=200):
        counts[recompute_review_waits(review, user=user)] += 1
    return counts


def require_reviewer(user, account: KeyAccount) -> None:
    """Who computes an account's evaluation: who runs the account (not every key-account manager: its project
    manager) or runs evaluations, as the page offers it."""
    if not (
        (may_manage(user, account) or access.can(user, Cap.RUN_EVALUATIONS))
        and accounts_for(user).filter(pk=account.pk).exists()
    ):
        raise PermissionDenied(NOT_ALLOWED)


def review_account(account: KeyAccount, period: str, user=None):
    """Compute (or recompute) the account's evaluation for a quarter or a year from the data: satisfaction
    (revisit surveys), quality feedback (quality complaint cases), average first-response and resolution
    time (SLA clocks, in hours as the customer waits them; a ticket still open counts with its wait so far;
    as the desk's clocks, neither counts the time the ticket waited on the customer, nor the resolution the days a
    reopened ticket stood resolved), complaints and their resolution, and plan items due in
    the period done on time."""
    from pharmacrm.safety.models import SafetyCase
    from pharmacrm.servicedesk.choices import ClockKind, Status
    from pharmacrm.servicedesk.models import Survey

    from . import scoring
    from .models import AccountReview

    if user is not None:
        require_reviewer(user, account)
    period = period_label(period)
    start, end = period_bounds(period)
    outside = listing_error(account, start, end)
    if outside:
        raise ValidationError({"period": [outside]})
    # the file's own days of the period (from its listing to its de-listing), as its team's scorecards count them
    served_from, served_to = account_span(account, start, end) or (start, end)
    t0, t1, inst_ids, tickets = _review_tickets(account, start, end)
    # the revisits of the period's tickets, and the answers the customer (or a department) gave a satisfaction survey
    # campaign in the file's days of the period
    surveys = Survey.objects.filter(
        Q(ticket__in=tickets.values("id")) | Q(ticket__isnull=True, institution_id__in=inst_ids, answered_at__gte=t0,
                                               answered_at__lt=t1), score__isnull=False)  # fmt: skip
    sat = surveys.aggregate(avg=Avg("score"), n=Count("id"))
    now = timezone.now()
    clocks = _counted_clocks(tickets)
    pending = dict(clocks.filter(fulfilled_at__isnull=True).values("kind").annotate(n=Count("id")).values_list("kind", "n"))
    response, resolution = average_waits(tickets, now)
    complaints = tickets.filter(category__complaint=True)  # the categories marked as complaints
    resolved = complaints.filter(status__in=[Status.RESOLVED, Status.INFORMED, Status.CLOSED]).count()
    quality = SafetyCase.objects.filter(
        Q(source_ticket__in=tickets.values("id")) | Q(source_interaction__institution_id__in=inst_ids,
                                                     source_interaction__received_at__gte=t0,
                                                     source_interaction__received_at__lt=t1),
        kind="quality",
    ).count()  # fmt: skip
    items = PlanItem.objects.filter(plan__account=account, plan__status__in=[PlanStatus.APPROVED, PlanStatus.SUPERSEDED],
                                    deadline__gte=start, deadline__lte=end).exclude(status=ItemStatus.CANCELLED)  # fmt: skip
    counted = _due_items(served_items(items))
    due = len(counted)
    on_time = sum(1 for _owner, deadline, done in counted
                  if done is not None and timezone.localtime(done).date() <= deadline)  # fmt: skip
    n_complaints = complaints.count()
    n_tickets = tickets.count()
    # a measure without data in the period scores the model's neutral default and says so ("no data"): an
    # empty quarter must not look excellent
    neutral = review_default()
    values = {
        "satisfaction": (Decimal(str(sat["avg"])) - 1) / 4 * 100 if sat["n"] else None,
        "response": min(Decimal(100), RESPONSE_TARGET_H / response * 100) if response else None,
        "resolution": min(Decimal(100), RESOLUTION_TARGET_H / resolution * 100) if resolution else None,
        "complaints": max(Decimal(0), Decimal(100) - 20 * n_complaints) if n_tickets else None,
        "plan": Decimal(on_time) / Decimal(due) * 100 if due else None,
    }
    if response == 0:  # every first response at the very moment of receipt: the target met in full
        values["response"] = Decimal(100)
    if resolution == 0:
        values["resolution"] = Decimal(100)
    weights = scoring.normalised_weights(REVIEW_WEIGHTS)
    components, total = [], Decimal(0)
    for name, weight in weights.items():
        value = scoring.q2(neutral if values[name] is None else values[name])
        contribution = scoring.q2(value * weight)
        total += contribution
        component = {"name": name, "value": str(value), "weight": str(weight), "contribution": str(contribution)}
        if values[name] is None:
            component["default"] = True
        components.append(component)
    fields = dict(
        start=served_from, end=served_to, satisfaction=Decimal(str(sat["avg"])).quantize(Decimal("0.01")) if sat["n"] else None,
        surveys=sat["n"], quality_feedback=quality, tickets=n_tickets, avg_response_hours=response,
        avg_resolution_hours=resolution, unanswered=pending.get(ClockKind.FIRST_RESPONSE, 0),
        unresolved=pending.get(ClockKind.RESOLUTION, 0), complaints=n_complaints, complaints_resolved=resolved, plan_items_due=due,
        plan_items_on_time=on_time, score=total, components=components, computed_at=timezone.now(),
    )  # fmt: skip
    with transaction.atomic():
        review, created = AccountReview.objects.update_or_create(account=account, period=period, defaults=fields)
        audit.record(A.CREATE if created else A.UPDATE, review, user=user, score=str(total), period=review.period)
    return review


def served_in(start: dt.date):
    """The key accounts a period beginning on `start` evaluates: the active ones and those de-listed during or
    after it — the team served a customer de-listed on 15 December for most of the fourth quarter, and its
    scorecards count that quarter's work. listing_error leaves out who was listed only after the period."""
    begins = timezone.make_aware(dt.datetime.combine(start, dt.time()))
    return KeyAccount.objects.filter(Q(status=AccountStatus.ACTIVE) | Q(delisted_at__gte=begins))


def review_all(period: str, user=None) -> int:
    """Evaluate every key account served in the period (those listed only after it ended, or de-listed before it
    began, are left out)."""
    start, end = period_bounds(period)
    count = 0
    for account in served_in(start):
        if listing_error(account, start, end):
            continue
        review_account(account, period, user=user)
        count += 1
    return count


def previous_quarter(day: dt.date) -> str:
    q = (day.month - 1) // 3 + 1
    return f"{day.year - 1}Q4" if q == 1 else f"{day.year}Q{q - 1}"


def scheduled_reviews(today: dt.date | None = None) -> int:
    """The worker: after a quarter ends, each key account's evaluation of that quarter, and of the year that
    ended last — once. The year is looked for every night, not in January only: a worker stopped for all of
    January would otherwise leave the year unevaluated for good."""
    from .models import AccountReview

    today = today or timezone.localdate()
    done = 0
    for period in (previous_quarter(today), str(today.year - 1)):
        start, end = period_bounds(period)
        missing = served_in(start).exclude(pk__in=AccountReview.objects.filter(period=period).values("account_id"))
        for account in missing:
            if listing_error(account, start, end):
                continue  # listed after the period ended: nothing of it to evaluate
            review_account(account, period)
            done += 1
    return done


def _merged(spans: list[tuple[dt.date, dt.date]]) -> list[tuple[dt.date, dt.date]]:
    """Day spans (both ends included) merged where they overlap or touch: a member in two roles of one account
    served it once."""
    out: list[list[dt.date]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1] + dt.timedelta(days=1):
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def _days(spans) -> int:
    return sum((b - a).days + 1 for a, b in spans)


def account_span(account: KeyAccount, start: dt.date, end: dt.date) -> tuple[dt.date, dt.date] | None:
    """The days of start–end the account was a key account (listed on, de-listed on: both included), as its
    evaluation covers them; None when none."""
    listed = timezone.localtime(account.listed_at).date() if account.listed_at else start
    delisted = timezone.localtime(account.delisted_at).date() if account.delisted_at else end
    a, b = max(start, listed), min(end, delisted)
    return (a, b) if a <= b else None


def scorecards(period: str) -> list[dict]:
    """Each team member's scorecard for a period (staff performance, seed 001 §3.4), from the accounts whose
    service team they were on in the period and only for the days they were (TeamTenure):

    - **score**: each account's evaluation score counts for the share of the account's days in the period (the
      days it was a key account) that the member served; for the rest of those days the neutral value of a
      measure without data (`review_default`, 60), neither credit nor blame. The accounts are then averaged,
      weighted by the days the member served each. A member who served the whole period gets the accounts'
      scores as they are; one who joined on its last day gets almost the neutral value, one who left halfway
      half of each.
    - **plan items**: those they owned on those accounts whose deadline fell in the period while they served
      the account (done on time / late or open). An item of an account they did not serve then counts on
      nobody's card.

    A member who left since keeps their card; one who joined later has none for it."""
    from .models import AccountReview

    period = period_label(period)
    start, end = period_bounds(period, ended=False)
    reviews = dict(AccountReview.objects.filter(period=period).values_list("account_id", "score"))
    neutral = review_default()
    cards: dict[int, dict] = {}
    served = TeamTenure.objects.filter(Q(end__isnull=True) | Q(end__gte=start), start__lte=end)
    spans: dict[tuple[int, int], list] = {}  # (user, account) → the days served in the period
    for m in served.select_related("user", "account__institution").order_by("role", "start", "id"):
        card = cards.setdefault(m.user_id, {"user": m.user, "accounts": [], "roles": set()})
        card["roles"].add(m.role)
        if m.account_id not in [a.pk for a in card["accounts"]]:
            card["accounts"].append(m.account)
        spans.setdefault((m.user_id, m.account_id), []).append((max(start, m.start), min(end, m.end or end)))
    for (user_id, account_id), days in spans.items():
        spans[(user_id, account_id)] = _merged(days)
    for card in cards.values():
        weighted, weights, rows = Decimal(0), 0, []
        for account in list(card["accounts"]):
            own = spans[(card["user"].pk, account.pk)]
            span = account_span(account, start, end)
            # the days the member served while the account was a key account
            days = span and _days([(max(a, span[0]), min(b, span[1])) for a, b in own if max(a, span[0]) <= min(b, span[1])])
            if not days:  # not a key account while they were on its team (listed later, de-listed before)
                card["accounts"].remove(account)
                continue
            total = _days([span])
            score = reviews.get(account.pk)
            credited = None
            if score is not None and days:
                share = Decimal(days) / Decimal(total)
                credited = (score * share + neutral * (1 - share)).quantize(Decimal("0.01"))
                weighted += credited * days
                weights += days
            rows.append({"account": account, "days": days, "account_days": total, "score": score,
                         "credited": credited})  # fmt: skip
        card["served"] = rows
        card["average_score"] = (weighted / weights).quantize(Decimal("0.01")) if weights else None
    items = PlanItem.objects.filter(deadline__gte=start, deadline__lte=end,
                                    plan__status__in=[PlanStatus.APPROVED, PlanStatus.SUPERSEDED])  # fmt: skip
    items = served_items(items.exclude(status=ItemStatus.CANCELLED))
    # a period still running (this quarter, this year): an open item whose deadline has not passed has not fallen
    # due yet — counted, it read as missed on the member's card
    items = items.exclude(deadline__gte=timezone.localdate(), completed_at__isnull=True)
    for owner_id, account_id, deadline, completed in _due_items(items, with_account=True):
        card = cards.get(owner_id)
        own = spans.get((owner_id, account_id))
        # only while the owner served that account: an item of another account, or one that fell due before they
        # joined or after they left it, is not theirs to answer for
        if card is None or not own or not any(a <= deadline <= b for a, b in own) or not any(
            a.pk == account_id for a in card["accounts"]
        ):
            continue
        card["items_due"] = card.get("items_due", 0) + 1
        if completed is not None and timezone.localtime(completed).date() <= deadline:
            card["items_on_time"] = card.get("items_on_time", 0) + 1
    out = []
    for card in cards.values():
        if not card["accounts"]:
            continue  # on no key account's team in the period
        card.setdefault("items_due", 0)
        card.setdefault("items_on_time", 0)
        card["roles"] = sorted(card["roles"])
        out.append(card)
    out.sort(key=lambda c: (c["average_score"] is None, -(c["average_score"] or 0), c["user"].username))
    return out
