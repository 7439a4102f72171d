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
# databases whose migration 0013 limited China's rules to cases from China or installed CN-FOREIGN-SERIOUS:
# {alias: ([(code, condition before, after)], created)}, audited once the whole `migrate` is done
RULES_CHANGED_BY_MIGRATION: dict[str, tuple[list, bool]] = {}
# databases whose migration 0014 limited CN-DEATH and CN-DEATH-INVESTIGATION to deaths in China:
# {alias: [(code, condition before, after)]}, audited once the whole `migrate` is done, and the open cases from abroad
# still owing a death clock planned again
DEATH_RULES_CHANGED_BY_MIGRATION: dict[str, list] = {}
# databases whose migration 0017 limited CN-NEW-SERIOUS to serious cases from China: {alias: [(code, {field: [before,
# after]})]}, audited once the whole `migrate` is done
SERIOUS_RULE_CHANGED_BY_MIGRATION: dict[str, list] = {}


def audit_rule_changes(using: str) -> None:
    """A change of a reporting rule is audited like an administrator's (rules_admin.update_rule), by the migration."""
    from pharmacrm.core import audit
    from pharmacrm.core.models import AuditEntry

    from .models import ReportingRule

    changed, created = RULES_CHANGED_BY_MIGRATION.pop(using)
    actor = "migration safety 0013"
    for code, before, after in changed:
        rule = ReportingRule.objects.using(using).get(code=code)
        audit.record(AuditEntry.Action.UPDATE, rule, changes={"condition": [before, after]}, code=code,
                     actor_name=actor)  # fmt: skip
    if created:
        rule = ReportingRule.objects.using(using).get(code="CN-FOREIGN-SERIOUS")
        audit.record(AuditEntry.Action.CREATE, rule, code=rule.code, actor_name=actor)


def replan_foreign_deaths(using: str) -> None:
    """safety 0014's rule changes audited like an administrator's, then the open cases from abroad still owing the
    death clocks planned again under the rules as they are now (services.replan_foreign_deaths, audited)."""
    from pharmacrm.core import audit
    from pharmacrm.core.models import AuditEntry

    from . import services
    from .models import ReportingRule

    actor = "migration safety 0014"
    for code, before, after in DEATH_RULES_CHANGED_BY_MIGRATION.pop(using):
        rule = ReportingRule.objects.using(using).get(code=code)
        audit.record(AuditEntry.Action.UPDATE, rule, changes={"condition": [before, after]}, code=code,
                     actor_name=actor)  # fmt: skip
    services.replan_foreign_deaths(services.SystemActor(actor), reason=services.FOREIGN_DEATH_REASON)


def audit_serious_rule(using: str) -> None:
    """safety 0017's change of CN-NEW-SERIOUS audited like an administrator's (its condition, name, legal basis)."""
    from pharmacrm.core import audit
    from pharmacrm.core.models import AuditEntry

    from .models import ReportingRule

    for code, changes in SERIOUS_RULE_CHANGED_BY_MIGRATION.pop(using):
        rule = ReportingRule.objects.using(using).get(code=code)
        audit.record(AuditEntry.Action.UPDATE, rule, changes=changes, code=code, actor_name="migration safety 0017")


def revalidate_after_migrate(sender, using: str = "default", **kwargs) -> None:
    from django.core.management import call_command

    if using in RULES_CHANGED_BY_MIGRATION:
        audit_rule_changes(using)
    if using in SERIOUS_RULE_CHANGED_BY_MIGRATION:
        audit_serious_rule(using)
    if using in DEATH_RULES_CHANGED_BY_MIGRATION:
        replan_foreign_deaths(using)
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
