"""Customer pages: lists with filters, search, the Customer 360 page, create/edit/delete forms with live
validation, consents and revealing personal data, duplicates and merge, cascading region options."""

from __future__ import annotations

import itertools
import re

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import EmptyResultSet, FieldDoesNotExist, PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Q
from django.forms import ChoiceField, ModelChoiceField
from django.http import Http404, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from pharmacrm.core import access, crypto
from pharmacrm.core.form_saves import deleted_by
from pharmacrm.core.ids import is_id
from pharmacrm.core.models import AuditEntry, Region
from pharmacrm.core.personal import FREE_TEXT_FIELDS, contact_view, free_text, masks_free_text
from pharmacrm.core.roles import Cap
from pharmacrm.core.templatetags.crm import audit_value

from . import normalise, search, services
from .choices import InstitutionType
from .forms import (
    ConsentForm,
    InstitutionFilterForm,
    InstitutionForm,
    PersonFilterForm,
    PersonForm,
    RevealForm,
    SearchFilterForm,
    departments_of,
    person_departments,
    region_children,
)
from .models import Institution, Person

PAGE_SIZE = 50
COUNT_CAP = 10_000  # beyond this a list says "more than 10,000" instead of counting every row
SEARCH_LIST_LIMIT = 3000  # a list search ranks this many matches at most; beyond, the page says "more than"
HISTORY_LIMIT = 50
PEOPLE_ON_360 = 200
CONTACT_FIELDS = ("mobile", "landline", "email")

MATCH_LABELS = {
    "name": gettext_lazy("Name"),
    "pinyin": gettext_lazy("Pinyin"),
    "phone": gettext_lazy("Phone"),
    "email": gettext_lazy("E-mail"),
    "credit_code": gettext_lazy("Credit code"),
    "code": gettext_lazy("Internal code"),
    "keywords": gettext_lazy("Keywords"),
}
DUPLICATE_REASONS = {
    "credit_code": gettext_lazy("Same credit code"),
    "phone": gettext_lazy("Same phone number"),
    "email": gettext_lazy("Same e-mail address"),
    "id_number": gettext_lazy("Same ID card number"),
    "name_city": gettext_lazy("Same name in the same city"),
    "name_institution": gettext_lazy("Same name at the same institution"),
    "name_parent": gettext_lazy("Same department name in the same hospital"),
}
SORTS = {
    "updated": ("-updated_at", "-id"),
    "name": ("name_key", "id"),  # pinyin order
    "code": ("code",),
}


class CappedPaginator(Paginator):
    """A paginator that stops counting at COUNT_CAP rows, so a huge unfiltered list stays fast."""

    capped = False

    @cached_property
    def count(self) -> int:
        if isinstance(self.object_list, BranchIds):
            n = self.object_list.count(COUNT_CAP + 1)
        else:
            n = self.object_list.order_by()[: COUNT_CAP + 1].count()
        if n > COUNT_CAP:
            self.capped = True
            return COUNT_CAP
        return n


class BranchIds:
    """The ids of a scoped list, in order, for a user whose scope is a union of branches (territory,
    owner, team …; see access.scope_branches).

    One OR over the branches defeats every index: the database walks the whole table in sort order and
    tests each row. Instead each branch is its own query, ordered and cut at the rows the page needs
    (an index walk on e.g. (province, updated_at, id) that stops early), and the database merges the
    branches with UNION, which also drops rows that several branches hold."""

    def __init__(self, base, branches: list[Q], order: tuple[str, ...]):
        self.base, self.branches, self.order = base, branches, order
        self.columns = [o.lstrip("-") for o in order]
        if "id" not in self.columns:
            self.columns.append("id")

    def _union(self, limit: int) -> tuple[str, list]:
        parts, params = [], []
        for n, branch in enumerate(self.branches):
            qs = self.base.filter(branch).order_by(*self.order).values_list(*self.columns)[:limit]
            try:
                sql, p = qs.query.sql_with_params()
            except EmptyResultSet:  # e.g. a filter that contradicts this branch: it adds nothing
                continue
            parts.append(f"SELECT * FROM ({sql}) b{n}")
            params.extend(p)
        return " UNION ".join(parts), params  # "" when every branch is empty

    def _fetch(self, sql: str, params: list) -> list:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    def count(self, cap: int = COUNT_CAP + 1) -> int:
        union, params = self._union(cap)
        if not union:
            return 0
        return self._fetch(f"SELECT COUNT(*) FROM ({union}) u", params)[0][0]

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, bounds: slice) -> list[int]:
        start, stop = bounds.start or 0, bounds.stop
        union, params = self._union(stop)
        if not union:
            return []
        qn = connection.ops.quote_name
        order = ", ".join(f"{qn(o.lstrip('-'))} {'DESC' if o.startswith('-') else 'ASC'}" for o in self.order)
        sql = f"SELECT {qn('id')} FROM ({union}) u ORDER BY {order} LIMIT {stop - start} OFFSET {start}"
        return [row[0] for row in self._fetch(sql, params)]


def _posted(request):
    """The submitted data of a POST (even an empty one), None for other methods: binds forms correctly."""
    return request.POST if request.method == "POST" else None


def page_of(obj) -> str:
    """The address of a customer's page."""
    if isinstance(obj, Institution):
        return reverse("customers:institution", args=[obj.pk])
    return reverse("customers:person", args=[obj.pk])


def _page_number(request) -> str:
    return request.GET.get("page") or "1"


# What the history tab says instead of the name of a customer the reader may not see (an institution a person
# moved from, in another territory; a record merged in from there)
UNSEEN_CUSTOMER = {
    "department": gettext_lazy("another department"),
    Institution: gettext_lazy("another institution"),
    Person: gettext_lazy("another person"),
}


HISTORY_LABELS = {"not_a_duplicate_of": gettext_lazy("Not the same customer as")}  # entries that name no field


def _history(user, model_label: str, pk: int, masked: bool = False) -> list[AuditEntry]:
    """A record's audit entries for the history tab, each with `rows` (field label, before, after) as people
    read them — choice labels, and names instead of ids for foreign keys (one query per model for the whole
    page) — and, for a merge, `merged` (the record that was merged in). A customer outside the user's scope is
    not named (nor linked): a neutral label stands for it, as the rest of the product hides it. `masked`: contact
    details typed into the free text (needs, notes) are masked in its before and after values."""
    entries = list(
        AuditEntry.objects.filter(object_type=model_label, object_id=str(pk)).order_by("-seq")[:HISTORY_LIMIT]
    )
    model = Institution if model_label == "customers.institution" else Person
    wanted: dict = {}  # related model → ids to name
    for e in entries:
        for name, pair in (e.changes or {}).items():
            field = _history_field(model, name)
            if field is not None and field.many_to_one and isinstance(pair, list | tuple):
                wanted.setdefault(field.related_model, set()).update(v for v in pair if v not in (None, ""))
        if e.action == AuditEntry.Action.MERGE and (e.extra or {}).get("merged"):
            wanted.setdefault(model, set()).add(e.extra["merged"])
    names = {}
    for related, ids in wanted.items():
        qs = related._default_manager.filter(pk__in=[i for i in ids if isinstance(i, int | str) and is_id(i)])
        found = qs.in_bulk()
        names[related] = {str(k): v for k, v in found.items()}
        if related in (Institution, Person) and not access.can(user, Cap.ALL_CUSTOMERS):
            scoped = access.institutions_for(user, qs) if related is Institution else access.people_for(user, qs)
            seen = {str(k) for k in scoped.values_list("pk", flat=True)}
            for key in set(names[related]) - seen:
                names[related][key] = None  # exists, but not for this reader
    for e in entries:
        e.rows = []
        for name, pair in (e.changes or {}).items():
            field = _history_field(model, name)
            label = capfirst(str(field.verbose_name)) if field is not None else str(HISTORY_LABELS.get(name, name))
            if not isinstance(pair, list | tuple) or len(pair) != 2:
                pair = [None, pair]
            before, after = (_history_value(field, v, names) for v in pair)
            if name in FREE_TEXT_FIELDS:
                before, after = free_text(before, masked), free_text(after, masked)
            if before == after == "—":
                continue  # a field left empty at creation: "Birthday — → —" says nothing
            e.rows.append((label, before, after))
        e.merged = None
        if e.action == AuditEntry.Action.MERGE and (e.extra or {}).get("merged"):
            key = str(e.extra["merged"])
            other = names.get(model, {}).get(key)
            unseen = other is None and key in names.get(model, {})
            e.merged = {"name": str(UNSEEN_CUSTOMER[model]) if unseen else (other.name if other else ""),
                        "code": e.extra.get("merged_code") or "", "url": page_of(other) if other else ""}  # fmt: skip
    return entries


def _history_field(model, name: str):
    try:
        return model._meta.get_field(name)
    except FieldDoesNotExist:  # entries may name fields that no longer exist, or "tags"
        return None


def _history_value(field, value, names: dict) -> str:
    if value is None or value == "" or value == []:
        return "—"
    if field is not None and field.many_to_one:
        known = names.get(field.related_model, {})
        obj = known.get(str(value))
        if obj is None and str(value) in known:  # a customer the reader may not see
            return str(UNSEEN_CUSTOMER.get(field.name) or UNSEEN_CUSTOMER[field.related_model])
        return str(obj) if obj is not None else f"#{value}"
    if field is not None and field.choices:
        return str(dict(field.flatchoices).get(value, value))
    return audit_value(value)


def _visible(user, model, pk):
    access.require(user, Cap.VIEW_CUSTOMERS)
    return access.get_visible_or_404(user, model, pk)


def _changeable(user, model, pk):
    """The object if the user may change it: 403 without the capability, 404 outside their scope."""
    access.require(user, Cap.CHANGE_CUSTOMERS)
    obj = access.get_visible_or_404(user, model, pk)
    if not access.can_change(user, obj):
        raise PermissionDenied(_("You may not change this customer."))
    _refuse_merged(user, obj)
    return obj


def _refuse_merged(user, obj) -> None:
    """A merged-away record is history: 403, with a link to the record it lives on in when the user may see it."""
    if obj.merged_into_id:
        denied = PermissionDenied(_("This record was merged into another one and can no longer be changed."))
        survivor = _survivor(user, obj)
        if survivor is not None:  # the 403 page links to it
            denied.link = (page_of(survivor), _("Open %(name)s, the record it was merged into") % {"name": survivor})
        raise denied


def _survivor(user, obj):
    """The record a merged one lives on in (the last one if that was merged again), if the user may see it."""
    seen = set()
    while obj is not None and obj.merged_into_id and obj.pk not in seen:
        seen.add(obj.pk)
        obj = type(obj).objects.filter(pk=obj.merged_into_id).first()
    if obj is None or obj.merged_into_id or not access.can_see(user, obj):
        return None
    return obj


class SearchPaginator(Paginator):
    """Pages of ranked search matches. `more`: over SEARCH_LIST_LIMIT match and only the best are listed;
    `partial`: the search read only part of a very common term's index, so more may match."""

    more = partial = False


def _list_page(request, qs, form, kind: str, base=None, restrict: Q | None = None):
    """(page, objects on it, sort) for a customer list: ranked search hits when there is a query.

    `qs` is the scoped, filtered list; `base` the same list before the scope, which lets a scoped user's
    list be paged branch by branch (BranchIds); `restrict` the list's own filters beyond search.Filters,
    which the search applies before ranking, so that every match of the list is counted and paged."""
    data = form.cleaned()
    query = (data.get("q") or "").strip()
    if query:
        ids, complete = search.ranked_ids(
            request.user, query, kind, form.search_filters(), limit=SEARCH_LIST_LIMIT + 1, restrict=restrict
        )
        paginator = SearchPaginator(ids[:SEARCH_LIST_LIMIT], PAGE_SIZE)
        paginator.more = len(ids) > SEARCH_LIST_LIMIT
        paginator.partial = not complete and not paginator.more
        page = paginator.get_page(_page_number(request))
        objs = qs.in_bulk(list(page.object_list))
        return page, [objs[i] for i in page.object_list if i in objs], "rank"
    sort = request.GET.get("sort") if request.GET.get("sort") in SORTS else "updated"
    # Page over ids alone (an index scan, no joins, no wide rows), then load the 50 rows shown.
    branches = access.scope_branches(request.user, kind) if base is not None else None
    if branches is not None and len(branches) > 1:
        ids_qs = BranchIds(base.select_related(None), branches, SORTS[sort])
    else:
        ids_qs = qs.select_related(None).order_by(*SORTS[sort]).values_list("id", flat=True)
    page = CappedPaginator(ids_qs, PAGE_SIZE).get_page(_page_number(request))
    ids = list(page.object_list)
    objs = qs.order_by().in_bulk(ids)
    return page, [objs[i] for i in ids if i in objs], sort


# --- lists -------------------------------------------------------------------------------------


@login_required
@require_GET
def institution_list(request):
    user = request.user
    access.require(user, Cap.VIEW_CUSTOMERS)
    form = InstitutionFilterForm(request.GET or None)
    data, filters = form.cleaned(), form.search_filters()
    base = Institution.objects.active()
    if filters.any:
        base = base.filter(filters.institution_q())
    if not filters.type and not data.get("q"):
        # departments are listed on their hospital's page; the type filter lists them on their own
        base = base.exclude(kind=InstitutionType.DEPARTMENT)
    restrict = services.tag_q([data["tag"]]) if data.get("tag") else None
    if restrict is not None:
        base = base.filter(restrict)
    qs = access.institutions_for(user, base).select_related("region", "owner", "parent")
    page, rows, sort = _list_page(request, qs, form, "institution", base, restrict)
    context = {"form": form, "page_obj": page, "rows": rows, "sort": sort, "filtered": bool(request.GET)}
    return render(request, "customers/institution_list.html", context)


@login_required
@require_GET
def person_list(request):
    user = request.user
    access.require(user, Cap.VIEW_CUSTOMERS)
    form = PersonFilterForm(request.GET or None)
    data, filters = form.cleaned(), form.search_filters()
    base = Person.objects.active()
    if filters.any:
        base = base.filter(filters.person_q())
    # the list's own filters; a search applies them before ranking
    restrict = Q()
    if data.get("role"):
        restrict &= Q(role=data["role"])
    if data.get("institution"):
        restrict &= Q(institution_id=data["institution"]) | Q(department_id=data["institution"])
    if data.get("tag"):
        restrict &= services.tag_q([data["tag"]])
    restrict = restrict or None
    if restrict is not None:
        base = base.filter(restrict)
    # lists show masked phones only: the other personal columns are not even decrypted
    qs = access.people_for(user, base).select_related("institution", "department", "owner").defer(
        "landline", "email", "birthday", "home_address", "id_number"
    )
    page, rows, sort = _list_page(request, qs, form, "person", base, restrict)
    institution = None
    if data.get("institution"):
        institution = access.institutions_for(user).filter(pk=data["institution"]).first()
    context = {
        "form": form, "page_obj": page, "rows": rows, "sort": sort, "filtered": bool(request.GET),
        "institution": institution,
    }  # fmt: skip
    return render(request, "customers/person_list.html", context)


# --- search ------------------------------------------------------------------------------------


@login_required
@require_GET
def search_view(request):
    """The full results page; `as=suggest` gives the top-bar suggestions, `as=options` picker <option>s."""
    user = request.user
    access.require(user, Cap.VIEW_CUSTOMERS)
    form = SearchFilterForm(request.GET or None)
    data = form.cleaned()
    query = (data.get("q") or "").strip()
    mode = request.GET.get("as", "")
    kind = data.get("kind") or ""
    if mode == "options":
        return _picker_options(request, query)
    kinds = (kind,) if kind else ("institution", "person")
    limit = 8 if mode == "suggest" else 100
    hits = search.search(user, query, form.search_filters(), limit=limit, kinds=kinds) if query else []
    for hit in hits:
        hit.match_label = MATCH_LABELS.get(hit.match, hit.match)
    context = {"form": form, "query": query, "hits": hits, "linked": _linked_institutions(user, hits)}
    if mode == "suggest":
        return render(request, "partials/search_suggestions.html", context)
    return render(request, "customers/search.html", context)


def _linked_institutions(user, hits) -> set[int]:
    """The hospitals and institutions named beside the hits that the user may open (the others are named without
    a link: a rep's own doctor at a hospital outside the territory)."""
    ids = set()
    for hit in hits:
        obj = hit.obj
        inst = obj if hit.kind == "institution" else obj.institution
        if hit.kind == "institution":
            ids.add(obj.parent_id)
        elif inst is not None:
            ids.update((inst.pk, inst.parent_id))
    ids.discard(None)
    return set(access.institutions_for(user).filter(pk__in=ids).values_list("pk", flat=True)) if ids else set()


def _picker_options(request, query: str):
    """<option>s of institutions matching `q` for the institution pickers of the forms."""
    wanted_type = request.GET.get("type", "")
    filters = search.Filters(type=wanted_type if wanted_type in InstitutionType.values else "")
    hits = search.search(request.user, query, filters, limit=50, kinds=("institution",)) if query else []
    options = [h.obj for h in hits if h.obj.kind != InstitutionType.DEPARTMENT or wanted_type == "department"]
    return render(request, "partials/institution_options.html", {"options": options, "query": query})


@login_required
@require_GET
def region_options(request):
    """<option>s of the regions below the chosen one, for the cascading province → city → district selects."""
    access.require(request.user, Cap.VIEW_CUSTOMERS)
    code = ""
    for key in ("parent", "province", "city"):
        value = request.GET.get(key, "")
        if value:
            code = value
            break
    if code and not re.fullmatch(r"\d{6}", code):
        raise Http404(_("No such region."))
    reset = request.GET.get("reset", "")
    context = {
        "options": region_children(code) if code else [],
        "blank": _("Any") if request.GET.get("blank") == "any" else "—",
        "reset": reset if re.fullmatch(r"[A-Za-z0-9_-]{1,40}", reset) else "",
    }
    return render(request, "partials/region_options.html", context)


# --- Customer 360 ------------------------------------------------------------------------------


def _parent_chain(obj: Institution) -> list[Institution]:
    return list(reversed(list(itertools.islice(obj.lineage(), 1, 11))))  # the ten nearest, the farthest first


def _department_tree(user, obj: Institution) -> list[tuple[Institution, list[Institution]]]:
    """Departments below an institution, two levels deep, as [(department, [sub-departments])]."""
    qs = access.institutions_for(user, Institution.objects.active())
    children = list(qs.filter(parent=obj).order_by("name_key", "id"))
    grandchildren: dict[int, list[Institution]] = {}
    if children:
        for g in qs.filter(parent__in=[c.pk for c in children]).order_by("name_key", "id"):
            grandchildren.setdefault(g.parent_id, []).append(g)
    return [(c, grandchildren.get(c.pk, [])) for c in children]


def _visible_duplicates(user, obj):
    found = services.duplicates_of(obj)
    if not found:
        return []
    model = type(obj)
    scoped = access.institutions_for(user) if model is Institution else access.people_for(user)
    visible = set(scoped.filter(pk__in=[o.pk for o, _reason in found]).values_list("pk", flat=True))
    return [(o, DUPLICATE_REASONS.get(reason, reason)) for o, reason in found if o.pk in visible]


@login_required
@require_GET
def institution_detail(request, pk: int):
    user = request.user
    obj = _visible(user, Institution, pk)
    obj = Institution.objects.select_related("region", "owner", "team", "parent", "merged_into").get(
        pk=obj.pk
    )
    people_qs = access.people_for(
        user, Person.objects.active().filter(Q(institution=obj) | Q(department=obj))
    ).select_related("department")
    people = list(people_qs.order_by("name_key", "id")[: PEOPLE_ON_360 + 1])
    more_people = len(people) > PEOPLE_ON_360
    people = people[:PEOPLE_ON_360]
    contacts = contact_view(user, people, fields=CONTACT_FIELDS, purpose="institution page")
    for p in people:
        p.shown = contacts[p.pk]
    chain = _parent_chain(obj)
    masked = masks_free_text(user)
    context = {
        "obj": obj,
        "texts": {f: free_text(getattr(obj, f), masked) for f in FREE_TEXT_FIELDS},
        "chain": chain,
        # the hospital above a department the reader sees (their own, outside the territory) is named, but linked
        # only when the reader may open it: its link answered "Not found"
        "chain_linked": set(access.institutions_for(user).filter(pk__in=[n.pk for n in chain])
                            .values_list("pk", flat=True)) if chain else set(),  # fmt: skip
        "departments": _department_tree(user, obj),
        "people": people,
        "more_people": more_people,
        "duplicates": _visible_duplicates(user, obj) if not obj.merged_into_id else [],
        "history": _history(user, "customers.institution", obj.pk, masked=masked),
        "tags": list(obj.tags.all()),
        "may_change": access.can_change(user, obj) and not obj.merged_into_id,
        "tickets": _customer_tickets(user, institution=obj),
        "survivor": _survivor(user, obj) if obj.merged_into_id else None,
    }
    return render(request, "customers/institution_detail.html", context)


def _customer_tickets(user, **customer) -> list:
    """The customer's recent service tickets the user may see (the 360 page's tickets section)."""
    from pharmacrm.servicedesk.views import customer_tickets  # the service desk builds on customers

    return customer_tickets(user, **customer)


def _person_context(
    request, person: Person, *, revealed: dict | None = None, reveal_form=None, consent_form=None
):
    user = request.user
    mode = access.personal_data_mode(user, person)
    if revealed is not None:
        contacts = dict(revealed)
    else:
        contacts = dict(contact_view(user, [person], purpose="person page", texts=FREE_TEXT_FIELDS)[person.pk])
    contacts["masked"] = contacts.pop("_masked")
    texts = contacts.pop("_texts")  # needs and notes, contact details typed in them masked as the fields are
    consents = list(person.consents.select_related("recorded_by"))
    masked = masks_free_text(user)  # a consent's evidence (短信回复 139…): contact details in it masked, as in notes
    for c in consents:
        c.evidence_shown = free_text(c.evidence, masked)
    # the institution and department a person works at are named on their page, but linked only for a reader who
    # may open them (a rep who owns a doctor at a hospital outside the territory got "Not found")
    places = [i for i in (person.institution_id, person.department_id) if i]
    linked = set(access.institutions_for(user).filter(pk__in=places).values_list("pk", flat=True)) if places else set()
    may_consent = access.can(user, Cap.MANAGE_CONSENTS) and not person.merged_into_id
    return {
        "obj": person,
        "mode": mode,
        "contacts": contacts,
        "texts": texts,
        "revealed": revealed is not None,
        "reveal_form": reveal_form or (reveal_form_for() if mode == "reveal" and revealed is None else None),
        "consents": consents,
        "current_consents": services.current_consents(person),
        "consent_form": consent_form or (ConsentForm() if may_consent else None),
        "duplicates": _visible_duplicates(user, person) if not person.merged_into_id else [],
        "history": _history(user, "customers.person", person.pk, masked=contacts["masked"]),
        "tags": list(person.tags.all()),
        "may_change": access.can_change(user, person) and not person.merged_into_id,
        "tickets": _customer_tickets(user, person=person),
        "institution_linked": person.institution_id in linked,
        "department_linked": person.department_id in linked,
        # the record it lives on in (the last one, after merges of merges), if the reader may see it
        "survivor": _survivor(user, person) if person.merged_into_id else None,
    }


def _load_person(user, pk: int) -> Person:
    person = _visible(user, Person, pk)
    return Person.objects.select_related("institution", "department", "owner", "team", "merged_into").get(
        pk=person.pk
    )


@login_required
@require_GET
def person_detail(request, pk: int):
    person = _load_person(request.user, pk)
    return render(request, "customers/person_detail.html", _person_context(request, person))


REVEAL_REASON_MAX = 500


def reveal_reason_error(reason: str) -> str:
    """Why a reason to reveal a person's contact data is not acceptable, "" when it is. The one rule for the
    reveal page and the API's ?reveal_reason=: at least 2 characters after trimming, not only digits and
    punctuation (回访 will do, "x" or "..." will not), at most REVEAL_REASON_MAX."""
    import unicodedata

    reason = (reason or "").strip()
    if len(reason) > REVEAL_REASON_MAX:
        return _("Give a reason of at most %(max)d characters.") % {"max": REVEAL_REASON_MAX}
    if len(reason) < 2 or not any(unicodedata.category(c).startswith("L") for c in reason):
        return _("Give a reason of at least 2 characters, e.g. 回访.")
    return ""


def validate_reveal_reason(reason: str) -> None:
    error = reveal_reason_error(reason)
    if error:
        raise ValidationError(error, code="reveal_reason")


def reveal_form_for(data=None) -> RevealForm:
    """The reveal form, its reason checked by reveal_reason_error (the rule the API applies too) rather than
    by a bare minimum length."""
    from django.core.validators import MaxLengthValidator, MinLengthValidator

    form = RevealForm(data)
    field = form.fields["reason"]
    field.min_length = field.max_length = None
    field.validators = [
        v for v in field.validators if not isinstance(v, MinLengthValidator | MaxLengthValidator)
    ] + [validate_reveal_reason]
    field.widget.attrs.pop("minlength", None)
    return form


@login_required
def person_reveal(request, pk: int):
    """Show a person's contact details in clear after the user states why (audited by contact_view)."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    user = request.user
    access.require(user, Cap.REVEAL_PERSONAL_DATA)
    person = _load_person(user, pk)
    form = reveal_form_for(request.POST)
    if not form.is_valid():
        return render(
            request, "customers/person_detail.html", _person_context(request, person, reveal_form=form)
        )
    shown = contact_view(
        user, [person], reveal_reason=form.cleaned_data["reason"], purpose="reveal", texts=FREE_TEXT_FIELDS
    )[person.pk]
    return render(request, "customers/person_detail.html", _person_context(request, person, revealed=shown))


@login_required
@require_POST
def consent_create(request, pk: int):
    user = request.user
    access.require(user, Cap.MANAGE_CONSENTS)
    person = _load_person(user, pk)
    form = ConsentForm(request.POST)
    sent_again = _("This form was already sent: the consent was recorded then, and not a second time.")
    if _created_with(user, request.POST.get("form_token", "")):
        messages.info(request, sent_again)
        return redirect("customers:person", pk=person.pk)
    if form.is_valid():
        try:
            _create_once(user, form.cleaned_data.get("form_token"),
                         lambda: services.record_consent(user, person, form.cleaned_data))  # fmt: skip
        except AlreadyCreated:
            messages.info(request, sent_again)
            return redirect("customers:person", pk=person.pk)
        except ValidationError as e:
            form.add_service_errors(e)
        else:
            messages.success(request, _("The consent was recorded."))
            return redirect("customers:person", pk=person.pk)
    context = _person_context(request, person, consent_form=form)
    return render(request, "customers/person_detail.html", context, status=400)


# --- create / edit -----------------------------------------------------------------------------


def _live_validation(request, form_class, instance):
    """The error fragment for one field as the user types (htmx): the same rules the service applies."""
    name = request.POST.get("_validate", "")
    if name not in form_class.LIVE_FIELDS:
        raise Http404(_("This field is not checked while typing."))
    value = (request.POST.get(name) or "").strip()
    errors, notes = [], []
    if value:
        cleaner = services.clean_institution if form_class is InstitutionForm else services.clean_person
        try:
            cleaner({name: value}, instance=instance)
        except ValidationError as e:
            errors = e.message_dict.get(name, [])
        if not errors:
            notes = _existing_notes(request.user, name, value, instance, kind=request.POST.get("kind", ""))
            if name == "credit_code" and notes:
                errors, notes = notes, []
    return render(request, "partials/field_errors.html", {"name": name, "errors": errors, "notes": notes})


SHARED_LINE_READ = 1000  # records read that share a phone line, to tell the ones on the same extension


def _existing_notes(user, name: str, value: str, instance, kind: str = "") -> list[str]:
    """Warn while typing that another record already uses this identifier. Phones and e-mails are looked
    up among the records the user may see only, so the check cannot be used to learn whether a number
    exists elsewhere; a credit code is unique, so saving would tell anyway. A phone is noted by the duplicate rule
    (services.duplicates_of): the same line with the same extension, and for institutions the same kind of line —
    a department's doctors each on their own extension, and a hospital's departments on its switchboard, are no
    duplicates of each other (`kind`: the institution type chosen on the form)."""
    if name == "credit_code":
        qs = Institution.objects.filter(credit_code=normalise.credit_code(value))
        message = _("Another institution already has this credit code.")
    elif name == "phone":
        sharing = Institution.objects.filter(phone_norm=normalise.phone(value)).only("id", "phone", "kind")
        line = services.phone_line(value, kind or (instance.kind if instance is not None else ""))
        same = [i.pk for i in sharing[:SHARED_LINE_READ] if services.phone_line(i.phone, i.kind) == line]
        qs = Institution.objects.filter(pk__in=same)
        message = _("Another institution already has this phone number: check for a duplicate.")
    elif name in ("mobile", "landline"):
        bidx = crypto.blind_index(normalise.phone(value), "phone")
        sharing = Person.objects.filter(Q(mobile_bidx=bidx) | Q(landline_bidx=bidx)).only("id", "mobile", "landline")
        key = normalise.phone_key(value)
        same = [p.pk for p in sharing[:SHARED_LINE_READ]
                if key in (normalise.phone_key(p.mobile), normalise.phone_key(p.landline))]  # fmt: skip
        qs = Person.objects.filter(pk__in=same)
        message = _("Another person already has this phone number: check for a duplicate.")
    elif name == "email":
        qs = Person.objects.filter(email_bidx=crypto.blind_index(normalise.email(value), "email"))
        message = _("Another person already has this e-mail address: check for a duplicate.")
    elif name == "id_number":  # checked while typing like the others, and said nothing when it was taken
        qs = Person.objects.filter(id_number_bidx=crypto.blind_index(normalise.credit_code(value), "id_number"))
        message = _("Another person already has this ID card number: check for a duplicate.")
    else:
        return []
    if name != "credit_code":
        # a record merged away with it names the customer it was merged into, as the search does
        qs = qs.model.objects.active().filter(Q(pk__in=qs.filter(merged_into__isnull=True).values("pk"))
                                              | Q(pk__in=search.survivors(qs, 100)))  # fmt: skip
        qs = access.institutions_for(user, qs) if qs.model is Institution else access.people_for(user, qs)
    if instance is not None:
        qs = qs.exclude(pk=instance.pk)
    return [message] if qs.exists() else []


def _department_options(request, instance=None):
    """The department select's options for the institution chosen: the departments the person's form takes there
    (all of a hospital the user sees; of another one, the user's own department)."""
    inst = request.GET.get("institution", "")
    options = departments_of(inst).filter(pk__in=person_departments(request.user, instance).values("pk"))
    return render(request, "partials/institution_options.html", {"options": options})


def _form_view(request, *, form_class, instance, save, template: str, context: dict, initial=None):
    """Create or edit: live validation, service errors onto fields, and conflicts that keep the input."""
    if request.htmx and request.method == "POST" and "_validate" in request.POST:
        return _live_validation(request, form_class, instance)
    if request.htmx and request.method == "GET" and request.GET.get("_options") == "department":
        return _department_options(request, instance if isinstance(instance, Person) else None)
    user = request.user
    kwargs = {"initial": initial} if initial and request.method == "GET" else {}
    form = form_class(_posted(request), user=user, instance=instance, **kwargs)
    conflict = None
    if request.method == "POST" and form.is_valid():
        try:
            obj = save(form)
        except ValidationError as e:
            form.add_service_errors(e)
        except services.ConflictError as e:
            form, conflict = _conflict_form(request, form_class, instance, e)
        else:
            if not access.can_see(user, obj):
                # handed over to a colleague, or moved out of the user's territory: its page would answer 404
                messages.success(request, _(
                    "Saved. %(name)s is no longer among the customers you may see, so you are back at the list."
                ) % {"name": obj.name})
                return redirect("customers:institutions" if isinstance(obj, Institution) else "customers:people")
            messages.success(request, _("Saved."))
            return redirect(page_of(obj))
    if request.method == "GET" and instance is not None and isinstance(instance, Person) and not form.blind:
        # the edit form shows personal data in clear: that is a read, and it is audited
        contact_view(user, [instance], purpose="edit form")
    context = {**context, "form": form, "obj": instance, "conflict": conflict}
    return render(request, template, context, status=409 if conflict else 200)


def _conflict_form(request, form_class, instance, error: services.ConflictError):
    """Rebuild the form with the user's input, the current version, and what the other person changed: each
    value as the form offers it (a choice's label, a customer's or user's name, not its code or id), and the
    personal values the reader sees in clear read through contact_view, so that the read is audited like the
    edit form's."""
    current = type(instance).objects.get(pk=instance.pk)
    data = request.POST.copy()
    data["version"] = str(current.version)
    form = form_class(data, user=request.user, instance=current)
    form.is_valid()
    form.add_error(None, str(error))
    changed, personal = [], []
    for name, value in form.initial.items():
        if name == "version" or name not in form.fields:
            continue
        mine = request.POST.get(name, "")
        theirs = "" if value is None else str(value)
        if form_class is PersonForm and name in Person.PERSONAL_FIELDS:
            if form.blind:
                continue
            personal.append(name)
        if mine.strip() != theirs.strip():
            field = form.fields[name]
            changed.append([name, field.label, _conflict_value(field, theirs) or "—", _conflict_value(field, mine) or "—"])
    if form_class is InstitutionForm:
        chosen = ""
        for level in ("province", "city", "district"):
            chosen = request.POST.get(level, "") or chosen
        if chosen != (current.region_id or ""):
            mine = Region.objects.filter(code=chosen).first() if re.fullmatch(r"\d{6}", chosen) else None
            changed.append(["region", capfirst(str(Institution._meta.get_field("region").verbose_name)),
                            str(current.region or "—"), str(mine or "—")])  # fmt: skip
    shown = [row[0] for row in changed if row[0] in personal]
    if shown:  # the values saved now, in clear: a read of personal data, in the audit trail
        clear = contact_view(request.user, [current], fields=shown, purpose="edit form")[current.pk]
        for row in changed:
            if row[0] in shown:
                row[2] = clear[row[0]] or "—"
    return form, [tuple(row[1:]) for row in changed]


def _conflict_value(field, value: str) -> str:
    """A value of the conflict table as the form shows it: a choice's label, a record's name."""
    if not value.strip():
        return ""
    if isinstance(field, ModelChoiceField):
        found = field.queryset.filter(pk=value).first() if value.isdecimal() else None
        if found is None:  # not among what this reader may choose: named neutrally, as the history tab does
            model = field.queryset.model
            return str(UNSEEN_CUSTOMER[model]) if model in UNSEEN_CUSTOMER else f"#{value}"
        return field.label_from_instance(found)
    if isinstance(field, ChoiceField):
        return str(dict(field.choices).get(value, value))
    return value


def _visible_institution(user, pk: str) -> Institution | None:
    return access.institutions_for(user).filter(pk=pk).first() if pk.isdecimal() else None


class AlreadyCreated(Exception):
    """This create form (its one-time token) was acted on before: `pk` is what it created then."""

    def __init__(self, pk: int | None):
        super().__init__(pk)
        self.pk = pk


def _once_key(user, token) -> str | None:
    """The name under which a user's one-time form token is claimed (a core Counter row, unique by name)."""
    import hashlib

    from .forms import once_token

    token = once_token(token)
    if not token:
        return None
    day = token[:8] if token[:8].isdecimal() else "00000000"  # the day the form was made (forms.new_once_token)
    return f"{ONCE_PREFIX}{day}:" + hashlib.sha256(f"{user.pk}:{token}".encode()).hexdigest()[:44]


ONCE_PREFIX = "form-once:"


def forget_form_claims(today=None) -> int:
    """Delete the claims of create forms made more than forms.ONCE_DAYS days ago (the daily worker), and
    those of the older, undated form; returns how many. A form sent again after that creates a new record."""
    import datetime as dt

    from django.utils import timezone

    from pharmacrm.core.models import Counter

    from .forms import ONCE_DAYS

    cutoff = (today or timezone.localdate()) - dt.timedelta(days=ONCE_DAYS)
    claims = Counter.objects.filter(name__startswith=ONCE_PREFIX)
    dated = r"^form-once:[0-9]{8}:"
    old = claims.filter(name__regex=dated, name__lt=f"{ONCE_PREFIX}{cutoff:%Y%m%d}:").delete()[0]
    return old + claims.exclude(name__regex=dated).delete()[0]


def _created_with(user, token) -> int | None:
    """The id created with this token before, if it was."""
    from pharmacrm.core.models import Counter

    key = _once_key(user, token)
    return Counter.objects.filter(name=key).values_list("value", flat=True).first() if key else None


def _create_once(user, token, create):
    """create() once per one-time form token. The token is claimed in the transaction that creates: a second
    request with it — sent in parallel — waits for the first (the claim's row is unique) and then raises
    AlreadyCreated with what the first created; when create() fails, the claim is rolled back with it, so the
    corrected form can be sent again. Without a token (an old page, a script) create() runs unguarded."""
    from django.db import IntegrityError, transaction

    from pharmacrm.core.models import Counter

    key = _once_key(user, token)
    if key is None:
        return create()
    with transaction.atomic():
        try:
            with transaction.atomic():
                Counter.objects.create(name=key, value=0)
        except IntegrityError:
            raise AlreadyCreated(_created_with(user, token)) from None
        obj = create()
        Counter.objects.filter(name=key).update(value=obj.pk)
    return obj


def _sent_again(request, model, pk: int | None, fallback: str):
    """The answer to a create form sent again: the record the first one created, not a second one."""
    obj = model.objects.filter(pk=pk).first() if pk else None
    messages.info(request, _("This form was already sent: the record was created then, and not a second time."))
    return redirect(page_of(obj) if obj is not None else fallback)


def _create_view(request, *, form_class, save, template: str, initial=None):
    """_form_view for a new record, acted on once per one-time form token (see _create_once)."""
    model = Institution if form_class is InstitutionForm else Person
    fallback = reverse("customers:institutions" if model is Institution else "customers:people")
    if request.method == "POST" and "_validate" not in request.POST:
        token = request.POST.get("form_token", "")
        done = _created_with(request.user, token)
        if done:
            return _sent_again(request, model, done, fallback)
    try:
        return _form_view(
            request, form_class=form_class, instance=None, template=template, context={}, initial=initial,
            save=lambda form: _create_once(request.user, form.cleaned_data.get("form_token"), lambda: save(form)),
        )  # fmt: skip
    except AlreadyCreated as e:
        return _sent_again(request, model, e.pk, fallback)


@login_required
def institution_create(request):
    access.require(request.user, Cap.CHANGE_CUSTOMERS)
    initial = None
    parent = _visible_institution(request.user, request.GET.get("parent", ""))
    if parent is not None:  # "add a department" from a hospital's page
        initial = {"parent": parent.pk, "kind": InstitutionType.DEPARTMENT, "region": parent.region}
    return _create_view(
        request, form_class=InstitutionForm,
        save=lambda form: services.create_institution(request.user, form.service_data),
        template="customers/institution_form.html", initial=initial,
    )  # fmt: skip


@login_required
def institution_edit(request, pk: int):
    obj = _changeable(request.user, Institution, pk)
    return _form_view(
        request, form_class=InstitutionForm, instance=obj,
        save=lambda form: services.update_institution(
            request.user, obj, form.service_data, version=form.cleaned_data.get("version")
        ),
        template="customers/institution_form.html", context={},
    )  # fmt: skip


@login_required
def person_create(request):
    access.require(request.user, Cap.CHANGE_CUSTOMERS)
    initial = None
    inst = _visible_institution(request.user, request.GET.get("institution", ""))
    if inst is not None:  # "add a person" from an institution's page
        if inst.kind == InstitutionType.DEPARTMENT and inst.parent_id:
            initial = {"institution": inst.parent_id, "department": inst.pk}
        else:
            initial = {"institution": inst.pk}
    return _create_view(
        request, form_class=PersonForm,
        save=lambda form: services.create_person(request.user, form.service_data),
        template="customers/person_form.html", initial=initial,
    )  # fmt: skip


@login_required
def person_edit(request, pk: int):
    obj = _changeable(request.user, Person, pk)
    return _form_view(
        request, form_class=PersonForm, instance=obj,
        save=lambda form: services.update_person(
            request.user, obj, form.service_data, version=form.cleaned_data.get("version")
        ),
        template="customers/person_form.html", context={},
    )  # fmt: skip


# --- delete ------------------------------------------------------------------------------------


def _delete_view(request, model, pk: int):
    user = request.user
    access.require(user, Cap.DELETE_CUSTOMERS)
    listed = "customers:institutions" if model is Institution else "customers:people"
    if request.method == "POST" and not model.objects.filter(pk=pk).exists() and deleted_by(user, model, pk):
        messages.info(request, _("This record was deleted already."))  # the form sent twice: the first deleted it
        return redirect(listed)
    obj = access.get_visible_or_404(user, model, pk)
    _refuse_merged(user, obj)  # its page offers no Delete: deleting it is deleting the record it lives on in
    if request.method == "POST":
        # the version the confirmation page showed: a record someone changed after it was opened is not deleted
        # (their change would have gone with it, unseen by the one deleting); the page always carries it, so a form
        # without one is as stale
        version = request.POST.get("version", "")
        try:
            if not (version.isdecimal() and len(version) < 10):
                raise services.ConflictError(obj.version)
            services.delete_customer(user, obj, version=int(version))
        except services.ConflictError:
            messages.error(request, _(
                "Someone changed this record after you opened the page to delete it, so it was not deleted. Check "
                "their changes, and delete it again if it should still go."
            ))  # fmt: skip
            return redirect(page_of(obj))
        except ValidationError as e:
            for message in e.messages:
                messages.error(request, message)
            return redirect(page_of(obj))
        messages.success(request, _("“%(name)s” was deleted.") % {"name": obj.name})
        return redirect(listed)
    context = {"obj": obj, "is_institution": model is Institution, "merged_count": len(services.merged_records(obj))}
    if model is Person:  # the consent records go with the person: the page says so, and where they are kept
        context["consent_count"] = obj.consents.count()
    return render(request, "customers/confirm_delete.html", context)


@login_required
def institution_delete(request, pk: int):
    return _delete_view(request, Institution, pk)


@login_required
def person_delete(request, pk: int):
    return _delete_view(request, Person, pk)


# --- duplicates and merge ----------------------------------------------------------------------


def _load_groups(user, groups, model):
    """One entry per pair of likely duplicates the user may see, with every reason the pair matched on (two
    records sharing an e-mail and a name at one institution are listed once). A group of more than two pairs
    each record with its first (lowest id) one, as the page's "compare and merge" always did."""
    ids = {i for g in groups for i in g.ids}
    scoped = access.institutions_for(user) if model is Institution else access.people_for(user)
    related = ("region", "parent") if model is Institution else ("institution",)
    objs = scoped.filter(pk__in=ids).select_related(*related).in_bulk()
    pairs: dict[tuple[int, int], list] = {}
    different = services.distinct_pairs(model, objs)  # confirmed to be different customers: not listed again
    for g in groups:
        members = sorted(i for i in set(g.ids) if i in objs)
        reason = DUPLICATE_REASONS.get(g.reason, g.reason)
        for other in members[1:]:
            if (members[0], other) in different:
                continue
            reasons = pairs.setdefault((members[0], other), [])
            if reason not in reasons:
                reasons.append(reason)
    return [{"reasons": reasons, "members": [objs[a], objs[b]]} for (a, b), reasons in pairs.items()]


@login_required
@require_GET
def duplicate_list(request):
    user = request.user
    access.require(user, Cap.MERGE_CUSTOMERS)
    context = {
        "institution_groups": _load_groups(user, services.institution_duplicates(limit=100), Institution),
        "person_groups": _load_groups(user, services.person_duplicates(limit=100), Person),
    }
    return render(request, "customers/duplicate_list.html", context)


MERGE_FIELDS = {
    "institution": ("code", "name", "short_name", "kind", "grade", "parent", "region", "credit_code",
                    "legal_representative", "address", "phone", "external_id", "tier", "stage", "owner", "team",
                    "source", "needs", "notes"),
    "person": ("code", "name", "gender", "role", "title", "institution", "department", "mobile", "landline",
               "email", "preferred_language", "external_id", "tier", "stage", "owner", "team", "source", "needs", "notes"),
}  # fmt: skip


def _display(obj, field: str, shown: dict | None) -> str:
    if shown is not None and field in shown:
        return shown[field] or ""
    getter = getattr(obj, f"get_{field}_display", None)
    value = getter() if getter else getattr(obj, field)
    return "" if value is None else str(value)


def _pair(user, kind: str, first: int, second: int):
    """Two records of one kind a user who may merge compares (404 for anything else or outside their scope)."""
    access.require(user, Cap.MERGE_CUSTOMERS)
    model = {"institution": Institution, "person": Person}.get(kind)
    if model is None or first == second:
        raise Http404(_("Nothing to merge here."))
    return access.get_visible_or_404(user, model, first), access.get_visible_or_404(user, model, second)


@login_required
@require_POST
def not_duplicates(request, kind: str, first: int, second: int):
    """"Not the same customer": the pair leaves the duplicate list and each other's likely duplicates."""
    user = request.user
    one, two = _pair(user, kind, first, second)
    try:
        services.mark_distinct(user, one, two)
    except ValidationError as e:
        for message in e.messages:
            messages.error(request, message)
    else:
        messages.success(request, _("%(first)s and %(second)s are no longer listed as likely duplicates.")
                         % {"first": one.name, "second": two.name})  # fmt: skip
    return redirect("customers:duplicates")


def _merged_by(user, kind: str, keep_id: str, pair: set[int]):
    """(survivor, merged-away record) when `user` merged this pair into the record the form keeps: the merge form
    sent twice (a double click) finds the first one done. A colleague's merge is not told so here."""
    from pharmacrm.core.models import AuditEntry

    access.require(user, Cap.MERGE_CUSTOMERS)
    model = {"institution": Institution, "person": Person}.get(kind)
    if model is None or not is_id(keep_id) or int(keep_id) not in pair or len(pair) != 2:
        return None
    keep = access.get_visible_or_404(user, model, int(keep_id))
    drop = model.objects.filter(pk__in=pair - {keep.pk}, merged_into_id=keep.pk).first()
    last = AuditEntry.objects.filter(action=AuditEntry.Action.MERGE, object_type=model._meta.label_lower,
                                     object_id=str(keep.pk)).order_by("-seq").values_list("actor_id", flat=True).first()  # fmt: skip
    return (keep, drop) if drop is not None and last == user.pk else None


@login_required
def merge_view(request, kind: str, survivor: int, duplicate: int):
    user = request.user
    if request.method == "POST" and (done := _merged_by(user, kind, request.POST.get("survivor", ""),
                                                         {survivor, duplicate})):  # fmt: skip
        keep, drop = done  # "Merge" clicked twice: the first click merged them
        messages.success(request, _("%(dup)s was merged into %(keep)s.") % {"dup": drop.code, "keep": keep.code})
        return redirect(page_of(keep))
    left, right = _pair(user, kind, survivor, duplicate)
    model = type(left)
    if request.method == "POST":
        keep_id = request.POST.get("survivor", "")
        if keep_id not in (str(left.pk), str(right.pk)):
            messages.error(request, _("Choose which record to keep."))
        else:
            keep, drop = (left, right) if keep_id == str(left.pk) else (right, left)
            # the versions the page compared (none from a page made before it sent them)
            versions = {obj.pk: int(value) for obj in (left, right)
                        if (value := request.POST.get(f"version_{obj.pk}", "")).isdecimal() and len(value) < 10}  # fmt: skip
            try:
                merged = services.merge(user, keep, drop, versions=versions)
            except ValidationError as e:
                for message in e.messages:
                    messages.error(request, message)
            except services.ConflictError:
                messages.error(request, _(
                    "Someone changed one of these records after you opened this page, so they were not merged. Compare "
                    "them again below, and merge them if they are still the same customer."
                ))  # fmt: skip
                left, right = (type(left).objects.get(pk=left.pk), type(right).objects.get(pk=right.pk))
            else:
                messages.success(
                    request, _("%(dup)s was merged into %(keep)s.") % {"dup": drop.code, "keep": merged.code}
                )
                return redirect(page_of(merged))
    shown = {}
    if model is Person:
        shown = contact_view(user, [left, right], fields=CONTACT_FIELDS, purpose="merge")
    rows = [
        (
            left._meta.get_field(f).verbose_name,
            _display(left, f, shown.get(left.pk)),
            _display(right, f, shown.get(right.pk)),
        )
        for f in MERGE_FIELDS[kind]
    ]
    context = {"kind": kind, "left": left, "right": right, "rows": rows}
    return render(request, "customers/merge.html", context)
