"""The access policy: the one place that answers "may this user do X (to this object)" and
"which customers may this user see". Views, API, exports and commands all ask it."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _

from .ids import id_set
from .roles import MATRIX, READ_ONLY_ROLES, Cap, Role

WRITE_CAPS = frozenset(
    {
        Cap.CHANGE_CUSTOMERS,
        Cap.DELETE_CUSTOMERS,
        Cap.MERGE_CUSTOMERS,
        Cap.IMPORT_CUSTOMERS,
        Cap.MANAGE_CONSENTS,
        Cap.MANAGE_USERS,
        Cap.HANDLE_TICKETS,
        Cap.MANAGE_SERVICE,
        Cap.REVIEW_SERVICE_QUALITY,
        Cap.MANAGE_KNOWLEDGE,
        Cap.HANDLE_SAFETY,
        Cap.CONFIGURE_SAFETY,
        Cap.RECORD_INTERACTIONS,
        Cap.MANAGE_COMMUNICATION_PLANS,
        Cap.IMPORT_ORDERS,
        Cap.RUN_EVALUATIONS,
        Cap.CONFIGURE_SCORING,
        Cap.PROPOSE_KEY_ACCOUNTS,
        Cap.REVIEW_KEY_ACCOUNTS,
        Cap.APPROVE_KEY_ACCOUNTS,
        Cap.MANAGE_KEY_ACCOUNTS,
        Cap.SET_SALES_TARGETS,
        Cap.MANAGE_COOPERATION,
        Cap.MANAGE_LOYALTY,
        Cap.APPROVE_LOYALTY,
        Cap.TAKE_TRAINING,
        Cap.MANAGE_TRAINING,
        Cap.WORK_PIPELINE,
        Cap.MANAGE_PLAYBOOK,
        Cap.MANAGE_LICENCES,
        Cap.VERIFY_LICENCES,
        Cap.RECORD_MARKET,
        Cap.MANAGE_MARKET,
        Cap.MANAGE_APPRAISALS,
    }
)


def _allowed(roles: frozenset[Role], cap: Cap) -> bool:
    """Whether a set of roles holds `cap`. A read-only role (the auditor) reads, whatever else the user holds: such a
    user has what the read-only role itself may do and never a write capability — by construction, not by a list of
    the writes alone, which missed six of them (found by QA: an admin who was also auditor could record competitors
    and change the stage playbook)."""
    if roles & READ_ONLY_ROLES:
        return bool(roles & READ_ONLY_ROLES & MATRIX[cap]) and cap not in WRITE_CAPS
    return bool(roles & MATRIX[cap])


def roles_of(user) -> frozenset[Role]:
    if user is None or not user.is_authenticated or not user.is_active:
        return frozenset()
    if user.is_superuser:
        return frozenset({Role.ADMIN}) | user.roles
    return user.roles


def read_only(user) -> bool:
    """Whether the user holds a read-only role (the auditor): such a user changes nothing, not even what is their own
    alone (a scheduled report) — refused before any form is read."""
    return bool(roles_of(user) & READ_ONLY_ROLES)


def can(user, cap: Cap) -> bool:
    """Whether any of the user's roles holds `cap`; a read-only role never gets a write capability."""
    roles = roles_of(user)
    if not roles:
        return False
    return _allowed(roles, cap)


def require(user, cap: Cap) -> None:
    if not can(user, cap):
        raise PermissionDenied(_("You do not have permission to do this."))


def capabilities(user) -> frozenset[Cap]:
    return _capabilities_of(roles_of(user))


@lru_cache(maxsize=256)
def _capabilities_of(roles: frozenset[Role]) -> frozenset[Cap]:
    """What a set of roles may do (`can` for each capability): the same for every user holding them, and asked by
    every page (the navigation), so worked out once per set of roles and process."""
    if not roles:
        return frozenset()
    return frozenset(c for c in Cap if _allowed(roles, c))


# --- object scope ------------------------------------------------------------------------------


def _scope_facts(user) -> tuple[list[int], list[str]]:
    """The user's team ids and territory region codes, read once per user object (i.e. per request)."""
    cached = getattr(user, "_scope_facts", None)
    if cached is None:
        from .models import Team, User

        team_ids = list(User.teams.through.objects.filter(user_id=user.pk).values_list("team_id", flat=True))
        # the two link tables, each by its indexed key: a join of regions to users and teams with an OR
        # read all 3,000 regions on every request of a scoped user (4 ms on PostgreSQL)
        own = User.territory.through.objects.filter(user_id=user.pk).values_list("region_id", flat=True)
        teams = Team.territory.through.objects.filter(team_id__in=team_ids).values_list("region_id", flat=True)
        codes = own.union(teams) if team_ids else own
        cached = (team_ids, sorted(set(codes)))
        user._scope_facts = cached
    return cached


def prime_scope(user) -> None:
    """Fill the user's scope facts from relations prefetched with `territory` and `teams__territory`, so
    that deciding many users' scope (who is asked to review a customer …) costs no query per user."""
    teams = list(user.teams.all())
    codes = {r.code for r in user.territory.all()} | {r.code for t in teams for r in t.territory.all()}
    user._scope_facts = ([t.pk for t in teams], sorted(codes))


def region_q(code: str) -> Q:
    """Customers inside a region (province, city or district, by the code's shape), as an equality on the
    denormalised province / city / region columns — an index look-up that also keeps the list's order.
    A district goes through its city's index (one index fewer for every imported person)."""
    code = str(code).strip()[:6].ljust(6, "0")
    if code.endswith("0000"):
        return Q(province=code)
    if code.endswith("00"):
        return Q(city=code)
    return Q(city=code[:4] + "00", region_id=code)


def _in_territory(codes: list[str], province: str, city: str, region_id) -> bool:
    return any(
        (c == province) if c.endswith("0000") else (c == city) if c.endswith("00") else (c == region_id) for c in codes
    )


def scope_branches(user, kind: str) -> list[Q] | None:
    """The customers (`kind` "institution" or "person") the user may see, as conditions whose union is
    the scope — None when the user sees everything. Each branch is an indexed equality on its own (the
    territory's province/city/district, the owner, the team, and for people the institutions owned by
    the user or their teams), so lists can walk each branch in sort order and merge them."""
    from pharmacrm.customers.choices import InstitutionType
    from pharmacrm.customers.models import Institution

    if can(user, Cap.ALL_CUSTOMERS):
        return None
    if not can(user, Cap.VIEW_CUSTOMERS):
        return [Q(pk__in=[])]
    team_ids, codes = _scope_facts(user)
    branches = [region_q(code) for code in codes] + [Q(owner=user)]
    if team_ids:
        branches.append(Q(team_id__in=team_ids))
    if kind == "person":
        # the people of the institutions the user or their teams own, and of the departments they own (one
        # department of a hospital outside the territory): one branch, two indexed look-ups joined by OR (a branch
        # of its own cost every list page a query, for the few who own a department)
        own = Institution.objects.filter(Q(owner=user) | Q(team_id__in=team_ids))
        departments = own.filter(kind=InstitutionType.DEPARTMENT).values("id")
        branches.append(Q(institution_id__in=own.values("id")) | Q(department_id__in=departments))
    return branches


def _either(branches: list[Q]) -> Q:
    q = Q(pk__in=[])
    for branch in branches:
        q |= branch
    return q


def institution_scope_q(user) -> Q | None:
    """A filter for the institutions the user may see, or None for all of them."""
    branches = scope_branches(user, "institution")
    return None if branches is None else _either(branches)


def institutions_for(user, qs: QuerySet | None = None) -> QuerySet:
    from pharmacrm.customers.models import Institution

    qs = Institution.objects.all() if qs is None else qs
    q = institution_scope_q(user)
    return qs if q is None else qs.filter(q)


def workplaces_for(user, qs: QuerySet | None = None) -> QuerySet:
    """Institutions the user may place people at: those they may see, and the hospitals of the departments they
    may see — a rep who owns one department of a hospital outside the territory adds its doctors there, at that
    hospital, in that department (services.create_person holds them to the department)."""
    from pharmacrm.customers.choices import InstitutionType
    from pharmacrm.customers.models import Institution

    qs = Institution.objects.all() if qs is None else qs
    q = institution_scope_q(user)
    if q is None:
        return qs
    departments = Institution.objects.filter(q, kind=InstitutionType.DEPARTMENT, parent__isnull=False)
    return qs.filter(q | Q(pk__in=departments.values("parent_id")))


def people_for(user, qs: QuerySet | None = None) -> QuerySet:
    """People the user may see: those of visible institutions, those they or their team own, and those of
    the institutions and departments they or their team own.

    A person carries their institution's region (kept in step by the services), so "people of institutions
    in my territory" is a condition on the person row; only institutions visible by owner or team need a
    (short) subquery."""
    from pharmacrm.customers.models import Person

    qs = Person.objects.all() if qs is None else qs
    branches = scope_branches(user, "person")
    return qs if branches is None else qs.filter(_either(branches))


SCOPE_COLUMNS = {
    "institution": ("owner_id", "team_id", "province", "city", "region_id"),
    "person": ("owner_id", "team_id", "province", "city", "region_id", "institution_id", "department_id"),
}


def _owned_among(user, team_ids, institution_ids) -> set[int]:
    """Which of these institutions the user or their teams own: people there are visible wherever the
    institution lies. Read for the short list in hand, never cached, so that a customer assigned a moment
    ago counts even for a long-lived user object (a shell, the API test client, the worker)."""
    from pharmacrm.customers.models import Institution

    owner = Q(owner=user) | Q(team_id__in=team_ids) if team_ids else Q(owner=user)
    wanted = id_set(set(institution_ids))
    return set(Institution.objects.filter(owner, pk__any_of=wanted).order_by().values_list("id", flat=True))


@dataclass(frozen=True)
class Territory:
    """Where a user's customers are, for narrowing a search before it reads any customer row: the
    provinces of the user's territory, whether the territory is those provinces exactly (no city or
    district in it), and the customers the user sees outside them (their own, their teams', and people of
    those institutions)."""

    provinces: frozenset[str]
    whole_provinces: bool
    beyond: tuple[int, ...]


def territory(user, kind: str, limit: int, memo: dict | None = None) -> Territory | None:
    """The user's Territory for customers of `kind` ("institution" or "person"); None when the user sees
    every customer, or more than `limit` of them outside their provinces. Read anew for every search (one
    indexed query for institutions, one more for people; `memo` shares the first between the two kinds of
    one search): the customers beyond change with every owner or team edit, and a search must find a
    customer the moment it becomes the user's."""
    from pharmacrm.customers.models import Institution, Person

    if can(user, Cap.ALL_CUSTOMERS):
        return None
    if not can(user, Cap.VIEW_CUSTOMERS):
        return Territory(frozenset(), True, ())
    team_ids, codes = _scope_facts(user)
    provinces = frozenset(c[:2] + "0000" for c in codes)
    whole = all(c.endswith("0000") for c in codes)
    own = Q(owner=user) | Q(team_id__in=team_ids) if team_ids else Q(owner=user)
    memo = {} if memo is None else memo
    if "owned" not in memo:
        # the institutions the user or their teams own outside the provinces, merged ones too: people_for
        # counts the people left at those; people of owned institutions inside carry their province
        outside = Institution.objects.filter(own).exclude(province__in=provinces).order_by()
        memo["owned"] = list(outside.values_list("id", "merged_into_id")[: limit + 1])
    owned = memo["owned"]
    if len(owned) > limit:
        return None
    if kind == "institution":
        return Territory(provinces, whole, tuple(sorted(pk for pk, merged in owned if merged is None)))
    if owned:
        at_owned = [pk for pk, _merged in owned]
        own |= Q(institution_id__in=at_owned) | Q(department_id__in=at_owned)
    # equalities on indexed columns joined by OR (PostgreSQL combines the indexes' bitmaps); an OR with a
    # subquery instead made it read every person
    beyond = Person.objects.filter(own, merged_into__isnull=True).exclude(province__in=provinces)
    ids = list(beyond.order_by().values_list("id", flat=True)[: limit + 1])
    if len(ids) > limit:
        return None
    return Territory(provinces, whole, tuple(sorted(ids)))


def visible_from_rows(user, kind: str, rows) -> set[int]:
    """Which of these rows — (id, *SCOPE_COLUMNS[kind]) tuples — the user may see: the same rule as
    institutions_for / people_for (tests hold them equal), decided in Python for hot paths such as
    search that already hold a short candidate list, instead of a scope subquery per look-up."""
    rows = list(rows)
    if not rows or not can(user, Cap.VIEW_CUSTOMERS):
        return set()
    if institution_scope_q(user) is None:
        return {row[0] for row in rows}
    team_ids, codes = _scope_facts(user)
    team_ids = set(team_ids)

    def ok(owner_id, team_id, province, city, region_id) -> bool:
        return owner_id == user.pk or team_id in team_ids or _in_territory(codes, province, city, region_id)

    if kind == "institution":
        return {pk for pk, *scope in rows if ok(*scope)}
    visible = set()
    unsure = []
    for pk, *scope, inst_id, dept_id in rows:
        if ok(*scope):
            visible.add(pk)
        elif inst_id is not None or dept_id is not None:
            unsure.append((pk, inst_id, dept_id))
    if unsure:
        owned = _owned_among(user, team_ids, {i for _pk, *at in unsure for i in at if i is not None})
        visible.update(pk for pk, inst_id, dept_id in unsure if inst_id in owned or dept_id in owned)
    return visible


def visible_ids(user, kind: str, ids) -> set[int]:
    """The subset of these institution/person ids the user may see (see visible_from_rows)."""
    from pharmacrm.customers.models import Institution, Person

    model = Institution if kind == "institution" else Person
    ids = list(ids)
    if not ids:
        return set()
    return visible_from_rows(user, kind, model.objects.filter(pk__in=ids).values_list("id", *SCOPE_COLUMNS[kind]))


def can_see(user, obj) -> bool:
    from pharmacrm.customers.models import Institution, Person

    if isinstance(obj, Institution):
        return institutions_for(user).filter(pk=obj.pk).exists()
    if isinstance(obj, Person):
        return people_for(user).filter(pk=obj.pk).exists()
    return False


def can_change(user, obj) -> bool:
    return can(user, Cap.CHANGE_CUSTOMERS) and can_see(user, obj)


def get_visible_or_404(user, model, pk):
    """The object if the user may see it; 404 otherwise (so existence does not leak)."""
    from django.http import Http404

    from pharmacrm.customers.models import Institution

    qs = institutions_for(user) if model is Institution else people_for(user)
    obj = qs.filter(pk=pk).first()
    if obj is None:
        raise Http404(_("No such customer, or you may not see it."))
    return obj


# --- personal data -----------------------------------------------------------------------------


def personal_data_mode(user, person=None) -> str:
    """"plain" (may see), "reveal" (may see after stating a reason, audited) or "masked"."""
    if can(user, Cap.VIEW_PERSONAL_DATA) and (person is None or can_see(user, person)):
        return "plain"
    if can(user, Cap.REVEAL_PERSONAL_DATA):
        return "reveal"
    return "masked"


# --- tickets -----------------------------------------------------------------------------------


def tickets_for(user, qs: QuerySet | None = None) -> QuerySet:
    """Service tickets the user may see: all of them for roles that see every customer; for a scoped role
    (a sales rep) the tickets of the customers they may see, and those they raised or hold."""
    from pharmacrm.servicedesk.models import Ticket

    qs = Ticket.objects.all() if qs is None else qs
    if not can(user, Cap.VIEW_TICKETS):
        return qs.none()
    if can(user, Cap.ALL_CUSTOMERS):
        return qs
    institutions = institutions_for(user).values("id")
    people = people_for(user).values("id")
    return qs.filter(
        Q(institution_id__in=institutions) | Q(person_id__in=people) | Q(created_by=user) | Q(assignee=user)
    )


def can_see_ticket(user, ticket) -> bool:
    return tickets_for(user).filter(pk=ticket.pk).exists()


# --- safety cases and interactions -------------------------------------------------------------------------


def cases_for(user, qs: QuerySet | None = None) -> QuerySet:
    """Safety and quality cases the user may list: the PV role (everything, patient data included) and the
    overseeing roles (manager, admin, auditor: status, clocks and reconciliation, never patient identity).
    Everyone else sees a case only through its source record (case_status_visible)."""
    from pharmacrm.safety.models import SafetyCase

    qs = SafetyCase.objects.all() if qs is None else qs
    if can(user, Cap.HANDLE_SAFETY) or can(user, Cap.OVERSEE_SAFETY):
        return qs
    return qs.none()


def can_see_case_identity(user) -> bool:
    """Patient and reporter identity, narrative and the case's medical details: PV only."""
    return can(user, Cap.HANDLE_SAFETY)


def case_status_visible(user, case) -> bool:
    """The reporting agent or rep sees the status of the case their ticket or interaction raised (never the
    patient's identity); PV and the overseeing roles see every case."""
    if cases_for(user).filter(pk=case.pk).exists():
        return True
    if not getattr(user, "is_authenticated", False):
        return False
    ticket, interaction = case.source_ticket, case.source_interaction
    if ticket is not None and user.pk in (ticket.created_by_id, ticket.assignee_id):
        return True
    return interaction is not None and interaction.created_by_id == user.pk


def interactions_for(user, qs: QuerySet | None = None) -> QuerySet:
    """Interactions with the customers the user may see, and those the user recorded."""
    from pharmacrm.engagement.models import Interaction

    qs = Interaction.objects.all() if qs is None else qs
    if not can(user, Cap.VIEW_INTERACTIONS):
        return qs.none()
    if can(user, Cap.ALL_CUSTOMERS):
        return qs
    institutions = institutions_for(user).values("id")
    people = people_for(user).values("id")
    return qs.filter(Q(institution_id__in=institutions) | Q(person_id__in=people) | Q(created_by=user))


# --- agreements' terms -------------------------------------------------------------------------------------


def may_change_agreement_term(user, agreement) -> bool:
    """Who corrects the term of an agreement not signed yet, and records an amendment (补充协议) of a signed one's
    term: whoever may record such an agreement. A key-account service agreement: those who run its account — an
    administrator or a manager who runs key accounts, the account's project manager (not any key-account manager, nor
    the rest of its team). A cooperation agreement: those who record cooperation agreements (administrators, managers,
    key-account managers, sales representatives), within the agreements they may see. Never a read-only role."""
    if read_only(user):
        return False
    label = agreement._meta.label_lower
    if label == "keyaccounts.agreement":
        from pharmacrm.keyaccounts.services import may_manage

        return may_manage(user, agreement.account)
    if label == "cooperation.agreement":
        from pharmacrm.cooperation.services import may_manage

        return may_manage(user, agreement)
    return False


def require_agreement_term(user, agreement) -> None:
    if not may_change_agreement_term(user, agreement):
        raise PermissionDenied(_("You do not have permission to do this."))
