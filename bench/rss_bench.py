"""(d) A web worker's memory: gunicorn serving pharmacrm.wsgi with one worker on loopback, driven with a
bounded number of list and search requests by a logged-in agent and rep; then the worker's RSS from /proc."""

from __future__ import annotations

import http.client
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import common

PORT = int(os.environ.get("BENCH_PORT", 8765))


def _rss_kib(pid: int) -> dict:
    status = Path(f"/proc/{pid}/status").read_text()
    out = {}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            out[key] = int(value.split()[0])
    return out


def _worker_pid(master: int) -> int:
    for _ in range(100):
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.1)
    raise SystemExit("gunicorn started no worker")


def _session_cookie(user) -> str:
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def _urls(rng: random.Random, queries: list[str]) -> tuple[list[str], list[str]]:
    """(list pages, search pages), each shuffled."""
    from list_bench import FILTERS, PAGES

    lists = []
    for name, filters in FILTERS.items():
        for f in filters:
            for page in PAGES:
                lists.append(f"/customers/{name}/?" + urlencode({**f, "page": page}))
    searches = [f"/customers/search/?{urlencode({'q': q})}" for q in queries]
    rng.shuffle(lists)
    rng.shuffle(searches)
    return lists, searches


def run(requests: int = int(os.environ.get("BENCH_REQUESTS", 2000))) -> dict:
    from search_bench import draw_queries

    users = common.bench_users()
    cookies = {role: _session_cookie(u) for role, u in users.items()}
    rng = random.Random(3)
    lists, searches = _urls(rng, [q for _, q in draw_queries(200, seed=11)])
    env = {**os.environ, "PYTHONPATH": str(common.ROOT)}
    cmd = [str(Path(sys.executable).parent / "gunicorn"), "pharmacrm.wsgi", "--workers", "1", "--bind",
           f"127.0.0.1:{PORT}", "--timeout", "120", "--log-level", "warning"]  # fmt: skip
    server = subprocess.Popen(cmd, cwd=common.ROOT, env=env)
    try:
        worker = _worker_pid(server.pid)
        for _ in range(100):  # wait until it answers
            try:
                http.client.HTTPConnection("127.0.0.1", PORT, timeout=5).request("GET", "/accounts/login/")
                break
            except OSError:
                time.sleep(0.2)
        conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=120)
        times, statuses = [], {}
        after_warmup = None
        for i in range(requests):
            # agents: lists and searches alternately; every fourth request a rep's list page (a rep's search
            # takes seconds at 1M people, see docs/benchmarks.md, and would only lengthen the run)
            role = "rep" if i % 4 == 3 else "agent"
            url = lists[i % len(lists)] if role == "rep" or i % 2 == 0 else searches[i % len(searches)]
            start = time.perf_counter()
            conn.request("GET", url, headers={"Cookie": f"sessionid={cookies[role]}", "Host": "127.0.0.1"})
            resp = conn.getresponse()
            resp.read()
            times.append((time.perf_counter() - start) * 1000)
            statuses[resp.status] = statuses.get(resp.status, 0) + 1
            if i == 49:
                after_warmup = _rss_kib(worker)
        final = _rss_kib(worker)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    return {
        "dataset": common.counts(), "requests": requests, "statuses": statuses, "http": common.summary(times),
        "worker_rss_after_50_mib": round(after_warmup["VmRSS"] / 1024) if after_warmup else None,
        "worker_rss_mib": round(final["VmRSS"] / 1024), "worker_peak_rss_mib": round(final["VmHWM"] / 1024),
        # anonymous memory (heap, SQLite's page cache) vs file pages mapped in (code, SQLite's mmap)
        "worker_rss_anon_mib": round(final["RssAnon"] / 1024), "worker_rss_file_mib": round(final["RssFile"] / 1024),
    }  # fmt: skip


if __name__ == "__main__":
    common.setup()
    common.save("rss", run(int(sys.argv[1])) if len(sys.argv) > 1 else run())
