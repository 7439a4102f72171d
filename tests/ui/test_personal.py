"""Personal data on the person page: masked, plain, or revealed with a reason — every clear read audited;
consents recorded from the page."""

from __future__ import annotations

from pharmacrm.core.models import AuditEntry


def _reads(username: str):
    return AuditEntry.objects.filter(action="read_personal", actor__username=username)


def test_an_agent_sees_masked_contacts_and_a_reveal_form(client_for, doctor):
    page = client_for("agent").get(f"/customers/people/{doctor.pk}/").content.decode()
    assert "138****8000" in page and "138 0013 8000" not in page
    assert "z***@example.com" in page
    assert f'action="/customers/people/{doctor.pk}/reveal/"' in page
    assert not _reads("agent").exists()


def test_revealing_needs_a_reason(client_for, doctor):
    response = client_for("agent").post(f"/customers/people/{doctor.pk}/reveal/", {"reason": ""})
    page = response.content.decode()
    assert "State why you need to see this person&#x27;s contact details." in page
    assert "138 0013 8000" not in page
    assert not _reads("agent").exists()


def test_revealing_shows_the_values_and_records_who_why_and_what(client_for, doctor):
    response = client_for("agent").post(
        f"/customers/people/{doctor.pk}/reveal/", {"reason": "Returning Dr Zhang's call about an ADR case"}
    )
    page = response.content.decode()
    assert "138 0013 8000" in page and "zhangwei@example.com" in page and "1975-03-15" in page
    entry = _reads("agent").get()
    assert entry.object_id == str(doctor.pk)
    assert entry.extra["reason"] == "Returning Dr Zhang's call about an ADR case"
    assert entry.extra["purpose"] == "reveal"
    assert entry.request_id and entry.ip == "127.0.0.1"


def test_reveal_is_a_post(client_for, doctor):
    assert client_for("agent").get(f"/customers/people/{doctor.pk}/reveal/").status_code == 405


def test_an_analyst_sees_masked_data_and_no_way_to_reveal_it(client_for, doctor):
    page = client_for("analyst").get(f"/customers/people/{doctor.pk}/").content.decode()
    assert "138****8000" in page
    assert "/reveal/" not in page


def test_a_rep_sees_clear_values_and_the_read_is_audited(client_for, doctor):
    page = client_for("rep").get(f"/customers/people/{doctor.pk}/").content.decode()
    assert "138 0013 8000" in page
    assert _reads("rep").get().extra["purpose"] == "person page"


def test_the_institution_page_masks_its_people_for_an_agent(client_for, xiehe):
    page = client_for("agent").get(f"/customers/institutions/{xiehe.pk}/").content.decode()
    assert "张伟" in page and "138****8000" in page and "138 0013 8000" not in page


def test_lists_and_search_never_show_phones_in_clear(client_for, doctor):
    client = client_for("rep")
    for url in (
        "/customers/people/",
        "/customers/search/?q=13800138000",
        "/customers/search/?q=zw&as=suggest",
    ):
        page = client.get(url).content.decode()
        assert "138****8000" in page, url
        assert "138 0013 8000" not in page and "13800138000</" not in page, url
    assert not _reads("rep").exists()


def test_recording_a_consent_from_the_person_page(client_for, doctor):
    client = client_for("agent")
    response = client.post(
        f"/customers/people/{doctor.pk}/consents/new/",
        {
            "purpose": "marketing",
            "channel": "wechat",
            "status": "given",
            "evidence": "WeChat message 2026-03-01",
        },
    )
    assert response.status_code == 302
    consent = doctor.consents.get()
    assert consent.recorded_by.username == "agent" and consent.channel == "wechat"
    page = client.get(f"/customers/people/{doctor.pk}/").content.decode()
    assert "WeChat message 2026-03-01" in page


def test_an_incomplete_consent_is_refused_with_field_messages(client_for, doctor):
    response = client_for("agent").post(
        f"/customers/people/{doctor.pk}/consents/new/", {"purpose": "marketing"}, HTTP_ACCEPT_LANGUAGE="en"
    )
    assert response.status_code == 400
    assert "This field is required." in response.content.decode()
    assert not doctor.consents.exists()


def _kept(response) -> bool:
    """Whether a browser or a proxy may keep a copy of the answer."""
    return "no-store" not in response.get("Cache-Control", "")


def test_a_page_or_answer_with_personal_data_is_not_kept_by_the_browser(client_for, doctor):
    """A rep's person page, an agent's revealed contacts and the API's person in clear were sent without any
    Cache-Control: the browser kept them on disk, and on a call centre's shared PC the next user read the phone
    numbers from the cache or with the back button after the first had signed out."""
    rep, agent = client_for("rep"), client_for("agent")
    for response in (
        rep.get(f"/customers/people/{doctor.pk}/"),
        rep.get(f"/customers/people/{doctor.pk}/edit/"),
        rep.get(f"/api/v1/people/{doctor.pk}/"),
        agent.post(f"/customers/people/{doctor.pk}/reveal/", {"reason": "Returning Dr Zhang's call"}),
    ):
        assert response.status_code == 200
        assert "13800138000" in response.content.decode().replace(" ", "")  # the form shows it as stored
        assert not _kept(response) and "private" in response["Cache-Control"]


def test_a_page_without_personal_data_in_clear_may_be_kept(client_for, doctor):
    """The rule follows the audit trail's read of personal data: a masked page records none, and stays as it was."""
    response = client_for("analyst").get(f"/customers/people/{doctor.pk}/")
    assert "138****8000" in response.content.decode()
    assert _kept(response)
