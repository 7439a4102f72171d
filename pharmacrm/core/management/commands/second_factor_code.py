"""`pharmacrm second-factor-code USERNAME`: reset a user's second factor and print a one-time enrolment code.

For whoever has shell access, notably to bootstrap the first administrator after `createsuperuser`;
afterwards administrators issue codes through the API (`POST /api/v1/users/{id}/second-factor/`)."""

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.translation import gettext as _

from pharmacrm.core.models import User
from pharmacrm.core.services import issue_second_factor_enrolment

from ._ops import cli_actor


class Command(BaseCommand):
    # operations must work even while another part of the project fails its system checks
    requires_system_checks = []
    help = (
        "Reset a user's second factor and print a one-time enrolment code. At the next sign-in on the web "
        "the user enters the code, then sets up an authenticator app. Earlier codes become void."
    )

    def add_arguments(self, parser):
        parser.add_argument("username", help="The user who is to set up (or set up again) an authenticator app.")

    def handle(self, *args, username, **options):
        from pharmacrm.core.services import sign_in_name

        # the name as the sign-in page reads it: `Wanglei` or full-width letters find the account `wanglei`
        user = User.objects.filter(username=sign_in_name(username)).first()
        if user is None:
            raise CommandError(_("There is no user named %(username)s.") % {"username": username})
        enrolment, code = issue_second_factor_enrolment(None, user, system_actor=cli_actor())
        expires = timezone.localtime(enrolment.expires_at).isoformat(sep=" ", timespec="minutes")
        self.stdout.write(
            _("Enrolment code for %(username)s (valid until %(expires)s):")
            % {"username": user.get_username(), "expires": expires}
        )
        self.stdout.write(self.style.SUCCESS(code))
        self.stdout.write(
            _(
                "Give it to the user in person or by phone. At the next sign-in they enter it, then set up "
                "their authenticator app. The code works once and is not stored anywhere in clear."
            )
        )
        if not user.is_active:
            self.stderr.write(_("Note: this account is deactivated and cannot sign in until it is reactivated."))
