"""KPI appraisal pages (/sales/appraisal/): a period's ranking per person and per team, a person's result with every
indicator explained, the Excel export, computing and finalising (managers), and the scheme editor. kpi.py decides
who sees which result."""

from __future__ import annotations

from decimal import Decimal

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import ngettext, pgettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from pharmacrm.core import audit, downloads, wording
from pharmacrm.core.form_saves import create_once, sent_again
from pharmacrm.core.ids import as_id, is_id
from pharmacrm.core.models import AuditEntry, Team
from pharmacrm.core.ordering import pinyin_sorted
from pharmacrm.customers.forms import new_once_token, once_token
from pharmacrm.customers.views import AlreadyCreated

from . import kpi
from .models import Appraisal, AppraisalScheme

A = AuditEntry.Action


def _require_see(user) -> kpi.Scope:
    return kpi.scope_for(user)  # PermissionDenied: 403


def _require_manage(user) -> None:
    if not kpi.may_manage(user):
        raise PermissionDenied(_("You do not have permission to do this."))


def _period_keys(kind: str, current: str) -> list[str]:
    now = kpi.current_period(kind)
    count = {"month": 18, "quarter": 8, "year": 4}[kind]
    keys = [now.shifted(-i).key for i in range(count)]
    if current and current not in keys:
        keys.append(current)
    return keys


def _selection(request):
    """(scheme or None, period key, error) from the query: the scheme asked for (else the first in use), the period
    asked for (else the latest with results, else the one just closed)."""
    schemes = list(AppraisalScheme.objects.all())
    scheme = None
    wanted = request.GET.get("scheme", "")
    if is_id(wanted):
        scheme = next((s for s in schemes if s.pk == int(wanted)), None)
    scheme = scheme or next((s for s in schemes if s.active), None) or (schemes[0] if schemes else None)
    if scheme is None:
        return None, schemes, "", ""
    raw = request.GET.get("period", "").strip()
    if raw:
        try:
            period = kpi.parse_period(raw)
            if period.kind != scheme.period_kind:
                raise ValidationError({"period": ""})
            return scheme, schemes, period.key, ""
        except ValidationError:
            error = _("This scheme appraises a %(kind)s: give a period of that kind.") % {
                "kind": AppraisalScheme.Kind(scheme.period_kind).label
            }
            return scheme, schemes, kpi.current_period(scheme.period_kind).previous.key, error
    latest = (
        Appraisal.objects.filter(scheme=scheme).order_by("-period").values_list("period", flat=True).first()
    )
    return scheme, schemes, latest or kpi.current_period(scheme.period_kind).previous.key, ""


def _filtered(request, scheme, period_key: str, scope):
    qs = kpi.results_for(request.user, Appraisal.objects.filter(scheme=scheme, period=period_key), scope)
    team = request.GET.get("team", "")
    grade = request.GET.get("grade", "")
    if is_id(team):
        qs = kpi.in_team(qs, int(team))  # everyone in that team, a person in two teams in both
    else:
        team = ""
    if grade in kpi.GRADES or grade == "none":
        qs = qs.filter(grade="" if grade == "none" else grade)
    else:
        grade = ""
    rows = list(qs.select_related("user", "team").prefetch_related("teams"))
    for r in rows:
        r.team_list = pinyin_sorted(r.teams.all())
        r.team_names = [t.shown_name for t in r.team_list]
    rows.sort(key=lambda r: (r.score is None, -(r.score or 0), r.user.display_name or r.user.username))
    return rows, {"team": team, "grade": grade}


def _team_rows(scheme, rows: list[Appraisal], shown: set[int] | None) -> list[dict]:
    """Per team: the average of its members' scores (those with a score), and the grade of that average. A person in
    two teams counts in both, with their one result. `shown`: the teams the reader may see (None: every team)."""
    teams: dict[int, dict] = {}
    for r in rows:
        for team in r.team_list:
            if shown is not None and team.pk not in shown:
                continue
            t = teams.setdefault(team.pk, {"team": team, "scores": [], "members": 0})
            t["members"] += 1
            if r.score is not None:
                t["scores"].append(r.score)
    out = []
    for t in teams.values():
        avg = kpi.half_up(sum(t["scores"]) / len(t["scores"]), "0.01") if t["scores"] else None
        grade = kpi.grade_of(scheme, avg)
        out.append({"team": t["team"], "members": t["members"], "average": avg, "grade": grade,
                    "grade_label": kpi.grade_label(grade)})  # fmt: skip
    out.sort(key=lambda t: (t["average"] is None, -(t["average"] or 0), t["team"].name))
    return out


def _shown_teams(scope, filters: dict) -> set[int] | None:
    """The teams of the per-team table: the one filtered on, else every team for those who see all, else the teams
    the reader leads (not the other teams their members are in)."""
    wanted = {int(filters["team"])} if filters.get("team") else None
    if scope.everything:
        return wanted
    led = set(scope.team_ids or [])
    return led & wanted if wanted is not None else led


def _person(r: Appraisal) -> str:
    return r.user.display_name or r.user.username


@login_required
@require_GET
def appraisal(request):
    """The period's results the user may see, ranked, per person and per team."""
    scope = _require_see(request.user)
    scheme, schemes, period_key, error = _selection(request)
    context = {"scheme": scheme, "schemes": schemes, "period_key": period_key, "error": error,
               "may_manage": kpi.may_manage(request.user), "scope": scope}  # fmt: skip
    if scheme is not None:
        rows, filters = _filtered(request, scheme, period_key, scope)
        for rank, r in enumerate(rows, start=1):
            r.rank, r.grade_label, r.person = rank, kpi.grade_label(r.grade), _person(r)
        status = {r.status for r in rows}
        context.update(
            rows=rows, filters=filters, teams=_team_rows(scheme, rows, _shown_teams(scope, filters))
            if scope.everything or scope.team_ids else [],
            periods=_period_keys(scheme.period_kind, period_key), grades=kpi.GRADES.items(),
            team_choices=pinyin_sorted(Team.objects.all() if scope.everything else
                                       Team.objects.filter(pk__in=scope.team_ids or [])),
            finalised=Appraisal.Status.FINAL in status, drafts=Appraisal.Status.DRAFT in status,
            stamp=kpi.stamp(scheme, period_key), query=urlencode({"scheme": scheme.pk, "period": period_key}),
        )  # fmt: skip
    return render(request, "sales/appraisal.html", context, status=400 if error else 200)


def _back(scheme, period_key: str) -> str:
    return f"{reverse('sales:appraisal')}?{urlencode({'scheme': scheme.pk, 'period': period_key})}"


@login_required
@require_POST
def appraisal_compute(request):
    _require_manage(request.user)
    scheme = get_object_or_404(AppraisalScheme, pk=as_id(request.POST.get("scheme")) or 0)
    raw = request.POST.get("period", "")
    try:
        period = kpi.parse_period(raw)
        n = kpi.compute(scheme, period, user=request.user)
    except ValidationError as e:
        messages.error(request, " ".join(e.messages))
        return redirect(_back(scheme, raw if raw.isascii() else ""))
    messages.success(request, _computed_message(n, period.key))
    return redirect(_back(scheme, period.key))


def _computed_message(n: int, period_key: str) -> str:
    return ngettext("%(n)s result computed for %(period)s.", "%(n)s results computed for %(period)s.", n) % {
        "n": n, "period": period_key
    }


def _finalised_message(n: int, period_key: str) -> str:
    return ngettext("%(n)s result of %(period)s finalised.", "%(n)s results of %(period)s finalised.", n) % {
        "n": n, "period": period_key
    }


def _finalised_by(user, scheme, period_key: str) -> int:
    """How many results `user` finalised when the period has no draft left and its last finalising was theirs: the
    button sent twice (a double click) finds the first one done. 0 otherwise."""
    results = Appraisal.objects.filter(scheme=scheme, period=period_key)
    if not results.exists() or results.exclude(status=Appraisal.Status.FINAL).exists():
        return 0
    last = AuditEntry.objects.filter(action=AuditEntry.Action.SIGN, object_type="sales.appraisal",
                                     object_id=str(scheme.pk)).order_by("-seq").values_list("actor_id", flat=True).first()  # fmt: skip
    return results.filter(finalised_by=user).count() if last == user.pk else 0


@login_required
@require_POST
def appraisal_finalise(request):
    _require_manage(request.user)
    scheme = get_object_or_404(AppraisalScheme, pk=as_id(request.POST.get("scheme")) or 0)
    period_key = request.POST.get("period", "")[:7]
    try:
        n = kpi.finalise(request.user, scheme, period_key, request.POST.get("stamp", ""))
    except (kpi.ConflictError, ValidationError) as e:
        if n := _finalised_by(request.user, scheme, period_key):  # clicked twice: the first click finalised them
            messages.success(request, _finalised_message(n, period_key))
        elif isinstance(e, ValidationError):
            messages.error(request, " ".join(e.messages))
        else:
            messages.error(request, _("The results were recomputed or changed since you opened the page: nothing was "
                                      "finalised. Check them and finalise again."))  # fmt: skip
        return redirect(_back(scheme, period_key))
    messages.success(request, _finalised_message(n, period_key))
    return redirect(_back(scheme, period_key))


def _link(name: str, period_key: str) -> str:
    """The page an indicator's figures come from, at the period where that page takes one."""
    if not name:
        return ""
    if name in ("sales:targets", "servicedesk:performance"):
        return f"{reverse(name)}?{urlencode({'period': period_key})}"
    return reverse(name)


def component_rows(result: Appraisal) -> list[dict]:
    out = []
    for c in result.components:
        indicator = kpi.INDICATORS.get(c["code"])
        if indicator is None:
            continue
        out.append({**c, "label": indicator.label, "unit": indicator.unit, "explained": kpi.explain(c["code"], c.get("facts")),
                    "link": _link(indicator.link, result.period),
                    "shared": Decimal(c["weight"]) != Decimal(c["scheme_weight"])})  # fmt: skip
    return out


@login_required
@require_http_methods(["GET", "POST"])
def appraisal_detail(request, pk: int):
    """One person's result: every indicator's value, points, weight and contribution, and how it was counted."""
    scope = _require_see(request.user)
    result = kpi.results_for(request.user, Appraisal.objects.select_related("user", "team", "scheme",
                                                                            "finalised_by"), scope).filter(pk=pk).first()  # fmt: skip
    if result is None:
        raise Http404
    error, status = "", 200
    if request.method == "POST":
        _require_manage(request.user)
        try:
            raw = request.POST.get("version") or "0"
            version = int(raw) if is_id(raw) else -1  # a garbled version is as stale as an old one
            kpi.comment(request.user, result, request.POST.get("comment", ""), version)
        except kpi.ConflictError:
            error, status = _("Someone else changed this result while you were editing it. Reload and apply your "
                              "changes again."), 409  # fmt: skip
        except ValidationError as e:
            error, status = " ".join(e.messages), 400
        else:
            messages.success(request, _("Comment saved."))
            return redirect("sales:appraisal-detail", pk=pk)
    return render(request, "sales/appraisal_detail.html", {
        "result": result, "components": component_rows(result),
        "team_names": [t.shown_name for t in pinyin_sorted(result.teams.all())], "grade_label": kpi.grade_label(result.grade),
        "person": _person(result), "may_manage": kpi.may_manage(request.user), "error": error,
        "back": _back(result.scheme, result.period),
    }, status=status)  # fmt: skip


@login_required
@require_GET
def appraisal_export(request):
    from openpyxl import Workbook
    from openpyxl.styles import Font

    scope = _require_see(request.user)
    scheme, _schemes, period_key, error = _selection(request)
    if scheme is None or error:
        return appraisal(request)
    rows, _filters = _filtered(request, scheme, period_key, scope)
    book = Workbook()
    sheet = book.active
    sheet.title = period_key
    downloads.append_row(sheet, [_("KPI appraisal"), scheme.name, period_key])
    codes = [i["code"] for i in scheme.indicators]
    head = [
        pgettext("appraisal", "Person"),
        _("Team"),
        _("Score"),
        _("Grade"),
        _("Bonus coefficient"),
        _("Status"),
    ]
    for code in codes:
        label = {"indicator": kpi.INDICATORS[code].label}
        head += [pgettext("appraisal", "%(indicator)s: value") % label, pgettext("appraisal", "%(indicator)s: points") % label,
                 pgettext("appraisal", "%(indicator)s: contribution") % label]  # fmt: skip
    sheet.append(head)
    for cell in sheet[sheet.max_row]:
        cell.font = Font(bold=True)

    def num(v):
        return None if v is None else float(Decimal(v))

    for r in rows:
        line = [_person(r), wording.listing(r.team_names), num(r.score), kpi.grade_label(r.grade),
                num(r.bonus_coefficient), r.get_status_display()]  # fmt: skip
        by_code = {c["code"]: c for c in r.components}
        for code in codes:
            c = by_code.get(code, {})
            line += [num(c.get("value")), num(c.get("points")), num(c.get("contribution"))]
        downloads.append_row(sheet, line)
    sheet.column_dimensions["A"].width = 20
    audit.record(A.EXPORT, ("sales.appraisal", str(scheme.pk), f"{scheme.name} {period_key}"), user=request.user,
                 format="XLSX", period=period_key, rows=len(rows))  # fmt: skip
    return downloads.xlsx(downloads.workbook_bytes(book), _("KPI appraisal"), period_key)


# --- schemes ---------------------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def schemes(request):
    """The schemes (managers; auditors read them); a manager may start from the default scheme."""
    scope = _require_see(request.user)
    if not scope.everything:
        raise PermissionDenied(_("You do not have permission to do this."))
    if request.method == "POST":
        _require_manage(request.user)
        if AppraisalScheme.objects.filter(name=_("Quarterly sales KPI")).exists():
            messages.error(request, _("Another scheme has this name."))
        else:
            scheme = kpi.default_scheme(request.user)
            messages.success(request, _("The default scheme was created."))
            return redirect("sales:appraisal-scheme", pk=scheme.pk)
    rows = list(AppraisalScheme.objects.all())
    for s in rows:
        s.lines = [
            {"label": kpi.INDICATORS[i["code"]].label, **i}
            for i in s.indicators
            if i["code"] in kpi.INDICATORS
        ]
        s.role_labels = [str(kpi.ROLES[r].label) for r in s.roles if r in kpi.ROLES]
    return render(
        request, "sales/appraisal_schemes.html", {"schemes": rows, "may_manage": kpi.may_manage(request.user)}
    )


def _form_data(post) -> dict:
    indicators = []
    for code in kpi.INDICATORS:
        weight = post.get(f"{code}_weight", "").strip()
        if weight in ("", "0"):
            continue
        indicators.append(
            {"code": code, **{w: post.get(f"{code}_{w}", "") for w in ("weight", "target", "floor", "cap")}}
        )
    return {"name": post.get("name", ""), "period_kind": post.get("period_kind", ""), "roles": post.getlist("roles"),
            "indicators": indicators, "excellent": post.get("excellent", ""), "good": post.get("good", ""),
            "passing": post.get("passing", ""), "active": post.get("active") == "on",
            "bonus": {g: post.get(f"bonus_{g}", "") for g in kpi.GRADES}}  # fmt: skip


def _column_labels() -> dict[str, str]:
    """The words the scheme form's columns carry, for each input's label (a screen reader reads it)."""
    return {what: kpi.column_label(what) for what in ("weight", "target", "floor", "cap")}


def _form_rows(values: dict, errors: dict) -> list[dict]:
    used = {i["code"]: i for i in values.get("indicators", [])}
    out = []
    for code, indicator in kpi.INDICATORS.items():
        i = used.get(
            code, {"weight": 0, "target": indicator.target, "floor": indicator.floor, "cap": indicator.cap}
        )
        out.append({"code": code, "label": indicator.label, "unit": indicator.unit,
                    "fields": [{"name": f"{code}_{w}", "what": _column_labels()[w], "value": i.get(w, ""),
                                "error": " ".join(errors.get(f"{code}_{w}", []))} for w in ("weight", "target", "floor", "cap")]})  # fmt: skip
    return out


@login_required
@require_http_methods(["GET", "POST"])
def scheme_edit(request, pk: int | None = None):
    """Create or change a scheme: the period, the roles, each indicator's weight, target, floor and cap, the grade
    thresholds and the bonus coefficients. The weights must add up to 100."""
    _require_manage(request.user)
    scheme = get_object_or_404(AppraisalScheme, pk=pk) if pk else None
    errors: dict = {}
    status = 200
    token = new_once_token() if scheme is None else ""  # a new scheme once per form (its one-time token)
    if request.method == "POST":
        values = _form_data(request.POST)
        try:
            raw = request.POST.get("version") or "0"
            version = (int(raw) if is_id(raw) else -1) or None  # a garbled version is as stale as an old one
            if scheme is None:
                token = once_token(request.POST.get("form_token"))  # shown again with the errors
                saved = create_once(request.user, token, lambda: kpi.save_scheme(request.user, values, None, None))
            else:
                saved = kpi.save_scheme(request.user, values, scheme, version)
        except AlreadyCreated as e:  # sent again (a double click): the scheme the first one created
            return sent_again(request, AppraisalScheme, e.pk, reverse("sales:appraisal-schemes"),
                              page_of=lambda x: reverse("sales:appraisal-scheme", args=[x.pk]))  # fmt: skip
        except kpi.ConflictError:
            errors, status = {"__all__": [_("Someone else changed this scheme while you were editing it. Reload and "
                                            "apply your changes again.")]}, 409  # fmt: skip
        except ValidationError as e:
            errors, status = e.message_dict, 400
        else:
            messages.success(request, _("Scheme saved."))
            return redirect("sales:appraisal-scheme", pk=saved.pk)
    elif scheme is not None:
        values = {f: getattr(scheme, f) for f in kpi.SCHEME_FIELDS}
    else:
        values = {"name": "", "period_kind": "quarter", "roles": ["rep", "kam"], "indicators": kpi.default_indicators(),
                  "excellent": 90, "good": 75, "passing": 60, "bonus": {}, "active": True}  # fmt: skip
    return render(request, "sales/appraisal_scheme_form.html", {
        "scheme": scheme, "values": values, "form_token": token, "errors": errors, "rows": _form_rows(values, errors),
        "kinds": AppraisalScheme.Kind.choices, "roles": [(k, r.label) for k, r in kpi.ROLES.items()],
        "grades": [(g, label, (values.get("bonus") or {}).get(g, ""), " ".join(errors.get(f"bonus_{g}", [])))
                   for g, label in kpi.GRADES.items()],
        "weights_error": " ".join(errors.get("weights", []) + errors.get("indicators", [])),
        "general_error": " ".join(errors.get("__all__", [])),
    }, status=status)  # fmt: skip


urlpatterns = [  # included by urls.py under /sales/
    path("appraisal/", appraisal, name="appraisal"),
    path("appraisal/compute/", appraisal_compute, name="appraisal-compute"),
    path("appraisal/finalise/", appraisal_finalise, name="appraisal-finalise"),
    path("appraisal/export.xlsx", appraisal_export, name="appraisal-export"),
    path("appraisal/<int:pk>/", appraisal_detail, name="appraisal-detail"),
    path("appraisal/schemes/", schemes, name="appraisal-schemes"),
    path("appraisal/schemes/new/", scheme_edit, name="appraisal-scheme-new"),
    path("appraisal/schemes/<int:pk>/", scheme_edit, name="appraisal-scheme"),
]
