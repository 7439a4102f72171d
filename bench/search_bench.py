"""(a) Search latency: 500 mixed queries drawn from the data through customers.search.search() for an
agent (all customers) and a rep (one province), against the same index look-ups as raw SQL."""

from __future__ import annotations

import os
import random
import sys

import common

KINDS = ("initials", "fragment", "pinyin", "phone")
# The rep's queries can take seconds each at 1M people (see docs/benchmarks.md): measure on a prefix.
REP_QUERIES = int(os.environ.get("BENCH_REP_QUERIES", 500))


def _random_row(model, rng, max_id, **filters):
    for _ in range(50):
        obj = model.objects.filter(pk__gte=rng.randint(1, max_id), **filters).order_by("pk").first()
        if obj is not None:
            return obj
    raise RuntimeError(f"No {model.__name__} found: seed the database first.")


def draw_queries(n: int = 500, seed: int = 7) -> list[tuple[str, str]]:
    """(kind, query) pairs as users type them: pinyin initials, 2–4-character fragments, full pinyin, mobiles."""
    from django.db.models import Max

    from pharmacrm.customers import normalise, search
    from pharmacrm.customers.models import Institution, Person

    rng = random.Random(seed)
    max_p = Person.objects.aggregate(m=Max("pk"))["m"]
    max_i = Institution.objects.aggregate(m=Max("pk"))["m"]
    out = []
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        if kind == "phone":
            person = _random_row(Person, rng, max_p)
            out.append((kind, person.mobile))
            continue
        if rng.random() < 0.5:
            name = normalise.name(_random_row(Person, rng, max_p).name)
            start, length = 0, len(name)
        else:
            name = normalise.name(_random_row(Institution, rng, max_i).name)
            length = min(len(name), rng.randint(2, 4))
            start = rng.randint(0, len(name) - length) if kind == "fragment" else 0
        part = name[start : start + length]
        syl = search.syllables(part)
        if kind == "fragment":
            q = part if len(part) >= 2 else name[:2]
        elif kind == "initials":
            q = "".join(s[:1] for s in syl)
            if len(q) < 2:
                q = "".join(s[:1] for s in search.syllables(name[:2]))
        else:
            q = "".join(syl)
        out.append((kind, q))
    return out


def draw_keyword_queries(n: int = 100, seed: int = 11) -> list[tuple[str, str]]:
    """Several words, as users narrow by place: a person's name and two characters of their institution's
    name (王丽 协和), or a department's name after the first two characters of its hospital's name (石家 产科)."""
    from django.db.models import Max

    from pharmacrm.customers.models import Institution, Person

    rng = random.Random(seed)
    max_p = Person.objects.aggregate(m=Max("pk"))["m"]
    max_i = Institution.objects.aggregate(m=Max("pk"))["m"]
    out: list[tuple[str, str]] = []
    while len(out) < n:
        if len(out) % 2 == 0:
            person = _random_row(Person, rng, max_p, institution__isnull=False)
            inst = person.institution.name
            start = rng.randint(0, max(0, len(inst) - 2))
            out.append(("keywords", f"{person.name} {inst[start:start + 2]}"))
        else:
            dept = _random_row(Institution, rng, max_i, kind="department", parent__isnull=False)
            place = dept.parent.name[:2]  # its hospital's place name, as hospitals are named (石家庄市第一医院)
            out.append(("keywords", f"{place} {dept.name}"))
    return out


# --- the same look-ups, as bare SQL on the indexes ------------------------------------------------


def _fetch_names(cur, table: str, ids: list[int]) -> None:
    if ids:
        marks = ",".join(["%s"] * len(ids))
        cur.execute(f"SELECT id, name FROM {table} WHERE id IN ({marks})", ids)
        cur.fetchall()


def raw_lookup(query: str, limit: int = 20) -> None:
    """The index reads search() needs, without scope, ranking or ORM: the floor to compare with."""
    from django.db import connection

    from pharmacrm.core import crypto
    from pharmacrm.customers import normalise, search

    how = search.classify(query)
    with connection.cursor() as cur:
        if how == "phone":
            digits = normalise.phone(query)
            bidx = crypto.blind_index(digits, "phone")
            cur.execute(
                "SELECT id, name FROM customers_person WHERE mobile_bidx = %s OR landline_bidx = %s LIMIT %s",
                [bidx, bidx, limit],
            )
            cur.fetchall()
            cur.execute(
                "SELECT id, name FROM customers_institution WHERE phone_norm = %s LIMIT %s", [digits, limit]
            )
            cur.fetchall()
            return
        for kind, table in ((1, "customers_institution"), (2, "customers_person")):
            if how == "pinyin":
                key = query.lower().replace(" ", "").replace("'", "")
                ids: list[int] = []
                for ns in ("L", "l"):
                    cur.execute(
                        "SELECT obj_id FROM customers_searchterm WHERE term >= %s AND term < %s AND kind = %s LIMIT 400",
                        [ns + key, ns + key + "\uffff", kind],
                    )
                    ids += [r[0] for r in cur.fetchall()]
            else:
                norm = normalise.name(query)
                found: set[int] | None = None
                for i in range(max(1, len(norm) - 1)):
                    g = norm[i : i + 2]
                    cur.execute(
                        "SELECT obj_id FROM customers_searchterm WHERE term IN (%s, %s) AND kind = %s LIMIT 5000",
                        ["C" + g, "c" + g, kind],
                    )
                    rows = {r[0] for r in cur.fetchall()}
                    found = rows if found is None else found & rows
                ids = sorted(found or ())
            _fetch_names(cur, table, ids[:limit])


def breakdown(user, queries) -> dict:
    """Where search() spends its time: index postings, loading candidate rows, the rest (ranking, Python)."""
    import time

    from pharmacrm.customers import search

    spent = {"_postings": 0.0, "_ranked_ids": 0.0, "_hits": 0.0}
    originals = {name: getattr(search, name) for name in spent}

    def wrap(name):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return originals[name](*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - start

        return timed

    for name in spent:
        setattr(search, name, wrap(name))
    try:
        start = time.perf_counter()
        for _, q in queries:
            search.search(user, q)
        total = time.perf_counter() - start
    finally:
        for name, fn in originals.items():
            setattr(search, name, fn)
    return {
        "total_s": round(total, 2),
        "postings_share": round(spent["_postings"] / total, 2),
        "rank_candidates_share": round(spent["_ranked_ids"] / total, 2),
        "load_hits_share": round(spent["_hits"] / total, 2),
        "other_share": round(1 - sum(spent.values()) / total, 2),
    }


REQUEST_CACHES = ("_scope_facts", "_territory")


def as_request(user, q: str):
    """search() as a request runs it: with a user object fresh from the session, so that what the policy
    caches on the user (team, territory, the customers beyond it) is read again, as it is per request."""
    from pharmacrm.customers import search

    for name in REQUEST_CACHES:
        user.__dict__.pop(name, None)
    return search.search(user, q)


def run(n: int = 500) -> dict:
    from pharmacrm.customers import search

    users = common.bench_users()
    queries = draw_queries(n)
    result: dict = {"dataset": common.counts(), "queries": n, "sample": queries[:12]}
    # warm the caches the way a running server has them warm (key ring, pinyin, DB pages)
    for _, q in queries[:50]:
        search.search(users["agent"], q)
        raw_lookup(q)
    raw = [common.timed(raw_lookup, q)[0] for _, q in queries]
    result["raw_sql"] = common.summary(raw)
    for role in ("agent", "rep"):
        user = users[role]
        times, per_kind, slow = [], {k: [] for k in KINDS}, []
        hits = 0
        for kind, q in queries if role == "agent" else queries[:REP_QUERIES]:
            ms, found = common.timed(as_request, user, q)
            times.append(ms)
            per_kind[kind].append(ms)
            slow.append((ms, kind, q))
            hits += bool(found)
        slow.sort(reverse=True)
        result[role] = {
            **common.summary(times),
            "with_hits": hits,
            "by_kind_p95_ms": {k: round(common.percentile(v, 95), 2) for k, v in per_kind.items()},
            "slowest": [(round(ms, 1), kind, q) for ms, kind, q in slow[:8]],
        }
        result[role]["ratio_p95_to_raw"] = round(
            result[role]["p95_ms"] / max(result["raw_sql"]["p95_ms"], 0.01), 1
        )
        result[role]["ratio_p50_to_raw"] = round(
            result[role]["p50_ms"] / max(result["raw_sql"]["p50_ms"], 0.01), 1
        )
    keywords = draw_keyword_queries()
    result["keywords_sample"] = keywords[:6]
    for role in ("agent", "rep"):
        times, hits = [], 0
        for _, q in keywords:
            ms, found = common.timed(as_request, users[role], q)
            times.append(ms)
            hits += bool(found)
        result[role]["keywords"] = {**common.summary(times), "with_hits": hits, "queries": len(keywords)}
    result["agent_breakdown"] = breakdown(users["agent"], queries)
    result["rep_breakdown"] = breakdown(users["rep"], queries[: min(REP_QUERIES, 40)])
    return result


if __name__ == "__main__":
    common.setup()
    common.save("search", run(int(sys.argv[1]) if len(sys.argv) > 1 else 500))
