"""Session 56 (QA): signing a renewal months ahead took the running agreement out of force at once. It was marked
renewed on the renewal's signing, so the key-account list and the progress report showed the future agreement as
current, the running one left the archive's "signed" filter, and — renewed agreements not counting as overlapping —
a third agreement could be generated over its remaining term. An earlier agreement now counts as renewed once the
renewal's term has begun: at the signing when it has, else on its start day (the worker's sweep)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from pharmacrm.core.models import AuditEntry
from pharmacrm.keyaccounts import report, services
from pharmacrm.keyaccounts.choices import AgreementStatus
from pharmacrm.keyaccounts.models import Agreement
from pharmacrm.notify.models import Notification

from .programme_fixtures import *  # noqa: F403
from .programme_fixtures import tiny_pdf

pytestmark = pytest.mark.django_db


def _sign(users, agreement) -> Agreement:
    upload = SimpleUploadedFile("signed.pdf", tiny_pdf(), content_type="application/pdf")
    return services.record_signed(users["kam"], Agreement.objects.get(pk=agreement.pk),
                                  signed_date=timezone.localdate(), upload=upload)  # fmt: skip


def _at(day: dt.date, hour: int = 0, minute: int = 5) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour, minute)))


@pytest.fixture
def running_and_renewal(users, xiehe, with_plan):
    """协和's agreement in force (started 300 days ago, ends in 90 days) and its renewal, signed today, starting the
    day after it ends. → (account, running, renewal), as stored."""
    account, _plan = with_plan(xiehe)
    today = timezone.localdate()
    running = services.generate_agreement(users["kam"], account, start_date=today - dt.timedelta(days=300),
                                          end_date=today + dt.timedelta(days=90))  # fmt: skip
    _sign(users, running)
    renewal = services.generate_agreement(users["kam"], account, start_date=today + dt.timedelta(days=91),
                                          end_date=today + dt.timedelta(days=455))  # fmt: skip
    _sign(users, renewal)
    return account, Agreement.objects.get(pk=running.pk), Agreement.objects.get(pk=renewal.pk)


def test_a_renewal_signed_months_ahead_leaves_the_running_agreement_in_force(users, running_and_renewal, client_for):
    account, running, renewal = running_and_renewal
    assert (running.status, renewal.status) == (AgreementStatus.SIGNED, AgreementStatus.SIGNED)
    # the summaries show the agreement the customer is served under, not the one starting in three months
    assert services.agreements_shown([account.pk])[account.pk].pk == running.pk
    assert report.rows([account])[0]["agreement"] == running.number
    home = client_for("manager").get(reverse("keyaccounts:home")).content.decode()
    assert running.number in home and renewal.number not in home
    # it stays in the archive's "signed" filter
    signed = client_for("manager").get(reverse("keyaccounts:agreements"), {"status": "signed"}).content.decode()
    assert running.number in signed and renewal.number in signed


def test_no_third_agreement_is_generated_over_the_running_ones_remaining_term(users, running_and_renewal):
    account, running, _renewal = running_and_renewal
    today = timezone.localdate()
    with pytest.raises(ValidationError) as e:
        services.generate_agreement(users["kam"], account, start_date=today + dt.timedelta(days=10),
                                    end_date=today + dt.timedelta(days=80))  # fmt: skip
    assert running.number in e.value.message_dict["start_date"][0]
    assert account.agreements.count() == 2


def test_on_the_renewals_start_day_the_worker_marks_the_running_one_renewed(users, running_and_renewal):
    account, running, renewal = running_and_renewal
    # the renewal's clock looks at its start day (before its reminder, months later)
    assert renewal.next_check_at == _at(renewal.start_date, 0, 0)
    eve = renewal.start_date - dt.timedelta(days=1)
    services.sweep_agreements(now=_at(eve, 23, 0))
    assert Agreement.objects.get(pk=running.pk).status == AgreementStatus.SIGNED
    services.sweep_agreements(now=_at(renewal.start_date))
    running.refresh_from_db()
    renewal.refresh_from_db()
    assert (running.status, renewal.status) == (AgreementStatus.RENEWED, AgreementStatus.SIGNED)
    assert running.next_check_at is None
    entry = AuditEntry.objects.filter(object_type="keyaccounts.agreement", object_id=str(running.pk)).latest("seq")
    assert entry.changes == {"status": [AgreementStatus.SIGNED, AgreementStatus.RENEWED]}
    assert services.agreements_shown([account.pk], today=renewal.start_date)[account.pk].pk == renewal.pk
    # the renewal waits for its own reminder, 60 days before its end, and no reminder was sent for either yet
    assert renewal.next_check_at == services._renewal_moment(renewal)
    assert not Notification.objects.filter(kind="keyaccounts.renewal").exists()
    reminder = services._renewal_moment(renewal) + dt.timedelta(minutes=1)
    assert services.sweep_agreements(now=reminder) == 1


def test_a_renewal_whose_term_has_begun_renews_at_its_signing(users, xiehe, with_plan):
    account, _plan = with_plan(xiehe)
    today = timezone.localdate()
    running = services.generate_agreement(users["kam"], account, start_date=today - dt.timedelta(days=300),
                                          end_date=today + dt.timedelta(days=30))  # fmt: skip
    _sign(users, running)
    # its term ended yesterday and the worker has not expired it yet; the renewal started today
    Agreement.objects.filter(pk=running.pk).update(start_date=today - dt.timedelta(days=366),
                                                   end_date=today - dt.timedelta(days=1))  # fmt: skip
    renewal = services.generate_agreement(users["kam"], account, start_date=today,
                                          end_date=today + dt.timedelta(days=364))  # fmt: skip
    _sign(users, renewal)
    assert Agreement.objects.get(pk=running.pk).status == AgreementStatus.RENEWED
    assert Agreement.objects.get(pk=renewal.pk).next_check_at == services._renewal_moment(renewal)


def test_the_running_agreement_reaching_its_end_first_in_the_sweep_counts_as_renewed(users, running_and_renewal):
    """Its expiry and the renewal's start fall on the same moment: whichever the worker reads first, the earlier one
    ends renewed, not expired."""
    _account, running, renewal = running_and_renewal
    Agreement.objects.filter(pk=renewal.pk).update(next_check_at=None)  # only the running one's end is looked at
    services.sweep_agreements(now=_at(renewal.start_date))
    assert Agreement.objects.get(pk=running.pk).status == AgreementStatus.RENEWED


def test_without_an_agreement_covering_today_the_next_signed_one_is_shown(users, xiehe, with_plan):
    account, _plan = with_plan(xiehe)
    today = timezone.localdate()
    starts = services.generate_agreement(users["kam"], account, start_date=today + dt.timedelta(days=20),
                                         end_date=today + dt.timedelta(days=200))  # fmt: skip
    _sign(users, starts)
    # a later one generated afterwards, not signed yet
    services.generate_agreement(users["kam"], account, start_date=today + dt.timedelta(days=201),
                                end_date=today + dt.timedelta(days=400))  # fmt: skip
    assert services.agreements_shown([account.pk])[account.pk].pk == starts.pk
