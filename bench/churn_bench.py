"""The churn watch's nightly refresh and its page at 100,000 customers (no target in an issue; recorded so that the
job's cost is known before it runs every night).

    python bench/churn_bench.py            # on a COPY of the bench dataset: it replaces the sales rollups

The monthly rollups are replaced by synthetic ones: every customer buys in each of the last 24 months, 5 % of them
stopped buying four months ago and 5 % buy a third as much over the last four months, so that about 10,000
warnings open on the first refresh. Timed: the first refresh (opens the warnings, tells the owners, counts the
rates), a second one (nothing new: updates only), and the list page for a manager (first page, and page 100)."""

from __future__ import annotations

import random
import sys
import time

import common


def fill_rollups(today) -> int:
    from django.db import connection, transaction

    from pharmacrm.customers.models import Institution
    from pharmacrm.sales.models import ChurnRate, ChurnSignal, MonthlyRollup
    from pharmacrm.sales.services import month_start

    rng = random.Random(7)
    ids = list(Institution.objects.filter(parent__isnull=True).values_list("id", flat=True))
    months = [month_start(today, back) for back in range(24, 0, -1)]
    rows = []
    with transaction.atomic():
        ChurnSignal.objects.all().delete()
        ChurnRate.objects.all().delete()
        MonthlyRollup.objects.all().delete()
        for pk in ids:
            roll = rng.random()
            base = rng.randint(50, 5000) * 100_00
            for index, month in enumerate(months):
                back = 24 - index
                if roll < 0.05 and back <= 4:
                    continue  # stopped four months ago
                amount = base // 3 if roll < 0.10 and back <= 4 else base
                rows.append(MonthlyRollup(institution_id=pk, month=month, amount_fen=amount, orders=1, lines=2,
                                          products=1))  # fmt: skip
            if len(rows) >= 50_000:
                MonthlyRollup.objects.bulk_create(rows, batch_size=5000)
                rows = []
        MonthlyRollup.objects.bulk_create(rows, batch_size=5000)
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    else:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE sales_monthlyrollup")
    return MonthlyRollup.objects.count()


def main() -> None:
    common.setup()
    from django.test import Client
    from django.utils import timezone

    from pharmacrm.core.models import User
    from pharmacrm.sales import churn

    today = timezone.localdate()
    rollups = fill_rollups(today)
    figures = {"rollups": rollups}
    for label in ("first_refresh", "second_refresh"):
        start = time.perf_counter()
        counts = churn.refresh(today)
        figures[label] = {"seconds": round(time.perf_counter() - start, 2), **counts}
        print(label, figures[label], flush=True)
    from django.contrib.auth.models import Group

    users = common.bench_users()
    manager, _created = User.objects.get_or_create(username="bench_manager", defaults={"display_name": "bench_manager"})
    manager.groups.set([Group.objects.get(name="manager")])
    for who, user in (("manager", manager), ("rep", users["rep"])):
        client = Client()
        client.force_login(user)
        for label, url in (("page_1", "/sales/churn/"), ("page_100", "/sales/churn/?page=100")):
            times = []
            for _ in range(20):
                ms, response = common.timed(client.get, url)
                assert response.status_code == 200, response.status_code
                times.append(ms)
            figures[f"{who}_{label}"] = common.summary(times)
            print(who, label, figures[f"{who}_{label}"], flush=True)
    print(common.save("churn", figures))


if __name__ == "__main__":
    sys.exit(main())
