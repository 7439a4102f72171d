"""Duplicates of what people type by hand — an answer template's name, a product's approval number, a category's
code — refused in words that name the field and the value, on the pages and through the API alike.

Django's own refusal reads badly in every language ("具有 名称 的 答复模板 已存在。", "answer template with this name
already exists."). A model lists its messages in `UNIQUE_MESSAGES` ({field: message with %(value)s}); the model
check (`full_clean`, which the services run for the pages) and the API's model serializers (their unique
validator, pharmacrm.core.api_utils.ModelSerializer) both use them.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.utils.functional import Promise


class NamedUniqueMixin:
    """For a model whose unique fields users fill in: see the module's docstring."""

    UNIQUE_MESSAGES: dict[str, Promise] = {}

    def unique_error_message(self, model_class, unique_check):
        if len(unique_check) == 1 and unique_check[0] in self.UNIQUE_MESSAGES:
            field = unique_check[0]
            return ValidationError(self.UNIQUE_MESSAGES[field], code="unique", params={"value": getattr(self, field)})
        return super().unique_error_message(model_class, unique_check)

    @classmethod
    def duplicate(cls, field: str, value) -> ValidationError:
        """The refusal of `value` under `field` (for a duplicate the database found: two saves at once)."""
        return ValidationError({field: [ValidationError(cls.UNIQUE_MESSAGES[field], code="unique",
                                                        params={"value": value})]})  # fmt: skip
