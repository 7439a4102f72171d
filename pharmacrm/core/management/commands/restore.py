"""`pharmacrm restore FILE`: replace the database's contents with a backup."""

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from pharmacrm.core import backup

from ._ops import cli_actor


class Command(BaseCommand):
    # operations must work even while another part of the project fails its system checks
    requires_system_checks = []
    help = (
        "Restore the database, and the documents archived with it, from a backup made by `pharmacrm backup`. "
        "Stop the web server and worker first."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="The backup file (.sqlite3.gz or .pgdump).")
        parser.add_argument("--yes", action="store_true", help="Replace a database that already holds data.")
        parser.add_argument(
            "--with-keyring", action="store_true",
            help="Also install the key-ring copy saved next to the backup (new machine, or keys pruned since).",
        )  # fmt: skip

    def handle(self, *args, file, yes, with_keyring, **options):
        try:
            result = backup.restore(file, confirmed=yes, with_keyring=with_keyring, actor_name=cli_actor())
        except backup.BackupError as e:
            raise CommandError(str(e)) from None
        self.stdout.write(self.style.SUCCESS(_("Database restored from %(path)s.") % {"path": result.path}))
        if result.files_path is not None:
            self.stdout.write(
                ngettext(
                    "Documents restored from %(path)s: %(n)d file.",
                    "Documents restored from %(path)s: %(n)d files.",
                    result.files_count,
                )
                % {"path": result.files_path, "n": result.files_count}
            )
        else:
            self.stdout.write(
                _("This backup has no archive of documents: attachments, safety case files and signed agreements "
                  "were left as they are.")
            )  # fmt: skip
        if result.previous_keyring is not None:
            self.stdout.write(
                _(
                    "The key ring saved with the backup is now in use. The one it replaced was kept as %(path)s: "
                    "keep it for as long as the backups made with it."
                )
                % {"path": result.previous_keyring}
            )
        if result.migrate_first:
            self.stderr.write(
                _("The backup was made by an earlier version of PharmaCRM: run `pharmacrm migrate` before starting "
                  "the web server and the worker.")
            )  # fmt: skip
        if result.key_problems:
            for problem in result.key_problems:
                self.stderr.write(problem)
            raise CommandError(
                _(
                    "The restored personal data cannot be read with the current key ring. Restore again with "
                    "--with-keyring, or install the key ring saved with the backup (%(path)s)."
                )
                % {"path": backup.keyring_path_for(result.path)},
                returncode=2,
            )
