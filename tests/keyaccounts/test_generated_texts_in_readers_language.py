"""Improvement actions the customer evaluation opens are stored in the product's language (改善与 … 的客户关系（D 类）)
with what they were written from, and read in the reader's language on the pages and in the API (`title_label`,
`title` unchanged); a title its owner reworded reads as typed. Actions stored before keep their text and are
recognised by the migration (servicedesk 0027)."""

from __future__ import annotations

import datetime as dt
import importlib
from types import SimpleNamespace

from django.apps import apps
from django.db import connection
from django.urls import reverse
from django.utils import timezone, translation

from pharmacrm.keyaccounts import evaluation
from pharmacrm.keyaccounts.choices import ModelKind
from pharmacrm.servicedesk import revisit
from pharmacrm.servicedesk.models import ImprovementAction

from .eval_fixtures import *  # noqa: F403  (fixtures)
from .eval_fixtures import H1_2026

migration = importlib.import_module("pharmacrm.servicedesk.migrations.0027_generated_action_texts")
ENGLISH = "Improve the relationship with 北京协和医院 (class D) [2026H1]"


def _action(purchases) -> ImprovementAction:
    assert evaluation.run(ModelKind.EVALUATION, as_of=H1_2026).actions == 1
    return ImprovementAction.objects.get(institution=purchases["xiehe"])


def test_an_evaluations_action_reads_in_the_readers_language(purchases, users, client_for, api_for):
    action = _action(purchases)
    assert action.title == "改善与 北京协和医院 的客户关系（D 类）[2026H1]"  # stored as before
    assert action.generated_params == {"name": "北京协和医院", "klass": "D", "period": "2026H1"}
    with translation.override("en"):
        assert action.shown_title == ENGLISH
        assert action.shown_description.startswith("The customer evaluation of 2026H1 put this customer in class D.")
    with translation.override("zh-hant"):
        assert action.shown_title == "改善與 北京协和医院 的客戶關係（D 類）[2026H1]"
    with translation.override("zh-hans"):
        assert action.shown_title == action.title

    page = client_for("manager").get(reverse("servicedesk:improvement", args=[action.pk]), HTTP_ACCEPT_LANGUAGE="en")
    heading = page.content.decode().split("<h1>", 1)[1].split("</h1>", 1)[0]
    assert ENGLISH in heading
    assert "Look at the weak components" in page.content.decode()
    listed = client_for("manager").get(reverse("servicedesk:improvements"), HTTP_ACCEPT_LANGUAGE="en")
    assert ENGLISH in listed.content.decode()
    data = api_for("manager").get(f"/api/v1/improvement-actions/{action.pk}/", HTTP_ACCEPT_LANGUAGE="en").json()
    assert (data["title"], data["title_label"]) == (action.title, ENGLISH)  # the field clients read is unchanged


def test_the_owners_notification_reads_in_their_language(purchases, users):
    from pharmacrm.notify.models import Notification

    action = _action(purchases)
    note = Notification.objects.get(recipient=action.owner, kind="improvement.assigned")
    assert action.title in note.title  # stored in the product's language, as before
    with translation.override("en"):
        assert note.shown_title == f"Improvement action {action.number}: {ENGLISH}"


def test_a_title_its_owner_reworded_reads_as_typed(purchases, users):
    action = _action(purchases)
    revisit.update_action(action.owner, action, {"title": "与药剂科主任面谈"}, version=action.version)
    action.refresh_from_db()
    with translation.override("en"):
        assert action.shown_title == "与药剂科主任面谈 [2026H1]"  # as typed (the period kept, as before)
        assert action.shown_description.startswith("The customer evaluation of 2026H1")  # the description untouched


def test_the_migration_recognises_the_actions_stored_before(purchases, users):
    action = _action(purchases)
    typed = revisit.create_action(users["manager"], {
        "title": "改善与 药剂科 的沟通", "owner": users["manager"], "due_date": action.due_date,
        "institution": purchases["xiehe"]})  # fmt: skip
    ImprovementAction.objects.update(generated="", generated_params={})  # as stored before servicedesk 0027

    migration.fill_generated(apps, SimpleNamespace(connection=connection))

    action.refresh_from_db()
    typed.refresh_from_db()
    assert (action.generated, action.generated_params) == (
        "evaluation", {"name": "北京协和医院", "klass": "D", "period": "2026H1"})  # fmt: skip
    assert typed.generated == ""
    with translation.override("en"):
        assert (action.shown_title, typed.shown_title) == (ENGLISH, "改善与 药剂科 的沟通")


def _edit(client, action, language: str, **changes):
    with translation.override(language):
        data = {"title": action.shown_title, "description": action.shown_description, "owner": action.owner_id,
                "due_date": action.due_date.isoformat(), "version": action.version, **changes}  # fmt: skip
    return client.post(reverse("servicedesk:improvement-edit", args=[action.pk]), data, HTTP_ACCEPT_LANGUAGE=language)


def test_the_edit_form_offers_the_text_in_the_readers_language_and_saved_unchanged_it_stays_the_evaluations(
    purchases, users, client_for
):
    action = _action(purchases)
    stored = (action.title, action.description)
    client = client_for("manager")
    page = client.get(reverse("servicedesk:improvement", args=[action.pk]), HTTP_ACCEPT_LANGUAGE="en")
    form = page.content.decode().split('name="title"', 1)[1].split(">", 1)[0]
    assert f'value="{ENGLISH}"' in form  # not the stored Chinese, to reword in English
    for language in ("en", "zh-hant"):
        action.refresh_from_db()
        response = _edit(client, action, language)
        assert response.status_code == 302, response.content.decode()[:2000]
        action.refresh_from_db()
        assert (action.title, action.description) == stored  # no rewording: kept as stored
    with translation.override("zh-hant"):
        assert action.shown_title == "改善與 北京协和医院 的客戶關係（D 類）[2026H1]"  # still read in each language
    with translation.override("en"):
        assert action.shown_title == ENGLISH


def test_a_rewording_in_the_readers_language_is_stored_as_typed(purchases, users, client_for):
    action = _action(purchases)
    description = action.description
    response = _edit(client_for("manager"), action, "en", title="Meet the head of pharmacy")
    assert response.status_code == 302
    action.refresh_from_db()
    assert action.title == "Meet the head of pharmacy [2026H1]"
    with translation.override("zh-hans"):
        assert action.shown_title == "Meet the head of pharmacy [2026H1]"  # as typed, for every reader
    assert action.description == description  # the description sent unchanged stays the evaluation's
    with translation.override("en"):
        assert action.shown_description.startswith("The customer evaluation of 2026H1")


def test_the_api_takes_back_the_title_label_unchanged_as_no_rewording(purchases, users, api_for):
    action = _action(purchases)
    stored = action.title
    client = api_for("manager")
    data = client.get(f"/api/v1/improvement-actions/{action.pk}/", HTTP_ACCEPT_LANGUAGE="en").json()
    r = client.patch(f"/api/v1/improvement-actions/{action.pk}/", {"title": data["title_label"],
                     "version": data["version"]}, format="json", HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert r.status_code == 200, r.json()
    action.refresh_from_db()
    assert action.title == stored and r.json()["title_label"] == ENGLISH


def _long_generated_action(users, institution) -> ImprovementAction:
    """An evaluation's action whose title reads over 200 characters in English (a long customer name, as servicedesk
    0027 recognised in titles stored before): 193 characters stored in Chinese, 219 in English."""
    from django.conf import settings

    from pharmacrm.servicedesk.models import GENERATED_ACTION_TEXTS

    params = {"name": "协和" * 85, "klass": "D", "period": "2026H1"}
    title, description = GENERATED_ACTION_TEXTS["evaluation"]
    with translation.override(settings.LANGUAGE_CODE):
        texts = {"title": title(params), "description": description(params)}
    return revisit.create_action(users["manager"], {
        **texts, "owner": users["manager"], "due_date": timezone.localdate() + dt.timedelta(days=30),
        "institution": institution, "generated": "evaluation", "generated_params": params})  # fmt: skip


def test_a_title_label_over_200_characters_sent_back_through_the_api_changes_nothing(users, xiehe, api_for):
    """An API client that sent back the action as it read it (title_label as the title, PATCH) got a 400 'no more
    than 200 characters' for an English title over 200; it is no rewording: 200, nothing stored, the action still
    the evaluation's and read in each reader's language."""
    from pharmacrm.core.models import AuditEntry

    action = _long_generated_action(users, xiehe)
    stored = (action.title, action.description, action.generated, action.generated_params, action.version)
    client = api_for("manager")
    url = f"/api/v1/improvement-actions/{action.pk}/"
    data = client.get(url, HTTP_ACCEPT_LANGUAGE="en").json()
    assert len(data["title"]) <= 200 < len(data["title_label"])

    label_back = client.patch(url, {"title": data["title_label"], "version": data["version"]}, format="json",
                              HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    whole_back = client.patch(url, {**data, "title": data["title_label"], "description": data["description_label"]},
                              format="json", HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip

    assert label_back.status_code == whole_back.status_code == 200, (label_back.json(), whole_back.json())
    assert whole_back.json()["title_label"] == data["title_label"]
    action.refresh_from_db()
    assert (action.title, action.description, action.generated, action.generated_params, action.version) == stored
    assert not AuditEntry.objects.filter(object_type="servicedesk.improvementaction", action="update").exists()
    # a rewording is stored: over 200 characters it is refused on the title, as ever
    reworded = client.patch(url, {"title": data["title_label"] + " — call the head of pharmacy", "version": data["version"]},
                            format="json", HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert reworded.status_code == 400 and list(reworded.json()) == ["title"]
