"""Core pages: home dashboard, health check, sign-in with lockout and second factor, sign-out, audit viewer."""

from __future__ import annotations

import base64

import segno
from django.conf import settings
from django.contrib import auth, messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.signals import user_login_failed
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

from . import access, audit, personal, services, signals, signatures
from .forms import AuditFilterForm, EnrolmentCodeForm, LoginForm, OtpForm
from .local_urls import is_local
from .middleware import PENDING_LANGUAGE, may_keep_language, needs_second_factor
from .models import AuditEntry
from .roles import Cap

A = AuditEntry.Action
AUDIT_PAGE_SIZE = 50
CHANGE_ACTIONS = (A.CREATE, A.UPDATE, A.DELETE, A.MERGE, A.IMPORT)


def _posted(request):
    """The submitted data of a POST (even an empty one), None for other methods: binds forms correctly."""
    return request.POST if request.method == "POST" else None


def healthz(request):
    return HttpResponse("ok", content_type="text/plain")


def set_language(request):
    """The language menu (Django's `set_language`); a signed-in user's choice is also kept on the account,
    so that their pages, notifications and e-mails follow it on any browser."""
    from django.views.i18n import set_language as django_set_language

    response = django_set_language(request)
    language = request.POST.get("language", "") if request.method == "POST" else ""
    if language not in dict(settings.LANGUAGES):
        return response
    if may_keep_language(request.user):
        services.set_language(request.user, language)
    else:  # before signing in (or the second factor): the account takes it once signed in
        request.session[PENDING_LANGUAGE] = language
    return response


# --- dashboard ---------------------------------------------------------------------------------


@login_required
@require_GET
def home(request):
    from pharmacrm.customers.choices import InstitutionType
    from pharmacrm.customers.models import Institution, Person

    user = request.user
    context = {"recent": [], "institution_count": None, "person_count": None}
    if access.can(user, Cap.VIEW_CUSTOMERS):
        institutions = Institution.objects.active().exclude(kind=InstitutionType.DEPARTMENT)
        context["institution_count"] = access.institutions_for(user, institutions).count()
        context["person_count"] = access.people_for(user, Person.objects.active()).count()
    if access.can(user, Cap.MANAGE_SERVICE):
        from pharmacrm.servicedesk.calendars import coverage_gaps

        context["calendar_gaps"] = coverage_gaps()
    context["recent"] = list(
        AuditEntry.objects.filter(actor=user, action__in=CHANGE_ACTIONS).order_by("-seq")[:10]
    )
    masked = personal.masks_free_text(user)
    # records whose entries keep codes or a plain name (an acceptance, a consent, an import job): named in the reader's
    # language, as the audit page and the API name them — the entry's recorded name holds the codes
    names = audit_names_for_language(context["recent"])
    for entry in context["recent"]:
        shown = audit_name_in_language(entry, names)
        if shown:
            entry.object_repr = shown  # for the page only: never saved
        entry.url = _object_url(entry)
        if masked and entry.object_type in personal.NAMED_BY_FREE_TEXT:  # a ticket changed, named by its subject
            entry.object_repr = personal.audit_text(entry.object_repr, True)
    return render(request, "core/home.html", context)


# --- sign-in -----------------------------------------------------------------------------------


def _next_url(request, default: str = "") -> str:
    """The safe local address to continue to after signing in."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if is_local(request, target):
        return target
    return default or reverse(settings.LOGIN_REDIRECT_URL)


def _with_next(url_name: str, next_url: str) -> str:
    from urllib.parse import urlencode

    return reverse(url_name) + "?" + urlencode({"next": next_url})


def _cooloff_minutes(request) -> int:
    from axes.helpers import get_cool_off

    cool_off = get_cool_off(request)
    return max(1, round(cool_off.total_seconds() / 60)) if cool_off else 0


def lockout(request, credentials=None, *args, **kwargs):
    """django-axes' lockout response: a 403 page saying for how long the account is locked.

    Axes calls this as (request, original_response, credentials) or (request, credentials)."""
    return render(request, "core/lockout.html", {"minutes": _cooloff_minutes(request)}, status=403)


@sensitive_post_parameters("password")
@csrf_protect
@never_cache
def login_view(request):
    user = request.user
    if user.is_authenticated and (not needs_second_factor(user) or user.is_verified()):
        return redirect(_next_url(request))
    form = LoginForm(_posted(request))
    if request.method == "POST" and form.is_valid():
        username = services.sign_in_name(form.cleaned_data["username"])
        user = auth.authenticate(request=request, username=username, password=form.cleaned_data["password"])
        if getattr(request, "axes_locked_out", False):
            return lockout(request, {"username": username})
        if user is None:
            form.add_error(None, _("The username or password is not correct."))
        else:
            auth.login(request, user)
            if needs_second_factor(user):
                return redirect(_with_next("otp", _next_url(request)))
            return redirect(_next_url(request))
    return render(request, "core/login.html", {"form": form, "next": _next_url(request, default="")})


def _confirmed_devices(user):
    return list(TOTPDevice.objects.filter(user=user, confirmed=True))


def _otp_failed(request, user) -> None:
    """A wrong code counts as a failed login: audited, and towards the lockout limit."""
    user_login_failed.send(
        sender=__name__, credentials={"username": user.get_username()}, request=request, reason="wrong one-time code"
    )


def _second_factor_page(request):
    """Redirect away from the OTP pages when they do not apply, else None. An account locked since its password was
    given (wrong codes or passwords in other sessions) ends this session at the lockout page: a right code here
    signed in — and cleared the lock — although the account was locked."""
    if not request.user.is_authenticated:
        return redirect(_with_next("login", _next_url(request)))
    if not needs_second_factor(request.user) or request.user.is_verified():
        return redirect(_next_url(request))
    from axes.handlers.proxy import AxesProxyHandler

    username = request.user.get_username()
    if AxesProxyHandler.is_locked(request, {"username": username}):
        auth.logout(request)
        return lockout(request, {"username": username})
    return None


def _enrolment_page(request):
    """Redirect away from the enrolment page when it does not apply, else None. It serves the roles that
    need a second factor at sign-in until they passed it, and whoever signs (signatures.SIGNING_CAPS) and
    has no authenticator yet, whatever their role."""
    if not request.user.is_authenticated or needs_second_factor(request.user):
        return _second_factor_page(request)
    if not signatures.signs(request.user) or _confirmed_devices(request.user):
        return redirect(_next_url(request))
    return None


@never_cache
def otp_view(request):
    away = _second_factor_page(request)
    if away:
        return away
    devices = _confirmed_devices(request.user)
    if not devices:
        return redirect(_with_next("otp-enrol", _next_url(request)))
    form = OtpForm(_posted(request))
    if request.method == "POST" and form.is_valid():
        if not any(d.verify_is_allowed()[0] for d in devices):
            # django-otp slows down guessing after a wrong code; the code was not even checked
            form.add_error(
                "code", _("Too many wrong codes in a row. Wait a few seconds, then enter the current code.")
            )
            return render(request, "core/otp.html", {"form": form, "next": _next_url(request)})
        device = signatures.matching_device(request.user, form.cleaned_data["code"])
        if device is not None:
            otp_login(request, device)
            signals.second_factor_passed(request.user)
            return redirect(_next_url(request))
        form.add_error("code", _("This code is not correct or has expired. Try the current code."))
        user = request.user
        _otp_failed(request, user)
        if getattr(request, "axes_locked_out", False):
            auth.logout(request)
            return lockout(request, {"username": user.get_username()})
    return render(request, "core/otp.html", {"form": form, "next": _next_url(request)})


def _qr_svg(url: str) -> str:
    return segno.make(url, error="m").svg_inline(scale=5, border=2, dark="#111827", light="#ffffff")


def _secret_text(device: TOTPDevice) -> str:
    secret = base64.b32encode(device.bin_key).decode()
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


ENROLMENT_SESSION_KEY = "pharmacrm_otp_enrolment"


def _enrolment_code_error(problem: str) -> str:
    if problem == "expired":
        return _("This enrolment code has expired. Ask an administrator for a new one.")
    if problem == "used":
        return _(
            "This enrolment code has already been used or was replaced by a newer one. "
            "Ask an administrator for a new one."
        )
    return _("This enrolment code is not correct. Check it, or ask an administrator for a new one.")


ENROLMENT_GUESSES = "otp_enrol_wrong"  # session key: a signed-in signer's wrong codes on the enrolment page


def _refused(request, user):
    """Count a wrong code as a failed login; the lockout page when that was one too many, else None.

    A signer setting up the app for signatures has signed in already: as on the password page, a lockout that
    someone else's wrong passwords caused signs them out only once this session's own wrong codes reach the
    limit (a lockout blocks new sign-ins, docs/security.md). A role with a second factor is still signing
    in."""
    _otp_failed(request, user)
    if not needs_second_factor(user):
        guesses = request.session.get(ENROLMENT_GUESSES, 0) + 1
        request.session[ENROLMENT_GUESSES] = guesses
        if guesses < settings.AXES_FAILURE_LIMIT:
            request.axes_locked_out = False  # else axes' middleware answers with its lockout page
    if getattr(request, "axes_locked_out", False):
        auth.logout(request)
        return lockout(request, {"username": user.get_username()})
    return None


@sensitive_post_parameters("enrolment_code")
@never_cache
def otp_enrol_view(request):
    """Set up the authenticator app: first the one-time enrolment code an administrator issued, and
    only then the new TOTP secret (QR code) and its confirmation. Without the enrolment code, a
    password alone cannot register an authenticator. For the roles that need a second factor at sign-in,
    and for users who sign decisions (for their signature only)."""
    away = _enrolment_page(request)
    if away:
        return away
    user = request.user
    if _confirmed_devices(user):
        return redirect(_with_next("otp", _next_url(request)))
    enrolment_id = request.session.get(ENROLMENT_SESSION_KEY)
    enrolment = services.usable_enrolment(user, enrolment_id) if enrolment_id is not None else None
    if enrolment is None:
        request.session.pop(ENROLMENT_SESSION_KEY, None)
        return _enrolment_code_step(request, user, lapsed=enrolment_id is not None)
    return _authenticator_step(request, user, enrolment)


def _enrolment_code_step(request, user, lapsed: bool = False):
    """Step 1: ask for the enrolment code; no TOTP secret exists or is shown before it is valid."""
    context = {"step": "code", "next": _next_url(request), "at_sign_in": needs_second_factor(user)}
    if lapsed:
        # whatever was posted belonged to the set-up that lapsed: start again, saying why
        context["notice"] = _(
            "Your enrolment code has expired or was replaced by a newer one. Ask an administrator for a new one."
        )
        return render(request, "core/otp_enrol.html", {**context, "form": EnrolmentCodeForm()})
    form = EnrolmentCodeForm(_posted(request))
    if request.method == "POST" and form.is_valid():
        enrolment, problem = services.check_enrolment_code(user, form.cleaned_data["enrolment_code"])
        if enrolment is not None:
            # a fresh secret, created only now: nothing made before the code was given survives
            TOTPDevice.objects.filter(user=user, confirmed=False).delete()
            TOTPDevice.objects.create(user=user, name="default", confirmed=False)
            request.session[ENROLMENT_SESSION_KEY] = enrolment.pk
            return redirect(_with_next("otp-enrol", _next_url(request)))
        form.add_error("enrolment_code", _enrolment_code_error(problem))
        locked = _refused(request, user)
        if locked:
            return locked
    return render(request, "core/otp_enrol.html", {**context, "form": form})


def _authenticator_step(request, user, enrolment):
    """Step 2: show the new secret as a QR code and confirm it with a code from the app."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("id").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="default", confirmed=False)
    form = OtpForm(_posted(request))
    if request.method == "POST" and form.is_valid() and not device.verify_is_allowed()[0]:
        form.add_error(
            "code", _("Too many wrong codes in a row. Wait a few seconds, then enter the current code.")
        )
    elif request.method == "POST" and form.is_valid():
        if device.verify_token(form.cleaned_data["code"]):
            if not services.confirm_second_factor(user, enrolment.pk, device):
                # the enrolment code was replaced or ran out in the meantime: back to step 1, which says so
                return redirect(_with_next("otp-enrol", _next_url(request)))
            request.session.pop(ENROLMENT_SESSION_KEY, None)
            request.session.pop(ENROLMENT_GUESSES, None)
            otp_login(request, device)
            if needs_second_factor(user):
                signals.second_factor_passed(user)
            if needs_second_factor(user):
                done = _("Your authenticator app is set up. You will need a code at every sign-in.")
            else:
                done = _(
                    "Your authenticator app is set up. Enter a code from it whenever you sign a decision."
                )
            messages.success(request, done)
            return redirect(_next_url(request))
        form.add_error(
            "code", _("This code is not correct. Check the time on your phone and try the current code.")
        )
        locked = _refused(request, user)
        if locked:
            return locked
    context = {
        "step": "authenticator",
        "form": form,
        "qr_svg": _qr_svg(device.config_url),
        "secret": _secret_text(device),
        "next": _next_url(request),
        "at_sign_in": needs_second_factor(user),
    }
    return render(request, "core/otp_enrol.html", context)


PASSWORD_GUESSES = "password_change_wrong"  # session key: wrong present passwords given in this session


@login_required
@sensitive_post_parameters("old_password", "new_password1", "new_password2")
@csrf_protect
@never_cache
def password_change_view(request):
    """Every user changes their own password: the present one, then the new one twice, checked by the
    password rules. Saving signs out the user's other sessions and revokes their API tokens (audited); a wrong
    present password counts as a failed sign-in, so a session left open cannot be used to guess it: the session
    ends once it has given LOGIN_FAILURE_LIMIT wrong ones."""
    from django.contrib.auth.forms import PasswordChangeForm

    form = PasswordChangeForm(request.user, _posted(request))
    if request.method == "POST":
        if form.is_valid():
            form.save()
            auth.update_session_auth_hash(request, form.user)  # this session stays signed in
            request.session.pop(PASSWORD_GUESSES, None)
            messages.success(request, _("Your password was changed. Your other sessions were signed out."))
            return redirect("home")
        if form.has_error("old_password"):
            user_login_failed.send(
                sender=__name__,
                credentials={"username": request.user.get_username()},
                request=request,
                reason="wrong current password",
            )
            # The session ends after its own wrong guesses reach the limit, not after one typo of the real user while
            # someone else's wrong passwords have locked the account: a lockout blocks new sign-ins only, it signs
            # nobody out (docs/security.md), and this is the page that user needs most then.
            guesses = request.session.get(PASSWORD_GUESSES, 0) + 1
            request.session[PASSWORD_GUESSES] = guesses
            if getattr(request, "axes_locked_out", False):
                if guesses >= settings.AXES_FAILURE_LIMIT:
                    auth.logout(request)
                    return lockout(request, {"username": request.user.get_username()})
                request.axes_locked_out = False  # else axes' middleware answers with its lockout page
    return render(request, "core/password_change.html", {"form": form}, status=400 if form.errors else 200)


@require_POST
def logout_view(request):
    auth.logout(request)
    messages.info(request, _("You have signed out."))
    return redirect(settings.LOGOUT_REDIRECT_URL)


# --- audit trail -------------------------------------------------------------------------------


def _object_url(entry: AuditEntry) -> str:
    """A link to the customer an entry is about, when it still exists as a page."""
    routes = {"customers.institution": "customers:institution", "customers.person": "customers:person"}
    name = routes.get(entry.object_type)
    if name and entry.object_id.isdecimal() and entry.action != A.DELETE:
        return reverse(name, args=[int(entry.object_id)])
    return ""


# What entries about no model name as their kind: refused API calls and page requests, backups and restores, key
# rotations
OBJECTS_WITHOUT_MODEL = {
    "api": gettext_lazy("API request"),
    "core.backup": gettext_lazy("Backup"),
    "core.keyring": gettext_lazy("Encryption key ring"),
    "web": gettext_lazy("Web request"),
}


def _object_kinds(object_type: str) -> str:
    """What kind of record an entry is about, translated: the model's name, else the app's, else the code."""
    from django.apps import apps

    if object_type in OBJECTS_WITHOUT_MODEL:  # the page showed the code (core.backup) above the file's name
        return str(OBJECTS_WITHOUT_MODEL[object_type])
    try:
        if "." in object_type:
            return str(apps.get_model(object_type)._meta.verbose_name)
        return str(apps.get_app_config(object_type).verbose_name)
    except (LookupError, ValueError):
        return object_type


# The entries' records that have a page: "app.model" → (URL name, the records of that model the user may open)
def _object_pages():
    from pharmacrm.customers import importer
    from pharmacrm.keyaccounts import services as keyaccounts

    def with_cap(cap, scope=None):
        def scoped(user, qs):
            if not access.can(user, cap):
                return qs.none()
            return scope(user, qs) if scope is not None else qs

        return scoped

    return {
        "customers.institution": ("customers:institution", with_cap(Cap.VIEW_CUSTOMERS, access.institutions_for)),
        "customers.person": ("customers:person", with_cap(Cap.VIEW_CUSTOMERS, access.people_for)),
        "customers.importjob": (
            "customers:import-detail",
            lambda user, qs: qs.filter(target__in=list(importer.importable_targets(user))),
        ),
        "servicedesk.ticket": ("servicedesk:ticket", access.tickets_for),
        "engagement.interaction": ("engagement:interaction", access.interactions_for),
        "safety.safetycase": ("safety:case", access.cases_for),
        "keyaccounts.keyaccount": ("keyaccounts:account", keyaccounts.accounts_for),
        "keyaccounts.proposal": ("keyaccounts:proposal", keyaccounts.proposals_for),
        "core.user": ("users-edit", with_cap(Cap.MANAGE_USERS)),
    }


def _openable(user, entries) -> set[tuple[str, str]]:
    """(object type, id) of the entries' records that still exist and the user may open: one query per model."""
    from django.apps import apps

    pages = _object_pages()
    wanted: dict[str, set[int]] = {}
    for e in entries:
        if e.object_type in pages and e.object_id.isdecimal() and len(e.object_id) <= 18:
            wanted.setdefault(e.object_type, set()).add(int(e.object_id))
    out = set()
    for object_type, ids in wanted.items():
        scope = pages[object_type][1]
        model = apps.get_model(object_type)
        for pk in scope(user, model._default_manager.filter(pk__in=ids)).values_list("pk", flat=True):
            out.add((object_type, str(pk)))
    return out


# What entries about no single record name as their object (written by the code, in English)
SYSTEM_OBJECTS = {
    "progress report": gettext_lazy("progress report"),
    "demo data": gettext_lazy("demo data"),
    "demo": gettext_lazy("demo data"),
    "evaluate": gettext_lazy("evaluation run"),
    "reconciliation": gettext_lazy("reconciliation report"),
    # what an export wrote (its entry's object when the export is of no single record)
    "agreements": gettext_lazy("cooperation agreements"),
    "attainment": gettext_lazy("Attainment"),
    "grid": gettext_lazy("Set sales targets"),
    "list": gettext_lazy("Opportunities"),  # the pipeline's export
    "customer lifetime value": gettext_lazy("Customer lifetime value"),
    "certificates": gettext_lazy("Certificates"),
    "results": gettext_lazy("Training results"),
    "quality reviews": gettext_lazy("Quality reviews"),
    "complaint analysis": gettext_lazy("Complaint analysis"),
    "service performance": gettext_lazy("Service performance"),
    "loyalty overview": gettext_lazy("Loyalty programme"),
    "stage tasks": gettext_lazy("Stage tasks"),
    "channel effect": gettext_lazy("Channel effect"),
    "licences": gettext_lazy("Licences"),
    "sales while unqualified": gettext_lazy("Sales while unqualified"),
    "competitor presence": gettext_lazy("Competitor presence"),
}


# Entries whose record's name is looked up to word it in the reader's language (audit_name_in_language)
_NAMES_LOOKED_UP = ("customers.importjob", "servicedesk.servicegoal")


def audit_names_for_language(entries) -> dict[str, dict[str, str]]:
    """The labels audit_name_in_language needs for these entries (an import job's, a service goal's team): a query
    per model, none when no entry needs one."""
    from .templatetags.crm import audit_labels

    wanted = [e for e in entries if e.object_type in _NAMES_LOOKED_UP]
    return audit_labels(wanted) if wanted else {}


def audit_name_in_language(entry, names) -> str | None:
    """The name of an entry's record as the reader's language words it, where the entry keeps codes or a name the
    product wrote rather than one a person typed: an acceptance (2026-12-08 通过), a consent, a service goal (by
    AUDIT_NAMED_BY_CODES), an import job (its kind of data · its file), an entry about no single record ("demo data",
    an export of a list); None when the recorded name stands. For a page or the API only: the stored entry, which
    the hash chain covers, keeps what was recorded. `names`: audit_names_for_language (or audit_labels) of the
    entries."""
    from .templatetags.crm import audit_record_name

    if entry.object_type == "customers.importjob" and entry.object_id:
        job = names.get(entry.object_type, {}).get(entry.object_id)
        if job:
            return job
    named = audit_record_name(entry, names)
    if named is not None:
        return named
    if not entry.object_id and entry.object_repr in SYSTEM_OBJECTS:
        return str(SYSTEM_OBJECTS[entry.object_repr])
    return None


def _audit_rows(user, entries) -> None:
    """Give each entry what the audit page shows: its record (kind, current label, link when the user may open
    it), its changes and its details as people read them — with a query per model on the page, not per row."""
    from django.urls import NoReverseMatch

    from .templatetags.crm import audit_detail, audit_display, audit_label, audit_labels, audit_record_name

    masked = personal.masks_free_text(user)
    names = personal.audit_names(audit_labels(entries), masked)  # the records an entry names (tickets read …)
    openable = _openable(user, entries)
    pages = _object_pages()
    for e in entries:
        e.kind = _object_kinds(e.object_type) if e.object_type else ""
        current = names.get(e.object_type, {}).get(e.object_id) if e.object_id else None
        if current is None:  # named by codes, in the reader's language (a service goal: its team and indicator)
            current = audit_record_name(e, names)
        if current is not None:
            e.label = current
        elif e.action == A.READ_PERSONAL and not e.object_id:
            e.label = ""  # the entry's object is the number of people read, shown with the details
        elif not e.object_id and e.object_repr in SYSTEM_OBJECTS:
            e.label = str(SYSTEM_OBJECTS[e.object_repr])
        else:
            e.label = e.object_repr
        if masked and e.object_type in personal.NAMED_BY_FREE_TEXT:  # named by its subject: 请回电 139…
            e.label = personal.audit_text(e.label, True)
        e.url = ""
        if (e.object_type, e.object_id) in openable and e.action != A.DELETE:
            try:
                e.url = reverse(pages[e.object_type][0], args=[int(e.object_id)])
            except NoReverseMatch:
                e.url = ""
        changes = e.changes if isinstance(e.changes, dict) else {}
        changes = personal.audit_changes(e.object_type, changes, masked)  # contact details typed in notes
        e.change_rows = []
        for name, pair in changes.items():
            before, after = pair if isinstance(pair, list) and len(pair) == 2 else (None, pair)
            e.change_rows.append((
                audit_label(e.object_type, name),
                audit_display(e.object_type, name, before, names),
                audit_display(e.object_type, name, after, names),
            ))  # fmt: skip
        extra = personal.audit_details(e.extra if isinstance(e.extra, dict) else {}, masked)
        path = e.object_repr if e.object_type == "api" else ""  # a refused API call: its endpoint is named
        e.detail_rows = [
            (audit_label(e.object_type, name), audit_detail(e.object_type, name, value, names, path))
            for name, value in extra.items()
        ]


@login_required
@require_http_methods(["GET", "HEAD", "POST"])  # POST: verify the chain
def audit_list(request):
    access.require(request.user, Cap.VIEW_AUDIT)
    verify_result = None
    if request.method == "POST" and request.POST.get("verify"):
        verify_result = audit.verify()
    form = AuditFilterForm(request.GET or None)
    qs = AuditEntry.objects.select_related("actor").order_by("-seq")
    if form.is_bound and form.is_valid():
        # the user filter matches a username or a display name in either case (the form's own filter
        # compares the recorded username exactly)
        actor = (form.cleaned_data.pop("actor", "") or "").strip()
        qs = form.filter(qs)
        if actor:
            qs = qs.filter(audit.by_actor(actor))
    elif form.is_bound:  # a wrong filter (a date that does not exist, "to" before "from") shows nothing, not all
        qs = qs.none()
    before = request.GET.get("before", "")
    if before.isdecimal() and len(before) <= 18:
        qs = qs.filter(seq__lt=int(before))
    entries = list(qs[: AUDIT_PAGE_SIZE + 1])
    has_more = len(entries) > AUDIT_PAGE_SIZE
    entries = entries[:AUDIT_PAGE_SIZE]
    _audit_rows(request.user, entries)
    context = {
        "form": form,
        "entries": entries,
        "older_seq": entries[-1].seq if has_more and entries else None,
        "paged": before.isdecimal(),
        "verify_result": verify_result,
    }
    return render(request, "core/audit_list.html", context)


# --- error pages (urls.handler400/403/404/500) ---------------------------------------------------


def _is_api(request) -> bool:
    """Requests under /api/ get errors as JSON {"detail": …}, the way DRF answers inside its views."""
    return request.path_info.startswith("/api/")


def _own_message(exception) -> str:
    """The message our code gave the exception (PermissionDenied(_("…")), Http404(_("…"))), in the request's
    language; "" for a bare exception or one whose argument is not a message of ours (Django's resolver
    passes a dict, get_object_or_404 an English "No X matches the given query.")."""
    from django.utils.functional import Promise

    from .api_utils import _DJANGO_NOT_FOUND

    args = getattr(exception, "args", None) or ()
    if len(args) != 1 or not isinstance(args[0], (str, Promise)):
        return ""
    message = str(args[0]).strip()
    if not message or len(message) > 1000 or _DJANGO_NOT_FOUND.match(message):
        return ""
    return message


def _json_error(detail, status: int):
    from django.http import JsonResponse

    return JsonResponse({"detail": str(detail)}, status=status, json_dumps_params={"ensure_ascii": False})


def bad_request(request, exception):
    from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
    from django.views import defaults
    from rest_framework.exceptions import ParseError

    if _is_api(request):
        # a body over the limit answered 400 "Malformed request.": an integrator looked for a fault in valid JSON
        size = settings.DATA_UPLOAD_MAX_MEMORY_SIZE // (1024 * 1024)
        if isinstance(exception, RequestDataTooBig):
            return _json_error(_("The request body is larger than the %(size)s MB the API accepts: send less at "
                                 "once, or upload long documents as files.") % {"size": size}, 413)  # fmt: skip
        if isinstance(exception, TooManyFieldsSent):
            return _json_error(_("The request has more parameters or form fields than the %(count)s the API "
                                 "accepts.") % {"count": settings.DATA_UPLOAD_MAX_NUMBER_FIELDS}, 400)  # fmt: skip
        return _json_error(ParseError.default_detail, 400)

    if isinstance(exception, RequestDataTooBig):  # a pasted document of megabytes in a text field
        message = _("The form holds more text than the %(size)s MB a form may carry: shorten it, or attach long "
                    "documents as files.") % {"size": settings.DATA_UPLOAD_MAX_MEMORY_SIZE // (1024 * 1024)}
    elif isinstance(exception, TooManyFieldsSent):
        message = _("The form has more fields than a form may carry.")
    else:
        message = _("The request was malformed or incomplete.")
    try:
        return render(request, "400.html", {"message": message}, status=400)
    except Exception:  # noqa: BLE001 — the page of last resort must not fail
        return defaults.bad_request(request, exception)


def permission_denied(request, exception):
    """The 403 page says why when our code said it (merged record, not the proposer …), with a link when the
    exception carries one (`link = (url, text)`, e.g. to the record a duplicate was merged into)."""
    from rest_framework.exceptions import PermissionDenied as ApiPermissionDenied

    message = _own_message(exception)
    if _is_api(request):
        return _json_error(message or ApiPermissionDenied.default_detail, 403)
    _audit_refused_write(request)
    link = getattr(exception, "link", None)
    url, text = link if isinstance(link, tuple) and len(link) == 2 else ("", "")
    context = {"message": message, "link_url": str(url or ""), "link_text": str(text or "")}
    return render(request, "403.html", context, status=403)


def _audit_refused_write(request) -> None:
    """A form sent to a page the user may not change (a user page, another team's record) is traced as the API's
    refused writes are: "access denied", the page and the method. Refused reads are not: they would flood the trail.
    The 403 page itself is shown whatever happens here."""
    import logging

    from rest_framework import permissions

    from .api_utils import clean_text

    user = getattr(request, "user", None)
    if request.method in permissions.SAFE_METHODS or user is None or not user.is_authenticated:
        return
    match = getattr(request, "resolver_match", None)
    try:
        audit.record(
            A.ACCESS_DENIED, ("web", "", clean_text(request.path)), user=user, method=request.method,
            view=(match.view_name if match is not None else "") or "",
        )  # fmt: skip
    except Exception:  # noqa: BLE001 — the page of last resort must not fail
        logging.getLogger(__name__).exception("A refused write could not be audited")


def csrf_failure(request, reason=""):
    """A form sent without its security token (a page kept open too long, cookies blocked): the product's own
    403 page in the reader's language, not Django's English one with its debugging hint."""
    message = _("The form could not be accepted: it has expired or your browser blocked its cookie. Reload the "
                "page and send it again.")  # fmt: skip
    if _is_api(request):
        return _json_error(message, 403)
    return render(request, "403.html", {"message": message, "link_url": "", "link_text": ""}, status=403)


def page_not_found(request, exception):
    from django.views import defaults
    from rest_framework.exceptions import NotFound

    if _is_api(request):
        return _json_error(_own_message(exception) or NotFound.default_detail, 404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    from django.views import defaults
    from rest_framework.exceptions import APIException

    if _is_api(request):
        return _json_error(APIException.default_detail, 500)
    return defaults.server_error(request)
