"""Issue 5 benchmark: the key-account candidate page (GET /keyaccounts/candidates/) through Django's test client,
logged in as a manager (every customer) and, for comparison, as a rep (one province): pages 1, 2, 10 and the
last, without and with filters, 200 requests each (target p95 ≤ 200 ms).

    python bench/candidates_bench.py [REQUESTS]     # after evaluation_bench.py (it needs candidate scores)

Without candidate scores it runs the key-account identification once first. BENCH_CANDIDATES_URL measures
another page with the same cases (to try the harness on a page that exists)."""

from __future__ import annotations

import os
import sys
from urllib.parse import urlencode

os.environ.setdefault("HUEY_IMMEDIATE", "0")

import common  # noqa: E402
import orders_bench  # noqa: E402

REQUESTS = 200
LAST = 10**6  # past the end: the paginator serves the last page
PAGES = (1, 2, 10, LAST)
FILTERS = [
    {}, {"only": "on"}, {"province": "440000"}, {"kind": "hospital"}, {"min_score": "50"},
    {"province": "330000", "kind": "pharmacy"}, {"only": "on", "kind": "distributor"},
]  # fmt: skip


def url() -> str | None:
    from django.urls import NoReverseMatch, reverse

    if os.environ.get("BENCH_CANDIDATES_URL"):
        return os.environ["BENCH_CANDIDATES_URL"]
    try:
        return reverse("keyaccounts:candidates")
    except NoReverseMatch:
        return None


def ensure_scores() -> int:
    from pharmacrm.keyaccounts import evaluation
    from pharmacrm.keyaccounts.choices import ModelKind
    from pharmacrm.keyaccounts.models import Score

    if not Score.objects.filter(kind=ModelKind.CANDIDATE).exists():
        if not orders_bench.sales_counts()["rollups"]:
            raise SystemExit("no purchase rollups: run `bench/run.py orders` first")
        print("no candidate scores yet: running the key-account identification …", flush=True)
        evaluation.run(ModelKind.CANDIDATE)
    return Score.objects.filter(kind=ModelKind.CANDIDATE).count()


def measure(user, page_url: str, requests: int) -> dict:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.force_login(user)
    resp = client.get(page_url)  # warm-up: templates, translations, the periods
    if resp.status_code != 200:
        raise SystemExit(f"{page_url} answered {resp.status_code} for {user.username}")
    cases = [{**f, "page": p} for f in FILTERS for p in PAGES]
    times, per_case = [], {}
    for i in range(requests):
        params = cases[i % len(cases)]
        target = page_url + "?" + urlencode(params)
        ms, resp = common.timed(client.get, target)
        if resp.status_code != 200:
            raise SystemExit(f"{target} answered {resp.status_code}")
        times.append(ms)
        label = urlencode({**params, "page": "last" if params["page"] == LAST else params["page"]})
        per_case.setdefault(label, []).append(ms)
    with CaptureQueriesContext(connection) as queries:
        client.get(page_url)
    slowest = sorted(((round(max(v), 1), k) for k, v in per_case.items()), reverse=True)
    return {**common.summary(times), "queries_page_1": len(queries), "slowest": slowest[:8]}


def run(requests: int = REQUESTS) -> dict | None:
    page_url = url()
    if page_url is None:
        print("SKIPPED: the candidate page (keyaccounts:candidates) does not exist yet; set BENCH_CANDIDATES_URL "
              "to try the harness on another page", flush=True)  # fmt: skip
        return None
    from pharmacrm.keyaccounts.models import Score

    scores = ensure_scores()
    result: dict = {"url": page_url, "dataset": common.counts(), "candidate_scores": scores,
                    "above_threshold": Score.objects.filter(kind="candidate", candidate=True).count(),
                    "requests": requests, "filters": FILTERS, "pages": ["1", "2", "10", "last"]}  # fmt: skip
    users = {"manager": orders_bench.manager(), "rep": common.bench_users()["rep"]}
    result["load_average_before"] = os.getloadavg()
    for role, user in users.items():
        result[role] = measure(user, page_url, requests)
        r = result[role]
        print(f"{role}: p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms, max {r['max_ms']} ms", flush=True)
    result["load_average_after"] = os.getloadavg()
    return result


if __name__ == "__main__":
    common.setup()
    found = run(int(sys.argv[1]) if len(sys.argv) > 1 else REQUESTS)
    if found is not None:
        common.save("candidates", found)
