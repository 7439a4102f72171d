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

A create form that carries a one-time token (customers.forms.OnceTokenForm) is saved with `save_new_form`: the
form sent twice (a double click on Save, Back and Save, two requests at once) creates one record; the second gets
`again` set and, as `result`, the id of what the first created (None when unknown), for the page to show it.

A page with its own save logic (the settings pages) wraps only the service call in `create_once` and answers
`AlreadyCreated` with `sent_again` (the record the first click created, and SENT_AGAIN above it)::

    try:
        obj = create_once(request.user, form.data.get("form_token"), lambda: services.create_x(...))
    except AlreadyCreated as e:  # customers.views
        return sent_again(request, Model, e.pk, "app:xs", page_of=lambda x: reverse("app:x", args=[x.pk]))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect
from django.utils.translation import gettext_lazy as _

from pharmacrm.customers.services import ConflictError

# what a create form sent again shows, above the record the first one created (the customers' pages' words)
SENT_AGAIN = _("This form was already sent: the record was created then, and not a second time.")


@dataclass(frozen=True)
class Outcome:
    """What save_form did: `status` 200 when the service saved (`result`: what it returned), 409 or 400 when it
    refused (the messages are on the form)."""

    status: int
    result: Any = None
    again: bool = False  # a create form sent a second time: `result` is the id the first one created

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


def save_new_form(user, form, create: Callable[[], Any]) -> Outcome:
    """save_form for a create form with a one-time token: `create` runs once per token (customers.views
    ._create_once); the same form sent again answers Outcome(200, <the id created then>, again=True), before its
    values are checked again (the first record may make them refused now, e.g. a name taken)."""
    from pharmacrm.customers.views import AlreadyCreated, _create_once, _created_with

    token = form.data.get(form.add_prefix("form_token"), "")
    if done := _created_with(user, token):
        return Outcome(200, done, again=True)
    try:
        return save_form(form, lambda: _create_once(user, token, create))
    except AlreadyCreated as e:
        return Outcome(200, e.pk, again=True)


def create_once(user, token, create: Callable[[], Any]):
    """create() once per one-time form token (customers.views._create_once); raises AlreadyCreated (its `pk`: what
    the first one created) when the form was sent with this token before, or is being sent at the same time. Asked
    before the service checks the values again: the first record may make them refused now (a name taken)."""
    from pharmacrm.customers.views import AlreadyCreated, _create_once, _created_with

    if done := _created_with(user, token):
        raise AlreadyCreated(done)
    return _create_once(user, token, create)


def sent_again(request, model, pk: int | None, fallback: str, *, page_of: Callable[[Any], str] | None = None):
    """The answer to a create form sent again: SENT_AGAIN above the page of the record the first one created
    (`page_of(record)`; its get_absolute_url by default), or above `fallback` (a URL) when it is gone."""
    messages.info(request, SENT_AGAIN)
    obj = model.objects.filter(pk=pk).first() if pk else None
    if obj is None:
        return redirect(fallback)
    return redirect(page_of(obj) if page_of is not None else obj)


def deleted_by(user, model, pk) -> bool:
    """Whether `user` deleted this record (the audit trail says so): a delete sent twice (a double click, the page
    sent again) finds it gone, and says so instead of "no such record". Only the user's own deletion counts, so
    that this tells nobody of a record they may not see."""
    from pharmacrm.core.models import AuditEntry

    return AuditEntry.objects.filter(
        action=AuditEntry.Action.DELETE, object_type=model._meta.label_lower, object_id=str(pk), actor_id=user.pk
    ).exists()


def sent_again_after(user, obj, version) -> bool:
    """Whether a button form loaded with `version` finds `obj` one version on because `user` moved it: the same
    form sent twice (a double click), the first sending having done the change — the audit trail's last entry of
    the record is the user's. A colleague's change in between, or any further one, is a stale form."""
    from pharmacrm.core.ids import is_id
    from pharmacrm.core.models import AuditEntry

    if not is_id(version) or obj.version != int(version) + 1:
        return False
    last = (
        AuditEntry.objects.filter(object_type=obj._meta.label_lower, object_id=str(obj.pk))
        .order_by("-seq")
        .values_list("actor_id", flat=True)
        .first()
    )
    return last is not None and last == user.pk
