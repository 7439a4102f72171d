"""The core app."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CoreConfig(AppConfig):
    name = "pharmacrm.core"
    label = "core"
    verbose_name = _("Core")

    def ready(self):
        from django.contrib.auth.signals import user_logged_in
        from django.db import models
        from django.db.models.signals import post_migrate

        from . import dbstats, signals  # noqa: F401  (login/logout audit)

        # "Last sign-in" is the last complete one (core.signals): Django's own receiver set it at the password
        # step, also when the one-time code of a second-factor role was never given
        user_logged_in.disconnect(dispatch_uid="update_last_login")

        # statistics for tables a migration rebuilt (SQLite): sent once, with the core app as sender
        post_migrate.connect(dbstats.after_migrate, sender=self, dispatch_uid="core.dbstats")

        from .ids import AnyOf

        models.Field.register_lookup(AnyOf)
        models.ForeignObject.register_lookup(AnyOf)  # customer_id__any_of=…

        from rest_framework import serializers

        from .api_utils import DateField

        # every date an API client sends: 2025-02-30 is "not a day of the calendar", not "wrong format"
        serializers.ModelSerializer.serializer_field_mapping[models.DateField] = DateField

        from . import api_schema  # noqa: F401  (the schema's extensions: request bodies refuse unknown fields)
