"""GET /api/v1/service/performance/ — the service performance table (performance.py) as the page shows it: the rows
of the chosen grouping, the totals, the previous period's totals (and an agent's teams' totals). Read-only; who sees
what is performance.scope_for's decision, as on the page."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, serializers
from rest_framework.response import Response

from pharmacrm.core import viewsets
from pharmacrm.core.api_schema import OneObjectSchema
from pharmacrm.core.api_utils import MAX_INT32, HasCapability, Serializer
from pharmacrm.core.models import Team
from pharmacrm.core.roles import Cap

from . import goals, performance
from .choices import Priority
from .models import Ticket, TicketCategory

TAG = "service performance"


class FiguresSerializer(Serializer):
    key = serializers.CharField(allow_null=True, help_text="The agent's or team's id, the category's code, the "
                                "channel, or the class (A–D, \"\" for none); null: no agent / no team.")  # fmt: skip
    label = serializers.CharField(help_text="The row's name in the request's language, as the page shows it.")
    created = serializers.IntegerField(
        help_text="Tickets received in the period (Beijing time), merged duplicates left out."
    )
    resolved = serializers.IntegerField(help_text="Of those, now resolved, customer-informed or closed.")
    resolution_rate = serializers.FloatField(
        allow_null=True, help_text="resolved / created, in %; null without tickets."
    )
    first_response_median_hours = serializers.FloatField(
        allow_null=True, help_text="Clock hours from receipt to the first response (open: so far)."
    )
    first_response_p90_hours = serializers.FloatField(allow_null=True)
    resolution_median_hours = serializers.FloatField(
        allow_null=True, help_text="Clock hours from receipt to the resolution (open: so far)."
    )
    resolution_p90_hours = serializers.FloatField(allow_null=True)
    first_response_sla_met = serializers.FloatField(
        allow_null=True, help_text="Deadlines met on time / deadlines decided, in %."
    )
    first_response_sla_decided = serializers.IntegerField()
    resolution_sla_met = serializers.FloatField(allow_null=True)
    resolution_sla_decided = serializers.IntegerField()
    reopened = serializers.IntegerField(help_text="Tickets reopened at least once.")
    csat = serializers.FloatField(
        allow_null=True, help_text="Average revisit score, 1–5; null without answers."
    )
    csat_responses = serializers.IntegerField()
    nps = serializers.IntegerField(
        allow_null=True, help_text="% promoters (9–10) − % detractors (0–6), −100…100."
    )
    nps_responses = serializers.IntegerField()
    promoters = serializers.IntegerField()
    detractors = serializers.IntegerField()
    complaints = serializers.IntegerField(help_text="Tickets of the complaint categories.")
    complaints_handled = serializers.IntegerField()
    complaint_handling_rate = serializers.FloatField(allow_null=True)
    quality_reviewed = serializers.IntegerField(help_text="Of the tickets, those reviewed for quality (服务质检).")
    accuracy = serializers.FloatField(
        allow_null=True, help_text="Reviewed tickets whose answer was judged accurate / reviewed, in %; null: none reviewed."
    )
    goals_met = serializers.ListField(child=serializers.CharField(), help_text="The indicators whose service goal this "
                                      "row meets (names as in `goals`).")  # fmt: skip
    goals_missed = serializers.ListField(child=serializers.CharField(), help_text="The indicators whose service goal "
                                         "this row misses; an indicator without a goal or a figure is in neither.")  # fmt: skip


class GoalSerializer(Serializer):
    indicator = serializers.ChoiceField(list(goals.INDICATORS), help_text="The figure it judges: resolution_rate, "
                                        "fr_median, fr_p90, res_median, res_p90 (clock hours), fr_sla, res_sla, csat, "
                                        "nps, complaint_rate, accuracy.")  # fmt: skip
    label = serializers.CharField(help_text="In the request's language.")
    direction = serializers.ChoiceField([goals.AT_LEAST, goals.AT_MOST], help_text=">=: the figure should reach the "
                                        "target; <=: stay within it.")  # fmt: skip
    unit = serializers.CharField(help_text="%, h (clock hours) or empty.")
    team = serializers.IntegerField(allow_null=True, help_text="The team whose own goal this is; null: the whole "
                                    "service desk's.")  # fmt: skip
    target = serializers.DecimalField(max_digits=8, decimal_places=2, allow_null=True,
                                      help_text="The goal set at this level (the team's own, or the desk's); null: none.")  # fmt: skip
    effective = serializers.DecimalField(max_digits=8, decimal_places=2, allow_null=True,
                                         help_text="The goal that applies: the team's own, else the desk's; null: no "
                                         "figure is judged on this indicator.")  # fmt: skip
    minimum = serializers.DecimalField(max_digits=8, decimal_places=2)
    maximum = serializers.DecimalField(max_digits=8, decimal_places=2)


class PerformanceSerializer(Serializer):
    period = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField(help_text="Exclusive.")
    group = serializers.CharField()
    scope = serializers.ChoiceField(["all", "teams", "own"], help_text="all; teams: the teams the user leads; own: "
                                    "the user's own tickets (with their teams' totals in team_totals).")  # fmt: skip
    time_basis = serializers.CharField(
        help_text="clock_hours: wall-clock time from receipt, as the customer waits."
    )
    class_period = serializers.CharField(
        allow_blank=True, help_text="The customer evaluation period of the classes (group=class)."
    )
    rows = FiguresSerializer(many=True)
    totals = FiguresSerializer()
    previous_period = serializers.CharField()
    previous_totals = FiguresSerializer()
    team_totals = FiguresSerializer(allow_null=True)
    goals = GoalSerializer(many=True, help_text="The service goals the totals and rows are judged against (set ones "
                           "only), as in force at the end of the period (previous_totals: at the end of the previous "
                           "period): the team's own where the report is about one team that has some — filtered to it, or "
                           "the one team the caller leads or belongs to — (`team` says which), the desk's for the "
                           "rest. With group=team each team's row is judged against its "
                           "own goals where it has them (its goals_met / goals_missed say the verdict).")  # fmt: skip


def goal_rows(team: int | None = None, *, applied: dict | None = None) -> list[dict]:
    """Every indicator with the goal set at one level (the desk's, or a team's own) and the one that applies; with
    `applied` (a report's goals), only the indicators judged, each at the goal applied."""
    if applied is not None:
        return [{"indicator": name, "label": str(i.label), "direction": i.direction, "unit": i.unit, "team": team,
                 "target": applied[name], "effective": applied[name], "minimum": i.low, "maximum": i.high}
                for name, i in goals.INDICATORS.items() if name in applied]  # fmt: skip
    judge = goals.Judge.loaded()
    own, effective = judge.by_team.get(team, {}), judge.of(team)
    return [{"indicator": name, "label": str(i.label), "direction": i.direction, "unit": i.unit, "team": team,
             "target": own.get(name), "effective": effective.get(name), "minimum": i.low, "maximum": i.high}
            for name, i in goals.INDICATORS.items()]  # fmt: skip


def _figures(f, targets: dict, codes: dict | None = None) -> dict:
    key = (codes or {}).get(f.key, f.key)  # a category's row by its code, as `?category=` takes it
    judged = goals.judge(f, targets)
    return {"key": None if key is None else str(key), "label": f.label, **f.as_dict(),
            "goals_met": [k for k, ok in judged.items() if ok], "goals_missed": [k for k, ok in judged.items() if not ok]}  # fmt: skip


PARAMETERS = [
    OpenApiParameter(
        "period", str, description="2026-11 (month), 2026-Q4 (quarter) or 2026 (year); default: this month."
    ),
    OpenApiParameter(
        "group",
        str,
        enum=list(performance.GROUPS),
        description="Rows per agent (default), team, "
        "customer class (who may see evaluations), category or channel.",
    ),  # fmt: skip
    OpenApiParameter("team", int, description="One team's tickets (a team lead: one of theirs)."),
    OpenApiParameter("category", str, description="A category's code (its sub-categories included)."),
    OpenApiParameter("priority", str, enum=list(Priority.values)),
]


@extend_schema_view(
    list=extend_schema(
        tags=[TAG],
        operation_id="v1_service_performance",
        parameters=PARAMETERS,
        responses={
            200: PerformanceSerializer,
            400: OpenApiResponse(
                description="A parameter is not valid: {field: [message]} in the request's language."
            ),
            403: OpenApiResponse(
                description="Not someone who handles tickets, a team lead or a manager; or a team or "
                "grouping the user may not see."
            ),
        },
        description="Service performance (服务绩效): per agent, team, customer class, category or channel — tickets "
        "received, resolved, resolution rate, median and 90th percentile first-response and resolution times, SLA met, "
        "reopened, CSAT, NPS and complaints. Managers, administrators, analysts and auditors see every team; a team "
        "lead the teams they lead; anyone else who handles tickets their own figures and their teams' totals.",
    )  # fmt: skip
)
class ServicePerformanceViewSet(viewsets.GenericViewSet):
    schema = OneObjectSchema()
    queryset = Ticket.objects.none()  # a summary, not a list of one model
    permission_classes = [HasCapability]
    required_caps = {"*": Cap.VIEW_TICKETS}
    serializer_class = PerformanceSerializer
    pagination_class = None

    def list(self, request):
        query = self._query(request)
        rep = performance.report(request.user, query, trend=False)
        judge = goals.Judge.loaded(query, rep.scope)
        t = judge.page
        codes = dict(TicketCategory.objects.filter(pk__in=[r.key for r in rep.rows if r.key]).values_list("pk", "code")
                     ) if query.group == "category" else None  # fmt: skip
        data = {
            "period": query.period.key, "start": query.period.start, "end": query.period.end, "group": query.group,
            "scope": rep.scope.kind, "time_basis": "clock_hours", "class_period": rep.klass_period,
            "rows": [_figures(r, judge.row(r), codes) for r in rep.rows], "totals": _figures(rep.totals, t),
            "previous_period": query.period.previous.key, "previous_totals": _figures(rep.previous, judge.previous_page),
            "team_totals": _figures(rep.team_totals, t) if rep.team_totals is not None else None,
            "goals": goal_rows(judge.team if judge.team_has_own else None, applied=t),
        }  # fmt: skip
        return Response(PerformanceSerializer(data).data)

    def _query(self, request) -> performance.Query:
        params = request.query_params
        errors: dict[str, list[str]] = {}
        period = performance.current_period()
        if params.get("period"):
            try:
                period = performance.parse_period(params["period"])
            except ValidationError:
                errors["period"] = [performance.period_error()]
        group = params.get("group") or "agent"
        if group not in performance.GROUPS:
            errors["group"] = [_("Choose one of: %(names)s.") % {"names": ", ".join(performance.GROUPS)}]
        team = None
        if raw := params.get("team", ""):
            if not (raw.isascii() and raw.isdecimal()) or int(raw) > MAX_INT32:
                errors["team"] = [_("Give a team id.")]
            else:
                team = Team.objects.filter(pk=int(raw)).first()
                if team is None:
                    errors["team"] = [_("No such team.")]
        category = None
        if raw := params.get("category", ""):
            category = TicketCategory.objects.filter(code=raw[:40]).first()
            if category is None:
                errors["category"] = [_("No category has this code.")]
        priority = params.get("priority", "")
        if priority and priority not in Priority.values:
            errors["priority"] = [_("Choose one of: %(names)s.") % {"names": ", ".join(Priority.values)}]
        if errors:
            raise serializers.ValidationError(errors)
        return performance.Query(period=period, group=group, team=team, category=category, priority=priority)


class GoalsInputSerializer(Serializer):
    team = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_INT32,
                                    help_text="A team's own goals; left out or null: the whole service desk's.")  # fmt: skip
    goals = serializers.DictField(child=serializers.CharField(allow_null=True, allow_blank=True),
                                  help_text="{indicator: target}; null or \"\" removes the goal; indicators left out "
                                  "stay as they are.")  # fmt: skip
    expected = serializers.DictField(child=serializers.CharField(allow_null=True, allow_blank=True), required=False,
                                     help_text="{indicator: the target you read, null for none}: one changed since "
                                     "answers 409 and nothing is saved.")  # fmt: skip


@extend_schema_view(
    list=extend_schema(tags=[TAG], responses={200: GoalSerializer(many=True),
                                              404: OpenApiResponse(description="No such team.")},
                       parameters=[OpenApiParameter("team", int, description="A team's own goals and the goals that "
                                                    "apply to it (a team lead: one they lead; an agent: one of "
                                                    "theirs); left out: the whole service desk's.")],
                       description="The service goals (服务目标): every indicator with its target (null: no goal), "
                       "the goal that applies, direction, unit and allowed range. For whoever may see the service "
                       "performance."),
    create=extend_schema(tags=[TAG], request=GoalsInputSerializer,
                         responses={200: GoalSerializer(many=True), 400: OpenApiResponse(description="{goals: {indicator: "
                                    "[message]}} in the request's language; nothing saved."),
                                    403: OpenApiResponse(description="Not someone who configures the service desk."),
                                    409: OpenApiResponse(description="A goal named in `expected` was changed by "
                                                         "someone else: {detail, goals}; nothing saved.")},
                         description="Set service goals, all or nothing (administrators and managers). Audited."),
)  # fmt: skip
class ServiceGoalsViewSet(viewsets.GenericViewSet):
    queryset = Ticket.objects.none()  # one set of goals
    permission_classes = [HasCapability]
    required_caps = {"list": Cap.VIEW_TICKETS, "create": Cap.MANAGE_SERVICE}
    serializer_class = GoalSerializer
    pagination_class = None
    filter_backends: list = []  # one set of goals: nothing to filter or order

    def list(self, request):
        if not performance.may_see(request.user):  # as the performance page: not for the PV officer
            raise exceptions.PermissionDenied(_("You do not have permission to do this."))
        team = None
        if raw := request.query_params.get("team", ""):
            if not (raw.isascii() and raw.isdecimal()) or int(raw) > MAX_INT32:
                raise serializers.ValidationError({"team": [_("Give a team id.")]})
            scope = performance.scope_for(request.user)  # as the performance API: only a team the caller may see
            mine = scope.team_ids if scope.team_ids is not None else scope.own_team_ids
            if not scope.everything and int(raw) not in mine:
                raise exceptions.PermissionDenied(_("You do not have permission to do this."))
            team = self._team(int(raw))
        return Response(GoalSerializer(goal_rows(team.pk if team else None), many=True).data)

    def create(self, request):
        form = GoalsInputSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        team_id = form.validated_data.get("team")
        team = self._team(team_id) if team_id is not None else None
        try:
            goals.save(request.user, form.validated_data["goals"], loaded=form.validated_data.get("expected"),
                       source="api", team=team)  # fmt: skip
        except ValidationError as e:
            raise serializers.ValidationError({"goals": e.message_dict}) from None
        except goals.GoalsConflict as e:
            return Response({"detail": _("Someone else changed these goals while you were working on them: "
                                         "%(goals)s. Nothing was saved: read them again, then send your change.")
                             % {"goals": ", ".join(e.names)}, "goals": GoalSerializer(goal_rows(team_id), many=True).data},
                            status=409)  # fmt: skip
        return Response(GoalSerializer(goal_rows(team_id), many=True).data)

    @staticmethod
    def _team(pk: int) -> Team:
        team = Team.objects.filter(pk=pk).first()
        if team is None:
            raise exceptions.NotFound(_("No such team."))
        return team


def register(router) -> None:
    """Called by pharmacrm/api_urls.py with the v1 router."""
    router.register("service/performance", ServicePerformanceViewSet, basename="service-performance")
    router.register("service/goals", ServiceGoalsViewSet, basename="service-goals")
