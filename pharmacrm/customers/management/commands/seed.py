"""`seed --institutions N --people M`: fast, deterministic scale data (see customers/scale.py)."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

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
            help="Allow seeding a production database (PHARMACRM_PRODUCTION set).",
        )

    def handle(self, *args, institutions, people, seed, chunk, force, **options):
        if institutions < 0 or people < 0:
            raise CommandError("The counts must be zero or more.")
        if settings.PRODUCTION and not force:
            raise CommandError("This is a production database: scale data goes there only with --force.")
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
        self.stdout.write(self.style.SUCCESS(f"Added {made_inst:,} institutions and {made_people:,} people."))
