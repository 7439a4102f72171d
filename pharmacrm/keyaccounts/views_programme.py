"""Key-account programme pages: the list of key accounts, proposals with their review and signed decision,
the review & approval inbox, the key-account file (team, plan, agreements, meetings, evaluations,
purchases, tickets, trials), the agreement archive, a member's page, the leadership scorecards and the
progress report. Every write goes through keyaccounts.services; every read asks core.access."""

from __future__ import annotations

import datetime as dt
import functools
import io
import unicodedata
from pathlib import Path
from urllib.parse import quote, urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from pharmacrm.core import access, amendments, audit, downloads, personal
from pharmacrm.core.form_saves import SENT_AGAIN, create_once, deleted_by, sent_again, sent_again_after
from pharmacrm.core.models import AuditEntry, User
from pharmacrm.core.roles import READ_ONLY_ROLES, Cap
from pharmacrm.customers import normalise
from pharmacrm.customers.choices import Tier
from pharmacrm.customers.normalise import clean_text
from pharmacrm.customers.views import AlreadyCreated
from pharmacrm.customers.views_import import MULTIPART_OVERHEAD, SizeLimitHandler, content_length

from . import services
from .choices import (
    OPEN_ITEM,
    OPEN_PROPOSAL,
    AccountStatus,
    AgreementStatus,
    Component,
    ModelKind,
    PlanArea,
    PlanStatus,
    ProposalKind,
    ProposalStatus,
    TeamRole,
)
from .forms_programme import (
    ActionEditForm,
    AgreementForm,
    AmendmentForm,
    ArchiveFilterForm,
    CadenceForm,
    DecisionForm,
    ItemForm,
    MeasureForm,
    MeetingForm,
    MemberForm,
    OpinionForm,
    PeriodForm,
    PlanEditForm,
    PlanStartForm,
    ProgressForm,
    ProposalForm,
    SignedForm,
    SubmitForm,
    TermForm,
    TrialForm,
    TrialUpdateForm,
)
from .models import (
    AccountReview,
    Agreement,
    KeyAccount,
    MeetingAction,
    PlanItem,
    Proposal,
    Score,
    ServicePlan,
    TeamMember,
    TrialOffer,
)

A = AuditEntry.Action
PAGE_SIZE = 50
MEETINGS_SHOWN = 20  # on the key-account page, newest first, unless ?meetings=all


# --- reading helpers ---------------------------------------------------------------------------------


def _account_or_404(user, pk: int) -> KeyAccount:
    account = services.accounts_for(user).select_related("institution", "team").filter(pk=pk).first()
    if account is None:
        raise Http404(_("No such key account, or you may not see it."))
    return account


def _proposal_or_404(user, pk: int) -> Proposal:
    proposal = (
        services.proposals_for(user)
        .select_related("institution", "account", "proposed_by", "decided_by", "signature")
        .filter(pk=pk)
        .first()
    )
    if proposal is None:
        raise Http404(_("No such proposal, or you may not see it."))
    return proposal


def _agreement_or_404(user, pk: int) -> Agreement:
    agreement = (
        Agreement.objects.select_related("account__institution", "plan")
        .filter(pk=pk, account__in=services.accounts_for(user))
        .first()
    )
    if agreement is None:
        raise Http404(_("No such agreement, or you may not see it."))
    return agreement


def latest_candidate(institution) -> Score | None:
    return (
        Score.objects.filter(institution=institution, kind="candidate")
        .order_by("-as_of", "-computed_at")
        .first()
    )


REVIEW_LABELS = {
    "satisfaction": gettext_lazy("Satisfaction"),
    "response": gettext_lazy("First response time"),
    "resolution": gettext_lazy("Resolution time"),
    "complaints": gettext_lazy("Complaints"),
    "plan": gettext_lazy("Plan items on time"),
}
# measures whose explanation shows purchase figures: only for those who may see purchases
PURCHASE_MEASURES = {Component.AMOUNT, Component.FREQUENCY, Component.CREDIT, Component.GROWTH}


def component_rows(components, user=None) -> list[dict]:
    """A score's components with their labels and a plain-words explanation (purchase figures only for
    users who may see purchases)."""
    from .views_eval import explain

    labels = {**REVIEW_LABELS, **dict(Component.choices)}
    purchases = user is not None and access.can(user, Cap.VIEW_PURCHASES)
    rows = []
    for c in components or []:
        name = c.get("name", "")
        shown = isinstance(c.get("detail"), dict) and name in Component.values and (purchases or name not in PURCHASE_MEASURES)
        rows.append({**c, "label": labels.get(name, name), "detail": explain(c) if shown else ""})
    return rows


def account_rows(accounts) -> list[dict]:
    """Each account with its project manager(s), plan in force, open draft, latest agreement, open and
    overdue items: a fixed number of queries whatever the number of accounts."""
    accounts = list(accounts)
    ids = [a.pk for a in accounts]
    today = timezone.localdate()
    pms: dict[int, list] = {}
    for m in TeamMember.objects.filter(account_id__in=ids, role=TeamRole.PROJECT_MANAGER).select_related(
        "user"
    ):
        pms.setdefault(m.account_id, []).append(m.user)
    in_force: dict[int, ServicePlan] = {}
    drafts: dict[int, ServicePlan] = {}
    for plan in ServicePlan.objects.filter(account_id__in=ids).order_by("version_number"):
        if plan.status == PlanStatus.APPROVED:
            in_force[plan.account_id] = plan
        elif plan.status in (PlanStatus.DRAFT, PlanStatus.SUBMITTED, PlanStatus.REJECTED):
            drafts[plan.account_id] = plan
    latest = services.agreements_shown(ids, today)  # the one in force, not a renewal waiting to be signed
    counts = (
        PlanItem.objects.filter(plan__account_id__in=ids, plan__status=PlanStatus.APPROVED)
        .values("plan__account_id")
        .annotate(
            open=Count("id", filter=Q(status__in=OPEN_ITEM)),
            overdue=Count("id", filter=services.overdue_q(today)),
            done=Count("id", filter=Q(status="done")),
        )
    )
    by_account = {c["plan__account_id"]: c for c in counts}
    meetings = services.meeting_dues(accounts, today)  # the next service meeting: due soon, overdue
    rows = []
    for a in accounts:
        c = by_account.get(a.pk, {})
        rows.append({
            "account": a, "pms": pms.get(a.pk, []), "plan": in_force.get(a.pk), "draft": drafts.get(a.pk),
            "agreement": latest.get(a.pk), "open": c.get("open", 0), "overdue": c.get("overdue", 0),
            "done": c.get("done", 0), "meeting": meetings[a.pk],
        })  # fmt: skip
    return rows


def _leadership(user) -> bool:
    """Leadership and oversight: staff scorecards and other members' pages."""
    return access.can(user, Cap.APPROVE_KEY_ACCOUNTS) or access.can(user, Cap.VIEW_AUDIT)


def may_open_member_page(viewer, person_pk: int) -> bool:
    """Whether `viewer` may open the work page of the user `person_pk` (/keyaccounts/team/<id>/): their own,
    and for leadership and those who run key accounts of every customer anyone's. The page asks it, and the
    team table links a member's name only when it holds."""
    return access.can(viewer, Cap.VIEW_KEY_ACCOUNTS) and (
        person_pk == viewer.pk
        or _leadership(viewer)
        or (access.can(viewer, Cap.MANAGE_KEY_ACCOUNTS) and access.can(viewer, Cap.ALL_CUSTOMERS))
    )


PERIOD_SHOWN = 40  # characters of a period that is none, shown back in its field with the message


def _scorecard_period(request) -> tuple[str, str]:
    """The period a scorecard page shows: ?period= (a quarter or a year), by default the last quarter that is
    over (the quarter running has no evaluations yet); and the message when it is not a period."""
    # read whole: cut to six characters, 2026Q34 showed 2026Q3's cards as if asked for; shown back (within reason)
    # with the message, so that the user sees what was not a period. A field left empty (or blank) is the default.
    period = services.period_label(request.GET.get("period")) or services.previous_quarter(timezone.localdate())
    period = period[:PERIOD_SHOWN]
    try:
        services.period_bounds(period, ended=False)
    except ValidationError as e:
        return period, " ".join(e.messages)
    return period, ""


# --- the list and the inbox ----------------------------------------------------------------------------


@login_required
@require_GET
def home(request):
    access.require(request.user, Cap.VIEW_KEY_ACCOUNTS)
    show = request.GET.get("status") or AccountStatus.ACTIVE
    if show not in AccountStatus.values:
        show = AccountStatus.ACTIVE
    accounts = services.accounts_for(request.user).filter(status=show).select_related("institution")
    rows = account_rows(accounts.order_by("number"))
    user = request.user
    context = {
        "rows": rows, "show": show, "statuses": AccountStatus.choices,
        "may_propose": access.can(user, Cap.PROPOSE_KEY_ACCOUNTS), "leadership": _leadership(user),
        "waiting": len(_inbox(user)["all"]),
    }  # fmt: skip
    return render(request, "keyaccounts/ka_home.html", context)


def _inbox(user) -> dict:
    proposals = services.proposals_for(user).select_related("institution", "proposed_by")
    out: dict[str, list] = {"review": [], "send": [], "decide": [], "plans": []}
    if access.can(user, Cap.REVIEW_KEY_ACCOUNTS) and services.departments_of(user):
        out["review"] = list(proposals.filter(status=ProposalStatus.REVIEW).exclude(reviews__reviewer=user))
    if access.can(user, Cap.PROPOSE_KEY_ACCOUNTS):
        out["send"] = list(proposals.filter(status=ProposalStatus.REVIEW, proposed_by=user))
    if access.can(user, Cap.APPROVE_KEY_ACCOUNTS):
        out["decide"] = list(
            proposals.filter(status=ProposalStatus.SUBMITTED).exclude(proposed_by=user).exclude(submitted_by=user)
        )
        waiting = ServicePlan.objects.filter(status=PlanStatus.SUBMITTED, account__status=AccountStatus.ACTIVE,
                                             account__in=services.accounts_for(user))  # fmt: skip
        out["plans"] = list(  # never a plan the user wrote, submitted or delivers: the service refuses those
            services.plans_user_may_decide(user, waiting)
            .select_related("account__institution", "created_by")
            .order_by("submitted_at")
        )
    out["all"] = out["review"] + out["send"] + out["decide"] + out["plans"]
    return out


@login_required
@require_GET
def inbox(request):
    access.require(request.user, Cap.VIEW_KEY_ACCOUNTS)
    return render(request, "keyaccounts/ka_inbox.html", {"inbox": _inbox(request.user)})


@login_required
@require_GET
def proposal_list(request):
    access.require(request.user, Cap.VIEW_KEY_ACCOUNTS)
    status = request.GET.get("status", "")
    qs = services.proposals_for(request.user).select_related("institution", "proposed_by", "decided_by")
    wrong_status = bool(status) and status not in ProposalStatus.values
    # a status that does not exist shows nothing and says why, not all (as the agreements archive does)
    if wrong_status:
        qs = qs.none()
    elif status:
        qs = qs.filter(status=status)
    page = Paginator(qs.order_by("-proposed_at", "-id"), PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"page_obj": page, "rows": page.object_list, "status": status, "statuses": ProposalStatus.choices,
               "wrong_status": wrong_status,
               "may_propose": access.can(request.user, Cap.PROPOSE_KEY_ACCOUNTS)}  # fmt: skip
    return render(request, "keyaccounts/ka_proposals.html", context)


# --- proposals -----------------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def proposal_create(request):
    user = request.user
    access.require(user, Cap.PROPOSE_KEY_ACCOUNTS)
    raw = request.POST.get("institution") or request.GET.get("institution") or ""
    kind = request.POST.get("kind") or request.GET.get("kind") or ProposalKind.LIST
    if kind not in ProposalKind.values:
        kind = ProposalKind.LIST
    institution = None
    if raw.isdecimal() and len(raw) < 19:
        institution = access.institutions_for(user).filter(pk=int(raw)).first()
    if institution is None:
        raise Http404(_("Choose a customer from the candidate list or its page."))
    status = 200
    if request.method == "POST":
        form = ProposalForm(request.POST)
        if form.is_valid():
            try:  # once per form: sent again (a double click), the proposal the first one sent
                proposal = create_once(user, form.cleaned_data["form_token"], lambda: services.propose(
                    user, institution, reason=form.cleaned_data["reason"], kind=kind))
            except AlreadyCreated as e:
                return sent_again(request, Proposal, e.pk, reverse("keyaccounts:proposals"),
                                  page_of=lambda p: reverse("keyaccounts:proposal", args=[p.pk]))  # fmt: skip
            except ValidationError as e:
                form.add_service_errors(e)
            else:
                messages.success(
                    request, _("Proposal %(number)s was sent for review.") % {"number": proposal.number}
                )
                return redirect("keyaccounts:proposal", pk=proposal.pk)
        status = 400
    else:
        form = ProposalForm()
    score = latest_candidate(institution)
    context = {
        "form": form, "institution": institution, "kind": kind, "kind_label": ProposalKind(kind).label,
        "score": score, "components": component_rows(score.components if score else [], request.user),
        "account": services.active_account(institution.pk),
        # a department is served through its hospital: say so instead of offering a proposal bound to fail
        "refusal": services.department_refusal(institution) if kind == ProposalKind.LIST else None,
    }  # fmt: skip
    return render(request, "keyaccounts/ka_proposal_form.html", context, status=status)


def _proposal_page(request, proposal: Proposal, status: int = 200, **forms) -> HttpResponse:
    user = request.user
    departments = services.departments_of(user)
    may_review = (
        proposal.status == ProposalStatus.REVIEW
        and access.can(user, Cap.REVIEW_KEY_ACCOUNTS)
        and bool(departments)
    )
    may_send = proposal.status == ProposalStatus.REVIEW and services.may_send(user, proposal)
    approver = access.can(user, Cap.APPROVE_KEY_ACCOUNTS)
    own = user.pk in (proposal.proposed_by_id, proposal.submitted_by_id)
    may_decide = proposal.status == ProposalStatus.SUBMITTED and approver and not own
    mine = proposal.reviews.filter(reviewer=user).first()
    opinion_form = forms.get("opinion_form")
    if opinion_form is None and may_review:
        initial = (
            {"department": mine.department, "opinion": mine.opinion,
             "comment": personal.free_text(mine.comment, personal.masks_free_text(user))} if mine else {}
        )
        opinion_form = OpinionForm(departments=departments, initial=initial, prefix="review")
    context = {
        "proposal": proposal,
        "reviews": list(proposal.reviews.select_related("reviewer")),
        "components": component_rows(proposal.components, request.user),
        "may_review": may_review, "my_review": mine, "opinion_form": opinion_form,
        "may_send": may_send,
        "review_shortfall": services.review_shortfall(proposal) if may_send else None,
        "submit_form": forms.get("submit_form") or SubmitForm(initial={"version": proposal.version}, prefix="submit"),
        "may_decide": may_decide, "own_proposal": own and approver and proposal.status == ProposalStatus.SUBMITTED,
        "sent_by_me": proposal.submitted_by_id == user.pk and proposal.proposed_by_id != user.pk,
        "decision_form": forms.get("decision_form") or DecisionForm(initial={"version": proposal.version},
                                                                    prefix="decision"),
        "decision_refused": forms.get("decision_refused", False),
        "may_withdraw": services.may_withdraw(user, proposal),
        "withdraw_form": SubmitForm(initial={"version": proposal.version}, prefix="withdraw"),
        "candidate": latest_candidate(proposal.institution),
        # a de-listing ends the agreements in force: the amendments waiting for their day lapse, said beforehand
        "lapsing": services.lapsing_on_delisting(proposal) if may_decide else [],
    }  # fmt: skip
    return render(request, "keyaccounts/ka_proposal_detail.html", context, status=_refusal_status(status, forms))


@login_required
@require_GET
def proposal_detail(request, pk: int):
    return _proposal_page(request, _proposal_or_404(request.user, pk))


@login_required
@require_POST
def proposal_opinion(request, pk: int):
    proposal = _proposal_or_404(request.user, pk)
    access.require(request.user, Cap.REVIEW_KEY_ACCOUNTS)
    form = OpinionForm(request.POST, departments=services.departments_of(request.user), prefix="review")
    if form.is_valid():
        d = form.cleaned_data
        try:
            services.give_opinion(request.user, proposal, opinion=d["opinion"], comment=d["comment"],
                                  department=d["department"])  # fmt: skip
        except ValidationError as e:
            form.add_service_errors(e)
            proposal.refresh_from_db()  # sent to leadership meanwhile: the page shows it as it is now, with the reason
        else:
            messages.success(request, _("Your opinion was recorded."))
            return redirect("keyaccounts:proposal", pk=proposal.pk)
    return _proposal_page(request, proposal, 400, opinion_form=form)


@login_required
@require_POST
def proposal_submit(request, pk: int):
    proposal = _proposal_or_404(request.user, pk)
    services.require_sender(request.user, proposal)  # refused before the form is read, as proposal_decide
    form = SubmitForm(request.POST, prefix="submit")
    if form.is_valid():
        try:
            services.submit_for_decision(request.user, proposal, version=form.cleaned_data.get("version"))
        except ValidationError as e:
            form.add_service_errors(e)
        else:
            messages.success(request, _("The proposal was sent to leadership for a decision."))
            return redirect("keyaccounts:proposal", pk=proposal.pk)
    return _proposal_page(request, proposal, 400, submit_form=form)


@login_required
@require_POST
def proposal_decide(request, pk: int):
    proposal = _proposal_or_404(request.user, pk)
    # who may not decide at all is refused (403, audited) before the form is read: an empty form from them got 400
    # with field errors, and no trace of a refused write (found by QA)
    access.require(request.user, Cap.APPROVE_KEY_ACCOUNTS)
    form = DecisionForm(request.POST, prefix="decision")
    if form.is_valid():
        d = form.cleaned_data
        try:
            services.decide(request.user, proposal, approve=form.approve, comment=d["comment"],
                            otp_code=d["otp_code"], version=d.get("version"))  # fmt: skip
        except services.DecisionRefused as e:  # a stale page or a crafted request: say why, keep the comment
            form.add_error(None, str(e))
            return _proposal_page(request, proposal, 403, decision_form=form, decision_refused=True)
        except ValidationError as e:
            form.add_service_errors(e)
        else:
            proposal.refresh_from_db()
            messages.success(request, _("Proposal %(number)s: %(status)s.")
                             % {"number": proposal.number, "status": proposal.get_status_display()})  # fmt: skip
            if proposal.status == ProposalStatus.APPROVED and proposal.account_id:
                return redirect("keyaccounts:account", pk=proposal.account_id)
            return redirect("keyaccounts:proposal", pk=proposal.pk)
    proposal = _proposal_or_404(request.user, pk)
    return _proposal_page(request, proposal, 400, decision_form=form)


@login_required
@require_POST
def proposal_withdraw(request, pk: int):
    """The withdraw button's form carries the version the page showed: a proposal sent to leadership or decided since is
    not closed unseen (the refusal says to reload)."""
    proposal = _proposal_or_404(request.user, pk)
    form = SubmitForm(request.POST, prefix="withdraw")
    version = form.cleaned_data.get("version") if form.is_valid() else None
    try:
        services.withdraw(request.user, proposal, version=version)
    except ValidationError as e:
        for m in e.messages:
            messages.error(request, m)
    else:
        messages.success(request, _("The proposal was withdrawn."))
    return redirect("keyaccounts:proposal", pk=proposal.pk)


# --- the key-account file --------------------------------------------------------------------------------


def _plan_context(account: KeyAccount, today: dt.date) -> dict:
    plans = list(account.plans.select_related("created_by", "decided_by").order_by("-version_number"))
    in_force = next((p for p in plans if p.status == PlanStatus.APPROVED), None)
    draft = next(
        (p for p in plans if p.status in (PlanStatus.DRAFT, PlanStatus.SUBMITTED, PlanStatus.REJECTED)), None
    )
    wanted = [p.pk for p in (in_force, draft) if p is not None]
    items: dict[int, list] = {pk: [] for pk in wanted}
    by_pk = {p.pk: p for p in plans}
    for item in services.in_plan_order(PlanItem.objects.filter(plan_id__in=wanted).select_related("owner")):
        item.plan = by_pk[item.plan_id]
        # the plan in force's open items past their deadline (a de-listed file: only what was missed while it was
        # served), as the API's `overdue` says
        item.overdue = services.item_overdue(item, today)
        items[item.plan_id].append(item)

    def by_area(plan):
        if plan is None:
            return []
        groups = []
        for value, label in PlanArea.choices:
            rows = [i for i in items[plan.pk] if i.area == value]
            if rows:
                groups.append({"area": value, "label": label, "items": rows})
        return groups

    return {
        "plans": plans, "plan": in_force, "draft": draft,
        "plan_areas": by_area(in_force), "draft_areas": by_area(draft),
        "plan_items": items.get(in_force.pk, []) if in_force else [],
        "draft_items": items.get(draft.pk, []) if draft else [],
        "draft_editable": draft is not None and draft.status in (PlanStatus.DRAFT, PlanStatus.REJECTED),
    }  # fmt: skip


def _account_context(request, account: KeyAccount, **forms) -> dict:
    from pharmacrm.sales import services as sales
    from pharmacrm.servicedesk.models import ImprovementAction
    from pharmacrm.servicedesk.revisit import mark_openable

    user = request.user
    today = timezone.localdate()
    inst = account.institution
    manage = services.may_manage(user, account)
    record = services.may_record(user, account)
    active = account.status == AccountStatus.ACTIVE
    writer = not (access.roles_of(user) & READ_ONLY_ROLES)
    ctx: dict = {"account": account, "institution": inst, "may_manage": manage and active, "may_record": record and active,
                 "today": today, "active": active}  # fmt: skip
    # an amendment's signed copy uploaded later: by those who record amendments, whatever the account's state since
    ctx["may_attach_copy"] = manage and writer
    members = list(account.members.select_related("user").order_by("role", "id"))
    for m in members:  # a member's name links to their work page only for those who may open it
        m.may_open = may_open_member_page(user, m.user_id)
    ctx["members"] = members
    ctx["members_by_role"] = [
        {"role": value, "label": label, "members": [m for m in members if m.role == value]}
        for value, label in TeamRole.choices
    ]
    ctx.update(_plan_context(account, today))
    ctx["previous_tier_label"] = dict(Tier.choices).get(account.previous_tier, account.previous_tier)
    ctx["may_propose_delist"] = active and access.can(user, Cap.PROPOSE_KEY_ACCOUNTS)
    ctx["approver"] = access.can(user, Cap.APPROVE_KEY_ACCOUNTS)
    draft = ctx["draft"]
    # a de-listed account's file is closed: a plan it left waiting is decided by nobody (decide_plan refuses it), so
    # leadership is not offered a decision to sign that fails
    submitted = active and draft is not None and draft.status == PlanStatus.SUBMITTED
    ctx["may_decide_plan"] = submitted and services.may_decide_plan(user, draft)
    ctx["own_plan_message"] = (  # why not: they wrote, changed, submitted or deliver it
        services.plan_refusal(user, draft) if submitted and ctx["approver"] and not ctx["may_decide_plan"] else ""
    )
    ctx["plan_decision_refused"] = forms.get("plan_decision_refused", False)
    ctx["member_form"] = forms.get("member_form") or MemberForm(prefix="member")
    ctx["start_form"] = forms.get("start_form") or PlanStartForm(prefix="plan")
    ctx["item_form"] = forms.get("item_form") or ItemForm(account=account, prefix="item")
    if ctx["draft_editable"] and manage:
        d = ctx["draft"]
        ctx["plan_edit_form"] = forms.get("plan_edit_form") or PlanEditForm(prefix="planedit", initial={
            "goals": d.goals, "valid_from": d.valid_from, "valid_to": d.valid_to, "version": d.version})  # fmt: skip
    edit_pk, edit_form = forms.get("item_edit", (None, None))
    ctx["item_forms"] = {}
    if ctx["draft_editable"] and manage:
        for item in ctx["draft_items"]:
            if item.pk == edit_pk:
                item.edit_form = edit_form
            else:
                item.edit_form = ItemForm(account=account, prefix=f"item{item.pk}", initial={
                    "area": item.area, "title": item.title, "standard": item.standard, "owner": item.owner_id,
                    "deadline": item.deadline, "version": item.version})  # fmt: skip
    progress_pk, progress_form = forms.get("progress", (None, None))
    for item in ctx["plan_items"]:
        item.may_update = active and writer and services.may_update_progress(user, item)
        if item.may_update:
            item.progress_form = progress_form if item.pk == progress_pk else ProgressForm(
                prefix=f"progress{item.pk}", may_cancel=ctx.get("may_manage", False), current=item.status,
                initial={"status": item.status, "progress": item.progress, "version": item.version})  # fmt: skip
    ctx["plan_submit_form"] = forms.get("plan_submit_form") or SubmitForm(
        prefix="plansubmit", initial={"version": draft.version if draft else None}
    )
    ctx["plan_decision_form"] = forms.get("plan_decision_form") or DecisionForm(
        prefix="plandecision", initial={"version": draft.version if draft else None}
    )
    # agreements
    agreements = list(account.agreements.select_related("plan", "created_by").order_by("-created_at", "-id"))
    amendments.attach_history(agreements)  # each one's amendments of its term, and its term as signed
    signed_pk, signed_form = forms.get("signed", (None, None))
    term_pk, term_form = forms.get("term", (None, None))
    amend_pk, amend_form = forms.get("amend", (None, None))
    for ag in agreements:
        # a draft whose plan version was replaced is neither signed nor issued again: the page says to generate anew
        ag.plan_replaced = services.plan_replaced(ag)
        if ag.status in (AgreementStatus.DRAFT, AgreementStatus.SIGNED) and manage and not ag.plan_replaced:
            ag.signed_form = (
                signed_form
                if ag.pk == signed_pk
                # a signed one (a better scan uploaded) keeps its signing date unless it is corrected
                else SignedForm(prefix=f"signed{ag.pk}", agreement=ag,
                                initial={"version": ag.version, "signed_date": ag.signed_date or today})  # fmt: skip
            )
            # a renewal: the amendments of the agreements it renews that its signing makes lapse, said beforehand
            ag.lapsing = services.lapsing_on_signing(ag)
        # its term: corrected while it is a draft, amended (补充协议) once it is signed — by those who run the account
        if manage and active and ag.status == AgreementStatus.DRAFT and not ag.plan_replaced:
            ag.term_form = term_form if ag.pk == term_pk else TermForm(prefix=f"term{ag.pk}", initial={
                "start_date": ag.start_date, "end_date": ag.end_date, "version": ag.version})  # fmt: skip
        elif (manage and active and ag.status in services.SERVICE_TERMS.amendable_statuses
              and ag.pending_amendment is None and not services.SERVICE_TERMS.not_amendable(ag)):  # fmt: skip
            # signed, or run out and not renewed (an amendment extends it); one amendment waiting for its day at most
            ag.amendment_form = amend_form if ag.pk == amend_pk else AmendmentForm(prefix=f"amend{ag.pk}", initial={
                "start_date": ag.start_date, "end_date": ag.end_date, "effective_date": today,
                "version": ag.version})  # fmt: skip
    ctx["agreements"] = agreements
    # the proposed term: the approved plan's validity, or the renewal after its agreement
    ctx["agreement_form"] = forms.get("agreement_form") or AgreementForm(
        prefix="agreement", account=account, initial={"renewal_notice_days": 60}
    )
    # meetings
    # the programme's meetings (held from the listing day on, as the progress report counts them): the latest 20, all
    # of them on request, so that older minutes and their actions stay readable on the page. Meetings dated before the
    # listing (recorded before that rule) are no meetings of the programme: not counted, but kept readable apart,
    # labelled as before the listing, their open actions still to be ticked off.
    programme = services.since_listing(account.meetings.all())
    ctx["meetings_total"] = programme.count()
    ctx["all_meetings"] = request.GET.get("meetings") == "all"
    shown = programme.prefetch_related("actions__owner").select_related("created_by")
    meetings = list(shown if ctx["all_meetings"] else shown[:MEETINGS_SHOWN])
    earlier = list(services.before_listing(account.meetings.all()).prefetch_related("actions__owner")
                   .select_related("created_by"))  # fmt: skip
    edit_pk, edit_form = forms.get("action_edit", (None, None))
    masked = personal.masks_free_text(user)  # contact details in the actions and trials' notes: masked, kept on saving
    for meeting in meetings + earlier:
        meeting.account = account
        for act in meeting.actions.all():
            act.may_toggle = active and writer and (act.owner_id == user.pk or record)  # services.may_complete_action
            # overdue as a plan item is (overdue_until): on a de-listed file, only what was missed while it was served
            act.late = services.action_overdue(act, today)
            # an open action is corrected in place (text, owner from the team, due date) by whoever records meetings
            if active and writer and record and act.done_at is None:
                act.edit_form = edit_form if act.pk == edit_pk else ActionEditForm(
                    account=account, prefix=f"action{act.pk}",
                    initial={"title": personal.free_text(act.title, masked), "owner": act.owner_id,
                             "due_date": act.due_date, "version": act.version})  # fmt: skip
    ctx["meetings"] = meetings
    ctx["meetings_before_listing"] = earlier
    # the cadence: the last meeting, when the next is due, whether that day is near or passed (services.meeting_due)
    ctx["meeting_due"] = services.meeting_due(account, today)
    ctx["may_set_cadence"] = writer and services.may_set_cadence(user, account)
    ctx["cadence_form"] = forms.get("cadence_form") or CadenceForm(prefix="cadence", initial={
        "meeting_cadence": account.meeting_cadence, "version": account.version})  # fmt: skip
    ctx["listed_on"] = timezone.localtime(account.listed_at).date()
    ctx["meeting_form"] = forms.get("meeting_form") or MeetingForm(account=account, prefix="meeting")
    ctx["duplicate_meeting"] = next((m.pk for m in meetings + earlier if m.pk == forms.get("duplicate_meeting")), None)
    # evaluations and measures
    # the latest period first, as in the API and the progress report (by label, a year came below its Q1)
    ctx["reviews"] = list(AccountReview.objects.filter(account=account).order_by("-end", "-start")[:8])
    for review in ctx["reviews"]:
        review.rows = component_rows(review.components, request.user)
    # beside each quarter's service evaluation, the customer evaluation of the key account in that quarter (the
    # worker's quarterly run of the key accounts): its class and, when the credit gate capped it, the class the score
    # gives and why, as the results page says it — for a reader of evaluations (one query)
    if ctx["reviews"] and access.can(user, Cap.VIEW_EVALUATIONS):
        from .views_eval import scores_for

        quarters = Score.objects.filter(kind=ModelKind.EVALUATION, institution=inst,
                                        period__in=[r.period for r in ctx["reviews"]])  # fmt: skip
        scored = {s.period: s for s in scores_for(user, quarters).only("id", "period", "score", "klass", "gate")}
        for review in ctx["reviews"]:
            review.evaluation = scored.get(review.period)
    ctx["may_review"] = active and (manage or access.can(user, Cap.RUN_EVALUATIONS))
    ctx["period_form"] = forms.get("period_form") or PeriodForm(prefix="period", initial={
        "period": services.previous_quarter(today)})  # fmt: skip
    ctx["measures"] = mark_openable(user, list(ImprovementAction.objects.filter(institution=inst)
                                               .select_related("owner").order_by("-created_at")[:20]))  # fmt: skip
    ctx["measure_form"] = forms.get("measure_form") or MeasureForm(account=account, prefix="measure")
    # purchases (read only)
    if sales.may_see_purchases(user, inst):
        credit = sales.credit(inst.pk)
        ctx["purchases"] = {"totals": sales.totals(inst.pk), "credit": credit,
                            "credit_label": sales.CREDIT_LABELS.get(credit.status, credit.status)}  # fmt: skip
    # recent tickets
    ctx["tickets"] = list(
        access.tickets_for(user).filter(Q(institution=inst) | Q(institution__parent=inst))
        .select_related("team", "assignee").order_by("-received_at")[:10]
    )  # fmt: skip
    # trials
    trials = list(account.trials.select_related("product", "created_by"))
    trial_pk, trial_update_form = forms.get("trial_update", (None, None))
    may_trial = active and writer and (record or access.can(user, Cap.MANAGE_KNOWLEDGE))
    for trial in trials:
        if may_trial:
            trial.form = (
                trial_update_form
                if trial.pk == trial_pk
                # the notes it would replace, to keep or correct (empty, saving the answer wiped the offer's)
                else TrialUpdateForm(
                    prefix=f"trial{trial.pk}",
                    initial={"status": trial.status, "notes": personal.free_text(trial.notes, masked),
                             "version": trial.version},
                )
            )
    ctx["trials"] = trials
    ctx["duplicate_trial"] = next((t.pk for t in trials if t.pk == forms.get("duplicate_trial")), None)
    ctx["may_trial"] = may_trial
    ctx["trial_form"] = forms.get("trial_form") or TrialForm(prefix="trial")
    ctx["open_section"] = forms.get("open_section", "")
    return ctx


def _account_page(request, account: KeyAccount, status: int = 200, **forms) -> HttpResponse:
    return render(
        request, "keyaccounts/ka_account.html", _account_context(request, account, **forms),
        status=_refusal_status(status, forms),
    )  # fmt: skip


def _refusal_status(status: int, forms: dict) -> int:
    """A form refused because the record changed since the page was read answers 409, as interactions and the
    service desk's pages do; other refusals keep theirs (400)."""
    shown = [f for value in forms.values() for f in (value if isinstance(value, tuple) else (value,))]
    return 409 if status == 400 and any(getattr(f, "conflict", False) for f in shown) else status


ARCHIVE_PARAMS = ("q", "status", "page")  # the agreement archive's search, filter and page


def _sent_again(request, account: KeyAccount, anchor: str):
    """The answer to an account page's form sent again (a double click): its section as the first one left it."""
    messages.info(request, SENT_AGAIN)
    return _back(account, anchor)


def _back(account: KeyAccount, anchor: str):
    return redirect(reverse("keyaccounts:account", args=[account.pk]) + f"#{anchor}")


@login_required
@require_GET
def account_detail(request, pk: int):
    return _account_page(request, _account_or_404(request.user, pk))


@login_required
@require_POST
def member_add(request, pk: int):
    account = _account_or_404(request.user, pk)
    services.require_manage(request.user, account)
    form = MemberForm(request.POST, prefix="member")
    if form.is_valid():
        try:  # once per form: sent again (a double click), the team as the first one left it
            create_once(request.user, form.cleaned_data["form_token"], lambda: services.add_member(
                request.user, account, form.cleaned_data["user"], form.cleaned_data["role"]))
        except AlreadyCreated:
            return _sent_again(request, account, "team")
        except ValidationError as e:
            form.add_service_errors(e)
        else:
            messages.success(
                request, _("%(user)s joined the service team.") % {"user": form.cleaned_data["user"]}
            )
            return _back(account, "team")
    return _account_page(request, account, 400, member_form=form, open_section="team")


@login_required
@require_POST
def member_remove(request, pk: int, member_pk: int):
    account = _account_or_404(request.user, pk)
    member = (
        TeamMember.objects.filter(pk=member_pk, account=account)
        .select_related("user", "account__team")
        .first()
    )
    if member is None:  # removed already (the button clicked twice, or by someone else): the team as it is now
        services.require_manage(request.user, account)
        messages.info(request, _("This team member was removed already."))
        return _back(account, "team")
    try:
        services.remove_member(request.user, member)
    except ValidationError as e:
        for m in e.messages:
            messages.error(request, m)
    else:
        messages.success(request, _("%(user)s left the service team.") % {"user": member.user})
    return _back(account, "team")


@login_required
@require_POST
def plan_start(request, pk: int):
    account = _account_or_404(request.user, pk)
    services.require_manage(request.user, account)  # refused before the form is read, as member_add
    form = PlanStartForm(request.POST, prefix="plan")
    if form.is_valid():
        try:
            services.start_plan(request.user, account, **form.cleaned_data)
        except ValidationError as e:
            if not hasattr(e, "error_dict"):  # not about a field: the form may not be on the page any more
                for m in e.messages:
                    messages.error(request, m)
                return _back(account, "plan")
            form.add_service_errors(e)
        else:
            messages.success(request, _("A new draft of the service plan was started."))
            return _back(account, "plan")
    return _account_page(request, account, 400, start_form=form, open_section="plan")


def _plan_gone(request, account: KeyAccount, message: str, *, deciding: bool = False) -> HttpResponse:
    """A form about the draft sent when there is none any more — sent twice (the first approved or submitted it),
    or from a page opened before someone else decided it: the plan as it is now, with why nothing was done, not a
    "page not found". Who could not have made the change at all is still refused as such."""
    if deciding:
        access.require(request.user, Cap.APPROVE_KEY_ACCOUNTS)
    else:
        services.require_manage(request.user, account)
    messages.error(request, message)
    return _back(account, "plan")


@login_required
@require_POST
def plan_edit(request, pk: int):
    account = _account_or_404(request.user, pk)
    services.require_manage(request.user, account)  # refused before the form is read, as proposal_decide
    draft = services.open_plan(account)
    if draft is None:
        return _plan_gone(request, account, _("This account has no draft plan."))
    form = PlanEditForm(request.POST, prefix="planedit")
    if form.is_valid():
        d = form.cleaned_data
        try:
            services.update_plan(request.user, draft, goals=d.get("goals") or "", valid_from=d.get("valid_from"),
                                 valid_to=d.get("valid_to"), version=d.get("version"))  # fmt: skip
        except ValidationError as e:
            form.add_service_errors(e)
        else:
            messages.success(request, _("The draft's goals and validity were saved."))
            return _back(account, "plan")
    return _account_page(request, account, 400, plan_edit_form=form, open_section="plan")


@login_required
@require_POST
def item_add(request, pk: int):
    account = _account_or_404(request.user, pk)
    services.require_manage(request.user, account)  # refused before the form is read, as proposal_decide
    draft = services.open_plan(account)
    if draft is None:
        return _plan_gone(request, account, _("This account has no draft plan."))
    form = ItemForm(request.POST, account=account, prefix="item")
    if form.is_valid():
        try:
            create_once(request.user, form.cleaned_data["form_token"],
                        lambda: services.save_item(request.user, draft, form.service_data()))
        except AlreadyCreated:  # the form sent twice (a double click): the plan as the first one left it
            return _sent_again(request, account, "plan")
        except services.AlreadyRecorded as e:  # sent twice: say which item is there, add nothing
            form.add_service_errors(e)
            return _account_page(request, account, 409, item_form=form, open_section="plan")
        except ValidationError as e:
            form.add_service_errors(e)
        else:
            messages.success(request, _("The service item was added."))
            return _back(account, "plan")
    return _account_page(request, account, 400, item_form=form, open_section="plan")


def _item_or_404(account: KeyAccount, item_pk: int) -> PlanItem:
    item = (
        PlanItem.objects.filter(pk=item_pk, plan__account=account)
        .select_related("plan__account", "owner")
        .first()
    )
    if item is None:
        raise Http404(_("No such service item."))
    return item


@login_required
@require_POST
def item_edit(request, pk: int, item_pk: int):
    account = _account_or_404(request.user, pk)
    item = _item_or_404(account, item_pk)
    services.require_manage(request.user, account)  # refused before the form is read, as proposal_decide
    form = ItemForm(request.POST, account=account, prefix=f"item{item.pk}")
    if form.is_valid():
        try:
            services.save_item(request.user, item.plan, form.service_data(), item=item,
                               version=form.cleaned_data.get("version"))  # fmt: skip
        except ValidationError as e:
            form.add_service_errors(e)
        else:
            messages.success(request, _("The service item was saved."))
            return _back(account, "plan")
    return _account_page(request, account, 400, item_edit=(item.pk, form), open_section="plan")


@login_required
@require_POST
def item_delete(request, pk: int, item_pk: int):
    account = _account_or_404(request.user, pk)
    if not PlanItem.objects.filter(pk=item_pk, plan__account=account).exists():
        # deleted already (the button clicked twice, or by someone else): the plan as it is now
        services.require_manage(request.user, account)
        if deleted_by(request.user, PlanItem, item_pk):
            messages.info(request, _("This service item was deleted already."))
        else:
            messages.error(request, _("No such service item."))
        return _back(account, "plan")
    item = _item_or_404(account, item_pk)
    version = request.POST.get("version", "")  # the item's version the page showed
    try:
        if not (version.isdecimal() and len(version) < 10):  # the page always carries it: a form without is stale
            raise services.StaleVersion(item.version)
        services.delete_item(request.user, item, version=int(version))
    except ValidationError as e:
        for m in e.messages:
            messages.error(request, m)
    else:
        messages.success(request, _("The service item was deleted."))
    return _back(account, "plan")


@login_required
@require_POST
def item_progress(request, pk: int, item_pk: int):
    account = _account_or_404(request.user, pk)
    item = _item_or_404(account, item_pk)
    services.require_progress_reporter(request.user, item)  # refused before the form is read, as proposal_decide
    form = ProgressForm(request.POST, prefix=f"progress{item.pk}", may_cancel=services.may_manage(request.user, account),
                        current=item.status)  # fmt: skip
    if form.is_valid():
        d = form.cleaned_data
        try:
            services.update_progress(request.user, item, status=d["status"], progress=d.get("progress"),
                                     note=d.get("note") or "", version=d.get("version"))  # fmt: skip
        except ValidationError as e:
            form.add_service_errors(e)
        else:
            messages.success(request, _("The progress was saved."))
            return _back(account, "plan")
    if not ServicePlan.objects.filter(pk=item.plan_id, status=PlanStatus.APPROVED).exists():
        # the item's version was replaced meanwhile: its form is no longer on the page, so say it here, with
        # what was typed, to report it on the version in force
        note = (request.POST.get(f"progress{item.pk}-note") or "").strip()
        text = _("A new version of this service plan came into force meanwhile: report the progress on it.")
        if note:
            text = _("%(refusal)s Your note was: %(note)s") % {"refusal": text, "note": note[:2000]}
        messages.error(request, text)
    return _account_page(request, account, 400, progress=(item.pk, form), open_section="plan")


@login_required
@require_POST
def plan_submit(request, pk: int):
    account = _account_or_404(request.user, pk)
    services.require_manage(request.user, account)  # refused before the form is read, as proposal_decide
    draft = services.open_plan(account)
    if draft is None:
        return _plan_gone(request, account, _("This account has no draft plan."))
    form = SubmitForm(request.POST, prefix="plansubmit")
    if form.is_valid():
        try:
            services.submit_plan(request.user, draft, version=form.cleaned_data.get("version"))
        except ValidationError as e:
            for m in e.messages:  # shown at the top of the page: the submit form has no fields to mark
                messages.error(request, m)
            return _back(account, "plan")
        else:
            messages.success(request, _("The service plan was submitted for leadership review."))
            return _back(account, "plan")
    return _account_page(request, account, 400, plan_submit_form=form, open_section="plan")


@login_required
@require_POST
def plan_decide(request, pk: int):
    account = _account_or_404(request.user, pk)
    access.require(request.user, Cap.APPROVE_KEY_ACCOUNTS)  # refused before the form is read, as proposal_decide
    draft = services.open_plan(account)
    if draft is None:  # decided already (the decision sent twice): the plan in force shows the outcome
        return _plan_gone(request, account, _("This plan is not waiting for a decision."), deciding=True)
    form = DecisionForm(request.POST, prefix="plandecision")
    if form.is_valid():
        d = form.cleaned_data
        try:
            services.decide_plan(request.user, draft, approve=form.approve, comment=d["comment"],
                                 otp_code=d["otp_code"], version=d.get("version"))  # fmt: skip
        except services.DecisionRefused as e:  # a stale page or a crafted request: say why, keep the comment
            form.add_error(None, str(e))
            return _account_page(request, account, 403, plan_decision_form=form, plan_decision_refused=True,
                                 open_section="plan")  # fmt: skip
        except ValidationError as e:
            form.add_service_errors(e)
        else:
            draft.refresh_from_db()
            messages.success(request, _("Service plan version %(v)s: %(status)s.")
                             % {"v": draft.version_number, "status": draft.get_status_display()})  # fmt: skip
            return _back(account, "plan")
    return _account_page(request, account, 400, plan_decision_form=form, open_section="plan")


@login_required
@require_POST
def agreement_create(request, pk: int):
    account = _account_or_404(request.user, pk)
    services.require_manage(request.user, account)  # refused before the form is read, as proposal_decide
    form = AgreementForm(request.POST, prefix="agreement")
    if form.is_valid():
        values = {k: v for k, v in form.cleaned_data.items() if k != "form_token"}
        try:
            agreement = create_once(request.user, form.cleaned_data["form_token"],
                                    lambda: services.generate_agreement(request.user, account, **values))
        except AlreadyCreated:  # the form sent twice (a double click): the agreement the first one generated
            return _sent_again(request, account, "agreements")
        except ValidationError as e:
            form.add_service_errors(e)
        else:
            messages.success(request, _("Agreement %(number)s was generated.") % {"number": agreement.number})
            return _back(account, "agreements")
    return _account_page(request, account, 400, agreement_form=form, open_section="agreements")


@login_required
@require_GET
def agreement_pdf(request, pk: int):
    agreement = _agreement_or_404(request.user, pk)
    try:
        data = services.agreement_document(agreement)
    except services.DocumentUnavailable as e:
        messages.error(request, str(e))
        if request.GET.get("from") == "archive":  # back to the archive page the download was started from
            back = {k: request.GET[k] for k in ARCHIVE_PARAMS if request.GET.get(k)}
            return redirect(reverse("keyaccounts:agreements") + (f"?{urlencode(back)}" if back else ""))
        return _back(agreement.account, "agreements")
    audit.record(A.EXPORT, agreement, user=request.user, format="PDF")
    # named in the reader's language: AG-2026-0003-服务协议.pdf
    return downloads.attachment(data, f"{agreement.number}-{'-'.join(_('service agreement').split())}.pdf",
                                "application/pdf")  # fmt: skip


@login_required
@require_POST
def agreement_reissue(request, pk: int):
    """Issue a draft agreement's PDF again from the current plan and customer record."""
    agreement = _agreement_or_404(request.user, pk)
    try:
        version = int(request.POST.get("version", ""))
    except ValueError:
        version = None
    try:
        services.reissue_document(request.user, agreement, version=version)
    except ValidationError as e:
        for message in e.messages:
            messages.error(request, message)
    else:
        messages.success(request, _("Agreement %(number)s was issued again from its plan and the current customer record.")
                         % {"number": agreement.number})  # fmt: skip
    return _back(agreement.account, "agreements")


def _with_signed_copy_limit(request, pk: int, then):
    """`then(request, pk, limiter, too_large)` with the body's upload limited to services.SIGNED_COPY_MAX (the
    limiter says when it passed it); a request announcing a larger body is refused before it is read, back on the
    agreements of its account."""
    too_large = _("The file is too large; the limit is 20 MB.")
    if content_length(request) > services.SIGNED_COPY_MAX + MULTIPART_OVERHEAD:
        agreement = _agreement_or_404(request.user, pk)
        messages.error(request, too_large)
        return _back(agreement.account, "agreements")
    limiter = SizeLimitHandler(request, limit=services.SIGNED_COPY_MAX)
    request.upload_handlers.insert(0, limiter)
    return then(request, pk, limiter, too_large)


@csrf_exempt  # the size check must come before anything reads the body; CSRF is checked just below
@login_required
@require_POST
def agreement_signed(request, pk: int):
    """Record the signing with the signed copy; an upload over the limit is refused before it is read."""
    return _with_signed_copy_limit(request, pk, _agreement_signed)


@csrf_protect
def _agreement_signed(request, pk: int, limiter, too_large: str):
    agreement = _agreement_or_404(request.user, pk)
    account = _account_or_404(request.user, agreement.account_id)
    services.require_manage(request.user, account)
    form = SignedForm(request.POST, request.FILES, prefix=f"signed{agreement.pk}", agreement=agreement)
    if limiter.too_large:
        messages.error(request, too_large)
        return _back(account, "agreements")
    if form.is_valid():
        d = form.cleaned_data
        try:
            services.record_signed(request.user, agreement, signed_date=d["signed_date"], upload=d.get("signed_copy"),
                                   version=d.get("version"))  # fmt: skip
        except ValidationError as e:
            form.add_service_errors(e)
        else:
            messages.success(
                request, _("The signing of %(number)s was recorded.") % {"number": agreement.number}
            )
            return _back(account, "agreements")
    return _account_page(request, account, 400, signed=(agreement.pk, form), open_section="agreements")


def signed_copy_response(agreement: Agreement, user, **audit_details) -> FileResponse:
    """The agreement's signed copy as uploaded, as a download (audited as an export); the page and the API
    both answer with it. A copy missing from the storage or altered since its upload raises
    services.DocumentUnavailable: the page says so on the account, the API answers 409."""
    if not agreement.signed_copy:
        raise Http404(_("No signed copy was uploaded."))
    data, suffix = services.signed_copy_data(agreement)  # stored by name under VAR_DIR, checked by its SHA-256
    audit.record(A.EXPORT, agreement, user=user, format="signed copy", **audit_details)
    return kept_copy_response(data, suffix, agreement.signed_copy, agreement.signed_copy_name)


def amendment_copy_response(amendment, user, folder=None, **audit_details) -> FileResponse:
    """An amendment's signed copy (of either app's agreements: `folder` where its files are kept), as the agreement's."""
    if not amendment.signed_copy:
        raise Http404(_("No signed copy was uploaded."))
    data, suffix = services.amendment_signed_copy(amendment, folder)
    audit.record(A.EXPORT, amendment, user=user, format="signed copy", **audit_details)
    return kept_copy_response(data, suffix, amendment.signed_copy, amendment.signed_copy_name)


def kept_copy_response(data: bytes, suffix: str, stored_name: str, uploaded_name: str) -> FileResponse:
    """A kept scan's checked bytes as a download under the name it was uploaded with."""
    content_type = {".pdf": "application/pdf", ".png": "image/png", ".jpg": "image/jpeg"}.get(suffix,
                                                                                         "application/octet-stream")  # fmt: skip
    response = FileResponse(io.BytesIO(data), content_type=content_type)  # the bytes checked, not the file again
    stored = Path(stored_name).name
    # the name as uploaded, with the extension of the stored type (also for copies kept before names followed it)
    name = services.signed_copy_name(uploaded_name or stored, suffix)
    ascii_name = name.encode("ascii", "ignore").decode().replace('"', "").replace("\\", "") or stored
    response["Content-Disposition"] = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response


@login_required
@require_GET
def agreement_signed_copy(request, pk: int):
    agreement = _agreement_or_404(request.user, pk)
    try:
        return signed_copy_response(agreement, request.user)
    except services.DocumentUnavailable as e:  # back where the download was started, saying what to do
        messages.error(request, str(e))
        if request.GET.get("from") == "archive":
            back = {k: request.GET[k] for k in ARCHIVE_PARAMS if request.GET.get(k)}
            return redirect(reverse("keyaccounts:agreements") + (f"?{urlencode(back)}" if back else ""))
        return _back(agreement.account, "agreements")


def _term_sent_again(user, agreement: Agreement, start, end, version) -> bool:
    """The term form sent twice (a double click): the agreement is one version on because this user changed it to
    this term (form_saves.sent_again_after) — a colleague's change in between is a stale form."""
    fresh = Agreement.objects.filter(pk=agreement.pk).first()
    return fresh is not None and (fresh.start_date, fresh.end_date) == (start, end) and sent_again_after(
        user, fresh, version)  # fmt: skip


@login_required
@require_POST
def agreement_term(request, pk: int):
    """Correct the term of an agreement not signed yet (services.change_term): its PDF is issued again."""
    agreement = _agreement_or_404(request.user, pk)
    account = agreement.account
    access.require_agreement_term(request.user, agreement)  # refused before the form is read
    form = TermForm(request.POST, prefix=f"term{agreement.pk}")
    if form.is_valid():
        d = form.cleaned_data
        version = d.get("version") or services.VERSION_NOT_SENT  # the page always carries it: a form without is stale
        try:
            services.change_term(request.user, agreement, start_date=d["start_date"], end_date=d["end_date"],
                                 version=version)  # fmt: skip
        except ValidationError as e:
            if not (isinstance(e, services.StaleVersion)
                    and _term_sent_again(request.user, agreement, d["start_date"], d["end_date"], version)):  # fmt: skip
                form.add_service_errors(e)
                return _account_page(request, account, 400, term=(agreement.pk, form), open_section="agreements")
        messages.success(request, _("The term of %(number)s is %(start)s – %(end)s; its PDF was issued again with it.")
                         % {"number": agreement.number, "start": d["start_date"].isoformat(),
                            "end": d["end_date"].isoformat()})  # fmt: skip
        return _back(account, "agreements")
    return _account_page(request, account, 400, term=(agreement.pk, form), open_section="agreements")


@csrf_exempt  # the size check must come before anything reads the body; CSRF is checked just below
@login_required
@require_POST
def agreement_amend(request, pk: int):
    """Record an amendment (补充协议) of a signed agreement's term, with its signed copy when there is one; an upload
    over the limit is refused before it is read."""
    return _with_signed_copy_limit(request, pk, _agreement_amend)


@csrf_protect
def _agreement_amend(request, pk: int, limiter, too_large: str):
    agreement = _agreement_or_404(request.user, pk)
    account = agreement.account
    access.require_agreement_term(request.user, agreement)
    form = AmendmentForm(request.POST, request.FILES, prefix=f"amend{agreement.pk}")
    if limiter.too_large:
        messages.error(request, too_large)
        return _back(account, "agreements")
    if form.is_valid():
        d = form.cleaned_data
        data = {k: d.get(k) for k in ("start_date", "end_date", "effective_date", "reason", "signed_copy")}
        try:  # once per form: sent again (a double click), the agreement as the first one left it
            amendment = create_once(request.user, d["form_token"], lambda: services.amend_term(
                request.user, agreement, data, version=d.get("version") or services.VERSION_NOT_SENT))
        except AlreadyCreated:
            return _sent_again(request, account, "agreements")
        except ValidationError as e:
            form.add_service_errors(e)
        else:
            messages.success(request, _("Amendment %(number)s was recorded: the term is now %(start)s – %(end)s.")
                             % {"number": amendment.number, "start": amendment.start_date.isoformat(),
                                "end": amendment.end_date.isoformat()})  # fmt: skip
            return _back(account, "agreements")
    return _account_page(request, account, 400, amend=(agreement.pk, form), open_section="agreements")


def _amendment_or_404(user, pk: int, sequence: int):
    agreement = _agreement_or_404(user, pk)
    amendment = agreement.amendments.filter(sequence=sequence).first()
    if amendment is None:
        raise Http404(_("No such amendment, or you may not see it."))
    amendment.agreement = agreement
    return amendment


@csrf_exempt  # the size check must come before anything reads the body; CSRF is checked just below
@login_required
@require_POST
def amendment_attach_copy(request, pk: int, sequence: int):
    """Upload the signed copy of an amendment recorded without one; an upload over the limit is refused before it is
    read."""
    return _with_signed_copy_limit(request, pk, functools.partial(_amendment_attach_copy, sequence=sequence))


@csrf_protect
def _amendment_attach_copy(request, pk: int, limiter, too_large: str, *, sequence: int):
    amendment = _amendment_or_404(request.user, pk, sequence)
    account = amendment.agreement.account
    access.require_agreement_term(request.user, amendment.agreement)
    upload = request.FILES.get("signed_copy")
    if limiter.too_large:
        messages.error(request, too_large)
        return _back(account, "agreements")
    attach_copy_answer(request, lambda: services.attach_amendment_copy(request.user, amendment, upload), amendment)
    return _back(account, "agreements")


def attach_copy_answer(request, attach, amendment) -> None:
    """The page's message after uploading an amendment's signed copy (either app): kept; sent twice (the user's own
    copy is there: a double click), said so; refused, why (the message names the signed copy)."""
    try:
        attach()
    except amendments.CopyAttachedAlready as e:
        if e.mine:
            messages.info(request, SENT_AGAIN)
        else:
            messages.error(request, " ".join(e.messages))
    except ValidationError as e:
        messages.error(request, " ".join(e.messages))
    else:
        messages.success(request, _("The signed copy of amendment %(number)s was kept.") % {"number": amendment.number})


@login_required
@require_GET
def amendment_pdf(request, pk: int, sequence: int):
    """An amendment's bilingual PDF as kept when it was recorded; audited as an export."""
    amendment = _amendment_or_404(request.user, pk, sequence)
    try:
        data = services.amendment_document(amendment)
    except services.DocumentUnavailable as e:
        messages.error(request, str(e))
        return _back(amendment.agreement.account, "agreements")
    audit.record(A.EXPORT, amendment, user=request.user, format="PDF")
    # named in the reader's language: AG-2026-0003-A1-补充协议.pdf
    return downloads.attachment(data, f"{amendment.number}-{'-'.join(_('amendment').split())}.pdf", "application/pdf")


@login_required
@require_GET
def amendment_signed_copy(request, pk: int, sequence: int):
    amendment = _amendment_or_404(request.user, pk, sequence)
    try:
        return amendment_copy_response(amendment, request.user)
    except services.DocumentUnavailable as e:
        messages.error(request, str(e))
        return _back(amendment.agreement.account, "agreements")


@login_required
@require_POST
def meeting_create(request, pk: int):
    account = _account_or_404(request.user, pk)
    if not services.may_record(request.user, account):
        raise PermissionDenied(services.NOT_ALLOWED)
    form = MeetingForm(request.POST, account=account, prefix="meeting")
    if form.is_valid():
        data, actions = form.service_data()
        try:
            create_once(request.user, form.cleaned_data["form_token"],
                        lambda: services.record_meeting(request.user, account, data, actions))
        except AlreadyCreated:  # the form sent twice (a double click): the meeting the first one recorded
            return _sent_again(request, account, "meetings")
        except services.AlreadyRecorded as e:  # sent twice: say which meeting is there, save nothing
            form.add_service_errors(e)
            return _account_page(request, account, 409, meeting_form=form, open_section="meetings",
                                 duplicate_meeting=e.existing.pk)  # fmt: skip
        except ValidationError as e:
            form.add_service_errors(e)
        else:
            messages.success(request, _("The meeting was recorded."))
            return _back(account, "meetings")
    return _account_page(request, account, 400, meeting_form=form, open_section="meetings")


@login_required
@require_POST
def meeting_cadence(request, pk: int):
    """Set how often the account's service meetings are due (its project manager, a manager, an administrator)."""
    account = _account_or_404(request.user, pk)
    if not services.may_manage(request.user, account) or access.roles_of(request.user) & READ_ONLY_ROLES:
        raise PermissionDenied(services.NOT_ALLOWED)
    form = CadenceForm(request.POST, prefix="cadence")
    if form.is_valid():
        try:
            services.set_meeting_cadence(request.user, account, form.cleaned_data["meeting_cadence"],
                                         version=form.cleaned_data.get("version"))  # fmt: skip
        except ValidationError as e:
            form.add_service_errors(e)
        else:
            messages.success(request, _("The meeting cadence was saved."))
            return _back(account, "meetings")
    return _account_page(request, account, 400, cadence_form=form, open_section="meetings")


@login_required
@require_POST
def action_toggle(request, pk: int, action_pk: int):
    account = _account_or_404(request.user, pk)
    action = (
        MeetingAction.objects.filter(pk=action_pk, meeting__account=account)
        .select_related("meeting__account")
        .first()
    )
    if action is None:
        raise Http404(_("No such action item."))
    # the button says which state it wants: a double click or a stale page never flips it back
    wanted = request.POST.get("done")
    done = (action.done_at is None) if wanted not in ("0", "1") else wanted == "1"
    if done != (action.done_at is not None):
        try:
            services.complete_action(request.user, action, done=done)
        except ValidationError as e:  # a de-listed account's file is kept as it was
            for message in e.messages:
                messages.error(request, message)
            return _back(account, "meetings")
    messages.success(request, _("The action item was updated."))
    return _back(account, "meetings")


@login_required
@require_POST
def action_edit(request, pk: int, action_pk: int):
    account = _account_or_404(request.user, pk)
    action = (
        MeetingAction.objects.filter(pk=action_pk, meeting__account=account)
        .select_related("meeting__account", "owner")
        .first()
    )
    if action is None:
        raise Http404(_("No such action item."))
    if not services.may_edit_action(request.user, action):
        raise PermissionDenied(services.NOT_ALLOWED)
    form = ActionEditForm(request.POST, account=account, prefix=f"action{action.pk}")
    if form.is_valid():
        d = form.cleaned_data
        try:
            services.edit_action(request.user, action, title=d["title"], owner=d["owner"], due_date=d["due_date"],
                                 version=d.get("version"))  # fmt: skip
        except ValidationError as e:
            form.add_service_errors(e)
        else:
            messages.success(request, _("The action item was saved."))
            return _back(account, f"meeting-{action.meeting_id}")
    active = KeyAccount.objects.filter(pk=account.pk, status=AccountStatus.ACTIVE).exists()
    if active and MeetingAction.objects.filter(pk=action.pk, done_at__isnull=True).exists():
        return _account_page(request, account, 400, action_edit=(action.pk, form), open_section="meetings")
    # ticked off (or the file closed) meanwhile: its form is no longer on the page, so say why here
    why = _("This action item is done: reopen it to change it.") if active else _("This key account has been de-listed.")
    for error in form.non_field_errors() or [why]:
        messages.error(request, error)
    return _back(account, f"meeting-{action.meeting_id}")


@login_required
@require_POST
def review_run(request, pk: int):
    account = _account_or_404(request.user, pk)
    services.require_reviewer(request.user, account)  # refused before the form is read, as proposal_decide
    form = PeriodForm(request.POST, prefix="period")
    if form.is_valid():
        try:
            review = services.review_account(account, form.cleaned_data["period"], user=request.user)
        except ValidationError as e:
            for message in e.messages:
                form.add_error("period", message)
        else:
            messages.success(request, _("The evaluation for %(period)s was computed: %(score)s.")
                             % {"period": review.period, "score": review.score})  # fmt: skip
            return _back(account, "evaluations")
    return _account_page(request, account, 400, period_form=form, open_section="evaluations")


@login_required
@require_POST
def measure_add(request, pk: int):
    account = _account_or_404(request.user, pk)
    services.require_manage(request.user, account)
    form = MeasureForm(request.POST, account=account, prefix="measure")
    if form.is_valid():
        try:
            action = services.add_measure(request.user, account, **form.cleaned_data)
        except ValidationError as e:
            form.add_service_errors(e)
        else:
            if getattr(action, "sent_again", False):  # a double click: the measure the first one added
                messages.info(request, _("This form was already sent: the improvement action was opened then, "
                                         "and not a second time."))  # fmt: skip
            else:
                messages.success(
                    request, _("Improvement measure %(number)s was added.") % {"number": action.number}
                )
            return _back(account, "evaluations")
    return _account_page(request, account, 400, measure_form=form, open_section="evaluations")


@login_required
@require_POST
def trial_create(request, pk: int):
    account = _account_or_404(request.user, pk)
    services.require_trial_recorder(request.user, account)  # refused before the form is read, as proposal_decide
    form = TrialForm(request.POST, prefix="trial")
    if form.is_valid():
        d = form.cleaned_data
        try:
            create_once(request.user, d["form_token"], lambda: services.offer_trial(
                request.user, account, product=d["product"], notes=d.get("notes") or "", offered_on=d.get("offered_on")))
        except AlreadyCreated:  # the form sent twice (a double click): the offer the first one recorded
            return _sent_again(request, account, "trials")
        except services.AlreadyRecorded as e:  # sent twice: say which offer is there, save nothing
            form.add_service_errors(e)
            return _account_page(request, account, 409, trial_form=form, open_section="trials",
                                 duplicate_trial=e.existing.pk)  # fmt: skip
        except ValidationError as e:
            form.add_service_errors(e)
        else:
            messages.success(request, _("The trial offer was recorded."))
            return _back(account, "trials")
    return _account_page(request, account, 400, trial_form=form, open_section="trials")


@login_required
@require_POST
def trial_update(request, pk: int, trial_pk: int):
    account = _account_or_404(request.user, pk)
    services.require_trial_recorder(request.user, account)  # refused before the form is read, as proposal_decide
    trial = TrialOffer.objects.filter(pk=trial_pk, account=account).select_related("account").first()
    if trial is None:
        raise Http404(_("No such trial offer."))
    form = TrialUpdateForm(request.POST, prefix=f"trial{trial.pk}")
    if form.is_valid():
        try:
            services.update_trial(request.user, trial, status=form.cleaned_data["status"],
                                  notes=form.cleaned_data.get("notes") or "", version=form.cleaned_data.get("version"))  # fmt: skip
        except ValidationError as e:
            form.add_service_errors(e)
        else:
            messages.success(request, _("The trial offer was updated."))
            return _back(account, "trials")
    return _account_page(request, account, 400, trial_update=(trial.pk, form), open_section="trials")


# --- the archive, a member's page, scorecards, the report -------------------------------------------------


@login_required
@require_GET
def agreement_archive(request):
    access.require(request.user, Cap.VIEW_KEY_ACCOUNTS)
    form = ArchiveFilterForm(request.GET or None)
    qs = Agreement.objects.filter(account__in=services.accounts_for(request.user)).select_related(
        "account__institution", "plan"
    )
    if form.is_bound and form.is_valid():
        q = unicodedata.normalize("NFKC", clean_text(form.cleaned_data.get("q", "")))  # ＡＧ－２０２６ as AG-2026
        if q:
            # the customer's name as search compares it: Traditional characters, width, spaces and punctuation
            # folded (北京協和醫院 finds 北京协和医院); the agreement's or the key account's number; the credit code
            folded = normalise.name(q)
            match = (Q(number__icontains=q) | Q(account__number__icontains=q)
                     | Q(account__institution__name__icontains=q) | Q(account__institution__short_name__icontains=q)
                     | Q(account__institution__credit_code__iexact=q))  # fmt: skip
            if folded:
                match |= Q(account__institution__name_norm__contains=folded)
            qs = qs.filter(match)
        if form.cleaned_data.get("status"):
            qs = qs.filter(status=form.cleaned_data["status"])
    elif form.is_bound:  # a wrong filter (a status that does not exist) shows nothing and says why, not all
        qs = qs.none()
    page = Paginator(qs.order_by("-created_at", "-id"), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request, "keyaccounts/ka_agreements.html", {"form": form, "page_obj": page, "rows": page.object_list}
    )


def _member_page(request, person: User) -> HttpResponse:
    viewer = request.user
    access.require(viewer, Cap.VIEW_KEY_ACCOUNTS)
    if not may_open_member_page(viewer, person.pk):
        raise PermissionDenied(services.NOT_ALLOWED)
    # the accounts served now: a de-listed customer's file is closed as it was — its meeting actions cannot be
    # ticked off any more and its team takes no tickets — so it is no one's work (as its plan items are not)
    visible = services.accounts_for(viewer).filter(status=AccountStatus.ACTIVE)
    memberships = list(
        TeamMember.objects.filter(user=person, account__in=visible).select_related(
            "account__institution", "account__team"
        )
    )
    accounts: dict[int, dict] = {}
    for m in memberships:
        accounts.setdefault(m.account_id, {"account": m.account, "roles": []})["roles"].append(
            m.get_role_display()
        )
    today = timezone.localdate()
    # each account's next service meeting, flagged when it is near or overdue (the team's alert's rule)
    dues = services.meeting_dues([a["account"] for a in accounts.values()], today)
    for a in accounts.values():
        a["meeting"] = dues[a["account"].pk]
    items = list(
        PlanItem.objects.filter(owner=person, status__in=OPEN_ITEM, plan__status=PlanStatus.APPROVED,
                                plan__account__in=visible, plan__account__status=AccountStatus.ACTIVE)
        .select_related("plan__account__institution").order_by("deadline")
    )  # fmt: skip
    for item in items:
        # the one rule of the account page, the API's `overdue` and the overdue alert (services.item_overdue)
        item.overdue = services.item_overdue(item, today)
    actions = list(
        MeetingAction.objects.filter(owner=person, done_at__isnull=True, meeting__account__in=visible)
        .select_related("meeting__account__institution").order_by("due_date")
    )  # fmt: skip
    for act in actions:
        act.overdue = services.action_overdue(act, today)  # the account page's and the API's rule
    from pharmacrm.servicedesk.choices import OPEN_STATUSES

    team_ids = [m.account.team_id for m in memberships if m.account.team_id]
    tickets = list(
        access.tickets_for(viewer).filter(team_id__in=team_ids, status__in=list(OPEN_STATUSES))
        .select_related("institution", "assignee", "team").order_by("-received_at")[:50]
    )  # fmt: skip
    period, period_error = _scorecard_period(request)
    card = None if period_error else next((c for c in services.scorecards(period) if c["user"].pk == person.pk), None)
    context = {"person": person, "accounts": list(accounts.values()), "items": items, "actions": actions,
               "tickets": tickets, "period": period, "period_error": period_error, "card": card,
               "mine": person.pk == viewer.pk, "neutral": services.review_default()}  # fmt: skip
    return render(request, "keyaccounts/ka_member.html", context)


@login_required
@require_GET
def my_work(request):
    return _member_page(request, request.user)


@login_required
@require_GET
def member_work(request, user_pk: int):
    # the policy first, as the API's scorecards ask it: to one who may not open others' pages, a user id that
    # does not exist answers as one that does (403), not "No such user" — which told them who exists
    access.require(request.user, Cap.VIEW_KEY_ACCOUNTS)
    if not may_open_member_page(request.user, user_pk):
        raise PermissionDenied(services.NOT_ALLOWED)
    person = User.objects.filter(pk=user_pk).first()
    if person is None:
        raise Http404(_("No such user."))
    return _member_page(request, person)


@login_required
@require_GET
def scorecard_list(request):
    if not _leadership(request.user):
        raise PermissionDenied(services.NOT_ALLOWED)
    period, error = _scorecard_period(request)
    cards = [] if error else services.scorecards(period)
    labels = dict(TeamRole.choices)
    for card in cards:
        card["role_labels"] = [str(labels.get(r, r)) for r in card["roles"]]
    return render(
        request, "keyaccounts/ka_scorecards.html",
        {"period": period, "cards": cards, "error": error, "neutral": services.review_default()},
    )


@login_required
@require_GET
def progress_report(request, fmt: str):
    from . import report

    access.require(request.user, Cap.VIEW_KEY_ACCOUNTS)
    accounts = services.accounts_for(request.user).filter(status=AccountStatus.ACTIVE)
    raw = request.GET.get("account", "")
    one = None
    if raw:
        if not raw.isdecimal() or len(raw) > 18:
            raise Http404(_("No such key account, or you may not see it."))
        one = _account_or_404(request.user, int(raw))
        accounts = KeyAccount.objects.filter(pk=one.pk)
    rows = report.rows(accounts.select_related("institution").order_by("number"), personal.masks_free_text(request.user))
    audit.record(A.EXPORT, one or ("keyaccounts", "", "progress report"), user=request.user, format=fmt.upper(),
                 accounts=len(rows))  # fmt: skip
    # named in the reader's language, as the other exports are (重点客户进展报告-KA-2026-0001-20261202.pdf)
    name = downloads.file_name(_("Key-account progress report"), one and one.number, extension=fmt)
    if fmt == "pdf":
        return downloads.attachment(report.pdf(rows), name, "application/pdf")
    return downloads.attachment(report.xlsx(rows), name, downloads.XLSX_TYPE)


@login_required
@require_GET
def customer_panel(request, institution_pk: int):
    """The key-account block of a customer's 360 page (loaded by htmx): its file, open proposals, or a way
    to propose it."""
    user = request.user
    access.require(user, Cap.VIEW_KEY_ACCOUNTS)
    inst = access.institutions_for(user).filter(pk=institution_pk).first()
    if inst is None:
        raise Http404(_("No such customer, or you may not see it."))
    account = services.accounts_for(user).filter(institution=inst).order_by("-listed_at").first()
    rows = account_rows([account]) if account else []
    hospital = services.hospital_of(inst) if inst.is_department else None
    context = {
        # a department is served as part of its hospital's key account, never proposed on its own
        "department": inst.is_department, "hospital": hospital,
        "hospital_account": services.accounts_for(user).filter(institution=hospital, status=AccountStatus.ACTIVE)
        .first() if hospital is not None and hospital.pk != inst.pk else None,
        "institution": inst, "account": account, "row": rows[0] if rows else None,
        "proposals": list(services.proposals_for(user).filter(institution=inst, status__in=OPEN_PROPOSAL)),
        "candidate": latest_candidate(inst) if access.can(user, Cap.VIEW_EVALUATIONS) else None,
        "may_propose": access.can(user, Cap.PROPOSE_KEY_ACCOUNTS),
    }  # fmt: skip
    return render(request, "keyaccounts/ka_panel.html", context)


urlpatterns = [
    path("", home, name="home"),
    path("inbox/", inbox, name="inbox"),
    path("proposals/", proposal_list, name="proposals"),
    path("proposals/new/", proposal_create, name="proposal-create"),
    path("proposals/<int:pk>/", proposal_detail, name="proposal"),
    path("proposals/<int:pk>/opinion/", proposal_opinion, name="proposal-opinion"),
    path("proposals/<int:pk>/submit/", proposal_submit, name="proposal-submit"),
    path("proposals/<int:pk>/decide/", proposal_decide, name="proposal-decide"),
    path("proposals/<int:pk>/withdraw/", proposal_withdraw, name="proposal-withdraw"),
    path("<int:pk>/", account_detail, name="account"),
    path("<int:pk>/team/", member_add, name="member-add"),
    path("<int:pk>/team/<int:member_pk>/remove/", member_remove, name="member-remove"),
    path("<int:pk>/plan/", plan_start, name="plan-start"),
    path("<int:pk>/plan/draft/", plan_edit, name="plan-edit"),
    path("<int:pk>/plan/items/", item_add, name="item-add"),
    path("<int:pk>/plan/items/<int:item_pk>/", item_edit, name="item-edit"),
    path("<int:pk>/plan/items/<int:item_pk>/delete/", item_delete, name="item-delete"),
    path("<int:pk>/plan/items/<int:item_pk>/progress/", item_progress, name="item-progress"),
    path("<int:pk>/plan/submit/", plan_submit, name="plan-submit"),
    path("<int:pk>/plan/decide/", plan_decide, name="plan-decide"),
    path("<int:pk>/agreements/", agreement_create, name="agreement-create"),
    path("<int:pk>/meetings/", meeting_create, name="meeting-create"),
    path("<int:pk>/meetings/cadence/", meeting_cadence, name="meeting-cadence"),
    path("<int:pk>/meetings/actions/<int:action_pk>/", action_toggle, name="action-toggle"),
    path("<int:pk>/meetings/actions/<int:action_pk>/edit/", action_edit, name="action-edit"),
    path("<int:pk>/evaluations/", review_run, name="review-run"),
    path("<int:pk>/measures/", measure_add, name="measure-add"),
    path("<int:pk>/trials/", trial_create, name="trial-create"),
    path("<int:pk>/trials/<int:trial_pk>/", trial_update, name="trial-update"),
    path("agreements/", agreement_archive, name="agreements"),
    path("agreements/<int:pk>/pdf/", agreement_pdf, name="agreement-pdf"),
    path("agreements/<int:pk>/reissue/", agreement_reissue, name="agreement-reissue"),
    path("agreements/<int:pk>/signed/", agreement_signed, name="agreement-signed"),
    path("agreements/<int:pk>/signed-copy/", agreement_signed_copy, name="agreement-signed-copy"),
    path("agreements/<int:pk>/term/", agreement_term, name="agreement-term"),
    path("agreements/<int:pk>/amendments/", agreement_amend, name="agreement-amend"),
    path("agreements/<int:pk>/amendments/<int:sequence>/pdf/", amendment_pdf, name="amendment-pdf"),
    path("agreements/<int:pk>/amendments/<int:sequence>/signed-copy/", amendment_signed_copy,
         name="amendment-signed-copy"),
    path("agreements/<int:pk>/amendments/<int:sequence>/signed-copy/upload/", amendment_attach_copy,
         name="amendment-attach-copy"),
    path("my/", my_work, name="my"),
    path("team/<int:user_pk>/", member_work, name="member"),
    path("scorecards/", scorecard_list, name="scorecards"),
    path("report.pdf", progress_report, {"fmt": "pdf"}, name="report-pdf"),
    path("report.xlsx", progress_report, {"fmt": "xlsx"}, name="report-xlsx"),
    path("customer/<int:institution_pk>/panel/", customer_panel, name="ka-panel"),
]
