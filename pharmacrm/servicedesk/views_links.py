"""Service-desk pages: links between tickets, the merge of a duplicate, and bulk actions from a queue."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import path
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from pharmacrm.core import access
from pharmacrm.core.form_saves import create_once
from pharmacrm.core.roles import Cap
from pharmacrm.customers.services import ConflictError
from pharmacrm.customers.views import AlreadyCreated

from . import bulk as bulk_actions
from . import linking
from .choices import EventKind, LinkKind
from .forms_links import BulkForm, LinkForm, MergeForm
from .models import Attachment, Ticket, TicketEvent, TicketLink, TicketMessage

MERGED_MESSAGES = 50  # messages of each merged duplicate shown on the surviving ticket


def _visible_tickets(user):
    return access.tickets_for(user, Ticket.objects.all())


def panel_context(request, ticket) -> dict:
    """Extra context for the ticket page (merged by views._ticket_context): the links in both directions,
    "merged into" / "merged from", what the merged duplicates said, and the link and merge forms. One query
    (two for a role that sees only some customers), more only when duplicates were merged into the ticket."""
    user = request.user
    links = list(linking.links_of(ticket).select_related("from_ticket", "to_ticket").order_by("created_at", "id"))
    others = {link.to_ticket_id if link.from_ticket_id == ticket.pk else link.from_ticket_id for link in links}
    if others and not access.can(user, Cap.ALL_CUSTOMERS):
        others = set(_visible_tickets(user).filter(pk__in=others).values_list("id", flat=True))
    rows, merged_into, merged_from = [], None, []
    for link in links:
        outgoing = link.from_ticket_id == ticket.pk
        other = link.to_ticket if outgoing else link.from_ticket
        if other.pk not in others:
            continue
        merge_link = link.kind == LinkKind.DUPLICATE and link.from_ticket.merged_into_id == link.to_ticket_id
        if link.kind == LinkKind.DUPLICATE:
            label = _("Duplicate of") if outgoing else _("Duplicated by")
        else:
            label = _("Related")
        if merge_link:
            if outgoing:
                merged_into = other
            else:
                merged_from.append(other)
        rows.append({"link": link, "other": other, "label": label, "merge_link": merge_link})
    if merged_from:
        ids = [d.pk for d in merged_from]
        said: dict[int, list] = {pk: [] for pk in ids}
        for m in TicketMessage.objects.filter(ticket_id__in=ids).select_related("author").order_by("created_at", "id"):
            if len(said[m.ticket_id]) < MERGED_MESSAGES:
                said[m.ticket_id].append(m)
        files: dict[int, list] = {pk: [] for pk in ids}
        for a in Attachment.objects.filter(ticket_id__in=ids).order_by("created_at", "id"):
            files[a.ticket_id].append(a)
        for dup in merged_from:
            dup.merged_messages, dup.merged_attachments = said[dup.pk], files[dup.pk]
    may_handle = access.can(user, Cap.HANDLE_TICKETS)
    forms = getattr(request, "_links_forms", {})
    return {
        "ticket_links": rows,
        "merged_into": merged_into,
        "merged_from": merged_from,
        "may_link": may_handle,
        "may_merge": may_handle and not ticket.merged_into_id,
        "link_form": forms.get("link") or LinkForm(prefix="link"),
        "merge_form": forms.get("merge") or MergeForm(prefix="merge", initial={"version": ticket.version}),
    }


def _ticket_page(request, ticket, *, status: int, conflict: bool = False):
    from . import views

    ticket = Ticket.objects.select_related(
        "category", "assignee", "team", "institution", "person", "policy", "created_by"
    ).get(pk=ticket.pk)
    context = views._ticket_context(request, ticket, conflict=conflict)
    return render(request, "servicedesk/ticket_detail.html", context, status=status)


def _by_number(user, number: str) -> Ticket | None:
    return _visible_tickets(user).filter(number=number).first() if number else None


def _handling(request, pk: int) -> Ticket:
    from . import views

    access.require(request.user, Cap.HANDLE_TICKETS)
    return views._ticket_or_404(request.user, pk)


@login_required
@require_POST
def ticket_link(request, pk: int):
    user = request.user
    ticket = _handling(request, pk)
    form = LinkForm(request.POST, prefix="link")
    if form.is_valid():
        other = _by_number(user, form.cleaned_data["to_ticket"])
        if other is None:
            form.add_error("to_ticket", _("No such ticket, or you may not see it."))
        else:
            try:  # once per form: sent again (a double click), the ticket with the link the first one made
                create_once(user, form.cleaned_data["form_token"],
                            lambda: linking.link(user, ticket, other, form.cleaned_data["kind"]))  # fmt: skip
            except AlreadyCreated:
                messages.success(request, _("%(a)s is linked to %(b)s.") % {"a": ticket.number, "b": other.number})
                return redirect(f"{ticket_url(ticket)}#links")
            except ValidationError as e:
                form.add_service_errors(e)
            else:
                messages.success(request, _("%(a)s is linked to %(b)s.") % {"a": ticket.number, "b": other.number})
                return redirect(f"{ticket_url(ticket)}#links")
    request._links_forms = {"link": form}
    return _ticket_page(request, ticket, status=400)


@login_required
@require_POST
def ticket_unlink(request, pk: int, link_pk: int):
    user = request.user
    ticket = _handling(request, pk)
    link = (
        TicketLink.objects.filter(pk=link_pk)
        .filter(Q(from_ticket=ticket) | Q(to_ticket=ticket))
        .select_related("from_ticket", "to_ticket")
        .first()
    )
    if link is None:
        raise Http404(_("No such link."))
    try:
        linking.unlink(user, link)
    except ValidationError as e:
        messages.error(request, " ".join(e.messages))
    else:
        messages.success(request, _("The link was removed."))
    return redirect(f"{ticket_url(ticket)}#links")


@login_required
@require_POST
def ticket_merge(request, pk: int):
    user = request.user
    ticket = _handling(request, pk)
    form = MergeForm(request.POST, prefix="merge")
    conflict = False
    if form.is_valid():
        into = _by_number(user, form.cleaned_data["into"])
        if into is None:
            form.add_error("into", _("No such ticket, or you may not see it."))
        else:
            try:
                d = form.cleaned_data
                linking.merge(user, ticket, into, reason=d["reason"], version=d["version"])
            except (ConflictError, ValidationError) as e:
                ticket.refresh_from_db()
                if _merged_by(user, ticket, into):  # the form sent twice (a double click): the first one merged
                    messages.success(request, _("%(a)s was merged into %(b)s.") % {"a": ticket.number, "b": into.number})
                    return redirect(f"{ticket_url(into)}#links")
                if isinstance(e, ValidationError):
                    form.add_service_errors(e)
                    request._links_forms = {"merge": form}
                    return _ticket_page(request, ticket, status=400, conflict=False)
                data = request.POST.copy()
                data["merge-version"] = str(ticket.version)
                form = MergeForm(data, prefix="merge")
                form.is_valid()
                form.add_error(None, _("Someone else changed this ticket while you were working on it. "
                                       "Your input is kept: check the ticket, then submit again."))  # fmt: skip
                conflict = True
            else:
                messages.success(request, _("%(a)s was merged into %(b)s.") % {"a": ticket.number, "b": into.number})
                return redirect(f"{ticket_url(into)}#links")
    request._links_forms = {"merge": form}
    return _ticket_page(request, ticket, status=409 if conflict else 400, conflict=conflict)


def _merged_by(user, ticket: Ticket, into: Ticket) -> bool:
    """Whether `ticket` is merged into `into` and its last event is that merge, by `user`: a merge form sent again
    right after (a double click) finds the first one done. A colleague's change in between is still refused."""
    if ticket.merged_into_id != into.pk:
        return False
    last = TicketEvent.objects.filter(ticket=ticket).order_by("-at", "-id").values_list("kind", "actor_id").first()
    return last == (EventKind.MERGED, user.pk)


def ticket_url(ticket: Ticket) -> str:
    from django.urls import reverse

    return reverse("servicedesk:ticket", args=[ticket.pk])


@login_required
@require_POST
def bulk(request):
    """Apply one action to the tickets ticked in a queue; a page lists what happened to each."""
    user = request.user
    access.require(user, Cap.HANDLE_TICKETS)
    form = BulkForm(request.POST, prefix="bulk")
    ids = request.POST.getlist("ticket")
    versions = {k.removeprefix("version-"): v for k, v in request.POST.items() if k.startswith("version-")}
    outcomes, status = [], 400
    if form.is_valid():
        try:
            outcomes = bulk_actions.bulk(user, ids, form.cleaned_data["action"], form.params(), versions=versions)
        except ValidationError as e:
            form.add_service_errors(e)
        else:
            status = 200
    back = request.POST.get("next", "")
    if not back.startswith(ticket_queue_url()) or "//" in back or "\\" in back:
        back = ticket_queue_url()
    counts = {key: sum(1 for o in outcomes if o.outcome == key) for key in bulk_actions.OUTCOME_LABELS}
    context = {"form": form, "outcomes": outcomes, "counts": counts, "back": back,
               "action_label": bulk_actions.ACTIONS.get(form.data.get("bulk-action", ""), "")}  # fmt: skip
    return render(request, "servicedesk/bulk_result.html", context, status=status)


def ticket_queue_url() -> str:
    from django.urls import reverse

    return reverse("servicedesk:queue")


urlpatterns: list = [
    path("tickets/<int:pk>/links/", ticket_link, name="ticket-link"),
    path("tickets/<int:pk>/links/<int:link_pk>/remove/", ticket_unlink, name="ticket-unlink"),
    path("tickets/<int:pk>/merge/", ticket_merge, name="ticket-merge"),
    path("bulk/", bulk, name="bulk"),
]
