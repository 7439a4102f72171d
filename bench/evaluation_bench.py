"""Issue 5 benchmark: the customer evaluation and the key-account identification of every customer from the
monthly rollups (target ≤ 10 s each), and the incremental update after an import of 100,000 new order lines
(target ≤ 2 s).

    python bench/evaluation_bench.py [INCREMENTAL_LINES]     # after orders_bench.py run N (it needs rollups)

Full runs: `evaluation.run("evaluation")`, then `run("candidate")`, each timed on its own; then both again
(the first run applies the results — tier changes with their audit entries, improvement actions — that a
re-run finds done; the scored customers' tiers are reset to "new" and the improvement actions earlier runs
opened are removed first, so that the first run changes every one of them and opens an action for every
weak customer, as a first evaluation does). Incremental: a file of new orders (fresh order numbers, the last 30 days,
customers drawn uniformly) goes through the real import, then each kind's incremental update is timed on
its own; a second such file, then `evaluation.run_all(incremental=True)` (both kinds, as the worker runs them
after an import) is timed. The runs change tiers and open improvement actions: point it at a copy of the dataset."""

from __future__ import annotations

import datetime as dt
import os
import sys
import time

os.environ.setdefault("HUEY_IMMEDIATE", "0")  # the after-import evaluation is queued, never run inline

import common  # noqa: E402
import orders_bench  # noqa: E402

INCREMENTAL_LINES = 100_000


def _run_figures(run, seconds: float) -> dict:
    return {
        "seconds": round(seconds, 2), "customers": run.customers, "tier_changes": run.tier_changes,
        "actions": run.actions, "period": run.period, "incremental": run.incremental,
    }  # fmt: skip


def reset_tiers() -> int:
    """Put the scored customers (key accounts aside) back to the tier "new", as before their first
    evaluation, so that the first run below applies a tier change to each of them with its audit entry."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE customers_institution SET tier = 'new' WHERE tier IN ('regular', 'vip') AND id IN "
            "(SELECT institution_id FROM keyaccounts_score WHERE kind = 'evaluation')"
        )
        return cursor.rowcount


def reset_actions() -> int:
    """Remove the improvement actions earlier evaluation runs opened (their titles end with the period, e.g.
    "[2026H2]"), so that the first run below opens one for every weak customer, as a first evaluation does."""
    from pharmacrm.servicedesk.models import ImprovementAction

    deleted, _per_model = ImprovementAction.objects.filter(title__regex=r"\[[0-9]{4}(H[12]|Q[1-4])\]$").delete()
    return deleted


def full_runs() -> dict:
    from django.utils import timezone

    from pharmacrm.keyaccounts import evaluation, scoring
    from pharmacrm.keyaccounts.choices import ModelKind

    out: dict = {"tiers_reset": reset_tiers(), "actions_reset": reset_actions()}
    model = evaluation.active_model(ModelKind.EVALUATION)
    params = {**scoring.DEFAULT_PARAMS, **model.params}
    ms, facts = common.timed(evaluation.gather, timezone.localdate(), params)
    out["gather_seconds"] = round(ms / 1000, 2)  # reading the facts alone (rollups, surveys, profiles)
    out["customers_with_purchases"] = len(facts)
    for attempt in ("first", "repeat"):
        for kind in (ModelKind.EVALUATION, ModelKind.CANDIDATE):
            ms, run = common.timed(evaluation.run, kind)
            out[f"{kind}_{attempt}"] = _run_figures(run, ms / 1000)
            if (
                attempt == "first" and kind == ModelKind.EVALUATION
            ):  # the same run without applying the results
                ms_only, _run = common.timed(evaluation.run, kind, apply=False)
                out["evaluation_scoring_only"] = _run_figures(_run, ms_only / 1000)
            print(f"{kind} ({attempt}): {ms / 1000:.2f} s, {run.customers:,} customers, "
                  f"{run.tier_changes:,} tier changes, {run.actions:,} actions", flush=True)  # fmt: skip
    return out


def import_new_lines(lines: int) -> float:
    """Import `lines` new order lines (fresh order numbers, the last 30 days, customers drawn uniformly)
    through the real import; its seconds."""
    from pharmacrm.customers import importer

    stamp = int(time.time() * 1000)
    path = orders_bench.ORDERS_DIR / f"orders-new-{lines}-{stamp}.csv"
    end = dt.date.today() - dt.timedelta(days=1)
    orders_bench.write_orders(path, lines, end=end, days=30, seed=stamp, prefix=f"N{stamp}", uniform=True)
    start = time.perf_counter()
    job = importer.import_file(path, "orders", orders_bench.manager(), mode="good", dry_run=False)
    seconds = time.perf_counter() - start
    path.unlink(missing_ok=True)
    if job.created_count != lines:
        raise SystemExit(
            f"the import of the new lines did not create them all: {job.status} {job.created_count}"
        )
    print(f"imported {lines:,} new lines in {seconds:.2f} s", flush=True)
    return seconds


def incremental(lines: int) -> dict:
    """Twice: import `lines` new order lines for random customers, then time the incremental update.
    After the first import each kind is updated on its own (what finding the changed customers, reading
    their facts and storing their scores costs per model); after the second, both together as the
    worker does after an import (`run_all(incremental=True)`: the facts read once for both)."""
    from pharmacrm.keyaccounts import evaluation
    from pharmacrm.keyaccounts.choices import ModelKind

    kinds = (ModelKind.EVALUATION, ModelKind.CANDIDATE)
    out: dict = {"lines": lines, "import_seconds": [round(import_new_lines(lines), 2)], "each_kind": {}}
    for kind in kinds:
        start = time.perf_counter()
        run = evaluation.run(kind, ids=evaluation.changed_since(kind))
        seconds = time.perf_counter() - start
        out["each_kind"][kind] = {**_run_figures(run, seconds), "customers": run.customers}
        print(f"incremental {kind} alone: {seconds:.2f} s ({run.customers:,} customers)", flush=True)
    out["import_seconds"].append(round(import_new_lines(lines), 2))
    changed = {kind: evaluation.changed_since(kind) for kind in kinds}
    start = time.perf_counter()
    runs = evaluation.run_all(incremental=True)
    seconds = time.perf_counter() - start
    print(
        f"incremental, both together: {seconds:.2f} s ({', '.join(f'{r.model.kind} {r.customers:,}' for r in runs)})"
    )
    # where the time goes: the same customers scored again without applying the results (tiers, actions)
    scoring_only = {}
    for kind, ids in changed.items():
        ms, _run = common.timed(evaluation.run, kind, ids=ids, apply=False)
        scoring_only[kind] = round(ms / 1000, 2)
    print(f"the same customers, scoring only (no tier changes, no actions): {scoring_only}", flush=True)
    return {
        **out, "seconds": round(seconds, 2),
        "runs": [{"kind": r.model.kind, **_run_figures(r, (r.finished_at - r.started_at).total_seconds())} for r in runs],
        "changed_customers": {k: None if v is None else len(v) for k, v in changed.items()},
        "same_customers_scoring_only_seconds": scoring_only,
    }  # fmt: skip


def run(lines: int = INCREMENTAL_LINES) -> dict:
    from pharmacrm.core.tasks import load_urls
    from pharmacrm.keyaccounts.models import Score
    from pharmacrm.sales.models import MonthlyRollup

    load_urls()  # as the worker does when it starts: the runs below are the worker's (nightly, after an import)

    sales = orders_bench.sales_counts()
    if not sales["rollups"]:
        raise SystemExit("no purchase rollups: run `bench/run.py orders` (or orders_bench.py run N) first")
    result: dict = {"dataset": common.counts(), "sales": sales,
                    "customers_with_rollups": MonthlyRollup.objects.values("institution_id").distinct().count()}  # fmt: skip
    result["load_average_before"] = os.getloadavg()
    result["full"] = full_runs()
    result["incremental"] = incremental(lines)
    result["scores"] = Score.objects.count()
    result["load_average_after"] = os.getloadavg()
    return result


if __name__ == "__main__":
    common.setup()
    n = int(sys.argv[1]) if len(sys.argv) > 1 else INCREMENTAL_LINES
    common.save("evaluation", run(n))
