"""Recording interactions: checked, validated, written in one transaction, screened by the safety net,
audited."""

from __future__ import annotations

import datetime as dt

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from pharmacrm.core import access, audit, personal
from pharmacrm.core.ids import is_id
from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Cap
from pharmacrm.customers.models import Institution, with_departments
from pharmacrm.customers.services import ConflictError, hold_unmerged, merged_choice_errors
from pharmacrm.safety import net

from .models import Interaction, InteractionChannel

A = AuditEntry.Action
EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # older "when" values are typing errors
FIELDS = ("institution", "person", "channel", "received_at", "subject", "notes", "product", "safety_relevant")


def _clean(user, data: dict, *, partial: bool, current: Interaction | None = None) -> dict:
    """`current`: the interaction being changed; its own customers stay allowed when they have left the user's
    territory (the author corrects a visit made before a move to another region)."""
    errors: dict[str, list[str]] = {}
    values = {f: data[f] for f in FIELDS if f in data}
    if not partial or "subject" in values:
        values["subject"] = str(values.get("subject") or "").strip()
        if not values["subject"]:
            errors["subject"] = [_("Say in a few words what the interaction was about.")]
        elif len(values["subject"]) > 200:
            errors["subject"] = [_("At most 200 characters.")]
    if "notes" in values:
        values["notes"] = str(values["notes"] or "").strip()
        if len(values["notes"]) > 20000:
            errors["notes"] = [_("At most 20,000 characters.")]
    if not partial or "channel" in values:
        if values.get("channel") not in InteractionChannel.values:
            errors["channel"] = [_("Choose how the interaction took place.")]
    if not partial or values.get("received_at") is not None:
        at = values.get("received_at") or timezone.now()
        if isinstance(at, str):
            try:
                at = dt.datetime.fromisoformat(at)
            except ValueError:
                errors["received_at"] = [_("Enter a date and time.")]
                at = timezone.now()
        if timezone.is_naive(at):
            at = timezone.make_aware(at)
        if at > timezone.now() + dt.timedelta(minutes=5):
            errors["received_at"] = [_("An interaction cannot be in the future.")]
        elif at < EARLIEST:  # a mistyped year ("0226"): day 0 centuries ago, PV's clock breached at once
            errors["received_at"] = [_("This is too long ago for an interaction: check the date.")]
        values["received_at"] = at
    if partial and "received_at" in values and values["received_at"] is None:
        values.pop("received_at")  # an empty field never moves day 0
    if "safety_relevant" in values:
        values["safety_relevant"] = bool(values["safety_relevant"])
    for key in ("institution", "person"):
        obj = values.get(key)
        kept = current is not None and obj is not None and getattr(current, f"{key}_id") == obj.pk
        if obj is not None and not kept and not access.can_see(user, obj):
            errors[key] = [_("You may not record interactions with this customer.")]
    errors = {**merged_choice_errors(values), **errors}
    if not partial and not (values.get("institution") or values.get("person")):
        errors["institution"] = [_("Name the institution or the person.")]
    if errors:
        raise ValidationError(errors)
    person = values.get("person")
    if person is not None and not values.get("institution") and person.institution_id:
        values["institution"] = person.institution
    if not partial:
        _check_workplace(values.get("institution"), person)
    return values


def _check_workplace(institution, person) -> None:
    """The person must work at the institution (or one of its departments, or the hospital of the department
    chosen), as the form's person select offers: filed under another hospital, a doctor's visit would show
    on a page of the wrong customer and give the doctor's name to reps whose territory holds that hospital."""
    if institution is None or person is None:
        return
    places = {person.institution_id, person.department_id} - {None}
    if not places:
        return  # someone of no institution (a retired expert): nothing to contradict
    family = set(with_departments(institution.pk))
    parent = institution.parent_id
    while parent and parent not in family:
        family.add(parent)
        parent = Institution.objects.filter(pk=parent).values_list("parent_id", flat=True).first()
    if places & family:
        return
    workplace = person.institution or person.department
    raise ValidationError({"person": [
        _("%(person)s works at %(institution)s: choose that institution, or leave the institution empty.")
        % {"person": person.name, "institution": workplace.name}
    ]})  # fmt: skip


# the consent channel that covers each way of meeting a customer (a meeting or "other" is none of them)
CONSENT_CHANNEL = {InteractionChannel.VISIT: "visit", InteractionChannel.PHONE: "phone",
                   InteractionChannel.WECHAT: "wechat", InteractionChannel.EMAIL: "email"}  # fmt: skip
# a consent given or withdrawn on a paper form or on the web names no way of contact: it covers every one (a
# marketing consent withdrawn on paper is withdrawn for WeChat too, until the person gives it again there)
CONSENT_ANY_CHANNEL = ("paper", "web")


def _latest_word(records):
    """The record that decides for a channel: the latest of those for that channel and those for every channel."""
    records = [r for r in records if r is not None]
    return max(records, key=lambda r: (r.at, r.pk)) if records else None


def withdrawn_marketing_consent(interaction: Interaction):
    """The person's consent record that withdrew marketing communication through the interaction's channel,
    when that is the latest word on it (a consent given again since clears it); else None."""
    channel = CONSENT_CHANNEL.get(interaction.channel)
    if interaction.person_id is None or channel is None:
        return None
    from pharmacrm.customers.choices import ConsentPurpose, ConsentStatus
    from pharmacrm.customers.models import Consent

    latest = (
        Consent.objects.filter(person_id=interaction.person_id, purpose=ConsentPurpose.MARKETING,
                               channel__in=[channel, *CONSENT_ANY_CHANNEL])
        .order_by("-at", "-id").first()
    )  # fmt: skip
    return latest if latest is not None and latest.status == ConsentStatus.WITHDRAWN else None


def consent_warnings(interactions) -> dict[int, str]:
    """`consent_warning` of many interactions (a page of the API's list) with one query for their people's
    marketing consents: {interaction id: warning}, only those that have one."""
    from pharmacrm.customers.choices import ConsentPurpose, ConsentStatus
    from pharmacrm.customers.models import Consent

    wanted = [(i, CONSENT_CHANNEL[i.channel]) for i in interactions if i.person_id and i.channel in CONSENT_CHANNEL]
    if not wanted:
        return {}
    latest: dict = {}
    for consent in Consent.objects.filter(
        person_id__in={i.person_id for i, _c in wanted}, purpose=ConsentPurpose.MARKETING,
        channel__in={c for _i, c in wanted} | set(CONSENT_ANY_CHANNEL),
    ).order_by("-at", "-id"):  # fmt: skip
        latest.setdefault((consent.person_id, consent.channel), consent)
    out = {}
    for interaction, channel in wanted:
        person = interaction.person_id
        consent = _latest_word([latest.get((person, c)) for c in (channel, *CONSENT_ANY_CHANNEL)])
        if consent is not None and consent.status == ConsentStatus.WITHDRAWN:
            out[interaction.pk] = _warning(interaction, consent)
    return out


def consent_warning(interaction: Interaction) -> str:
    """What the page says about an interaction through a channel whose marketing consent the person withdrew."""
    consent = withdrawn_marketing_consent(interaction)
    return "" if consent is None else _warning(interaction, consent)


def _warning(interaction: Interaction, consent) -> str:
    values = {"person": interaction.person.name, "channel": consent.get_channel_display(),
              "date": timezone.localtime(consent.at).date().isoformat()}  # fmt: skip
    if consent.channel in CONSENT_ANY_CHANNEL:
        return _("%(person)s withdrew their consent to marketing communication on %(date)s (recorded by "
                 "%(channel)s, for every channel): do not promote products to them this way.") % values
    return _("%(person)s withdrew their consent to marketing communication by %(channel)s on %(date)s: do not "
             "promote products to them this way.") % values


SENT_AGAIN = dt.timedelta(minutes=10)


def _recorded_just_now(user, values: dict, *, timed: bool, now: dt.datetime) -> Interaction | None:
    """The interaction this user recorded in the last ten minutes with the same customer, channel, words and
    product — and the same time, when one was given: the form or the app's request sent again (a double tap,
    a retry on a weak signal in the hospital, Back and Save), not a second visit."""
    candidates = Interaction.objects.filter(
        created_by=user, created_at__gte=now - SENT_AGAIN, channel=values["channel"], subject=values["subject"],
        notes=values.get("notes", ""), institution=values.get("institution"), person=values.get("person"),
        product=values.get("product"), safety_relevant=values.get("safety_relevant", False),
    ).order_by("-created_at")  # fmt: skip
    for candidate in candidates[:10]:
        if not timed or abs(candidate.received_at - values["received_at"]) < dt.timedelta(minutes=1):
            return candidate
    return None


def _hold_customers(values: dict) -> None:
    hold_unmerged(**{key: values[key].pk for key in ("institution", "person") if values.get(key) is not None})


def record_interaction(user, data: dict) -> Interaction:
    """Record a visit, call or message. The same one sent again within minutes is not recorded twice (the
    reaction in it would reach PV as two flags): the first is returned, with `sent_again` set."""
    access.require(user, Cap.RECORD_INTERACTIONS)
    values = _clean(user, data, partial=False)
    now = timezone.now()
    with transaction.atomic():
        # one recording at a time per author, so that a double tap's two requests cannot both miss each other
        list(get_user_model().objects.select_for_update().filter(pk=user.pk).values_list("pk", flat=True))
        # a merge of the customer under way: filed under the merged record, the interaction would be shown nowhere
        # (the merge finishes first and the interaction is refused, or a later merge moves it)
        _hold_customers(values)
        same = _recorded_just_now(user, values, timed=data.get("received_at") is not None, now=now)
        if same is not None:
            same.sent_again = True
            return same
        interaction = Interaction.objects.create(created_by=user, created_at=now, updated_at=now, **values)
        audit.record(A.CREATE, interaction, user=user, changes={"channel": [None, interaction.channel]})
        net.screen_interaction(interaction)
    return interaction


def update_interaction(user, interaction: Interaction, data: dict, *, version: int | None = None) -> Interaction:
    access.require(user, Cap.RECORD_INTERACTIONS)
    if interaction.created_by_id != user.pk and not access.can(user, Cap.ALL_CUSTOMERS):
        raise access.PermissionDenied(_("Only the author may change this interaction."))
    # a reader shown the subject and notes with their contact details masked sends the masks back (the edit form, a
    # GET then PATCH): each is put back as stored, never saved in place of the real number or address
    data = personal.restore_free_text(user, data, interaction, personal.FREE_TEXT_OF["engagement.interaction"])
    values = _clean(user, data, partial=True, current=interaction)
    with transaction.atomic():
        _hold_customers(values)  # before the interaction's lock: a merge moving it holds the customer's first
        fresh = Interaction.objects.select_for_update().get(pk=interaction.pk)
        if "received_at" in values and abs(values["received_at"] - fresh.received_at) < dt.timedelta(seconds=1):
            # the time sent back as it was loaded, by a client that keeps milliseconds or whole seconds (the
            # app's JavaScript dates): unchanged, not a move of day 0 that a flagged interaction refuses
            values.pop("received_at")
        if version is not None and (not is_id(version) or int(version) != fresh.version):
            if all(getattr(fresh, field) == value for field, value in values.items()):
                # the same change sent again (a double tap on Save, the app's retry after a lost answer): it is
                # saved already, and nobody's words would be overwritten — not "someone else changed it"
                return fresh
            raise ConflictError(fresh.version)
        if "received_at" in values and values["received_at"] != fresh.received_at and fresh.safety_flags.exists():
            raise ValidationError({"received_at": [
                _("This interaction was flagged for pharmacovigilance: its time is day 0 and can no longer change.")
            ]})  # fmt: skip
        institution = values["institution"] if "institution" in values else fresh.institution
        person = values["person"] if "person" in values else fresh.person
        if institution is None and person is not None and person.institution_id:
            # as when it was recorded: the person's institution fills in an empty one (the app's PATCH
            # {"institution": null} dropped the visit off the hospital's page and out of its filter)
            institution = values["institution"] = person.institution
        if institution is None and person is None:  # the interaction would drop off every customer's page
            raise ValidationError({"institution": [_("Name the institution or the person.")]})
        if (getattr(institution, "pk", None), getattr(person, "pk", None)) != (fresh.institution_id, fresh.person_id):
            _check_workplace(institution, person)
        before = {f: getattr(fresh, f) for f in values}
        for field, value in values.items():
            setattr(fresh, field, value)
        fresh.version += 1
        fresh.updated_at = timezone.now()
        fresh.save()
        audit.record(A.UPDATE, fresh, user=user, changes=audit.diff(before, values))
        net.screen_interaction(fresh)
    return fresh
