"""The `pharmacrm` command: our operations commands, and every Django management command."""

from __future__ import annotations

import os
import sys

OUR_COMMANDS = {
    "demo": "Load demo users and customers once (refuses when DATABASE_URL is set unless --force).",
    "seed": "Make scale data fast: --institutions N --people M.",
    "audit": "`audit verify`: check the audit trail's hash chain; exit status 1 if it was tampered with.",
    "rotate-keys": "Add a new encryption key and re-encrypt all personal data (--prune drops unused keys).",
    "backup": "Back up the database, its documents and the key ring (--out DIR, --keep N).",
    "restore": "Restore a backup: restore FILE [--yes] [--with-keyring].",
    "holidays": "Check, list and enter a business calendar's holidays and swapped working days: holidays check|list|set|unset.",
    "safety": "Safety cases: safety list [--valid] | export-icsr NUMBER... --out FILE | import-icsr FILE | import-ack FILE | sweep | revalidate | rename-files | replan-foreign-deaths.",
    "import": "Import ERP orders and payments: import orders FILE [--dry-run]; prints created/updated/unchanged/rejected.",
    "orders": "`orders split-check [--repair] [--keep ORDER=CODE]`: the orders whose lines name two customers or carry two order dates (before session 56), given to one.",
    "evaluate": "Run the customer evaluation and the key-account scoring now (--incremental: changed customers only).",
    "keyaccounts": "`keyaccounts check`: the agreements (to be signed or in force) whose term lies outside their plan's validity.",
    "reviews": "`reviews recompute-waits`: take the time waiting on the customer out of evaluations stored before session 31.",
    "undelivered-replies": "Record the service-desk replies whose e-mail delivery failed for good before session 37.",
    "second-factor-code": "Reset a user's second factor and print a one-time enrolment code: second-factor-code USERNAME.",
}

USAGE = """usage: pharmacrm <command> [options]

PharmaCRM operations:
{ours}

Every Django management command works too, e.g. migrate, runserver, createsuperuser, run_huey,
check --deploy. `pharmacrm help` lists them all; `pharmacrm help <command>` explains one.
"""


def usage() -> str:
    width = max(len(n) for n in OUR_COMMANDS)
    ours = "\n".join(f"  {name.ljust(width)}  {text}" for name, text in OUR_COMMANDS.items())
    return USAGE.format(ours=ours)


def command_name(name: str) -> str:
    """Django's name for a command typed with hyphens: rotate-keys → rotate_keys."""
    return name.replace("-", "_") if not name.startswith("-") else name


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `pharmacrm` console script."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pharmacrm.settings")
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        sys.stdout.write(usage())
        return
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        settings.INSTALLED_APPS  # noqa: B018 -- reads the environment: a wrong value is one line, not a traceback
    except ImproperlyConfigured as e:
        sys.stderr.write(f"pharmacrm: {e}\n")
        raise SystemExit(1) from None

    if args[0] == "help" and len(args) > 1:
        args[1] = command_name(args[1])
    else:
        args[0] = command_name(args[0])
    execute_from_command_line(["pharmacrm", *args])


if __name__ == "__main__":
    main()
