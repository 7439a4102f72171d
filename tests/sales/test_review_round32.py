"""Review round 32 (sales): an immaterial overdue remainder and the credit status."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone, translation

from pharmacrm.keyaccounts import evaluation, scoring
from pharmacrm.keyaccounts.views_eval import explain
from pharmacrm.sales import services

from .conftest import line

# --- an immaterial overdue remainder ---------------------------------------------------------------------------------


def _paid_on_time_but(run_import, customer, order: str, amount: str, paid: str):
    """One line of `amount`, due 30 days ago, of which `paid` was paid a day before its due date."""
    today = timezone.localdate()
    ordered, due = (today - dt.timedelta(days=60)).isoformat(), (today - dt.timedelta(days=30)).isoformat()
    paid_on = (today - dt.timedelta(days=31)).isoformat()
    job = run_import([line(order, 1, ordered, customer, "P1", 1, amount, payment_due=due, paid_date=paid_on,
                           paid_amount=paid)])  # fmt: skip
    assert job.error_count == 0, job.errors


@pytest.fixture
def remainders(run_import, xiehe, huashan):
    """Hand-computed: 协和 paid 1,999.50 of 2,000.00 on time (0.50 left open: under ¥1.00 and under 0.1 % of its
    2,000.00 purchases, i.e. 2.00); 华山 paid 499.40 of 500.00 on time (0.60 left: under ¥1.00 but over 0.1 % of its
    500.00 purchases, i.e. 0.50 — material)."""
    _paid_on_time_but(run_import, xiehe, "SO-R1", "2000.00", "1999.50")
    _paid_on_time_but(run_import, huashan, "SO-R2", "500.00", "499.40")
    return xiehe, huashan


def test_a_rounding_difference_left_open_does_not_make_the_credit_status_poor(remainders, client_for, api_for):
    """1,999.50 of 2,000.00 paid on time, the 0.50 an ERP's rounding difference: the customer was flagged "Poor"
    (the 0.50 was all of its arrears, so 100 % of them overdue). An overdue total under ¥1.00 and under 0.1 % of the
    customer's purchases now counts as settled for the status; the arrears and overdue figures still show 0.50."""
    xiehe, huashan = remainders
    c = services.credit(xiehe.pk)
    assert (c.status, c.overdue, c.outstanding, c.overdue_ignored) == ("good", Decimal("0.50"), Decimal("0.50"), True)
    assert c.ageing[1]["amount"] == Decimal("0.50")  # 30 days past due: the exact amount stays in the ageing
    assert c.on_time_share == Decimal("0.9998")  # 1,999.50 / 2,000.00, as before

    other = services.credit(huashan.pk)  # 0.60 is more than 0.1 % of 500.00: arrears, as before
    assert (other.status, other.overdue, other.overdue_ignored) == ("poor", Decimal("0.60"), False)

    page = client_for("admin").get(f"/sales/customers/{xiehe.pk}/purchases/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'data-status="good"' in page and 'data-credit="overdue">¥0.50<' in page
    assert ("The overdue ¥0.50 is immaterial (under ¥1.00 and under 0.1 % of the purchases in the period, such as a "
            "rounding difference): the status counts it as settled.") in page  # fmt: skip
    page = client_for("admin").get(f"/sales/customers/{huashan.pk}/purchases/").content.decode()
    assert 'data-status="poor"' in page and 'id="credit-immaterial"' not in page

    data = api_for("admin").get(f"/api/v1/sales/customers/{xiehe.pk}/purchases/").json()["credit"]
    assert (data["status"], data["overdue"], data["outstanding"], data["overdue_ignored"]) == (
        "good", "0.50", "0.50", True)  # fmt: skip


def test_the_threshold_is_a_setting(remainders, settings):
    xiehe, _huashan = remainders
    settings.PHARMACRM_CREDIT_MATERIALITY_FEN = 50  # ¥0.50: 0.50 is not under it
    assert (services.credit(xiehe.pk).status, services.credit(xiehe.pk).overdue_ignored) == ("poor", False)
    settings.PHARMACRM_CREDIT_MATERIALITY_FEN = 0  # off
    assert services.credit(xiehe.pk).status == "poor"


def test_the_evaluations_credit_measure_follows_the_same_rule(remainders):
    """The evaluation's credit measure took the 0.50 as arrears (99.98); like the status, it counts it as settled:
    70 % × 100 % on time + 30 % × (100 − 0 % overdue) = 100.00. 华山's 0.60 stays arrears:
    70 × 499.40 / 500.00 + 30 × (100 − 0.60 / 500.00 × 100) = 69.916 + 29.964 = 99.88."""
    xiehe, huashan = remainders
    facts = evaluation.gather(timezone.localdate(), {"window_months": 12}, [xiehe.pk, huashan.pk])
    assert (facts[xiehe.pk].overdue_fen, facts[xiehe.pk].amount_fen) == (50, 200000)
    part = scoring.credit(facts[xiehe.pk], scoring.DEFAULT_PARAMS)
    assert part.value.quantize(Decimal("0.01")) == Decimal("100.00")
    assert part.detail == {"on_time_share": "1.0000", "overdue": "0.50", "overdue_ignored": True}
    with translation.override("en"):
        text = explain({"name": part.name, "value": str(part.value), "detail": part.detail})
    assert text == "paid on time 100%, ¥0.50 overdue (immaterial, counted as settled)"
    other = scoring.credit(facts[huashan.pk], scoring.DEFAULT_PARAMS)
    assert other.value.quantize(Decimal("0.01")) == Decimal("99.88") and "overdue_ignored" not in other.detail


# --- Excel's text files (.txt) in the wizard, the API and the command line -----------------------------------------

EXCEL_TEXT = {
    "unicode": "utf-16",  # Save As → Unicode Text (*.txt): UTF-16 LE with its byte-order mark, tab-separated
    "gbk": "gb18030",  # Save As → Text (Tab delimited) (*.txt) on a Chinese Windows
    "utf8": "utf-8",  # the same on a UTF-8 system (WPS, Excel for Mac)
}


def excel_text(rows: list[dict], encoding: str, sep: str = "\t") -> bytes:
    from pharmacrm.customers import importer
    from pharmacrm.customers.models import ImportJob

    from .conftest import KEYS

    lines = [sep.join(importer.template_headers(ImportJob.Target.ORDERS))]
    lines += [sep.join(row.get(k, "") for k in KEYS) for row in rows]
    text = "\r\n".join(lines) + "\r\n"
    return text.encode(encoding)  # Python's utf-16 writes the byte-order mark (LE here), as Excel does


def two_lines(customer) -> list[dict]:
    from .conftest import today_minus

    day = today_minus(30)
    return [line("SO-T", 1, day, customer, "P1", 2, "10.50"), line("SO-T", 2, day, customer, "P2", 1, "99")]


def _upload(name: str, content: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, content, content_type="text/plain")


@pytest.mark.parametrize("kind", sorted(EXCEL_TEXT))
def test_the_wizard_takes_the_text_files_excel_saves(kind, client_for, xiehe, huey_immediate):
    """Excel's "Unicode Text" and "Text (Tab delimited)" save a sheet as .txt: the wizard refused them ("Only .csv
    and .xlsx files can be imported."), though the importer reads that content named .csv."""
    from pharmacrm.customers.models import ImportJob
    from pharmacrm.sales.models import OrderLine

    client = client_for("manager")
    page = client.get("/customers/import/?target=orders", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'accept=".csv,.txt,.xlsx"' in page
    assert "An .xlsx, .csv or .txt file (Excel’s “Unicode Text” or “Text (Tab delimited)”)" in page.replace(
        "&#x27;", "’").replace("'", "’")  # fmt: skip
    content = excel_text(two_lines(xiehe), EXCEL_TEXT[kind])
    response = client.post("/customers/import/?target=orders",
                           {"target": "orders", "mode": "all", "file": _upload("销售订单.txt", content)})  # fmt: skip
    job = ImportJob.objects.get()
    assert response.status_code == 302 and (job.status, job.created_count, job.error_count) == ("previewed", 2, 0)
    client.post(f"/customers/import/{job.pk}/confirm/", {"mode": "all"})
    job.refresh_from_db()
    assert (job.status, job.created_count) == ("done", 2)
    assert sorted(OrderLine.objects.values_list("line_number", "amount_fen")) == [(1, 2100), (2, 9900)]


def test_a_comma_separated_txt_is_read_too(client_for, xiehe, huey_immediate):
    from pharmacrm.customers.models import ImportJob

    content = excel_text(two_lines(xiehe), "utf-8", sep=",")
    client_for("manager").post("/customers/import/?target=orders",
                               {"target": "orders", "mode": "all", "file": _upload("订单.txt", content)})  # fmt: skip
    assert ImportJob.objects.values_list("status", "created_count", "error_count").get() == ("previewed", 2, 0)


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("订单.txt", bytes(range(256)) * 40,
         "This is not a text (.txt) file: it contains data of another kind. Save the sheet in Excel as “Unicode Text” "
         "or “Text (Tab delimited)”, or as .xlsx or CSV, and upload it again."),
        ("订单.txt", b"%PDF-1.7\n" + bytes(300), "This is not a text (.txt) file: it contains a PDF document."),
        ("订单.doc", b"hello", "Only .csv, .txt and .xlsx files can be imported."),
    ],
)  # fmt: skip
def test_what_is_no_text_is_refused_and_changes_nothing(client_for, xiehe, settings, name, content, reason):
    from pharmacrm.customers.models import ImportJob
    from pharmacrm.sales.models import OrderLine

    response = client_for("manager").post(
        "/customers/import/?target=orders", {"target": "orders", "mode": "all", "file": _upload(name, content)},
        HTTP_ACCEPT_LANGUAGE="en",
    )  # fmt: skip
    assert response.status_code == 400 and reason in response.content.decode().replace("&quot;", '"')
    assert ImportJob.objects.count() == 0 and OrderLine.objects.count() == 0
    assert list((settings.VAR_DIR / "imports").glob("*")) == []


def test_the_api_takes_a_txt_file(api_for, xiehe):
    from pharmacrm.customers.models import ImportJob

    content = excel_text(two_lines(xiehe), "utf-16")
    response = api_for("manager").post(
        "/api/v1/imports/", {"file": _upload("订单.txt", content), "target": "orders", "mode": "all", "dry_run": "true"},
        format="multipart",
    )  # fmt: skip
    assert response.status_code == 202, response.content
    job = ImportJob.objects.get(pk=response.json()["id"])
    assert (job.target, job.file_name, job.error_count) == ("orders", "订单.txt", 0)
    binary = api_for("manager").post(
        "/api/v1/imports/", {"file": _upload("订单.txt", bytes(range(256)) * 40), "target": "orders", "mode": "all"},
        format="multipart", HTTP_ACCEPT_LANGUAGE="en",
    )  # fmt: skip
    assert binary.status_code == 400 and "This is not a text (.txt) file" in binary.json()["file"][0]
    assert ImportJob.objects.count() == 1


def test_the_command_line_takes_a_txt_file(xiehe, users, tmp_path, capsys):
    from django.core.management import call_command

    from pharmacrm.sales.models import OrderLine

    path = tmp_path / "销售订单.txt"
    path.write_bytes(excel_text(two_lines(xiehe), "gb18030"))
    call_command("import", "orders", str(path), "--language", "en")
    assert "created 2\nupdated 0\nunchanged 0\nrejected 0" in capsys.readouterr().out
    assert OrderLine.objects.count() == 2
    binary = tmp_path / "坏.txt"
    binary.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(SystemExit) as exit_info:
        call_command("import", "orders", str(binary), "--language", "en")
    assert exit_info.value.code == 2 and "This is not a text (.txt) file" in capsys.readouterr().err
    assert OrderLine.objects.count() == 2


# --- two all-or-nothing imports at once ------------------------------------------------------------------------------

# A process of its own on the copied SQLite file: the worker's run of a job (`run_job`), or the command line. The
# database's busy timeout is 1 s here instead of 20 s, so that giving up shows within the test. With T_HOLD, the import
# stops in its transaction once it has written its lines, until the test releases it.
PROCESS = r"""
import os, pathlib, sys, time
from django.conf import settings
settings.DATABASES["default"]["OPTIONS"]["timeout"] = 1
import django
django.setup()
hold = os.environ.get("T_HOLD")
if hold:
    from pharmacrm.sales import importer as orders
    original = orders.Writer._apply
    def _apply(self, chunk, *, write):
        done = original(self, chunk, write=write)
        if write:
            pathlib.Path(hold + ".holding").touch()
            for _ in range(1200):
                if pathlib.Path(hold + ".release").exists():
                    break
                time.sleep(0.05)
        return done
    orders.Writer._apply = _apply
pathlib.Path(os.environ["T_STARTED"]).touch()
if sys.argv[1] == "job":
    from pharmacrm.customers import importer
    importer.run_job(int(sys.argv[2]))
else:
    from pharmacrm import cli
    cli.main(["import", "orders", sys.argv[2], "--all-or-nothing", "--user", sys.argv[3], "--language", "en"])
"""


def _order_rows(customer, order: str, count: int) -> list[dict]:
    from .conftest import today_minus

    return [line(order, n, today_minus(40), customer, f"P{n}", 1, "100") for n in range(1, count + 1)]


def _wait_for(path, seconds: float = 120) -> bool:
    import time

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if path.exists():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.sqlite
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("how", ["worker", "command line"])
def test_two_all_or_nothing_imports_at_once_on_sqlite_take_turns(how, admin_user, xiehe, order_file, tmp_path,
                                                                   settings):  # fmt: skip
    """Two all-or-nothing order imports at once on SQLite (two workers, or the worker and a cron job): the first held
    the database's write lock for its whole file, the second gave up after the busy timeout with "database is
    locked" (its job left failed or waiting for ever). The second now waits for the first — writing nothing meanwhile,
    its job shown waiting — and then imports its file: both finish with their counts, each line once. Real processes
    on a real SQLite file (the test database copied to one)."""
    import os
    import sqlite3
    import subprocess
    import sys
    import time

    from django.db import connection


    files = {"A": order_file(_order_rows(xiehe, "SO-A", 30)), "B": order_file(_order_rows(xiehe, "SO-B", 20))}
    # both checked and confirmed in the wizard, the worker running them side by side; or two command lines
    jobs = _confirmed(admin_user, files) if how == "worker" else {}
    database = tmp_path / "copy.sqlite3"
    with connection.cursor() as cursor:
        cursor.execute("VACUUM INTO %s", [str(database)])
    var = tmp_path / "process-var"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "pharmacrm.settings", "SQLITE_PATH": str(database),
           "PHARMACRM_VAR_DIR": str(var), "PHARMACRM_KEYRING_PATH": str(settings.PHARMACRM_KEYRING_PATH)}  # fmt: skip
    env.pop("DATABASE_URL", None)

    def start(name: str, **extra) -> subprocess.Popen:
        args = ["job", str(jobs[name])] if how == "worker" else ["cli", str(files[name]), admin_user.username]
        return subprocess.Popen([sys.executable, "-c", PROCESS, *args], env={**env, **extra, "T_STARTED": str(
            tmp_path / f"{name}.started")}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip

    hold = str(tmp_path / "A")
    first = start("A", T_HOLD=hold)
    second = None
    try:
        assert _wait_for(tmp_path / "A.holding"), first.communicate(timeout=60)
        second = start("B")
        assert _wait_for(tmp_path / "B.started")
        time.sleep(3)  # three times the busy timeout: the second import would have given up by now
        assert second.poll() is None, second.communicate()  # still there: waiting
        with sqlite3.connect(database) as db:
            rows = dict(db.execute("SELECT file_name, status FROM customers_importjob WHERE dry_run = 0"))
        if how == "worker":  # the second's job is still waiting (its progress area says so), the first running
            assert (rows[files["A"].name], rows[files["B"].name]) == ("running", "pending")
        else:
            assert list(rows.values()) == ["running"]  # the command line creates its job once its turn has come
    finally:
        (tmp_path / "A.release").touch()
        out_a = first.communicate(timeout=120)
        out_b = second.communicate(timeout=120) if second else ("", "")
    assert (first.returncode, second.returncode) == (0, 0), (out_a, out_b)
    if how == "command line":
        assert "Waiting for another import to finish" in out_b[1]
        assert "created 20\nupdated 0\nunchanged 0\nrejected 0" in out_b[0]
    with sqlite3.connect(database) as db:
        done = sorted(db.execute("SELECT status, created_count, error_count FROM customers_importjob "
                                 "WHERE dry_run = 0 ORDER BY id"))  # fmt: skip
        lines = dict(db.execute("SELECT order_number, count(*) FROM sales_orderline GROUP BY order_number"))
        rolled = db.execute("SELECT sum(lines), sum(amount_fen) FROM sales_monthlyrollup").fetchone()
    assert done == [("done", 20, 0), ("done", 30, 0)]
    assert lines == {"SO-A": 30, "SO-B": 20} and rolled == (50, 50 * 10000)


def _confirmed(admin_user, files: dict) -> dict:
    """Each file checked (the dry run) and confirmed, as in the wizard: jobs waiting for the worker."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from pharmacrm.customers import importer
    from pharmacrm.customers.models import ImportJob

    jobs = {}
    for name, path in files.items():
        job = importer.start_import(admin_user, SimpleUploadedFile(path.name, path.read_bytes()), "orders", "all")
        importer.run_job(job.pk)
        jobs[name] = importer.confirm_import(admin_user, ImportJob.objects.get(pk=job.pk)).pk
    return jobs


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_two_all_or_nothing_imports_at_once_on_postgresql_take_turns(admin_user, xiehe, order_file, client_for,
                                                                     monkeypatch):  # fmt: skip
    """The worker runs two confirmed all-or-nothing imports side by side: the second waits for the first before it
    starts (its progress area says so), then imports its file."""
    import threading

    from django.db import connection

    from pharmacrm.customers import importer
    from pharmacrm.customers.models import ImportJob
    from pharmacrm.sales import importer as orders
    from pharmacrm.sales.models import MonthlyRollup, OrderLine
    from tests.concurrency import until_a_lock_is_awaited

    files = {"A": order_file(_order_rows(xiehe, "SO-A", 30)), "B": order_file(_order_rows(xiehe, "SO-B", 20))}
    jobs = _confirmed(admin_user, files)
    holding, release = threading.Event(), threading.Event()
    original = orders.Writer._apply

    def _apply(self, chunk, *, write):  # the first import stops in its transaction once it has written its lines
        done = original(self, chunk, write=write)
        if write and self.job_id == jobs["A"]:
            holding.set()
            release.wait(60)
        return done

    monkeypatch.setattr(orders.Writer, "_apply", _apply)

    def run(pk: int) -> None:
        try:
            importer.run_job(pk)
        finally:
            connection.close()

    threads = {name: threading.Thread(target=run, args=(jobs[name],)) for name in jobs}
    threads["A"].start()
    try:
        assert holding.wait(60)
        threads["B"].start()
        until_a_lock_is_awaited()
        assert ImportJob.objects.get(pk=jobs["B"]).status == "pending"
        page = client_for("admin").get(f"/customers/import/{jobs['B']}/progress/", HTTP_ACCEPT_LANGUAGE="en")
        assert "Waiting for another import to finish: this one starts as soon as it has ended." in page.content.decode()
    finally:
        release.set()
        for thread in threads.values():
            thread.join(120)
    done = {name: ImportJob.objects.values_list("status", "created_count", "error_count").get(pk=pk)
            for name, pk in jobs.items()}  # fmt: skip
    assert done == {"A": ("done", 30, 0), "B": ("done", 20, 0)}
    assert OrderLine.objects.filter(order_number="SO-A").count() == 30
    assert OrderLine.objects.filter(order_number="SO-B").count() == 20
    assert sum(MonthlyRollup.objects.values_list("lines", flat=True)) == 50


def test_a_confirmed_import_says_it_waits_for_the_import_running(admin_user, xiehe, order_file, client_for):
    """Its progress area said "Waiting for the worker to start…" while the worker was there, running another import."""
    from pharmacrm.customers.models import ImportJob

    jobs = _confirmed(admin_user, {"A": order_file(_order_rows(xiehe, "SO-A", 2)),
                                   "B": order_file(_order_rows(xiehe, "SO-B", 2))})  # fmt: skip
    client = client_for("admin")
    progress = f"/customers/import/{jobs['B']}/progress/"
    assert "Waiting for the worker to start…" in client.get(progress, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    ImportJob.objects.filter(pk=jobs["A"]).update(status=ImportJob.Status.RUNNING)  # the worker took the first
    page = client.get(progress, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Waiting for another import to finish: this one starts as soon as it has ended." in page
    assert "Waiting for the worker to start" not in page


def test_the_preview_shows_a_row_refused_for_its_customer_or_as_a_repeat_among_the_first_rows(run_import, xiehe):
    """The wizard's preview of a file whose first rows include an unknown customer and a repeated line: those rows
    were left out of it (their place had been taken when the row was parsed, and nothing showed why), so the user
    saw 18 rows and no error although the file has two."""
    rows = [line(f"V-{i}", 1, dt.date.today() - dt.timedelta(days=3), xiehe, "YP1001", 1, "10") for i in range(25)]
    rows[2] = line("V-2", 1, dt.date.today() - dt.timedelta(days=3), "91110000000000000X", "YP1001", 1, "10")
    rows[5] = line("V-1", 1, dt.date.today() - dt.timedelta(days=3), xiehe, "YP1001", 1, "10")

    job = run_import(rows, dry_run=True)

    shown = [(p["row"], p["action"], [e["code"] for e in p["errors"]]) for p in job.preview]
    assert len(shown) == 20 and shown[:7] == [
        (2, "create", []), (3, "create", []), (4, "error", ["customer_not_found"]), (5, "create", []),
        (6, "create", []), (7, "error", ["duplicate_line"]), (8, "create", []),
    ]  # fmt: skip
