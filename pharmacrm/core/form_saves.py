"""Saving a web page's form through its app's service, and how the page answers a refusal, the same on every
edit page that uses it (market, licences, loyalty, cooperation):

- someone saved the record since the version the form was loaded with (ConflictError): its message above the
  form, status 409;
- the service's rules refused the values (ValidationError): each message at the field it names
  (`form.add_service_errors`), the rest above the form, status 400.

The caller says what success shows (its message, where it redirects)::

    status = 200
    if request.method == "POST":
        outcome = save_form(form, lambda: services.update_reward(request.user, reward, form.values(), version))
        if outcome.saved:
            messages.success(request, _("Saved."))
            return redirect("loyalty:rewards")
        status = outcome.status
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError

from pharmacrm.customers.services import ConflictError


@dataclass(frozen=True)
class Outcome:
    """What save_form did: `status` 200 when the service saved (`result`: what it returned), 409 or 400 when it
    refused (the messages are on the form)."""

    status: int
    result: Any = None

    @property
    def saved(self) -> bool:
        return self.status == 200


def save_form(form, save: Callable[[], Any]) -> Outcome:
    """Run `save` (the service call) and put a refusal on `form` (module docstring)."""
    try:
        result = save()
    except ConflictError as e:
        form.add_error(None, str(e))
        return Outcome(409)
    except ValidationError as e:
        form.add_service_errors(e)
        return Outcome(400)
    return Outcome(200, result)
