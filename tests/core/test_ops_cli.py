"""The `pharmacrm` command: our operations commands by their hyphenated names, and Django's commands."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.db import connection
from django.utils import translation

from pharmacrm import cli
from pharmacrm.core import audit
from pharmacrm.core.models import AuditEntry


@pytest.fixture(autouse=True)
def _english_output():
    """These tests read the commands' messages in English (the product's default language is zh-hans)."""
    with translation.override("en"):
        yield


def test_help_lists_the_operations_commands():
    done = subprocess.run(
        [sys.executable, "-m", "pharmacrm.cli", "--help"], capture_output=True, text=True, check=True
    )
    for name in ("demo", "seed", "audit", "rotate-keys", "backup", "restore", "migrate"):
        assert name in done.stdout


def test_help_lists_every_operations_command_and_subcommand():
    """`pharmacrm --help` lists ours (as docs/operations.md says): it left out `undelivered-replies` and
    `safety replan-foreign-deaths`, so an operator reading it never learnt they exist."""
    import argparse

    from django.core.management import get_commands, load_command_class

    done = subprocess.run(
        [sys.executable, "-m", "pharmacrm.cli", "--help"], capture_output=True, text=True, check=True
    )
    listed = {line.split()[0]: line for line in done.stdout.splitlines() if line.startswith("  ")}
    ours = {name: app for name, app in get_commands().items() if app.startswith("pharmacrm")}
    assert "undelivered_replies" in ours
    for name, app in ours.items():
        hyphenated = name.replace("_", "-")
        assert hyphenated in listed, hyphenated
        parser = load_command_class(app, name).create_parser("pharmacrm", name)
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices:
                    assert sub in done.stdout, f"{hyphenated} {sub}"


def test_a_hyphenated_name_reaches_its_django_command(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["rotate-keys", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "pharmacrm rotate_keys" in out and "--prune" in out
    cli.main(["help", "rotate-keys"])
    assert "--resume" in capsys.readouterr().out


def _verify_with_entry_2_edited() -> int:
    """Edit audit entry 2 behind its trigger's back, run `audit verify`, put the trigger back: its exit status."""
    trigger = None
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute("ALTER TABLE core_auditentry DISABLE TRIGGER USER")
        else:
            cur.execute("SELECT sql FROM sqlite_master WHERE name = 'audit_no_update'")
            trigger = cur.fetchone()[0]
            cur.execute("DROP TRIGGER audit_no_update")
        cur.execute("UPDATE core_auditentry SET extra = %s WHERE seq = 2", ['{"rows": 999}'])
    try:
        with pytest.raises(SystemExit) as done:
            cli.main(["audit", "verify"])
    finally:
        with connection.cursor() as cur:  # a new cursor: the command closed the connection when it ended
            cur.execute(trigger or "ALTER TABLE core_auditentry ENABLE TRIGGER USER")
    return done.value.code


@pytest.mark.django_db(transaction=True)
def test_audit_verify_exits_with_status_1_when_the_chain_is_broken(capsys):
    for n in range(3):
        audit.record(
            AuditEntry.Action.EXPORT, ("customers.institution", "", "export"), actor_name="t", rows=n
        )
    cli.main(["audit", "verify"])  # intact: returns normally (exit status 0)
    assert "3 entries checked" in capsys.readouterr().out

    assert _verify_with_entry_2_edited() == 1
    assert "entry 2: content does not match its hash (edited)" in capsys.readouterr().err


@pytest.mark.django_db(transaction=True)
def test_audit_verify_counts_one_entry_and_one_problem_in_the_singular(capsys):
    """`audit verify` said "1 entries checked" and "1 problems in 2 entries checked"."""
    audit.record(AuditEntry.Action.EXPORT, ("customers.institution", "", "export"), actor_name="t", rows=1)
    cli.main(["audit", "verify"])
    assert "The audit trail is intact: 1 entry checked." in capsys.readouterr().out

    audit.record(AuditEntry.Action.EXPORT, ("customers.institution", "", "export"), actor_name="t", rows=2)
    assert _verify_with_entry_2_edited() == 1
    assert (
        "The audit trail has been tampered with: 1 problem in 2 entries checked." in capsys.readouterr().err
    )
