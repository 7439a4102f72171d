"""Model fields for personal data: stored as AES-GCM ciphertext, used in Python as plain text."""

from __future__ import annotations

import datetime

from django.db import models

from . import crypto


class EncryptedTextField(models.TextField):
    """Plain text in Python, ciphertext (`e1:<key>:<b64>`) in the database; never filter on it.

    Look-ups go through the companion blind-index column (`<name>_bidx`), which the model keeps
    current; ordering or filtering on the ciphertext would be meaningless and is refused.
    """

    description = "Text encrypted with the personal-data key ring"

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("blank", True)
        kwargs.setdefault("default", "")
        super().__init__(*args, **kwargs)

    def context(self) -> str:
        return f"{self.model._meta.db_table}.{self.column}"

    def from_db_value(self, value, expression, connection):
        if not value:
            return ""
        return crypto.decrypt(value, self.context())

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value in (None, ""):
            return ""
        if isinstance(value, str) and value.startswith(crypto.PREFIX + ":"):
            return value  # already ciphertext (re-encryption passes raw values through)
        return crypto.encrypt(str(value), self.context())

    def get_lookup(self, lookup_name):
        if lookup_name == "isnull":
            return super().get_lookup(lookup_name)
        raise TypeError(f"{self.name} is encrypted; look it up through its blind index instead.")


class EncryptedDateField(EncryptedTextField):
    """A date kept encrypted (ISO text inside the ciphertext)."""

    def from_db_value(self, value, expression, connection):
        text = super().from_db_value(value, expression, connection)
        return datetime.date.fromisoformat(text) if text else None

    def to_python(self, value):
        if value in (None, ""):
            return None
        if isinstance(value, datetime.date):
            return value
        return datetime.date.fromisoformat(str(value))

    def get_prep_value(self, value):
        if isinstance(value, datetime.date):
            value = value.isoformat()
        return super().get_prep_value(value)

    def formfield(self, **kwargs):
        from django import forms

        return forms.DateField(required=not self.blank, **{k: v for k, v in kwargs.items() if k == "label"})


class CodeCharField(models.CharField):
    """A code (ERP order number, …) compared character by character: on PostgreSQL the column is declared
    COLLATE "C" whatever the database's own collation, so that its b-tree serves "begins with" look-ups as a
    range and sorts codes as the ERP does. Under a language collation (zh_CN.UTF-8, en_US.UTF-8 — what most
    servers are created with) the index cannot answer a prefix and every such filter would read the whole
    table. SQLite compares text by code point already (BINARY)."""

    def db_parameters(self, connection):
        params = super().db_parameters(connection)
        if connection.vendor == "postgresql":
            params["collation"] = "C"
        return params
