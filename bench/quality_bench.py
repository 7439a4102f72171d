"""Quality reviews of service tickets (服务质检): the quality page and the service performance report with its fifth
grouped query (the accuracy, over the reviews), at N tickets (no target in an issue; recorded because a manager's
month reads every ticket of the month and every review of them).

    PHARMACRM_VAR_DIR=/tmp/quality-bench .venv/bin/python manage.py migrate
    PHARMACRM_VAR_DIR=/tmp/quality-bench .venv/bin/python bench/quality_bench.py [N]    # N = 200000

It seeds what is missing (a second run reuses the data): N tickets by `sla_bench.seed` (spread over the last year,
80 % closed, two clocks each); 30 bench agents `qa-agent-NN` (role agent) in three teams, each led by its first
agent, who get every ticket without an assignee (one UPDATE per agent and chunk of ids, the ticket's team the
agent's, agents' loads uneven); a quality review by `qa-expert` (role expert) of about 5 % of the closed tickets,
one in six finding the answer inaccurate (with the finding written down); a revisit survey of about half the
closed tickets, six in ten answered; then ANALYZE. Reviews and surveys are inserted with
`bulk_create`, without the service (no audit entry, no notification): this measures reading them.

Timed, as the manager `qa-manager` (every team) for the last full month (China's calendar), a warm-up then
BENCH_SAMPLES (20) samples each, with the number of SQL statements of one call:
`performance.report` grouped by agent and by team (trend=False, as the export and the API read it),
`quality.agent_rows`, the first 50 of `quality.period_reviews`, `quality.next_to_review` as the expert, and
GET /service/quality/ and /service/performance/ (with its twelve-month trend and goals) through Django's test
client. Writes bench/results/quality-<vendor>-<date>.json."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import sys
import time

import common

AGENTS = 30
TEAMS = ("质检基准一组", "质检基准二组", "质检基准三组")
REVIEW_SHARE = 0.05  # of the closed tickets
INACCURATE = 1 / 6  # of the reviews
SURVEY_SHARE = 0.5  # of the closed tickets, a revisit survey each
CHUNK = 20_000
SAMPLES = int(os.environ.get("BENCH_SAMPLES", 20))
FINDINGS = (
    "答复的用法用量与说明书不一致：儿童剂量应按体重计算，已请客服重新学习说明书第4节。",
    "储存条件答复有误：该品种需2–8℃冷藏，客服答复为常温保存。",
    "供货答复不准确：该规格已停产，客服答复可正常订货。",
    "适应症答复超出说明书范围，且未提示咨询医生。",
    "批号查询结果答复错误，未核对系统中的批次信息。",
)


def _pick(tid: int) -> float:
    """A number in [0, 1) fixed by the ticket id (Fibonacci hashing): the same tickets are reviewed on every run."""
    return ((tid * 0x9E3779B1) & 0xFFFFFFFF) / 2**32


def users() -> dict:
    """The bench's agents (in three teams, each led by its first agent), the manager and the expert."""
    from django.contrib.auth.models import Group

    from pharmacrm.core.models import Team, User
    from pharmacrm.core.roles import Role
    from pharmacrm.core.setup import ensure_roles

    ensure_roles(Group)

    def user(name: str, display: str, role: Role) -> User:
        obj, _created = User.objects.get_or_create(username=name, defaults={"display_name": display})
        obj.groups.set([Group.objects.get(name=role.value)])
        return obj

    agents, teams = [], []
    per_team = AGENTS // len(TEAMS)
    for t, name in enumerate(TEAMS):
        members = [user(f"qa-agent-{n + 1:02d}", f"质检客服{n + 1:02d}", Role.AGENT)
                   for n in range(t * per_team, (t + 1) * per_team)]  # fmt: skip
        team, _created = Team.objects.get_or_create(name=name, defaults={"lead": members[0]})
        if team.lead_id != members[0].pk:
            team.lead = members[0]
            team.save(update_fields=["lead"])
        for member in members:
            member.teams.set([team])
        agents += [(member, team) for member in members]
        teams.append(team)
    return {
        "agents": agents, "teams": teams,
        "manager": user("qa-manager", "质检基准经理", Role.MANAGER),
        "expert": user("qa-expert", "质检基准专家", Role.EXPERT),
    }  # fmt: skip


def assign(agents: list) -> int:
    """Every ticket without an assignee to a bench agent (and the agent's team): per chunk of ids, one UPDATE per
    agent. Loads are uneven (weights 1–3), as a real team's are."""
    from django.db import transaction

    from pharmacrm.servicedesk.models import Ticket

    ids = list(Ticket.objects.filter(assignee__isnull=True).order_by("id").values_list("id", flat=True))
    rng = random.Random(54)
    weights = [1 + i % 3 for i in range(len(agents))]
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        by_agent: dict[int, list[int]] = {}
        for tid, k in zip(chunk, rng.choices(range(len(agents)), weights, k=len(chunk)), strict=True):
            by_agent.setdefault(k, []).append(tid)
        with transaction.atomic():
            for k, tids in by_agent.items():
                agent, team = agents[k]
                Ticket.objects.filter(pk__in=tids).update(assignee_id=agent.pk, team_id=team.pk)
        print(f"assigned: {start + len(chunk):,}/{len(ids):,}", flush=True)
    return len(ids)


def review(expert) -> int:
    """A review of about 5 % of the closed tickets (the same ones on every run; only the missing ones are added),
    a few days after the ticket came in; one in six finds the answer inaccurate, with the finding written."""
    from django.db import transaction
    from django.utils import timezone

    from pharmacrm.servicedesk.models import QualityReview, Ticket

    todo = [
        row
        for row in Ticket.objects.filter(status="closed", quality_review__isnull=True)
        .order_by("id").values_list("id", "received_at", "assignee_id")
        if _pick(row[0]) < REVIEW_SHARE
    ]  # fmt: skip
    # the agent judged, where the model records it (the ticket's assignee when reviewed)
    judged = any(f.name == "agent" for f in QualityReview._meta.get_fields())
    rng = random.Random(540 + QualityReview.objects.count())
    now = timezone.now()
    for start in range(0, len(todo), CHUNK):
        rows = []
        for tid, received, assignee in todo[start : start + CHUNK]:
            at = min(now, received + dt.timedelta(hours=rng.uniform(12, 20 * 24)))
            accurate = rng.random() >= INACCURATE
            rows.append(QualityReview(
                ticket_id=tid, reviewer=expert, accurate=accurate, compliant=True, complete=True, courteous=True,
                comment="" if accurate else rng.choice(FINDINGS), reviewed_at=at, updated_at=at,
                **({"agent_id": assignee} if judged else {}),
            ))  # fmt: skip
        with transaction.atomic():
            QualityReview.objects.bulk_create(rows, batch_size=1000)
        print(f"reviews: {start + len(rows):,}/{len(todo):,}", flush=True)
    return len(todo)


def surveys() -> int:
    """A revisit survey of about half the closed tickets, a day to five after the ticket came in, six in ten
    answered (satisfaction 1–5, recommendation 0–10), as the service performance page reads them (its CSAT and NPS,
    and their twelve-month trend). Made once: skipped when the database has surveys."""
    from django.db import transaction

    from pharmacrm.servicedesk.models import Survey, Ticket

    if Survey.objects.exists():
        return 0
    rng = random.Random(56)
    rows = []
    for tid, received in Ticket.objects.filter(status="closed").order_by("id").values_list("id", "received_at"):
        if rng.random() >= SURVEY_SHARE:
            continue
        at = received + dt.timedelta(hours=rng.uniform(24, 120))
        answered = rng.random() < 0.6
        rows.append(Survey(
            ticket_id=tid, channel="link", sent_to="", sent_at=at, created_at=at,
            answered_at=at + dt.timedelta(hours=5) if answered else None,
            score=rng.randint(1, 5) if answered else None, recommend=rng.randint(0, 10) if answered else None,
        ))  # fmt: skip
    for start in range(0, len(rows), CHUNK):
        with transaction.atomic():
            Survey.objects.bulk_create(rows[start : start + CHUNK], batch_size=1000)
        print(f"surveys: {min(start + CHUNK, len(rows)):,}/{len(rows):,}", flush=True)
    return len(rows)


def prepare(n: int) -> dict:
    import sla_bench
    from django.db import connection

    start = time.perf_counter()
    sla_bench.seed(n)
    people = users()
    assigned = assign(people["agents"])
    reviewed = review(people["expert"])
    surveyed = surveys()
    with connection.cursor() as cur:
        cur.execute("ANALYZE")
    return {"prepare_s": round(time.perf_counter() - start, 1), "assigned_now": assigned, "reviewed_now": reviewed,
            "surveys_now": surveyed,
            **people}  # fmt: skip


def measure(fn, samples: int = SAMPLES) -> dict:
    """Two calls to warm up (the second with its SQL statements counted), then `samples` timed calls."""
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext

    fn()
    # a request clears the query log when it starts (reset_queries on request_started): start from an empty log,
    # or the count of a page comes out short (or 0)
    reset_queries()
    with CaptureQueriesContext(connection) as queries:
        fn()
    count = len(queries)  # now: the next request clears the log the count is read from
    times = [common.timed(fn)[0] for _ in range(samples)]
    return {**common.summary(times), "queries": count}


def main(n: int) -> dict:
    from django.conf import settings
    from django.db.models import Count, Q
    from django.test import Client

    from pharmacrm.servicedesk import performance, quality
    from pharmacrm.servicedesk.models import QualityReview, Ticket

    settings.ALLOWED_HOSTS = ["*"]
    load_before = os.getloadavg()[0]
    prep = prepare(n)
    manager, expert = prep.pop("manager"), prep.pop("expert")
    prep.pop("agents"), prep.pop("teams")
    period = performance.current_period("month").shifted(-1)  # the last full month
    month = Ticket.objects.filter(received_at__gte=period.start, received_at__lt=period.end).aggregate(
        tickets=Count("id"), handled=Count("id", filter=Q(status__in=performance.DONE)),
        reviewed=Count("quality_review"),
    )  # fmt: skip
    figures: dict = {
        "tickets": Ticket.objects.count(),
        "closed": Ticket.objects.filter(status="closed").count(),
        "reviews": QualityReview.objects.count(),
        "inaccurate": QualityReview.objects.filter(accurate=False).count(),
        "agents": Ticket.objects.exclude(assignee=None).values("assignee").distinct().count(),
        "period": period.key,
        "period_data": month,
        **prep,
    }
    print(figures, flush=True)
    client = Client()
    client.force_login(manager)

    def page(url: str):
        def get():
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code, response.get("Location"))
            return response

        return get

    by_agent = performance.Query(period=period, group="agent")
    by_team = performance.Query(period=period, group="team")
    cases = {
        "report_agent": lambda: performance.report(manager, by_agent, trend=False),
        "report_team": lambda: performance.report(manager, by_team, trend=False),
        "agent_rows": lambda: quality.agent_rows(manager, period),
        "period_reviews_50": lambda: list(quality.period_reviews(manager, period)[:50]),
        "next_to_review": lambda: quality.next_to_review(expert, period),
        "quality_page": page(f"/service/quality/?period={period.key}"),
        "performance_page": page(f"/service/performance/?period={period.key}"),
    }
    assert cases["next_to_review"]() is not None, "no handled ticket left to review in the period"
    figures["requests"] = {}
    for label, fn in cases.items():
        figures["requests"][label] = measure(fn)
        print(label, figures["requests"][label], flush=True)
    figures["load"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    return figures


def code() -> dict:
    """The commit measured, and the files of pharmacrm/ changed in the working tree (with a digest of the diff):
    the figures are of the code as it was on disk."""
    import hashlib
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=common.ROOT, capture_output=True, text=True).stdout

    diff = git("diff", "HEAD", "--", "pharmacrm")
    return {
        "commit": git("rev-parse", "HEAD").strip(),
        "changed": git("status", "--short", "--", "pharmacrm").split("\n")[:-1],
        "diff_sha1": hashlib.sha1(diff.encode()).hexdigest() if diff else "",
    }


if __name__ == "__main__":
    common.setup()
    from django.db import connection

    before = code()
    result = main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
    after = code()
    result = {"database": common.db_label(), "date": time.strftime("%Y-%m-%d %H:%M"), "machine": common.machine(),
              "code": before if before == after else {"before": before, "after": after}, **result}  # fmt: skip
    common.RESULTS.mkdir(exist_ok=True)
    path = common.RESULTS / f"quality-{connection.vendor}-{dt.date.today()}.json"
    path.write_text(json.dumps(result, ensure_ascii=False, indent=2))
    print(json.dumps(result, ensure_ascii=False, indent=2))
    print(path)
