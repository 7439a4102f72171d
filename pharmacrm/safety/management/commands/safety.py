"""`pharmacrm safety`: safety cases for operators and integrations.

    pharmacrm safety list [--valid]                        # case numbers, one per line
    pharmacrm safety export-icsr AE-2026-000001 ... --out batch.xml [--purpose partner]
    pharmacrm safety import-icsr FILE.xml                  # incoming ICSRs → cases (or follow-ups)
    pharmacrm safety import-ack FILE.xml                   # an acknowledgement → its submissions
    pharmacrm safety sweep                                 # handle the due regulatory clocks now
    pharmacrm safety revalidate                            # invalid cases under today's minimum criteria
    pharmacrm safety rename-files                          # case files still under their uploader's name
    pharmacrm safety replan-foreign-deaths                 # open deaths abroad still showing China's death clocks

The export validates against the E2B(R3) schema and the business rules before anything is written; a
refusal lists what to fill in and exits with status 1. The command line has no user to sign with: an
export from here is for a partner or a check, and is audited with the operating-system account; a
regulatory submission is recorded in the application with the PV officer's electronic signature."""

from __future__ import annotations

import os
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils.translation import gettext as _

from pharmacrm.core.management.commands._ops import cli_actor
from pharmacrm.safety import services
from pharmacrm.safety.choices import CaseStatus
from pharmacrm.safety.models import SafetyCase

# the audit entry's reason, in no language (the audit trail records data, not a reader's text)
REVALIDATE_REASON = "minimum criteria of ICH E2D / GVP VI.B.2 / 个例药品不良反应收集和报告指导原则"


class Command(BaseCommand):
    help = "List, export and import safety cases (ICH E2B(R3)); sweep their regulatory clocks."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list", help="Case numbers, one per line.")
        listing.add_argument("--valid", action="store_true", help="Only valid cases (the four minimum criteria).")
        export = sub.add_parser("export-icsr", help="An E2B(R3) batch with the given cases.")
        export.add_argument("numbers", nargs="+")
        export.add_argument("--out", required=True)
        export.add_argument("--purpose", choices=["regulatory", "partner"], default="regulatory")
        imp = sub.add_parser("import-icsr", help="Import incoming ICSRs (an E2B(R3) batch file).")
        imp.add_argument("file")
        ack = sub.add_parser("import-ack", help="Import an E2B(R3) acknowledgement.")
        ack.add_argument("file")
        sub.add_parser("sweep", help="Handle the due regulatory and hand-off clocks now.")
        sub.add_parser("revalidate", help="Check the cases stored as invalid against the minimum criteria as they "
                                          "are now; start the clocks of those that are valid.")  # fmt: skip
        sub.add_parser("rename-files", help="Give the case files stored before safety 0010 (under the uploader's "
                                            "file name) a random name on disk, as newer files have.")  # fmt: skip
        sub.add_parser("replan-foreign-deaths", help="Plan again the open cases of a death abroad still owing "
                                                     "China's 24-hour death report or death investigation "
                                                     "(done by the migrate that applies safety 0014).")  # fmt: skip

    def handle(self, *args, action, **options):
        return getattr(self, "_" + action.replace("-", "_"))(**options)

    def _list(self, valid=False, **_options):
        qs = SafetyCase.objects.order_by("received_at", "id")
        if valid:
            qs = qs.filter(valid=True)
        for number in qs.values_list("number", flat=True).iterator(chunk_size=2000):
            self.stdout.write(number)

    def _export_icsr(self, numbers, out, purpose, **_options):
        from pharmacrm.safety.e2b import export

        cases = {c.number: c for c in SafetyCase.objects.filter(number__in=numbers)}
        unknown = [n for n in numbers if n not in cases]
        if unknown:
            raise CommandError(_("No such case: %(numbers)s") % {"numbers": ", ".join(unknown)})
        # as on the page and the API: a withdrawn case (a duplicate) goes to no partner or regulator
        nullified = [n for n in numbers if cases[n].status == CaseStatus.NULLIFIED]
        if nullified:
            message = _("Nullified cases are not exported: %(numbers)s.") % {"numbers": ", ".join(nullified)}
            raise CommandError(message)
        try:
            export.release([cases[n] for n in numbers], purpose=purpose)
        except export.ExportRefused as refused:
            for p in refused.problems:
                self.stderr.write(f"{p.case} {p.element} {p.field}: {p.message}")
            raise CommandError(_("Export refused: fill in what is listed above.")) from None
        # kept and numbered as every batch that may leave the company (the file is written once it is recorded)
        with transaction.atomic():
            result = services.issue_icsr_batch(services.SystemActor(cli_actor()), [cases[n] for n in numbers],
                                               purpose=purpose)  # fmt: skip
            _write_private(Path(out), result.xml)
        self.stdout.write(_("%(count)d case(s) written to %(file)s (batch %(id)s).")
                          % {"count": len(numbers), "file": out, "id": result.message_id})  # fmt: skip

    def _read(self, file: str) -> bytes:
        path = Path(file)
        if not path.is_file():
            raise CommandError(_("No such file: %(file)s") % {"file": file})
        return path.read_bytes()

    def _import_icsr(self, file, **_options):
        from pharmacrm.safety.e2b import importer

        try:
            cases = importer.import_file(services.SystemActor(cli_actor()), self._read(file),
                                         source_name=Path(file).name)  # fmt: skip
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from None
        for case in cases:
            self.stdout.write(case.number)
        for line in cases.not_held:  # a nullification of a case never received: no case opened
            self.stderr.write(line)

    def _import_ack(self, file, **_options):
        from pharmacrm.safety.e2b import ack

        try:
            submissions = ack.import_ack(services.SystemActor(cli_actor()), self._read(file))
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from None
        for s in submissions:
            self.stdout.write(f"{s.case.number} {s.ack_status}")

    def _revalidate(self, **_options):
        changed = services.revalidate_invalid_cases(services.SystemActor(cli_actor()), reason=REVALIDATE_REASON)
        self.stdout.write(_("%(count)d case(s) changed.") % {"count": changed})

    def _replan_foreign_deaths(self, **_options):
        changed = services.replan_foreign_deaths(services.SystemActor(cli_actor()),
                                                 reason=services.FOREIGN_DEATH_REASON)  # fmt: skip
        self.stdout.write(_("%(count)d case(s) changed.") % {"count": changed})

    def _rename_files(self, **_options):
        from pharmacrm.safety import file_moves

        result = file_moves.move_to_random_names(services.SystemActor(cli_actor()))
        self.stdout.write(_(
            "%(moved)d case file(s) moved to a random name, %(removed)d old name(s) left by an interrupted run "
            "removed, %(missing)d missing from the storage (left as they are)."
        ) % {"moved": result.moved, "removed": result.removed, "missing": result.missing})

    def _sweep(self, **_options):
        counts = services.sweep()
        self.stdout.write(_("%(clocks)d clock(s): %(warned)d due soon, %(breached)d overdue.") % counts)


def _write_private(path: Path, data: bytes) -> None:
    """The batch holds patients' initials, ages and narratives: readable by its owner only (0600), as the
    backups are, whatever the operator's umask. Written beside the target and renamed over it once complete: an
    export killed midway (the operator's Ctrl-C, a worker stopped) leaves the file that was there, or none —
    never a truncated batch a gateway would pick up and send."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o600)  # an existing file keeps its mode through O_CREAT
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
