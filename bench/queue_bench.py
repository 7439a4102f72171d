"""Issue 3: the my-queue and team-queue pages at the tickets bench/sla_bench.py made (run it first):
tickets are spread over 50 agents (so one agent holds about 4,000 open tickets and 16,000 closed ones)
and a third of them over a team, then the pages are fetched through Django's test client.

    python bench/queue_bench.py
"""

from __future__ import annotations

import common

AGENTS = 50


def prepare() -> tuple:
    from django.contrib.auth.models import Group
    from django.db import connection

    from pharmacrm.core.models import Team, User
    from pharmacrm.core.roles import Role

    group = Group.objects.get(name=Role.AGENT.value)
    team, _ = Team.objects.get_or_create(name="基准客服团队")
    agents = []
    for n in range(AGENTS):
        user, created = User.objects.get_or_create(
            username=f"bench_agent_{n:02d}", defaults={"display_name": f"客服{n:02d}"}
        )
        if created:
            user.groups.add(group)
        agents.append(user)
    agents[0].teams.add(team)
    first = agents[0].pk  # the agents were created in one go: consecutive ids
    assert [a.pk for a in agents] == list(range(first, first + AGENTS))
    with connection.cursor() as cur:
        cur.execute(
            f"UPDATE servicedesk_ticket SET assignee_id = {first} + (id % {AGENTS}) WHERE assignee_id IS NULL"
        )
        cur.execute(f"UPDATE servicedesk_ticket SET team_id = {team.pk} WHERE id % 3 = 0 AND team_id IS NULL")
        cur.execute("ANALYZE")
    return User.objects.get(pk=first), team


def run(repeat: int = 5) -> dict:
    from django.test import Client

    from pharmacrm.servicedesk.models import Ticket

    agent, team = prepare()
    client = Client()
    client.force_login(agent)
    urls = []
    for queue in ("mine", "team"):
        for page in (1, 10, 40, 10**6):
            urls.append(f"/service/?queue={queue}&page={page}")
    urls += ["/service/?queue=mine&priority=normal", "/service/?queue=team&status=in_progress&page=5"]
    client.get(urls[0])  # warm
    times, rows = [], []
    for url in urls:
        samples = []
        for _ in range(repeat):
            ms, resp = common.timed(client.get, url)
            assert resp.status_code == 200, (url, resp.status_code)
            samples.append(ms)
        times += samples
        rows.append((round(max(samples), 1), round(min(samples), 1), url))
    return {
        "tickets": Ticket.objects.count(),
        "open_of_agent": Ticket.objects.filter(assignee=agent, next_due_at__isnull=False).count(),
        "all_of_agent": Ticket.objects.filter(assignee=agent).count(),
        **common.summary(times),
        "pages": sorted(rows, reverse=True),
    }


if __name__ == "__main__":
    common.setup()
    common.save("queue", run())
