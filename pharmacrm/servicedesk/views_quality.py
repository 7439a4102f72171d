"""Quality reviews (服务质检) in the web UI: the review panel on the ticket page, the form that records or corrects a
review, the quality page (per agent: handled, reviewed, the share meeting each criterion; the period's reviews) and
"review a random ticket", which draws the next ticket of the sample. quality.py decides who may do what."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext, pgettext_lazy
from django.views.decorators.http import require_GET, require_POST

from pharmacrm.core import audit, downloads, personal
from pharmacrm.core.form_saves import sent_again_after
from pharmacrm.core.models import AuditEntry, Team
from pharmacrm.core.ordering import PinyinModelChoiceField
from pharmacrm.customers.forms import ServiceErrorsMixin
from pharmacrm.customers.services import ConflictError

from . import performance, quality, views
from .choices import AppealStatus
from .forms import PeriodField
from .models import QualityReview

A = AuditEntry.Action
YES_NO = [("yes", gettext_lazy("Yes")), ("no", gettext_lazy("No"))]
PAGE_SIZE = 50


class QualityReviewForm(ServiceErrorsMixin, forms.Form):
    accurate = forms.TypedChoiceField(label=quality.CRITERIA["accurate"], help_text=quality.CRITERIA_HELP["accurate"],
                                      choices=YES_NO, coerce=lambda v: v == "yes", widget=forms.RadioSelect)
    compliant = forms.TypedChoiceField(label=quality.CRITERIA["compliant"], help_text=quality.CRITERIA_HELP["compliant"],
                                       choices=YES_NO, coerce=lambda v: v == "yes", widget=forms.RadioSelect)
    complete = forms.TypedChoiceField(label=quality.CRITERIA["complete"], help_text=quality.CRITERIA_HELP["complete"],
                                      choices=YES_NO, coerce=lambda v: v == "yes", widget=forms.RadioSelect)
    courteous = forms.TypedChoiceField(label=quality.CRITERIA["courteous"], help_text=quality.CRITERIA_HELP["courteous"],
                                       choices=YES_NO, coerce=lambda v: v == "yes", widget=forms.RadioSelect)
    comment = forms.CharField(
        label=gettext_lazy("Findings"), required=False, max_length=quality.MAX_COMMENT,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=gettext_lazy("Required when a criterion is not met: what was wrong and what the right answer was."),
    )  # fmt: skip
    version = forms.IntegerField(widget=forms.HiddenInput, required=False, min_value=1, max_value=2**31 - 1)

    prefix = "quality"  # the ticket page has other forms with a comment field (the phone revisit): distinct ids

    @staticmethod
    def initial_of(review: QualityReview, user) -> dict:
        """The review as the form shows it to `user`: the findings masked as the page shows them to a reviewer who
        sees personal data masked (a product expert), the masks saved back kept as stored (quality.correct)."""
        out = {k: "yes" if getattr(review, k) else "no" for k in quality.CRITERIA}
        comment = personal.free_text(review.comment, personal.masks_free_text(user))
        return {**out, "comment": comment, "version": review.version}


class AppealForm(ServiceErrorsMixin, forms.Form):
    appeal = forms.CharField(
        label=gettext_lazy("Why the finding is wrong"), max_length=quality.MAX_APPEAL,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=gettext_lazy("A service manager who neither reviewed nor handled the ticket decides. An appeal is "
                               "made once."),
    )  # fmt: skip
    version = forms.IntegerField(widget=forms.HiddenInput, min_value=1, max_value=2**31 - 1)

    prefix = "appeal"


class DecisionForm(ServiceErrorsMixin, forms.Form):
    decision = forms.ChoiceField(
        label=pgettext_lazy("appeal", "Decision"), widget=forms.RadioSelect,
        choices=[("accept", gettext_lazy("Accept: correct the review as judged below")),
                 ("reject", gettext_lazy("Reject: the review stands"))],
    )  # fmt: skip
    accurate = QualityReviewForm.base_fields["accurate"]
    compliant = QualityReviewForm.base_fields["compliant"]
    complete = QualityReviewForm.base_fields["complete"]
    courteous = QualityReviewForm.base_fields["courteous"]
    appeal_answer = forms.CharField(
        label=gettext_lazy("Reason for the decision"), max_length=quality.MAX_APPEAL,
        widget=forms.Textarea(attrs={"rows": 3}),
    )  # fmt: skip
    version = forms.IntegerField(widget=forms.HiddenInput, min_value=1, max_value=2**31 - 1)

    prefix = "decision"


def panel_context(request, ticket) -> dict:
    """The ticket page's quality panel (merged by views._ticket_context): the review, to those who may read it, and
    the form, to who may record or correct it."""
    user = request.user
    state = getattr(request, "_quality_state", {})
    review = QualityReview.objects.filter(ticket=ticket).select_related("reviewer", "appeal_decided_by").first()
    if review is None and ticket.status not in quality.REVIEWABLE:  # an open ticket, never reviewed: no panel
        return {"quality_shown": False}
    readable = quality.may_read(user, ticket, review)
    if review is not None:
        may_write = quality.may_correct(user, review)
    else:
        may_write = quality.may_review(user, ticket)
    form = state.get("form")  # the user's input refused: shown with its errors, whoever sent it
    if form is None and may_write:
        form = QualityReviewForm(initial=QualityReviewForm.initial_of(review, user) if review else None)
    return {
        "quality_shown": readable or may_write or form is not None,
        "quality_review": review if readable or may_write else None,
        "quality_form": form,
        "quality_criteria": [(k, label, quality.CRITERIA_HELP[k], getattr(review, k) if review else None)
                             for k, label in quality.CRITERIA.items()],  # fmt: skip
        "quality_conflict": state.get("conflict", False),
        "quality_appeal_form": state.get("appeal_form") or (
            AppealForm(initial={"version": review.version})
            if review is not None and not quality.appeal_refusal(user, review) else None),
        "quality_decision_form": state.get("decision_form") or (
            DecisionForm(initial={**QualityReviewForm.initial_of(review, user), "decision": ""})
            if review is not None and quality.may_decide(user, review) else None),
    }


@login_required
@require_POST
def review_ticket(request, pk: int):
    """Record the ticket's review, or correct it (with the version loaded). A form loaded before the ticket was
    reviewed carries no version: it records a review, and is told the ticket has one (or, sent twice, is the one it
    recorded) — never a correction that overwrites a review its sender has not seen."""
    user = request.user
    ticket = views._ticket_or_404(user, pk)
    existing = QualityReview.objects.filter(ticket=ticket).select_related("ticket").first()
    # who reviews no ticket (nor corrects this one's review) is refused (403, audited) before the form is read: an
    # empty form from them was answered with the form's errors
    if not quality.may_review_at_all(user, ticket) and not (existing is not None and quality.may_correct(user, existing)):
        raise PermissionDenied(quality.refusal_text())
    form = QualityReviewForm(request.POST)
    status, conflict = 400, False
    if form.is_valid():
        data = {k: form.cleaned_data[k] for k in (*quality.CRITERIA, "comment")}
        version = form.cleaned_data.get("version")
        try:
            if existing is None or version is None:
                quality.review(user, ticket, data)
                messages.success(request, _("Review recorded."))
            else:
                quality.correct(user, existing, data, version=version)
                messages.success(request, _("Review corrected."))
        except ConflictError:
            current = QualityReview.objects.get(pk=existing.pk)
            if sent_again_after(user, current, version) and all(
                getattr(current, k) == (v.strip() if isinstance(v, str) else v) for k, v in data.items()
            ):  # the correction sent again right after (a double click): the first one made it
                messages.success(request, _("Review corrected."))
                return redirect(reverse("servicedesk:ticket", args=[ticket.pk]) + "#quality")
            data = request.POST.copy()
            data["quality-version"] = str(current.version)
            form = QualityReviewForm(data)
            form.is_valid()
            form.add_error(None, _("Someone else corrected this review while you were working on it. Your input "
                                   "is kept: check the review, then submit again."))  # fmt: skip
            status, conflict = 409, True
        except ValidationError as e:
            if existing is not None and version is None and quality.may_correct(user, existing):
                # reviewed meanwhile by someone else: the form becomes the correction of that review (its version),
                # the input kept, so that sending it again corrects instead of being refused again
                data = request.POST.copy()
                data["quality-version"] = str(existing.version)
                form = QualityReviewForm(data)
                form.is_valid()
            form.add_service_errors(e)
        else:
            return redirect(reverse("servicedesk:ticket", args=[ticket.pk]) + "#quality")
    elif existing is None and not quality.may_review(user, ticket):
        raise PermissionDenied(quality.refusal(user, ticket))
    elif existing is not None and not quality.may_correct(user, existing):
        raise PermissionDenied(_("A review is corrected by its reviewer or a service manager."))
    request._quality_state = {"form": form, "conflict": conflict}
    return render(request, "servicedesk/ticket_detail.html", views._ticket_context(request, ticket), status=status)


def _appeal_step(request, pk: int, form_class, state_key: str, act, success: str, refusal, done):
    """Run an appeal step from the ticket page: on success a message and back to the review; a step that is not the
    user's (`refusal` says why) is refused before its form is read; a stale step shows the page again with the input
    kept. `done(review, data)`: whether the review is as the form asks — the same form sent again right after by
    the same person (a double click) then shows the review, as the first sending did."""
    user = request.user
    ticket = views._ticket_or_404(user, pk)
    review = QualityReview.objects.filter(ticket=ticket).select_related("ticket").first()
    if review is None:
        raise Http404(_("This ticket has no quality review."))

    def first_did_it(form) -> bool:
        review.refresh_from_db()
        return form.is_valid() and done(review, form.cleaned_data) and sent_again_after(
            user, review, form.cleaned_data["version"])

    form = form_class(request.POST)
    refused = refusal(user, review)
    if refused:  # never the form again to someone who may not send it
        if first_did_it(form):
            messages.success(request, success)
            return redirect(reverse("servicedesk:ticket", args=[ticket.pk]) + "#quality")
        raise PermissionDenied(refused)
    status = 400
    if form.is_valid():
        try:
            act(user, review, form.cleaned_data)
        except (PermissionDenied, ConflictError) as e:
            if first_did_it(form):
                messages.success(request, success)
                return redirect(reverse("servicedesk:ticket", args=[ticket.pk]) + "#quality")
            if isinstance(e, PermissionDenied):  # decided or appealed meanwhile, or not theirs: said on the page
                form.add_error(None, str(e) or _("You do not have permission to do this."))
                status = 403
                request._quality_state = {state_key: form}
                return render(request, "servicedesk/ticket_detail.html", views._ticket_context(request, ticket),
                              status=status)  # fmt: skip
            data = request.POST.copy()
            data[f"{form_class.prefix}-version"] = str(QualityReview.objects.get(pk=review.pk).version)
            form = form_class(data)
            form.is_valid()
            form.add_error(None, _("Someone else changed this review while you were working on it. Your input is "
                                   "kept: check the review, then submit again."))  # fmt: skip
            status = 409
        except ValidationError as e:
            form.add_service_errors(e)
        else:
            messages.success(request, success)
            return redirect(reverse("servicedesk:ticket", args=[ticket.pk]) + "#quality")
    request._quality_state = {state_key: form}
    return render(request, "servicedesk/ticket_detail.html", views._ticket_context(request, ticket), status=status)


@login_required
@require_POST
def appeal_review(request, pk: int):
    return _appeal_step(
        request, pk, AppealForm, "appeal_form",
        lambda user, review, d: quality.appeal(user, review, d["appeal"], version=d["version"]),
        _("Appeal sent: a service manager decides on it."), quality.appeal_refusal,
        lambda review, d: review.appeal_status == AppealStatus.OPEN,
    )  # fmt: skip


@login_required
@require_POST
def decide_appeal(request, pk: int):
    def act(user, review, d):
        criteria = {k: d[k] for k in quality.CRITERIA}
        quality.decide_appeal(user, review, d["decision"] == "accept", d["appeal_answer"], criteria,
                              version=d["version"])  # fmt: skip

    def done(review, d):
        return review.appeal_status == (AppealStatus.ACCEPTED if d["decision"] == "accept" else AppealStatus.REJECTED)

    return _appeal_step(request, pk, DecisionForm, "decision_form", act, _("Decision on the appeal recorded."),
                        quality.decide_refusal, done)  # fmt: skip


class QualityFilterForm(PeriodField, forms.Form):
    period = forms.ChoiceField(label=gettext_lazy("Period"), required=False)
    team = PinyinModelChoiceField(label=gettext_lazy("Team"), queryset=Team.objects.none(), required=False,
                                  empty_label=gettext_lazy("All"))  # fmt: skip
    show = forms.ChoiceField(
        label=gettext_lazy("Reviews"), required=False,
        choices=[("", gettext_lazy("All")), ("findings", gettext_lazy("With a finding")),
                 ("appeals", gettext_lazy("Appeal waiting"))],
    )  # fmt: skip
    agent = forms.IntegerField(widget=forms.HiddenInput, required=False, min_value=1, max_value=2**63 - 1)

    def __init__(self, *args, user, scope, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["period"].choices = performance.period_choices()
        if scope.everything or scope.team_ids is not None:
            self.fields["team"].queryset = performance.teams_for(user, scope)
        else:
            del self.fields["team"]

    def value(self, name, default=None):
        data = self.cleaned_data if self.is_bound else {}
        return data.get(name) or default


def _filters(request):
    user = request.user
    scope = quality.scope_for(user)
    form = QualityFilterForm(request.GET or None, user=user, scope=scope)
    if form.is_bound:
        form.is_valid()
    return form, form.value("period", performance.current_period()), form.value("team")


@login_required
@require_GET
def quality_page(request):
    user = request.user
    form, period, team = _filters(request)
    rows, total = quality.agent_rows(user, period, team)
    agent = form.value("agent")
    show = form.value("show")
    reviews = quality.period_reviews(user, period, team, agent=agent, findings=show == "findings",
                                     appeals=show == "appeals")  # fmt: skip
    page = Paginator(reviews, PAGE_SIZE).get_page(request.GET.get("page"))
    params = request.GET.copy()
    params.pop("page", None)
    base = params.copy()
    base.pop("agent", None)
    context = {
        "form": form, "period": period, "rows": rows, "total": total, "page": page, "page_obj": page,
        "criteria": quality.CRITERIA, "may_review": quality.may_review_some(user),
        "agent": agent, "agent_label": next((r.label for r in rows if r.agent_id == agent), "") if agent else "",
        "query_string": params.urlencode(), "base_query": base.urlencode(), "filtered": bool(request.GET),
        "may_see_performance": performance.may_see(user),
    }  # fmt: skip
    return render(request, "servicedesk/quality.html", context, status=400 if form.errors else 200)


@login_required
@require_GET
def quality_next(request):
    """Open a random handled ticket of the period not yet reviewed (of one agent, with `agent`)."""
    user = request.user
    if not quality.may_review_some(user):
        raise PermissionDenied(quality.refusal_text())
    form, period, team = _filters(request)
    ticket = quality.next_to_review(user, period, team, form.value("agent"))
    if ticket is None:
        messages.info(request, _("Every handled ticket of this selection has been reviewed, or none is yours to "
                                 "review."))  # fmt: skip
        params = request.GET.copy()
        return redirect(reverse("servicedesk:quality") + (f"?{params.urlencode()}" if params else ""))
    return redirect(reverse("servicedesk:ticket", args=[ticket.pk]) + "#quality")


def _workbook(period, rows, total, reviews, masked: bool = True) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    def pct(v):
        return None if v is None else float(v)

    book = Workbook()
    agents = book.active
    agents.title = _("Per agent")
    downloads.append_row(agents, [_("Quality reviews"), period.key])
    downloads.append_row(agents, [_("Agent"), _("Handled"), _("Reviewed"), _("Coverage (%)"),
                                  *(f"{label} (%)" for label in quality.CRITERIA.values())])  # fmt: skip
    for r in [*rows, total]:
        downloads.append_row(agents, [r.label, r.handled, r.reviewed, pct(r.coverage),
                                      *(pct(v) for v in r.rates.values())])  # fmt: skip
    for cell in [*agents[2], *agents[agents.max_row]]:
        cell.font = Font(bold=True)
    sheet = book.create_sheet(_("Reviews"))
    downloads.append_row(sheet, [
        _("Ticket"), _("Subject"), _("Received"), _("Agent"), _("Agent judged"), pgettext("quality review", "Reviewer"),
        pgettext("quality review", "Reviewed on"), *(str(label) for label in quality.CRITERIA.values()), _("Findings"),
        _("Appeal")])  # fmt: skip
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    yes, no = _("Yes"), _("No")
    for q in reviews:
        downloads.append_row(sheet, [
            q.ticket.number, personal.free_text(q.ticket.subject, masked), timezone.localtime(q.ticket.received_at).strftime("%Y-%m-%d %H:%M"),
            str(q.ticket.assignee or ""), str(q.agent or ""), str(q.reviewer or ""),
            timezone.localtime(q.reviewed_at).strftime("%Y-%m-%d %H:%M"),
            *(yes if getattr(q, name) else no for name in quality.CRITERIA), personal.free_text(q.comment, masked),
            q.get_appeal_status_display() if q.appeal_status else "",
        ])  # fmt: skip
    for ws in (agents, sheet):
        ws.column_dimensions["A"].width = 20
        ws.freeze_panes = "A2" if ws is sheet else "B3"
    return downloads.workbook_bytes(book)


@login_required
@require_GET
def quality_export(request):
    """The page as an Excel workbook: the agents' figures and the selection's reviews (their findings included, for
    those who may read them on the page); audited."""
    user = request.user
    form, period, team = _filters(request)
    if form.errors:  # the page with its errors (400), never a workbook of other figures than those asked for
        return quality_page(request)
    rows, total = quality.agent_rows(user, period, team)
    show = form.value("show")
    reviews = list(quality.period_reviews(user, period, team, agent=form.value("agent"), findings=show == "findings",
                                          appeals=show == "appeals").select_related("agent"))  # fmt: skip
    audit.record(A.EXPORT, ("servicedesk", "", "quality reviews"), user=user, format="XLSX", period=period.key,
                 rows=len(reviews))  # fmt: skip
    # the subjects as the page lists them: the contact details typed in them masked for a role that sees them so
    book = _workbook(period, rows, total, reviews, masked=personal.masks_free_text(user))
    return downloads.xlsx(book, _("Quality reviews"), period.key)


urlpatterns = [  # included by urls.py under /service/
    path("quality/", quality_page, name="quality"),
    path("quality/export.xlsx", quality_export, name="quality-export"),
    path("quality/next/", quality_next, name="quality-next"),
    path("tickets/<int:pk>/quality/", review_ticket, name="ticket-quality"),
    path("tickets/<int:pk>/quality/appeal/", appeal_review, name="ticket-quality-appeal"),
    path("tickets/<int:pk>/quality/decide/", decide_appeal, name="ticket-quality-decide"),
]
