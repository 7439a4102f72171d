"""Review round 23: customer master data — the 360 page, edit conflicts, deleting and merging."""

from __future__ import annotations

from django.urls import reverse

from pharmacrm.customers import services


def test_a_departments_page_names_its_hospital_outside_the_territory_without_a_link_to_a_not_found_page(
    users, client_for, ruijin
):
    """A rep's own department of a Shanghai hospital: its page linked the hospital in the breadcrumb and the
    hierarchy, and the link answered "Not found". The hospital is named, as on a person's page, not linked."""
    rep = users["rep"]
    dept = services.create_institution(users["admin"], {"name": "心内科", "kind": "department", "parent": ruijin,
                                                        "owner": rep})  # fmt: skip
    client = client_for("rep")
    page = client.get(reverse("customers:institution", args=[dept.pk])).content.decode()
    assert ruijin.name in page
    assert reverse("customers:institution", args=[ruijin.pk]) not in page
    assert client.get(reverse("customers:institution", args=[ruijin.pk])).status_code == 404
    # a reader who may open it still gets the link, in both places
    page = client_for("agent").get(reverse("customers:institution", args=[dept.pk])).content.decode()
    assert page.count(f'href="{reverse("customers:institution", args=[ruijin.pk])}"') == 2


def test_a_person_form_sent_back_with_a_hospital_outside_the_territory_lists_none_of_its_departments(
    users, client_for, xiehe, ruijin
):
    """The form refused the Shanghai hospital a rep had typed the id of, and came back listing that hospital's
    departments by name: what the rep may not see."""
    services.create_institution(users["admin"], {"name": "神经外科", "kind": "department", "parent": ruijin})
    page = client_for("rep").post(reverse("customers:person-create"), {
        "name": "李四", "role": "doctor", "institution": ruijin.pk, "tier": "new", "stage": "potential",
    })  # fmt: skip
    assert page.status_code == 200 and "institution" in page.context["form"].errors
    assert "神经外科" not in page.content.decode()
    # the hospital's own departments are still offered when it is one the rep may choose
    page = client_for("rep").post(reverse("customers:person-create"), {
        "name": "", "role": "doctor", "institution": xiehe.pk, "tier": "new", "stage": "potential",
    })  # fmt: skip
    assert "心内科" in page.content.decode()
