"""`pharmacrm rotate-keys`: add a new AES key, re-encrypt every personal field with it, optionally prune."""

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _
from django.utils.translation import ngettext, pgettext

from pharmacrm.core import audit, crypto, keys
from pharmacrm.core.models import AuditEntry

from ._ops import cli_actor


class Command(BaseCommand):
    # operations must work even while another part of the project fails its system checks
    requires_system_checks = []
    help = (
        "Add a new encryption key to the key ring, make it active and re-encrypt all personal data with it. "
        "Old keys stay in the ring (an interrupted run leaves everything readable) until --prune removes "
        "the ones no value uses any more."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--resume", action="store_true",
            help="Do not add a key: re-encrypt only the values not yet under the active key (after an interrupted run).",
        )  # fmt: skip
        parser.add_argument(
            "--prune",
            action="store_true",
            help=(
                "Afterwards remove the keys that no stored value uses any more; not within 5 minutes of a change of "
                "the key ring, while running processes may still be writing with an old key."
            ),
        )
        parser.add_argument("--batch", type=int, default=2000, help="Rows re-encrypted per transaction.")

    def handle(self, *args, **options):
        if options["batch"] < 1:  # 0 added a key and re-encrypted nothing; below 0 failed after adding it
            raise CommandError(_("Nothing was changed: the batch size must be at least 1."))
        try:
            with keys.rotation_lock():
                self._rotate(**options)
        except keys.RotationRunning:
            raise CommandError(
                _(
                    "Nothing was changed: another rotate-keys is running on this database. "
                    "Wait for it to finish, then run the command again if it is still needed."
                )
            ) from None
        except keys.RestoreRunning:
            raise CommandError(
                _(
                    "Nothing was changed: a restore is running on this database. "
                    "Wait for it to finish, then run the command again if it is still needed."
                )
            ) from None

    def _rotate(self, *, resume, prune, batch, **options):
        actor = cli_actor()
        try:
            old = crypto.keyring()
        except crypto.KeyRingInvalid as e:  # one line saying what is wrong, not a traceback
            raise CommandError(_("Nothing was changed. %(problem)s") % {"problem": e}) from None
        # values under a key the ring lacks (data restored without its backup's key ring) cannot be re-encrypted:
        # the run would add a key, stop halfway with a traceback, and add yet another key at every new attempt
        missing = {k: n for k, n in keys.keys_in_use().items() if k and k not in old.keys}
        if missing:
            raise CommandError(
                _(
                    "Nothing was changed. Some personal data is encrypted with keys that are not in the key ring "
                    "(%(keys)s), so it cannot be re-encrypted. Put those keys back first: restore with "
                    "--with-keyring, or take them from the key-ring copy saved with the backup the data came from."
                )
                % {"keys": ", ".join(f"{k}: {n}" for k, n in sorted(missing.items()))}
            )
        if not resume:
            try:
                where = keys.save_ring(old.with_new_key())
            except keys.KeyRingNotWritable as e:
                raise CommandError(
                    _(
                        "The key ring comes from %(source)s and cannot be changed from here. Put it in a writable "
                        "file named by PHARMACRM_KEYRING_FILE, rotate, then update your secret store."
                    )
                    % {"source": e}
                ) from None
            self.stdout.write(
                _("New key %(new)s is active (key ring: %(path)s).")
                % {"new": crypto.keyring().active, "path": where}
            )
        active = crypto.keyring().active
        done = keys.reencrypt(batch=batch)
        for label, n in done.items():
            self.stdout.write(
                ngettext("%(column)s: %(n)d value re-encrypted.", "%(column)s: %(n)d values re-encrypted.", n)
                % {"column": label, "n": n}
            )
        remaining = {k: n for k, n in keys.keys_in_use().items() if k != active}
        audit.record(
            AuditEntry.Action.ROTATE_KEYS, ("core.keyring", "", active), actor_name=actor,
            previous_key=old.active, active_key=active, reencrypted=done, remaining=remaining,
        )  # fmt: skip
        if remaining:
            plain = pgettext("not encrypted", "plain text")  # the key "": values found unencrypted
            left = [(k or plain, n) for k, n in sorted(remaining.items())]
            self.stderr.write(
                _(
                    "Some values are still under older keys (they changed during the run): %(left)s. "
                    "Run rotate-keys --resume."
                )
                % {"left": ", ".join(f"{k}: {n}" for k, n in left)}
            )
        else:
            self.stdout.write(
                self.style.SUCCESS(_("All personal data is encrypted with key %(key)s.") % {"key": active})
            )
        if prune:
            self._prune(actor)

    def _prune(self, actor: str) -> None:
        try:
            gone = keys.prune()
        except keys.KeyRingNotWritable as e:
            raise CommandError(
                _("The key ring comes from %(source)s and cannot be changed from here.") % {"source": e}
            ) from None
        except keys.PruneTooSoon as e:  # the rotation itself is done; pruning is only put off
            self.stderr.write(str(e))
            return
        if not gone:
            self.stdout.write(_("No key could be removed: every old key is still in use or there is none."))
            return
        audit.record(
            AuditEntry.Action.ROTATE_KEYS, ("core.keyring", "", crypto.keyring().active), actor_name=actor,
            pruned=gone,
        )  # fmt: skip
        self.stdout.write(
            _(
                "Removed keys no longer used: %(keys)s. Backups made before the rotation need their own key-ring copy."
            )
            % {"keys": ", ".join(gone)}
        )
