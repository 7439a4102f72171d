"""Cooperation pages (/cooperation/): the archive of agreements (filters, Excel export), an agreement with its signed
copy and projects, a project with its plan, tasks, checks, acceptance and settlement, and the block on the Customer
360 page. services.py decides and saves; these views only render and pass the input on."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import pgettext
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from pharmacrm.core import access, amendments, audit, downloads, personal
from pharmacrm.core.form_saves import SENT_AGAIN, create_once, save_form, save_new_form, sent_again_after
from pharmacrm.core.ids import is_id
from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Cap
from pharmacrm.customers.forms import once_token
from pharmacrm.customers.services import ConflictError
from pharmacrm.customers.views import AlreadyCreated

from . import forms, services
from .models import Acceptance, Agreement, AgreementStatus, ProjectStatus, Task, TaskStatus

A = AuditEntry.Action


def _require_read(user) -> None:
    access.require(user, Cap.READ_COOPERATION)


def filtered(user, params) -> tuple[forms.FilterForm, object]:
    form = forms.FilterForm(user, params or None)
    qs = services.agreements_for(user).select_related("institution", "owner")
    if form.is_valid():
        d = form.cleaned_data
        if d.get("q"):  # the title as the user reads it: a part of a masked number finds nothing
            q = d["q"].strip()
            qs = qs.filter(number__icontains=q) | personal.search_as_shown(user, qs, ("title",), q)
        if d.get("customer"):
            qs = qs.filter(institution__name__icontains=d["customer"].strip())
        if d.get("kind"):
            qs = qs.filter(kind=d["kind"])
        if d.get("status"):
            qs = qs.filter(status=d["status"])
        if d.get("owner"):
            qs = qs.filter(owner_id=d["owner"])
        if d.get("expiring") is not None:
            today = timezone.localdate()
            qs = qs.filter(status__in=[AgreementStatus.SIGNED, AgreementStatus.IN_FORCE], end_date__gte=today,
                           end_date__lte=today + dt.timedelta(days=d["expiring"]))  # fmt: skip
    return form, qs.order_by("-number")


@login_required
@require_GET
def agreement_list(request):
    _require_read(request.user)
    form, qs = filtered(request.user, request.GET)
    if request.GET.get("format") == "xlsx":
        return _export(request, qs)
    page = Paginator(qs, 50).get_page(request.GET.get("page"))
    return render(request, "cooperation/agreement_list.html", {
        "form": form, "page_obj": page, "agreements": page.object_list,
        "may_create": access.can(request.user, Cap.MANAGE_COOPERATION)})  # fmt: skip


def _export(request, qs) -> HttpResponse:
    """The agreements as an Excel sheet, their titles with the contact details typed in them masked for a reader who
    sees personal data masked, as the list shows them."""
    from openpyxl import Workbook

    masked = personal.masks_free_text(request.user)
    book = Workbook()
    sheet = book.active
    sheet.title = _("Cooperation agreements")[:31]
    sheet.append([_("Number"), _("Customer"), _("Type"), pgettext("record title", "Title"), _("Status"), _("Start"), _("End"),
                  _("Amount (yuan)"), _("Signed on"), _("Responsible person"), _("Projects")])  # fmt: skip
    rows = 0
    for ag in qs.prefetch_related("projects"):
        downloads.append_row(sheet, [
            ag.number, ag.institution.name, ag.get_kind_display(), personal.free_text(ag.title, masked),
            ag.get_status_display(), ag.start_date,
            ag.end_date, None if ag.amount is None else float(ag.amount), ag.signed_date, str(ag.owner),
            len(ag.projects.all())])  # fmt: skip
        rows += 1
    audit.record(A.EXPORT, ("cooperation.agreement", "", "agreements"), user=request.user, format="XLSX", rows=rows)
    return downloads.xlsx(downloads.workbook_bytes(book), _("Cooperation agreements"))


LIVE_FIELDS = ("title", "company_signer", "start_date", "end_date", "amount")


def _live_validation(request, agreement: Agreement | None = None):
    """The error fragment of one field as the user types (htmx): the service's own rules, on the whole form as it
    stands (the end is checked against the start)."""
    name = request.POST.get("_validate", "")
    if name not in LIVE_FIELDS:
        raise Http404
    values = {f: request.POST.get(f, "") for f in services.AGREEMENT_FIELDS}
    # the texts shown masked to the editor are checked as they would be saved: the masks put back as stored
    values = personal.restore_free_text(request.user, values, agreement, services.AGREEMENT_TEXTS)
    errors = []
    try:
        services.clean_agreement(request.user, values, current=agreement)
    except ValidationError as e:
        errors = e.message_dict.get(name, [])
    return render(request, "partials/field_errors.html", {"name": name, "errors": errors})


@login_required
@require_http_methods(["GET", "POST"])
def agreement_create(request):
    access.require(request.user, Cap.MANAGE_COOPERATION)
    if request.method == "POST" and "_validate" in request.POST:
        return _live_validation(request)
    initial = {"institution": request.GET.get("institution", ""), "owner": str(request.user.pk)}
    form = forms.AgreementForm(request.user, request.POST or None, initial=initial, creating=True)
    status = 200
    if request.method == "POST":
        outcome = save_new_form(request.user, form, lambda: services.create_agreement(request.user, form.values()))
        if outcome.again:
            messages.info(request, SENT_AGAIN)
            return redirect("cooperation:agreement", outcome.result) if outcome.result else redirect(
                "cooperation:agreements")
        if outcome.saved:
            agreement = outcome.result
            messages.success(request, _("Agreement %(number)s recorded.") % {"number": agreement.number})
            return redirect("cooperation:agreement", agreement.pk)
        status = outcome.status
    return render(request, "cooperation/agreement_form.html", {"form": form, "live": LIVE_FIELDS}, status=status)


def _agreement(request, pk) -> Agreement:
    _require_read(request.user)
    return get_object_or_404(services.agreements_for(request.user).select_related("institution", "owner", "team"),
                             pk=pk)  # fmt: skip


def _edit_sent_again(user, agreement: Agreement, data: dict, version) -> bool:
    """The edit form sent twice (a double click): the agreement is one version on because this user saved it, and it
    holds what the form says (form_saves.sent_again_after) — a colleague's change in between is a stale form."""
    fresh = Agreement.objects.filter(pk=agreement.pk).first()
    if fresh is None or not sent_again_after(user, fresh, version):
        return False
    try:
        values = services.clean_agreement(user, {**{f: getattr(fresh, f) for f in services.AGREEMENT_FIELDS}, **data},
                                          current=fresh)  # fmt: skip
    except ValidationError:
        return False
    return all(getattr(fresh, k) == v for k, v in values.items())


@login_required
@require_http_methods(["GET", "POST"])
def agreement_edit(request, pk):
    agreement = _agreement(request, pk)
    services.require_manage(request.user, agreement)
    if request.method == "POST" and "_validate" in request.POST:
        return _live_validation(request, agreement)
    signed = agreement.status != AgreementStatus.DRAFT
    initial = {f: getattr(agreement, f + "_id", None) or getattr(agreement, f) for f in services.AGREEMENT_FIELDS}
    masked = personal.masks_free_text(request.user)  # the texts as the page shows them; masks saved back as stored
    initial.update({f: personal.free_text(initial[f], masked) for f in services.AGREEMENT_TEXTS})
    form = forms.AgreementForm(request.user, request.POST or None, initial=initial, signed=signed)
    status = 200
    if request.method == "POST":
        version = request.POST.get("version")
        outcome = save_form(form, lambda: services.update_agreement(request.user, agreement, form.values(), version))
        if outcome.saved or (outcome.status == 409 and _edit_sent_again(request.user, agreement, form.values(),
                                                                         version)):  # fmt: skip
            messages.success(request, _("Saved."))
            return redirect("cooperation:agreement", agreement.pk)
        status = outcome.status
    return render(request, "cooperation/agreement_form.html", {"form": form, "agreement": agreement, "live": LIVE_FIELDS},
                  status=status)  # fmt: skip


def _amendment_form(agreement: Agreement, data=None, files=None) -> forms.AmendmentForm:
    return forms.AmendmentForm(data, files, prefix="amend", initial={
        "start_date": agreement.start_date.isoformat(), "end_date": agreement.end_date.isoformat(),
        "effective_date": timezone.localdate().isoformat()})  # fmt: skip


@csrf_exempt  # the size check must come before anything reads the body; CSRF is checked just below
@login_required
@require_http_methods(["GET", "POST"])
def agreement_detail(request, pk):
    """The agreement page and its forms; a signed copy (of the signing or of an amendment) over the limit is refused
    before it is read, as on the key-account agreements and the API: at once when the request announces its size,
    as soon as the body passes the limit otherwise."""
    from pharmacrm.customers.views_import import MULTIPART_OVERHEAD, SizeLimitHandler, content_length
    from pharmacrm.keyaccounts import services as ka

    limiter = None
    if request.method == "POST":
        if content_length(request) > ka.SIGNED_COPY_MAX + MULTIPART_OVERHEAD:
            _agreement(request, pk)  # 404 for an agreement the user may not see
            messages.error(request, _("The file is too large; the limit is 20 MB."))
            return redirect("cooperation:agreement", pk)
        limiter = SizeLimitHandler(request, limit=ka.SIGNED_COPY_MAX)
        request.upload_handlers.insert(0, limiter)
    return _agreement_detail(request, pk, limiter)


@csrf_protect
def _agreement_detail(request, pk, limiter):
    too_large = ValidationError({"signed_copy": [_("The file is too large; the limit is 20 MB.")]})
    agreement = _agreement(request, pk)
    may_manage = services.may_manage(request.user, agreement)
    sign_form = forms.SignForm(prefix="sign")
    amend_form = _amendment_form(agreement)
    project_form = forms.ProjectForm(request.user, prefix="project", creating=True, initial={
        "start_date": agreement.start_date, "end_date": agreement.end_date, "responsible": str(agreement.owner_id)})
    status = 200
    if request.method == "POST" and request.POST.get("action") == "amend":
        access.require_agreement_term(request.user, agreement)  # refused before the form is read
        amend_form = _amendment_form(agreement, request.POST, request.FILES)
        version = request.POST.get("version")
        data = amend_form.values()
        try:  # once per form: sent again (a double click), the agreement as the first one left it
            if limiter is not None and limiter.too_large:  # the body passed the limit as it was read
                raise too_large
            amendment = create_once(request.user, once_token(request.POST.get("amend-form_token")),
                                    lambda: services.amend_term(request.user, agreement, data,
                                                                version if is_id(version) else -1))  # fmt: skip
        except AlreadyCreated:
            messages.info(request, SENT_AGAIN)
            return redirect("cooperation:agreement", agreement.pk)
        except ConflictError as e:
            amend_form.add_error(None, str(e))
            status = 409
        except ValidationError as e:
            amend_form.add_service_errors(e)
            status = 400
        else:
            messages.success(request, _("Amendment %(number)s was recorded: the term is now %(start)s – %(end)s.")
                             % {"number": amendment.number, "start": amendment.start_date.isoformat(),
                                "end": amendment.end_date.isoformat()})  # fmt: skip
            return redirect("cooperation:agreement", agreement.pk)
        agreement.refresh_from_db()  # a refused amendment left the agreement as it is
    elif request.method == "POST" and request.POST.get("action") == "project":
        services.require_manage(request.user, agreement)
        project_form = forms.ProjectForm(request.user, request.POST, prefix="project", creating=True)
        outcome = save_new_form(request.user, project_form,
                                lambda: services.create_project(request.user, agreement, project_form.values()))
        if outcome.again:  # the form sent twice (a double click): the project the first one added
            messages.info(request, SENT_AGAIN)
            return redirect("cooperation:project", outcome.result) if outcome.result else redirect(
                "cooperation:agreement", agreement.pk)
        if outcome.saved:
            return redirect("cooperation:project", outcome.result.pk)
        status = outcome.status
    elif request.method == "POST":
        services.require_manage(request.user, agreement)
        action, version = request.POST.get("action"), request.POST.get("version")
        try:
            if action == "sign":
                sign_form = forms.SignForm(request.POST, request.FILES, prefix="sign")
                sign_form.is_valid()
                if limiter is not None and limiter.too_large:  # the body passed the limit as it was read
                    raise too_large
                services.record_signed(request.user, agreement, signed_date=request.POST.get("sign-signed_date"),
                                       upload=request.FILES.get("sign-signed_copy"), version=version)  # fmt: skip
            elif action == "in_force":
                services.put_in_force(request.user, agreement, version)
            elif action == "terminate":
                services.terminate(request.user, agreement, version)
            else:
                raise Http404
        except ConflictError as e:
            messages.error(request, str(e))
            return redirect("cooperation:agreement", agreement.pk)
        except ValidationError as e:
            target = sign_form if action == "sign" else None
            if target is None:
                messages.error(request, " ".join(m for ms in e.message_dict.values() for m in ms))
                return redirect("cooperation:agreement", agreement.pk)
            target.add_service_errors(e)
            status = 400
        else:
            messages.success(request, _("Saved."))
            return redirect("cooperation:agreement", agreement.pk)
    projects = agreement.projects.select_related("responsible").order_by("-start_date", "-id")
    amendments.attach_history([agreement])  # its amendments of the term, and the term as signed
    may_amend = (agreement.status in services.COOPERATION_TERMS.amendable_statuses
                 and agreement.pending_amendment is None  # one amendment waiting for its day at most
                 and access.may_change_agreement_term(request.user, agreement))  # fmt: skip
    return render(request, "cooperation/agreement_detail.html", {
        "agreement": agreement, "projects": projects, "may_manage": may_manage, "sign_form": sign_form,
        "project_form": project_form, "today": timezone.localdate(), "may_amend": may_amend,
        "amend_form": amend_form, "may_attach_copy": access.may_change_agreement_term(request.user, agreement),
    }, status=status)  # fmt: skip


def _amendment(request, pk, sequence):
    agreement = _agreement(request, pk)
    amendment = agreement.amendments.filter(sequence=sequence).first()
    if amendment is None:
        raise Http404
    amendment.agreement = agreement
    return amendment


@csrf_exempt  # the size check must come before anything reads the body; CSRF is checked just below
@login_required
@require_POST
def amendment_attach_copy(request, pk, sequence):
    """Upload the signed copy of an amendment recorded without one (keyaccounts' attach_copy_answer says how it went);
    an upload over the limit is refused before it is read."""
    from pharmacrm.customers.views_import import MULTIPART_OVERHEAD, SizeLimitHandler, content_length
    from pharmacrm.keyaccounts import services as ka

    too_large = _("The file is too large; the limit is 20 MB.")
    if content_length(request) > ka.SIGNED_COPY_MAX + MULTIPART_OVERHEAD:
        _amendment(request, pk, sequence)  # 404 for an amendment the user may not see
        messages.error(request, too_large)
        return redirect(reverse("cooperation:agreement", args=[pk]) + "#amendments")
    limiter = SizeLimitHandler(request, limit=ka.SIGNED_COPY_MAX)
    request.upload_handlers.insert(0, limiter)
    return _amendment_attach_copy(request, pk, sequence, limiter, too_large)


@csrf_protect
def _amendment_attach_copy(request, pk, sequence, limiter, too_large: str):
    from pharmacrm.keyaccounts.views_programme import attach_copy_answer

    amendment = _amendment(request, pk, sequence)
    access.require_agreement_term(request.user, amendment.agreement)
    upload = request.FILES.get("signed_copy")
    if limiter.too_large:
        messages.error(request, too_large)
    else:
        attach_copy_answer(request, lambda: services.attach_amendment_copy(request.user, amendment, upload), amendment)
    return redirect(reverse("cooperation:agreement", args=[pk]) + "#amendments")


@login_required
@require_GET
def amendment_pdf(request, pk, sequence):
    """An amendment's bilingual text made from its record, for whoever may read the agreement; audited as an export."""
    amendment = _amendment(request, pk, sequence)
    data = services.amendment_text(amendment)
    audit.record(A.EXPORT, amendment, user=request.user, format="PDF", rows=1)
    return downloads.attachment(data, f"{amendment.number}.pdf", "application/pdf")


@login_required
@require_GET
def amendment_signed_copy(request, pk, sequence):
    from pharmacrm.keyaccounts import services as ka
    from pharmacrm.keyaccounts.views_programme import amendment_copy_response

    amendment = _amendment(request, pk, sequence)
    try:
        return amendment_copy_response(amendment, request.user, services.files_dir())
    except ka.DocumentUnavailable as e:
        messages.error(request, str(e))
        return redirect("cooperation:agreement", pk)


def _download(request, name: str, shown: str, obj) -> FileResponse:
    try:
        data = services.kept_file(name)
    except FileNotFoundError:
        raise Http404 from None
    audit.record(A.EXPORT, obj, user=request.user, format=Path(name).suffix.lstrip(".").upper(), rows=1)
    response = FileResponse(io.BytesIO(data), as_attachment=True, filename=shown)
    response["Cache-Control"] = "private, no-store"
    return response


@login_required
@require_GET
def signed_copy(request, pk):
    agreement = _agreement(request, pk)
    if not agreement.signed_copy:
        raise Http404
    return _download(request, agreement.signed_copy, agreement.signed_copy_name, agreement)


@login_required
@require_GET
def agreement_pdf(request, pk):
    """The agreement's text generated from its record (agreement_pdf.py), for whoever may read the agreement;
    audited as an export."""
    from . import agreement_pdf as document

    agreement = _agreement(request, pk)
    data = document.render(agreement)
    audit.record(A.EXPORT, agreement, user=request.user, format="PDF", rows=1)
    return downloads.attachment(data, f"{agreement.number}.pdf", "application/pdf")


@login_required
@require_GET
def acceptance_file(request, pk):
    _require_read(request.user)
    acceptance = get_object_or_404(Acceptance.objects.filter(project__in=services.projects_for(request.user)), pk=pk)
    if not acceptance.attachment:
        raise Http404
    return _download(request, acceptance.attachment, acceptance.attachment_name, acceptance.audit_name)


PROJECT_FORMS = {"task": forms.TaskForm, "check": forms.CheckForm, "acceptance": forms.AcceptanceForm,
                 "due": forms.DueForm, "payment": forms.PaymentForm}  # fmt: skip


def _done_by_first_click(user, project, action: str, version, data) -> bool:
    """A project's button or form sent again right after by the same person (a double click): the record is one
    version on from the one the page showed, that person made the change, and it is what the form asks for."""
    project = services.Project.objects.get(pk=project.pk)
    if action == "start":
        return project.status == ProjectStatus.RUNNING and sent_again_after(user, project, version)
    if action == "close":
        return project.status == ProjectStatus.CLOSED and sent_again_after(user, project, version)
    if action == "due":
        return services.amount_due_is(project, forms.DueForm(data, prefix="due").values()) and sent_again_after(
            user, project, version)  # fmt: skip
    if action == "task-update":
        task = Task.objects.filter(pk=data.get("task") if is_id(data.get("task")) else 0, project=project).first()
        return task is not None and str(task.status) == data.get("status", task.status) and str(task.progress) == str(
            data.get("progress", task.progress)) and sent_again_after(user, task, version)  # fmt: skip
    return False


@login_required
@require_http_methods(["GET", "POST"])
def project_detail(request, pk):
    _require_read(request.user)
    project = get_object_or_404(services.projects_for(request.user).select_related(
        "agreement__institution", "responsible"), pk=pk)  # fmt: skip
    user = request.user
    may_manage = services.may_manage(user, project.agreement)

    def make(name, data=None, files=None):
        cls = PROJECT_FORMS[name]
        initial = {"due": {"amount_due": project.amount_due or "", "settlement_due_date": project.settlement_due_date},
                   "task": {"owner": str(project.responsible_id)}}.get(name, {})  # fmt: skip
        args = (user,) if cls in (forms.TaskForm,) else ()
        return cls(*args, data, files, prefix=name, initial=initial)

    bound = {name: make(name) for name in PROJECT_FORMS}
    status = 200
    if request.method == "POST":
        action, version = request.POST.get("action"), request.POST.get("version")
        try:
            if action == "task-update":
                task = get_object_or_404(Task, pk=request.POST.get("task") or 0, project=project) if is_id(
                    request.POST.get("task")) else None  # fmt: skip
                if task is None:
                    raise Http404
                if version in (None, ""):  # as the API: a report that cannot say what it was made from is refused
                    messages.error(request, services.task_version_required())
                    return redirect("cooperation:project", project.pk)
                services.update_task(user, task, {"status": request.POST.get("status", task.status),
                                                  "progress": request.POST.get("progress", task.progress)},
                                     version)  # fmt: skip
            else:
                services.require_manage(user, project.agreement)
                if action in ("start", "close", "due") and not is_id(version):
                    version = -1  # the page always carries it: a form without is stale
                if action == "start":
                    services.start_project(user, project, version)
                elif action == "close":
                    services.close_project(user, project, version)
                elif action in PROJECT_FORMS:
                    bound[action] = make(action, request.POST, request.FILES)
                    values = bound[action].values()
                    token = once_token(request.POST.get(f"{action}-form_token"))
                    if action == "task":
                        create_once(user, token, lambda: services.add_task(user, project, values))
                    elif action == "check":
                        create_once(user, token, lambda: services.add_check(user, project, values))
                    elif action == "acceptance":
                        create_once(user, token, lambda: services.record_acceptance(
                            user, project, values, request.FILES.get("acceptance-attachment")))  # fmt: skip
                    elif action == "due":
                        services.set_amount_due(user, project, values, version)
                    else:
                        create_once(user, token, lambda: services.add_payment(user, project, values))
                else:
                    raise Http404
        except AlreadyCreated:  # a form sent twice (a double click): the first one added it
            messages.info(request, SENT_AGAIN)
            return redirect("cooperation:project", project.pk)
        except ConflictError as e:
            if _done_by_first_click(user, project, action, version, request.POST):
                messages.success(request, _("Saved."))
            else:
                messages.error(request, str(e))
            return redirect("cooperation:project", project.pk)
        except ValidationError as e:
            if action in PROJECT_FORMS:
                bound[action].add_service_errors(e)
                status = 400
            else:
                messages.error(request, " ".join(m for ms in e.message_dict.values() for m in ms))
                return redirect("cooperation:project", project.pk)
        else:
            messages.success(request, _("Saved."))
            return redirect("cooperation:project", project.pk)
    tasks = list(project.tasks.select_related("owner"))
    today = timezone.localdate()
    for t in tasks:
        t.late = t.status != TaskStatus.DONE and t.deadline < today
        t.may_report = may_manage or (t.owner_id == user.pk and access.can(user, Cap.READ_COOPERATION)
                                      and not access.roles_of(user) & access.READ_ONLY_ROLES)  # fmt: skip
    return render(request, "cooperation/project_detail.html", {
        "project": project, "agreement": project.agreement, "may_manage": may_manage, "tasks": tasks,
        "checks": project.checks.select_related("recorded_by"), "acceptances": project.acceptances.all(),
        "payments": project.payments.all(), "paid": services.amount_paid(project), "forms": bound,
        "task_statuses": TaskStatus.choices, "open": project.status in services.OPEN_PROJECT,
        "running": project.status == ProjectStatus.RUNNING,
    }, status=status)  # fmt: skip


@login_required
@require_http_methods(["GET", "POST"])
def project_edit(request, pk):
    _require_read(request.user)
    project = get_object_or_404(services.projects_for(request.user).select_related("agreement"), pk=pk)
    services.require_manage(request.user, project.agreement)
    initial = {f: getattr(project, f + "_id", None) or getattr(project, f) for f in services.PROJECT_FIELDS}
    masked = personal.masks_free_text(request.user)  # the texts as the page shows them; masks saved back as stored
    initial.update({f: personal.free_text(initial[f], masked) for f in services.PROJECT_TEXTS})
    initial["responsible"] = str(project.responsible_id)
    form = forms.ProjectForm(request.user, request.POST or None, initial=initial)
    status = 200
    if request.method == "POST":
        outcome = save_form(form, lambda: services.update_project(request.user, project, form.values(),
                                                                  request.POST.get("version")))  # fmt: skip
        if outcome.saved:
            messages.success(request, _("Saved."))
            return redirect("cooperation:project", project.pk)
        status = outcome.status
    return render(request, "cooperation/project_form.html", {"form": form, "project": project}, status=status)


@login_required
@require_GET
def task_list(request):
    """The tasks of the projects the user may see; ?mine=1 — those they own (my tasks)."""
    _require_read(request.user)
    qs = Task.objects.filter(project__in=services.projects_for(request.user).values("id")).select_related(
        "project__agreement__institution", "owner")  # fmt: skip
    mine = request.GET.get("mine") == "1"
    if mine:
        qs = qs.filter(owner=request.user)
    if request.GET.get("open", "1") == "1":
        qs = qs.exclude(status=TaskStatus.DONE)
    page = Paginator(qs.order_by("deadline", "id"), 50).get_page(request.GET.get("page"))
    return render(request, "cooperation/task_list.html", {"page_obj": page, "tasks": page.object_list, "mine": mine,
                                                          "today": timezone.localdate()})  # fmt: skip


@login_required
@require_GET
def customer_panel(request, institution_id):
    """The block of a Customer 360 page: the customer's agreements and their projects."""
    if not access.can(request.user, Cap.READ_COOPERATION):
        raise PermissionDenied
    institution = get_object_or_404(access.institutions_for(request.user), pk=institution_id)
    agreements = list(services.agreements_for(request.user).filter(institution=institution)
                      .select_related("owner").prefetch_related("projects").order_by("-number")[:20])  # fmt: skip
    return render(request, "cooperation/_customer_block.html", {
        "agreements": agreements, "institution": institution,
        "may_create": access.can(request.user, Cap.MANAGE_COOPERATION)})  # fmt: skip


app_name = "cooperation"
urlpatterns = [
    path("", agreement_list, name="agreements"),
    path("new/", agreement_create, name="agreement-create"),
    path("<int:pk>/", agreement_detail, name="agreement"),
    path("<int:pk>/edit/", agreement_edit, name="agreement-edit"),
    path("<int:pk>/signed-copy/", signed_copy, name="signed-copy"),
    path("<int:pk>/agreement.pdf", agreement_pdf, name="agreement-pdf"),
    path("<int:pk>/amendments/<int:sequence>/pdf/", amendment_pdf, name="amendment-pdf"),
    path("<int:pk>/amendments/<int:sequence>/signed-copy/", amendment_signed_copy, name="amendment-signed-copy"),
    path("<int:pk>/amendments/<int:sequence>/signed-copy/upload/", amendment_attach_copy, name="amendment-attach-copy"),
    path("projects/<int:pk>/", project_detail, name="project"),
    path("projects/<int:pk>/edit/", project_edit, name="project-edit"),
    path("acceptances/<int:pk>/file/", acceptance_file, name="acceptance-file"),
    path("tasks/", task_list, name="tasks"),
    path("customer/<int:institution_id>/", customer_panel, name="customer-panel"),
]
