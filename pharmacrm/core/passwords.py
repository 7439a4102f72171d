"""Password rules of our own, on top of Django's validators (settings.AUTH_PASSWORD_VALIDATORS)."""

from __future__ import annotations

import re

from django.contrib.auth import password_validation
from django.core.exceptions import FieldDoesNotExist, ValidationError

# Shorter names ("pv") turn up inside ordinary words; Windows' password complexity rule uses the same bound.
CONTAINED_MIN_LENGTH = 3


class UserAttributeSimilarityValidator(password_validation.UserAttributeSimilarityValidator):
    """Django's check, and also no password that contains the user name or the e-mail's local part.

    Django compares the whole password with the whole name, so `agentagent` (66 % alike) and `agent2026agent2026`
    passed for the user `agent`, although whoever knows the user name guesses them first (NIST SP 800-63B asks to
    refuse passwords made of the user name). Compared without case, and without the separators of a name such
    as `zhang.wei`; a password spelling the name backwards is refused too. The message is Django's own: "The
    password is too similar to the user name.\""""

    def validate(self, password, user=None):
        super().validate(password, user)
        if not user:
            return
        folded = password.lower()
        bare = re.sub(r"[\W_]+", "", folded)
        for attribute_name in self.user_attributes:
            if attribute_name not in ("username", "email"):
                continue  # a first or last name ("Wei") is too short and common to forbid inside a password
            value = getattr(user, attribute_name, None)
            if not value or not isinstance(value, str):
                continue
            value = value.lower()
            if attribute_name == "email":
                value = value.partition("@")[0]
            for part in {value, re.sub(r"[\W_]+", "", value)}:
                if len(part) < CONTAINED_MIN_LENGTH:
                    continue
                if part in folded or part[::-1] in folded or part in bare or part[::-1] in bare:
                    raise ValidationError(
                        self.get_error_message(),
                        code="password_too_similar",
                        params={"verbose_name": self._verbose_name(user, attribute_name)},
                    )

    @staticmethod
    def _verbose_name(user, attribute_name: str) -> str:
        try:
            return str(user._meta.get_field(attribute_name).verbose_name)
        except FieldDoesNotExist:
            return attribute_name
