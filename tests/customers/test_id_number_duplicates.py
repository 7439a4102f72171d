"""Two people with the same ID card number (身份证号) are likely duplicates: the duplicate list, each record's
"likely duplicates" and the import's fast path find them through a blind index, without decrypting anyone's
number; the number itself is never stored in clear."""

from __future__ import annotations

import pytest
from django.db import connection
from django.urls import reverse

from pharmacrm.customers import normalise, services
from pharmacrm.customers.models import Person

pytestmark = pytest.mark.django_db

ID = "11010519491231002X"  # GB 11643 check character X


def test_two_people_with_one_id_number_are_likely_duplicates(client_for, admin_user, xiehe, ruijin):
    a = services.create_person(admin_user, {"name": "王芳", "institution": xiehe, "id_number": ID})
    b = services.create_person(admin_user, {"name": "王芳芳", "institution": ruijin, "id_number": ID.lower()})
    assert a.id_number_bidx and a.id_number_bidx == Person.objects.get(pk=b.pk).id_number_bidx
    assert [(o.pk, reason) for o, reason in services.duplicates_of(a)] == [(b.pk, "id_number")]
    page = client_for("manager").get(reverse("customers:duplicates"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Same ID card number" in page and reverse("customers:merge", args=["person", a.pk, b.pk]) in page
    with connection.cursor() as cur:  # the index is a keyed hash, not the number
        cur.execute("SELECT id_number_bidx FROM customers_person WHERE id = %s", [a.pk])
        assert ID not in cur.fetchone()[0]


def test_the_seed_and_the_model_compute_the_same_index(admin_user, xiehe):
    from types import SimpleNamespace

    p = SimpleNamespace(name="李雷", mobile="", landline="", email="", id_number=ID)
    Person.refresh_derived(p, None)
    assert p.id_number_bidx == services.create_person(
        admin_user, {"name": "李雷", "institution": xiehe, "id_number": normalise.credit_code(ID)}
    ).id_number_bidx


def test_an_imported_id_number_is_indexed_like_a_typed_one(users, admin_user, xiehe, tmp_path, settings):
    from pharmacrm.customers import importer

    settings.VAR_DIR = tmp_path
    typed = services.create_person(admin_user, {"name": "王芳", "institution": xiehe, "id_number": ID})
    path = tmp_path / "people.csv"
    path.write_text(f"姓名,身份证号\n吴敏,{ID}\n", encoding="utf-8")
    job = importer.import_file(path, "people", users["kam"], mode="good")
    assert not job.errors
    imported = Person.objects.get(name="吴敏")
    assert imported.id_number_bidx == typed.id_number_bidx
    assert [o.pk for o, _r in services.duplicates_of(typed)] == [imported.pk]
