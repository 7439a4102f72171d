"""A customer merge leaves nothing of the duplicate's behind by accident: every relation of every app pointing at an
institution or a person — foreign key, one-to-one, many-to-many — is either moved to the survivor or declared kept
(MERGE_KEEP, MERGE_MOVE, MERGE_OWN on its model); and the many-to-many links move like the rest (the market
intelligence naming the duplicate is in the survivor's market brief)."""

from __future__ import annotations

import datetime as dt

from django.apps import apps
from django.utils import timezone

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers import services as customers
from pharmacrm.customers.models import Institution, MergeRecord, Person
from pharmacrm.market import services as market
from pharmacrm.market.models import Intelligence

DECIDED = {
    customers.MOVE,
    customers.MOVE_ONE,
    customers.MOVE_LINKS,
    customers.THROUGH,
    customers.KEEP,
    customers.OWN,
}


def _pointing_at(target) -> list[tuple[type, str]]:
    """Every (model, field) of the app registry whose field points at `target`, however declared (a reverse accessor
    or none, a many-to-many with or without a model of its own): read from the fields, not from the merge's plan."""
    out = []
    for model in apps.get_models(include_auto_created=False):
        for field in model._meta.get_fields():
            if field.is_relation and field.concrete is not False and not field.auto_created:
                if field.remote_field.model is target:
                    out.append((model, field.name))
    return out


def test_every_relation_to_a_customer_is_moved_by_a_merge_or_declared_kept():
    """A new app's foreign key, one-to-one or many-to-many to a customer is either moved by the merge or says why not
    on its model (MERGE_KEEP: recomputed or history; MERGE_MOVE: a one-to-one the survivor takes when it has none;
    MERGE_OWN: its app merges it on the `merged` signal). Without that, its records stayed with the merged-away
    record and disappeared from the survivor's pages."""
    for target in (Institution, Person):
        plan = {(related, field): action for related, field, action in customers.merge_plan(target)}
        found = _pointing_at(target)
        assert found and set(found) == set(plan), f"the merge's plan of {target.__name__} misses a relation"
        undecided = sorted(f"{m._meta.label}.{f}" for (m, f), action in plan.items() if action not in DECIDED)
        assert not undecided, (
            f"{undecided} point at {target.__name__} and a merge would leave the duplicate's records behind: move "
            "them (a one-to-one: MERGE_MOVE on the model), or say on the model why they stay (MERGE_KEEP, MERGE_OWN)"
        )
        # and what the plan says is what is there today: the many-to-many moved, the influence merged by its app
        if target is Institution:
            assert plan[(Intelligence, "customers")] == customers.MOVE_LINKS
            assert plan[(apps.get_model("keyaccounts", "MarketInfluence"), "institution")] == customers.OWN
            assert plan[(apps.get_model("servicedesk", "Ticket"), "institution")] == customers.MOVE
            assert plan[(Institution, "merged_into")] == customers.KEEP


def _intel(user, title: str, customers_: list[Institution]) -> Intelligence:
    return market.create_intelligence(user, {
        "kind": "tender", "title": title, "happened_on": timezone.localdate() - dt.timedelta(days=3),
        "customers": [c.pk for c in customers_],
    })  # fmt: skip


def test_intelligence_naming_the_duplicate_is_in_the_survivors_market_brief_after_the_merge(
    users, xiehe, shanghai, client_for
):
    """北京协和医院 entered twice (once, wrongly, in Shanghai); marketing recorded the tender news against the copy.
    After the merge the key-account manager reads the hospital's market brief: the news is there, once — also the
    item that named both records —, the items say they changed, and the merge's history says what moved."""
    manager = users["manager"]
    copy = customers.create_institution(
        manager, {"name": "北京协和医院（东院）", "kind": "hospital", "region": shanghai}
    )
    tender = _intel(manager, "协和医院带量采购中标结果", [copy])
    both = _intel(manager, "协和医院新药准入会议", [copy, xiehe])
    stamps = {i.pk: (i.version, i.updated_at) for i in (tender, both)}
    page = f"/market/customer/{xiehe.pk}/"
    before = client_for("manager").get(page).content.decode()
    assert "带量采购中标结果" not in before  # another province, no product: only the link brought it

    customers.merge(manager, xiehe, Institution.objects.get(pk=copy.pk))

    brief = client_for("manager").get(page)
    assert brief.status_code == 200
    text = brief.content.decode()
    assert "协和医院带量采购中标结果" in text and text.count("协和医院新药准入会议") == 1
    assert list(Institution.objects.get(pk=copy.pk).market_intelligence.all()) == []
    assert sorted(c.pk for c in Intelligence.objects.get(pk=both.pk).customers.all()) == [
        xiehe.pk
    ]  # one link
    for item in Intelligence.objects.filter(pk__in=stamps):
        version, updated = stamps[item.pk]
        assert item.version == version + 1 and item.updated_at > updated  # a form opened before is told
    record = MergeRecord.objects.get(survivor_id=xiehe.pk, merged_id=copy.pk)
    assert sorted(record.moved["market.intelligence.customers"]) == sorted([tender.pk, both.pk])
    entry = AuditEntry.objects.get(action=AuditEntry.Action.MERGE, object_id=str(xiehe.pk))
    assert entry.extra["moved"]["market.intelligence.customers"] == 2
