"""GET /api/v1/service/complaints/ — the complaint analysis (complaints.py) as the page shows it. Read-only; who sees
what is complaints.scope_for's decision, as on the page."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.response import Response

from pharmacrm.core import viewsets
from pharmacrm.core.api_schema import OneObjectSchema
from pharmacrm.core.api_utils import MAX_INT32, HasCapability, Serializer
from pharmacrm.core.models import Region, Team
from pharmacrm.core.roles import Cap

from . import complaints, performance
from .models import Product, Ticket, TicketCategory

TAG = "complaint analysis"


class ShareSerializer(Serializer):
    key = serializers.CharField(allow_null=True, help_text="The category's code, the root cause, the product's id or "
                                "the province's code (\"\" for none).")  # fmt: skip
    label = serializers.CharField(help_text="In the request's language.")
    count = serializers.IntegerField()
    share = serializers.FloatField(allow_null=True, help_text="% of the complaints (root causes: of those with one).")
    cumulative_share = serializers.FloatField(allow_null=True, help_text="% of this row and those above it.")


class HandlingSerializer(Serializer):
    complaints = serializers.IntegerField()
    handled = serializers.IntegerField(help_text="Now resolved, customer-informed or closed.")
    handling_rate = serializers.FloatField(allow_null=True)
    resolution_sla_met = serializers.FloatField(allow_null=True)
    resolution_sla_decided = serializers.IntegerField()
    resolution_median_hours = serializers.FloatField(allow_null=True, help_text="Clock hours (open: so far).")
    reopened = serializers.IntegerField()
    csat = serializers.FloatField(allow_null=True)
    csat_responses = serializers.IntegerField()
    severe = serializers.IntegerField(help_text="Assessed severe for the customer or the company.")


class ImpactSerializer(Serializer):
    customer_impact = serializers.CharField()
    company_impact = serializers.CharField()
    count = serializers.IntegerField()


class ActionsSerializer(Serializer):
    total = serializers.IntegerField()
    open = serializers.IntegerField(help_text="Open or in progress.")
    overdue = serializers.IntegerField(help_text="Of the open ones, past their due date.")
    done = serializers.IntegerField()
    cancelled = serializers.IntegerField()


class TrendSerializer(Serializer):
    period = serializers.CharField()
    complaints = serializers.IntegerField()
    handled = serializers.IntegerField()
    handling_rate = serializers.FloatField(allow_null=True)
    severe = serializers.IntegerField()


class ComplaintsSerializer(Serializer):
    period = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField(help_text="Exclusive.")
    scope = serializers.ChoiceField(["all", "teams"], help_text="all; teams: the teams the user leads.")
    class_period = serializers.CharField(allow_blank=True)
    handling = HandlingSerializer()
    previous_period = serializers.CharField()
    previous_handling = HandlingSerializer()
    categories = ShareSerializer(many=True)
    root_causes = ShareSerializer(many=True)
    no_root_cause = serializers.IntegerField(help_text="Complaints without a root cause yet (still open).")
    impact = ImpactSerializer(many=True, help_text="Assessed complaints per (customer, company) impact.")
    not_assessed = serializers.IntegerField()
    products = ShareSerializer(many=True, help_text="The ten most complained about.")
    no_product = serializers.IntegerField()
    provinces = ShareSerializer(many=True)
    improvement_actions = ActionsSerializer()
    trend = TrendSerializer(many=True)


def _shares(rows, key=str) -> list[dict]:
    return [{"key": None if r.key is None else key(r.key), "label": r.label, "count": r.count,
             "share": performance._float(r.share), "cumulative_share": performance._float(r.cumulative)}
            for r in rows]  # fmt: skip


def _handling(f, severe: int) -> dict:
    return {
        "complaints": f.created, "handled": f.resolved, "handling_rate": performance._float(f.resolution_rate),
        "resolution_sla_met": performance._float(f.res_sla), "resolution_sla_decided": f.res_met + f.res_missed,
        "resolution_median_hours": f.res_median, "reopened": f.reopened, "csat": performance._float(f.csat),
        "csat_responses": f.csat_count, "severe": severe,
    }  # fmt: skip


PARAMETERS = [
    OpenApiParameter(
        "period", str, description="2026-11 (month), 2026-Q4 (quarter) or 2026 (year); default: this month."
    ),
    OpenApiParameter("category", str, description="A complaint category's code (its sub-categories included)."),
    OpenApiParameter("product", int, description="A product's id."),
    OpenApiParameter("province", str, description="A province's code (110000)."),
    OpenApiParameter("class", str, enum=list(complaints.CLASSES),
                     description="The customer's class in the evaluation in force (who may see evaluations)."),
    OpenApiParameter("team", int, description="One team's complaints (a team lead: one of theirs)."),
]  # fmt: skip


@extend_schema_view(
    list=extend_schema(
        tags=[TAG],
        operation_id="v1_service_complaints",
        parameters=PARAMETERS,
        responses={
            200: ComplaintsSerializer,
            400: OpenApiResponse(
                description="A parameter is not valid: {field: [message]} in the request's language."
            ),
            403: OpenApiResponse(description="Not a manager, QA, analyst, auditor or team lead; or a team or "
                                 "customer class the user may not see."),  # fmt: skip
        },
        description="Complaint analysis (投诉分析): the complaints received in the period by category, root cause "
        "(Pareto: count, share, cumulative share), impact on the customer × on the company, product (top 10) and "
        "province; their handling (handled, resolution in SLA, median resolution time, reopened, CSAT, severe) "
        "beside the previous period's; the improvement actions opened from them; and the last twelve periods.",
    )  # fmt: skip
)
class ComplaintAnalysisViewSet(viewsets.GenericViewSet):
    schema = OneObjectSchema()
    queryset = Ticket.objects.none()  # a summary, not a list of one model
    permission_classes = [HasCapability]
    required_caps = {"*": Cap.VIEW_TICKETS}  # then complaints.scope_for: the capability, or a team lead
    serializer_class = ComplaintsSerializer
    pagination_class = None

    def list(self, request):
        query = self._query(request)
        rep = complaints.report(request.user, query)
        codes = dict(TicketCategory.objects.filter(pk__in=[r.key for r in rep.categories]).values_list("id", "code"))
        data = {
            "period": query.period.key, "start": query.period.start, "end": query.period.end,
            "scope": rep.scope.kind, "class_period": rep.klass_period,
            "handling": _handling(rep.handling, rep.severe), "previous_period": query.period.previous.key,
            "previous_handling": _handling(rep.previous, rep.previous_severe),
            "categories": _shares(rep.categories, lambda k: codes.get(k, str(k))),
            "root_causes": _shares(rep.root_causes), "no_root_cause": rep.undetermined,
            "impact": [{"customer_impact": cust, "company_impact": comp, "count": n}
                       for (cust, comp), n in sorted(rep.impact.items()) if cust and comp],
            "not_assessed": rep.not_assessed, "products": _shares(rep.products), "no_product": rep.no_product,
            "provinces": _shares(rep.provinces), "improvement_actions": vars(rep.actions), "trend": rep.trend,
        }  # fmt: skip
        return Response(ComplaintsSerializer(data).data)

    def _query(self, request) -> complaints.Query:
        params = request.query_params
        errors: dict[str, list[str]] = {}
        period = performance.current_period()
        if params.get("period"):
            try:
                period = performance.parse_period(params["period"])
            except ValidationError:
                errors["period"] = [performance.period_error()]

        def an_id(name: str, model, missing: str):
            raw = params.get(name, "")
            if not raw:
                return None
            if not (raw.isascii() and raw.isdecimal()) or int(raw) > MAX_INT32:
                errors[name] = [_("Give an id.")]
                return None
            found = model.objects.filter(pk=int(raw)).first()
            if found is None:
                errors[name] = [missing]
            return found

        team = an_id("team", Team, _("No such team."))
        product = an_id("product", Product, _("No such product."))
        category = None
        if raw := params.get("category", ""):
            category = TicketCategory.objects.filter(code=raw[:40], complaint=True).first()
            if category is None:
                errors["category"] = [_("No complaint category has this code.")]
        province = params.get("province", "")
        if province and not (
            province.isascii() and province.isdecimal() and len(province) == 6
            and Region.objects.filter(code=province, level=Region.Level.PROVINCE).exists()
        ):  # fmt: skip
            errors["province"] = [_("No province has this code.")]
        klass = params.get("class", "")
        if klass and klass not in complaints.CLASSES:
            errors["class"] = [_("Choose one of: %(names)s.") % {"names": ", ".join(complaints.CLASSES)}]
        if errors:
            raise serializers.ValidationError(errors)
        return complaints.Query(period=period, team=team, category=category, product=product, province=province,
                                klass=klass)  # fmt: skip


def register(router) -> None:
    """Called by pharmacrm/api_urls.py with the v1 router."""
    router.register("service/complaints", ComplaintAnalysisViewSet, basename="service-complaints")
