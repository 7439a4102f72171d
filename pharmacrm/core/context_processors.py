"""Template context: the navigation a user may see (only links to areas that exist and they may use)."""

from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from . import access
from .roles import Cap


def navigation(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav": [], "caps": frozenset()}
    caps = access.capabilities(user)
    items = [(_("Home"), reverse("home"), "home")]
    if Cap.VIEW_CUSTOMERS in caps:
        items.append((_("Institutions"), reverse("customers:institutions"), "institutions"))
        items.append((_("People"), reverse("customers:people"), "people"))
    if Cap.IMPORT_CUSTOMERS in caps:
        items.append((_("Import"), reverse("customers:import"), "import"))
    if Cap.MERGE_CUSTOMERS in caps:
        items.append((_("Duplicates"), reverse("customers:duplicates"), "duplicates"))
    if Cap.VIEW_AUDIT in caps:
        items.append((_("Audit trail"), reverse("audit"), "audit"))
    return {"nav": items, "caps": caps}
