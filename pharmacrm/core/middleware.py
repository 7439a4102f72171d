"""Request id and audit context per request; the second-factor gate for privileged roles; a clear answer when
the database is busy."""

from __future__ import annotations

import ipaddress
import re
import uuid

from django.conf import settings
from django.shortcuts import redirect
from django.urls import reverse

from . import audit
from .roles import SECOND_FACTOR_ROLES

# A request id the client may choose: letters, digits, "._-", at most 64 (the audit column's width). Matched in
# full: "$" also matches before a final newline, and "abc\n" was kept — a 500 when the answer's header was
# written, after the audit entries of the request had been saved with the newline in them.
_SAFE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def client_ip(request) -> str | None:
    """The client's address for the audit trail and the web form's rate limit: REMOTE_ADDR, or — only when
    settings say our own reverse proxy sits in front (SERVICEDESK_TRUST_X_FORWARDED_FOR) — the last address
    that proxy appended to X-Forwarded-For (one the client wrote itself comes before it).

    The address is written the way the database stores it (Django's GenericIPAddressField): an audit entry's
    hash is computed from this text and checked later against the stored one, so an IPv4 client of a proxy or
    server listening on IPv6 (`::ffff:10.1.2.3`, which Python writes `::ffff:a01:203`) or an address in capitals
    or in full made every entry of the request read as edited in `audit verify`."""
    address = _stored_form(request.META.get("REMOTE_ADDR") or "")
    if getattr(settings, "SERVICEDESK_TRUST_X_FORWARDED_FOR", False):
        forwarded = [a.strip() for a in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if a.strip()]
        if forwarded:
            # not an address: the proxy's own connection is what we know
            address = _stored_form(forwarded[-1]) or address
    return address


def _stored_form(text: str) -> str | None:
    """An IP address as the database keeps it (IPv6 compressed, lower case, IPv4-mapped as ::ffff:a.b.c.d, no
    zone); None for what is no address."""
    from django.utils.ipv6 import clean_ipv6_address

    try:
        parsed = ipaddress.ip_address(text.strip().split("%", 1)[0])
    except ValueError:
        return None
    return clean_ipv6_address(str(parsed)) if parsed.version == 6 else str(parsed)


class RequestIdMiddleware:
    """Give each request an id (or keep a sane X-Request-ID) and open its audit context."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        given = request.headers.get("X-Request-ID", "")
        request.request_id = given if _SAFE_ID.fullmatch(given) else uuid.uuid4().hex
        ctx = audit.RequestContext(user=None, request_id=request.request_id, ip=client_ip(request))
        request.audit_context = ctx
        token = audit.set_context(ctx)
        try:
            response = self.get_response(request)
        finally:
            audit.reset_context(token)
        response["X-Request-ID"] = request.request_id
        if ctx.not_to_keep:
            # a page, an API answer or a download that showed personal data (audited as read or export): neither
            # the browser's cache — a call centre's shared PC, after signing out — nor a proxy keeps a copy
            from django.utils.cache import patch_cache_control

            patch_cache_control(response, private=True, no_store=True)
        return response


def needs_second_factor(user) -> bool:
    from .access import roles_of  # superusers count as admins, so they need the second factor too

    return bool(user.is_authenticated and roles_of(user).intersection(SECOND_FACTOR_ROLES))


class SecondFactorMiddleware:
    """Bind the user to the audit context; keep a privileged user without a verified OTP on the OTP pages."""

    EXEMPT_PREFIXES = ("/static/", "/api/", "/i18n/", "/healthz")
    # the sign-in pages themselves; not the rest of /accounts/ (the audit trail lives there too)
    EXEMPT_VIEWS = ("login", "otp", "otp-enrol", "logout")

    def __init__(self, get_response):
        self.get_response = get_response
        self._exempt_paths: frozenset[str] | None = None

    def _exempt(self, path: str) -> bool:
        if path.startswith(self.EXEMPT_PREFIXES):
            return True
        if self._exempt_paths is None:
            self._exempt_paths = frozenset(reverse(name) for name in self.EXEMPT_VIEWS)
        return path in self._exempt_paths

    def __call__(self, request):
        if hasattr(request, "audit_context") and request.user.is_authenticated:
            request.audit_context.user = request.user
        if needs_second_factor(request.user) and not request.user.is_verified() and not self._exempt(request.path):
            from urllib.parse import urlencode

            # encoded: the page's own query (?status=open&page=2) stays whole instead of ending at its first "&"
            return redirect(reverse("otp") + "?" + urlencode({"next": request.get_full_path()}))
        return self.get_response(request)


class HtmxSignInMiddleware:
    """A part of a page fetched by htmx (the search suggestions, a customer panel, the ticket conversation) when
    the session has ended (8 hours, signed out in another tab, password changed) or the one-time code is due:
    the redirect to the sign-in page is not followed inside the XHR — that pasted the whole sign-in page into
    the suggestions box or the panel — but turned into a navigation of the whole page (HX-Redirect), and after
    signing in the user comes back to the page they were on, not to the fragment's address."""

    SIGN_IN_VIEWS = ("login", "otp", "otp-enrol")

    def __init__(self, get_response):
        self.get_response = get_response
        self._paths: frozenset[str] | None = None

    def __call__(self, request):
        response = self.get_response(request)
        if not request.headers.get("HX-Request") or response.status_code not in (301, 302, 303, 307, 308):
            return response
        from urllib.parse import urlencode, urlsplit

        from django.http import HttpResponse
        from django.utils.http import url_has_allowed_host_and_scheme

        if self._paths is None:
            self._paths = frozenset(reverse(name) for name in self.SIGN_IN_VIEWS)
        location = urlsplit(response.get("Location", ""))
        if location.path not in self._paths:
            return response
        current = request.headers.get("HX-Current-URL", "")
        page = "/"
        if current and url_has_allowed_host_and_scheme(current, {request.get_host()}, request.is_secure()):
            parts = urlsplit(current)
            page = parts.path + (f"?{parts.query}" if parts.query else "") or "/"
        if urlsplit(page).path in self._paths:
            page = "/"
        answer = HttpResponse(status=204)  # nothing to swap; htmx navigates the whole page
        answer["HX-Redirect"] = location.path + "?" + urlencode({"next": page})
        return answer


PENDING_LANGUAGE = "language_chosen"  # session key: a language picked in the menu before signing in


def may_keep_language(user) -> bool:
    """Whether the user's language choice may be saved on the account: signed in, and past the second
    factor when their role needs one (a password alone changes nothing stored)."""
    if user is None or not user.is_authenticated:
        return False
    return not needs_second_factor(user) or user.is_verified()


class UserLanguageMiddleware:
    """A signed-in user's pages are in the language they chose (`User.language`, set by the language menu),
    whichever browser they use; the language cookie follows it. A language picked in the menu on the sign-in
    page (kept in the session, not read from a cookie another user of the browser may have left) becomes
    the account's once the user is signed in, past the second factor. The API keeps answering in the
    request's Accept-Language."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        from django.conf import settings
        from django.utils import translation

        user = getattr(request, "user", None)
        chosen = ""
        if user is not None and user.is_authenticated and not request.path.startswith(("/api/", "/i18n/")):
            chosen = user.language
            session = getattr(request, "session", None)
            pending = session.get(PENDING_LANGUAGE) if session is not None else None
            if pending and may_keep_language(user):
                from .services import set_language

                del session[PENDING_LANGUAGE]
                chosen = set_language(user, pending) or chosen
            if chosen:
                translation.activate(chosen)
                request.LANGUAGE_CODE = translation.get_language()
        response = self.get_response(request)
        if chosen and request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME) != chosen:
            response.set_cookie(
                settings.LANGUAGE_COOKIE_NAME, chosen, max_age=settings.LANGUAGE_COOKIE_AGE,
                path=settings.LANGUAGE_COOKIE_PATH, domain=settings.LANGUAGE_COOKIE_DOMAIN,
                secure=settings.LANGUAGE_COOKIE_SECURE, httponly=settings.LANGUAGE_COOKIE_HTTPONLY,
                samesite=settings.LANGUAGE_COOKIE_SAMESITE,
            )  # fmt: skip
        return response


def database_busy(exception: BaseException) -> bool:
    """A write that gave up waiting for the database: SQLite's single writer held past the 20 s timeout (an
    all-or-nothing import, a restore), or PostgreSQL's lock_timeout where an operator set one."""
    from django.db import OperationalError

    if not isinstance(exception, OperationalError):
        return False
    if getattr(exception.__cause__, "sqlstate", None) == "55P03":  # lock_not_available
        return True
    text = str(exception).lower()
    return "database is locked" in text or "database table is locked" in text


class DatabaseBusyMiddleware:
    """Tell the user their change was not saved because the database was busy, and to try again — a 503 with
    Retry-After, in their language (JSON under /api/) — instead of "Server error". The transaction was rolled
    back, so nothing is half-written."""

    RETRY_AFTER = 30  # seconds

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not database_busy(exception):
            return None
        from django.shortcuts import render
        from django.utils.translation import gettext as _

        from .views import _is_api, _json_error

        message = _("The database is busy with another long task, such as an import, so your change was not "
                    "saved. Please try again in a minute.")  # fmt: skip
        if _is_api(request):
            response = _json_error(message, 503)
        else:
            from django.utils.http import url_has_allowed_host_and_scheme

            back = request.headers.get("Referer", "")  # the page the form was on, to send it again from
            if not url_has_allowed_host_and_scheme(back, {request.get_host()}, require_https=request.is_secure()):
                back = ""
            response = render(request, "503.html", {"message": message, "back": back}, status=503)
        response["Retry-After"] = str(self.RETRY_AFTER)
        return response


class NulCharacterMiddleware:
    """Refuse a NUL character (%00) in the address or in a query parameter (its name or its value) before any view
    reads it: PostgreSQL refuses NUL in text, so a filter, a search or a look-up that took one to the database
    answered with a server error (500) — where SQLite matched nothing — and no value a user means holds one.
    Answers 400 naming the parameter, in the reader's language: {"name": ["…"]} under /api/ (the shape of a
    filter's error), the error page otherwise. Bodies are the forms' and the serializers' to refuse (their text
    fields refuse NUL by name)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        query = request.META.get("QUERY_STRING", "")
        if "\x00" in request.path_info or "%00" in query or "\x00" in query:
            response = self._refusal(request)
            if response is not None:
                return response
        return self.get_response(request)

    @staticmethod
    def _refusal(request):
        from django.shortcuts import render
        from django.utils.translation import gettext as _

        from .views import _is_api, _json_error

        if "\x00" in request.path_info:
            message = _("The address contains a NUL character (%(nul)s), which no address may hold: remove it and "
                        "try again.") % {"nul": "%00"}  # fmt: skip
            if _is_api(request):
                return _json_error(message, 400)
            return render(request, "400.html", {"message": message}, status=400)
        named = next(
            (key for key, values in request.GET.lists() if "\x00" in key or any("\x00" in v for v in values)), None
        )
        if named is None:  # "%00" spelt inside another escape ("%2500" is the text "%00")
            return None
        shown = named.replace("\x00", "\ufffd")[:60]
        message = _("“%(name)s” contains a NUL character (%(nul)s), which no value may hold: remove it and send "
                    "the request again.") % {"name": shown, "nul": "%00"}  # fmt: skip
        if _is_api(request):
            from django.http import JsonResponse

            return JsonResponse({shown: [message]}, status=400, json_dumps_params={"ensure_ascii": False})
        return render(request, "400.html", {"message": message}, status=400)
