"""REST API of the key-account programme's day-to-day work (/api/v1/keyaccounts/…): the service team's members,
service meetings with their action items, new-product trial offers, the quarterly and annual evaluations of each
key account (account reviews), the team members' scorecards, and the resource and incentive records (discount
level, reward programme) the customer evaluation produces. Generating and signing agreements are actions of
api_programme's agreement endpoints.

Reads are scoped like the pages (services.accounts_for, views_eval.scores_for). Every write goes through
keyaccounts.services, which decides who may do it, validates, writes and audits: its ValidationErrors come back
as 400 with messages per field, its refusals as 403."""

from __future__ import annotations

import re

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from pharmacrm.core import access, personal, viewsets
from pharmacrm.core.api_utils import (
    DateField,
    HasCapability,
    ModelSerializer,
    NoWritesForReadOnlyRoles,
    QuerySerializer,
    SafeDateTimeField,
    Serializer,
    clean_text,
    validation_detail,
)
from pharmacrm.core.models import User
from pharmacrm.core.roles import READ_ONLY_ROLES, Cap
from pharmacrm.customers.forms import CUSTOMER_NAME_HELP, picker_label
from pharmacrm.servicedesk.models import Product

from . import services
from .api_eval import CappedClassFields, KlassField, _ScoreQuery
from .api_programme import TAGS, VersionSerializer, _enum, _version_sent, _versioned
from .choices import ModelKind, TeamRole, TrialStatus
from .models import AccountReview, KeyAccount, Meeting, MeetingAction, Score, TeamMember, TrialOffer

MAX_ID = 2**63 - 1
MAX_ACTIONS = 50  # action items in one meeting's minutes

TeamRoleField = _enum(TeamRole, "KeyAccountTeamRole")
TrialStatusField = _enum(TrialStatus, "TrialOfferStatus")

ACCOUNT = OpenApiParameter("account", int, description="A key account's id: only its records.")
CUSTOMER = OpenApiParameter("customer", int, description="An institution id.")
ERRORS = OpenApiResponse(description="Messages per field, in the request's language (Accept-Language).")
DENIED = OpenApiResponse(description="Not allowed for you on this key account (with the reason in `detail`).")


def register(router) -> None:
    """Called from api_programme.register, before the key-account files (`keyaccounts/{id}/`)."""
    router.register("keyaccounts/members", TeamMemberViewSet, basename="ka-member")
    router.register("keyaccounts/meetings", MeetingViewSet, basename="ka-meeting")
    router.register("keyaccounts/meeting-actions", MeetingActionViewSet, basename="ka-meeting-action")
    router.register("keyaccounts/trials", TrialViewSet, basename="ka-trial")
    router.register("keyaccounts/account-reviews", AccountReviewViewSet, basename="ka-account-review")
    router.register("keyaccounts/scorecards", ScorecardViewSet, basename="ka-scorecard")
    router.register("keyaccounts/incentives", IncentiveViewSet, basename="ka-incentive")


def _text(data: dict) -> dict:
    return {k: clean_text(v) if isinstance(v, str) else v for k, v in data.items()}


def _account(user, pk: int) -> KeyAccount:
    """The key account named in a request body, if the user may see it (else a 400 on `account`)."""
    account = services.accounts_for(user).select_related("institution", "team").filter(pk=pk).first()
    if account is None:
        raise serializers.ValidationError({"account": [_("No such key account, or you may not see it.")]})
    return account


class AccountQuery(QuerySerializer):
    account = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)


def _query(view, form_class=AccountQuery) -> dict:
    form = form_class(data=view.request.query_params)
    form.is_valid(raise_exception=True)
    return form.validated_data


class AccountField(serializers.IntegerField):
    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", "The key account's id.")
        super().__init__(min_value=1, max_value=MAX_ID, **kwargs)


class _Scoped(viewsets.GenericViewSet):
    """Records of the key accounts the user may see; `?account=` narrows a list to one account."""

    permission_classes = [HasCapability, NoWritesForReadOnlyRoles]
    required_caps: dict = {"*": Cap.VIEW_KEY_ACCOUNTS}
    filter_backends: list = []
    lookup_value_regex = r"[0-9]{1,18}"

    def scoped(self):
        raise NotImplementedError

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        qs = self.scoped()
        if self.action == "list":
            account = _query(self).get("account")
            if account:
                qs = qs.filter(account_id=account)
        return qs

    def _answer(self, obj, code: int = status.HTTP_200_OK) -> Response:
        obj = self.scoped().get(pk=obj.pk)
        return Response(self.get_serializer_class()(obj, context=self.get_serializer_context()).data, status=code)


# --- the service team ---------------------------------------------------------------------------------


class TeamMemberSerializer(ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)
    name = serializers.CharField(source="user.__str__", read_only=True)
    role = TeamRoleField(read_only=True)

    class Meta:
        model = TeamMember
        fields = ["id", "account", "user", "username", "name", "role", "since"]
        read_only_fields = fields


class TeamMemberCreateSerializer(Serializer):
    account = AccountField()
    user = serializers.PrimaryKeyRelatedField(queryset=User.objects.all(), help_text="The user's id.")
    role = TeamRoleField(help_text="pm (project manager; a key-account manager or manager), expert (a product "
                                   "expert), support (technical support) or aftersales (after-sales staff).")  # fmt: skip



@extend_schema_view(
    list=extend_schema(tags=TAGS, parameters=[ACCOUNT],
                       description="The service teams of the key accounts you may see, by account and role."),
    retrieve=extend_schema(tags=TAGS),
    create=extend_schema(
        tags=TAGS, request=TeamMemberCreateSerializer, responses={201: TeamMemberSerializer, 400: ERRORS, 403: DENIED},
        description="Put a user in an account's service team in a role their system role allows (administrators, "
                    "managers and the account's project manager).",
    ),
    destroy=extend_schema(
        tags=TAGS, responses={204: None, 400: ERRORS, 403: DENIED},
        description="Take a member out of the team; their open plan items and open meeting actions must be given "
                    "to someone else first (a 400 names the actions; PATCH keyaccounts/meeting-actions/{id}/ changes "
                    "an action's owner).",
    ),
)  # fmt: skip
class TeamMemberViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                        mixins.DestroyModelMixin, _Scoped):  # fmt: skip
    """Members of key accounts' service teams (project manager, product expert, technical support, after-sales)."""

    queryset = TeamMember.objects.none()
    serializer_class = TeamMemberSerializer
    required_caps = {"create": Cap.MANAGE_KEY_ACCOUNTS, "destroy": Cap.MANAGE_KEY_ACCOUNTS,
                     "*": Cap.VIEW_KEY_ACCOUNTS}  # fmt: skip

    def scoped(self):
        return (
            TeamMember.objects.filter(account__in=services.accounts_for(self.request.user))
            .select_related("user", "account__team")
            .order_by("account_id", "role", "id")
        )

    def create(self, request, *args, **kwargs):
        form = TeamMemberCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        d = form.validated_data
        account = _account(request.user, d["account"])
        member = services.add_member(request.user, account, d["user"], d["role"])
        return self._answer(member, status.HTTP_201_CREATED)

    def destroy(self, request, *args, **kwargs):
        services.remove_member(request.user, self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- meetings and their action items -----------------------------------------------------------------------


class MeetingActionSerializer(ModelSerializer):
    owner_name = serializers.CharField(source="owner.__str__", read_only=True)
    done = serializers.SerializerMethodField()
    overdue = serializers.SerializerMethodField(
        help_text="Open and its due day has ended (China time; calendar days, as its overdue alert counts them), as "
                  "the key-account page flags it. A de-listed account's: only one that fell due while it was served.")  # fmt: skip

    class Meta:
        model = MeetingAction
        fields = ["id", "meeting", "title", "owner", "owner_name", "due_date", "done", "done_at", "overdue", "version"]
        read_only_fields = fields

    def to_representation(self, instance):
        """As stored, with the contact details typed in its free text masked for a reader who sees personal data
        masked (personal.FREE_TEXT_OF), as the key-account pages show it."""
        return personal.shown_fields(self.context, super().to_representation(instance), "keyaccounts.meetingaction")

    def get_done(self, obj) -> bool:
        return obj.done_at is not None

    def get_overdue(self, obj) -> bool:
        return services.action_overdue(obj)


class MeetingSerializer(ModelSerializer):
    actions = MeetingActionSerializer(many=True, read_only=True)
    before_listing = serializers.SerializerMethodField(
        help_text="Dated before the account's listing day (recorded before such dates were refused): no meeting of "
                  "the programme, not counted in the progress report.")  # fmt: skip

    class Meta:
        model = Meeting
        fields = ["id", "account", "held_at", "title", "attendees", "minutes", "created_by", "created_at",
                  "before_listing", "actions"]  # fmt: skip
        read_only_fields = fields

    def to_representation(self, instance):
        """As stored, with the contact details typed in its free text masked for a reader who sees personal data
        masked (personal.FREE_TEXT_OF), as the key-account pages show it."""
        return personal.shown_fields(self.context, super().to_representation(instance), "keyaccounts.meeting")

    def get_before_listing(self, obj) -> bool:
        return services.held_before_listing(obj)


class MeetingQuery(AccountQuery):
    before_listing = serializers.BooleanField(
        required=False, default=False,
        help_text="true: the meetings dated before their account's listing day instead (kept apart, not counted).",
    )  # fmt: skip


class ActionInputSerializer(Serializer):
    title = serializers.CharField(max_length=200)
    owner = serializers.PrimaryKeyRelatedField(queryset=User.objects.all(),
                                               help_text="A member of the account's service team.")  # fmt: skip
    due_date = DateField()


class MeetingCreateSerializer(Serializer):
    account = AccountField()
    held_at = SafeDateTimeField(help_text="When the meeting took place: not later than now (5 minutes of clock skew "
                                          "allowed), nor before the customer was listed.")  # fmt: skip
    title = serializers.CharField(max_length=200, allow_blank=True)
    attendees = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
    minutes = serializers.CharField(max_length=50000, allow_blank=True)
    actions = ActionInputSerializer(many=True, required=False, max_length=MAX_ACTIONS,
                                    help_text="Action items; each owner is told.")  # fmt: skip


class ActionEditSerializer(VersionSerializer):
    title = serializers.CharField(max_length=200, required=False, allow_blank=True)
    owner = serializers.PrimaryKeyRelatedField(queryset=User.objects.all(), required=False,
                                               help_text="A member of the account's service team: the action is "
                                                         "handed over to them (they are told).")  # fmt: skip
    due_date = DateField(required=False, help_text="On or after the day of the meeting.")


# An action as GET answers it may be sent back with a field changed: what only GET shows is ignored.
ActionEditSerializer.echoes = MeetingActionSerializer


class DoneSerializer(Serializer):
    done = serializers.BooleanField(default=True, help_text="false: open again.")


@extend_schema_view(
    list=extend_schema(tags=TAGS, parameters=[ACCOUNT, OpenApiParameter("before_listing", bool)],
                       description="Service meetings of the key accounts you may see, latest first, with their "
                                   "action items: those held from the account's listing day on, as the account's "
                                   "page and the progress report count them. `?before_listing=true` lists instead "
                                   "the meetings dated before it (recorded before such dates were refused)."),
    retrieve=extend_schema(tags=TAGS),
    create=extend_schema(
        tags=TAGS, request=MeetingCreateSerializer, responses={201: MeetingSerializer, 400: ERRORS, 403: DENIED},
        description="Record a meeting with its minutes and action items (the account's managers, project manager "
                    "and team members).",
    ),
)  # fmt: skip
class MeetingViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, _Scoped):
    """Periodic service meetings (服务沟通会议) with minutes and action items."""

    queryset = Meeting.objects.none()
    serializer_class = MeetingSerializer

    def scoped(self):
        return (
            Meeting.objects.filter(account__in=services.accounts_for(self.request.user))
            .select_related("account")
            .prefetch_related("actions__owner")
            .order_by("-held_at", "-id")
        )

    def get_queryset(self):
        qs = super().get_queryset()
        if self.action != "list" or getattr(self, "swagger_fake_view", False):
            return qs
        # the programme's meetings, as the page and the progress report count them; the earlier ones on request
        if _query(self, MeetingQuery)["before_listing"]:
            return services.before_listing(qs)
        return services.since_listing(qs)

    def create(self, request, *args, **kwargs):
        form = MeetingCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        d = _text({k: v for k, v in form.validated_data.items() if k != "actions"})
        account = _account(request.user, d.pop("account"))
        actions = [_text(dict(a)) for a in form.validated_data.get("actions") or []]
        try:
            meeting = services.record_meeting(request.user, account, d, actions)
        except DjangoValidationError as e:
            raise serializers.ValidationError(_action_errors(validation_detail(e))) from None
        return self._answer(meeting, status.HTTP_201_CREATED)


_ACTION_ERROR = re.compile(r"^action_(\d+)_(title|owner|due)$")


def _action_errors(detail: dict[str, list[str]]) -> dict:
    """The service's errors of action row n (`action_<n>_owner` …) as the serializer reports an item's own:
    under actions → position from 0 → the item's field (`due` is `due_date`)."""
    out: dict = {}
    for key, messages in detail.items():
        m = _ACTION_ERROR.match(key)
        if m is None:
            out[key] = messages
            continue
        field = {"due": "due_date"}.get(m[2], m[2])
        out.setdefault("actions", {}).setdefault(str(int(m[1]) - 1), {})[field] = messages
    return out


def _may_toggle(user, item: MeetingAction) -> bool:
    """Who may tick an action item off (as the page's button): its owner, or whoever may correct it (the account's
    team, its project manager, managers, administrators)."""
    if access.roles_of(user) & READ_ONLY_ROLES:
        return False
    return services.may_complete_action(user, item)


@extend_schema_view(
    retrieve=extend_schema(tags=TAGS),
    partial_update=extend_schema(
        tags=TAGS, request=ActionEditSerializer,
        responses={200: MeetingActionSerializer, 400: ERRORS, 403: DENIED,
                   409: OpenApiResponse(description="Changed or ticked off by someone else since the version sent "
                                                    "(with current_version).")},
        description="Correct an open action item: its title, its owner (a member of the account's service team; "
                    "the new owner is told) and its due date (on or after the day of the meeting). Fields left out "
                    "keep their value. Send the action's version (or If-Match): someone else's change since is a "
                    "409. The account's team, project manager and managers; a done action is reopened first.",
    ),
)  # fmt: skip
class MeetingActionViewSet(mixins.RetrieveModelMixin, mixins.UpdateModelMixin, _Scoped):
    """Action items of service meetings."""

    queryset = MeetingAction.objects.none()
    serializer_class = MeetingActionSerializer
    http_method_names = ["get", "post", "patch", "head", "options"]

    def update(self, request, *args, **kwargs):
        if not kwargs.get("partial"):
            return Response(status=status.HTTP_405_METHOD_NOT_ALLOWED)
        item = self.get_object()
        form = ActionEditSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        d = _text(form.validated_data)
        version = _version_sent(request, d.get("version"))
        with _versioned():
            services.edit_action(request.user, item, title=d.get("title", item.title), owner=d.get("owner", item.owner),
                                 due_date=d.get("due_date", item.due_date), version=version)  # fmt: skip
        return self._answer(item)

    def scoped(self):
        return MeetingAction.objects.filter(
            meeting__account__in=services.accounts_for(self.request.user)
        ).select_related("meeting__account", "owner")

    @extend_schema(tags=TAGS, request=DoneSerializer, responses={200: MeetingActionSerializer, 403: DENIED},
                   description="Mark an action item done (or open again with done=false): its owner, and whoever "
                               "may correct it — the account's service team, its project manager, managers and "
                               "administrators. Sending the state it already has changes nothing.")  # fmt: skip
    @action(detail=True, methods=["post"])
    def done(self, request, pk=None):
        item = self.get_object()
        form = DoneSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        wanted = form.validated_data["done"]
        if wanted != (item.done_at is not None):
            services.complete_action(request.user, item, done=wanted)
        elif not _may_toggle(request.user, item):  # a repeated request: no change, but the same refusal
            raise PermissionDenied(services.NOT_ALLOWED)
        return self._answer(item)


# --- trial offers ----------------------------------------------------------------------------------------------


class TrialSerializer(ModelSerializer):
    product_name = serializers.CharField(source="product.__str__", read_only=True)
    status = TrialStatusField(read_only=True)

    class Meta:
        model = TrialOffer
        fields = ["id", "account", "product", "product_name", "offered_on", "status", "notes", "created_by",
                  "version"]  # fmt: skip
        read_only_fields = fields

    def to_representation(self, instance):
        """As stored, with the contact details typed in its free text masked for a reader who sees personal data
        masked (personal.FREE_TEXT_OF), as the key-account pages show it."""
        return personal.shown_fields(self.context, super().to_representation(instance), "keyaccounts.trialoffer")


class TrialCreateSerializer(Serializer):
    account = AccountField()
    product = serializers.PrimaryKeyRelatedField(queryset=Product.objects.filter(active=True),
                                                 help_text="An active product of the catalogue.")  # fmt: skip
    offered_on = DateField(required=False, help_text="Default: today.")
    notes = serializers.CharField(max_length=20000, required=False, allow_blank=True, default="")


class TrialStatusSerializer(VersionSerializer):
    status = TrialStatusField()
    notes = serializers.CharField(max_length=20000, required=False, allow_blank=True, default="",
                                  help_text="Replaces the notes when not empty.")  # fmt: skip


@extend_schema_view(
    list=extend_schema(tags=TAGS, parameters=[ACCOUNT],
                       description="New-product trials offered to the key accounts you may see, latest first."),
    retrieve=extend_schema(tags=TAGS),
    create=extend_schema(
        tags=TAGS, request=TrialCreateSerializer, responses={201: TrialSerializer, 400: ERRORS, 403: DENIED},
        description="Record a trial offer (the account's managers, project manager and team members; product "
                    "experts).",
    ),
)  # fmt: skip
class TrialViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, _Scoped):
    """New-product trial offers (新产品优先试用) to key accounts."""

    queryset = TrialOffer.objects.none()
    serializer_class = TrialSerializer

    def scoped(self):
        return (
            TrialOffer.objects.filter(account__in=services.accounts_for(self.request.user))
            .select_related("product", "account")
            .order_by("-offered_on", "-id")
        )

    def create(self, request, *args, **kwargs):
        form = TrialCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        d = _text(form.validated_data)
        account = _account(request.user, d["account"])
        trial = services.offer_trial(request.user, account, product=d["product"], notes=d.get("notes", ""),
                                     offered_on=d.get("offered_on"))  # fmt: skip
        return self._answer(trial, status.HTTP_201_CREATED)

    @extend_schema(tags=TAGS, request=TrialStatusSerializer, responses={200: TrialSerializer, 400: ERRORS, 403: DENIED},
                   description="The customer's answer or the trial's end: accepted, declined or completed. Send the "
                               "trial's version (or If-Match): someone else's update since is a 409.")  # fmt: skip
    @action(detail=True, methods=["post"], url_path="status")
    def set_status(self, request, pk=None):
        trial = self.get_object()
        form = TrialStatusSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        d = _text(form.validated_data)
        version = _version_sent(request, d.get("version"))
        with _versioned():
            services.update_trial(
                request.user, trial, status=d["status"], notes=d.get("notes", ""), version=version
            )
        return self._answer(trial)


# --- key-account evaluations (account reviews) -----------------------------------------------------------------


class ReviewComponentSerializer(Serializer):
    name = serializers.CharField(help_text="satisfaction, response, resolution, complaints or plan.")
    label = serializers.CharField(help_text="The measure's name in the request's language.")
    value = serializers.DecimalField(max_digits=6, decimal_places=2, help_text="0–100.")
    weight = serializers.DecimalField(max_digits=6, decimal_places=4, help_text="Share of the score (0–1).")
    contribution = serializers.DecimalField(max_digits=6, decimal_places=2,
                                            help_text="value × weight; the contributions add up to the score.")  # fmt: skip
    default = serializers.BooleanField(help_text="No data in the period: the neutral default value (as the page's "
                                                 "'default: no data').")  # fmt: skip


class AccountReviewSerializer(ModelSerializer):
    account_number = serializers.CharField(source="account.number", read_only=True)
    institution_name = serializers.CharField(source="account.institution.name", read_only=True)
    components = serializers.SerializerMethodField()

    class Meta:
        model = AccountReview
        fields = ["id", "account", "account_number", "institution_name", "period", "start", "end", "score",
                  "components", "satisfaction", "surveys", "quality_feedback", "tickets", "avg_response_hours",
                  "avg_resolution_hours", "unanswered", "unresolved", "complaints", "complaints_resolved", "plan_items_due", "plan_items_on_time",
                  "computed_at"]  # fmt: skip
        read_only_fields = fields
        # the SLA clocks' definition, as the account's page states it
        extra_kwargs = {
            "avg_response_hours": {"help_text": "Average hours from receipt to the first response of the period's "
                                                "tickets, as the service desk's SLA clocks count them: the time a "
                                                "ticket waited on the customer does not count; a ticket still "
                                                "unanswered counts with its wait so far. Null: no ticket."},
            "avg_resolution_hours": {"help_text": "Average hours from receipt to the resolution, as the SLA clocks "
                                                  "count them: neither the time a ticket waited on the customer nor "
                                                  "the time a reopened ticket stood resolved counts; a ticket still "
                                                  "unresolved counts with its wait so far. Null: no ticket."},
        }  # fmt: skip

    @extend_schema_field(ReviewComponentSerializer(many=True))
    def get_components(self, obj) -> list[dict]:
        from .views_programme import REVIEW_LABELS

        return [
            {"name": c.get("name", ""), "label": str(REVIEW_LABELS.get(c.get("name"), c.get("name", ""))),
             "value": str(c.get("value", "0")), "weight": str(c.get("weight", "0")),
             "contribution": str(c.get("contribution", "0")), "default": bool(c.get("default"))}
            for c in obj.components or []
        ]  # fmt: skip


class ReviewQuery(AccountQuery):
    period = serializers.CharField(required=False, max_length=8)


class ReviewRunSerializer(Serializer):
    account = AccountField()
    period = serializers.CharField(max_length=8, help_text="A quarter (2026Q3) or a year (2026) that is over.")


@extend_schema_view(
    list=extend_schema(
        tags=TAGS, parameters=[ACCOUNT, OpenApiParameter("period", str, description="2026Q3 or 2026.")],
        description="Quarterly and annual evaluations of the key accounts you may see, latest period first: "
                    "satisfaction, quality feedback, average response and resolution time, complaints and plan "
                    "items done on time, with the score's components.",
    ),
    retrieve=extend_schema(tags=TAGS),
)  # fmt: skip
class AccountReviewViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, _Scoped):
    """Key-account evaluations (服务评估), computed from the data."""

    queryset = AccountReview.objects.none()
    serializer_class = AccountReviewSerializer

    def scoped(self):
        return (
            AccountReview.objects.filter(account__in=services.accounts_for(self.request.user))
            .select_related("account__institution")
            .order_by("-end", "-start", "account__number")
        )

    def get_queryset(self):
        qs = super().get_queryset()
        if self.action == "list" and not getattr(self, "swagger_fake_view", False):
            period = _query(self, ReviewQuery).get("period")
            if period:
                # what is no period (2026Q34, 2026-Q3) is a 400 under `period`, as the evaluations API answers, not an
                # empty list that reads as "no evaluations"
                services.period_bounds(period, ended=False)
                qs = qs.filter(period=services.period_label(period))
        return qs

    @extend_schema(tags=TAGS, request=ReviewRunSerializer, responses={200: AccountReviewSerializer, 400: ERRORS,
                                                                      403: DENIED},
                   description="Compute (or compute again) an account's evaluation for a quarter or a year that is "
                               "over: the account's managers and project manager, and those who run evaluations.")  # fmt: skip
    @action(detail=False, methods=["post"], pagination_class=None)
    def run(self, request):
        form = ReviewRunSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        d = _text(form.validated_data)
        account = _account(request.user, d["account"])
        review = services.review_account(account, d["period"], user=request.user)
        return self._answer(review)


# --- scorecards --------------------------------------------------------------------------------------------------


class ScorecardAccountSerializer(Serializer):
    id = serializers.IntegerField()
    number = serializers.CharField()
    institution_name = serializers.CharField(source="institution.name")


class ScorecardServedSerializer(Serializer):
    account = serializers.IntegerField(source="account.pk")
    number = serializers.CharField(source="account.number")
    days = serializers.IntegerField(help_text="Days of the period the member was on the account's service team "
                                              "while it was a key account.")  # fmt: skip
    account_days = serializers.IntegerField(help_text="Days of the period the account was a key account.")
    score = serializers.DecimalField(max_digits=6, decimal_places=2, allow_null=True,
                                     help_text="The account's evaluation score of the period (null: not evaluated).")  # fmt: skip
    credited = serializers.DecimalField(max_digits=6, decimal_places=2, allow_null=True,
                                        help_text="What the card counts of it: score × days / account_days + the "
                                                  "neutral value (60 by default) for the rest of the account's days.")  # fmt: skip


class ScorecardSerializer(Serializer):
    period = serializers.CharField(help_text="The quarter or year the card is for.")
    user = serializers.IntegerField(source="user.pk")
    username = serializers.CharField(source="user.username")
    name = serializers.CharField(source="user.__str__")
    roles = serializers.ListField(child=TeamRoleField(), help_text="The member's team roles.")
    accounts = ScorecardAccountSerializer(many=True, help_text="The accounts whose service team the member was on "
                                                               "in the period (for part of it at least).")  # fmt: skip
    served = ScorecardServedSerializer(many=True, help_text="Per account: the days served and what the card counts.")
    average_score = serializers.DecimalField(max_digits=6, decimal_places=2, allow_null=True,
                                             help_text="The accounts' `credited` values averaged, weighted by the days "
                                                       "the member served each: a member who served part of the "
                                                       "period gets the neutral value for the rest, neither credit nor "
                                                       "blame (null: none of their accounts evaluated).")  # fmt: skip
    items_due = serializers.IntegerField(help_text="Plan items the member owned on those accounts that fell due in the "
                                                   "period while they served the account.")  # fmt: skip
    items_on_time = serializers.IntegerField(help_text="Of those, done by their deadline.")


class ScorecardQuery(QuerySerializer):
    period = serializers.CharField(required=False, max_length=8)
    user = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)


class ScorecardViewSet(viewsets.GenericViewSet):
    """Team members' scorecards from the evaluations and plan items of the accounts they served in the period, for
    the days they served them (staff performance)."""

    queryset = TeamMember.objects.none()
    serializer_class = ScorecardSerializer
    permission_classes = [HasCapability]
    required_caps = {"*": Cap.VIEW_KEY_ACCOUNTS}
    filter_backends: list = []
    pagination_class = None

    @extend_schema(
        tags=TAGS,
        parameters=[
            OpenApiParameter("period", str, description="A quarter (2026Q3) or a year (2026); default: the last quarter that is over."),
            OpenApiParameter("user", int, description="One member's card."),
        ],
        responses={200: ScorecardSerializer(many=True), 400: ERRORS, 403: DENIED},
        description="Leadership and oversight see every member's card (as on the scorecards page); everyone else "
                    "their own (as on their own page), and those who may open other members' pages that member's. "
                    "A card counts only the accounts whose service team the member was on in the period, while they "
                    "were key accounts, and only the days served: each account's score counts for the share of its "
                    "days the member served, the neutral value for the rest; the accounts are averaged weighted by "
                    "the days served (`served`). Plan items count when they fell due on those accounts while the "
                    "member served them.",
    )  # fmt: skip
    def list(self, request, *args, **kwargs):
        from .views_programme import _leadership

        form = ScorecardQuery(data=request.query_params)
        form.is_valid(raise_exception=True)
        user, wanted = request.user, form.validated_data.get("user")
        period = services.period_label(
            form.validated_data.get("period") or services.previous_quarter(timezone.localdate())
        )
        everyone = _leadership(user)
        if wanted not in (None, user.pk) and not (
            everyone or (access.can(user, Cap.MANAGE_KEY_ACCOUNTS) and access.can(user, Cap.ALL_CUSTOMERS))
        ):  # the rule of a member's page
            raise PermissionDenied(services.NOT_ALLOWED)
        if wanted is None and not everyone:
            wanted = user.pk
        services.period_bounds(period, ended=False)  # a bad period: 400 under `period`
        cards = [{**c, "period": period} for c in services.scorecards(period) if wanted in (None, c["user"].pk)]
        return Response(ScorecardSerializer(cards, many=True).data)


# --- resource and incentive records ------------------------------------------------------------------------------


class IncentiveSerializer(ModelSerializer, CappedClassFields):
    evaluation = serializers.IntegerField(source="pk", read_only=True, help_text="The evaluation's id.")
    customer = serializers.IntegerField(source="institution_id", read_only=True)
    customer_name = serializers.SerializerMethodField(help_text=CUSTOMER_NAME_HELP)
    discount = serializers.DecimalField(max_digits=5, decimal_places=2, read_only=True, allow_null=True,
                                        help_text="Discount level (%) granted for the period.")  # fmt: skip
    programme = serializers.CharField(read_only=True, help_text="Reward programme the customer belongs to ('' none).")
    programme_label = serializers.SerializerMethodField(
        help_text="The reward programme in the request's language (Accept-Language): one the product ships "
        "(年度优秀客户奖) is translated until a manager renames it; any other as stored in `programme`."
    )

    class Meta:
        model = Score
        # the class that earned them, and when the credit gate capped it, the class the score gives and why
        fields = ["evaluation", "customer", "customer_name", "period", "as_of", "discount", "programme",
                  "programme_label", "computed_at", "class_before_gate", "gate"]  # fmt: skip
        read_only_fields = fields

    def get_programme_label(self, obj: Score) -> str:
        from pharmacrm.core import builtin

        return builtin.shown(obj.programme or "")

    def get_fields(self):
        fields = super().get_fields()
        fields["class"] = KlassField(source="klass", read_only=True, help_text="The class that earned them.")
        return fields

    def get_customer_name(self, obj: Score) -> str:
        return picker_label(obj.institution)  # its parent read with it (IncentiveViewSet.get_queryset)


class IncentiveQuery(QuerySerializer):
    customer = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    period = serializers.CharField(required=False, max_length=8)
    programme = serializers.CharField(required=False, max_length=100)

    # 2026h2 is 2026H2; what is no period at all (2026-H2, H2) is said under `period`, as the evaluations API says
    # it: it answered an empty list, as if the evaluation had given nobody a discount or a reward programme
    validate_period = _ScoreQuery.validate_period


@extend_schema_view(
    list=extend_schema(
        tags=["evaluation"],
        parameters=[
            CUSTOMER,
            OpenApiParameter("period", str, description="2026H2 (or 2026Q3 for key accounts). Default: the period "
                                                        "in force (the last evaluated in full, whose results decide "
                                                        "discounts and programmes; the latest period before any was), "
                                                        "or every period of the `customer` given."),
            OpenApiParameter("programme", str, description="Members of this reward programme only."),
        ],
        description="The resources and incentives the customer evaluation gave the customers you may see: discount "
                    "level and reward programme per customer and period, from their class — and, when the credit gate "
                    "capped the class, the class the score alone gives (`class_before_gate`) and why (`gate`, as in "
                    "the evaluations API). Read only: they follow from the scoring model's results by class.",
    ),
    retrieve=extend_schema(tags=["evaluation"]),
)  # fmt: skip
class IncentiveViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Resource and incentive records (discount level, reward programme membership) of the customer evaluation."""

    queryset = Score.objects.none()
    serializer_class = IncentiveSerializer
    permission_classes = [HasCapability]
    required_caps = {"*": Cap.VIEW_EVALUATIONS}
    filter_backends: list = []
    lookup_value_regex = r"[0-9]{1,18}"

    def get_queryset(self):
        from .views_eval import periods, scores_for, shown_period

        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        qs = scores_for(self.request.user, Score.objects.filter(kind=ModelKind.EVALUATION)).select_related(
            "institution__parent"
        )  # a department is named with its hospital
        if self.action != "list":
            return qs
        query = _query(self, IncentiveQuery)
        if query.get("customer"):
            qs = qs.filter(institution_id=query["customer"])
        if query.get("programme"):
            qs = qs.filter(programme=query["programme"])
        period = query.get("period", "")
        if not period and not query.get("customer"):
            period = shown_period(ModelKind.EVALUATION, periods(ModelKind.EVALUATION))
        if period:
            return qs.filter(period=period).order_by(*Score.RANKED)
        return qs.order_by("-as_of", "-computed_at", "-id")  # one customer's history

