"""REST API of the evaluation: customer evaluations (/api/v1/evaluations/, with `run/`), key-account
candidates (/api/v1/keyaccounts/candidates/) and the scoring models (/api/v1/scoring-models/<kind>/).

Every score carries its components ({name, value, weight, contribution, …}) whose contributions add up to
the score. Reads are scoped like the pages (views_eval.scores_for); runs and model changes go through
evaluation.py, which checks the capability, validates, versions and audits."""

from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from pharmacrm.core import access, viewsets
from pharmacrm.core.api_utils import (
    MAX_INT32,
    AmountField,
    Conflict,
    HasCapability,
    ModelSerializer,
    PercentField,
    QuerySerializer,
    Serializer,
    TypedDecimalField,
    expected_version,
    shipped_label_field,
)
from pharmacrm.core.roles import Cap
from pharmacrm.customers.choices import Tier
from pharmacrm.customers.forms import CUSTOMER_NAME_HELP, picker_label

from . import evaluation, scoring
from .choices import Component, Klass, ModelKind
from .forms_eval import PARAMS
from .models import EvaluationRun, Score, ScoringModel, band_floor
from .views_eval import explain, ordered, periods, scores_for, shown_period

TIERS = [Tier.NEW, Tier.REGULAR, Tier.VIP]

MAX_ID = 2**63 - 1
urlpatterns: list = []


def register(router) -> None:
    """Viewsets on the shared router (identification before the programme's key-account files)."""
    router.register("evaluations", EvaluationViewSet, basename="evaluation")
    router.register("keyaccounts/candidates", CandidateViewSet, basename="candidate")
    router.register("scoring-models", ScoringModelViewSet, basename="scoring-model")


# --- scores ---------------------------------------------------------------------------------------------


class ComponentSerializer(Serializer):
    name = serializers.ChoiceField(choices=Component.choices, help_text="The measure.")
    label = serializers.CharField(help_text="The measure's name in the request's language.")
    value = serializers.DecimalField(max_digits=6, decimal_places=2, help_text="0–100.")
    weight = serializers.DecimalField(max_digits=6, decimal_places=4, help_text="Share of the score (0–1).")
    contribution = serializers.DecimalField(
        max_digits=6, decimal_places=2, help_text="value × weight; the contributions add up to the score."
    )
    default = serializers.BooleanField(help_text="No data: the model's default value.")
    explanation = serializers.CharField(help_text="What the value comes from, in words.")
    detail = serializers.DictField(help_text="The figures behind the value.")


def components_of(score: Score) -> list[dict]:
    out = []
    for c in ordered(score.components):
        try:
            label = str(Component(c.get("name")).label)
        except ValueError:
            label = str(c.get("name", ""))
        out.append({
            "name": c.get("name", ""), "label": label, "value": str(c.get("value", "0")),
            "weight": str(c.get("weight", "0")), "contribution": str(c.get("contribution", "0")),
            "default": bool(c.get("default")), "explanation": explain(c), "detail": c.get("detail") or {},
        })  # fmt: skip
    return out


class ScoreSerializer(ModelSerializer):
    customer = serializers.IntegerField(source="institution_id", read_only=True)
    customer_name = serializers.SerializerMethodField(help_text=CUSTOMER_NAME_HELP)
    score = serializers.DecimalField(max_digits=6, decimal_places=2, read_only=True)
    components = serializers.SerializerMethodField()
    model_version = serializers.IntegerField(source="model.version", read_only=True)

    class Meta:
        model = Score
        fields = ["id", "customer", "customer_name", "score", "components", "period", "as_of", "model_version",
                  "computed_at"]  # fmt: skip
        read_only_fields = fields

    @extend_schema_field(ComponentSerializer(many=True))
    def get_components(self, obj: Score) -> list[dict]:
        return components_of(obj)

    def get_customer_name(self, obj: Score) -> str:
        return picker_label(obj.institution)  # its parent read with it (_ScoreViewSet._base)


class EvaluationGateSerializer(Serializer):
    """Why the credit gate capped an evaluation's class."""

    reason = serializers.ChoiceField(choices=["amount", "share"])
    klass = serializers.CharField(help_text="The class the gate caps at.")
    days = serializers.IntegerField(help_text="Debts overdue more than this many days count.")
    overdue_amount = serializers.DecimalField(max_digits=14, decimal_places=2, help_text="Those debts, in yuan.")
    limit = serializers.DecimalField(max_digits=14, decimal_places=2, required=False, help_text="reason amount: yuan.")
    share = serializers.DecimalField(max_digits=6, decimal_places=2, required=False, help_text="reason share: %.")
    purchases = serializers.DecimalField(max_digits=14, decimal_places=2, required=False,
                                         help_text="reason share: the window's purchases, yuan.")  # fmt: skip
    text = serializers.CharField(help_text="The reason in words, in the request's language.")

    def get_fields(self):
        fields = super().get_fields()
        fields["class"] = fields.pop("klass")
        return fields


def gate_json(gate: dict | None) -> dict | None:
    """A score's credit gate as the API answers it (None when it did not cap the class)."""
    if not gate:
        return None
    out = {"reason": gate.get("reason", ""), "class": gate.get("class", ""), "days": gate.get("days"),
           "overdue_amount": gate.get("overdue")}  # fmt: skip
    for key in ("limit", "share", "purchases"):
        if key in gate:
            out[key] = gate[key]
    out["text"] = evaluation.gate_reason(gate)
    return out


@extend_schema_field({"type": "string", "enum": Klass.values + [""]}, component_name="EvaluationClass")
class KlassField(serializers.CharField):
    """A class A–D ("" for none)."""


class CappedClassFields(Serializer):
    """The credit gate's fields of a customer evaluation's score: the class the score alone gives and why the gate
    capped it — the same in the evaluations API and the incentives API (api_ops), which list `class` too."""

    class_before_gate = KlassField(
        read_only=True, help_text="The class the score alone gives: `class` unless the credit gate capped it."
    )
    gate = serializers.SerializerMethodField(
        help_text="Why the credit gate capped the class, null when it did not: reason (amount: the old debts are above "
        "`limit` yuan; share: above `share` % of the `purchases` of the window), days (overdue more than), "
        "overdue_amount (yuan), class (the cap) and text (in the request's language)."
    )

    @extend_schema_field(EvaluationGateSerializer(allow_null=True))
    def get_gate(self, obj: Score) -> dict | None:
        return gate_json(obj.gate)


class EvaluationSerializer(ScoreSerializer, CappedClassFields):
    previous_class = KlassField(source="previous_klass", read_only=True, help_text="The class of the period before.")
    previous_score = serializers.DecimalField(max_digits=6, decimal_places=2, read_only=True, allow_null=True)
    discount = serializers.DecimalField(
        max_digits=5, decimal_places=2, read_only=True, allow_null=True, help_text="Discount level (%) of the class."
    )
    programme = serializers.CharField(read_only=True, help_text="Reward programme of the class.")
    programme_label = serializers.SerializerMethodField(
        help_text="The reward programme in the request's language (Accept-Language): one the product ships "
        "(年度优秀客户奖) is translated until a manager renames it; any other as stored in `programme`."
    )

    class Meta(ScoreSerializer.Meta):
        fields = ScoreSerializer.Meta.fields + ["previous_class", "previous_score", "discount", "programme",
                                                "programme_label", "class_before_gate", "gate"]  # fmt: skip
        read_only_fields = fields

    def get_programme_label(self, obj: Score) -> str:
        from pharmacrm.core import builtin

        return builtin.shown(obj.programme or "")

    def get_fields(self):
        fields = super().get_fields()
        # "class" is a Python keyword: the field is added here under its JSON name
        fields["class"] = KlassField(source="klass", read_only=True, help_text="A, B, C or D.")
        return fields


class CandidateSerializer(ScoreSerializer):
    candidate = serializers.BooleanField(
        read_only=True,
        help_text="At or above the model's threshold, not a key account yet, and not a department (proposed through "
        "its hospital).",
    )

    class Meta(ScoreSerializer.Meta):
        fields = ScoreSerializer.Meta.fields + ["candidate"]
        read_only_fields = fields


# --- runs -------------------------------------------------------------------------------------------------


@extend_schema_field({"type": "string", "enum": ModelKind.values}, component_name="ScoringModelKind")
class KindField(serializers.ChoiceField):
    """evaluation (customer evaluation) or candidate (key-account identification)."""

    def __init__(self, **kwargs):
        super().__init__(choices=ModelKind.choices, **kwargs)


class RunRequestSerializer(Serializer):
    kind = KindField(help_text="evaluation or candidate.")
    customer = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_ID,
        help_text="An institution id: evaluate this customer alone, now (kind evaluation; `reason` required).",
    )  # fmt: skip
    reason = serializers.CharField(required=False, allow_blank=True, max_length=evaluation.REASON_MAX,
                                   help_text="Why this customer is evaluated out of turn (kept in the audit trail).")  # fmt: skip


class RunSerializer(ModelSerializer):
    kind = serializers.CharField(source="model.kind", read_only=True)
    model_version = serializers.IntegerField(source="model.version", read_only=True)
    interim_of = serializers.SerializerMethodField(
        help_text="A customer evaluation of a period still under way, once a period was evaluated in full: that "
                  "period (2026H1), whose results stay in force — this run's scores are interim standings and "
                  "change no tier and open no improvement action (`tier_changes` and `actions` are 0). Tiers follow "
                  "the last period evaluated in full, whatever the order of the runs on the day after a period "
                  "ends. Null: the run applied its results (or was of a past period)."
    )  # fmt: skip

    class Meta:
        model = EvaluationRun
        fields = ["id", "kind", "period", "as_of", "trigger", "incremental", "started_at", "finished_at", "customers",
                  "tier_changes", "actions", "model_version", "interim_of"]  # fmt: skip
        read_only_fields = fields

    def get_interim_of(self, obj) -> str | None:
        return getattr(obj, "interim_of", None)


class _ScoreQuery(QuerySerializer):
    period = serializers.CharField(required=False, max_length=8)
    customer = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)

    def validate_period(self, value: str) -> str:
        """2026h2 (or ２０２６Ｈ２) is 2026H2, as the results and candidate pages, the incentives and the key-account
        evaluations read it (evaluation.period_of); what is no period at all is said — both answered an empty list, as
        if nobody had been evaluated."""
        label = evaluation.period_of(value)
        if label is None:
            raise serializers.ValidationError(evaluation.period_wrong_message())
        return label


class EvaluationQuery(_ScoreQuery):
    def get_fields(self):
        fields = super().get_fields()
        fields["class"] = serializers.ChoiceField(choices=Klass.choices, required=False)
        return fields


class CandidateQuery(_ScoreQuery):
    candidate = serializers.BooleanField(required=False, allow_null=True, default=None)
    min_score = TypedDecimalField(required=False, max_digits=5, decimal_places=2, min_value=0, max_value=100)


CANDIDATE_PERIOD = OpenApiParameter(
    "period", str, description="2026-11 (a month); default: the latest identification period with a finished run."
)
EVALUATION_PERIOD = OpenApiParameter(
    "period", str, description="2026H2, or 2026Q3 (key accounts); default: the period the results page shows — the "
    "period in force (the last evaluated in full, whose results decide tiers, discounts and reward programmes), else "
    "the latest period with a finished run. A period under way (interim standings) is listed when asked for.",
)  # fmt: skip
CUSTOMER = OpenApiParameter("customer", int, description="An institution id.")


class _ScoreViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    permission_classes = [HasCapability]
    required_caps = {"*": Cap.VIEW_EVALUATIONS}
    filter_backends: list = []
    lookup_value_regex = r"[0-9]{1,18}"
    kind: str = ""
    query_class: type[serializers.Serializer] = _ScoreQuery

    def _base(self):
        return scores_for(self.request.user, Score.objects.filter(kind=self.kind)).select_related(
            "institution__parent", "model"
        ).prefetch_related("run")  # the page's runs in one query, not a join for every row skipped

    def _filter(self, qs, query: dict):
        if query.get("customer"):
            qs = qs.filter(institution_id=query["customer"])
        return qs

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Score.objects.none()
        qs = self._base()
        if self.action != "list":
            return qs
        form = self.query_class(data=self.request.query_params)
        form.is_valid(raise_exception=True)
        query = form.validated_data
        # none asked: the period the page shows (views_eval.shown_period), for the evaluation the one in force — the
        # latest period with a run was a period under way whose interim standings decide nothing
        period = query.get("period") or shown_period(self.kind, periods(self.kind))
        return self._filter(qs.filter(period=period), query).order_by(*Score.RANKED)


@extend_schema(tags=["evaluation"])
class EvaluationViewSet(_ScoreViewSet):
    """Customer evaluations (客户评估): score, class and every component, per customer and period."""

    queryset = Score.objects.none()
    serializer_class = EvaluationSerializer
    required_caps = {"run": Cap.RUN_EVALUATIONS, "*": Cap.VIEW_EVALUATIONS}
    kind = ModelKind.EVALUATION
    query_class = EvaluationQuery

    def _filter(self, qs, query: dict):
        qs = super()._filter(qs, query)
        if query.get("class"):
            qs = qs.filter(klass=query["class"])
        return qs

    @extend_schema(
        description="The evaluations of the customers you may see, best first: by default of the period the results "
        "page shows — the period in force (the last evaluated in full), else the latest period with a finished run; "
        "the interim standings of a period under way when asked for with `period`. Each carries its class, the "
        "previous period's class, the class's discount level and reward programme, and its components, whose "
        "contributions add up to the score.",
        parameters=[EVALUATION_PERIOD, CUSTOMER, OpenApiParameter("class", str, enum=Klass.values, description="A, B, C or D.")],
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(description="One evaluation with its components.")
    def retrieve(self, request, *args, **kwargs):
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(
        request=RunRequestSerializer,
        responses={201: RunSerializer, 400: OpenApiResponse(description="Unknown kind.")},
        description="Run the customer evaluation (`evaluation`) or the key-account identification (`candidate`) "
        "now, for the current period; with `customer` (and a `reason`), the customer evaluation of that customer "
        "alone, out of turn — the answer then adds `customer`, `score` and `class` (null when it has no purchases in "
        "the evaluation's window). Its results (tiers, improvement actions) are applied only while no period has "
        "been evaluated in full (a new system); afterwards they follow the last period evaluated in full, and the "
        "current period's scores are interim standings (`interim_of` names the period in force). Returns the run.",
    )  # fmt: skip
    @action(detail=False, methods=["post"], pagination_class=None, filter_backends=[])
    def run(self, request):
        form = RunRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data, score = form.validated_data, None
        if data.get("reason") and "customer" not in data:
            raise serializers.ValidationError({"reason": [_("A reason goes with one customer: give its id too.")]})
        if "customer" in data:
            if data["kind"] != ModelKind.EVALUATION:
                raise serializers.ValidationError({"customer": [_("Only the customer evaluation runs for one customer.")]})
            institution = access.institutions_for(request.user).filter(pk=data["customer"]).first()
            if institution is None:  # 400, not 404: whether an id exists is not told to those who may not see it
                raise serializers.ValidationError({"customer": [_("No customer you may see has this id.")]})
            try:
                done, score, _removed = evaluation.evaluate_customer(request.user, institution, data.get("reason", ""))
            except DjangoValidationError as e:
                raise serializers.ValidationError(e.message_dict) from None
        else:
            done = evaluation.run(data["kind"], user=request.user)
        run = EvaluationRun.objects.select_related("model").get(pk=done.pk)
        run.interim_of = getattr(done, "interim_of", None)
        body = RunSerializer(run).data
        if "customer" in data:
            body["customer"] = data["customer"]
            body["score"] = None if score is None else str(score.score)
            body["class"] = None if score is None else score.klass
        return Response(body, status=status.HTTP_201_CREATED)


@extend_schema(tags=["evaluation"])
class CandidateViewSet(_ScoreViewSet):
    """Key-account identification scores (重点客户识别), best first."""

    queryset = Score.objects.none()
    serializer_class = CandidateSerializer
    kind = ModelKind.CANDIDATE
    query_class = CandidateQuery

    def _filter(self, qs, query: dict):
        qs = super()._filter(qs, query)
        if query.get("candidate") is not None:
            qs = qs.filter(candidate=query["candidate"])  # true: the partial index score_candidate_only
        if query.get("min_score") is not None:
            qs = qs.filter(score__gte=query["min_score"], band__gte=band_floor(query["min_score"]))
        return qs

    @extend_schema(
        description="The key-account scores of the customers you may see, best first (by default the latest "
        "identification period); `candidate=true` keeps those at or above the threshold who are not key accounts.",
        parameters=[
            CANDIDATE_PERIOD, CUSTOMER, OpenApiParameter("candidate", bool, description="true: candidates only."),
            OpenApiParameter("min_score", {"type": "string", "example": "50.5"}, description="At least this score "
                             "(0–100); as typed, full-width digits too (５０．５)."),  # fmt: skip
        ],
    )  # fmt: skip
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(description="One key-account score with its components.")
    def retrieve(self, request, *args, **kwargs):
        return super().retrieve(request, *args, **kwargs)


# --- scoring models ---------------------------------------------------------------------------------------


class ScoringModelSerializer(ModelSerializer):
    kind = KindField(read_only=True)
    weights = serializers.DictField(help_text="Measure → relative weight (0–1000).")
    shares = serializers.SerializerMethodField(help_text="Measure → share of the score (0–1), from the weights.")
    params = serializers.DictField(help_text="Reference values (amount_reference, orders_reference, …).")
    thresholds = serializers.DictField(help_text='{"A", "B", "C"} (evaluation) or {"candidate"}: lowest scores.')
    benefits = serializers.DictField(
        help_text='Class → {"tier", "discount", "programme", "action"} (evaluation only).', required=False
    )
    label = shipped_label_field()

    class Meta:
        model = ScoringModel
        fields = ["kind", "version", "name", "label", "weights", "shares", "params", "thresholds", "benefits", "apply_tiers",
                  "created_at", "created_by"]  # fmt: skip
        read_only_fields = fields

    @extend_schema_field({"type": "object", "additionalProperties": {"type": "string"}})
    def get_shares(self, obj: ScoringModel) -> dict:
        return {k: str(v) for k, v in scoring.normalised_weights(obj.weights or {}).items()}


class BenefitSerializer(Serializer):
    tier = serializers.ChoiceField(choices=["", *TIERS], required=False, help_text="new, regular, vip or empty.")
    discount = PercentField(max_digits=5, decimal_places=2, required=False, help_text="0–50 (%); 12.5% is 12.5.")
    programme = serializers.CharField(max_length=100, required=False, allow_blank=True)
    action = serializers.BooleanField(required=False, help_text="Open an improvement action for this class.")


def _reference(key: str) -> TypedDecimalField:
    """A reference value's field, as the settings page reads it: typed (1,000,000, ¥1,000,000 of the amount, 100% of
    the growth, full-width digits) or a JSON number."""
    kind = {"amount_reference": AmountField, "growth_full_percent": PercentField, "gate_amount": AmountField,
            "gate_share": PercentField}.get(key, TypedDecimalField)  # fmt: skip
    return kind(max_digits=14, decimal_places=2)


class ScoringModelUpdateSerializer(Serializer):
    name = serializers.CharField(required=False, max_length=100)
    weights = serializers.DictField(
        child=PercentField(max_digits=8, decimal_places=2), required=False,
        help_text="Measure → relative weight (0–1000); the shares add up to 100 %, so 35% is a weight of 35.",
    )  # fmt: skip
    params = serializers.DictField(
        child=serializers.JSONField(), required=False,
        help_text="Reference values to change (numbers, or text as typed: 1,000,000, ¥1,000,000 of amount_reference, "
        "100% of growth_full_percent, full-width digits): " + ", ".join(PARAMS) + " (gate_*: the customer "
        "evaluation's credit gate — gate_class B, C, D or \"\" for off, gate_days, gate_amount in yuan, gate_share in "
        "%); and the influence's base points "
        "(0–100), each an object sent whole: grade_points (per hospital grade), kind_points (per customer type). "
        "What GET returns is accepted unchanged.",
    )  # fmt: skip
    thresholds = serializers.DictField(child=TypedDecimalField(max_digits=6, decimal_places=2), required=False)
    benefits = serializers.DictField(child=BenefitSerializer(), required=False)
    apply_tiers = serializers.BooleanField(required=False)
    version = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_INT32, help_text="The version you loaded (or If-Match)."
    )
    echoes = ScoringModelSerializer  # the model as GET answers it may be sent back with a value changed

    def validate_params(self, value: dict) -> dict:
        """The reference values as the settings page takes them (numbers with at most 2 decimals, the window
        a whole number of months); the grade and type points as objects, checked by the service."""
        unknown = sorted(set(value) - set(PARAMS) - set(evaluation.POINTS))
        if unknown:
            raise serializers.ValidationError(_("Unknown reference values: %(names)s.") % {"names": ", ".join(unknown)})
        value = dict(value)
        errors = []
        for key in PARAMS:
            if key not in value or key == "gate_class":  # B, C, D or "" (off): checked by the service
                continue
            try:
                value[key] = _reference(key).run_validation(value[key])
            except serializers.ValidationError as e:
                errors.extend(_("%(name)s: %(error)s") % {"name": scoring.param_label(key), "error": m}
                              for m in e.detail)  # fmt: skip
        if errors:
            raise serializers.ValidationError(errors)
        if "window_months" in value and not (
            1 <= value["window_months"] <= 120 and value["window_months"] == int(value["window_months"])
        ):
            raise serializers.ValidationError(_("The window is a whole number of months from 1 to 120."))
        for key in ("default_satisfaction", "default_credit"):
            if key in value and not 0 <= value[key] <= 100:
                raise serializers.ValidationError(_("Default values are scores from 0 to 100."))
        return value


def _jsonable(value):
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


@extend_schema(tags=["evaluation"])
class ScoringModelViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The scoring model in force of each kind; a change makes a new version."""

    queryset = ScoringModel.objects.none()
    serializer_class = ScoringModelSerializer
    permission_classes = [HasCapability]
    required_caps = {"update": Cap.CONFIGURE_SCORING, "*": Cap.VIEW_EVALUATIONS}
    lookup_field = "kind"
    lookup_value_regex = "evaluation|candidate"
    pagination_class = None
    filter_backends: list = []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ScoringModel.objects.none()
        return ScoringModel.objects.filter(active=True).order_by("kind")

    def get_object(self):
        kind = self.kwargs["kind"]
        self.check_permissions(self.request)
        return evaluation.active_model(kind)

    @extend_schema(description="The models in force (customer evaluation and key-account identification).")
    def list(self, request, *args, **kwargs):
        for kind in ModelKind.values:
            evaluation.active_model(kind)  # the defaults, the first time
        return super().list(request, *args, **kwargs)

    @extend_schema(
        parameters=[OpenApiParameter("kind", str, OpenApiParameter.PATH, enum=ModelKind.values)],
        description="The model in force of the kind.",
    )
    def retrieve(self, request, *args, **kwargs):
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(
        parameters=[OpenApiParameter("kind", str, OpenApiParameter.PATH, enum=ModelKind.values)],
        request=ScoringModelUpdateSerializer,
        responses={
            200: ScoringModelSerializer,
            400: OpenApiResponse(description="Per-field messages (weights, params, thresholds, benefits)."),
            409: OpenApiResponse(description="Stale version (with current_version)."),
        },
        description="Save a new version of the kind's model: weights, reference values, thresholds and (evaluation) "
        "results by class; what is not sent stays as it is (a weight, a threshold, a class's result or one field of it; a "
        "weight of 0 leaves a measure out). Send `version` (or If-Match): the version you loaded.",
    )
    def update(self, request, *args, **kwargs):
        current = self.get_object()
        form = ScoringModelUpdateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = dict(form.validated_data)
        if expected_version(request, data.pop("version", None)) != current.version:
            raise Conflict(_("Someone else changed this model in the meantime: load it again."), current.version)
        try:  # the version checked again where the new one is written (saved by someone else meanwhile)
            model = evaluation.save_model(
                request.user, current.kind, _jsonable(data), version=current.version
            )
        except evaluation.ModelChanged as e:
            raise Conflict(_("Someone else changed this model in the meantime: load it again."),
                           e.current.version) from None  # fmt: skip
        return Response(ScoringModelSerializer(model).data)
