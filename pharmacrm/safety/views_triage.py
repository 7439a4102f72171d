"""Triage queue, reconciliation report, batch trace, E2B imports and reporting rules (/safety/…).

Who: the PV role acts (confirm, dismiss, import); the overseeing roles (admin, manager, auditor) read the
queue, the report, the batch trace and the rules without ever seeing ticket texts or patient data; the
configuring roles (admin, PV) edit the rules. Every change goes through services.py / rules_admin.py."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import F, OuterRef, Prefetch, Q, Subquery
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_POST

from pharmacrm.core import access, audit, downloads, wording
from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Cap
from pharmacrm.customers.services import ConflictError
from pharmacrm.customers.views_import import SizeLimitHandler, content_length

from . import reconciliation as recon
from . import rules_admin, services
from .choices import CaseKind, CaseStatus, ClockKind, Jurisdiction, SignalStatus
from .e2b import schema
from .forms_triage import (
    AckUploadForm,
    BatchTraceForm,
    ConfirmFlagForm,
    DismissFlagForm,
    IcsrUploadForm,
    PeriodForm,
    RuleForm,
)
from .models import Flag, ReportingRule, SafetyCase, SafetyClock

A = AuditEntry.Action
PAGE_SIZE = 50
RECENT_DAYS = 30
REPORT_PAGE_SIZE = 200
MULTIPART_OVERHEAD = 64 * 1024  # form fields and boundaries around the file in an upload request
CONFLICT = gettext_lazy(
    "Someone else changed this rule while you were editing it. Your input is kept with their version: check "
    "it, then save again."
)


# --- access ---------------------------------------------------------------------------------------------


def _may_oversee(user) -> bool:
    return access.can(user, Cap.HANDLE_SAFETY) or access.can(user, Cap.OVERSEE_SAFETY)


def _require_oversee(request) -> None:
    if not _may_oversee(request.user):
        raise PermissionDenied(_("You do not have permission to do this."))


def _require_handle(request) -> None:
    access.require(request.user, Cap.HANDLE_SAFETY)


def _nav(request) -> dict:
    user = request.user
    return {"may_handle": access.can(user, Cap.HANDLE_SAFETY),
            "may_configure": access.can(user, Cap.CONFIGURE_SAFETY)}  # fmt: skip


# --- helpers --------------------------------------------------------------------------------------------


def highlight(text: str, terms: list[str]) -> SafeString:
    """The text, HTML-escaped, with every found term wrapped in <mark> (longest term first, any case)."""
    wanted = sorted({t for t in terms if t and t.strip()}, key=len, reverse=True)
    if not wanted:
        return escape(text)
    pattern = re.compile("|".join(re.escape(t) for t in wanted), re.IGNORECASE)
    parts, pos = [], 0
    for match in pattern.finditer(text):
        parts.append(escape(text[pos : match.start()]))
        parts.append(format_html("<mark>{}</mark>", match.group()))
        pos = match.end()
    parts.append(escape(text[pos:]))
    return mark_safe("".join(parts))  # every part was escaped above


def interaction_url(pk: int) -> str:
    """The interaction's page (the engagement pages), or their list while there is no page per record."""
    try:
        return reverse("engagement:interaction", args=[pk])
    except NoReverseMatch:
        return reverse("engagement:interactions")


def _source(flag_or_row) -> tuple[str, str]:
    """(label, url) of a flag's ticket or interaction."""
    ticket, interaction = flag_or_row.ticket, flag_or_row.interaction
    if ticket is not None:
        return ticket.number, reverse("servicedesk:ticket", args=[ticket.pk])
    if interaction is not None:
        return _("Interaction %(id)s") % {"id": interaction.pk}, interaction_url(interaction.pk)
    return "—", ""


# --- triage ---------------------------------------------------------------------------------------------

def _auto_id(pk: int) -> str:
    return f"id_%s_{pk}"


def _pending_row(flag: Flag, may_handle: bool, bound: tuple | None, now: dt.datetime) -> dict:
    label, url = _source(flag)
    clock = flag.handoff_clocks[0] if flag.handoff_clocks else None
    confirm = ConfirmFlagForm(initial={"kind": services.default_case_kind(flag)},
                              auto_id=_auto_id(flag.pk))  # fmt: skip
    dismiss = DismissFlagForm(auto_id=_auto_id(flag.pk))
    if bound and bound[0] == flag.pk:
        confirm, dismiss = (bound[2], dismiss) if bound[1] == "confirm" else (confirm, bound[2])
    return {
        "flag": flag, "source": label, "source_url": url,
        # the text a customer wrote may name the patient: PV only; the others see which terms were found
        "excerpt": highlight(flag.excerpt, flag.terms) if may_handle else "",
        "handoff_due": clock.due_at if clock else None, "clock": clock,
        "overdue": bool(clock and clock.met_at is None and clock.due_at <= now),
        "confirm_form": confirm, "dismiss_form": dismiss, "open": bool(bound and bound[0] == flag.pk),
    }  # fmt: skip


def _with_provisional(rows: list[dict], now: dt.datetime) -> None:
    """A pending hand-off counted in working days into a year whose holidays nobody entered yet says its deadline
    is provisional (one query for the calendars of the page)."""
    found = services.provisional_years(
        ((i, r["clock"].calendar_id, r["clock"].due_at, r["clock"].met_at) for i, r in enumerate(rows) if r["clock"]),
        now,
    )
    for i, row in enumerate(rows):
        row["uncovered"] = found.get(i, ())


def _with_cases(rows: list[dict]) -> None:
    """The cases already opened from each row's ticket or interaction (one query): a customer who writes again about
    the same reaction is flagged again, and confirming that flag opens a second case of the same report — PV sees
    the case to add the news to as a follow-up instead."""
    tickets = {r["flag"].ticket_id for r in rows if r["flag"].ticket_id}
    interactions = {r["flag"].interaction_id for r in rows if r["flag"].interaction_id}
    if not (tickets or interactions):
        return
    found: dict[tuple, list] = {}
    cases = (SafetyCase.objects.filter(Q(source_ticket_id__in=tickets) | Q(source_interaction_id__in=interactions))
             .exclude(status=CaseStatus.NULLIFIED).order_by("id")
             .values("pk", "number", "source_ticket_id", "source_interaction_id"))  # fmt: skip
    for case in cases:
        if case["source_ticket_id"]:
            found.setdefault(("ticket", case["source_ticket_id"]), []).append(case)
        if case["source_interaction_id"]:
            found.setdefault(("interaction", case["source_interaction_id"]), []).append(case)
    for row in rows:
        flag = row["flag"]
        key = ("ticket", flag.ticket_id) if flag.ticket_id else ("interaction", flag.interaction_id)
        row["cases"] = found.get(key, [])


def _triage_page(request, *, bound: tuple | None = None, status: int = 200):
    may_handle = access.can(request.user, Cap.HANDLE_SAFETY)
    tab = "recent" if request.GET.get("tab") == "recent" else "pending"
    now = timezone.now()
    pending = Flag.objects.filter(status=SignalStatus.PENDING)
    context = {"tab": tab, "pending_count": pending.count(), **_nav(request)}
    if tab == "pending":
        # the most urgent hand-off first: a death told an hour ago (four hours) before yesterday's rash (a working day)
        handoff_due = Subquery(SafetyClock.objects.filter(flag=OuterRef("pk"), kind=ClockKind.HANDOFF)
                               .order_by("due_at").values("due_at")[:1])  # fmt: skip
        qs = (
            pending.annotate(handoff_due=handoff_due)
            .order_by(F("handoff_due").asc(nulls_last=True), "received_at", "id")
            .select_related("ticket__category__parent", "interaction")
            .only("id", "kind", "terms", "excerpt", "by_agent", "status", "received_at", "created_at",
                  "ticket__id", "ticket__number", "ticket__category__code", "ticket__category__parent__code",
                  "interaction__id")
            .prefetch_related(Prefetch("clocks", queryset=SafetyClock.objects.filter(kind=ClockKind.HANDOFF),
                                       to_attr="handoff_clocks"))
        )  # fmt: skip
        page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
        rows = [_pending_row(f, may_handle, bound, now) for f in page]
        _with_cases(rows)
        _with_provisional(rows, now)
        context.update(page_obj=page, rows=rows)
    else:
        # the officer's name as str(user) writes it (without a display name, from first and last name), or two
        # queries more per row
        recent = (
            Flag.objects.filter(decided_at__gte=now - dt.timedelta(days=RECENT_DAYS))
            .exclude(status=SignalStatus.PENDING)
            .order_by("-decided_at", "-id")
            .select_related("ticket", "interaction", "decided_by", "case")
            .only("id", "kind", "terms", "status", "by_agent", "received_at", "decided_at", "reason",
                  "ticket__id", "ticket__number", "interaction__id", "decided_by__id", "decided_by__username",
                  "decided_by__display_name", "decided_by__first_name", "decided_by__last_name", "case__id",
                  "case__number")
        )  # fmt: skip
        # in pages, as the queue: a busy hotline triages more than a page in a month, and the ones beyond the first
        # 200 (a dismissal of three weeks ago an auditor asks about) were nowhere
        page = Paginator(recent, PAGE_SIZE).get_page(request.GET.get("page"))
        rows = []
        for flag in page:
            label, url = _source(flag)
            rows.append({"flag": flag, "source": label, "source_url": url})
        context.update(page_obj=page, rows=rows, recent_days=RECENT_DAYS)
    return render(request, "safety/triage.html", context, status=status)


@login_required
@require_GET
def triage(request):
    _require_oversee(request)
    return _triage_page(request)


def _already_triaged(error: ValidationError) -> bool:
    return hasattr(error, "error_dict") and "flag" in error.error_dict


def _triaged_by(user, flag: Flag, status: str) -> bool:
    """Whether this user made the decision the form asks for: the form sent twice (a double click), the second
    sending shows what the first did. A colleague's decision is still told as one made already."""
    return flag.status == status and flag.decided_by_id == user.pk


@login_required
@require_POST
def triage_confirm(request, pk: int):
    """Confirm a flag: a case opens from its ticket or interaction (day 0 = the source's receipt)."""
    _require_handle(request)
    flag = get_object_or_404(Flag, pk=pk)
    form = ConfirmFlagForm(request.POST, auto_id=_auto_id(flag.pk))
    if form.is_valid():
        try:
            case = services.confirm_flag(request.user, flag, kind=form.cleaned_data["kind"])
        except ValidationError as e:
            flag.refresh_from_db()
            if _already_triaged(e) and _triaged_by(request.user, flag, SignalStatus.CONFIRMED) and flag.case_id:
                # "Confirm" clicked twice: the case the first click opened
                messages.success(request, _("Case %(number)s was opened from the flag.") % {"number": flag.case.number})
                return redirect("safety:case", pk=flag.case_id)
            if _already_triaged(e):
                messages.error(request, " ".join(e.messages))
                return redirect("safety:triage")
            form.add_service_errors(e)
        else:
            messages.success(
                request, _("Case %(number)s was opened from the flag.") % {"number": case.number}
            )
            return redirect("safety:case", pk=case.pk)
    return _triage_page(request, bound=(flag.pk, "confirm", form), status=400)


@login_required
@require_POST
def triage_dismiss(request, pk: int):
    """Dismiss a flag with the reason (audited)."""
    _require_handle(request)
    flag = get_object_or_404(Flag, pk=pk)
    form = DismissFlagForm(request.POST, auto_id=_auto_id(flag.pk))
    if form.is_valid():
        try:
            services.dismiss_flag(request.user, flag, reason=form.cleaned_data["reason"])
        except ValidationError as e:
            flag.refresh_from_db()
            if _already_triaged(e) and _triaged_by(request.user, flag, SignalStatus.DISMISSED):
                label, _url = _source(flag)  # "Dismiss" clicked twice: the first click dismissed it
                messages.success(request, _("The flag on %(source)s was dismissed.") % {"source": label})
                return redirect("safety:triage")
            if _already_triaged(e):
                messages.error(request, " ".join(e.messages))
                return redirect("safety:triage")
            form.add_service_errors(e)
        else:
            label, _url = _source(flag)
            messages.success(request, _("The flag on %(source)s was dismissed.") % {"source": label})
            return redirect("safety:triage")
    return _triage_page(request, bound=(flag.pk, "dismiss", form), status=400)


# --- reconciliation ---------------------------------------------------------------------------------------


def _period(request) -> tuple[PeriodForm, tuple[dt.date, dt.date] | None]:
    if "since" in request.GET or "until" in request.GET:
        form = PeriodForm(request.GET)
    else:
        since, until = recon.default_period()
        form = PeriodForm({"since": since.isoformat(), "until": until.isoformat()})
    if not form.is_valid():
        return form, None
    return form, (form.cleaned_data["since"], form.cleaned_data["until"])


def _source_url(source_type: str, source_id: int | None) -> str:
    if not source_id:
        return ""
    if source_type == "ticket":
        return reverse("servicedesk:ticket", args=[source_id])
    return interaction_url(source_id)


def _decorate(row: dict) -> dict:
    """A report row with the labels and links the page shows."""
    return {
        **row,
        "source_url": _source_url(row["source_type"], row["source_id"]),
        "case_url": reverse("safety:case", args=[row["case_id"]]) if row.get("case_id") else "",
        "flag_status_label": recon.FLAG_STATUS.get(row.get("flag_status"), ""),
        "timeliness_label": recon.TIMELINESS.get(row.get("timeliness"), ""),
        "case_kind_label": CaseKind(row["case_kind"]).label if row.get("case_kind") else "",
        "case_status_label": CaseStatus(row["case_status"]).label if row.get("case_status") else "",
    }


@login_required
@require_GET
def reconciliation(request):
    _require_oversee(request)
    form, period = _period(request)
    context = {"form": form, **_nav(request)}
    if period is None:
        return render(request, "safety/reconciliation.html", context, status=400)
    result = recon.report(*period)
    page = Paginator(result["rows"], REPORT_PAGE_SIZE).get_page(request.GET.get("page"))
    context.update(
        since=period[0], until=period[1], totals=result["totals"], page_obj=page,
        rows=[_decorate(r) for r in page], unmatched=[_decorate(p) for p in result["unmatched"]],
        xlsx_query=f"since={period[0].isoformat()}&until={period[1].isoformat()}",
    )  # fmt: skip
    return render(request, "safety/reconciliation.html", context)


def _cell(value):
    if isinstance(value, dt.datetime):
        return timezone.localtime(value).replace(tzinfo=None)
    if value is None:
        return ""
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    return value


def _provisional_header() -> str:
    """The column beside a hand-off deadline: the years without entered holidays it was counted into (it may move)."""
    return _("Provisional: holidays not entered for")


def _years(years: list[int]) -> str:
    return wording.listing(years)


def _workbook(result: dict) -> bytes:
    """The report as an XLSX (write-only): the rows, what needs action, the totals. Headers in the UI's
    language; no ticket text, no patient or reporter data."""
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    rows = wb.create_sheet(_("Reconciliation")[:31])
    rows.append([
        _("Source"), _("Source type"), _("Received (day 0)"), _("Safety-relevant"), _("Flag status"), _("Flagged"),
        _("Triaged"), _("Hand-off (working hours)"), _("Hand-off due"), _provisional_header(), _("Hand-off on time"),
        _("Case"),
        _("Case kind"), _("Case status"), _("Case valid"), _("Report due"), _("Submitted"), _("Timeliness"),
        _("Days late"),
    ])  # fmt: skip
    for r in map(_decorate, result["rows"]):
        downloads.append_row(rows, [_cell(v) for v in (
            r["source"], _("Ticket") if r["source_type"] == "ticket" else _("Interaction"), r["received_at"],
            r["safety_relevant"], str(r["flag_status_label"]), r["flagged_at"], r["triaged_at"],
            r["handoff_working_hours"], r["handoff_due"], _years(r["handoff_due_provisional"]), r["handoff_on_time"],
            r["case_number"],
            str(r["case_kind_label"]), str(r["case_status_label"]), r["case_valid"], r["report_due"],
            r["submitted_at"], str(r["timeliness_label"]), r["late_days"] or "",
        )])  # fmt: skip
    problems = wb.create_sheet(_("Needs action")[:31])
    problems.append(
        [_("Problem"), _("Source"), _("Case"), _("Since"), _("Due"), _provisional_header(), _("Days"),
         _("Jurisdiction")]  # fmt: skip
    )
    for p in result["unmatched"]:
        downloads.append_row(problems, [_cell(v) for v in (
            p["label"], p["source"], p["case_number"], p["at"], p["due"], _years(p["due_provisional"]),
            p["days"] or "", p["jurisdiction"],
        )])  # fmt: skip
    totals = wb.create_sheet(_("Totals")[:31])
    totals.append([_("Period"), f"{timezone.localtime(result['since']):%Y-%m-%d} – "
                                f"{timezone.localtime(result['until']) - dt.timedelta(days=1):%Y-%m-%d}"])  # fmt: skip
    for key, label in _total_labels():
        totals.append([str(label), result["totals"].get(key, 0)])
    return downloads.workbook_bytes(wb)


def _total_labels() -> list[tuple[str, str]]:
    return [
        ("sources", _("Tickets and interactions")), ("tickets", _("Tickets")), ("interactions", _("Interactions")),
        ("flag_none", _("Never flagged")), ("flag_pending", _("Awaiting triage")),
        ("flag_confirmed", _("Confirmed")), ("flag_dismissed", _("Dismissed")),
        ("handoff_on_time", _("Handed off on time")), ("handoff_late", _("Handed off late")),
        ("cases", _("Cases")), ("valid_cases", _("Valid cases")),
        *((state, recon.TIMELINESS[state]) for state in recon.TIMELINESS),
        ("unmatched", _("Needs action")),
    ]  # fmt: skip


@login_required
@require_GET
def reconciliation_xlsx(request):
    """The report as a spreadsheet: audited as an export."""
    _require_oversee(request)
    form, period = _period(request)
    if period is None:
        return render(request, "safety/reconciliation.html", {"form": form, **_nav(request)}, status=400)
    result = recon.report(*period)
    content = _workbook(result)
    audit.record(
        A.EXPORT, ("safety.flag", "", "reconciliation"), user=request.user, report="reconciliation", format="xlsx",
        since=period[0], until=period[1], rows=len(result["rows"]), unmatched=len(result["unmatched"]),
    )  # fmt: skip
    # named in the page's language, as the other exports are (安全性核对报告-20260601-20260630.xlsx)
    return downloads.xlsx(content, _("Safety reconciliation"), f"{period[0]:%Y%m%d}", f"{period[1]:%Y%m%d}",
                          dated=False)  # fmt: skip


# --- batch trace ------------------------------------------------------------------------------------------


@login_required
@require_GET
def batch_trace(request):
    """Every customer known to have received a batch, and the cases and complaints on it."""
    _require_oversee(request)
    form = BatchTraceForm(request.GET if "batch" in request.GET else None)
    context: dict = {"form": form, **_nav(request), "may_view_customers": access.can(request.user,
                                                                                         Cap.VIEW_CUSTOMERS)}  # fmt: skip
    if not form.is_bound:
        return render(request, "safety/batch_trace.html", context)
    if not form.is_valid():
        return render(request, "safety/batch_trace.html", context, status=400)
    from pharmacrm.servicedesk.models import Ticket

    batch, product = form.cleaned_data["batch"], form.cleaned_data["product"]
    customers = services.batch_trace(batch, product)
    labels = {label for row in customers for label in row["sources"]}
    tickets = dict(Ticket.objects.filter(number__in=labels).values_list("number", "pk"))
    case_ids = dict(SafetyCase.objects.filter(number__in=labels).values_list("number", "pk"))
    for row in customers:
        row["links"] = [
            (label, reverse("servicedesk:ticket", args=[tickets[label]]) if label in tickets
             else reverse("safety:case", args=[case_ids[label]]) if label in case_ids else "")
            for label in dict.fromkeys(row["sources"])
        ]  # fmt: skip
    # in either width, as the customers above: a case opened from a ticket typed ２１Ｅ００５ is on batch 21E005
    batch = unicodedata.normalize("NFKC", batch)
    drug_batch = services._batch_is("drugs__batch", batch)
    quality_batch = services._batch_is("quality__batch", batch)
    on_batch = drug_batch | quality_batch
    if product is not None:
        on_batch = (drug_batch & (Q(drugs__product=product) | Q(drugs__product__isnull=True))) | (
            quality_batch & (Q(quality__product=product) | Q(quality__product__isnull=True))
        )
    case_pks = SafetyCase.objects.filter(on_batch).values("pk")
    cases = list(
        SafetyCase.objects.filter(pk__in=case_pks).order_by("received_at", "id")
        .only("id", "number", "kind", "status", "received_at", "valid")[:500]
    )  # fmt: skip
    context.update(batch=batch, product=product, customers=customers, cases=cases)
    return render(request, "safety/batch_trace.html", context)


# --- imports ----------------------------------------------------------------------------------------------


def _too_large_page(request, what: str = ""):
    """413 with the refusal the API gives too (schema.too_large): above, and on the `file` field of the form it was
    sent with when the page could tell which (a body announced larger than the limit is refused unread)."""
    forms_kw = {}
    if what in ("icsr", "ack"):
        form = (IcsrUploadForm if what == "icsr" else AckUploadForm)(request.POST, {})
        form.is_valid()
        form.errors["file"] = form.error_class([schema.too_large()])
        forms_kw[what] = form
    return _import_page(request, what=what, errors=[schema.too_large()], status=413, **forms_kw)


def _import_page(request, *, icsr=None, ack=None, what: str = "", errors=(), result=None, status: int = 200):
    context = {
        "icsr_form": icsr or IcsrUploadForm(), "ack_form": ack or AckUploadForm(), "what": what,
        "errors": list(errors), "result": result, "max_mb": schema.max_mb(), **_nav(request),
    }  # fmt: skip
    return render(request, "safety/import.html", context, status=status)


@csrf_exempt  # the CSRF check would read the whole body first; _import_post checks it after the size check
@login_required
def import_view(request):
    _require_handle(request)
    if request.method == "POST":
        if content_length(request) > schema.max_bytes() + MULTIPART_OVERHEAD:
            return _too_large_page(request)  # refused before reading the body
        limiter = SizeLimitHandler(request, limit=schema.max_bytes())
        request.upload_handlers.insert(0, limiter)
        return _import_post(request, limiter)
    return _import_get(request)


@csrf_protect
def _import_get(request):
    return _import_page(request)


@csrf_protect
def _import_post(request, limiter: SizeLimitHandler):
    what = request.POST.get("what")
    if limiter.too_large:
        return _too_large_page(request, what or "")
    if what not in ("icsr", "ack"):
        return _import_page(request, errors=[_("Choose what to import.")], status=400)
    form = (IcsrUploadForm if what == "icsr" else AckUploadForm)(request.POST, request.FILES)
    forms_kw = {what: form}
    if not form.is_valid():
        return _import_page(request, what=what, status=400, **forms_kw)
    upload = form.cleaned_data["file"]
    if upload.size > schema.max_bytes():
        return _too_large_page(request, what)
    data = upload.read()
    started = timezone.now()
    try:
        if what == "icsr":
            from .e2b import importer

            cases = importer.import_file(request.user, data, source_name=upload.name[:200])
            result = [
                {"case": c, "created": c.created_at >= started, "updated": c.updated_at >= started,
                 "warnings": getattr(c, "import_warnings", [])}
                for c in cases
            ]  # fmt: skip
            result += [{"case": None, "warnings": [line]} for line in cases.not_held]
            audit.record(A.IMPORT, ("safety.safetycase", "", upload.name), user=request.user,
                         format="E2B(R3) ICSR", file=audit.cut(upload.name, 200), size=upload.size,
                         cases=[c.number for c in cases], not_held=len(cases.not_held))  # fmt: skip
        else:
            from .e2b import ack as ack_import

            submissions = ack_import.import_ack(request.user, data)
            result = [{"submission": s, "case": s.case} for s in submissions]
            audit.record(A.IMPORT, ("safety.submission", "", upload.name), user=request.user,
                         format="E2B(R3) ACK", file=audit.cut(upload.name, 200), size=upload.size,
                         submissions=[s.pk for s in submissions])  # fmt: skip
    except ValidationError as e:
        lines = e.message_dict.get("file", e.messages) if hasattr(e, "error_dict") else e.messages
        return _import_page(request, what=what, errors=lines, status=400, **forms_kw)
    name = upload.name
    messages.success(request, _("%(file)s was imported.") % {"file": name})
    return _import_page(request, what=what, result=result)


# --- reporting rules --------------------------------------------------------------------------------------


def _rules_page(request, status: int = 200):
    rules = list(ReportingRule.objects.order_by("jurisdiction", "clock_kind", "position", "id"))
    groups = [
        {"jurisdiction": label, "code": code, "rules": [r for r in rules if r.jurisdiction == code]}
        for code, label in Jurisdiction.choices
    ]
    return render(request, "safety/rules.html", {"groups": [g for g in groups if g["rules"]], **_nav(request)},
                  status=status)  # fmt: skip


@login_required
@require_GET
def rules(request):
    if not (_may_oversee(request.user) or access.can(request.user, Cap.CONFIGURE_SAFETY)):
        raise PermissionDenied(_("You do not have permission to do this."))
    return _rules_page(request)


@login_required
def rule_edit(request, pk: int):
    access.require(request.user, Cap.CONFIGURE_SAFETY)
    rule = get_object_or_404(ReportingRule, pk=pk)
    status = 200
    if request.method == "POST":
        form = RuleForm(request.POST)
        status = 400
        if form.is_valid():
            try:
                rule = rules_admin.update_rule(
                    request.user, rule, form.service_data(), form.cleaned_data["version"]
                )
            except ConflictError:
                rule = ReportingRule.objects.get(pk=rule.pk)
                kept = request.POST.copy()
                kept["version"] = str(rule.version)
                form = RuleForm(kept)
                form.is_valid()
                form.add_error(None, str(CONFLICT))
                status = 409
            except ValidationError as e:
                form.add_service_errors(e)
            else:
                messages.success(request, _("The rule “%(name)s” was saved.") % {"name": rule.label})
                return redirect("safety:rules")
    else:
        form = RuleForm(initial=RuleForm.initial_for(rule))
    return render(
        request, "safety/rules_form.html", {"form": form, "rule": rule, **_nav(request)}, status=status
    )


@login_required
@require_POST
def rule_active(request, pk: int):
    """Switch a rule on (e.g. the FDA's, where the company reports to the FDA) or off."""
    access.require(request.user, Cap.CONFIGURE_SAFETY)
    rule = get_object_or_404(ReportingRule, pk=pk)
    raw = (request.POST.get("version") or "").strip()
    if not (raw.isdecimal() and len(raw) < 10):  # the version the page showed: always sent by the page
        messages.error(request, str(CONFLICT))
        return _rules_page(request, status=400)
    try:
        rule = rules_admin.update_rule(
            request.user, rule, {"active": request.POST.get("active") == "1"}, int(raw)
        )
    except ConflictError:
        messages.error(request, str(CONFLICT))
        return _rules_page(request, status=409)
    except ValidationError as e:
        messages.error(request, " ".join(e.messages))
        return _rules_page(request, status=400)
    messages.success(
        request,
        (
            _("The rule “%(name)s” is active: cases planned from now on get its clock.")
            if rule.active
            else _("The rule “%(name)s” was switched off.")
        )
        % {"name": rule.label},
    )
    return redirect("safety:rules")


urlpatterns = [  # included by urls.py under /safety/
    path("triage/", triage, name="triage"),
    path("triage/<int:pk>/confirm/", triage_confirm, name="triage-confirm"),
    path("triage/<int:pk>/dismiss/", triage_dismiss, name="triage-dismiss"),
    path("reconciliation/", reconciliation, name="reconciliation"),
    path("reconciliation/xlsx/", reconciliation_xlsx, name="reconciliation-xlsx"),
    path("batch-trace/", batch_trace, name="batch-trace"),
    path("import/", import_view, name="import"),
    path("rules/", rules, name="rules"),
    path("rules/<int:pk>/", rule_edit, name="rule-edit"),
    path("rules/<int:pk>/active/", rule_active, name="rule-active"),
]
