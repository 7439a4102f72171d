"""Import wizard pages (upload → dry-run report → confirm → progress), templates, error reports, exports."""

from __future__ import annotations

import csv
import json
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import FileResponse, Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRefresh

from pharmacrm.core import access, audit
from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Cap

from . import exporter, importer
from .models import ImportJob

MULTIPART_OVERHEAD = 64 * 1024  # form fields and boundaries around the file in an upload request


class ImportForm(forms.Form):
    # app.js reloads the page for the chosen target, so that its title, templates and rules follow the select
    target = forms.ChoiceField(label=gettext_lazy("What to import"), choices=ImportJob.Target.choices,
                               widget=forms.Select(attrs={"data-navigate": "target"}))  # fmt: skip
    mode = forms.ChoiceField(
        label=gettext_lazy("If some rows have errors"),
        choices=[
            (ImportJob.Mode.ALL_OR_NOTHING, gettext_lazy("Import nothing (all or nothing)")),
            (ImportJob.Mode.GOOD_ROWS, gettext_lazy("Import the good rows and skip the bad ones")),
        ],
        initial=ImportJob.Mode.ALL_OR_NOTHING,
        widget=forms.RadioSelect,
    )
    file = forms.FileField(
        label=gettext_lazy("File"),
        help_text=gettext_lazy(
            "An .xlsx, .csv or .txt file (Excel's “Unicode Text” or “Text (Tab delimited)”) in the template's "
            "format, at most %(size)s MB."
        ),
        widget=forms.ClearableFileInput(attrs={"accept": ",".join(importer.UPLOAD_SUFFIXES)}),
    )

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        if user is not None:
            allowed = set(importer.importable_targets(user))
            self.fields["target"].choices = [c for c in ImportJob.Target.choices if c[0] in allowed]
        size = f"{settings.IMPORT_MAX_BYTES / 1048576:g}"
        self.fields["file"].help_text = self.fields["file"].help_text % {"size": size}


class SizeLimitHandler(FileUploadHandler):
    """Stops reading an upload as soon as it passes the import limit, whatever Content-Length said."""

    def __init__(self, request=None, limit: int | None = None):
        super().__init__(request)
        self.received = 0
        self.too_large = False
        self.limit = limit if limit is not None else settings.IMPORT_MAX_BYTES

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > self.limit:
            self.too_large = True
            raise StopUpload(connection_reset=True)
        return raw_data

    def file_complete(self, file_size):
        return None


def content_length(request) -> int:
    """The announced body size (0 when absent or malformed: the streaming limit still applies)."""
    raw = str(request.META.get("CONTENT_LENGTH") or "0").strip()
    return int(raw) if raw.isdecimal() and len(raw) < 16 else 0


def _too_large_message() -> str:
    limit = f"{settings.IMPORT_MAX_BYTES / 1048576:g}"
    return _("The file is too large; the limit is %(limit)s MB. Split it into smaller files.") % {
        "limit": limit
    }


def _require_import(user) -> None:
    if not importer.importable_targets(user):
        raise PermissionDenied(_("You do not have permission to do this."))


@csrf_exempt
@login_required
def import_start(request):
    """Upload form; a POST stores the file and queues its dry run."""
    _require_import(request.user)
    if request.method == "POST":
        length = content_length(request)
        if length > settings.IMPORT_MAX_BYTES + MULTIPART_OVERHEAD:
            # refuse before reading the body: the request is not parsed at all
            return _upload_page(request, _blank_form(request), error=_too_large_message(), status=413)
        limiter = SizeLimitHandler(request)
        request.upload_handlers.insert(0, limiter)
        return _import_post(request, limiter)
    return _import_get(request)


@csrf_protect
def _import_get(request):
    return _upload_page(request, _blank_form(request))


def _blank_form(request) -> ImportForm:
    """The upload form for the target in the address (?target=orders): the form posts back to that address,
    so a refused upload keeps it too."""
    return ImportForm(user=request.user, initial={"target": request.GET.get("target", "institutions")})


@csrf_protect
def _import_post(request, limiter: SizeLimitHandler):
    if request.method != "POST":
        return _import_get(request)
    form = ImportForm(request.POST, request.FILES, user=request.user)
    if limiter.too_large:
        return _upload_page(request, _blank_form(request), error=_too_large_message(), status=413)
    if not form.is_valid():
        return _upload_page(request, form, status=400)
    data = form.cleaned_data
    try:
        job = importer.start_import(request.user, data["file"], data["target"], data["mode"])
    except ValidationError as e:
        return _upload_page(request, form, error=" ".join(e.messages), status=400)
    return redirect("customers:import-detail", pk=job.pk)


def _upload_page(request, form, error: str = "", status: int = 200):
    jobs = list(importer.visible_jobs(request.user).order_by("-created_at")[:20])
    for job in jobs:
        job.status_label = importer.status_label(job)
    target = _chosen_target(form)
    context = {
        "form": form,
        "error": error,
        "jobs": jobs,
        "max_mb": f"{settings.IMPORT_MAX_BYTES / 1048576:g}",
        "target": target,
        "templates": _templates_for(request.user, target),
        "links": importer.target_links(request.user, target),
    }
    return render(request, "customers/import_start.html", context, status=status)


def _chosen_target(form: ImportForm) -> str:
    """The target the form's select shows: the one posted or asked for when the user may import it, else the
    first the user may import."""
    allowed = [value for value, _label in form.fields["target"].choices]
    wanted = form.data.get("target") if form.is_bound else form.initial.get("target")
    return wanted if wanted in allowed else (allowed[0] if allowed else ImportJob.Target.INSTITUTIONS)


def _templates_for(user, target: str) -> list[tuple[str, str]]:
    """(target, label) of the templates the start page offers: the chosen target's own (orders …), or both
    customer templates for institutions and people."""
    if target in importer.TARGETS:
        group = [target]
    else:
        group = [ImportJob.Target.INSTITUTIONS, ImportJob.Target.PEOPLE]
    allowed = set(importer.importable_targets(user))
    return [(t, ImportJob.Target(t).label) for t in group if t in allowed]


@login_required
@require_GET
def import_template(request, target: str, fmt: str):
    """The empty template with the Chinese headers (anyone who may import may download it); ?headers=page: with
    the headers and choice words in the page's language, as an export in it writes them."""
    if target not in ImportJob.Target.values or fmt not in ("csv", "xlsx"):
        raise Http404(_("No such template."))
    access.require(request.user, importer.target_cap(target))
    page_language = request.GET.get("headers") == "page"
    content, content_type, name = importer.template_file(target, fmt, page_language=page_language)
    return _download(content, content_type, name)


def _download(content: bytes, content_type: str, name: str) -> HttpResponse:
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = exporter.attachment(name)
    return response


def _job(request, pk: int) -> ImportJob:
    return importer.notice_interruption(get_object_or_404(importer.visible_jobs(request.user), pk=pk))


def _job_context(job: ImportJob) -> dict:
    done = importer.read_progress(job)
    percent = int(100 * done / job.total_rows) if job.total_rows else 0
    # the columns named in the reader's language (with the file's own header when that is other words)
    errors = [{**e, "column": importer.column_name(job.target, e.get("column", "")),
               "text": importer.error_text(e, job.target)} for e in job.errors]  # fmt: skip
    preview = []
    for row in job.preview if isinstance(job.preview, list) else []:
        texts = [f"{importer.column_name(job.target, e['column'])}: {importer.error_text(e, job.target)}"
                 if e.get("column") else importer.error_text(e, job.target) for e in row.get("errors", [])]  # fmt: skip
        preview.append({**row, "error_texts": texts})
    columns = [importer.column_name(job.target, c[0], as_written=False) for c in preview[0]["cells"]] if preview else []
    return {
        "job": job, "done": done, "percent": min(percent, 100), "errors": errors, "preview": preview,
        "columns": columns, "notes": importer.job_messages(job),
        "running": job.status in (ImportJob.Status.PENDING, ImportJob.Status.RUNNING),
        "waiting": importer.waiting_for_another(job),
        "can_confirm": importer.awaits_confirmation(job), "status_label": importer.status_label(job),
        "blocked": job.mode == ImportJob.Mode.ALL_OR_NOTHING and job.error_count > 0,
        "good_rows": job.created_count + job.updated_count,
        # error_count counts rejected rows; one row may have several listed errors (a row is its sheet's and number)
        "more_rows": max(job.error_count - len({(e.get("sheet"), e.get("row")) for e in job.errors}), 0),
        "sheets": importer.job_sheets(job),  # an import that read several sheets names each row's
    }  # fmt: skip


@login_required
@require_GET
def import_detail(request, pk: int):
    """The dry-run report (or the import's result) with the progress bar while the worker runs."""
    job = _job(request, pk)
    context = _job_context(job)
    if not context["running"]:
        context["links"] = importer.target_links(request.user, job.target, job)
    return render(request, "customers/import_detail.html", context)


@login_required
@require_GET
def import_progress(request, pk: int):
    """The progress fragment htmx polls every second; a finished job makes the page reload."""
    job = _job(request, pk)
    context = _job_context(job)
    if not context["running"] and request.htmx:
        return HttpResponseClientRefresh()
    return render(request, "customers/import_progress.html", context)


@login_required
@require_POST
def import_confirm(request, pk: int):
    """Run the real import of a checked file, in the mode chosen (it may be switched here)."""
    job = _job(request, pk)
    mode = request.POST.get("mode") or job.mode
    if mode == ImportJob.Mode.ALL_OR_NOTHING and job.error_count:
        messages.error(request, importer.message("all_or_nothing_rejected", {"errors": job.error_count}))
        return redirect("customers:import-detail", pk=job.pk)
    try:
        importer.confirm_import(request.user, job, mode=mode)
    except ValidationError as e:
        messages.error(request, " ".join(e.messages))
    return redirect("customers:import-detail", pk=job.pk)


@login_required
@require_POST
def import_cancel(request, pk: int):
    """Drop a checked file instead of importing it, then back to the upload page."""
    job = _job(request, pk)
    try:
        importer.cancel_import(request.user, job)
    except ValidationError as e:
        messages.error(request, " ".join(e.messages))
        return redirect("customers:import-detail", pk=job.pk)
    messages.success(request, _("The checked file was cancelled: nothing was imported."))
    return redirect(reverse("customers:import") + "?" + urlencode({"target": job.target}))


@login_required
@require_GET
def import_errors(request, pk: int, fmt: str):
    """Every row error of a job, as CSV or XLSX, with reasons in the reader's language."""
    job = _job(request, pk)
    if fmt not in ("csv", "xlsx"):
        raise Http404(_("No such report format."))
    path = importer.error_report_path(job)
    if not path.exists():
        raise Http404(_("This import has no error report."))
    sheets = bool(importer.job_sheets(job))  # an import that read several sheets: each line names its row's
    header = [_("Row"), _("Column"), _("Reason"), _("Value")]
    header = [_("Sheet"), *header] if sheets else header
    label = _("import errors")  # named in the reader's language: 导入错误-8.csv, import-errors-8.csv
    name = f"{'-'.join(label.split())}-{job.pk}.{fmt}"
    lines = _error_lines(path)
    if fmt == "csv":
        response = StreamingHttpResponse(_error_csv(path, header, sheets, job.target), content_type="text/csv; charset=utf-8")
    else:
        response = FileResponse(_error_xlsx(path, header, sheets, job.target), content_type=importer.XLSX_TYPE)
    response["Content-Disposition"] = exporter.attachment(name)
    # an export like any other: the rejected cells are the file's own values (a mistyped phone, an ID number). It
    # holds one line per error, and a row may have several: `count` is the lines the file holds (what is exported),
    # `rows_with_errors` the rows they belong to — the entry recorded the rows as its count
    audit.record(AuditEntry.Action.EXPORT, job.audit_name, user=request.user, report="import errors", format=fmt,
                 count=lines, counted="error lines", rows_with_errors=job.error_count,
                 target=job.target)  # fmt: skip
    return response


def _error_lines(path) -> int:
    """The errors the report holds: one line each (a value may hold a line break: read as CSV)."""
    with open(path, encoding="utf-8", newline="") as fh:
        return max(sum(1 for _line in csv.reader(fh)) - 1, 0)


def _error_rows(path, sheets: bool = False, target: str = ""):
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        next(reader, None)
        for line in reader:
            # a report written before the sheet column (jobs of the last days) has five
            row, column, code, params, value, sheet = (line + [""])[:6]
            number = int(row) if row.isdecimal() else row
            out = [number, importer.column_name(target, column), importer.message(code, json.loads(params or "{}"), target),
                   value]  # fmt: skip
            yield [sheet, *out] if sheets else out


def _error_csv(path, header, sheets: bool, target: str = ""):
    """The report as the exports write CSV: with a BOM, and no cell a spreadsheet would run as a formula (a
    rejected value such as =HYPERLINK(…) comes back as text)."""
    return exporter.csv_stream(header, _error_rows(path, sheets, target))


def _error_xlsx(path, header, sheets: bool, target: str = ""):
    return exporter.xlsx_file(_("Errors"), header, _error_rows(path, sheets, target))


@login_required
@require_GET
def export_view(request, target: str, fmt: str):
    """Download the customers the user may see, with the list page's filters."""
    access.require(request.user, Cap.EXPORT_CUSTOMERS)
    if target not in (ImportJob.Target.INSTITUTIONS, ImportJob.Target.PEOPLE) or fmt not in ("csv", "xlsx"):
        raise Http404(_("No such export."))
    return exporter.export_response(request.user, target, fmt, request.GET)
