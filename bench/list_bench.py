"""(b) Customer list pages: the institution and people lists, rendered through Django's test client for an
agent (all customers) and a rep (one province), with filters, sorts and deep pages (1, 10, 100, last)."""

from __future__ import annotations

import sys
from urllib.parse import urlencode

import common

LAST = 10**6  # past the end: the paginator serves the last page

FILTERS = {
    "institutions": [
        {}, {"sort": "name"}, {"type": "hospital"}, {"type": "department"}, {"province": "440000"},
        {"province": "330000", "city": "330100"}, {"tier": "key"}, {"stage": "active", "tier": "vip"},
        {"type": "pharmacy", "province": "370000", "sort": "name"}, {"q": "rmyy"}, {"q": "人民医院"},
    ],
    "people": [
        {}, {"sort": "name"}, {"role": "pharmacist"}, {"province": "440000"}, {"province": "330000", "city": "330100"},
        {"tier": "key"}, {"stage": "churned", "sort": "name"}, {"q": "wangwei"}, {"q": "张伟"},
    ],
}  # fmt: skip
PAGES = (1, 10, 100, LAST)


def cases(institution_id: int | None) -> list[tuple[str, dict]]:
    out = []
    for name, filters in FILTERS.items():
        for f in filters:
            for page in PAGES if "q" not in f else (1, LAST):
                out.append((name, {**f, "page": page}))
    if institution_id:
        out.append(("people", {"institution": institution_id, "page": 1}))
    return out


def run(repeat: int = 3) -> dict:
    from django.test import Client
    from django.urls import reverse

    from pharmacrm.customers.models import Institution

    users = common.bench_users()
    big = (
        Institution.objects.filter(kind="hospital", region_id__gte="330000", region_id__lt="340000")
        .order_by("pk")
        .first()
    )
    result: dict = {"dataset": common.counts(), "repeat": repeat}
    for role, user in users.items():
        client = Client()
        client.force_login(user)
        client.get(reverse("customers:institutions"))  # warm-up: templates, translations
        times, rows = [], []
        for name, params in cases(big.pk if big else None):
            url = reverse(f"customers:{name}") + "?" + urlencode(params)
            samples = []
            for _ in range(repeat):
                ms, resp = common.timed(client.get, url)
                if resp.status_code != 200:
                    raise SystemExit(f"{url} answered {resp.status_code}")
                samples.append(ms)
            times += samples
            page_label = "last" if params.get("page") == LAST else params.get("page")
            rows.append(
                (round(max(samples), 1), round(min(samples), 1), name, {**params, "page": page_label})
            )
        rows.sort(key=lambda r: r[0], reverse=True)
        result[role] = {**common.summary(times), "slowest": rows[:10], "all": rows}
    return result


if __name__ == "__main__":
    common.setup()
    common.save("lists", run(int(sys.argv[1]) if len(sys.argv) > 1 else 3))
