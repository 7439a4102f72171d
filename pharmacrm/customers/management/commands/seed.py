"""`seed --institutions N --people M`: fast, deterministic scale data (see customers/scale.py)."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from pharmacrm.core import audit
from pharmacrm.core.models import AuditEntry
from pharmacrm.customers import scale


class Command(BaseCommand):
    requires_system_checks: list = []  # data only: no need to import the URL table and views
    help = (
        "Add N realistic institutions and M people (encrypted, indexed for search) in bulk, for scale tests."
    )

    def add_arguments(self, parser):
        parser.add_argument("--institutions", type=int, default=0, help="How many institutions to add.")
        parser.add_argument("--people", type=int, default=0, help="How many people to add.")
        parser.add_argument(
            "--seed", type=int, default=1, help="Random seed: the same seed gives the same data."
        )
        parser.add_argument("--chunk", type=int, default=10000, help="Rows per transaction.")
        parser.add_argument(
            "--force",
            action="store_true",
            help="Allow seeding a PostgreSQL database (DATABASE_URL set) or a production one (PHARMACRM_PRODUCTION).",
        )

    def handle(self, *args, institutions, people, seed, chunk, force, **options):
        if institutions < 0 or people < 0:
            raise CommandError(_("The counts must be zero or more."))
        # as `pharmacrm demo`: DATABASE_URL marks the installation's real database, where made-up customers
        # would mix with the real ones; a throw-away benchmark database is seeded with --force
        if (settings.PRODUCTION or getattr(settings, "DATABASE_URL", None)) and not force:
            raise CommandError(
                _(
                    "This is a production database (DATABASE_URL or PHARMACRM_PRODUCTION is set): scale data goes "
                    "there only with --force, and only into a throw-away database."
                )
            )
        gen = scale.Generator(seed)
        progress = (
            scale.Progress(report=lambda line: self.stdout.write(line)) if options["verbosity"] else None
        )
        scale.bulk_session()
        made_inst = scale.seed_institutions(institutions, gen, chunk=max(1000, chunk // 2), progress=progress)
        made_people = scale.seed_people(people, gen, chunk=chunk, progress=progress)
        if made_inst or made_people:
            scale.analyze()
            # one audit entry for the whole run, as for an import: who added how many records
            audit.record(AuditEntry.Action.IMPORT, None, source="seed", institutions=made_inst, people=made_people,
                         seed=seed)  # fmt: skip
        self.stdout.write(
            self.style.SUCCESS(
                _("Added %(institutions)s institutions and %(people)s people.")
                % {"institutions": f"{made_inst:,}", "people": f"{made_people:,}"}
            )
        )
