"""A notification about a ticket carries its subject as the customer typed it (请回电 138 0013 8000): the e-mails
masked it, the bell's list, the notification API and the notice of a notification that can no longer be opened showed
it in clear to recipients who see personal data masked (agent, expert, support, after-sales, analyst, auditor). They
are masked for such a reader when shown — notifications stored before too —; a reader who sees personal data reads
them as written, and what is stored is not changed."""

from __future__ import annotations

import pytest

from pharmacrm.core.deferred import Message
from pharmacrm.notify import services
from pharmacrm.notify.models import Notification
from pharmacrm.servicedesk import services as desk
from tests.servicedesk.conftest import raise_ticket  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db

SUBJECT = "请回电 139-1234-5678，邮箱li.na@example.com"
MASKED = "请回电 139****5678，邮箱l***@example.com"
CLEAR = ("139-1234-5678", "li.na@example.com", "1234-5678")
HANDLERS = ("agent", "expert", "support", "aftersales")  # masked roles a ticket can be given to
MASKED_ROLES = (*HANDLERS, "analyst", "auditor")


def _clear_in(text: str) -> list[str]:
    return [v for v in CLEAR if v in text]


def _notes_for(users, role: str, make) -> list[Notification]:
    """The notifications a reader gets about a ticket: handed the ticket (a handler), or any with its subject in
    the title and text; and one stored as older versions did (no template, the texts in the product's language)."""
    user = users[role]
    if role in HANDLERS or role == "manager":
        ticket = make(subject=SUBJECT, user="manager")
        desk.assign(users["manager"], ticket, assignee=user)
    services.send([user], kind="ticket.answered", title=Message("%(subject)s", subject=SUBJECT),
                  body=Message("客户答复：%(subject)s", subject=SUBJECT), url="/service/")  # fmt: skip
    Notification.objects.create(recipient=user, kind="ticket.assigned", title=f"TK-2025-000001 {SUBJECT}",
                                body=SUBJECT)  # fmt: skip
    return list(Notification.objects.filter(recipient=user))


@pytest.mark.parametrize("role", MASKED_ROLES)
def test_a_masked_reader_sees_the_subject_masked_in_the_list_and_the_api(
    role, users, client_for, api_for, raise_ticket  # noqa: F811
):
    notes = _notes_for(users, role, raise_ticket)
    page = client_for(role).get("/notifications/").content.decode()
    assert MASKED in page and not _clear_in(page)
    api = api_for(role)
    listed = api.get("/api/v1/notifications/").json()["results"]
    assert len(listed) == len(notes) and all(MASKED in n["title"] for n in listed)
    assert not _clear_in(str(listed))
    one = api.get(f"/api/v1/notifications/{notes[0].pk}/").json()
    assert MASKED in one["title"] and not _clear_in(str(one))
    # stored as written: the reader's reveal on the ticket page shows it in clear
    assert all(SUBJECT in n.title for n in Notification.objects.filter(recipient=users[role]))


@pytest.mark.parametrize("role", ["agent", "analyst"])
def test_the_notice_of_a_notification_no_longer_open_masks_its_title(role, users, client_for):
    # a triage flag's notice, opened by someone who does not handle safety cases (any more)
    note = services.send([users[role]], kind="safety.flag", title=Message("%(subject)s", subject=SUBJECT),
                         url="/safety/triage/", obj=("safety.flag", "1"))[0]  # fmt: skip
    answer = client_for(role).get(f"/notifications/{note.pk}/open/", follow=True)
    page = answer.content.decode()
    assert MASKED in page and not _clear_in(page)


@pytest.mark.parametrize("role", ["manager", "admin"])
def test_a_reader_who_sees_personal_data_reads_the_subject_as_typed(
    role, users, client_for, api_for, raise_ticket  # noqa: F811
):
    _notes_for(users, role, raise_ticket)
    page = client_for(role).get("/notifications/").content.decode()
    assert SUBJECT in page
    listed = api_for(role).get("/api/v1/notifications/").json()["results"]
    assert all(SUBJECT in n["title"] for n in listed)


# titles stored before their template was kept were cut at 200 characters: a number cut mid-way at the end (请回电
# 1391234) is no whole number for the masks; for a masked reader its digits past the third are masked as well
CUT = "TK-2025-000123 " + "客户反映药品外包装破损，需要尽快更换并回访。" * 8
CUT_TITLE = CUT[: 200 - len("请回电 1391234")] + "请回电 1391234"
ORDINARY = CUT[: 200 - len("共需更换 2000")] + "共需更换 2000"


def _stored(user, title) -> Notification:
    assert len(title) == 200
    return Notification.objects.create(recipient=user, kind="ticket.assigned", title=title, body="")


@pytest.mark.parametrize("role", ["agent", "auditor"])
def test_a_number_cut_at_the_end_of_a_stored_title_is_masked_for_a_masked_reader(role, users, client_for, api_for):
    note = _stored(users[role], CUT_TITLE)
    ordinary = _stored(users[role], ORDINARY)
    page = client_for(role).get("/notifications/").content.decode()
    assert "请回电 139****" in page and "1391234" not in page
    listed = {n["id"]: n["title"] for n in api_for(role).get("/api/v1/notifications/").json()["results"]}
    assert listed[note.pk].endswith("请回电 139****") and "1391234" not in listed[note.pk]
    # an ordinary number at the end of a title so long, and a title shorter than the cut, are shown as written
    assert listed[ordinary.pk] == ORDINARY
    short = services.send([users[role]], kind="ticket.answered", title="发货数量 1391234", url="/service/")[0]
    assert api_for(role).get(f"/api/v1/notifications/{short.pk}/").json()["title"] == "发货数量 1391234"
    # the e-mail of such a title (masked for everyone)
    assert "1391234" not in services.email_text(CUT_TITLE, "", "")[0]


def test_a_reader_who_sees_personal_data_reads_a_cut_title_as_stored(users, api_for):
    note = _stored(users["manager"], CUT_TITLE)
    assert api_for("manager").get(f"/api/v1/notifications/{note.pk}/").json()["title"] == CUT_TITLE


# …and an e-mail address cut there before its domain ends (zhang.san@exa): its name is masked as a whole address's
MAIL_TITLE = CUT[: 200 - len("联系 zhang.san@exa")] + "联系 zhang.san@exa"
MAIL_AT_TITLE = CUT[: 200 - len("联系 zhang.san@")] + "联系 zhang.san@"


@pytest.mark.parametrize("role", ["agent", "auditor"])
def test_an_address_cut_at_the_end_of_a_stored_title_is_masked_for_a_masked_reader(role, users, client_for, api_for):
    notes = [_stored(users[role], MAIL_TITLE), _stored(users[role], MAIL_AT_TITLE)]
    page = client_for(role).get("/notifications/").content.decode()
    assert "联系 z***@exa" in page and "联系 z***@" in page and "zhang.san" not in page
    listed = {n["id"]: n["title"] for n in api_for(role).get("/api/v1/notifications/").json()["results"]}
    assert listed[notes[0].pk].endswith("联系 z***@exa") and listed[notes[1].pk].endswith("联系 z***@")
    assert "zhang.san" not in services.email_text(MAIL_TITLE, "", "")[0]


def test_a_reader_who_sees_personal_data_reads_a_cut_address_as_stored(users, api_for):
    note = _stored(users["manager"], MAIL_TITLE)
    assert api_for("manager").get(f"/api/v1/notifications/{note.pk}/").json()["title"] == MAIL_TITLE
