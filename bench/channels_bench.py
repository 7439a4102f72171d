"""The channel effect page (/interactions/channels/) at 100,000 customers (no target in an issue; recorded because a
manager's default page reads every contact of two periods and the orders around them).

    BENCH_PEOPLE=100000 python bench/channels_bench.py   # on a COPY of the bench dataset: it adds orders and contacts
    BENCH_REUSE=1 …                                      # time again on the data of the last run

It seeds what the dataset lacks (the institutions, and people to name in the contacts), then replaces its synthetic
data (subject "bench-channels"): for every top-level customer, order lines every 5–25 days over the last eight
months (about 1.2 million lines), and in each of the last five months 0–3 interactions through a channel drawn with
the demo's mix (about 750,000 interactions, half naming a person), and an opportunity moved forward for one customer
in twenty. Timed through Django's test client, 3 requests each: the month two months back and the quarter before
it, with the default 30-day window, as a manager (every customer: `scope=all`) and as the bench rep (one province);
and the query count of one report."""

from __future__ import annotations

import datetime as dt
import random
import time

import common

MARK = "bench-channels"


def prepare() -> dict:
    from django.contrib.auth.models import Group
    from django.db import connection, transaction
    from django.utils import timezone

    from pharmacrm.core.models import User
    from pharmacrm.customers.models import Institution, Person
    from pharmacrm.engagement.demo import CHANNEL_MIX
    from pharmacrm.engagement.models import Interaction
    from pharmacrm.sales.models import Opportunity, OpportunityMove, OrderLine

    out = {}
    manager, _created = User.objects.get_or_create(username="manager", defaults={"display_name": "manager"})
    manager.groups.set([Group.objects.get(name="manager")])
    rng = random.Random(53)
    today = timezone.localdate()
    now = timezone.now()
    ids = list(Institution.objects.filter(parent__isnull=True).values_list("id", flat=True).order_by("id"))
    people: dict[int, int] = dict(
        Person.objects.filter(institution__isnull=False).values_list("institution_id", "id").order_by("id")
    )
    channels = [c for c, _w in CHANNEL_MIX]
    weights = [w for _c, w in CHANNEL_MIX]
    start = time.perf_counter()
    with transaction.atomic():
        OrderLine.objects.filter(order_number__startswith="BC-").delete()
        Interaction.objects.filter(subject=MARK).delete()
        OpportunityMove.objects.filter(opportunity__title=MARK).delete()
        Opportunity.objects.filter(title=MARK).delete()
        lines, contacts, n = [], [], 0
        first = today - dt.timedelta(days=240)
        for pk in ids:
            day = first + dt.timedelta(days=rng.randint(0, 20))
            while day < today:
                n += 1
                fen = rng.randint(500, 200_000) * 100
                lines.append(OrderLine(order_number=f"BC-{n}", line_number=1, order_date=day, month=day.replace(day=1),
                                       institution_id=pk, product_code="P1", quantity=1, unit_price=fen / 100,
                                       amount_fen=fen, row_hash=n))  # fmt: skip
                day += dt.timedelta(days=rng.randint(5, 25))
            for back in range(5):
                for _c in range(rng.choice((0, 1, 1, 2, 3))):
                    at = now - dt.timedelta(days=30 * back + rng.uniform(0, 30))
                    person = people.get(pk) if rng.random() < 0.5 else None
                    contacts.append(Interaction(institution_id=pk, person_id=person, subject=MARK, received_at=at,
                                                channel=rng.choices(channels, weights)[0], created_by=manager,
                                                created_at=at, updated_at=at))  # fmt: skip
            if len(lines) >= 50_000:
                OrderLine.objects.bulk_create(lines, batch_size=5000)
                lines = []
            if len(contacts) >= 50_000:
                Interaction.objects.bulk_create(contacts, batch_size=5000)
                contacts = []
        OrderLine.objects.bulk_create(lines, batch_size=5000)
        Interaction.objects.bulk_create(contacts, batch_size=5000)
        for pk in ids[::20]:
            opportunity = Opportunity.objects.create(institution_id=pk, title=MARK, amount_fen=100_000,
                                                     close_date=today, stage="needs")  # fmt: skip
            OpportunityMove.objects.create(opportunity=opportunity, from_stage="lead", to_stage="needs",
                                           at=now - dt.timedelta(days=rng.uniform(0, 150)))  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    out["prepare_s"] = round(time.perf_counter() - start, 1)
    out["order_lines"] = OrderLine.objects.count()
    out["interactions"] = Interaction.objects.count()
    out["customers"] = len(ids)
    return out


def main() -> None:
    common.setup()
    import os

    from django.contrib.auth.models import Group
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from pharmacrm.core.models import User
    from pharmacrm.engagement import channels
    from pharmacrm.engagement.models import Interaction
    from pharmacrm.servicedesk.performance import current_period

    figures = {"dataset": common.ensure_dataset()}
    if os.environ.get("BENCH_REUSE") and Interaction.objects.filter(subject=MARK).exists():
        figures["reused"] = True  # BENCH_REUSE=1: the data of an earlier run, as it is
    else:
        figures.update(prepare())
    print(figures, flush=True)
    users = common.bench_users()
    manager = User.objects.get(username="manager")
    rep = users["rep"]
    rep.groups.add(Group.objects.get(name="rep"))
    month = current_period("month").shifted(-2)
    quarter_start = month.previous
    quarter = f"{quarter_start.year}-Q{(quarter_start.number - 1) // 3 + 1}"
    with CaptureQueriesContext(connection) as queries:
        channels.report(manager, channels.Query(month, 30))
    figures["queries_manager_month"] = len(queries)
    for who, user in (("manager", manager), ("rep", rep)):
        client = Client()
        client.force_login(user)
        for label, period in (("month", month.key), ("quarter", quarter)):
            times = []
            for _ in range(3):
                ms, response = common.timed(client.get, f"/interactions/channels/?period={period}&scope=all")
                assert response.status_code == 200, response.status_code
                times.append(ms)
            figures[f"{who}_{label}"] = common.summary(times)
            print(who, label, period, figures[f"{who}_{label}"], flush=True)
    print(common.save("channels", figures))


if __name__ == "__main__":
    main()
