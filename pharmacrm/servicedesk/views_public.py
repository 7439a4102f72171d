"""Public pages for customers (no sign-in): the web form, the page after sending it, the status page of a
ticket (reached by its signed link) and the revisit survey. Nothing here shows internal notes or anybody's
personal data; a forged or tampered link is a plain 404."""

from __future__ import annotations

from email.utils import parseaddr

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_GET, require_http_methods

from pharmacrm.core import wording

from . import public, revisit
from .forms_revisit import PublicTicketForm, SurveyAnswerForm


def _refused_text(reason: str) -> str:
    if reason == "too_fast":
        return _(
            "Your request was sent too quickly after the page opened. Please check it and send it again."
        )
    if reason == "too_old":
        return _("This form was open for too long. Please send your request again.")
    return _("Your request could not be accepted. Please reload the page and send it again.")


@never_cache
@csrf_protect
@require_http_methods(["GET", "POST"])
def web_form(request):
    form = PublicTicketForm(request.POST or None, request.FILES or None)
    status = 200
    if request.method == "POST":
        status = 400
        try:
            public.check_stamp(request.POST.get("stamp", ""), request.POST.get("website", ""))
        except public.Refused as e:
            public.refuse(request)
            form = PublicTicketForm(request.POST, request.FILES)
            form.is_valid()
            form.add_error(None, _refused_text(e.reason))
            form.data = form.data.copy()
            form.data["stamp"] = public.form_stamp()
            return render(request, "public/form.html", {"form": form}, status=400)
        if form.is_valid():
            try:
                ticket, _created = public.submit(
                    request, form.service_data(), form.cleaned_data.get("attachment")
                )
            except public.RateLimited:
                context = {"limit": settings.SERVICEDESK_WEB_FORM_PER_HOUR}
                return render(request, "public/rate_limited.html", context, status=429)
            except ValidationError as e:
                if hasattr(e, "error_dict") and "files" in e.error_dict:
                    e = ValidationError({"attachment": e.error_dict.pop("files"), **e.error_dict})
                form.add_service_errors(e)
            else:
                return redirect("public:received", token=public.status_token(ticket))
    return render(request, "public/form.html", {"form": form}, status=status)


@require_GET
def privacy(request):
    """The personal information notice (个人信息处理规则) the web form asks its senders to agree to."""
    zh, en = wording.company_name()
    context = {
        "company": en if translation.get_language() == "en" else zh,
        # the address alone of "客户服务 <service@…>"
        "contact": parseaddr(settings.SERVICEDESK_MAIL_FROM)[1] or settings.SERVICEDESK_MAIL_FROM,
        "address": settings.PHARMACRM_COMPANY_ADDRESS,
        "version": public.PRIVACY_NOTICE_VERSION, "survey_days": settings.SERVICEDESK_SURVEY_DAYS,
    }  # fmt: skip
    return render(request, "public/privacy.html", context)


def _in_their_language(request, language: str) -> None:
    """A page a link in the desk's mail opens (the survey, the status page) speaks the requester's language — the
    one their request came in, kept on the ticket — whatever the browser's Accept-Language says: a customer who wrote
    in Traditional Chinese got a Simplified-Chinese survey. A language picked in the page's menu (its cookie) still
    wins: that is the reader's own choice."""
    if language and not request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME):
        translation.activate(language)
        request.LANGUAGE_CODE = translation.get_language()


def _ticket_or_404(token: str):
    ticket = public.ticket_for_token(token)
    if ticket is None:
        raise Http404(_("No such request."))
    return ticket


@never_cache
@require_GET
def received(request, token: str):
    """After sending the form: the ticket number and the status link."""
    ticket = _ticket_or_404(token)
    link = request.build_absolute_uri(public.status_path(ticket))
    context = {"ticket": ticket, "status_link": link, "token": token, "link_mail": public.status_link_mail_state(ticket)}
    return render(request, "public/received.html", context)


@never_cache
@require_GET
def status(request, token: str):
    ticket = _ticket_or_404(token)
    _in_their_language(request, ticket.language)
    key, wording = public.customer_status(ticket)
    context = {"ticket": ticket, "status_key": key, "status_text": wording,
               "replies": list(public.customer_replies(ticket))}  # fmt: skip
    if ticket.merged_into_id:  # the request goes on under the other number: say which, and how it stands
        survivor = ticket.merged_into
        context["merged"] = {"number": survivor.number, "status_text": public.customer_status(survivor)[1],
                             "same_sender": public.same_sender(ticket, survivor)}  # fmt: skip
        if context["merged"]["same_sender"]:  # the same person's answers, wherever they were written
            context["replies"] = sorted([*context["replies"], *public.customer_replies(survivor)],
                                        key=lambda m: (m.created_at, m.pk))  # fmt: skip
    context["token"] = token
    return render(request, "public/status.html", context)


@never_cache
@require_GET
def reply_file(request, token: str, pk: int):
    """A file sent with an answer, for the customer holding the status link (the same files the reply
    e-mail carried); audited like an agent's download."""
    ticket = _ticket_or_404(token)
    attachment = public.reply_file(ticket, pk)
    if attachment is None:
        raise Http404(_("No such file."))
    from .attachments import file_response

    try:
        return file_response(None, attachment, channel="status_page")
    except FileNotFoundError:
        raise Http404(_("The file is missing from the storage.")) from None


SURVEY_PROBLEMS = {"invalid": 404, "used": 410, "expired": 410}


@never_cache
@csrf_protect
@require_http_methods(["GET", "POST"])
def survey(request, token: str):
    try:
        found = revisit.survey_for_token(token)
    except revisit.SurveyUnavailable as e:
        return render(request, "public/survey_unavailable.html", {"reason": e.reason},
                      status=SURVEY_PROBLEMS[e.reason])  # fmt: skip
    if found.ticket_id is not None:
        _in_their_language(request, found.ticket.language)
    elif found.person_id is not None:  # a campaign's survey: the language on the contact person's record, if any
        _in_their_language(request, found.person.preferred_language)
    form = SurveyAnswerForm(request.POST or None, campaign=found.ticket_id is None)
    status_code = 200
    if request.method == "POST":
        status_code = 400
        if form.is_valid():
            try:
                revisit.answer_survey(token, *form.answers())
            except revisit.SurveyUnavailable as e:
                return render(request, "public/survey_unavailable.html", {"reason": e.reason},
                              status=SURVEY_PROBLEMS[e.reason])  # fmt: skip
            except ValidationError as e:
                form.add_service_errors(e)
            else:
                return render(request, "public/survey_thanks.html", {"ticket": found.ticket})
    return render(request, "public/survey.html", {"form": form, "ticket": found.ticket, "campaign": found.campaign},
                  status=status_code)  # fmt: skip
