"""The communication plans' due list (/interactions/plan-due/) at 100,000 customers (no target in an issue; recorded
because a manager's default list counts every planned customer to sort them).

    python bench/plans_bench.py            # after churn_bench.py, on the same COPY of the dataset

It needs classes: the customer evaluation is run over the rollups churn_bench.py left (every buying customer gets a
class A–D), the demo's four plans are saved for this year (A: a visit a month and two calls; B: a visit a quarter
and a call a month; C: a call a quarter; D: a call a half-year), and about two interactions per customer are written
over the last six months. Timed: GET /interactions/plan-due/ as a manager (every customer: `scope=all`) and as the
bench rep (one province), pages 1 and 10, 3 requests each; and the manager's summary per owner."""

from __future__ import annotations

import datetime as dt
import random
import sys
import time

import common


def prepare() -> dict:
    from django.contrib.auth.models import Group
    from django.utils import timezone

    from pharmacrm.core.models import User
    from pharmacrm.customers.models import Institution
    from pharmacrm.engagement import demo as plans_demo
    from pharmacrm.engagement.models import Interaction
    from pharmacrm.keyaccounts import evaluation

    out = {}
    manager, _created = User.objects.get_or_create(username="manager", defaults={"display_name": "manager"})
    manager.groups.set([Group.objects.get(name="manager")])
    start = time.perf_counter()
    evaluation.run("evaluation")
    out["evaluation_s"] = round(time.perf_counter() - start, 2)
    plans_demo.load()
    rng = random.Random(11)
    now = timezone.now()
    ids = list(Institution.objects.filter(parent__isnull=True).values_list("id", flat=True))
    Interaction.objects.filter(subject="bench").delete()
    rows = []
    for pk in ids:
        for _n in range(rng.choice((0, 1, 2, 3))):
            at = now - dt.timedelta(days=rng.uniform(0, 180))
            rows.append(Interaction(institution_id=pk, channel=rng.choice(("visit", "phone", "phone", "wechat")),
                                    received_at=at, subject="bench", created_by=manager, created_at=at, updated_at=at))  # fmt: skip
        if len(rows) >= 20_000:
            Interaction.objects.bulk_create(rows, batch_size=5000)
            rows = []
    Interaction.objects.bulk_create(rows, batch_size=5000)
    out["interactions"] = Interaction.objects.count()
    return out


def main() -> None:
    common.setup()
    from django.contrib.auth.models import Group
    from django.test import Client

    from pharmacrm.core.models import User

    figures = prepare()
    print(figures, flush=True)
    users = common.bench_users()
    manager = User.objects.get(username="manager")
    users["rep"].groups.add(Group.objects.get(name="rep"))
    for who, user, scope in (("manager", manager, "all"), ("rep", users["rep"], "teams")):
        client = Client()
        client.force_login(user)
        for label, page in (("page_1", 1), ("page_10", 10)):
            times = []
            for _ in range(3):
                ms, response = common.timed(client.get, f"/interactions/plan-due/?scope={scope}&page={page}")
                assert response.status_code == 200, response.status_code
                times.append(ms)
            figures[f"{who}_{label}"] = common.summary(times)
            print(who, label, figures[f"{who}_{label}"], flush=True)
    print(common.save("plans", figures))


if __name__ == "__main__":
    sys.exit(main())
