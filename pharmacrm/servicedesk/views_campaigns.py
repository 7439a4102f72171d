"""Service-desk pages: satisfaction survey campaigns (定期满意度调查) — the list, a new campaign, a campaign's page
(criteria, target counts, CSAT and NPS overall and per customer class, the answers, the customers to call), its
start and close, a phone answer, and the Excel export of the results. Who may do what: campaigns.py."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from pharmacrm.core import access, audit, downloads, personal
from pharmacrm.core.form_saves import create_once, sent_again
from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Cap
from pharmacrm.customers.views import AlreadyCreated

from . import campaigns
from .choices import CampaignStatus, TargetMail, TargetReach
from .forms_revisit import CampaignForm, CampaignPhoneForm
from .models import SurveyCampaign

A = AuditEntry.Action
SHOWN = 500  # rows of a list on the page (the export has them all)


def _campaign_or_404(user, pk: int) -> SurveyCampaign:
    campaigns.require_view(user)
    campaign = (SurveyCampaign.objects.select_related("owner", "team", "created_by", "repeat_by", "repeated_from")
                .filter(pk=pk).first())  # fmt: skip
    if campaign is None:
        raise Http404(_("No such survey campaign."))
    return campaign


def _list_context(request, form=None) -> dict:
    user = request.user
    return {
        "campaigns": SurveyCampaign.objects.select_related("created_by").order_by("-period", "-id")[:200],
        "form": form if form is not None else (CampaignForm() if campaigns.may_manage(user) else None),
        "may_manage": campaigns.may_manage(user),
    }


@login_required
@require_GET
def campaign_list(request):
    campaigns.require_view(request.user)
    return render(request, "servicedesk/campaign_list.html", _list_context(request))


@login_required
@require_POST
def campaign_create(request):
    access.require(request.user, Cap.MANAGE_SERVICE)
    form = CampaignForm(request.POST)
    if form.is_valid():
        try:  # once per form: sent again (a double click), it leads to the campaign the first one prepared
            campaign = create_once(request.user, request.POST.get("form_token"),
                                   lambda: campaigns.create_campaign(request.user, form.data_for_service()))  # fmt: skip
        except AlreadyCreated as e:
            return sent_again(request, SurveyCampaign, e.pk, reverse("servicedesk:campaigns"),
                              page_of=lambda c: reverse("servicedesk:campaign", args=[c.pk]))  # fmt: skip
        except ValidationError as e:
            form.add_service_errors(e)
        else:
            messages.success(request, _("The campaign “%(name)s” was prepared: check its list, then start it.")
                             % {"name": campaign.name})  # fmt: skip
            return redirect("servicedesk:campaign", pk=campaign.pk)
    return render(request, "servicedesk/campaign_list.html", _list_context(request, form), status=400)


def _detail_context(request, campaign: SurveyCampaign) -> dict:
    user = request.user
    context = {"campaign": campaign, "may_manage": campaigns.may_manage(user),
               "may_results": campaigns.may_see_results(user), "may_call": access.can(user, Cap.HANDLE_TICKETS)}  # fmt: skip
    context["criteria"] = _criteria(campaign)
    context["repeat_label"] = campaigns.repeat_label(campaign)
    if campaign.status == CampaignStatus.DRAFT:
        if context["may_results"]:
            try:
                rows = campaigns.candidates(campaign)
            except ValidationError as e:  # more customers than a campaign asks: said, not cut short
                context["preview_error"] = " ".join(e.message_dict["targets"])
                return context
            counts: dict[str, int] = {}
            for r in rows:
                counts[r.reach] = counts.get(r.reach, 0) + 1
            context["preview"] = [(TargetReach(k).label, counts[k]) for k in TargetReach.values if k in counts]
            context["preview_total"] = len(rows)
        return context
    if context["may_results"]:
        context["results"] = campaigns.results(campaign)
        context["answers"] = list(campaigns.answers(user, campaign)[:SHOWN])
    targets = campaigns.targets_for(user, campaign).select_related("institution", "person", "survey")
    # no mail reaches them: no person, address or consent — or their mail failed every attempt (the sweep gave up)
    given_up = Q(reach=TargetReach.MAIL, mail=TargetMail.FAILED, attempts__gte=campaigns.MAX_ATTEMPTS)
    to_call = [t for t in targets.filter(Q(reach__in=campaigns.UNREACHABLE) | given_up).order_by("id")[:SHOWN]
               if t.survey is None or t.survey.answered_at is None]  # fmt: skip
    people = [t.person for t in to_call if t.person is not None]
    shown = personal.contact_view(user, people, fields=("mobile", "landline")) if people else {}
    for t in to_call:
        contact = shown.get(t.person_id, {})
        t.phone = contact.get("mobile") or contact.get("landline") or t.institution.phone or ""
        t.reason = campaigns.reach_text(t)
        if t.mail == TargetMail.FAILED:
            t.reason = f"{t.reason} · {t.get_mail_display()}"
    context["to_call"] = to_call
    return context


def _criteria(campaign: SurveyCampaign) -> list[tuple[str, str]]:
    """The criteria as the page shows them: labels, not codes."""
    from pharmacrm.core.models import Region
    from pharmacrm.customers.choices import InstitutionType, Tier

    found = Region.objects.filter(code=campaign.province).first() if campaign.province else None
    province = found.display_name if found else ""  # in the reader's language (Guangdong, 廣東省)
    return [
        (_("Customer class"), campaign.klass), (_("Tier"), str(dict(Tier.choices).get(campaign.tier, campaign.tier))),
        (_("Institution type"), str(dict(InstitutionType.choices).get(campaign.institution_kind, campaign.institution_kind))),
        (_("Province"), province or campaign.province), (_("Owner"), str(campaign.owner or "")),
        (_("Team"), str(campaign.team or "")),
    ]  # fmt: skip


@login_required
@require_GET
def campaign_detail(request, pk: int):
    campaign = _campaign_or_404(request.user, pk)
    return render(request, "servicedesk/campaign_detail.html", _detail_context(request, campaign))


def _step(request, pk: int, step, done: str):
    campaign = _campaign_or_404(request.user, pk)
    access.require(request.user, Cap.MANAGE_SERVICE)
    try:
        step(request.user, campaign)
    except ValidationError as e:
        messages.error(request, " ".join(e.messages))
    else:
        messages.success(request, done)
    return redirect("servicedesk:campaign", pk=campaign.pk)


@login_required
@require_POST
def campaign_start(request, pk: int):
    return _step(request, pk, campaigns.start, _("The campaign was started: the survey mails are being sent."))


@login_required
@require_POST
def campaign_close(request, pk: int):
    return _step(request, pk, campaigns.close, _("The campaign was closed: its links no longer take answers."))


@login_required
@require_POST
def campaign_repeat(request, pk: int):
    """Turn repeating on (again) or off."""
    from pharmacrm.customers.services import ConflictError

    campaign = _campaign_or_404(request.user, pk)
    access.require(request.user, Cap.MANAGE_SERVICE)
    on = request.POST.get("repeat") == "on"
    try:
        campaign = campaigns.set_repeat(request.user, campaign, on, version=request.POST.get("version") or None)
    except ConflictError as e:
        messages.error(request, str(e))
    except ValidationError as e:
        messages.error(request, " ".join(e.messages))
    else:
        if on:
            messages.success(request, _("The campaign repeats: the next one, %(period)s, starts on %(date)s at 09:00.") % {
                "period": campaign.repeat_next_period,
                "date": timezone.localtime(campaign.repeat_next_at).date().isoformat()})  # fmt: skip
        else:
            messages.success(request, _("The campaign no longer repeats."))
    return redirect("servicedesk:campaign", pk=campaign.pk)


@login_required
@require_http_methods(["GET", "POST"])
def campaign_phone(request, pk: int, target: int):
    """An agent records a contact's answers given on the phone."""
    campaign = _campaign_or_404(request.user, pk)
    access.require(request.user, Cap.HANDLE_TICKETS)
    found = campaigns.targets_for(request.user, campaign).select_related("institution", "person", "campaign")
    found = found.filter(pk=target).first()
    if found is None:
        raise Http404(_("No such customer in this campaign, or you may not see it."))
    form = CampaignPhoneForm(request.POST or None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            d = form.cleaned_data
            try:
                survey = campaigns.record_phone(request.user, found, d["score"], d.get("comment") or "", d.get("recommend"))
            except ValidationError as e:
                form.add_service_errors(e)
            except PermissionDenied:
                raise
            else:
                text = _("The answers were recorded.")
                if survey.outcome:
                    text += " " + _("An improvement action was opened on the customer.")
                messages.success(request, text)
                return redirect("servicedesk:campaign", pk=campaign.pk)
    context = {"campaign": campaign, "target": found, "reason": campaigns.reach_text(found), "form": form}
    return render(request, "servicedesk/campaign_phone.html", context, status=status)


def export_xlsx(user, campaign: SurveyCampaign) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    res = campaigns.results(campaign)
    book = Workbook()
    sheet = book.active
    sheet.title = campaign.period
    downloads.append_row(sheet, [campaign.name, campaign.period, campaign.get_status_display()])
    sheet.append([_("Targeted"), _("Sent"), _("Not reachable by mail"), _("Not asked"), _("Answered"),
                  _("Response rate (%)"), _("CSAT"), _("NPS")])  # fmt: skip
    rate = res.response_rate
    csat = res.figures.csat
    sheet.append([res.targeted, res.sent, res.unreachable, res.not_asked, res.answered,
                  None if rate is None else float(rate), None if csat is None else float(csat), res.figures.nps])  # fmt: skip
    sheet.append([])
    sheet.append([_("Customer class"), _("Targeted"), _("Answered"), _("CSAT"), _("NPS")])
    for klass, targeted, answered, f in res.by_class:
        sheet.append([klass or _("no class"), targeted, answered, None if f.csat is None else float(f.csat), f.nps])
    sheet.append([])
    head = [_("Customer"), _("Customer class"), _("Contact person"), _("E-mail"), _("Reach"), _("Mail"), _("Channel"),
            _("Answered"), _("Satisfaction (1–5)"), _("Would recommend us (0–10)"), _("Comment"), _("Outcome")]  # fmt: skip
    sheet.append(head)
    for cell in sheet[sheet.max_row]:
        cell.font = Font(bold=True)
    targets = list(campaigns.targets_for(user, campaign).select_related("institution", "person", "survey").order_by("id"))
    people = [t.person for t in targets if t.person is not None]
    shown = personal.contact_view(user, people, fields=("email",), purpose="export") if people else {}
    masked = personal.masks_free_text(user)  # a comment's contact details, as the e-mail column
    for t in targets:
        s = t.survey
        answered = s is not None and s.answered_at is not None
        downloads.append_row(sheet, [
            t.institution.name, t.klass, t.person.name if t.person else "", shown.get(t.person_id, {}).get("email", ""),
            campaigns.reach_text(t), t.get_mail_display() if t.mail else "", s.get_channel_display() if answered else "",
            timezone.localtime(s.answered_at).strftime("%Y-%m-%d %H:%M") if answered else "",
            s.score if answered else None, s.recommend if answered else None, personal.free_text(s.comment, masked) if answered else "",
            s.get_outcome_display() if answered and s.outcome else "",
        ])  # fmt: skip
    sheet.column_dimensions["A"].width = 30
    return downloads.workbook_bytes(book)


@login_required
@require_GET
def campaign_export(request, pk: int):
    campaign = _campaign_or_404(request.user, pk)
    if not campaigns.may_see_results(request.user):
        raise PermissionDenied(_("You may not export the results of survey campaigns."))
    data = export_xlsx(request.user, campaign)
    audit.record(A.EXPORT, campaign, user=request.user, format="XLSX", period=campaign.period)
    return downloads.xlsx(data, _("Satisfaction survey"), campaign.period)


urlpatterns: list = [  # included by urls.py under /service/
    path("surveys/", campaign_list, name="campaigns"),
    path("surveys/new/", campaign_create, name="campaign-create"),
    path("surveys/<int:pk>/", campaign_detail, name="campaign"),
    path("surveys/<int:pk>/start/", campaign_start, name="campaign-start"),
    path("surveys/<int:pk>/close/", campaign_close, name="campaign-close"),
    path("surveys/<int:pk>/repeat/", campaign_repeat, name="campaign-repeat"),
    path("surveys/<int:pk>/targets/<int:target>/phone/", campaign_phone, name="campaign-phone"),
    path("surveys/<int:pk>/export.xlsx", campaign_export, name="campaign-export"),
]
