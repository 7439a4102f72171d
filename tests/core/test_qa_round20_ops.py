"""Defects the twentieth session's QA round found by following README.md and docs/operations.md as a new
operator: what the `pharmacrm` commands print for wrong input, and that the documented options work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import translation

from pharmacrm.core import backup, crypto


@pytest.fixture(autouse=True)
def _english_output():
    """These tests read the commands' messages in English (the product's default language is zh-hans)."""
    with translation.override("en"):
        yield


def damaged_rings(good: str) -> dict[str, str]:
    data = json.loads(good)
    no_index = {k: v for k, v in data.items() if k != "index_key"}
    return {
        "truncated": good[: len(good) // 2],
        "empty": "",
        "a list": "[]",
        "no index key": json.dumps(no_index),
        "active key missing": json.dumps({**data, "active": "k9"}),
        "not base64": json.dumps({**data, "keys": {data["active"]: "%%%"}}),
    }


@pytest.mark.parametrize(
    "damage", ["truncated", "empty", "a list", "no index key", "active key missing", "not base64"]
)
@pytest.mark.django_db(transaction=True)
def test_rotate_keys_with_a_damaged_key_ring_says_what_is_wrong_and_changes_nothing(own_keyring, damage):
    """A truncated or hand-edited keyring.json made `pharmacrm rotate-keys` end in a Python traceback
    (JSONDecodeError, KeyError: 'index_key', TypeError) instead of saying what is wrong with which file."""
    bad = damaged_rings(own_keyring.read_text())[damage]
    own_keyring.write_text(bad)
    crypto._reload()
    with pytest.raises(CommandError) as refused:
        call_command("rotate_keys")
    message = str(refused.value)
    assert "Nothing was changed" in message and str(own_keyring) in message
    assert "Traceback" not in message
    assert own_keyring.read_text() == bad  # the ring was not rewritten


@pytest.mark.django_db(transaction=True)
def test_rotate_keys_names_a_key_ring_file_that_is_missing(tmp_path, monkeypatch):
    missing = tmp_path / "secrets" / "pharmacrm-keyring.json"
    monkeypatch.setenv("PHARMACRM_KEYRING_FILE", str(missing))
    original = crypto.keyring()
    crypto._reload()
    try:
        with pytest.raises(CommandError, match="cannot be read") as refused:
            call_command("rotate_keys")
        assert str(missing) in str(refused.value)
    finally:
        crypto.install_keyring(original, persist=False)


@pytest.mark.django_db(transaction=True)
def test_backup_with_a_damaged_key_ring_writes_nothing_and_says_why(own_keyring, tmp_path, settings):
    """The backup was written, then the key-ring copy failed with a traceback: a backup without a readable
    key ring looked complete in the directory."""
    settings.BACKUP_DIR = tmp_path / "backups"
    own_keyring.write_text("{")
    crypto._reload()
    with pytest.raises(CommandError, match="No backup was written"):
        call_command("backup")
    assert not backup.list_backups(settings.BACKUP_DIR)


@pytest.mark.django_db(transaction=True)
def test_backup_into_a_directory_that_cannot_be_made_says_so(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(CommandError, match="cannot be used"):
        call_command("backup", "--out", str(blocker / "backups"))


@pytest.mark.django_db(transaction=True)
def test_restore_with_a_damaged_key_ring_copy_is_refused_before_anything_changes(
    own_keyring, xiehe, tmp_path, settings
):
    settings.BACKUP_DIR = tmp_path / "backups"
    settings.VAR_DIR = tmp_path / "var"
    settings.VAR_DIR.mkdir()
    made = backup.backup(actor_name="tester")
    made.keyring_path.write_text('{"active": "k1"')
    ring_before = own_keyring.read_text()
    with pytest.raises(CommandError, match="key-ring copy .* cannot be used"):
        call_command("restore", str(made.path), "--yes", "--with-keyring")
    assert own_keyring.read_text() == ring_before


SAMPLE_ORDERS = Path(__file__).resolve().parents[2] / "docs" / "samples" / "orders-sample.csv"


@pytest.mark.django_db
def test_import_orders_speaks_one_language_counts_notes_and_report_alike(admin_user, tmp_path, capsys):
    """`pharmacrm import orders` printed its counts in English whatever the language, and wrote the report's
    reasons in Chinese unless --language was given, even where the operator's language was English: a mix."""
    report = tmp_path / "rejected.csv"
    with pytest.raises(SystemExit) as exit_:
        call_command("import", "orders", str(SAMPLE_ORDERS), "--dry-run", "--report", str(report))
    assert exit_.value.code == 1  # no demo customers here: every row names an unknown customer
    out = capsys.readouterr().out
    assert "rejected 30" in out and "dry run: nothing was changed" in out
    reasons = report.read_text(encoding="utf-8-sig")
    assert "12110109357506944E" in reasons and "没有信用代码" not in reasons  # in the active language, English


def test_import_orders_keeps_its_counts_for_scripts_in_chinese_too(admin_user, tmp_path, capsys):
    """The four count lines are what scripts read: the same in every language; the rest is in the chosen one."""
    with pytest.raises(SystemExit):
        call_command("import", "orders", str(SAMPLE_ORDERS), "--dry-run", "--report", str(tmp_path / "r.csv"),
                     "--language", "zh-hans")  # fmt: skip
    out = capsys.readouterr().out
    assert out.startswith("created 0\nupdated 0\nunchanged 0\nrejected 30\n")
    assert "dry run" not in out and "试运行" in out


def test_import_orders_refuses_a_language_it_does_not_have(tmp_path):
    with pytest.raises(CommandError, match="invalid choice"):
        call_command("import", "orders", str(SAMPLE_ORDERS), "--language", "fr")


@pytest.mark.django_db
def test_holidays_takes_the_calendar_after_the_action_too(capsys):
    """operations.md: "`--calendar CODE` picks another calendar". Typed the way the examples read,
    `pharmacrm holidays set 2027-01-01 --off --calendar always`, it was refused: "unrecognized arguments"."""
    from pharmacrm.servicedesk.models import BusinessCalendar

    call_command("holidays", "set", "2027-01-01", "--off", "--note", "元旦", "--calendar", "always")
    always, business = BusinessCalendar.objects.get(code="always"), BusinessCalendar.objects.get(code="business")
    assert always.overrides.count() == 1 and business.overrides.count() == 0
    call_command("holidays", "list", "--year", "2027", "--calendar", "always")
    assert "2027-01-01" in capsys.readouterr().out
    with pytest.raises(CommandError, match="no calendar with the code nope"):
        call_command("holidays", "check", "--calendar", "nope")
    call_command("holidays", "--calendar", "always", "unset", "2027-01-01")  # before the action, as before
    assert always.overrides.count() == 0


@pytest.mark.django_db
def test_evaluate_names_the_model_in_the_operators_language(xiehe):
    """`pharmacrm evaluate` printed "evaluation 2026H2: … customers in … s, … tier changes" in English under
    the Chinese product, with the model's internal code instead of its name."""
    from io import StringIO

    out = StringIO()
    call_command("evaluate", stdout=out)
    lines = out.getvalue().splitlines()
    assert any(line.startswith("Customer evaluation ") for line in lines), lines
    assert any(line.startswith("Key-account identification ") for line in lines), lines
    with pytest.raises(CommandError, match="is not a date like 2026-06-30"):
        call_command("evaluate", "--as-of", "2026-13-01")


@pytest.mark.django_db
def test_seed_refuses_the_database_named_by_database_url_as_demo_does(settings):
    """`pharmacrm demo` refuses when DATABASE_URL is set (operations.md: it marks the installation as
    production), but `pharmacrm seed --institutions 100000` went ahead and mixed made-up hospitals into the
    real customer master unless PHARMACRM_PRODUCTION was set as well."""
    from pharmacrm.customers.models import Institution

    settings.DATABASE_URL = "postgres://crm:secret@db.internal/pharmacrm"
    settings.PRODUCTION = False
    before = Institution.objects.count()
    with pytest.raises(CommandError, match="only with --force"):
        call_command("seed", "--institutions", "3", verbosity=0)
    assert Institution.objects.count() == before


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("LOGIN_FAILURE_LIMIT", "five", "LOGIN_FAILURE_LIMIT must be a whole number, not 'five'."),
        ("SECRET_KEY_FILE", "/run/secrets/not-mounted", "SECRET_KEY_FILE: /run/secrets/not-mounted cannot be read"),
    ],
)
def test_a_wrong_setting_in_the_environment_is_one_line_naming_it(tmp_path, variable, value, said):
    """A secret file that was not mounted, or a typo in a number, made every `pharmacrm` command (migrate,
    backup …) end in a traceback of settings.py (FileNotFoundError, ValueError: invalid literal for int())."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "PHARMACRM_VAR_DIR": str(tmp_path), variable: value}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    done = subprocess.run(
        [sys.executable, "-c", "from pharmacrm.cli import main; main()", "check"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip().startswith("pharmacrm: ") and said in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("scale", ["-1", "0"])
@pytest.mark.django_db
def test_demo_refuses_a_scale_that_is_not_a_fraction_of_the_demo(scale):
    """`pharmacrm demo --scale -1` (a typo for 0.1) loaded a token demo of ten institutions and one person, and
    marked the demo as loaded, so a corrected second run changed nothing."""
    from pharmacrm.customers.models import Institution

    with pytest.raises(CommandError, match="--scale must be more than 0"):
        call_command("demo", "--scale", scale)
    assert not Institution.objects.exists()


def test_an_empty_key_ring_secret_is_refused_not_replaced_by_a_new_ring(tmp_path, settings, monkeypatch):
    """A secret mount that came up empty (PHARMACRM_KEYRING_FILE naming an empty file) made the application
    create a brand-new key ring under var/ and encrypt new personal data with keys the secret store never
    saw: after the next deployment with the real secret, those values could not be read."""
    original = crypto.keyring()
    secret = tmp_path / "pharmacrm-keyring.json"
    secret.write_text("")
    settings.PHARMACRM_KEYRING_PATH = tmp_path / "var" / "keyring.json"
    monkeypatch.setenv("PHARMACRM_KEYRING_FILE", str(secret))
    crypto._reload()
    try:
        with pytest.raises(crypto.KeyRingInvalid, match="not valid JSON"):
            crypto.keyring()
        assert not settings.PHARMACRM_KEYRING_PATH.exists()
    finally:
        crypto.install_keyring(original, persist=False)


@pytest.mark.django_db(transaction=True)
def test_restore_with_keyring_keeps_the_ring_it_replaces(own_keyring, xiehe, tmp_path, settings, capsys):
    """`restore --with-keyring` overwrote keyring.json with the backup's copy: the ring in use until then, which
    every later backup's data needs, was gone if its copies had been moved off the machine as advised."""
    settings.BACKUP_DIR = tmp_path / "backups"
    settings.VAR_DIR = tmp_path / "var"
    settings.VAR_DIR.mkdir()
    made = backup.backup(actor_name="tester")
    in_use = crypto.KeyRing.generate()
    own_keyring.write_text(in_use.to_json())  # another machine's ring, or one rotated since
    crypto._reload()

    call_command("restore", str(made.path), "--yes", "--with-keyring")

    assert crypto.KeyRing.from_json(own_keyring.read_text()) == crypto.KeyRing.from_json(
        made.keyring_path.read_text()
    )
    kept = list(own_keyring.parent.glob("keyring.json.before-restore-*"))
    assert len(kept) == 1 and crypto.KeyRing.from_json(kept[0].read_text()) == in_use
    assert oct(kept[0].stat().st_mode & 0o777) == "0o600"
    assert str(kept[0]) in capsys.readouterr().out
