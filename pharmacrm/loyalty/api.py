"""REST API of the loyalty programme (/api/v1/loyalty/members/, /redemptions/, /referrals/, /rewards/): read as
scoped (services.members_for …), written through the services, whose errors come back per field in the reader's
language; a decision on a redemption carries the `version` loaded (or If-Match) and a stale one answers 409.
docs/loyalty.md."""

from __future__ import annotations

import django_filters
from django.db.models import Sum
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from pharmacrm.core import personal, viewsets
from pharmacrm.core.api_schema import ERRORS, STALE, YUAN
from pharmacrm.core.api_utils import (
    AmountField,
    HasCapability,
    IntegerFilter,
    NoWritesForReadOnlyRoles,
    Serializer,
    StrictBooleanFilter,
    TypedIntegerField,
    expected_version,
    optional,
    versioned,
)
from pharmacrm.core.ids import MAX_ID
from pharmacrm.core.roles import Cap

from . import services
from .models import (
    EntryKind,
    Level,
    Member,
    MemberStatus,
    Redemption,
    RedemptionStatus,
    Referral,
    ReferralStatus,
    Reward,
    RewardKind,
)

TAGS = ["loyalty"]
DENIED = OpenApiResponse(description="Not allowed: no loyalty capability, not one of your customers, or your own "
                                     "request to approve (four eyes).")  # fmt: skip


def _body(serializer_class, request) -> dict:
    form = serializer_class(data=request.data)
    form.is_valid(raise_exception=True)
    return dict(form.validated_data)


class LoyaltyEntrySerializer(Serializer):
    id = serializers.IntegerField(read_only=True)
    kind = serializers.ChoiceField(choices=EntryKind.choices, read_only=True)
    points = serializers.IntegerField(
        read_only=True, help_text="Signed: spent, expired and deducted points negative."
    )
    month = serializers.DateField(
        read_only=True, help_text="The first day of the month the points belong to."
    )
    reason = serializers.CharField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)

    def to_representation(self, instance):
        """The reason with the contact details typed in it masked for a reader who sees personal data masked."""
        return personal.shown_fields(self.context, super().to_representation(instance), "loyalty.pointsentry")


class LoyaltyMemberSerializer(Serializer):
    id = serializers.IntegerField(read_only=True)
    number = serializers.CharField(read_only=True, help_text="HY-NNNNNN.")
    institution = serializers.IntegerField(source="institution_id", read_only=True)
    customer_name = serializers.CharField(source="institution.name", read_only=True)
    joined_on = serializers.DateField(read_only=True)
    status = serializers.ChoiceField(choices=MemberStatus.choices, read_only=True)
    level = serializers.ChoiceField(choices=Level.choices, read_only=True)
    level_since = serializers.DateField(read_only=True)
    balance = serializers.SerializerMethodField(help_text="The sum of the ledger: points reserved by open requests "
                                                          "are spent already.")  # fmt: skip
    version = serializers.IntegerField(read_only=True)

    def get_balance(self, obj) -> int:
        value = getattr(obj, "balance_sum", None)
        return int(value or 0) if hasattr(obj, "balance_sum") else services.balance(obj)


class LoyaltyMemberDetailSerializer(LoyaltyMemberSerializer):
    entries = serializers.SerializerMethodField()

    def get_entries(self, obj) -> list[dict]:
        return LoyaltyEntrySerializer(obj.entries.all()[:200], many=True, context=self.context).data


class LoyaltyJoinSerializer(Serializer):
    institution = serializers.IntegerField(min_value=1, max_value=MAX_ID, help_text="The customer's id.")


class MemberFilter(django_filters.FilterSet):
    level = django_filters.ChoiceFilter(choices=Level.choices)
    status = django_filters.ChoiceFilter(choices=MemberStatus.choices)
    institution = IntegerFilter(
        field_name="institution_id", min_value=1, max_value=MAX_ID, label="The customer's id."
    )
    owner = IntegerFilter(field_name="institution__owner_id", min_value=1, max_value=MAX_ID,
                          label="The customer's owner (a user's id).")  # fmt: skip
    province = django_filters.CharFilter(
        field_name="institution__province", label="A province's code, e.g. 110000."
    )

    class Meta:
        model = Member
        fields: list[str] = []


class MemberViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                    viewsets.GenericViewSet):  # fmt: skip
    """Loyalty members (会员): eligible commercial customers, numbered HY-NNNNNN, with their level and points balance.
    Reading: "See loyalty members …" (leadership, analysts and auditors all; reps and key-account managers their own
    and their teams' customers). Joining: "Enrol customers …", within that scope."""

    queryset = Member.objects.none()
    serializer_class = LoyaltyMemberSerializer
    permission_classes = [HasCapability]
    required_caps = {"*": Cap.READ_LOYALTY, "create": Cap.MANAGE_LOYALTY}
    filterset_class = MemberFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return (services.members_for(self.request.user).select_related("institution")
                .annotate(balance_sum=Sum("entries__points")).order_by("number"))  # fmt: skip

    @extend_schema(tags=TAGS)
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(tags=TAGS, responses=LoyaltyMemberDetailSerializer)
    def retrieve(self, request, *args, **kwargs):
        member = self.get_object()
        data = LoyaltyMemberDetailSerializer(member, context=self.get_serializer_context()).data
        return versioned(Response(data), member)

    @extend_schema(tags=TAGS, request=LoyaltyJoinSerializer, responses={201: LoyaltyMemberSerializer, 400: ERRORS, 403: DENIED},
                   description="Enrol an eligible customer (pharmacies, distributors and clinics by default); an "
                               "ineligible one is refused with the reason under `institution`. Audited.")  # fmt: skip
    def create(self, request, *args, **kwargs):
        data = _body(LoyaltyJoinSerializer, request)
        member = services.join(request.user, str(data["institution"]))
        return Response(
            LoyaltyMemberSerializer(self.get_queryset().get(pk=member.pk)).data,
            status=status.HTTP_201_CREATED,
        )


class LoyaltyRewardSerializer(Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
    kind = serializers.ChoiceField(choices=RewardKind.choices, read_only=True)
    points_cost = serializers.IntegerField(read_only=True)
    value_cny = serializers.DecimalField(max_digits=12, decimal_places=2, read_only=True, help_text=YUAN)
    stock = serializers.IntegerField(read_only=True, allow_null=True, help_text="null: unlimited.")
    active = serializers.BooleanField(read_only=True)
    description = serializers.CharField(read_only=True)
    version = serializers.IntegerField(read_only=True)


class LoyaltyRewardWriteSerializer(Serializer):
    name = optional(serializers.CharField, allow_blank=True, max_length=100)
    kind = optional(serializers.ChoiceField, choices=RewardKind.choices)
    points_cost = optional(serializers.IntegerField, min_value=1, max_value=services.MAX_POINTS)
    value_cny = optional(AmountField, max_digits=12, help_text=YUAN)
    stock = optional(
        serializers.IntegerField, min_value=0, max_value=services.MAX_POINTS, help_text="null: unlimited."
    )
    active = optional(serializers.BooleanField)
    description = optional(serializers.CharField, allow_blank=True, max_length=2000)
    version = optional(
        serializers.IntegerField, min_value=1, max_value=MAX_ID, help_text="Edits: the version you loaded."
    )


class RewardFilter(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=RewardKind.choices)
    active = StrictBooleanFilter()

    class Meta:
        model = Reward
        fields: list[str] = []


class RewardViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                    mixins.UpdateModelMixin, viewsets.GenericViewSet):  # fmt: skip
    """The reward catalogue: business rewards with their points cost and value in yuan. Reading: anyone who sees the
    loyalty programme; writing: "Approve redemptions, adjust points, run the reward catalogue"."""

    queryset = Reward.objects.none()
    serializer_class = LoyaltyRewardSerializer
    permission_classes = [HasCapability]
    required_caps = {
        "*": Cap.READ_LOYALTY,
        **{a: Cap.APPROVE_LOYALTY for a in ("create", "update", "partial_update")},
    }
    filterset_class = RewardFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return Reward.objects.order_by("points_cost", "id")

    @extend_schema(tags=TAGS)
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(tags=TAGS)
    def retrieve(self, request, *args, **kwargs):
        reward = self.get_object()
        return versioned(Response(LoyaltyRewardSerializer(reward).data), reward)

    @extend_schema(tags=TAGS, request=LoyaltyRewardWriteSerializer, responses={201: LoyaltyRewardSerializer, 400: ERRORS,
                                                                        403: DENIED})  # fmt: skip
    def create(self, request, *args, **kwargs):
        data = _body(LoyaltyRewardWriteSerializer, request)
        data.pop("version", None)
        reward = services.create_reward(request.user, data)
        return versioned(
            Response(LoyaltyRewardSerializer(reward).data, status=status.HTTP_201_CREATED), reward
        )

    @extend_schema(tags=TAGS, request=LoyaltyRewardWriteSerializer,
                   responses={200: LoyaltyRewardSerializer, 400: ERRORS, 403: DENIED, 409: STALE})  # fmt: skip
    def update(self, request, *args, **kwargs):
        reward = self.get_object()
        data = _body(LoyaltyRewardWriteSerializer, request)
        version = expected_version(request, data.pop("version", None))
        data = {k: v for k, v in data.items() if k in request.data}
        reward = services.update_reward(request.user, reward, data, version)
        return versioned(Response(LoyaltyRewardSerializer(reward).data), reward)

    @extend_schema(tags=TAGS, request=LoyaltyRewardWriteSerializer)
    def partial_update(self, request, *args, **kwargs):
        return self.update(request, *args, **kwargs)


class LoyaltyRedemptionSerializer(Serializer):
    id = serializers.IntegerField(read_only=True)
    member = serializers.IntegerField(source="member_id", read_only=True)
    member_number = serializers.CharField(source="member.number", read_only=True)
    reward = serializers.IntegerField(source="reward_id", read_only=True)
    reward_name = serializers.CharField(source="reward.name", read_only=True)
    quantity = serializers.IntegerField(read_only=True)
    points = serializers.IntegerField(read_only=True)
    value_cny = serializers.DecimalField(max_digits=12, decimal_places=2, read_only=True, help_text=YUAN)
    status = serializers.ChoiceField(choices=RedemptionStatus.choices, read_only=True)
    requested_by = serializers.IntegerField(source="requested_by_id", read_only=True)
    requested_at = serializers.DateTimeField(read_only=True)
    decided_by = serializers.IntegerField(source="decided_by_id", read_only=True, allow_null=True)
    decided_at = serializers.DateTimeField(read_only=True, allow_null=True)
    decision_note = serializers.CharField(read_only=True)
    fulfilled_at = serializers.DateTimeField(read_only=True, allow_null=True)
    delivery_note = serializers.CharField(read_only=True)
    version = serializers.IntegerField(
        read_only=True, help_text="Send it back with a decision (409 if stale)."
    )

    def to_representation(self, instance):
        """The decision's reason and the delivery note (快递至王主任 139…) with the contact details typed in them masked
        for a reader who sees personal data masked (the analyst, the auditor)."""
        return personal.shown_fields(self.context, super().to_representation(instance), "loyalty.redemption")


class LoyaltyRedemptionWriteSerializer(Serializer):
    member = serializers.IntegerField(min_value=1, max_value=MAX_ID, help_text="The member's id.")
    reward = optional(serializers.IntegerField, min_value=1, max_value=MAX_ID, help_text="The reward's id.")
    quantity = optional(TypedIntegerField, min_value=1, max_value=100)


class LoyaltyDecisionSerializer(Serializer):
    note = optional(serializers.CharField, allow_blank=True, max_length=500, help_text="Required to reject.")
    version = optional(serializers.IntegerField, min_value=1, max_value=MAX_ID)


class LoyaltyFulfilSerializer(Serializer):
    delivery_note = optional(serializers.CharField, allow_blank=True, max_length=500)
    version = optional(serializers.IntegerField, min_value=1, max_value=MAX_ID)


class RedemptionFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=RedemptionStatus.choices)
    member = IntegerFilter(field_name="member_id", min_value=1, max_value=MAX_ID, label="The member's id.")
    reward = IntegerFilter(field_name="reward_id", min_value=1, max_value=MAX_ID, label="The reward's id.")

    class Meta:
        model = Redemption
        fields: list[str] = []


class RedemptionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                        viewsets.GenericViewSet):  # fmt: skip
    """Redemptions (积分兑换): asked for by the member's owner (the points reserved at once; more than the balance is
    refused), approved or rejected by a manager who did not ask (four eyes; a rejection returns the points), then
    delivered with a note."""

    queryset = Redemption.objects.none()
    serializer_class = LoyaltyRedemptionSerializer
    permission_classes = [HasCapability, NoWritesForReadOnlyRoles]  # the auditor reads: a delivery is refused first
    required_caps = {"*": Cap.READ_LOYALTY, "create": Cap.MANAGE_LOYALTY, "approve": Cap.APPROVE_LOYALTY,
                     "reject": Cap.APPROVE_LOYALTY}  # fmt: skip
    filterset_class = RedemptionFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return (services.redemptions_for(self.request.user).select_related("member", "reward")
                .order_by("-requested_at", "-id"))  # fmt: skip

    def _answer(self, redemption, code=status.HTTP_200_OK):
        redemption = self.get_queryset().get(pk=redemption.pk)
        data = LoyaltyRedemptionSerializer(redemption, context=self.get_serializer_context()).data
        return versioned(Response(data, status=code), redemption)

    @extend_schema(tags=TAGS)
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(tags=TAGS)
    def retrieve(self, request, *args, **kwargs):
        return self._answer(self.get_object())

    @extend_schema(tags=TAGS, request=LoyaltyRedemptionWriteSerializer,
                   responses={201: LoyaltyRedemptionSerializer, 400: ERRORS, 403: DENIED})  # fmt: skip
    def create(self, request, *args, **kwargs):
        from django.core.exceptions import ValidationError

        data = _body(LoyaltyRedemptionWriteSerializer, request)
        member = (
            services.members_for(request.user).select_related("institution").filter(pk=data["member"]).first()
        )
        if member is None:
            raise ValidationError({"member": [services.no_member_message()]})
        redemption = services.request_redemption(
            request.user, member, data.get("reward"), data.get("quantity")
        )
        return self._answer(redemption, status.HTTP_201_CREATED)

    @extend_schema(tags=TAGS, request=LoyaltyDecisionSerializer,
                   responses={200: LoyaltyRedemptionSerializer, 400: ERRORS, 403: DENIED, 409: STALE})  # fmt: skip
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        return self._decide(request, approve=True)

    @extend_schema(tags=TAGS, request=LoyaltyDecisionSerializer,
                   responses={200: LoyaltyRedemptionSerializer, 400: ERRORS, 403: DENIED, 409: STALE})  # fmt: skip
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        return self._decide(request, approve=False)

    def _decide(self, request, *, approve: bool):
        redemption = self.get_object()
        data = _body(LoyaltyDecisionSerializer, request)
        version = expected_version(request, data.get("version"))
        return self._answer(services.decide(request.user, redemption, approve=approve, note=data.get("note") or "",
                                            version=version))  # fmt: skip

    @extend_schema(tags=TAGS, request=LoyaltyFulfilSerializer,
                   responses={200: LoyaltyRedemptionSerializer, 400: ERRORS, 403: DENIED, 409: STALE})  # fmt: skip
    @action(detail=True, methods=["post"])
    def fulfil(self, request, pk=None):
        redemption = self.get_object()
        data = _body(LoyaltyFulfilSerializer, request)
        version = expected_version(request, data.get("version"))
        return self._answer(
            services.fulfil(request.user, redemption, data.get("delivery_note") or "", version=version)
        )


class LoyaltyReferralSerializer(Serializer):
    id = serializers.IntegerField(read_only=True)
    referrer = serializers.IntegerField(
        source="referrer_id", read_only=True, help_text="The referring member's id."
    )
    referrer_number = serializers.CharField(source="referrer.number", read_only=True)
    referred = serializers.SerializerMethodField(
        help_text="The referred customer's id; null when it is outside your territory (referred_in_scope false)."
    )
    referred_name = serializers.SerializerMethodField(
        help_text="The referred customer's name; for one outside your territory, only that it is."
    )
    referred_in_scope = serializers.SerializerMethodField(
        help_text="Whether you may see the referred customer: a member you serve may have referred one elsewhere."
    )
    referred_on = serializers.DateField(read_only=True)
    recorded_by = serializers.IntegerField(source="recorded_by_id", read_only=True, allow_null=True)
    note = serializers.CharField(read_only=True)
    status = serializers.ChoiceField(choices=ReferralStatus.choices, read_only=True)
    converted_month = serializers.DateField(read_only=True, allow_null=True)

    def to_representation(self, instance):
        """The note with the contact details typed in it masked for a reader who sees personal data masked."""
        return personal.shown_fields(self.context, super().to_representation(instance), "loyalty.referral")

    def _in_scope(self, obj) -> bool:
        if not hasattr(obj, "referred_in_scope"):
            request = self.context.get("request")
            services.mark_referred_in_scope(request.user if request else None, [obj])
        return obj.referred_in_scope

    def get_referred(self, obj) -> int | None:
        return obj.referred_id if self._in_scope(obj) else None

    def get_referred_name(self, obj) -> str:
        return obj.referred.name if self._in_scope(obj) else str(services.OUT_OF_SCOPE)

    def get_referred_in_scope(self, obj) -> bool:
        return self._in_scope(obj)


class LoyaltyReferralWriteSerializer(Serializer):
    referrer = serializers.IntegerField(min_value=1, max_value=MAX_ID, help_text="The referring member's id.")
    referred = optional(
        serializers.IntegerField, min_value=1, max_value=MAX_ID, help_text="The new customer's id."
    )
    note = optional(serializers.CharField, allow_blank=True, max_length=500)


class ReferralFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=ReferralStatus.choices)
    referrer = IntegerFilter(
        field_name="referrer_id", min_value=1, max_value=MAX_ID, label="The member's id."
    )

    class Meta:
        model = Referral
        fields: list[str] = []


class ReferralViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                      viewsets.GenericViewSet):  # fmt: skip
    """Referrals (客户推荐): a member brings in a new customer; one referrer per customer (a second claim is refused
    naming the first); the referrer earns its points once the referred customer first pays."""

    queryset = Referral.objects.none()
    serializer_class = LoyaltyReferralSerializer
    permission_classes = [HasCapability]
    required_caps = {"*": Cap.READ_LOYALTY, "create": Cap.MANAGE_LOYALTY}
    filterset_class = ReferralFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return (services.referrals_for(self.request.user).select_related("referrer", "referred")
                .order_by("-referred_on", "-id"))  # fmt: skip

    @extend_schema(tags=TAGS)
    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        services.mark_referred_in_scope(request.user, page)  # one query for the page
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(tags=TAGS)
    def retrieve(self, request, *args, **kwargs):
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(tags=TAGS, request=LoyaltyReferralWriteSerializer,
                   responses={201: LoyaltyReferralSerializer, 400: ERRORS, 403: DENIED})  # fmt: skip
    def create(self, request, *args, **kwargs):
        from django.core.exceptions import ValidationError

        data = _body(LoyaltyReferralWriteSerializer, request)
        member = (
            services.members_for(request.user)
            .select_related("institution")
            .filter(pk=data["referrer"])
            .first()
        )
        if member is None:
            raise ValidationError({"referrer": [services.no_member_message()]})
        referral = services.refer(
            request.user, member, str(data.get("referred") or ""), data.get("note") or ""
        )
        referral = self.get_queryset().get(pk=referral.pk)
        data = LoyaltyReferralSerializer(referral, context=self.get_serializer_context()).data
        return Response(data, status=status.HTTP_201_CREATED)


def register(router) -> None:
    router.register("loyalty/members", MemberViewSet, basename="loyalty-member")
    router.register("loyalty/rewards", RewardViewSet, basename="loyalty-reward")
    router.register("loyalty/redemptions", RedemptionViewSet, basename="loyalty-redemption")
    router.register("loyalty/referrals", ReferralViewSet, basename="loyalty-referral")
