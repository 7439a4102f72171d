import io

from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _

# databases whose migration 0015 found evaluations with response or resolution times, stored perhaps before the
# time waiting on the customer was taken out of them: recomputed once the whole `migrate` is done, when today's
# models match the tables (see that migration)
RECOMPUTE_AFTER_MIGRATE: set[str] = set()


def recompute_after_migrate(sender, using: str = "default", **kwargs) -> None:
    if using not in RECOMPUTE_AFTER_MIGRATE:
        return
    from django.core.management import call_command

    # each evaluation in its own transaction; killed half-way, the command is simply run again
    # (`pharmacrm reviews recompute-waits`, docs/operations.md): one already right is left as it is
    call_command("reviews", "recompute-waits", stdout=kwargs.get("stdout") or io.StringIO())
    RECOMPUTE_AFTER_MIGRATE.discard(using)


class KeyAccountsConfig(AppConfig):
    name = "pharmacrm.keyaccounts"
    label = "keyaccounts"
    verbose_name = _("Key accounts and evaluation")

    def ready(self):
        from . import hooks

        hooks.register()
        from pharmacrm.core import builtin

        from .evaluation import shipped_names

        for language, names in shipped_names().items():
            builtin.register(names, language=language)
        from .scoring import SHIPPED_PROGRAMMES

        builtin.register(dict(SHIPPED_PROGRAMMES.values()))  # the default model's reward programmes
        post_migrate.connect(
            recompute_after_migrate, sender=self, dispatch_uid="keyaccounts.recompute_after_migrate"
        )
