"""Service-desk pages: the conversation on a ticket (replies to the customer, internal notes, what the
customer sent, with their attachments and the delivery state of e-mailed replies), the composer with
answer templates, attachment downloads behind the ticket's access check, and the ticket-details editor."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from pharmacrm.core import access, audit
from pharmacrm.core.form_saves import SENT_AGAIN, create_once
from pharmacrm.core.models import AuditEntry
from pharmacrm.core.personal import MASKERS
from pharmacrm.core.roles import Cap
from pharmacrm.customers.services import ConflictError
from pharmacrm.customers.views import AlreadyCreated

from . import attachments, conversation, editing, knowledge
from .choices import MessageKind
from .forms_conversation import ComposerForm, TicketEditForm
from .models import AnswerTemplate, Attachment, Ticket, TicketMessage

COMPOSER_KEY = "_composer_form"  # a bound composer with errors, handed from post to panel_context


def _messages(ticket: Ticket) -> tuple[list[TicketMessage], list[Attachment]]:
    """The messages, oldest first, each with its attachments (`files`), and the files on no message: two
    queries whatever the length of the conversation."""
    messages_ = list(ticket.messages.select_related("author", "template").order_by("created_at", "id"))
    by_message: dict[int | None, list[Attachment]] = {}
    for a in ticket.attachments.order_by("created_at", "id"):
        by_message.setdefault(a.message_id, []).append(a)
    for m in messages_:
        m.files = by_message.get(m.pk, [])
    return messages_, by_message.get(None, [])


def _show_senders(user, ticket: Ticket, messages_: list[TicketMessage]) -> None:
    """The customer's address on inbound mail is personal data: in clear (audited) for roles that see
    personal data, masked for everyone else."""
    inbound = [m for m in messages_ if m.kind == MessageKind.INBOUND and m.sender]
    plain = bool(inbound) and access.personal_data_mode(user) == "plain"
    for m in inbound:
        m.sender_shown = m.sender if plain else MASKERS["email"](m.sender)
    if plain:
        audit.record(AuditEntry.Action.READ_PERSONAL, ticket, user=user, fields=["sender"],
                     purpose="ticket conversation")  # fmt: skip


def panel_context(request, ticket) -> dict:
    """Extra context for the ticket page (merged by views._ticket_context)."""
    user = request.user
    may_handle = access.can(user, Cap.HANDLE_TICKETS)
    templates = knowledge.templates_for(user, ticket) if may_handle else []
    composer = getattr(request, COMPOSER_KEY, None) or ComposerForm(templates=templates)
    conversation_, loose = _messages(ticket)
    _show_senders(user, ticket, conversation_)
    return {
        "conversation": conversation_,
        "loose_attachments": loose,
        "composer": composer,
        "answer_templates": templates,
        "reply_emailed": bool(ticket.reply_email),
        "may_write": may_handle,
        "max_attachment": settings.ATTACHMENT_MAX_BYTES,
    }


def _handling(request, pk: int) -> Ticket:
    from .views import _ticket_or_404

    access.require(request.user, Cap.HANDLE_TICKETS)
    return _ticket_or_404(request.user, pk)


MAX_FILES_PER_MESSAGE = 10


@csrf_exempt  # checked by _post, once the size limit is in place (the CSRF check would read the whole body)
@login_required
@require_POST
def post(request, pk: int):
    """A reply or an internal note from the composer, with its files. An upload larger than ten attachments'
    worth is refused before its body is read, or as soon as the reading passes that size."""
    from pharmacrm.customers.views_import import SizeLimitHandler, content_length

    ticket = _handling(request, pk)
    limiter = SizeLimitHandler(request, limit=MAX_FILES_PER_MESSAGE * settings.ATTACHMENT_MAX_BYTES)
    if content_length(request) > limiter.limit + 64 * 1024:
        limiter.too_large = True
    else:
        request.upload_handlers.insert(0, limiter)
    return _post(request, ticket, limiter)


@csrf_protect
def _post(request, ticket: Ticket, limiter):
    from .views import _ticket_context

    request.POST  # noqa: B018 — parse the body now (csrf_protect has usually done so): the limiter decides
    if limiter.too_large:
        messages.error(request, _("The files are too large together; send them in several messages."))
        return render(request, "servicedesk/ticket_detail.html", _ticket_context(request, ticket), status=413)
    templates = knowledge.templates_for(request.user, ticket)
    form = ComposerForm(request.POST, request.FILES, templates=templates)
    if form.is_valid():
        d = form.cleaned_data
        try:
            create_once(request.user, d["form_token"], lambda: conversation.post_message(
                request.user, ticket, kind=d["kind"], body=d["body"], template=d["template"],
                files=request.FILES.getlist("files")))  # fmt: skip
        except AlreadyCreated:  # sent twice (a double click): the conversation with what the first one sent
            messages.info(request, SENT_AGAIN)
            return redirect(reverse("servicedesk:ticket", args=[ticket.pk]) + "#conversation")
        except ValidationError as e:
            form.add_service_errors(e)
        else:
            if d["kind"] == MessageKind.NOTE:
                messages.success(request, _("The internal note was added."))
            elif ticket.reply_email:
                messages.success(request, _("The reply is being e-mailed to the customer."))
            else:
                messages.success(request, _("The reply was recorded."))
            return redirect(reverse("servicedesk:ticket", args=[ticket.pk]) + "#conversation")
    setattr(request, COMPOSER_KEY, form)
    return render(request, "servicedesk/ticket_detail.html", _ticket_context(request, ticket), status=400)


@login_required
@require_GET
def template_preview(request, pk: int):
    """htmx: the composer's textarea with the chosen template filled in for this ticket."""
    ticket = _handling(request, pk)
    body = ""
    template = None
    gaps: list[str] = []
    raw = request.GET.get("template") or ""
    if raw.isdecimal():
        template = AnswerTemplate.objects.filter(pk=int(raw), active=True).first()
    if template is not None:
        body, gaps = knowledge.render_with_gaps(template, ticket, request.user)
    else:
        body = request.GET.get("body", "")
    form = ComposerForm(initial={"body": body})
    return render(request, "servicedesk/panels/_composer_body.html", {
        "composer": form, "chosen_template": template, "gaps": " ".join(f"{{{name}}}" for name in gaps),
    })  # fmt: skip


@login_required
@require_GET
def download(request, pk: int):
    """An attachment, only for someone who may see its ticket (404 otherwise, like the ticket itself)."""
    access.require(request.user, Cap.VIEW_TICKETS)
    attachment = Attachment.objects.select_related("ticket").filter(pk=pk).first()
    if attachment is None or not access.can_see_ticket(request.user, attachment.ticket):
        raise Http404(_("No such file, or you may not see it."))
    try:
        return attachments.download_response(request.user, attachment)
    except FileNotFoundError:
        raise Http404(_("The file is missing from the storage.")) from None


@login_required
@require_http_methods(["GET", "POST"])
def edit(request, pk: int):
    """Edit subject, description, category, product, batch and the safety flag; a stale version → 409 with
    the user's input kept."""
    ticket = _handling(request, pk)
    conflict = False
    status = 200
    if request.method == "POST":
        form = TicketEditForm(request.POST, ticket=ticket, user=request.user)
        if form.is_valid():
            d = form.service_changes()
            version, reason = form.cleaned_data["version"], form.cleaned_data["reason"] or ""
            try:
                editing.edit_ticket(request.user, ticket, d, version=version, reason=reason)
            except ConflictError:
                from .views import CONFLICT, _ticket_or_404

                ticket = _ticket_or_404(request.user, pk)
                data = request.POST.copy()
                data["version"] = str(ticket.version)
                form = TicketEditForm(data, ticket=ticket, user=request.user)
                form.is_valid()
                form.add_error(None, str(CONFLICT))
                conflict, status = True, 409
            except ValidationError as e:
                form.add_service_errors(e)
                status = 400
            else:
                messages.success(request, _("The ticket's details were saved."))
                return redirect("servicedesk:ticket", pk=ticket.pk)
        else:
            status = 400
    else:
        form = TicketEditForm(initial=TicketEditForm.initial_for(ticket, request.user), ticket=ticket,
                              user=request.user)  # fmt: skip
    return render(request, "servicedesk/ticket_edit.html", {"ticket": ticket, "form": form, "conflict": conflict},
                  status=status)  # fmt: skip


@login_required
@require_POST
def resend(request, pk: int):
    """Send again a reply the worker gave up on (after the address or the mail server was fixed)."""
    from . import mail

    access.require(request.user, Cap.HANDLE_TICKETS)
    message = TicketMessage.objects.select_related("ticket").filter(pk=pk).first()
    if message is None or not access.can_see_ticket(request.user, message.ticket):
        raise Http404(_("No such message, or you may not see it."))
    try:
        mail.resend(request.user, message)
    except ValidationError as e:
        messages.error(request, " ".join(e.messages))
    else:
        messages.success(request, _("The reply is queued to be sent again."))
    return redirect(reverse("servicedesk:ticket", args=[message.ticket_id]) + f"#message-{message.pk}")


urlpatterns: list = [  # included by urls.py under /service/
    path("messages/<int:pk>/resend/", resend, name="message-resend"),
    path("tickets/<int:pk>/messages/", post, name="ticket-message"),
    path("tickets/<int:pk>/template-preview/", template_preview, name="ticket-template-preview"),
    path("tickets/<int:pk>/edit/", edit, name="ticket-edit"),
    path("attachments/<int:pk>/", download, name="attachment"),
]
