"""Core REST endpoints: API tokens, the audit trail (read-only), users and roles (administration)."""

from __future__ import annotations

import datetime
import re

import django_filters
from django import forms
from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.db import transaction
from django.utils import timezone
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django_otp.plugins.otp_totp.models import TOTPDevice
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle

from . import audit, personal, services, viewsets
from .api_utils import (
    MAX_INT32,
    Conflict,
    DateTimeFilter,
    HasCapability,
    IntegerFilter,
    ModelSerializer,
    RegionCodeField,
    Serializer,
    StrictBooleanFilter,
    expected_version,
    versioned,
    view_name,
)
from .middleware import needs_second_factor
from .models import ApiToken, AuditEntry, Region, Team, User
from .permissions_doc import role_capabilities
from .roles import READ_ONLY_ROLES, SECOND_FACTOR_ROLES, Cap, Role
from .services import (
    UserConflictError,
    create_user,
    deactivate_user,
    issue_second_factor_enrolment,
    update_user,
)
from .signatures import one_time_code
from .viewsets import APIView

A = AuditEntry.Action

# --- tokens ------------------------------------------------------------------------------------


class TokenCredentialsSerializer(Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False, style={"input_type": "password"})
    otp = serializers.CharField(
        max_length=20,
        required=False,
        allow_blank=True,
        help_text=(
            "Six-digit code from the authenticator app; required for admin, auditor and pv roles. Spaces and "
            "full-width digits are accepted (123 456, １２３４５６)."
        ),
    )

    def validate_otp(self, value: str) -> str:
        code = one_time_code(value)
        if value and not code:
            raise serializers.ValidationError(_("Enter the six-digit code from your authenticator app."))
        return code


class TokenResponseSerializer(Serializer):
    token = serializers.CharField()
    expires_at = serializers.DateTimeField()
    second_factor = serializers.BooleanField()


class _Throttled(str):
    """Why a code was refused without being checked (django-otp's wait after wrong codes): no failed sign-in."""


def _verify_totp(user, code: str) -> str:
    """An empty string if the code matches a confirmed TOTP device, else why not (django-otp throttles
    repeated failures with a growing delay and refuses a code that was already used)."""
    with transaction.atomic():
        devices = list(TOTPDevice.objects.devices_for_user(user, confirmed=True).select_for_update())
        waits = []
        for device in devices:
            allowed, info = device.verify_is_allowed()
            if not allowed:
                waits.append((info or {}).get("locked_until"))
                continue
            if device.verify_token(code):
                return ""
    if waits and len(waits) == len(devices) and all(waits):
        seconds = max(1, int((min(waits) - timezone.now()).total_seconds()) + 1)
        return _Throttled(
            ngettext(
                "Too many wrong codes: wait %(seconds)d second, then try again.",
                "Too many wrong codes: wait %(seconds)d seconds, then try again.",
                seconds,
            )
            % {"seconds": seconds}
        )
    return _("The one-time code is wrong or has expired.")


class TokenView(APIView):
    """POST /api/v1/auth/token/: trade a username, password (and one-time code) for an API token."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "token"

    @extend_schema(
        request=TokenCredentialsSerializer,
        responses={
            200: TokenResponseSerializer,
            400: OpenApiResponse(description="Wrong credentials or one-time code (per-field messages)."),
            429: OpenApiResponse(description="Too many attempts: locked out or throttled."),
        },
        auth=[],
        tags=["auth"],
    )
    def post(self, request):
        form = TokenCredentialsSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        http_request = request._request
        username = services.sign_in_name(data["username"])
        http_request.login_via = "api"  # the audit trail says so of a failed sign-in too
        user = authenticate(request=http_request, username=username, password=data["password"])
        if _locked_out(http_request):
            return _lockout_response()
        if user is None:
            # authenticate() has sent user_login_failed: axes counted it, the audit trail recorded it
            return Response(
                {"non_field_errors": [_("The username or password is incorrect.")]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        second_factor = needs_second_factor(user)
        if second_factor:
            code = data.get("otp", "")
            problem = self._second_factor_problem(user, code)
            if problem and code and not isinstance(problem, _Throttled):
                # a wrong code is a failed sign-in (counted towards the lockout, audited); a missing one only
                # tells the client to ask for it, and one sent during django-otp's wait was not even checked —
                # a script retrying the right code a second too early was locked out, as the web page never did
                user_login_failed.send(
                    sender=__name__, credentials={"username": username}, request=http_request,
                    reason="wrong one-time code",
                )
                if _locked_out(http_request):
                    return _lockout_response()
            if problem:
                return Response({"otp": [problem]}, status=status.HTTP_400_BAD_REQUEST)
        lifetime = datetime.timedelta(hours=settings.API_TOKEN_LIFETIME_HOURS)
        token, key = ApiToken.issue(user, lifetime, second_factor=second_factor)
        user_logged_in.send(sender=user.__class__, request=http_request, user=user)
        body = {"token": key, "expires_at": token.expires_at, "second_factor": token.second_factor}
        return Response(TokenResponseSerializer(body).data)

    @staticmethod
    def _second_factor_problem(user, code: str) -> str:
        if not TOTPDevice.objects.devices_for_user(user, confirmed=True).exists():
            return _(
                "Your role requires a second factor, and you have not set one up: ask an administrator for "
                "an enrolment code, then sign in on the web to set up your authenticator app."
            )
        if not code:
            return _(
                "Your role requires a second factor: send the six-digit code from your authenticator app as otp."
            )
        return _verify_totp(user, code)


def _locked_out(http_request) -> bool:
    """Whether django-axes refused this attempt; the flag is cleared so axes' HTML lockout page
    does not replace this endpoint's JSON answer."""
    locked = bool(getattr(http_request, "axes_locked_out", False))
    if locked:
        http_request.axes_locked_out = False
    return locked


def _lockout_response() -> Response:
    minutes = max(1, round(settings.AXES_COOLOFF_TIME * 60))
    message = ngettext(
        "Too many failed sign-in attempts. Try again in %(minutes)d minute.",
        "Too many failed sign-in attempts. Try again in %(minutes)d minutes.",
        minutes,
    ) % {"minutes": minutes}
    return Response(
        {"detail": message},
        status=status.HTTP_429_TOO_MANY_REQUESTS,
        headers={"Retry-After": str(minutes * 60)},
    )


# --- audit trail ------------------------------------------------------------------------------


class AuditEntryListSerializer(serializers.ListSerializer):
    def to_representation(self, data):
        """A page of entries: the labels their names in the reader's language need, a query per model for the page
        (not per entry)."""
        from .views import audit_names_for_language

        entries = list(data.all() if hasattr(data, "all") else data)
        self.child.context["_audit_names"] = audit_names_for_language(entries)
        return super().to_representation(entries)


class AuditEntrySerializer(ModelSerializer):
    class Meta:
        model = AuditEntry
        fields = [
            "seq", "at", "actor", "actor_name", "action", "object_type", "object_id", "object_repr", "changes",
            "extra", "request_id", "ip", "prev_hash", "hash",
        ]  # fmt: skip
        read_only_fields = fields
        list_serializer_class = AuditEntryListSerializer

    def to_representation(self, instance):
        """As recorded, except a customer's free text (needs, notes) with the contact details typed in it masked for a
        reader who sees personal data masked, as the audit page shows it, and the contact details in the entry's
        details (a deleted person's consent evidence) masked for them alike; and `object_repr`, where the entry
        names its record by codes or by words the product wrote (an acceptance's "2026-12-08 passed", a consent's
        purpose and status, an import job, "demo data"), in the request's language as the audit page names it. The
        stored entry keeps what was recorded (the hash chain covers it: `prev_hash` and `hash` are of that)."""
        from .views import audit_name_in_language, audit_names_for_language

        data = super().to_representation(instance)
        names = self.context.get("_audit_names")
        if names is None:  # one entry (/api/v1/audit/{seq}/)
            names = audit_names_for_language([instance])
        shown = audit_name_in_language(instance, names)
        if shown is not None:
            data["object_repr"] = shown
        if "_free_text_masked" not in self.context:
            request = self.context.get("request")
            self.context["_free_text_masked"] = request is None or personal.masks_free_text(request.user)
        data["changes"] = personal.audit_changes(instance.object_type, data["changes"], self.context["_free_text_masked"])
        data["extra"] = personal.audit_details(data["extra"], self.context["_free_text_masked"])
        if self.context["_free_text_masked"] and instance.object_type in personal.NAMED_BY_FREE_TEXT:
            data["object_repr"] = personal.audit_text(data.get("object_repr"), True)  # its subject
        return data


class AuditFilterForm(forms.Form):
    """The audit trail's filters, checked together: a range whose end is before its start is refused, naming `to`,
    as on the audit page; it answered an empty list, which read as "no such entries"."""

    def clean(self):
        data = super().clean()
        start, end = data.get("from"), data.get("to")
        if start is not None and end is not None:
            if _DAY.fullmatch(str(self.data.get("to", "")).strip()):
                end += datetime.timedelta(days=1)  # a day alone includes that whole day
            if start > end:
                self.add_error("to", _("The end date is before the start date."))
        return data


class AuditFilter(django_filters.FilterSet):
    actor = IntegerFilter(field_name="actor_id", min_value=1, max_value=2**63 - 1)
    actor_name = django_filters.CharFilter(
        method="by_actor", label="Username or display name (either case), as the audit page finds users."
    )
    action = django_filters.ChoiceFilter(choices=AuditEntry.Action.choices)
    object_type = django_filters.CharFilter()
    object_id = django_filters.CharFilter(method="about_object")
    request_id = django_filters.CharFilter()
    # "from" is a Python keyword, so these two are declared through the class namespace
    locals()["from"] = DateTimeFilter(field_name="at", lookup_expr="gte", label="From (inclusive)")
    locals()["to"] = DateTimeFilter(
        method="until",
        label="Until (exclusive); a date alone (2026-03-31) includes that whole day, as on the page.",
    )

    class Meta:
        model = AuditEntry
        fields: list[str] = []
        form = AuditFilterForm

    def about_object(self, qs, name, value):
        """The record's own entries and the reads of several records that include it (audit.about_object)."""
        return audit.about_object(qs, self.data.get("object_type", ""), value) if value else qs

    def by_actor(self, qs, name, value):
        value = value.strip()
        return qs.filter(audit.by_actor(value)) if value else qs

    def until(self, qs, name, value):
        """Before this moment; `to=2026-03-31` (a day, no time) means through that day — the page's "To" date
        is inclusive, and an auditor asking for one day's entries with from=to=that day got none."""
        if value is None:
            return qs
        if _DAY.fullmatch(str(self.data.get("to", "")).strip()):
            value += datetime.timedelta(days=1)
        return qs.filter(at__lt=value)


_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


class AuditEntryViewSet(viewsets.ReadOnlyModelViewSet):
    """The audit trail, newest first: read-only for everyone, visible to holders of audit.view."""

    queryset = AuditEntry.objects.all()
    serializer_class = AuditEntrySerializer
    permission_classes = [HasCapability]
    required_caps = {"*": Cap.VIEW_AUDIT}
    filterset_class = AuditFilter
    ordering_fields = ["seq"]
    ordering = ["-seq"]
    lookup_field = "seq"
    lookup_value_regex = r"[0-9]{1,18}"


# --- users and roles -------------------------------------------------------------------------


ROLE_CHOICES = [(r.value, r.label) for r in Role]


class UserSerializer(ModelSerializer):
    """A user as administrators and auditors read it: never a password hash, an authenticator's secret or an
    enrolment code (the password is write-only)."""

    roles = serializers.ListField(
        child=serializers.ChoiceField(choices=ROLE_CHOICES), required=False, label=gettext_lazy("Roles")
    )
    teams = serializers.PrimaryKeyRelatedField(
        many=True, queryset=Team.objects.all(), required=False,
        label=capfirst(User._meta.get_field("teams").verbose_name),
    )  # fmt: skip
    territory = RegionCodeField(
        many=True, queryset=Region.objects.all(), required=False,
        label=capfirst(User._meta.get_field("territory").verbose_name),
    )  # fmt: skip
    password = serializers.CharField(
        write_only=True,
        required=False,
        max_length=4096,
        trim_whitespace=False,
        style={"input_type": "password"},
        label=gettext_lazy("Password"),
    )
    version = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_INT32, label=gettext_lazy("Version"),
        help_text="On update: the version you loaded (or send it as If-Match); a newer one answers 409.",
    )  # fmt: skip

    class Meta:
        model = User
        fields = [
            "id", "username", "display_name", "first_name", "last_name", "email", "language", "is_active", "roles",
            "teams", "territory", "password", "version", "last_login", "date_joined",
        ]  # fmt: skip
        read_only_fields = ["id", "last_login", "date_joined"]

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["roles"] = sorted(r.value for r in instance.roles)
        return data

    def validate_username(self, value):
        """Unique in any letter case, as the Users page requires: "Agent" beside "agent" would be two accounts
        that the audit trail, the lockout and the people who read them cannot tell apart; nor can "ｋａｍ" in
        full-width letters, which sign-in reads as "kam" — it is saved in ordinary letters."""
        value = User.normalize_username(value).strip()
        clash = User.objects.filter(username__iexact=value)
        if self.instance is not None:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            raise serializers.ValidationError(_("A user with this username already exists."))
        return value

    def validate(self, attrs):
        if self.instance is None and not attrs.get("password"):
            raise serializers.ValidationError({"password": [_("Set a password for the new user.")]})
        return attrs


class UserFilter(django_filters.FilterSet):
    role = django_filters.ChoiceFilter(choices=ROLE_CHOICES, method="by_role")
    team = django_filters.ModelChoiceFilter(queryset=Team.objects.all(), field_name="teams")
    is_active = StrictBooleanFilter(help_text="true or false (also 1 / 0); anything else is refused (400).")
    username = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = User
        fields: list[str] = []

    def by_role(self, qs, name, value):
        from .views_users import with_role

        return qs.filter(with_role(value)) if value else qs


class SecondFactorEnrolmentSerializer(Serializer):
    code = serializers.CharField(
        help_text="One-time enrolment code (XXXX-XXXX-XXXX) to hand to the user; shown only this once."
    )
    expires_at = serializers.DateTimeField()


@extend_schema_view(
    destroy=extend_schema(
        description="Deactivate the user (users are never deleted) and revoke their API tokens."
    )
)
class UserViewSet(viewsets.ModelViewSet):
    """Users, their roles, teams and territory: administrators change them (every change is audited);
    administrators and auditors read them."""

    serializer_class = UserSerializer
    permission_classes = [HasCapability]
    # reading (list, one user, OPTIONS) needs users.view; everything else, the second factor included, users.manage
    required_caps = {
        "list": Cap.VIEW_USERS, "retrieve": Cap.VIEW_USERS, "OPTIONS": Cap.VIEW_USERS, "*": Cap.MANAGE_USERS,
    }  # fmt: skip
    filterset_class = UserFilter
    ordering_fields = ["username", "date_joined", "last_login"]
    ordering = ["username"]
    lookup_value_regex = r"[0-9]{1,18}"

    def get_queryset(self):
        return User.objects.prefetch_related("groups", "teams", "territory").distinct()

    def get_view_name(self):
        return view_name(self)

    def retrieve(self, request, *args, **kwargs):
        user = self.get_object()
        return versioned(Response(self.get_serializer(user).data), user)

    def update(self, request, *args, **kwargs):
        response = super().update(request, *args, **kwargs)
        return versioned(response, self._saved)

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        data.pop("version", None)
        serializer.instance = create_user(self.request.user, data)

    def perform_update(self, serializer):
        """PATCH and PUT send the version the client loaded (the field or If-Match): a user changed by someone
        else since answers 409 with the current version, as customers do."""
        data = dict(serializer.validated_data)
        version = expected_version(self.request, data.pop("version", None))
        try:
            self._saved = serializer.instance = update_user(
                self.request.user, serializer.instance, data, version
            )
        except UserConflictError as e:
            raise Conflict(str(e), e.current_version) from None

    def perform_destroy(self, instance):
        # If-Match (the ETag of the GET), when sent: a user changed by someone else since is not deactivated (409)
        version = expected_version(self.request, None) if self.request.headers.get("If-Match") else None
        try:
            deactivate_user(self.request.user, instance, version)
        except UserConflictError as e:
            raise Conflict(str(e), e.current_version) from None

    @extend_schema(
        request=None,
        responses={
            201: SecondFactorEnrolmentSerializer,
            403: OpenApiResponse(description="The caller may not manage users."),
            404: OpenApiResponse(description="No such user."),
        },
        description=(
            "Reset the user's second factor and issue a one-time enrolment code: every authenticator the "
            "user set up is removed, earlier codes become void and API tokens issued with the old second "
            "factor are revoked. At the next sign-in on the web the user enters this code, then sets up "
            "an authenticator app. The code is returned only in this answer (only its hash is stored) and "
            "is valid for OTP_ENROLMENT_HOURS (72)."
        ),
    )
    @action(detail=True, methods=["post"], url_path="second-factor", url_name="second-factor")
    def second_factor(self, request, pk=None):
        user = self.get_object()
        enrolment, code = issue_second_factor_enrolment(request.user, user)
        body = {"code": code, "expires_at": enrolment.expires_at}
        return Response(SecondFactorEnrolmentSerializer(body).data, status=status.HTTP_201_CREATED)


class RoleSerializer(Serializer):
    name = serializers.CharField(help_text="Role code; also the name of the Django group.")
    label = serializers.CharField()
    capabilities = serializers.ListField(child=serializers.ChoiceField(choices=Cap.choices))
    second_factor = serializers.BooleanField()
    read_only = serializers.BooleanField()


def role_data(role: Role) -> dict:
    return {
        "name": role.value,
        "label": str(role.label),
        "capabilities": [c.value for c in role_capabilities(role)],
        "second_factor": role in SECOND_FACTOR_ROLES,
        "read_only": role in READ_ONLY_ROLES,
    }


class RoleViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The roles and the capabilities each grants (docs/permissions.md in data form)."""

    serializer_class = RoleSerializer
    permission_classes = [IsAuthenticated]
    pagination_class = None
    filter_backends: list = []
    lookup_field = "name"
    lookup_value_regex = r"[a-z_]{1,32}"

    def get_queryset(self):
        return [role_data(r) for r in Role]

    def get_object(self):
        from django.http import Http404

        try:
            return role_data(Role(self.kwargs["name"]))
        except ValueError:
            raise Http404(_("No such role.")) from None

    @extend_schema(parameters=[], responses=RoleSerializer(many=True))
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(responses=RoleSerializer)
    def retrieve(self, request, *args, **kwargs):
        return super().retrieve(request, *args, **kwargs)
