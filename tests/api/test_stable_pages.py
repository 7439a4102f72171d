"""Walking the pages of every list endpoint gives each record exactly once, whatever the ordering asked for.

Pages are separate LIMIT/OFFSET queries. Records that tie on every ordering key came in whatever order each query's
plan gave them — on PostgreSQL a top-N sort for the first page and a full sort for a later one — so a client that
walked the users by `last_login` (most had never signed in: NULL) got some users twice and others never.

For every paginated list endpoint under /api/v1/ (found in the URL configuration, so a new one is covered) and
every ordering the endpoint allows (each field, both directions, and the default), the records the caller sees are
given one value of the ordering fields — updated one by one in shuffled order, so that their order on disk is not
their id order — and the pages are walked. The demo data (scale 0.05) supplies records for every endpoint; it is
loaded once for the module, as in tests/core/test_demo_contents.py."""

from __future__ import annotations

import math
import random

import pytest
from django.db import DatabaseError, transaction
from django.db.models import QuerySet
from rest_framework.filters import OrderingFilter
from rest_framework.request import Request
from rest_framework.test import APIClient, APIRequestFactory

from pharmacrm import api_urls
from pharmacrm.core.models import User
from pharmacrm.core.roles import Role
from tests.api.conftest import token_for
from tests.conftest import demo_loaded

pytestmark = pytest.mark.django_db


def _walk(patterns, prefix=""):
    for p in patterns:
        if hasattr(p, "url_patterns"):
            yield from _walk(p.url_patterns, prefix + str(p.pattern))
        else:
            yield prefix + str(p.pattern), p.callback


# lists paged over something other than a queryset, with no ordering to ask for: their paging has its own tests
OVER_A_LIST = {
    "sales/split-orders/",  # the split order numbers of a pass over the lines, by number (tests/sales/test_split_orders_api.py)
}


def list_endpoints() -> dict[str, object]:
    """route → view callback, for every list action that pages its answer (over a queryset)."""
    found = {}
    for route, callback in _walk(api_urls.urlpatterns):
        cls = getattr(callback, "cls", None)
        actions = getattr(callback, "actions", None) or {}
        if cls is None or actions.get("get") != "list" or getattr(cls, "pagination_class", None) is None:
            continue
        if "(?P<format>" in route:  # the same list with a format suffix
            continue
        if route.lstrip("^").rstrip("$") in OVER_A_LIST:
            continue
        found[route.lstrip("^").rstrip("$")] = callback
    return found


ENDPOINTS = list_endpoints()
# endpoints under a parent record: the parent to use, given the demo data
PARENTS = {
    "tickets/(?P<ticket_pk>[0-9]{1,18})/messages/": ("ticket_pk", "servicedesk.TicketMessage", "ticket_id"),
    "tickets/(?P<ticket_pk>[0-9]{1,18})/attachments/": ("ticket_pk", "servicedesk.Attachment", "ticket_id"),
}

ROW_KEYS = {"keyaccounts/incentives/": "evaluation"}  # lists whose rows name their record otherwise than by id


def test_every_paginated_list_endpoint_is_walked():
    assert len(ENDPOINTS) >= 30, sorted(ENDPOINTS)
    for route in ENDPOINTS:
        assert "(?P<" not in route or route in PARENTS, f"{route}: say which parent record to walk under"


@pytest.fixture(scope="module")
def demo(django_db_setup, django_db_blocker, tmp_path_factory):
    with demo_loaded(django_db_blocker, tmp_path_factory.mktemp("demo-var")):
        yield


def _seed(route: str) -> None:
    """Records for the lists the demo leaves empty."""
    from django.utils import timezone

    from pharmacrm.customers.models import Institution
    from pharmacrm.engagement.models import Interaction
    from pharmacrm.notify.models import WebhookEndpoint
    from pharmacrm.servicedesk.models import Attachment, Ticket

    if route == "interactions/" and Interaction.objects.count() < 4:
        admin, place = User.objects.get(username="admin"), Institution.objects.order_by("pk").first()
        for n in range(6):
            Interaction.objects.create(
                institution=place, channel="phone", received_at=timezone.now(), subject=f"拜访 {n}", created_by=admin
            )
    if route.endswith("/attachments/") and Attachment.objects.count() < 4:
        ticket = Ticket.objects.order_by("pk").first()
        for n in range(6):
            Attachment.objects.create(
                ticket=ticket, file=f"t/{n}.pdf", name=f"说明书{n}.pdf", content_type="application/pdf", size=10,
                sha256="0" * 64,
            )
    if route == "webhooks/" and WebhookEndpoint.objects.count() < 4:
        for n in range(6):
            WebhookEndpoint.objects.create(name=f"企业微信群 {n}", url=f"https://hooks.example.com/{n}", secret="s")


def _parent_kwargs(route: str) -> dict:
    if route not in PARENTS:
        return {}
    from django.apps import apps
    from django.db.models import Count

    kwarg, model_name, fk = PARENTS[route]
    model = apps.get_model(model_name)
    top = model.objects.values(fk).annotate(n=Count("pk")).order_by("-n").first()
    if top is None or top["n"] < 2:  # the demo has too few: add some to one ticket
        parent = model.objects.first() or None
        assert parent is not None, f"{route}: the demo has no {model_name}"
        for _ in range(3):
            parent.pk = None
            parent._state.adding = True
            parent.save()
        top = {fk: getattr(parent, fk)}
    return {kwarg: top[fk]}


def _view(callback, route_kwargs, user, params=None):
    """The list view as the request would set it up, to read its queryset and allowed orderings."""
    request = Request(APIRequestFactory().get("/", params or {}))
    request.user = user
    view = callback.cls(**callback.initkwargs)
    view.action_map = callback.actions
    view.action = "list"
    view.request, view.args, view.kwargs, view.format_kwarg = request, (), route_kwargs, None
    view.headers = {}
    return view


def _orderings(view) -> list[str | None]:
    """None (the default ordering) and every field the endpoint allows, both directions."""
    out: list[str | None] = [None]
    for backend in view.filter_backends:
        if issubclass(backend, OrderingFilter):
            fields = backend().get_valid_fields(view.get_queryset(), view, {"request": view.request})
            out += [sign + name for name, _label in fields for sign in ("", "-")]
    return out


def _applied_terms(view) -> list[str]:
    """The ordering keys of the list's query, as the endpoint orders it."""
    qs = view.filter_queryset(view.get_queryset())
    query = qs.query
    terms = list(query.order_by) or (list(query.get_meta().ordering) if query.default_ordering else [])
    return [t.lstrip("-") for t in terms if isinstance(t, str)]


def _make_ties(model, pks: list, terms: list[str]) -> None:
    """Give every record the first one's values of the ordering fields (NULL where the field allows it), one
    record at a time in shuffled order. A field no two records may share is left as it is: it cannot tie."""
    fields = []
    for term in terms:
        if "__" in term:
            continue
        try:
            field = model._meta.get_field(term)
        except Exception:  # an annotation (next_deadline): ties where the records have none
            continue
        if getattr(field, "primary_key", True) or not getattr(field, "concrete", False) or field.many_to_many:
            continue
        fields.append(field)
    if not fields:
        return
    first = model.objects.get(pk=pks[0])
    values = {f.attname: (None if f.null else getattr(first, f.attname)) for f in fields}
    shuffled = pks[:]
    random.Random(7).shuffle(shuffled)
    for pk in shuffled:
        for name, value in values.items():
            try:
                with transaction.atomic():
                    model.objects.filter(pk=pk).update(**{name: value})
            except DatabaseError:
                continue  # unique, constrained together with another field, or append-only: no tie there


def _client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}", HTTP_ACCEPT_LANGUAGE="en")
    return client


def _best_reader(callback, route, route_kwargs):
    """The demo user who sees most records of this list."""
    best = None
    for role in Role:
        user = User.objects.get(username=role.value)
        response = _client(user).get(_url(route, route_kwargs), {"page_size": 1})
        if response.status_code == 200 and (best is None or response.json()["count"] > best[1]):
            best = (user, response.json()["count"])
    return best


def _url(route: str, kwargs: dict) -> str:
    import re

    return "/api/v1/" + re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: str(kwargs[m.group(1)]), route)


def _walk_pages(client, url, params, page_size, key) -> list:
    seen, page = [], 1
    while True:
        response = client.get(url, {**params, "page": page, "page_size": page_size})
        assert response.status_code == 200, (url, params, response.content[:300])
        body = response.json()
        seen += [row[key] for row in body["results"]]
        if not body["next"]:
            return seen
        page += 1


@pytest.mark.parametrize("route", sorted(ENDPOINTS))
def test_walking_the_pages_gives_each_record_once_whatever_the_ordering(demo, route):
    callback = ENDPOINTS[route]
    _seed(route)
    route_kwargs = _parent_kwargs(route)
    best = _best_reader(callback, route, route_kwargs)
    assert best is not None and best[1] >= 2, f"{route}: no demo user sees two records"
    user, _count = best
    client = _client(user)
    problems = []
    for ordering in _orderings(_view(callback, route_kwargs, user)):
        params = {"ordering": ordering} if ordering else {}
        with transaction.atomic():
            view = _view(callback, route_kwargs, user, params)
            qs = view.filter_queryset(view.get_queryset())
            assert isinstance(qs, QuerySet)
            pks = list(qs.values_list("pk", flat=True)[:60])
            key = ROW_KEYS.get(route, "id" if view.lookup_field == "pk" else view.lookup_field)
            _make_ties(qs.model, pks, _applied_terms(view))
            expected = list(view.filter_queryset(view.get_queryset()).values_list(view.lookup_field, flat=True))
            page_size = max(1, math.ceil(len(expected) / 5))
            walked = _walk_pages(client, _url(route, route_kwargs), params, page_size, key)
            if sorted(walked) != sorted(expected):
                twice = sorted({pk for pk in walked if walked.count(pk) > 1})
                never = sorted(set(expected) - set(walked))
                problems.append(f"ordering={ordering}: twice {twice[:5]}, never {never[:5]}")
            transaction.set_rollback(True)
    assert not problems, f"{route} ({len(expected)} records): " + "; ".join(problems)
