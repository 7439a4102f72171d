"""`pharmacrm import orders FILE [--dry-run]`: import ERP orders and payments from XLSX or CSV.

Prints the counts created / updated / unchanged / rejected; the rejected rows (row, column, reason,
value) go to a report file, `FILE.rejected.csv` unless --report says otherwise. Exit status 0 when every
row was imported or checked clean, 1 when some rows were rejected (or an all-or-nothing import was), 2 when
the file could not be read, or the user is unknown or may not import orders, or --initial-load was asked for
while order lines are stored already.

`--initial-load` is for the first migration of an ERP's order history: the order tables must be empty. The lines
go in as one transaction, the line table's indexes and the monthly rollups are built once at the end; the rows go
through every check of the ordinary import. Killed midway, it leaves nothing behind (run it again)."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand
from django.utils import translation
from django.utils.translation import gettext as _

from pharmacrm.core import audit
from pharmacrm.core.models import User
from pharmacrm.core.roles import Cap, Role
from pharmacrm.customers import importer
from pharmacrm.customers.exporter import csv_safe
from pharmacrm.customers.models import ImportJob
from pharmacrm.sales import importer as orders_importer


class Command(BaseCommand):
    help = (
        "Import ERP orders and payments: import orders FILE [--dry-run] [--all-or-nothing] [--initial-load] "
        "[--report FILE]."
    )

    def add_arguments(self, parser):
        parser.add_argument("what", choices=["orders"], help="What the file holds.")
        parser.add_argument("file")
        parser.add_argument("--dry-run", action="store_true", help="Check every row; change nothing.")
        parser.add_argument(
            "--all-or-nothing",
            action="store_true",
            help="Import nothing if any row is bad (default: good rows).",
        )
        parser.add_argument(
            "--initial-load",
            action="store_true",
            help="The first import of an ERP's order history into empty order tables: one transaction, indexes and "
            "monthly figures built once at the end (much faster; other changes to the database wait on SQLite).",
        )
        parser.add_argument("--report", help="Where to write the rejected rows (CSV).")
        parser.add_argument(
            "--user", help="The user the import is recorded for (default: the first administrator)."
        )
        parser.add_argument(
            "--language",
            choices=[code for code, _name in settings.LANGUAGES],
            default=None,
            help="Language of the messages and of the report's reasons (default: the product's, zh-hans).",
        )

    def handle(self, *args, what, file, dry_run, all_or_nothing, report, user, language, **options):
        initial_load = options.get("initial_load", False)
        # every line in one language: the counts and notes as well as the reasons in the report
        with translation.override(language or translation.get_language() or settings.LANGUAGE_CODE):
            token = orders_importer.INITIAL_LOAD.set(initial_load and not dry_run)
            try:
                self._import(Path(file), dry_run, all_or_nothing, report, user)
            finally:
                orders_importer.INITIAL_LOAD.reset(token)

    def _import(self, path, dry_run, all_or_nothing, report, user):
        if not path.is_file():  # exit 2, as for a file that cannot be read: 1 means "rows were rejected"
            self.stderr.write(_("%(file)s: no such file") % {"file": path})
            raise SystemExit(2)
        report_path = Path(report) if report else path.with_name(path.name + ".rejected.csv")
        # the report written over the file it reports on (--report given the input's name, or a link to it) lost the
        # file: refused before anything is read or imported
        if self._same_file(report_path, path):
            self.stderr.write(
                _("%(path)s is the file being imported: give the report another name with --report.")
                % {"path": report_path}
            )
            raise SystemExit(2)
        # said before importing: afterwards the rows would be in and their reasons lost
        if not report_path.parent.is_dir():
            self.stderr.write(
                _("%(path)s: the report cannot be written there (no such folder).") % {"path": report_path}
            )
            raise SystemExit(2)
        # a read-only folder (the ERP's export share), or a folder of that name
        if not self._writable(report_path):
            self.stderr.write(
                _("%(path)s: the report cannot be written there: give another place with --report.")
                % {"path": report_path}
            )
            raise SystemExit(2)
        actor = self._user(user)
        # said before reading the file, as for the report's folder
        if orders_importer.INITIAL_LOAD.get() and not orders_importer.order_tables_empty():
            self.stderr.write(str(orders_importer.MESSAGES["initial_load_not_empty"]))
            raise SystemExit(2)
        mode = ImportJob.Mode.ALL_OR_NOTHING if all_or_nothing else ImportJob.Mode.GOOD_ROWS
        token = audit.set_context(audit.RequestContext(user=actor))
        try:
            try:
                job = importer.import_file(path, ImportJob.Target.ORDERS, actor, mode=mode, dry_run=dry_run,
                                           on_wait=self._waiting)  # fmt: skip
            except ValidationError as e:
                self.stderr.write(" ".join(e.messages))
                raise SystemExit(2) from None
            except PermissionDenied:  # one line, in the chosen language, not a traceback
                self.stderr.write(
                    _("%(user)s may not import orders: that needs the permission “%(permission)s”.")
                    % {"user": actor.get_username(), "permission": Cap.IMPORT_ORDERS.label}
                )
                raise SystemExit(2) from None
            written = self._report(job, report_path)
            notes = importer.job_messages(job)
        finally:
            audit.reset_context(token)
        rejected = job.error_count
        # the four counts are a fixed format that scripts read (issue 5's contract): never translated
        self.stdout.write(
            f"created {job.created_count}\nupdated {job.updated_count}\nunchanged {job.unchanged_count}\n"
            f"rejected {rejected}\n"
        )
        if dry_run:
            self.stdout.write(_("dry run: nothing was changed") + "\n")
        for note in notes:
            self.stdout.write(f"{note}\n")
        if written:
            self.stdout.write(_("rejected rows: %(path)s") % {"path": report_path} + "\n")
        if job.status == ImportJob.Status.FAILED:  # the file unreadable, or an initial load into stored lines
            raise SystemExit(2)
        if rejected or job.status == ImportJob.Status.REJECTED:
            raise SystemExit(1)

    def _waiting(self) -> None:
        """Another import is writing (the worker's, another run of this command): this one waits its turn."""
        self.stderr.write(_("Waiting for another import to finish: this one starts as soon as it has ended."))
        self.stderr.flush()

    def _user(self, username: str | None) -> User:
        """The user the import is recorded for. None to be found is exit status 2, as a user who may not import
        orders is, with one line on stderr: exit status 1 (CommandError's) tells scripts "rows were rejected",
        and they would look for a report of rows where nothing was read."""
        if username:
            found = User.objects.filter(username=username, is_active=True).first()
            if found is None:
                self.stderr.write(_("%(user)s: no such active user") % {"user": username})
                raise SystemExit(2)
            return found
        found = (
            User.objects.filter(is_active=True, is_superuser=True).order_by("id").first()
            or User.objects.filter(is_active=True, groups__name__in=[Role.ADMIN, Role.MANAGER])
            .order_by("id")
            .first()
        )
        if found is None:
            self.stderr.write(_("No administrator exists: create one, or name a user with --user."))
            raise SystemExit(2)
        return found

    @staticmethod
    def _same_file(report: Path, path: Path) -> bool:
        """Whether the report would be written over the imported file: the same path, a symbolic or hard link to it,
        or a link not yet resolving anywhere is compared by where it leads."""
        try:
            return os.path.samefile(report, path)
        except OSError:  # no report there yet (or a dangling link): where it would be created
            return report.resolve() == path.resolve()

    @staticmethod
    def _writable(path: Path) -> bool:
        """Whether the report can be written at `path`, tried before importing (and taken away again when it was
        not there): found only afterwards, the rows were in and the reasons of the rejected ones lost in a
        traceback."""
        existed = path.exists()
        try:
            with open(path, "a", encoding="utf-8"):
                pass
        except OSError:
            return False
        if not existed:
            path.unlink(missing_ok=True)
        return True

    @staticmethod
    def _report(job: ImportJob, out: Path) -> bool:
        """The rejected rows with their reasons in the chosen language (no cell a spreadsheet would run as a
        formula); False when there were none."""
        source = importer.error_report_path(job)
        if not job.error_count or not source.exists():
            out.unlink(missing_ok=True)
            return False
        with (
            open(source, encoding="utf-8", newline="") as fh,
            open(out, "w", encoding="utf-8-sig", newline="") as dst,
        ):
            reader, writer = csv.reader(fh), csv.writer(dst)
            next(reader, None)
            # the wizard's report's header, in --language
            writer.writerow([_("Row"), _("Column"), _("Reason"), _("Value")])
            for row, column, code, params, value in reader:
                # the column and the reason in --language (the file's own header beside the column's name)
                column = importer.column_name(ImportJob.Target.ORDERS, column)
                reason = importer.message(code, json.loads(params or "{}"), ImportJob.Target.ORDERS)
                writer.writerow([csv_safe(cell) for cell in (row, column, reason, value)])
        return True
