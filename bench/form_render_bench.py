"""Form rendering: the CPU time of pages with forms and filter bars under Django's template renderer and under the
project's (`pharmacrm.core.form_renderer.FormRenderer`: Django's Jinja2 copies of its form and widget templates).

Run on a database with the demo data (`make run` once, or `pharmacrm demo` into PHARMACRM_VAR_DIR):

    PHARMACRM_VAR_DIR=var .venv/bin/python bench/form_render_bench.py [ROUNDS]

Each page is fetched through Django's test client as the demo agent (and the manager for the manager's pages),
warmed up, then fetched 10 times per round; the figure is the least CPU time (`time.process_time`) per fetch over
ROUNDS rounds (5), the two renderers in turn, so that other work on the machine weighs on both alike. Writes
bench/results/form_render-<date>.json."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import django

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pharmacrm.settings")
django.setup()

from django.conf import settings  # noqa: E402
from django.test import Client, override_settings  # noqa: E402

from pharmacrm.core.models import User  # noqa: E402

PAGES = {
    "agent": ["/customers/institutions/", "/customers/people/", "/customers/institutions/new/", "/service/new/",
              "/service/", "/customers/search/?q=bj"],
    "manager": ["/sales/pipeline/", "/sales/targets/", "/service/performance/"],
}  # fmt: skip
RENDERERS = {"django": "django.forms.renderers.DjangoTemplates", "project": settings.FORM_RENDERER}


def cpu_per_fetch(client: Client, url: str, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(10):
            client.get(url)
        best = min(best, (time.process_time() - start) / 10)
    return best


def main() -> None:
    import logging

    logging.getLogger("django.request").setLevel(logging.ERROR)
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    settings.ALLOWED_HOSTS = ["*"]
    load_before = os.getloadavg()[0]
    rows = []
    for username, urls in PAGES.items():
        client = Client()
        client.force_login(User.objects.get(username=username))
        session = client.session
        session["otp_device_id"] = None  # the demo agent and manager need no second factor for these pages
        for url in urls:
            figures, sizes = {}, {}
            for name, path in RENDERERS.items():
                with override_settings(FORM_RENDERER=path):
                    response = client.get(url)
                    for _ in range(3):
                        client.get(url)
                    figures[name] = cpu_per_fetch(client, url, rounds) * 1000
                    sizes[name] = len(response.content)
            rows.append({"user": username, "url": url, "status": response.status_code, "cpu_ms": figures,
                         "bytes": sizes, "ratio": figures["project"] / figures["django"]})  # fmt: skip
            print(f"{username:8} {url:32} {response.status_code} django {figures['django']:6.1f} ms  "
                  f"project {figures['project']:6.1f} ms  ratio {rows[-1]['ratio']:.2f}")  # fmt: skip
    out = Path(__file__).parent / "results" / f"form_render-{time.strftime('%Y%m%d-%H%M')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"database": django.db.connection.vendor, "load": [load_before, os.getloadavg()[0]],
                               "rows": rows}, indent=1))  # fmt: skip
    print("written", out)


if __name__ == "__main__":
    main()
