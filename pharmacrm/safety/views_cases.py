"""Case list, case page and every action on a case: edit, follow-up, close / nullify / reopen, E2B(R3)
export, submission, the 报告表 PDF, quality investigation and CAPA, files; and opening a case from a ticket or
an interaction.

Who sees what (core/access.py): PV sees everything and each view of the patient's data is audited; the
overseeing roles (admin, manager, auditor) see the header, clocks, submissions and tasks, never identity or
medical details; the member of staff whose ticket or interaction raised the case sees its status only."""

from __future__ import annotations

import datetime as dt
import unicodedata
from dataclasses import dataclass
from urllib.parse import quote

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import OuterRef, Subquery
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils import timezone, translation
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from pharmacrm.core import access, audit
from pharmacrm.core.form_saves import SENT_AGAIN, sent_again_after
from pharmacrm.core.local_urls import is_local
from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Cap
from pharmacrm.customers.services import ConflictError
from pharmacrm.customers.views import AlreadyCreated, _create_once, _created_with

from . import services
from .choices import (
    OPEN_CASE_STATUSES,
    AgeUnit,
    CaseKind,
    CaseStatus,
    ClockKind,
    Criterion,
    Jurisdiction,
    Sex,
    SignalStatus,
    TaskKind,
)
from .e2b.export import ExportRefused
from .forms_cases import (
    CapaForm,
    CapaUpdateForm,
    CaseFieldsForm,
    CaseFilterForm,
    DayZeroForm,
    DrugForm,
    DrugFormSet,
    ExportForm,
    FileForm,
    FollowUpFieldsForm,
    FromSourceForm,
    LiteratureCopyForm,
    NewCaseForm,
    QualityForm,
    ReactionForm,
    ReactionFormSet,
    StatusForm,
    SubmissionForm,
    drug_initial,
    reaction_initial,
)
from .models import Capa, CaseFile, Flag, QualityComplaint, SafetyCase, SafetyClock

A = AuditEntry.Action
PAGE_SIZE = 50
DUE_PANEL = 10
EXPORT_SESSION_KEY = "safety-last-export"  # case pk → batch message id of the last export, for the submission
PERSONAL_FIELDS = sorted(services.SECRET_FIELDS)
CONFLICT = gettext_lazy(
    "Someone else changed this case while you were working on it. Your input is kept: check the case as it is "
    "now, then submit again."
)


# --- deadlines as the pages show them --------------------------------------------------------------------


def span_text(span: dt.timedelta) -> str:
    """A deadline distance in days and hours (regulatory clocks run in calendar time)."""
    minutes = max(int(span.total_seconds() // 60), 0)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return _("%(days)d d %(hours)d h") % {"days": days, "hours": hours}
    if hours:
        return _("%(hours)d h %(minutes)d min") % {"hours": hours, "minutes": minutes}
    return _("%(minutes)d min") % {"minutes": minutes}


def deadline_text(due_at: dt.datetime | None, now: dt.datetime) -> tuple[str, bool]:
    """("due in 3 d 2 h" | "overdue by 5 h", overdue?) of an open deadline."""
    if due_at is None:
        return "", False
    if due_at > now:
        return _("due in %(time)s") % {"time": span_text(due_at - now)}, False
    return _("overdue by %(time)s") % {"time": span_text(now - due_at)}, True


CLOCK_STATES = {
    "ok": gettext_lazy("On time"),
    "warned": gettext_lazy("Due soon"),
    "breached": gettext_lazy("Overdue"),
    "met": gettext_lazy("Met"),
    "met_late": gettext_lazy("Met late"),
    "stopped": gettext_lazy("Stopped: case closed without a report"),
    "stopped_nullified": gettext_lazy("Stopped: case nullified"),
}


REPORT_KINDS = {
    "initial": gettext_lazy("Initial report"),
    "follow_up": gettext_lazy("Follow-up"),
    "amendment": gettext_lazy("Amendment"),
    "nullification": gettext_lazy("Nullification"),
}
REPORT_STAGES = {  # services.last_report's state, with the acknowledgement's result
    ("exported", None): gettext_lazy("Exported, not sent yet"),
    ("submitted", "pending"): gettext_lazy("Awaiting acknowledgement"),
    ("acknowledged", "accepted"): gettext_lazy("Accepted"),
    ("acknowledged", "rejected"): gettext_lazy("Rejected"),
}


def report_label(report: dict | None) -> dict | None:
    """The latest report of a case (services.last_report) as the case list shows it: its kind and where it stands,
    in the reader's language, and its batch number (N.1.2)."""
    if report is None:
        return None
    stage = REPORT_STAGES.get((report["state"], report["ack"]), "")
    return {"kind": report["kind"], "kind_label": str(REPORT_KINDS[report["kind"]]), "state": report["state"],
            "stage": str(stage), "ack": report["ack"] or "", "batch_number": report["batch_number"]}  # fmt: skip


@dataclass
class ClockRow:
    clock: SafetyClock
    state: str  # ok | warned | breached | met | met_late (the sla-* badge colours of app.css)
    text: str
    submission: object | None = None

    @property
    def label(self) -> str:
        return str(CLOCK_STATES[self.state])

    @property
    def name(self) -> str:
        return self.clock.rule.label if self.clock.rule else self.clock.get_kind_display()


def clock_row(clock: SafetyClock, now: dt.datetime) -> ClockRow:
    if clock.met_at is not None:
        return ClockRow(clock, "met_late" if clock.met_at > clock.due_at else "met", "")
    if clock.stopped_at is not None:  # (the case is the page's: read without a query)
        nullified = clock.case_id is not None and clock.case.status == CaseStatus.NULLIFIED
        return ClockRow(clock, "stopped_nullified" if nullified else "stopped", "")
    text, overdue = deadline_text(clock.due_at, now)
    if overdue:  # after the "Breached" badge: "Breached by 291 d 3 h", 已超时 291 天 3 小时 (not 已超时 已逾期 …)
        text = pgettext("a breached clock, after its badge", "by %(time)s") % {"time": span_text(now - clock.due_at)}
    if overdue or clock.breached_at is not None:
        return ClockRow(clock, "breached", text)
    if clock.warn_at is not None and now >= clock.warn_at:
        return ClockRow(clock, "warned", text)
    return ClockRow(clock, "ok", text)


# --- access --------------------------------------------------------------------------------------------


def _may_list(user) -> bool:
    return access.can(user, Cap.HANDLE_SAFETY) or access.can(user, Cap.OVERSEE_SAFETY)


def _case_or_404(user, pk: int) -> SafetyCase:
    """The case if the user may see at least its status (404 otherwise, without saying whether it exists)."""
    case = (
        SafetyCase.objects.select_related("owner", "source_ticket", "source_interaction", "created_by")
        .filter(pk=pk)
        .first()
    )
    if case is None or not access.case_status_visible(user, case):
        raise Http404(_("No such case, or you may not see it."))
    return case


def _handling(request, pk: int) -> SafetyCase:
    """A case for a PV action: 403 without the capability, 404 when it does not exist."""
    access.require(request.user, Cap.HANDLE_SAFETY)
    return _case_or_404(request.user, pk)


# --- the list ------------------------------------------------------------------------------------------


def next_due_subquery() -> Subquery:
    """The earliest open deadline of a case (report or investigation)."""
    return Subquery(
        SafetyClock.objects.filter(case=OuterRef("pk"), met_at__isnull=True, stopped_at__isnull=True)
        .order_by("due_at")
        .values("due_at")[:1]
    )


def _due_panel(request, now: dt.datetime) -> dict:
    user = request.user
    mine_possible = access.can(user, Cap.HANDLE_SAFETY)
    show_all = request.GET.get("due") == "all" or not mine_possible
    items = []
    clocks = list(services.due_clocks(now, owner=None if show_all else user, limit=DUE_PANEL))
    # a hand-off counted in working days into a year whose holidays are not entered yet may move: said beside it
    uncovered = services.provisional_years(((c.pk, c.calendar_id, c.due_at, c.met_at) for c in clocks), now)
    for clock in clocks:
        row = clock_row(clock, now)
        source = None
        if clock.flag_id and clock.flag:
            source = clock.flag.ticket or clock.flag.interaction
        items.append({"row": row, "case": clock.case, "source": source, "uncovered": uncovered.get(clock.pk, ()),
                      "source_label": services._source_label(source) if source else ""})  # fmt: skip
    return {"due_items": items, "due_all": show_all, "due_toggle": mine_possible}


@login_required
@require_GET
def case_list(request):
    user = request.user
    if not _may_list(user):
        raise PermissionDenied(_("You do not have permission to do this."))
    form = CaseFilterForm(request.GET or None)
    data = form.cleaned()
    now = timezone.now()
    qs = access.cases_for(user).annotate(next_due=next_due_subquery())
    if data.get("q"):
        # a number typed with the input method in full-width mode (ＡＥ－２０２６－０００１９) or pasted with spaces
        qs = qs.filter(number__icontains="".join(unicodedata.normalize("NFKC", data["q"]).split()))
    for field in ("kind", "status"):
        if data.get(field):
            qs = qs.filter(**{field: data[field]})
    for field in ("valid", "serious"):
        if data.get(field) in ("yes", "no"):
            qs = qs.filter(**{field: data[field] == "yes"})
    if data.get("overdue"):
        qs = qs.filter(next_due__lt=now)
    if data.get("mine"):
        qs = qs.filter(owner=user)
    # no personal column is read for the list: nothing to decrypt, nothing to leak
    qs = qs.select_related("owner").defer(*PERSONAL_FIELDS).order_by("-received_at", "-id")
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page") or 1)
    rows = list(page.object_list)
    reports = services.last_reports(c.pk for c in rows)
    for case in rows:
        case.report = report_label(reports.get(case.pk))
        case.deadline, case.overdue = deadline_text(case.next_due, now)
        case.missing_labels = [str(Criterion(c).label) for c in case.missing if c in Criterion.values]
    filtered = any(request.GET.get(k) for k in ("q", "kind", "status", "valid", "serious", "overdue", "mine"))
    context = {"form": form, "page_obj": page, "rows": rows, "filtered": filtered,
               "may_create": access.can(user, Cap.HANDLE_SAFETY), **_due_panel(request, now)}  # fmt: skip
    return render(request, "safety/case_list.html", context)


# --- a new case ----------------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def case_new(request):
    user = request.user
    access.require(user, Cap.HANDLE_SAFETY)
    form = NewCaseForm(request.POST or None)
    status = 200
    if request.method == "POST":
        status = 400
        # sent again (a replay, a double click): the case the first one opened, not a second report
        done = _created_with(user, request.POST.get("form_token", ""))
        if done:
            return _case_sent_again(request, done)
        if form.is_valid():
            try:
                case = _create_once(user, form.cleaned_data.get("form_token"),
                                    lambda: services.create_case(user, form.service_data()))  # fmt: skip
            except AlreadyCreated as e:
                return _case_sent_again(request, e.pk)
            except ValidationError as e:
                form.add_service_errors(e)
            else:
                messages.success(request, _("Case %(number)s was opened.") % {"number": case.number})
                return redirect("safety:case", pk=case.pk)
    return render(request, "safety/case_new.html", {"form": form}, status=status)


def _case_sent_again(request, pk):
    messages.info(request, _("This form was already sent: the case was opened then, and not a second time."))
    return redirect("safety:case", pk=pk) if pk else redirect("safety:cases")


def _open_from(request, source, back: str):
    # sent again (a double click, Back and send): the case the first one opened, not a second case of the same report
    done = _created_with(request.user, request.POST.get("form_token", ""))
    if done:
        return _case_sent_again(request, done)
    form = FromSourceForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose the kind of case."))
        return redirect(back)
    try:
        case = _create_once(request.user, form.cleaned_data.get("form_token"),
                            lambda: services.open_case_from(request.user, source, kind=form.cleaned_data["kind"]))  # fmt: skip
    except AlreadyCreated as e:
        return _case_sent_again(request, e.pk)
    except ValidationError as e:
        for message in e.messages:
            messages.error(request, message)
        return redirect(back)
    messages.success(request, _("Case %(number)s was opened.") % {"number": case.number})
    return redirect("safety:case", pk=case.pk)


@login_required
@require_POST
def from_ticket(request, ticket_pk: int):
    access.require(request.user, Cap.HANDLE_SAFETY)
    ticket = access.tickets_for(request.user).filter(pk=ticket_pk).first()
    if ticket is None:
        raise Http404(_("No such ticket, or you may not see it."))
    return _open_from(request, ticket, reverse("servicedesk:ticket", args=[ticket.pk]))


@login_required
@require_POST
def from_interaction(request, pk: int):
    access.require(request.user, Cap.HANDLE_SAFETY)
    interaction = access.interactions_for(request.user).filter(pk=pk).first()
    if interaction is None:
        raise Http404(_("No such interaction, or you may not see it."))
    back = request.POST.get("next") or ""
    if not is_local(request, back):
        back = reverse("safety:cases")
    return _open_from(request, interaction, back)


# --- the case page ---------------------------------------------------------------------------------------


def _criteria(case: SafetyCase) -> list[dict]:
    """The minimum criteria of a valid case, as they apply to it: a quality complaint without a reaction needs a
    reporter and the product only — not ticked as if it had a patient and an adverse reaction."""
    quality_only = not services.reportable(case)
    return [{"value": c.value, "label": c.label, "help": services.CRITERION_HELP[c], "missing": c.value in case.missing}
            for c in Criterion
            if not (quality_only and c in (Criterion.PATIENT, Criterion.REACTION))]  # fmt: skip


def _problem_link(case: SafetyCase, field: str) -> str:
    """The edit form's input for an export problem's field ("reactions[0].meddra_llt" → #id_reactions-0-…)."""
    if not field:
        return ""
    base = reverse("safety:case-edit", args=[case.pk])
    if "[" in field:
        prefix, _sep, rest = field.partition("[")
        index, _sep, name = rest.partition("]")
        name = name.lstrip(".")
        fields = DrugForm.base_fields if prefix == "drugs" else ReactionForm.base_fields
        if prefix in ("drugs", "reactions") and name in fields and index.isdecimal():
            return f"{base}#id_{prefix}-{index}-{name}"
        return base
    if field in CaseFieldsForm.base_fields:
        return f"{base}#id_{field}"
    return base


def _problem_place(field: str) -> str:
    """Where an export problem's field is, as the edit form heads it ("reactions[0].meddra_llt" → 不良反应 1), not the
    field's path: the problem's message names the field itself. A field of the case: the edit form."""
    if not field:
        return ""
    prefix, bracket, rest = field.partition("[")
    index = rest.partition("]")[0]
    if bracket and index.isdecimal():
        if prefix == "drugs":
            return _("Drug %(n)s") % {"n": int(index) + 1}
        if prefix == "reactions":
            return _("Reaction %(n)s") % {"n": int(index) + 1}
    return _("Edit case")


def _task_title(task) -> str:
    """A follow-up task's title names the missing criteria, a QA hand-off's the case; it is stored in the language
    of the request (or the worker) that last changed the case, so it is put together again in the reader's."""
    if task.kind == TaskKind.QA_HANDOFF:
        return _("Investigate the quality complaint %(number)s") % {"number": task.case.number}
    missing = (task.details or {}).get("missing") if task.kind == TaskKind.FOLLOW_UP else None
    if not missing or any(c not in Criterion.values for c in missing):
        return task.title
    labels = [str(services.CRITERION_HELP[Criterion(c)]) for c in missing]
    return _("Collect the missing information: %(missing)s") % {"missing": "; ".join(labels)}


def _versions(case: SafetyCase) -> list:
    """The first version's default summary ("Initial report") is stored in the language of whoever opened the case;
    it is shown in the reader's."""
    versions = list(case.versions.select_related("created_by"))
    defaults = set()
    for code, _name in settings.LANGUAGES:
        with translation.override(code):
            defaults.add(_("Initial report"))
    for v in versions:
        if v.sequence == 0 and v.summary in defaults:
            v.summary = _("Initial report")
    return versions


def _header_context(case: SafetyCase, now: dt.datetime) -> dict:
    clocks = [
        clock_row(c, now) for c in case.clocks.select_related("rule", "case_version").order_by("due_at", "id")
    ]
    submissions = list(case.submissions.select_related("submitted_by", "case_version", "clock"))
    by_clock = {s.clock_id: s for s in reversed(submissions) if s.clock_id}
    for row in clocks:
        row.submission = by_clock.get(row.clock.pk)
    tasks = list(case.tasks.select_related("assignee"))
    # the title was written in the language of whoever changed the case; read it in the reader's
    for task in tasks:
        task.display_title = _task_title(task)
    follow_up = next((t for t in tasks if t.kind == TaskKind.FOLLOW_UP and t.done_at is None), None)
    criteria = _criteria(case)
    return {
        "case": case, "criteria": criteria, "missing_labels": [c["label"] for c in criteria if c["missing"]],
        "reportable": services.reportable(case), "clocks": clocks, "submissions": submissions, "tasks": tasks,
        "follow_up_task": follow_up, "rejected": [s for s in submissions if s.ack_status == "rejected"],
        "today": timezone.localdate(),
        "report_state": services.report_states([case.pk]).get(case.pk, ""),
    }  # fmt: skip


def _late_now(case: SafetyCase, now: dt.datetime) -> bool:
    return case.clocks.filter(met_at__isnull=True, stopped_at__isnull=True, kind=ClockKind.REPORT,
                              due_at__lt=now).exists()  # fmt: skip


def _detail_context(request, case: SafetyCase, **forms) -> dict:
    user = request.user
    now = timezone.now()
    context = _header_context(case, now)
    context["may_handle"] = may_handle = access.can(user, Cap.HANDLE_SAFETY)
    context["full"] = access.can_see_case_identity(user)
    if not context["full"]:
        return context
    complaint = QualityComplaint.objects.filter(case=case).select_related("product", "qa_owner").first()
    capas = list(complaint.capas.select_related("owner")) if complaint else []
    quality_case = case.kind == CaseKind.QUALITY or complaint is not None
    files = list(case.files.select_related("uploaded_by"))
    references = services.literature_references(case)
    copies = {f.literature: f for f in files if f.literature}
    last_export = request.session.get(EXPORT_SESSION_KEY, {}).get(str(case.pk), "")
    context.update({
        "drugs": list(case.drugs.select_related("product")),
        "reactions": list(case.reactions.all()),
        "versions": _versions(case),
        "files": [f for f in files if not (f.literature and f.literature in references)],
        "literature": [(n, text, copies.get(text)) for n, text in enumerate(references, start=1)],
        "complaint": complaint, "capas": capas, "quality_case": quality_case,
        "open": case.status in OPEN_CASE_STATUSES,
        "closed": case.status in (CaseStatus.CLOSED, CaseStatus.NULLIFIED),
        "late_now": _late_now(case, now),
        "sex_label": dict(Sex.choices).get(case.patient_sex, case.patient_sex),
        "age_unit_label": dict(AgeUnit.choices).get(case.patient_age_unit, case.patient_age_unit),
    })  # fmt: skip
    if may_handle:
        version = {"version": case.version}
        capa_errors = forms.get("capa_update_errors") or {}
        capa_forms = forms.get("capa_update_forms") or {}
        for c in capas:
            initial = {"status": c.status, "effectiveness_check": c.effectiveness_check, "version": c.version}
            c.update_form = capa_forms.get(c.pk) or CapaUpdateForm(initial=initial, prefix=f"capa{c.pk}")
            c.update_errors = capa_errors.get(c.pk, [])
        context.update({
            "status_form": forms.get("status_form") or StatusForm(initial=version),
            "export_form": forms.get("export_form") or ExportForm(),
            "day_zero_form": forms.get("day_zero_form") or DayZeroForm(initial={
                "received_at": timezone.localtime(case.received_at).replace(second=0, microsecond=0),
                "version": case.version}),
            "submission_form": forms.get("submission_form") or SubmissionForm(initial={
                "jurisdiction": Jurisdiction.CN, "kind": ClockKind.REPORT, "message_id": last_export,
                "submitted_at": timezone.localtime(now).replace(second=0, microsecond=0),
            }),
            "quality_form": forms.get("quality_form") or QualityForm(initial=QualityForm.initial_for(case, complaint)),
            "capa_form": forms.get("capa_form") or CapaForm(initial={"owner": user.pk}),
            "file_form": forms.get("file_form") or FileForm(),
            "literature_copy_form": forms.get("literature_copy_form")
            or LiteratureCopyForm(references=services.literature_references(case)),
            "export_problems": forms.get("export_problems") or [],
            "conflict": forms.get("conflict", False),
        })  # fmt: skip
    return context


def _audit_read(request, case: SafetyCase, purpose: str) -> None:
    audit.record(A.READ_PERSONAL, case, user=request.user, fields=PERSONAL_FIELDS, purpose=purpose)


def _detail_page(request, case: SafetyCase, status: int = 200, **forms) -> HttpResponse:
    user = request.user
    if not (access.can(user, Cap.HANDLE_SAFETY) or access.can(user, Cap.OVERSEE_SAFETY)):
        context = {"case": case, "submitted": case.submissions.exists()}
        return render(request, "safety/case_status.html", context, status=status)
    context = _detail_context(request, case, **forms)
    if context["full"]:
        _audit_read(request, case, "case page")
    return render(request, "safety/case_detail.html", context, status=status)


@login_required
@require_GET
def case_detail(request, pk: int):
    return _detail_page(request, _case_or_404(request.user, pk))


# --- edit and follow-up ---------------------------------------------------------------------------------


def _edit_forms(request, case: SafetyCase, *, follow_up: bool):
    post = request.POST if request.method == "POST" else None
    main = CaseFieldsForm(post, initial=CaseFieldsForm.initial_for(case))
    drugs = DrugFormSet(post, initial=drug_initial(case), prefix="drugs")
    reactions = ReactionFormSet(post, initial=reaction_initial(case), prefix="reactions")
    extra = None
    if follow_up:
        extra = FollowUpFieldsForm(
            post, initial={"received_at": timezone.localtime().replace(second=0, microsecond=0)}
        )
    return main, drugs, reactions, extra


def _place_errors(error: ValidationError, main, drugs, reactions, extra) -> None:
    rest = drugs.add_service_errors(error, "drugs") + reactions.add_service_errors(error, "reactions")
    for key, errors in getattr(error, "message_dict", {"": error.messages}).items():
        if key.startswith(("drugs[", "reactions[")):
            continue
        target = main
        if extra is not None and key in extra.fields:
            target = extra
        for message in errors:
            target.add_error(key if key in target.fields else None, message)
    for message in rest:
        main.add_error(None, message)


def _edit(request, pk: int, *, follow_up: bool):
    user = request.user
    case = _handling(request, pk)
    main, drugs, reactions, extra = _edit_forms(request, case, follow_up=follow_up)
    status, conflict = 200, False
    if request.method == "POST" and request.POST.get("add_row") in ("drugs", "reactions"):
        # "add a drug / reaction": the same input again with one more empty row, nothing saved
        posted = request.POST.copy()
        key = f"{request.POST['add_row']}-TOTAL_FORMS"
        raw = str(posted.get(key) or "0")
        count = int(raw) if raw.isdecimal() and len(raw) < 4 else 0
        posted[key] = str(min(count, 50) + 1)
        main = CaseFieldsForm(posted, initial=CaseFieldsForm.initial_for(case))
        drugs = DrugFormSet(posted, initial=drug_initial(case), prefix="drugs")
        reactions = ReactionFormSet(posted, initial=reaction_initial(case), prefix="reactions")
        if extra is not None:
            extra = FollowUpFieldsForm(posted)
    elif request.method == "POST":
        status = 400
        if follow_up and _created_with(user, request.POST.get("form_token", "")):
            return _follow_up_sent_again(request, case)
        forms_ok = (
            main.is_valid() & drugs.is_valid() & reactions.is_valid() & (extra is None or extra.is_valid())
        )
        if forms_ok:
            data = {**main.service_data(), "drugs": drugs.rows(), "reactions": reactions.rows()}
            version = main.cleaned_data.get("version")
            try:
                if follow_up:
                    _create_once(user, extra.cleaned_data.get("form_token"), lambda: services.add_follow_up(
                        user, case, data, received_at=extra.cleaned_data["received_at"],
                        summary=extra.cleaned_data.get("summary") or "", version=version,
                    ))  # fmt: skip
                else:
                    services.update_case(user, case, data, version=version)
            except AlreadyCreated:
                return _follow_up_sent_again(request, case)
            except ConflictError:
                case = _handling(request, pk)
                posted = request.POST.copy()
                posted["version"] = str(case.version)
                main = CaseFieldsForm(posted, initial=CaseFieldsForm.initial_for(case))
                main.is_valid()
                main.add_error(None, str(CONFLICT))
                status, conflict = 409, True
            except ValidationError as e:
                _place_errors(e, main, drugs, reactions, extra)
            else:
                text = (_("The follow-up was added as a new version of %(number)s.") if follow_up
                        else _("%(number)s was saved.")) % {"number": case.number}  # fmt: skip
                messages.success(request, text)
                return redirect("safety:case", pk=case.pk)
    _audit_read(request, case, "case follow-up form" if follow_up else "case edit form")
    context = {"case": case, "form": main, "drug_formset": drugs, "reaction_formset": reactions,
               "follow_form": extra, "follow_up": follow_up, "conflict": conflict}  # fmt: skip
    return render(request, "safety/case_edit.html", context, status=status)


def _follow_up_sent_again(request, case: SafetyCase):
    messages.info(
        request, _("This form was already sent: the follow-up was added then, and not a second time.")
    )
    return redirect("safety:case", pk=case.pk)


@login_required
@require_http_methods(["GET", "POST"])
def case_edit(request, pk: int):
    return _edit(request, pk, follow_up=False)


@login_required
@require_http_methods(["GET", "POST"])
def case_follow_up(request, pk: int):
    return _edit(request, pk, follow_up=True)


# --- actions on the case page ----------------------------------------------------------------------------


@login_required
@require_POST
def case_status(request, pk: int):
    case = _handling(request, pk)
    form = StatusForm(request.POST)
    if form.is_valid():
        d = form.cleaned_data
        try:
            services.set_status(
                request.user, case, d["status"], reason=d.get("reason") or "", version=d["version"]
            )
        except ConflictError:
            case = _handling(request, pk)
            form.add_error(None, str(CONFLICT))
            return _detail_page(request, case, 409, status_form=form, conflict=True)
        except ValidationError as e:
            form.add_service_errors(e)
        else:
            case.refresh_from_db()
            messages.success(request, _("%(number)s is now “%(status)s”.")
                             % {"number": case.number, "status": case.get_status_display()})  # fmt: skip
            return redirect("safety:case", pk=case.pk)
    return _detail_page(request, case, 400, status_form=form)


@login_required
@require_POST
def case_export(request, pk: int):
    case = _handling(request, pk)
    form = ExportForm(request.POST)
    if form.is_valid():
        d = form.cleaned_data
        try:
            result = services.export_icsr(request.user, [case], otp_code=d["otp_code"], purpose=d["purpose"],
                                          report=d.get("report") or "", reason=d.get("reason") or "")  # fmt: skip
        except ExportRefused as e:
            problems = [{"problem": p, "link": _problem_link(case, p.field), "place": _problem_place(p.field)}
                        for p in e.problems]  # fmt: skip
            initial = {"purpose": d["purpose"], "report": d.get("report") or "", "reason": d.get("reason") or ""}
            return _detail_page(request, case, 400, export_form=ExportForm(initial=initial),
                                export_problems=problems)  # fmt: skip
        except ValidationError as e:
            form.add_service_errors(e)
        else:
            exports = dict(request.session.get(EXPORT_SESSION_KEY, {}))
            exports[str(case.pk)] = result.message_id
            request.session[EXPORT_SESSION_KEY] = exports
            response = HttpResponse(result.xml, content_type="application/xml; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="{case.number}-{result.message_id}.xml"'
            response["Cache-Control"] = "private, no-store"
            return response
    return _detail_page(request, case, 400, export_form=form)


@login_required
@require_POST
def case_submission(request, pk: int):
    case = _handling(request, pk)
    user, token = request.user, request.POST.get("form_token", "")
    # sent again (a double click, Back and send): the submission the first one recorded — its one-time code used
    if _created_with(user, token):
        return _submission_sent_again(request, case)
    form = SubmissionForm(request.POST)
    if form.is_valid():
        token = form.cleaned_data.get("form_token")
        try:
            # the token is claimed in the submission's transaction, not around it: the signature's check stays
            # outside, so that a wrong code is audited and throttled (services.record_submission)
            submission = services.record_submission(user, case, form.service_data(),
                                                    otp_code=form.cleaned_data["otp_code"],
                                                    once=lambda s: _create_once(user, token, lambda: s))  # fmt: skip
        except AlreadyCreated:
            return _submission_sent_again(request, case)
        except ValidationError as e:
            if _created_with(user, token):  # its code refused as used: the first sending, at the same time, used it
                return _submission_sent_again(request, case)
            form.add_service_errors(e)
        else:
            text = _("The submission of %(number)s was recorded.") % {"number": case.number}
            if submission.late:
                text += " " + _("It was %(days)d day(s) late.") % {"days": submission.delay_days}
            messages.success(request, text)
            return redirect("safety:case", pk=case.pk)
    return _detail_page(request, case, 400, submission_form=form)


def _submission_sent_again(request, case: SafetyCase):
    messages.info(request, SENT_AGAIN)
    return redirect(reverse("safety:case", args=[case.pk]) + "#submissions")


@login_required
@require_POST
def case_day_zero(request, pk: int):
    """Correct day 0 with a reason and a signature; the clocks of the initial report follow."""
    case = _handling(request, pk)
    form = DayZeroForm(request.POST)
    if form.is_valid():
        d = form.cleaned_data
        try:
            services.correct_day_0(request.user, case, received_at=d["received_at"], reason=d.get("reason") or "",
                                   otp_code=d["otp_code"], version=d["version"])  # fmt: skip
        except (ConflictError, ValidationError) as e:
            case = _handling(request, pk)
            # sent again right after by the same person (a double click): "this is day 0 already", or the
            # conflict, the first sending having corrected it — that sending's answer, not the refusal
            if case.received_at == d["received_at"] and sent_again_after(request.user, case, d["version"]):
                return _day_zero_corrected(request, case)
            if isinstance(e, ConflictError) or d["version"] != case.version:  # stale: reload, whatever else is wrong
                form.add_error(None, str(CONFLICT))
                return _detail_page(request, case, 409, day_zero_form=form, conflict=True)
            form.add_service_errors(e)
        else:
            case.refresh_from_db()
            return _day_zero_corrected(request, case)
    return _detail_page(request, case, 400, day_zero_form=form)


def _day_zero_corrected(request, case: SafetyCase):
    messages.success(request, _("Day 0 of %(number)s is now %(date)s; its clocks were counted again.") % {
        "number": case.number, "date": timezone.localtime(case.received_at).strftime("%Y-%m-%d %H:%M")})
    return redirect("safety:case", pk=case.pk)


@login_required
@require_GET
def case_report_pdf(request, pk: int):
    from . import report_pdf  # fpdf costs 0.25 s to import: only the processes that draw a PDF pay it

    case = _handling(request, pk)
    data = report_pdf.render(case)
    audit.record(A.EXPORT, case, user=request.user, format="报告表 PDF", fields=PERSONAL_FIELDS)
    response = HttpResponse(data, content_type="application/pdf")
    label = _("ADR report form")  # in the reader's language: AE-2026-000019-药品不良反应事件报告表.pdf
    response["Content-Disposition"] = content_disposition_header(
        True, f"{case.number}-{'-'.join(label.replace('/', '').split())}.pdf"  # 不良反应/事件: no slash in a name
    )
    response["Cache-Control"] = "private, no-store"
    return response


@login_required
@require_POST
def case_quality(request, pk: int):
    case = _handling(request, pk)
    form = QualityForm(request.POST)
    if form.is_valid():
        version = form.cleaned_data.get("version")
        version = -1 if version is None else version  # the page always carries it: a form without is stale
        try:
            services.update_quality(request.user, case, form.service_data(), version=version)
        except ConflictError:
            case = _handling(request, pk)
            # sent again right after by the same person (a double click): what the first sending saved
            if services.quality_is(case, form.service_data()) and sent_again_after(request.user, case, version):
                return _quality_saved(request, case)
            form.add_error(None, str(CONFLICT))
            return _detail_page(request, case, 409, quality_form=form, conflict=True)
        except ValidationError as e:
            form.add_service_errors(e)
        else:
            return _quality_saved(request, case)
    return _detail_page(request, case, 400, quality_form=form)


def _quality_saved(request, case: SafetyCase):
    messages.success(request, _("The quality investigation was saved."))
    return redirect(reverse("safety:case", args=[case.pk]) + "#quality")


@login_required
@require_POST
def capa_add(request, pk: int):
    case = _handling(request, pk)
    # sent again (a double click, Back and send): the action the first one added, not a second one told twice
    if _created_with(request.user, request.POST.get("form_token", "")):
        return _capa_sent_again(request, case)
    form = CapaForm(request.POST)
    if form.is_valid():
        try:
            _create_once(request.user, form.cleaned_data.get("form_token"),
                         lambda: services.add_capa(request.user, case, form.cleaned_data))  # fmt: skip
        except AlreadyCreated:
            return _capa_sent_again(request, case)
        except ValidationError as e:
            form.add_service_errors(e)
        else:
            messages.success(request, _("The CAPA action was added."))
            return redirect(reverse("safety:case", args=[case.pk]) + "#capa")
    return _detail_page(request, case, 400, capa_form=form)


def _capa_sent_again(request, case: SafetyCase):
    messages.info(request, _("This form was already sent: the CAPA action was added then, and not a second time."))
    return redirect(reverse("safety:case", args=[case.pk]) + "#capa")


@login_required
@require_POST
def capa_update(request, pk: int, capa_pk: int):
    case = _handling(request, pk)
    capa = Capa.objects.filter(pk=capa_pk, complaint__case=case).first()
    if capa is None:
        raise Http404(_("No such CAPA action on this case."))
    form = CapaUpdateForm(request.POST, prefix=f"capa{capa.pk}")
    errors: list[str] = []
    if form.is_valid():
        version = form.cleaned_data.get("version")
        try:
            # the page always carries the version: a form without is stale; sent again right after by the same
            # person (a double click), the service finds it saved by the first sending
            services.update_capa(request.user, capa, form.cleaned_data, version=-1 if version is None else version)
        except ConflictError as e:
            # another officer updated the action since this page was loaded: their record stays, this input is kept
            # with the version as it is now, to be checked and sent again
            posted = request.POST.copy()
            posted[f"capa{capa.pk}-version"] = str(e.current_version)
            form = CapaUpdateForm(posted, prefix=f"capa{capa.pk}")
            return _detail_page(request, case, 409, capa_update_errors={capa.pk: [str(CONFLICT)]},
                                capa_update_forms={capa.pk: form})  # fmt: skip
        except ValidationError as e:
            errors = e.messages
        else:
            messages.success(request, _("The CAPA action was updated."))
            return redirect(reverse("safety:case", args=[case.pk]) + "#capa")
    else:
        errors = [m for ms in form.errors.values() for m in ms]
    return _detail_page(
        request, case, 400, capa_update_errors={capa.pk: errors}, capa_update_forms={capa.pk: form}
    )


# --- files ---------------------------------------------------------------------------------------------


@csrf_exempt  # checked by _file_upload, once the size limit is in place (reading the body checks nothing)
@login_required
@require_POST
def file_upload(request, pk: int):
    """A photo or document: refused before the body is read when too large, and the reading stops as soon as
    the upload passes the limit (nothing spooled to disk beyond it)."""
    from django.conf import settings

    case = _handling(request, pk)
    return _file_upload(request, case, _size_limit(request, settings.ATTACHMENT_MAX_BYTES))


def _size_limit(request, limit: int):
    """The upload's size limit, in place before the body is read: a request that announces more is refused at once."""
    from pharmacrm.customers.views_import import SizeLimitHandler, content_length

    limiter = SizeLimitHandler(request, limit=limit)
    if content_length(request) > limit + 64 * 1024:
        limiter.too_large = True
    else:
        request.upload_handlers.insert(0, limiter)
    return limiter


@csrf_protect
def _file_upload(request, case: SafetyCase, limiter):
    if limiter.too_large:
        return _too_large(request, case)
    form = FileForm(request.POST, request.FILES)
    if limiter.too_large:
        return _too_large(request, case)
    if _created_with(request.user, request.POST.get("form_token", "")):  # sent twice: the first one kept it
        messages.info(request, SENT_AGAIN)
        return redirect(reverse("safety:case", args=[case.pk]) + "#files")
    if form.is_valid():
        try:
            _create_once(request.user, form.cleaned_data.get("form_token"),
                         lambda: services.add_file(request.user, case, form.cleaned_data["files"]))  # fmt: skip
        except AlreadyCreated:
            messages.info(request, SENT_AGAIN)
            return redirect(reverse("safety:case", args=[case.pk]) + "#files")
        except ValidationError as e:
            form.add_service_errors(e)
        else:
            messages.success(request, _("The file was added to the case."))
            return redirect(reverse("safety:case", args=[case.pk]) + "#files")
    return _detail_page(request, case, 400, file_form=form)


@csrf_exempt  # checked by _literature_copy, once the size limit is in place
@login_required
@require_POST
def literature_copy(request, pk: int):
    """The copy of the article of a literature reference (C.4.r.2): PV only, refused before the body is read when
    larger than an ICSR may carry."""
    case = _handling(request, pk)
    return _literature_copy(request, case, _size_limit(request, services.literature_copy_limit()))


@csrf_protect
def _literature_copy(request, case: SafetyCase, limiter):
    from django.template.defaultfilters import filesizeformat

    references = services.literature_references(case)
    form = None if limiter.too_large else LiteratureCopyForm(request.POST, request.FILES, references=references)
    if form is None or limiter.too_large:
        messages.error(request, _("The copy of an article travels inside the ICSR, which carries at most %(max)s.")
                       % {"max": filesizeformat(services.literature_copy_limit())})  # fmt: skip
        return _detail_page(request, case, 413)
    if form.is_valid():
        try:
            copy = services.attach_literature_copy(request.user, case, form.cleaned_data["reference"],
                                                   form.cleaned_data["copy"])  # fmt: skip
        except ValidationError as e:
            form.add_service_errors(e)
        else:
            if getattr(copy, "again", False):  # sent twice (a double click): the first sending attached it
                messages.info(request, SENT_AGAIN)
            messages.success(request, _("The copy of the article was attached to reference %(n)d.")
                             % {"n": form.cleaned_data["reference"]})  # fmt: skip
            return redirect(reverse("safety:case", args=[case.pk]) + "#literature")
    return _detail_page(request, case, 400, literature_copy_form=form)


def _too_large(request, case: SafetyCase):
    from django.conf import settings

    messages.error(request, _("The file is too large; the limit is %(limit)s MB.")
                   % {"limit": f"{settings.ATTACHMENT_MAX_BYTES / 1048576:g}"})  # fmt: skip
    return _detail_page(request, case, 413)


@login_required
@require_GET
def file_download(request, pk: int):
    """A file of a case: PV only (photos and records may show the patient)."""
    access.require(request.user, Cap.HANDLE_SAFETY)
    case_file = CaseFile.objects.select_related("case").filter(pk=pk).first()
    if case_file is None:
        raise Http404(_("No such file, or you may not see it."))
    return case_file_response(request.user, case_file)


def download_name(name: str) -> str:
    """The Content-Disposition of a download named `name` (the uploader's, which may be anything): an ASCII
    fallback without quotes, backslashes, slashes or control characters, and the name itself percent-encoded
    (RFC 6266) — never a header a name could break out of, nor a path."""
    ascii_name = "".join(ch for ch in name if 32 <= ord(ch) < 127 and ch not in '"\\/;').strip()
    if not ascii_name.strip("."):
        ascii_name = "file"
    elif ascii_name.startswith("."):  # 王小明病历.pdf: file.pdf, never a hidden file
        ascii_name = "file" + ascii_name
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


def case_file_response(user, case_file: CaseFile, **extra) -> FileResponse:
    """A case's file (a photo, a record, the copy of an article) as a download: for the page and the API alike,
    each download audited as a read of the case's personal data. Http404 when the storage lost it."""
    try:
        handle = case_file.file.open("rb")
    except FileNotFoundError:
        raise Http404(_("The file is missing from the storage.")) from None
    audit.record(A.READ_PERSONAL, case_file.case, user=user, fields=["files"], file=case_file.name, **extra)
    response = FileResponse(handle, content_type=case_file.content_type)
    response["Content-Length"] = str(case_file.size)
    response["Content-Disposition"] = download_name(case_file.name)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, no-store"
    return response


# --- the panel on a ticket or interaction page (templatetags/safety_tags.py) ---------------------------------


def panel_context(user, source) -> dict:
    """What the safety panel of a ticket or interaction shows the user: PV gets the flags, the cases and
    the button to open one; the member of staff who raised or holds the record gets the case numbers and
    their status, and so do PV's overseers; anyone else nothing. At most two queries."""
    from pharmacrm.servicedesk.models import Ticket

    is_ticket = isinstance(source, Ticket)
    field = "source_ticket" if is_ticket else "source_interaction"
    if access.can(user, Cap.HANDLE_SAFETY):
        flag_field = "ticket" if is_ticket else "interaction"
        flags = list(
            Flag.objects.filter(**{flag_field: source}).select_related("case").order_by("-created_at")
        )
        cases = list(SafetyCase.objects.filter(**{field: source}).only("pk", "number", "status", "kind", "valid")
                     .order_by("id"))  # fmt: skip
        open_url = (reverse("safety:from-ticket", args=[source.pk]) if is_ticket
                    else reverse("safety:from-interaction", args=[source.pk]))  # fmt: skip
        return {"show": True, "pv": True, "flags": flags, "cases": cases, "open_url": open_url,
                # a ticket filed under 用药错误 opens a medication error unless PV chooses another kind
                "kind_form": FromSourceForm(auto_id="safety-%s", initial={
                    "kind": (services.ticket_case_kind(source) if is_ticket else None) or CaseKind.ADVERSE_REACTION}),
                "pending": SignalStatus.PENDING, "source": source,
                "is_ticket": is_ticket}  # fmt: skip
    user_id = getattr(user, "pk", None)
    if is_ticket:
        involved = user_id is not None and user_id in (source.created_by_id, source.assignee_id)
    else:
        involved = user_id is not None and source.created_by_id == user_id
    # PV's overseers (manager, admin, auditor) see every case's status — on its source record too
    if not involved and not access.can(user, Cap.OVERSEE_SAFETY):
        return {"show": False}
    cases = list(SafetyCase.objects.filter(**{field: source}).only("pk", "number", "status").order_by("id"))
    return {"show": bool(cases), "pv": False, "cases": cases, "source": source, "is_ticket": is_ticket}


urlpatterns: list = [  # included by urls.py under /safety/
    path("", case_list, name="cases"),
    path("cases/new/", case_new, name="case-new"),
    path("cases/<int:pk>/", case_detail, name="case"),
    path("cases/<int:pk>/edit/", case_edit, name="case-edit"),
    path("cases/<int:pk>/follow-up/", case_follow_up, name="case-follow-up"),
    path("cases/<int:pk>/status/", case_status, name="case-status"),
    path("cases/<int:pk>/export/", case_export, name="case-export"),
    path("cases/<int:pk>/submission/", case_submission, name="case-submission"),
    path("cases/<int:pk>/day-0/", case_day_zero, name="case-day-zero"),
    path("cases/<int:pk>/report.pdf", case_report_pdf, name="case-report-pdf"),
    path("cases/<int:pk>/quality/", case_quality, name="case-quality"),
    path("cases/<int:pk>/capa/", capa_add, name="case-capa"),
    path("cases/<int:pk>/capa/<int:capa_pk>/", capa_update, name="case-capa-update"),
    path("cases/<int:pk>/files/", file_upload, name="case-file-upload"),
    path("files/<int:pk>/", file_download, name="case-file"),
    path("cases/<int:pk>/literature-copy/", literature_copy, name="case-literature-copy"),
    path("from-ticket/<int:ticket_pk>/", from_ticket, name="from-ticket"),
    path("from-interaction/<int:pk>/", from_interaction, name="from-interaction"),
]
