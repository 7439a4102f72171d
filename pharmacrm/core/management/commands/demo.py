"""`pharmacrm demo`: load the demo users and customers once (never into a production database)."""

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from pharmacrm.core import demo


class Command(BaseCommand):
    # operations must work even while another part of the project fails its system checks
    requires_system_checks = []
    help = (
        "Load demo users for every role and realistic demo customers, once. Refuses when DATABASE_URL is set."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--force",
            action="store_true",
            help="Load even though DATABASE_URL is set (never on a production database).",
        )
        parser.add_argument(
            "--scale", type=float, default=1.0, help="Fraction of the default size (1.0: ~300 institutions)."
        )

    def handle(self, *args, force, scale, **options):
        if not scale > 0:  # --scale -1 or 0 loaded a token demo of ten institutions without a word
            raise CommandError(
                _("--scale must be more than 0 (1.0: about 300 institutions), not %(value)s.") % {"value": scale}
            )
        try:
            result = demo.load(force=force, scale=scale)
        except demo.DemoRefused as e:
            raise CommandError(str(e)) from None
        if not result.created:
            self.stdout.write(_("The demo data is already loaded; nothing was changed."))
            return
        counts = {  # each in the singular or plural its number takes ("1 people" at a small --scale)
            "users": ngettext("%(n)d user", "%(n)d users", result.users) % {"n": result.users},
            "institutions": ngettext("%(n)d institution", "%(n)d institutions", result.institutions)
            % {"n": result.institutions},
            "departments": ngettext("%(n)d department", "%(n)d departments", result.departments)
            % {"n": result.departments},
            "people": ngettext("%(n)d person", "%(n)d people", result.people) % {"n": result.people},
        }
        self.stdout.write(
            self.style.SUCCESS(
                # the institutions are the top-level ones; their departments come on top, not among them
                _("Demo data loaded: %(users)s; %(institutions)s, plus %(departments)s in them; %(people)s.") % counts
            )
        )
        if result.password:
            self.stdout.write(
                _("Password for every demo user (shown once): %(password)s") % {"password": result.password}
            )
        else:
            self.stdout.write(_("The demo users' password is the value of PHARMACRM_DEMO_PASSWORD."))
        self.stdout.write(
            _("Credentials and TOTP secrets (%(users)s) are in %(path)s.")
            % {"users": ", ".join(result.totp_secrets), "path": result.credentials_path}
        )
