"""REST endpoints: satisfaction survey campaigns (定期满意度调查).

- GET /api/v1/survey-campaigns/ and /api/v1/survey-campaigns/{id}/ — the campaigns (who may see them: campaigns.py).
- POST /api/v1/survey-campaigns/ — prepare one {name?, period?, klass?, tier?, institution_kind?, province?, owner?,
  team?, repeat?} (managers); PATCH /…/{id}/ changes a draft (If-Match or `version`), or turns `repeat` on or off
  (any status).
- POST /…/{id}/start/ and /…/{id}/close/ — draft → sending (the mails go out from the worker) → closed.
- GET /…/{id}/results/ — the counts, CSAT, NPS, per customer class, and the answers (who sees the performance).

Customers answer on the public survey page (/help/survey/…), as revisit links; agents record phone answers on the
campaign's page."""

from __future__ import annotations

from django.db import transaction
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from pharmacrm.core import personal, viewsets
from pharmacrm.core.api_utils import HasCapability, ModelSerializer, Serializer, expected_version, versioned
from pharmacrm.core.roles import Cap

from . import campaigns
from .choices import LowScore
from .models import Survey, SurveyCampaign

CRITERIA_HELP = "Blank: any."


def register(router) -> None:
    """Called by pharmacrm/api_urls.py with the v1 router."""
    router.register("survey-campaigns", CampaignViewSet, basename="survey-campaign")


class CampaignSerializer(ModelSerializer):
    status = serializers.CharField(read_only=True, help_text="draft, sending or closed.")
    repeat = serializers.BooleanField(read_only=True, help_text="Repeats every period of its kind (repeat_every): on "
                                      "the period's first working day, 09:00 Beijing, the next campaign is made and "
                                      "started with the same criteria.")  # fmt: skip
    repeat_every = serializers.CharField(source="period_kind", read_only=True, help_text="quarter, half or year.")
    repeat_next_period = serializers.CharField(read_only=True, help_text="The next campaign's period; empty if none.")
    repeat_next_at = serializers.DateTimeField(read_only=True, allow_null=True)
    repeat_paused = serializers.CharField(read_only=True, help_text="Why repeating is paused; empty when it is not.")

    class Meta:
        model = SurveyCampaign
        fields = ["id", "name", "period", "klass", "tier", "institution_kind", "province", "owner", "team", "status",
                  "class_period", "started_at", "closed_at", "created_by", "created_at", "updated_at", "version",
                  "repeat", "repeat_every", "repeat_by", "repeat_next_period", "repeat_next_at", "repeat_paused",
                  "repeated_from"]  # fmt: skip
        read_only_fields = fields


class CampaignInputSerializer(Serializer):
    """What a campaign is prepared with: every field is checked by the service (per-field localised 400s)."""

    name = serializers.CharField(required=False, allow_blank=True, help_text="Empty: named after the period.")
    period = serializers.CharField(
        required=False, allow_blank=True,
        help_text="2026Q4 (a quarter, the default: this quarter), 2026H2 (a half-year) or 2026 (a year).",
    )  # fmt: skip
    klass = serializers.CharField(required=False, allow_blank=True,
                                  help_text="A, B, C or D: the class of the customer evaluation in force. " + CRITERIA_HELP)  # fmt: skip
    tier = serializers.CharField(required=False, allow_blank=True, help_text="new, regular, vip or key. " + CRITERIA_HELP)
    institution_kind = serializers.CharField(required=False, allow_blank=True,
                                             help_text="hospital, clinic, pharmacy… (not department). " + CRITERIA_HELP)  # fmt: skip
    province = serializers.CharField(required=False, allow_blank=True,
                                     help_text="The province's six-digit code (110000). " + CRITERIA_HELP)  # fmt: skip
    owner = serializers.IntegerField(required=False, allow_null=True, help_text="The customers' owner (a user id).")
    team = serializers.IntegerField(required=False, allow_null=True, help_text="The customers' team (a team id).")
    version = serializers.IntegerField(required=False, help_text="On PATCH: the version you last saw (or If-Match).")
    repeat = serializers.BooleanField(required=False, help_text="Repeat every period of its kind (any status on PATCH; "
                                      "turning it on again resumes a paused one, you being told from then on).")  # fmt: skip


class ClassResultSerializer(Serializer):
    klass = serializers.CharField(help_text="A–D, or empty: not classed by the evaluation read.")
    targeted = serializers.IntegerField()
    answered = serializers.IntegerField()
    csat = serializers.FloatField(allow_null=True)
    nps = serializers.IntegerField(allow_null=True)


class AnswerSerializer(ModelSerializer):
    customer = serializers.IntegerField(source="institution_id", read_only=True, allow_null=True)
    customer_name = serializers.CharField(source="institution.name", read_only=True, allow_null=True)
    person_name = serializers.CharField(source="person.name", read_only=True, allow_null=True)
    outcome = serializers.ChoiceField(
        choices=LowScore.choices, read_only=True, allow_blank=True,
        help_text="What a low score led to (empty for a good score or none yet).",
    )  # fmt: skip

    class Meta:
        model = Survey
        fields = ["id", "customer", "customer_name", "person_name", "channel", "answered_at", "score", "recommend",
                  "comment", "outcome"]  # fmt: skip
        read_only_fields = fields

    def to_representation(self, instance):
        """As stored, except the comment with the contact details a customer typed in it masked for a reader who sees
        personal data masked (as the pages show it)."""
        return personal.shown_fields(self.context, super().to_representation(instance), "servicedesk.survey")


class ResultsSerializer(Serializer):
    targeted = serializers.IntegerField(help_text="Customers asked (by mail or on the phone).")
    sent = serializers.IntegerField(help_text="Survey mails sent.")
    unreachable = serializers.IntegerField(help_text="Customers no mail reaches (no person, e-mail or consent): to call.")
    not_asked = serializers.IntegerField(help_text="Left out: consent withdrawn, or a survey answered in the last days.")
    answered = serializers.IntegerField()
    response_rate = serializers.FloatField(allow_null=True, help_text="answered / targeted, in %.")
    csat = serializers.FloatField(allow_null=True, help_text="Average satisfaction, 1–5.")
    nps = serializers.IntegerField(allow_null=True, help_text="Promoters (9–10) minus detractors (0–6), in %.")
    by_class = ClassResultSerializer(many=True)
    answers = AnswerSerializer(many=True, help_text="The answers (at most 1,000, newest first).")


def _num(v):
    return None if v is None else float(v)


@extend_schema_view(
    list=extend_schema(tags=["revisit"], description="Satisfaction survey campaigns, newest period first."),
    retrieve=extend_schema(tags=["revisit"]),
    create=extend_schema(tags=["revisit"], request=CampaignInputSerializer,
                         responses={201: CampaignSerializer, 400: OpenApiResponse(description="Per-field messages.")}),
    partial_update=extend_schema(tags=["revisit"], request=CampaignInputSerializer,
                                 responses={200: CampaignSerializer, 400: OpenApiResponse(description="Per-field messages."),
                                            409: OpenApiResponse(description="Saved by someone since `version`.")}),
)  # fmt: skip
class CampaignViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Satisfaction survey campaigns (定期满意度调查)."""

    queryset = SurveyCampaign.objects.none()
    serializer_class = CampaignSerializer
    permission_classes = [HasCapability]
    required_caps = {"create": Cap.MANAGE_SERVICE, "partial_update": Cap.MANAGE_SERVICE, "start": Cap.MANAGE_SERVICE,
                     "close": Cap.MANAGE_SERVICE, "results": Cap.VIEW_SERVICE_PERFORMANCE, "*": Cap.VIEW_TICKETS}  # fmt: skip
    http_method_names = ["get", "post", "patch", "head", "options"]
    lookup_value_regex = r"[0-9]{1,18}"

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if not campaigns.may_view(request.user):
            raise PermissionDenied()

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return SurveyCampaign.objects.order_by("-period", "-id")

    def _input(self, request) -> dict:
        form = CampaignInputSerializer(data=request.data, context=self.get_serializer_context())
        form.is_valid(raise_exception=True)
        return form.validated_data

    def create(self, request, *args, **kwargs):
        data = self._input(request)
        data.pop("version", None)
        repeat = data.pop("repeat", False)
        with transaction.atomic():
            campaign = campaigns.create_campaign(request.user, data)
            if repeat:
                campaign = campaigns.set_repeat(request.user, campaign, True)
        return versioned(Response(CampaignSerializer(campaign).data, status=status.HTTP_201_CREATED), campaign)

    def partial_update(self, request, *args, **kwargs):
        campaign = self.get_object()
        data = self._input(request)
        version = expected_version(request, data.pop("version", None))
        repeat = data.pop("repeat", None)
        with transaction.atomic():
            if data or repeat is None:  # a draft's fields (a started campaign's are as they were sent)
                campaign = campaigns.update_campaign(request.user, campaign, data, version=version)
                version = None
            if repeat is not None:
                campaign = campaigns.set_repeat(request.user, campaign, repeat, version=version)
        return versioned(Response(CampaignSerializer(campaign).data), campaign)

    def retrieve(self, request, *args, **kwargs):
        campaign = self.get_object()
        return versioned(Response(CampaignSerializer(campaign).data), campaign)

    def _step(self, request, step):
        campaign = step(request.user, self.get_object())
        return versioned(Response(CampaignSerializer(campaign).data), campaign)

    @extend_schema(request=None, responses={200: CampaignSerializer, 400: OpenApiResponse(description="Not a draft, "
                   "or no customer matches.")}, tags=["revisit"], filters=False,
                   description="Draft → sending: writes the target list and queues the survey mails.")  # fmt: skip
    @action(detail=True, methods=["post"], filter_backends=[], pagination_class=None)
    def start(self, request, pk=None):
        return self._step(request, campaigns.start)

    @extend_schema(request=None, responses={200: CampaignSerializer, 400: OpenApiResponse(description="Not sending.")},
                   tags=["revisit"], filters=False,
                   description="Sending → closed: links not answered yet expire, mails not sent yet are not sent.")  # fmt: skip
    @action(detail=True, methods=["post"], filter_backends=[], pagination_class=None)
    def close(self, request, pk=None):
        return self._step(request, campaigns.close)

    @extend_schema(responses={200: ResultsSerializer}, tags=["revisit"], filters=False,
                   description="Counts, response rate, CSAT and NPS (overall and per customer class), and the answers.")  # fmt: skip
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)
    def results(self, request, pk=None):
        campaign = self.get_object()
        res = campaigns.results(campaign)
        body = {
            "targeted": res.targeted, "sent": res.sent, "unreachable": res.unreachable, "not_asked": res.not_asked,
            "answered": res.answered, "response_rate": _num(res.response_rate), "csat": _num(res.figures.csat),
            "nps": res.figures.nps,
            "by_class": [{"klass": k, "targeted": t, "answered": a, "csat": _num(f.csat), "nps": f.nps}
                         for k, t, a, f in res.by_class],
            "answers": AnswerSerializer(campaigns.answers(request.user, campaign)[:1000], many=True,
                                        context={"request": request}).data,
        }  # fmt: skip
        return Response(body)

    def get_object(self):
        obj = self.get_queryset().filter(pk=self.kwargs.get("pk")).first()
        if obj is None:
            raise Http404
        return obj
