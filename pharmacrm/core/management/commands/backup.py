"""`pharmacrm backup`: an online backup of the database, an archive of the documents and a copy of the key
ring."""

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from pharmacrm.core import backup

from ._ops import cli_actor


class Command(BaseCommand):
    # operations must work even while another part of the project fails its system checks
    requires_system_checks = []
    help = (
        "Back up the database (SQLite online backup or pg_dump) and the documents (attachments, safety case "
        "files, signed agreements), with a copy of the key ring."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--out", metavar="DIR", help="Directory for the backup (default: BACKUP_DIR, var/backups)."
        )
        parser.add_argument(
            "--keep",
            type=int,
            metavar="N",
            help="Afterwards delete all but the newest N backups in that directory.",
        )

    def handle(self, *args, out, keep, **options):
        if (
            keep is not None and keep < 1
        ):  # said before the dump, not after a long backup the operator then doubts
            raise CommandError(_("At least one backup must be kept."))
        try:
            result = backup.backup(out, keep=keep, actor_name=cli_actor())
        except backup.BackupError as e:
            raise CommandError(str(e)) from None
        self.stdout.write(
            self.style.SUCCESS(
                _("Backup written: %(path)s (%(size)d bytes).") % {"path": result.path, "size": result.size}
            )
        )
        self.stdout.write(
            ngettext(
                "Documents (attachments, safety case files, signed agreements): %(path)s, %(n)d file.",
                "Documents (attachments, safety case files, signed agreements): %(path)s, %(n)d files.",
                result.files_count,
            )
            % {"path": result.files_path, "n": result.files_count}
        )
        self.stdout.write(
            _(
                "Key-ring copy: %(path)s. Store it apart from the backups: whoever has both can read the personal data."
            )
            % {"path": result.keyring_path}
        )
        for p in result.pruned:
            self.stdout.write(_("Deleted old backup file %(path)s.") % {"path": p})
