"""Interaction pages: the list of the interactions the user may see, recording a new one, and the page of
one interaction (with its edit form, and whether it was flagged for pharmacovigilance)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from pharmacrm.core import access, personal
from pharmacrm.core.ids import is_id
from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Cap
from pharmacrm.customers.forms import picker_label
from pharmacrm.customers.models import Institution, Person, with_departments
from pharmacrm.customers.services import ConflictError
from pharmacrm.customers.views import PAGE_SIZE, CappedPaginator
from pharmacrm.safety import services as safety_services
from pharmacrm.safety.choices import SignalStatus
from pharmacrm.safety.models import Flag, SafetyCase, SafetyClock
from pharmacrm.servicedesk.forms import people_options

from . import care, channels, followup, plans, services
from .forms import InteractionFilterForm, InteractionForm, PlanForm, PlanLineFormSet
from .models import CommunicationPlan, Interaction, InteractionChannel, PlanPeriod

CUSTOMER_ROWS = 10  # interactions shown on a Customer 360 page


def _person_options(request):
    options = people_options(request.user, request.GET.get("institution", ""))
    return render(request, "servicedesk/_person_options.html", {"options": options})


def _consent_note(request):
    """`?_options=consent&person=…&channel=…`: the form's note, before saving, that the person chosen withdrew their
    consent to marketing communication through the channel chosen (the rep may still record the visit or call)."""
    return render(request, "engagement/_consent_note.html", {"form_consent_warning": _form_consent_warning(
        request.user, request.GET)})  # fmt: skip


def _form_consent_warning(user, data) -> str:
    """The consent warning for the person and channel in the form's data; nothing about a person the user may
    not see (the answer would say that the person exists and what they decided)."""
    person_id = data.get("person")
    if not is_id(person_id):
        return ""
    person = access.people_for(user, Person.objects.all()).filter(pk=int(person_id)).first()
    if person is None:
        return ""
    return services.consent_warning(Interaction(person=person, channel=data.get("channel") or ""))


def _options(request):
    """The form's htmx look-ups: the people of the institution chosen, or the consent note."""
    if request.GET.get("_options") == "consent":
        return _consent_note(request)
    return _person_options(request)


def _may_edit(user, interaction: Interaction) -> bool:
    """The author, or a role that sees every customer (what services.update_interaction allows)."""
    return access.can(user, Cap.RECORD_INTERACTIONS) and (
        interaction.created_by_id == user.pk or access.can(user, Cap.ALL_CUSTOMERS)
    )


@login_required
@require_GET
def interaction_list(request):
    user = request.user
    access.require(user, Cap.VIEW_INTERACTIONS)
    form = InteractionFilterForm(request.GET or None, user=user)
    data = form.cleaned()
    qs = Interaction.objects.all()
    if data.get("mine"):
        qs = qs.filter(created_by=user)
    if data.get("channel"):
        qs = qs.filter(channel=data["channel"])
    if data.get("institution"):  # a hospital's interactions include its departments'
        qs = qs.filter(institution_id__in=with_departments(data["institution"].pk))
    if data.get("person"):
        qs = qs.filter(person=data["person"])
    embed = request.GET.get("embed") == "1"  # the block on a Customer 360 page (htmx)
    for key in (
        ("institution", "person") if embed else ()
    ):  # straight from the query: the scope is applied below
        if is_id(request.GET.get(key)):
            wanted = int(request.GET[key])
            qs = qs.filter(institution_id__in=with_departments(wanted)) if key == "institution" else qs.filter(person_id=wanted)
    if form.has_errors and not embed:  # a wrong filter shows nothing and says why under its field, not all
        qs = qs.none()
    qs = access.interactions_for(user, qs).order_by("-received_at", "-id")
    size, number = (CUSTOMER_ROWS, "1") if embed else (PAGE_SIZE, request.GET.get("page") or "1")
    page = CappedPaginator(qs.values_list("id", flat=True), size).get_page(number)
    ids = list(page.object_list)
    loaded = (
        Interaction.objects.filter(pk__in=ids)
        .select_related("institution__parent", "person", "created_by")
        .prefetch_related(
            Prefetch("safety_flags", queryset=Flag.objects.only("id", "interaction_id", "status"))
        )
        .in_bulk()
    )
    rows = []
    for pk in ids:
        interaction = loaded.get(pk)
        if interaction is not None:
            interaction.flag_status = _flag_status(interaction)
            interaction.institution_label = _institution_label(interaction)
            rows.append(interaction)
    filtered = any(request.GET.get(k) for k in ("mine", "channel", "institution", "person"))
    context = {"form": form, "rows": rows, "page_obj": page, "filtered": filtered,
               "may_record": access.can(user, Cap.RECORD_INTERACTIONS), "may_see_channels": channels.may_see(user)}  # fmt: skip
    if embed:
        context["customer_institution"] = int(request.GET["institution"]) if is_id(request.GET.get("institution")) else None
        context["customer_query"] = "&".join(
            f"{k}={request.GET[k]}" for k in ("institution", "person") if is_id(request.GET.get(k))
        )
        context["follow_up"] = _embedded_follow_up(user, request.GET)
        context["follow_up_days"] = followup.FIRST_FOLLOW_UP_DAYS
        context["plan_rows"] = _embedded_plans(user, request.GET)
        return render(request, "engagement/_customer_interactions.html", context)
    return render(request, "engagement/interaction_list.html", context)


@login_required
@require_GET
def follow_ups(request):
    """New customers awaiting their first follow-up (seed 000 §4.1), in the user's customer scope."""
    user = request.user
    access.require(user, Cap.VIEW_INTERACTIONS)
    access.require(user, Cap.VIEW_CUSTOMERS)
    mine = request.GET.get("mine") == "on"
    rows, total = followup.awaiting_for(user, mine=mine)
    for row in rows:
        row.is_person = isinstance(row.customer, Person)
        row.label = row.customer.name if row.is_person else picker_label(row.customer)
    context = {"rows": rows, "total": total, "mine": mine, "limit": followup.LIST_LIMIT,
               "days": followup.FIRST_FOLLOW_UP_DAYS, "look_back": followup.LOOK_BACK_DAYS,
               "may_record": access.can(user, Cap.RECORD_INTERACTIONS)}  # fmt: skip
    return render(request, "engagement/follow_ups.html", context)


@login_required
@require_GET
def birthdays(request):
    """Birthdays in the coming days of the people the user (or the user's teams) own, and the festivals of the next
    two weeks with how many of them to greet (seed 002 三.(三).1)."""
    user = request.user
    access.require(user, Cap.VIEW_INTERACTIONS)
    access.require(user, Cap.VIEW_CUSTOMERS)
    teams = request.GET.get("scope") == "teams"
    rows = care.upcoming(user, teams=teams)
    for row in rows:
        row.place = picker_label(row.person.institution) if row.person.institution_id else ""
    # festival_days: the days after today listed (care.festivals lists today and FESTIVAL_DAYS - 1 more)
    context = {"rows": rows, "teams": teams, "days": care.WINDOW_DAYS,
               "festivals": care.festivals_for(user, teams=teams), "festival_days": care.FESTIVAL_DAYS - 1,
               "notice_days": care.FESTIVAL_NOTICE_DAYS, "may_record": access.can(user, Cap.RECORD_INTERACTIONS)}  # fmt: skip
    return render(request, "engagement/birthdays.html", context)


def _institution_label(interaction: Interaction) -> str:
    """The institution as the pickers and the API's `institution_name` name it: a department with its hospital
    (北京协和医院 › 心内科) — a list naming only 产科 left the KAM of eleven hospitals to guess which one."""
    return picker_label(interaction.institution) if interaction.institution_id else ""


def _embedded_follow_up(user, query):
    """The first follow-up awaited by the customer of a Customer 360 page's block, if the user may see it."""
    for key, model, scope in (("person", Person, access.people_for), ("institution", Institution, access.institutions_for)):
        if is_id(query.get(key)):
            customer = scope(user, model.objects.all()).filter(pk=int(query[key])).first()
            return followup.pending(customer) if customer is not None else None
    return None


def _embedded_plans(user, query) -> list:
    """The communication plans the institution of a Customer 360 page's block is under, with its contacts so far."""
    if not is_id(query.get("institution")) or is_id(query.get("person")):
        return []
    institution = access.institutions_for(user, Institution.objects.all()).filter(pk=int(query["institution"])).first()
    return plans.for_customer(institution) if institution is not None else []


def _flag_status(interaction: Interaction) -> str:
    flags = sorted(interaction.safety_flags.all(), key=lambda f: f.pk)
    if any(f.status == SignalStatus.PENDING for f in flags):
        return SignalStatus.PENDING.value
    return flags[-1].status if flags else ""


@login_required
def interaction_create(request):
    user = request.user
    access.require(user, Cap.RECORD_INTERACTIONS)
    if request.method == "GET" and request.GET.get("_options") in ("person", "consent"):
        return _options(request)
    initial = {k: int(request.GET[k]) for k in ("institution", "person") if is_id(request.GET.get(k))}
    form = InteractionForm(request.POST if request.method == "POST" else None, user=user, initial=initial)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                interaction = services.record_interaction(user, form.service_data())
            except ValidationError as e:
                form.add_service_errors(e)
            else:
                if getattr(interaction, "sent_again", False):
                    messages.info(request, _("This form was already sent: the interaction was recorded then, and "
                                             "not a second time."))  # fmt: skip
                    return redirect("engagement:interaction", pk=interaction.pk)
                messages.success(request, _("The interaction was recorded."))
                if _flag_status(interaction):
                    messages.info(
                        request, _("It mentions a possible safety issue: pharmacovigilance was told.")
                    )
                return redirect("engagement:interaction", pk=interaction.pk)
    # the note about the person's withdrawn marketing consent, for the person and channel chosen so far
    chosen = {key: str(form[key].value() or "") for key in ("person", "channel")}
    context = {"form": form, "form_consent_warning": _form_consent_warning(user, chosen)}
    return render(request, "engagement/interaction_form.html", context, status=status)


def _interaction_or_404(user, pk: int) -> Interaction:
    """The interaction if the user may see it: 403 without the capability, 404 outside their scope."""
    access.require(user, Cap.VIEW_INTERACTIONS)
    qs = Interaction.objects.select_related(
        "institution__parent", "person", "product", "created_by"
    ).prefetch_related(
        "safety_flags",
        Prefetch(
            "safety_cases", queryset=SafetyCase.objects.select_related("source_ticket", "source_interaction")
        ),
    )
    interaction = access.interactions_for(user, qs).filter(pk=pk).first()
    if interaction is None:
        raise Http404(_("No such interaction, or you may not see it."))
    return interaction


@login_required
@require_http_methods(["GET", "HEAD", "POST"])  # the page, and its edit form
def interaction_detail(request, pk: int):
    user = request.user
    interaction = _interaction_or_404(user, pk)
    if request.method == "GET" and request.GET.get("_options") in ("person", "consent"):
        return _options(request)
    may_edit = _may_edit(user, interaction)
    options_url = reverse("engagement:interaction", args=[interaction.pk])
    status, conflict = 200, False
    if request.method == "POST":
        if not may_edit:
            raise access.PermissionDenied(_("Only the author may change this interaction."))
        form = InteractionForm(request.POST, user=user, options_url=options_url, interaction=interaction)
        status = 400
        if form.is_valid():
            try:
                services.update_interaction(
                    user,
                    interaction,
                    form.service_data(editing=True, stored_at=interaction.received_at),
                    version=form.cleaned_data.get("version"),
                )
            except ConflictError:
                conflict, status = True, 409
                interaction = _interaction_or_404(user, pk)
                # the input kept, with the version now current: checked and sent again, it saves
                form.data = form.data.copy()
                form.data["version"] = str(interaction.version)
            except ValidationError as e:
                form.add_service_errors(e)
            else:
                messages.success(request, _("The interaction was saved."))
                return redirect("engagement:interaction", pk=pk)
    else:
        form = InteractionForm(user=user, options_url=options_url, initial=_initial(interaction, user), interaction=interaction)
    flags = sorted(interaction.safety_flags.all(), key=lambda f: f.pk)
    # when PV must have looked at a pending flag: a day, or four hours when a death or hospital stay was mentioned
    handoff = (
        SafetyClock.objects.filter(flag__in=[f for f in flags if f.status == SignalStatus.PENDING], met_at__isnull=True)
        .order_by("due_at").values_list("pk", "calendar_id", "due_at", "met_at").first()
    )  # fmt: skip
    handoff_due = handoff[2] if handoff else None
    # counted into a year whose holidays nobody entered yet: the rep is told the time may move, as PV is
    handoff_provisional = next(iter(safety_services.provisional_years([handoff]).values()), ()) if handoff else ()
    # the case's status for the author and PV's overseers; a link to the case page for those who may open it
    cases = [
        (c, access.cases_for(user).filter(pk=c.pk).exists())
        for c in interaction.safety_cases.all()
        if access.case_status_visible(user, c)
    ]
    interaction.institution_label = _institution_label(interaction)
    context = {
        "interaction": interaction, "form": form if may_edit else None, "conflict": conflict,
        "flag_status": _flag_status(interaction), "flags": flags, "handoff_due": handoff_due, "cases": cases,
        "handoff_provisional": handoff_provisional,
        "may_triage": access.can(user, Cap.HANDLE_SAFETY), "consent_warning": services.consent_warning(interaction),
    }  # fmt: skip
    return render(request, "engagement/interaction_detail.html", context, status=status)


def _initial(interaction: Interaction, user) -> dict:
    masked = personal.masks_free_text(user)  # contact details in the text: masked here too, put back on saving
    return {
        "institution": interaction.institution_id, "person": interaction.person_id, "channel": interaction.channel,
        "received_at": interaction.received_at, "subject": personal.free_text(interaction.subject, masked),
        "notes": personal.free_text(interaction.notes, masked),
        "product": interaction.product_id, "safety_relevant": interaction.safety_relevant,
        "version": interaction.version,
    }  # fmt: skip


# --- communication plans (seed 002 三.(一)) ---------------------------------------------------------------------


def _may_read_plans(user) -> None:
    access.require(user, Cap.VIEW_INTERACTIONS)
    access.require(user, Cap.VIEW_CUSTOMERS)


def _year(value, default: int) -> int:
    first, last = plans.year_range()
    return int(value) if is_id(value) and first <= int(value) <= last else default


@login_required
@require_GET
def plan_list(request):
    """The communication plans of a year: what each class of customers is to hear from the company."""
    user = request.user
    _may_read_plans(user)
    this_year = timezone.localdate().year
    year = _year(request.GET.get("year"), this_year)
    rows = list(CommunicationPlan.objects.filter(year=year).prefetch_related("lines"))
    years = sorted(set(CommunicationPlan.objects.order_by().values_list("year", flat=True).distinct()) | {this_year},
                   reverse=True)  # fmt: skip
    context = {"rows": rows, "year": year, "years": years, "may_manage": plans.may_oversee(user),
               "class_period": plans.class_period()}  # fmt: skip
    return render(request, "engagement/plan_list.html", context)


def _plan_data(form: PlanForm, formset) -> dict:
    data = {k: form.cleaned_data.get(k) for k in ("year", "klass", "tier", "institution_kind", "goal")}
    data["lines"] = [line for f in formset.forms if (line := f.line()) is not None]
    return data


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def plan_edit(request, pk: int | None = None):
    """A new plan, or a plan's page with its form (managers only)."""
    user = request.user
    access.require(user, Cap.MANAGE_COMMUNICATION_PLANS)
    plan = None
    if pk is not None:
        plan = CommunicationPlan.objects.prefetch_related("lines").filter(pk=pk).first()
        if plan is None:
            raise Http404(_("No such communication plan."))
    status, conflict = 200, None
    if request.method == "POST":
        form, formset = PlanForm(request.POST), PlanLineFormSet(request.POST, prefix="lines")
        status = 400
        if form.is_valid() & formset.is_valid():
            data = _plan_data(form, formset)
            errors = plans.check(data, plan)
            # a change says which version it was made from; a form without one (an old page) counts as stale
            version = form.cleaned_data.get("version") or 0 if plan is not None else None
            try:
                if errors:
                    raise ValidationError(errors)
                saved = plans.save_plan(user, data, plan, version=version)
            except ConflictError:
                # the input kept, with the version now current: checked and sent again, it saves
                status = 409
                plan = CommunicationPlan.objects.prefetch_related("lines").get(pk=plan.pk)
                conflict = _plan_differences(form, plan, data)
                form = PlanForm(request.POST.copy())
                form.data["version"] = str(plan.version)
                form.is_valid()
            except ValidationError as e:
                _service_errors(form, formset, errors or e.message_dict)
            else:
                messages.success(request, _("The communication plan was saved."))
                return redirect(reverse("engagement:plans") + f"?year={saved.year}")
    else:
        initial = {"year": timezone.localdate().year}
        lines = []
        if plan is not None:
            initial = {k: getattr(plan, k) for k in ("year", "klass", "tier", "institution_kind", "goal", "version")}
            lines = [{k: getattr(line, k) for k in ("channel", "minimum", "period", "note")} for line in plan.lines.all()]
        form, formset = PlanForm(initial=initial), PlanLineFormSet(initial=lines, prefix="lines")
    context = {"form": form, "formset": formset, "plan": plan, "conflict": conflict}
    return render(request, "engagement/plan_form.html", context, status=status)


def _plan_differences(form: PlanForm, plan: CommunicationPlan, data: dict) -> list[tuple]:
    """What the plan holds now against the manager's input: (label, saved now, your input), as the form shows them."""

    def shown(name, value):
        choices = dict(getattr(form.fields[name], "choices", None) or ())
        return str(choices.get(value, value)) if value not in (None, "") else "—"

    def lines_text(lines) -> str:
        periods, channels_ = dict(PlanPeriod.choices), dict(InteractionChannel.choices)
        return "; ".join(f"{channels_.get(line['channel'], line['channel'])} ≥ {line['minimum']} "
                         f"{periods.get(line['period'], line['period'])}" for line in lines) or "—"  # fmt: skip

    rows = []
    for name in ("year", "klass", "tier", "institution_kind", "goal"):
        theirs, mine = getattr(plan, name), data.get(name)
        if (theirs or "") != (mine or ""):
            rows.append((form.fields[name].label, shown(name, theirs), shown(name, mine)))
    saved = [{k: getattr(line, k) for k in ("channel", "minimum", "period")} for line in plan.lines.all()]
    typed = [{k: line[k] for k in ("channel", "minimum", "period")} for line in data["lines"]]
    if saved != typed:
        rows.append((_("Contacts at least"), lines_text(saved), lines_text(typed)))
    return rows


def _service_errors(form: PlanForm, formset, errors: dict) -> None:
    """plans.check's per-field errors under the plan's fields, and under the lines typed (in their order)."""
    typed = [f for f in formset.forms if f.line() is not None]
    for key, value in errors.items():
        if key != "lines":
            form.add_error(key if key in form.fields else None, value)
            continue
        for i, item in enumerate(value):
            if isinstance(item, dict):
                for field, messages_ in item.items():
                    if i < len(typed):
                        typed[i].add_error(field, messages_)
            else:
                form.add_error(None, item)


@login_required
@require_http_methods(["POST"])
def plan_delete(request, pk: int):
    user = request.user
    access.require(user, Cap.MANAGE_COMMUNICATION_PLANS)
    plan = CommunicationPlan.objects.filter(pk=pk).first()
    if plan is None:
        # the form sent twice (a double click): the first deleted it, which the audit trail says — the plans' list
        gone = AuditEntry.objects.filter(action=AuditEntry.Action.DELETE, object_type="engagement.communicationplan",
                                         object_id=str(pk)).first()  # fmt: skip
        if gone is None:
            raise Http404(_("No such communication plan."))
        messages.info(request, _("This communication plan was deleted already."))
        year = (gone.changes.get("year") or [None])[0]
        return redirect(reverse("engagement:plans") + (f"?year={year}" if is_id(year) else ""))
    year = plan.year
    try:
        plans.delete_plan(user, plan, version=request.POST.get("version", ""))
    except ConflictError as e:  # a colleague changed it since the page was loaded: shown again, not deleted unseen
        messages.error(request, str(e))
        return redirect("engagement:plan", pk=plan.pk)
    messages.success(request, _("The communication plan was deleted."))
    return redirect(reverse("engagement:plans") + f"?year={year}")


@login_required
@require_GET
def plan_due(request):
    """The customers behind their communication plan, the most behind first; for managers, compliance per owner."""
    user = request.user
    _may_read_plans(user)
    oversee = plans.may_oversee(user)
    scope = request.GET.get("scope") or ("all" if oversee else "teams")
    if scope not in plans.SCOPES or (scope == "all" and not oversee):
        scope = "teams"
    klass = request.GET.get("klass") if request.GET.get("klass") in ("A", "B", "C", "D") else ""
    channel = request.GET.get("channel") if request.GET.get("channel") in InteractionChannel.values else ""
    owner = int(request.GET["owner"]) if oversee and is_id(request.GET.get("owner")) else None
    query = plans.Query(scope=scope, klass=klass, channel=channel, owner=owner)
    found_due = plans.due(user, query)
    rows_qs, by_id, found, period = plans.behind(user, query, found_due=found_due)
    page = Paginator(rows_qs, plans.PAGE_SIZE).get_page(request.GET.get("page") or "1")
    rows = plans.load_rows(list(page.object_list), by_id, found)
    for row in rows:
        row.label = picker_label(row.customer)
    context = {
        "rows": rows, "page_obj": page, "query": query, "oversee": oversee, "period": period,
        "channels": InteractionChannel.choices, "classes": "ABCD", "missed_days": plans.MISSED_SHOWN_DAYS,
        "summary": plans.summary(user, query, found_due=found_due) if oversee else [], "plans_exist": bool(by_id),
        "may_record": access.can(user, Cap.RECORD_INTERACTIONS),
        "filters": "&".join(f"{k}={v}" for k, v in (("scope", scope), ("klass", klass), ("channel", channel),
                                                     ("owner", owner or "")) if v),
    }  # fmt: skip
    return render(request, "engagement/plan_due.html", context)
