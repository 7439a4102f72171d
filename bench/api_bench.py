"""Issue 3: ticket creation through the REST API under gunicorn (2 workers) with 16 concurrent clients,
against a bare endpoint on the same server that inserts one row (bench/benchsite).

    python bench/api_bench.py [TICKETS]      # default 3,000 tickets
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import common

PORT = int(os.environ.get("BENCH_PORT", 8766))
CLIENTS = 16
PASSWORD = "Bench-password-2026!"


def _user():
    from django.contrib.auth.models import Group

    from pharmacrm.core.models import User
    from pharmacrm.core.roles import Role

    user, created = User.objects.get_or_create(
        username="bench_api_agent", defaults={"display_name": "接口客服"}
    )
    if created:
        user.set_password(PASSWORD)
        user.save()
        user.groups.add(Group.objects.get(name=Role.AGENT.value))
    return user


def _prepare_bare_table() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("CREATE TABLE IF NOT EXISTS bench_bare (id bigserial PRIMARY KEY, note text)")
        else:
            cursor.execute(
                "CREATE TABLE IF NOT EXISTS bench_bare (id integer PRIMARY KEY AUTOINCREMENT, note text)"
            )


def _request(conn, method, path, body=None, headers=None):
    start = time.perf_counter()
    conn.request(method, path, body=body, headers={"Host": "127.0.0.1", **(headers or {})})
    resp = conn.getresponse()
    data = resp.read()
    return (time.perf_counter() - start) * 1000, resp.status, data


def _load(path: str, bodies: list[bytes], headers: dict) -> dict:
    """CLIENTS threads, each with its own keep-alive connection, sending their share of `bodies`."""
    times: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()

    def client(part: list[bytes]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
        mine, seen = [], {}
        for body in part:
            ms, status, _data = _request(conn, "POST", path, body, headers)
            mine.append(ms)
            seen[status] = seen.get(status, 0) + 1
        with lock:
            times.extend(mine)
            for k, v in seen.items():
                statuses[k] = statuses.get(k, 0) + v

    threads = [threading.Thread(target=client, args=(bodies[i::CLIENTS],)) for i in range(CLIENTS)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    ordered = sorted(times)
    return {
        "requests": len(times), "statuses": statuses, "seconds": round(seconds, 2),
        "per_s": round(len(times) / seconds), "p50_ms": round(common.percentile(ordered, 50), 1),
        "p99_ms": round(common.percentile(ordered, 99), 1),
    }  # fmt: skip


def run(tickets: int) -> dict:
    _user()
    _prepare_bare_table()
    env = {**os.environ, "PYTHONPATH": f"{common.ROOT}:{Path(__file__).parent}",
           "DJANGO_SETTINGS_MODULE": "benchsite.settings"}  # fmt: skip
    cmd = [str(Path(sys.executable).parent / "gunicorn"), "pharmacrm.wsgi", "--workers", "2", "--bind",
           f"127.0.0.1:{PORT}", "--timeout", "120", "--log-level", "warning"]  # fmt: skip
    server = subprocess.Popen(cmd, cwd=common.ROOT, env=env)
    try:
        for _ in range(100):
            try:
                http.client.HTTPConnection("127.0.0.1", PORT, timeout=5).request("GET", "/accounts/login/")
                break
            except OSError:
                time.sleep(0.2)
        conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
        _ms, status, data = _request(
            conn, "POST", "/api/v1/auth/token/", json.dumps({"username": "bench_api_agent", "password": PASSWORD}),
            {"Content-Type": "application/json"},
        )  # fmt: skip
        assert status == 200, data
        token = json.loads(data)["token"]
        headers = {
            "Authorization": f"Token {token}",
            "Content-Type": "application/json",
            "Accept-Language": "zh-hans",
        }
        bodies = [
            json.dumps({"subject": f"来电咨询 {i}", "channel": "phone", "category": "drug_info",
                        "caller_name": "王先生", "caller_phone": f"139{i:08d}",
                        "description": "咨询药品储存条件。"}).encode()
            for i in range(tickets)
        ]  # fmt: skip
        _load("/api/v1/tickets/", bodies[:64], headers)  # warm both workers
        api = _load("/api/v1/tickets/", bodies[64:], headers)
        bare = _load("/bench/bare-insert/", [b"x"] * len(bodies), {"Content-Type": "text/plain"})
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {"clients": CLIENTS, "workers": 2, "api": api, "bare_insert": bare,
            "ratio_per_s": round(api["per_s"] / bare["per_s"], 3)}  # fmt: skip


if __name__ == "__main__":
    common.setup()
    common.save("api-tickets", run(int(sys.argv[1]) if len(sys.argv) > 1 else 3000))
