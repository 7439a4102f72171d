"""Loyalty pages (/loyalty/): the members (filters), a member with its level, balance, ledger, redemptions and
referrals, the reward catalogue, the approval inbox, the programme's figures with their Excel export, and the block
on the Customer 360 page. services.py decides and saves; these views only render and pass the input on."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Q, Sum
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils.translation import gettext as _
from django.utils.translation import pgettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from pharmacrm.core import access, audit, builtin, downloads
from pharmacrm.core.form_saves import SENT_AGAIN, save_form, save_new_form, sent_again_after
from pharmacrm.core.ids import is_id
from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Cap
from pharmacrm.customers.services import ConflictError

from . import forms, services
from .models import Member, MemberStatus, Redemption, RedemptionStatus, Reward

A = AuditEntry.Action


def _require_read(user) -> None:
    access.require(user, Cap.READ_LOYALTY)


def _errors(e: ValidationError) -> str:
    return (
        " ".join(m for ms in e.message_dict.values() for m in ms)
        if hasattr(e, "error_dict")
        else " ".join(e.messages)
    )


@login_required
@require_GET
def member_list(request):
    _require_read(request.user)
    form = forms.FilterForm(request.user, request.GET or None)
    qs = (
        services.members_for(request.user)
        .select_related("institution__owner")
        .annotate(balance=Sum("entries__points"))
    )
    if form.is_valid():
        d = form.cleaned_data
        if d.get("q"):
            q = d["q"].strip()
            qs = qs.filter(Q(number__icontains=q) | Q(institution__name__icontains=q))
        if d.get("level"):
            qs = qs.filter(level=d["level"])
        if d.get("status"):
            qs = qs.filter(status=d["status"])
        if d.get("province"):
            qs = qs.filter(institution__province=d["province"])
        if d.get("owner"):
            qs = qs.filter(institution__owner_id=d["owner"])
    page = Paginator(qs.order_by("number"), 50).get_page(request.GET.get("page"))
    return render(request, "loyalty/member_list.html", {"form": form, "page_obj": page, "members": page.object_list,
                                                        "privileges": services.privileges()})  # fmt: skip


ACTION_FORMS = {"redeem": forms.RedeemForm, "refer": forms.ReferForm, "adjust": forms.AdjustForm,
                "status": forms.StatusForm}  # fmt: skip


@login_required
@require_http_methods(["GET", "POST"])
def member_detail(request, pk):
    _require_read(request.user)
    member = get_object_or_404(services.members_for(request.user).select_related("institution__owner"), pk=pk)
    user = request.user
    may_manage = services.may_manage(user, member.institution)
    may_approve = access.can(user, Cap.APPROVE_LOYALTY)
    bound = {name: cls(prefix=name) for name, cls in ACTION_FORMS.items()}
    status = 200
    if request.method == "POST":
        action = request.POST.get("action")
        if action not in ACTION_FORMS:
            raise Http404
        bound[action] = ACTION_FORMS[action](request.POST, prefix=action)
        values = bound[action].values()
        if action != "status":  # each records something new, once per form (its one-time token): a double click on
            # "Redeem" or "Adjust" reserved or added the points twice
            outcome = save_new_form(user, bound[action], {
                "redeem": lambda: services.request_redemption(user, member, values["reward"], values["quantity"]),
                "refer": lambda: services.refer(user, member, values["referred"], values["note"]),
                "adjust": lambda: services.adjust(user, member, values["points"], values["reason"]),
            }[action])  # fmt: skip
            if outcome.again or outcome.saved:
                messages.add_message(request, messages.INFO if outcome.again else messages.SUCCESS,
                                     SENT_AGAIN if outcome.again else _("Saved."))  # fmt: skip
                return redirect("loyalty:member", member.pk)
            status = outcome.status
        else:
            try:
                services.set_status(
                    user, member, values["status"], request.POST.get("version"), values["reason"]
                )
            except ConflictError as e:
                messages.error(request, str(e))
                return redirect("loyalty:member", member.pk)
            except ValidationError as e:
                bound[action].add_service_errors(e)
                status = 400
            else:
                messages.success(request, _("Saved."))
                return redirect("loyalty:member", member.pk)
    return render(request, "loyalty/member_detail.html", {
        "member": member, "balance": services.balance(member), "forms": bound,
        "may_manage": may_manage and member.status == MemberStatus.ACTIVE, "may_approve": may_approve,
        "entries": member.entries.select_related("created_by")[:200],
        "redemptions": member.redemptions.select_related("reward", "requested_by", "decided_by"),
        "referrals": services.mark_referred_in_scope(user, member.referrals.select_related("referred")),
        "levels": member.level_changes.all()[:50],
        "privileges": dict(services.privileges()).get(member.level, []),
    }, status=status)  # fmt: skip


@login_required
@require_http_methods(["GET", "POST"])
def reward_list(request):
    _require_read(request.user)
    may_edit = access.can(request.user, Cap.APPROVE_LOYALTY)
    form = forms.RewardForm(prefix="reward", initial={"active": True}, creating=True)
    status = 200
    if request.method == "POST":
        if not may_edit:
            raise PermissionDenied
        form = forms.RewardForm(request.POST, prefix="reward", creating=True)
        outcome = save_new_form(request.user, form, lambda: services.create_reward(request.user, form.values()))
        if outcome.again:
            messages.info(request, SENT_AGAIN)
            return redirect("loyalty:rewards")
        if outcome.saved:
            messages.success(request, _("Saved."))
            return redirect("loyalty:rewards")
        status = outcome.status
    return render(request, "loyalty/rewards.html", {"rewards": Reward.objects.all(), "form": form, "may_edit": may_edit},
                  status=status)  # fmt: skip


@login_required
@require_http_methods(["GET", "POST"])
def reward_edit(request, pk):
    access.require(request.user, Cap.APPROVE_LOYALTY)
    reward = get_object_or_404(Reward, pk=pk)
    initial = {f: getattr(reward, f) for f in services.REWARD_FIELDS}
    form = forms.RewardForm(request.POST or None, prefix="reward", initial=initial)
    builtin.note_on_form(form)  # a reward the demo's catalogue ships is read in each reader's language
    status = 200
    if request.method == "POST":
        outcome = save_form(form, lambda: services.update_reward(request.user, reward, form.values(),
                                                                 request.POST.get("version")))  # fmt: skip
        if outcome.saved:
            messages.success(request, _("Saved."))
            return redirect("loyalty:rewards")
        status = outcome.status
    return render(request, "loyalty/reward_form.html", {"form": form, "reward": reward}, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def approvals(request):
    """Requests awaiting a decision, and approved rewards awaiting delivery."""
    _require_read(request.user)
    user = request.user
    if request.method == "POST":
        raw = request.POST.get("redemption", "")
        redemption = get_object_or_404(services.redemptions_for(user), pk=int(raw)) if is_id(raw) else None
        if redemption is None:
            raise Http404
        action, version = request.POST.get("action"), request.POST.get("version")
        version = int(version) if is_id(version) else -1  # the page always carries it: a form without is stale
        try:
            if action in ("approve", "reject"):
                services.decide(user, redemption, approve=action == "approve", note=request.POST.get("note", ""),
                                version=version)  # fmt: skip
            elif action == "fulfil":
                services.fulfil(user, redemption, request.POST.get("delivery_note", ""), version=version)
            else:
                raise Http404
        except (ConflictError, PermissionDenied, ValidationError) as e:
            fresh = Redemption.objects.filter(pk=redemption.pk).first()
            wanted = {"approve": RedemptionStatus.APPROVED, "reject": RedemptionStatus.REJECTED,
                      "fulfil": RedemptionStatus.FULFILLED}.get(action)  # fmt: skip
            if fresh is not None and fresh.status == wanted and sent_again_after(user, fresh, version):
                messages.success(request, _("Saved."))  # sent twice (a double click): the first one did it
            elif isinstance(e, ValidationError):
                messages.error(request, _errors(e))
            else:
                messages.error(request, str(e) or _("You do not have permission to do this."))
        else:
            messages.success(request, _("Saved."))
        return redirect("loyalty:approvals")
    qs = services.redemptions_for(user).select_related(
        "member__institution", "reward", "requested_by", "decided_by"
    )
    return render(request, "loyalty/approvals.html", {
        "waiting": qs.filter(status=RedemptionStatus.REQUESTED).order_by("requested_at"),
        "to_deliver": qs.filter(status=RedemptionStatus.APPROVED).order_by("decided_at"),
        "may_approve": access.can(user, Cap.APPROVE_LOYALTY), "may_manage": access.can(user, Cap.MANAGE_LOYALTY),
    })  # fmt: skip


@login_required
@require_GET
def overview(request):
    _require_read(request.user)
    figures = services.overview(request.user)
    if request.GET.get("format") == "xlsx":
        return _export(request, figures)
    return render(request, "loyalty/overview.html", {"figures": figures})


def _export(request, figures) -> HttpResponse:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = _("Loyalty programme")[:31]
    sheet.append([_("Month"), _("Points issued"), _("Points redeemed"), _("Points expired"),
                  _("Redemption cost (yuan)"), _("Referrals"), _("Converted")])  # fmt: skip
    for row in figures["months"]:
        sheet.append([row["month"].strftime("%Y-%m"), row["issued"], row["redeemed"], row["expired"],
                      float(row["value"]), row["referrals"], row["converted"]])  # fmt: skip
    levels = book.create_sheet(_("Members per level")[:31])
    levels.append([_("Level"), pgettext("loyalty", "Members")])
    for label, n in figures["levels"]:
        downloads.append_row(levels, [str(label), n])
    audit.record(A.EXPORT, ("loyalty.member", "", "loyalty overview"), user=request.user, format="XLSX",
                 rows=len(figures["months"]))  # fmt: skip
    return downloads.xlsx(downloads.workbook_bytes(book), _("Loyalty programme"))


@login_required
@require_GET
def customer_panel(request, institution_id):
    """The block of a Customer 360 page: level and balance, or 'not a member' with a join button."""
    _require_read(request.user)
    institution = get_object_or_404(access.institutions_for(request.user), pk=institution_id)
    member = Member.objects.filter(institution=institution).first()
    if member is not None and not services.members_for(request.user).filter(pk=member.pk).exists():
        member = None
        visible = False
    else:
        visible = services.may_see_customer(request.user, institution)
    return render(request, "loyalty/_customer_block.html", {
        "institution": institution, "member": member, "visible": visible,
        "balance": services.balance(member) if member else None,
        "ineligible": services.eligibility_error(institution),
        "may_join": services.may_manage(request.user, institution),
    })  # fmt: skip


@login_required
@require_POST
def join(request, institution_id):
    _require_read(request.user)
    institution = get_object_or_404(access.institutions_for(request.user), pk=institution_id)
    try:
        member = services.join(request.user, institution)
    except ValidationError as e:
        messages.error(request, _errors(e))
        return redirect("customers:institution", institution.pk)
    messages.success(request, _("%(customer)s joined the loyalty programme as %(number)s.") % {
        "customer": institution.name, "number": member.number})  # fmt: skip
    return redirect("loyalty:member", member.pk)


app_name = "loyalty"
urlpatterns = [
    path("", member_list, name="members"),
    path("members/<int:pk>/", member_detail, name="member"),
    path("rewards/", reward_list, name="rewards"),
    path("rewards/<int:pk>/", reward_edit, name="reward"),
    path("approvals/", approvals, name="approvals"),
    path("overview/", overview, name="overview"),
    path("customer/<int:institution_id>/", customer_panel, name="customer-panel"),
    path("customer/<int:institution_id>/join/", join, name="join"),
]
