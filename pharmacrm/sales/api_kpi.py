"""REST API of the KPI appraisal: the results (GET /api/v1/sales/appraisals/: a person their own, a team lead their
teams', managers, leadership and auditors every one) and the schemes (GET /api/v1/sales/appraisal-schemes/: those
who see every result). The definitions are kpi.py's (docs/sales-kpi.md)."""

from __future__ import annotations

import django_filters
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, serializers

from pharmacrm.core import viewsets
from pharmacrm.core.api_utils import HasCapability, IntegerFilter, Serializer
from pharmacrm.core.ids import MAX_ID
from pharmacrm.core.roles import Cap

from . import kpi
from .models import Appraisal, AppraisalScheme


def register(router) -> None:
    router.register("sales/appraisals", AppraisalViewSet, basename="appraisal")
    router.register("sales/appraisal-schemes", AppraisalSchemeViewSet, basename="appraisal-scheme")


class AppraisalComponentSerializer(Serializer):
    name = serializers.CharField(source="code", help_text="attainment, growth, csat, nps, follow_up, teamwork or "
                                 "new_customers.")  # fmt: skip
    label = serializers.SerializerMethodField()
    value = serializers.DecimalField(max_digits=12, decimal_places=2, allow_null=True,
                                     help_text="The raw value (percent, CSAT 1–5, NPS, a count); null without data.")  # fmt: skip
    points = serializers.DecimalField(max_digits=6, decimal_places=1, allow_null=True)
    weight = serializers.DecimalField(max_digits=6, decimal_places=2, help_text="The weight counted: the scheme's, "
                                      "or more when an indicator without data shared its weight; 0 without data.")  # fmt: skip
    scheme_weight = serializers.IntegerField()
    contribution = serializers.DecimalField(max_digits=6, decimal_places=2, help_text="weight × points ÷ 100; the "
                                            "contributions add up to the score.")  # fmt: skip
    explanation = serializers.SerializerMethodField()

    def get_label(self, obj) -> str:
        indicator = kpi.INDICATORS.get(obj["code"])
        return str(indicator.label) if indicator else obj["code"]

    def get_explanation(self, obj) -> str:
        return kpi.explain(obj["code"], obj.get("facts"))


class AppraisalSerializer(Serializer):
    id = serializers.IntegerField(read_only=True)
    scheme = serializers.IntegerField(source="scheme_id")
    period = serializers.CharField(help_text="2026-09, 2026-Q3 or 2026 (the scheme's kind).")
    person = serializers.IntegerField(source="user_id", help_text="The person's user id.")
    person_name = serializers.SerializerMethodField()
    team = serializers.IntegerField(source="team_id", allow_null=True,
                                    help_text="The first of `teams` by name (null without a team).")  # fmt: skip
    teams = serializers.SerializerMethodField(help_text="Every team the person was in when the result was computed: "
                                              "it counts in each of their rankings.")  # fmt: skip
    score = serializers.DecimalField(max_digits=6, decimal_places=2, allow_null=True)
    grade = serializers.CharField(help_text="excellent, good, pass, improve; '' without any data.")
    grade_label = serializers.SerializerMethodField()
    bonus_coefficient = serializers.DecimalField(max_digits=4, decimal_places=2, allow_null=True)
    status = serializers.CharField(help_text="draft or final (finalised: never changes).")
    comment = serializers.CharField()
    components = AppraisalComponentSerializer(many=True)
    computed_at = serializers.DateTimeField()
    finalised_at = serializers.DateTimeField(allow_null=True)

    def get_person_name(self, obj) -> str:
        return obj.user.display_name or obj.user.username

    def get_grade_label(self, obj) -> str:
        return kpi.grade_label(obj.grade)

    def get_teams(self, obj) -> list[int]:
        return sorted(t.pk for t in obj.teams.all())


class AppraisalFilter(django_filters.FilterSet):
    scheme = IntegerFilter(field_name="scheme_id", min_value=1, max_value=MAX_ID)
    person = IntegerFilter(field_name="user_id", min_value=1, max_value=MAX_ID)
    team = IntegerFilter(method="by_team", min_value=1, max_value=MAX_ID,
                         help_text="A team id: everyone counted in that team's ranking (a person in two teams in "
                         "both).")  # fmt: skip
    grade = django_filters.ChoiceFilter(choices=[(g, g) for g in kpi.GRADES])
    period = django_filters.CharFilter(method="by_period", help_text="2026-Q3, 2026-09 or 2026.")

    class Meta:
        model = Appraisal
        fields = ["scheme", "person", "team", "grade", "period"]

    def by_team(self, qs, name, value):
        return kpi.in_team(qs, int(value))

    def by_period(self, qs, name, value):
        try:
            return qs.filter(period=kpi.parse_period(value).key)
        except DjangoValidationError as e:
            raise exceptions.ValidationError(e.message_dict) from None


@extend_schema_view(
    list=extend_schema(tags=["purchases"], description="KPI appraisal results you may see (a rep or key-account "
                       "manager their own, a team lead their teams', managers, administrators and auditors every "
                       "one), the highest score first; filters scheme, period, person, team, grade."),
    retrieve=extend_schema(tags=["purchases"], description="One appraisal result with its components."),
)  # fmt: skip
class AppraisalViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """KPI appraisal results."""

    queryset = Appraisal.objects.none()
    serializer_class = AppraisalSerializer
    permission_classes = [HasCapability]
    filterset_class = AppraisalFilter
    lookup_value_regex = r"[0-9]{1,18}"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return (kpi.results_for(self.request.user).select_related("user").prefetch_related("teams")
                .order_by("-period", "scheme_id", "-score", "id"))  # fmt: skip


class AppraisalSchemeSerializer(Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    period_kind = serializers.CharField(help_text="month, quarter or year.")
    roles = serializers.ListField(child=serializers.CharField(), help_text="rep, kam.")
    indicators = serializers.ListField(child=serializers.DictField(), help_text="{code, weight, target, floor, cap}; "
                                       "the weights add up to 100.")  # fmt: skip
    excellent = serializers.DecimalField(max_digits=5, decimal_places=1)
    good = serializers.DecimalField(max_digits=5, decimal_places=1)
    passing = serializers.DecimalField(max_digits=5, decimal_places=1)
    bonus = serializers.DictField(child=serializers.CharField(), help_text="A bonus coefficient per grade.")
    active = serializers.BooleanField()
    version = serializers.IntegerField()
    updated_at = serializers.DateTimeField()


@extend_schema_view(
    list=extend_schema(tags=["purchases"], description="The KPI appraisal schemes (managers, administrators, "
                       "auditors)."),
    retrieve=extend_schema(tags=["purchases"], description="One appraisal scheme."),
)  # fmt: skip
class AppraisalSchemeViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """KPI appraisal schemes."""

    queryset = AppraisalScheme.objects.order_by("-active", "name", "id")
    serializer_class = AppraisalSchemeSerializer
    permission_classes = [HasCapability]
    required_caps = {"*": Cap.VIEW_ALL_APPRAISALS}
    lookup_value_regex = r"[0-9]{1,18}"
