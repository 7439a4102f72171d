"""Duplicates: shown on the 360 page and in the duplicate list, compared side by side and merged."""

from __future__ import annotations

from pharmacrm.customers import services
from pharmacrm.customers.models import Institution, Person


def _twin(admin_user, xiehe):
    """The same hospital entered again with its switchboard number."""
    return services.create_institution(
        admin_user, {"name": "协和医院", "kind": "hospital", "region": xiehe.region, "phone": "010 6915 6114"}
    )


def test_the_360_page_lists_likely_duplicates_with_a_merge_link_for_mergers(client_for, admin_user, xiehe):
    twin = _twin(admin_user, xiehe)
    page = client_for("manager").get(f"/customers/institutions/{xiehe.pk}/").content.decode()
    assert "Likely duplicates" in page and "Same phone number" in page
    assert f"/customers/merge/institution/{xiehe.pk}/{twin.pk}/" in page
    agent_page = client_for("agent").get(f"/customers/institutions/{xiehe.pk}/").content.decode()
    assert f'href="/customers/institutions/{twin.pk}/"' in agent_page
    assert "/customers/merge/" not in agent_page


def test_the_duplicate_list_groups_records_that_share_a_phone(client_for, admin_user, xiehe):
    twin = _twin(admin_user, xiehe)
    page = client_for("admin").get("/customers/duplicates/").content.decode()
    assert f"/customers/merge/institution/{xiehe.pk}/{twin.pk}/" in page


def test_merging_keeps_the_chosen_record_and_moves_the_people(client_for, admin_user, xiehe, doctor):
    twin = _twin(admin_user, xiehe)
    client = client_for("manager")
    compare = client.get(f"/customers/merge/institution/{xiehe.pk}/{twin.pk}/").content.decode()
    assert "北京协和医院" in compare and "协和医院" in compare
    response = client.post(f"/customers/merge/institution/{xiehe.pk}/{twin.pk}/", {"survivor": twin.pk})
    assert response.status_code == 302 and response["Location"] == f"/customers/institutions/{twin.pk}/"
    doctor.refresh_from_db()
    xiehe.refresh_from_db()
    assert doctor.institution_id == twin.pk
    assert xiehe.merged_into_id == twin.pk
    merged_page = client.get(f"/customers/institutions/{xiehe.pk}/").content.decode()
    assert f'href="/customers/institutions/{twin.pk}/"' in merged_page
    assert f"/customers/institutions/{xiehe.pk}/edit/" not in merged_page
    assert client.get(f"/customers/institutions/{xiehe.pk}/edit/").status_code == 403


def test_merging_people_with_the_same_mobile(client_for, admin_user, xiehe, doctor):
    twin = services.create_person(admin_user, {"name": "张伟", "institution": xiehe, "mobile": "13800138000"})
    client = client_for("admin")
    page = client.get(f"/customers/people/{doctor.pk}/").content.decode()
    assert f"/customers/merge/person/{doctor.pk}/{twin.pk}/" in page
    response = client.post(f"/customers/merge/person/{doctor.pk}/{twin.pk}/", {"survivor": doctor.pk})
    assert response["Location"] == f"/customers/people/{doctor.pk}/"
    assert Person.objects.get(pk=twin.pk).merged_into_id == doctor.pk


def test_a_merge_without_a_choice_changes_nothing(client_for, admin_user, xiehe):
    twin = _twin(admin_user, xiehe)
    response = client_for("admin").post(f"/customers/merge/institution/{xiehe.pk}/{twin.pk}/", {})
    assert response.status_code == 200
    assert not Institution.objects.filter(merged_into__isnull=False).exists()


def test_merge_of_unknown_kinds_is_not_found(client_for, xiehe):
    assert client_for("admin").get(f"/customers/merge/ticket/{xiehe.pk}/{xiehe.pk + 1}/").status_code == 404
