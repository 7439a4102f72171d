"""Template context: the navigation a user may see (only links to areas that exist and they may use)."""

from functools import lru_cache

from django.conf import settings
from django.urls import get_script_prefix
from django.urls import reverse as _reverse
from django.utils.translation import gettext_lazy as _

from . import access
from .roles import Cap, Role


def _active(path: str, items) -> str:
    """The key of the navigation item the current page belongs to (longest matching prefix)."""
    best, best_len = "", 0
    for _label, url, key in items:
        matches = path == url if key == "home" else path.startswith(url)
        if matches and len(url) > best_len:
            best, best_len = key, len(url)
    return best


@lru_cache(maxsize=128)
def _cached_reverse(name: str, prefix: str, urlconf: str) -> str:
    return _reverse(name)


def reverse(name: str) -> str:
    """The address of a navigation item, worked out once per process (and URL configuration): every page asks for
    about twenty of them."""
    return _cached_reverse(name, get_script_prefix(), settings.ROOT_URLCONF)


def navigation(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav": [], "caps": frozenset(), "can": {}, "nav_active": "", "otp_pending": False}
    caps = access.capabilities(user)
    items = [(_("Home"), reverse("home"), "home")]
    if Cap.VIEW_CUSTOMERS in caps:
        items.append((_("Institutions"), reverse("customers:institutions"), "institutions"))
        items.append((_("People"), reverse("customers:people"), "people"))
    if Cap.VIEW_TICKETS in caps:
        items.append((_("Tickets"), reverse("servicedesk:queue"), "tickets"))
        items.append((_("Products"), reverse("servicedesk:product-list"), "products"))
    if Cap.VIEW_SERVICE_PERFORMANCE in caps:  # the others who may see theirs find it on the ticket queue
        items.append((_("Service performance"), reverse("servicedesk:performance"), "performance"))
    if Cap.VIEW_COMPLAINT_ANALYSIS in caps:  # team leads find theirs on the ticket queue
        items.append((_("Complaint analysis"), reverse("servicedesk:complaints"), "complaints"))
    if Cap.VIEW_INTERACTIONS in caps:
        items.append((_("Interactions"), reverse("engagement:interactions"), "interactions"))
    if Cap.VIEW_STAGE_TASKS in caps:
        items.append((_("Stage tasks"), reverse("engagement:stage-tasks"), "stage-tasks"))
    if Cap.HANDLE_SAFETY in caps or Cap.OVERSEE_SAFETY in caps:
        items.append((_("Safety"), reverse("safety:cases"), "safety"))
    if Cap.VIEW_PURCHASES in caps:
        items.append((_("Purchases"), reverse("sales:orders"), "purchases"))
    # reps see their own attainment; a team lead who is neither finds it on the order list (a query per page here)
    if Cap.VIEW_ALL_ATTAINMENT in caps or (Cap.VIEW_PURCHASES in caps and Role.REP in access.roles_of(user)):
        items.append((_("Sales targets"), reverse("sales:targets"), "targets"))
    if Cap.WORK_PIPELINE in caps or Cap.VIEW_ALL_PIPELINE in caps:
        items.append((_("Sales pipeline"), reverse("sales:pipeline"), "pipeline"))
    if Cap.VIEW_OWN_APPRAISAL in caps or Cap.VIEW_ALL_APPRAISALS in caps:
        items.append((_("KPI appraisal"), reverse("sales:appraisal"), "appraisal"))
    if Cap.VIEW_EVALUATIONS in caps:
        items.append((_("Evaluation"), reverse("keyaccounts:evaluations"), "evaluation"))
    if Cap.VIEW_KEY_ACCOUNTS in caps:
        items.append((_("Key accounts"), reverse("keyaccounts:home"), "keyaccounts"))
    if Cap.READ_COOPERATION in caps:
        items.append((_("Cooperation"), reverse("cooperation:agreements"), "cooperation"))
    if caps & {Cap.MANAGE_LICENCES, Cap.VERIFY_LICENCES, Cap.VIEW_AUDIT}:  # the others read them on the customer
        items.append((_("Licences"), reverse("licences:list"), "licences"))
    if Cap.READ_LOYALTY in caps:
        items.append((_("Loyalty"), reverse("loyalty:members"), "loyalty"))
    if Cap.READ_MARKET in caps:
        items.append((_("Market"), reverse("market:analysis"), "market"))
    if caps & {Cap.TAKE_TRAINING, Cap.MANAGE_TRAINING, Cap.VIEW_TRAINING_RESULTS, Cap.VIEW_TRAINING_FIGURES}:
        items.append((_("Training"), reverse("training:mine"), "training"))
    if Cap.IMPORT_CUSTOMERS in caps or Cap.IMPORT_ORDERS in caps:
        items.append((_("Import"), reverse("customers:import"), "import"))
    if Cap.MERGE_CUSTOMERS in caps:
        items.append((_("Duplicates"), reverse("customers:duplicates"), "duplicates"))
    if Cap.VIEW_AUDIT in caps:
        items.append((_("Audit trail"), reverse("audit"), "audit"))
    if Cap.VIEW_USERS in caps:
        items.append((_("Users"), reverse("users"), "users"))
    # `can.change_customers` etc. for templates, which cannot name the Cap enum
    can = {c.name.lower(): (c in caps) for c in Cap}
    from .middleware import needs_second_factor

    # signed in, but the one-time code is still to come: nothing in the header may call protected URLs
    # (the bell's htmx request would be redirected to the code page and paste that page into the header)
    otp_pending = needs_second_factor(user) and not getattr(user, "is_verified", lambda: True)()
    return {"nav": items, "caps": caps, "can": can, "nav_active": _active(request.path, items),
            "otp_pending": otp_pending}  # fmt: skip
