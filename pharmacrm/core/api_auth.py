"""API authentication: `Authorization: Token <key>` against hashed ApiTokens, and sessions with 2FA."""

from __future__ import annotations

import datetime

from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from . import audit
from .middleware import needs_second_factor
from .models import ApiToken

# last_used_at is informational: writing it on every request would turn each read into a write.
LAST_USED_RESOLUTION = datetime.timedelta(minutes=1)


def bind_audit_user(request, user) -> None:
    """DRF authenticates after the middleware ran: tell the audit context who is acting now."""
    ctx = getattr(request._request, "audit_context", None) or audit.current()
    ctx.user = user
    audit.current().user = user


class TokenAuthentication(authentication.BaseAuthentication):
    """A bearer token issued by POST /api/v1/auth/token/; only its SHA-256 is stored."""

    keyword = "Token"

    def authenticate(self, request):
        parts = authentication.get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword.lower().encode():
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(_("Send the header as: Authorization: Token <token>."))
        try:
            key = parts[1].decode("ascii")
        except UnicodeError:
            raise exceptions.AuthenticationFailed(_("The token is invalid or has expired.")) from None
        return self.authenticate_key(request, key)

    def authenticate_key(self, request, key: str):
        token = ApiToken.objects.select_related("user").filter(key_hash=ApiToken.hash_key(key)).first()
        now = timezone.now()
        if token is None or token.expires_at <= now or not token.user.is_active:
            raise exceptions.AuthenticationFailed(_("The token is invalid or has expired."))
        user = token.user
        if needs_second_factor(user) and not token.second_factor:
            # e.g. a role needing 2FA was granted after the token was issued
            raise exceptions.AuthenticationFailed(
                _("Your role requires a second factor: request a new token with your one-time code.")
            )
        if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        bind_audit_user(request, user)
        return user, token

    def authenticate_header(self, request) -> str:
        # a WWW-Authenticate value makes DRF answer 401 (not 403) to unauthenticated requests
        return self.keyword


class SessionAuthentication(authentication.SessionAuthentication):
    """The browser session (Swagger UI, the web pages' htmx calls), refused until the second factor
    is verified for roles that need one: the web's OTP gate does not cover /api/."""

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is None:
            return None
        user = result[0]
        if needs_second_factor(user) and not getattr(request._request.user, "is_verified", lambda: False)():
            return None
        bind_audit_user(request, user)
        return result

    def enforce_csrf(self, request):
        """DRF refuses a session call without its CSRF token with "CSRF Failed: CSRF token missing." in English
        whatever the language asked for; the refusal is ours, in the request's language."""
        try:
            super().enforce_csrf(request)
        except exceptions.PermissionDenied:
            raise exceptions.PermissionDenied(
                _(
                    "The request was refused: a call signed in with the browser session must send the page's "
                    "security token (the X-CSRFToken header with the csrftoken cookie's value). Programs should "
                    "use an API token instead."
                ),
                code="csrf_failed",
            ) from None


class TokenScheme(OpenApiAuthenticationExtension):
    """How the OpenAPI schema describes the token header."""

    target_class = "pharmacrm.core.api_auth.TokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token <token>`, from POST /api/v1/auth/token/.",
        }


class SessionScheme(OpenApiAuthenticationExtension):
    target_class = "pharmacrm.core.api_auth.SessionAuthentication"
    name = "cookieAuth"

    def get_security_definition(self, auto_schema):
        from django.conf import settings

        return {"type": "apiKey", "in": "cookie", "name": settings.SESSION_COOKIE_NAME}
