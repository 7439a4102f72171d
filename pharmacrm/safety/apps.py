import io

from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _

# databases whose migration 0008 found cases stored invalid under the old minimum criteria: revalidated once the
# whole `migrate` is done, when today's models match the tables (see that migration)
REVALIDATE_AFTER_MIGRATE: set[str] = set()
# databases whose migration 0011 found case files still stored under their uploader's name: moved to random names
# once the whole `migrate` is done (see that migration)
RENAME_FILES_AFTER_MIGRATE: set[str] = set()


def revalidate_after_migrate(sender, using: str = "default", **kwargs) -> None:
    from django.core.management import call_command

    if using in RENAME_FILES_AFTER_MIGRATE:
        # file by file: copied, the row changed and audited, then the old file removed; killed half-way, it is
        # simply run again (`pharmacrm safety rename-files`, docs/operations.md): nothing is lost
        call_command("safety", "rename-files", stdout=kwargs.get("stdout") or io.StringIO())
        RENAME_FILES_AFTER_MIGRATE.discard(using)
    if using not in REVALIDATE_AFTER_MIGRATE:
        return

    # the command revalidates case by case, each in its own transaction; killed half-way, it is simply run again
    # (`pharmacrm safety revalidate`, docs/operations.md): a case it already did is left as it is
    call_command("safety", "revalidate", stdout=kwargs.get("stdout") or io.StringIO())
    REVALIDATE_AFTER_MIGRATE.discard(using)


class SafetyConfig(AppConfig):
    name = "pharmacrm.safety"
    label = "safety"
    verbose_name = _("Safety and quality")

    def ready(self) -> None:
        from pharmacrm.core import builtin

        from .setup import shipped_names

        chinese, english = shipped_names()
        builtin.register(chinese)
        builtin.register(english, language="en")
        post_migrate.connect(revalidate_after_migrate, sender=self, dispatch_uid="safety.revalidate_after_migrate")
