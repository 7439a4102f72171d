"""Users, teams, regions, the audit trail and API tokens: what every other app stands on."""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone, translation
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _

from .fields import EncryptedTextField
from .roles import Role


def region_label(code: str, name: str, *, full: bool = False) -> str:
    """A region's (full) name as the reader's language writes it: the official Simplified name, in
    Traditional characters for zh-Hant readers, in English for English readers (the provinces' official English
    names, other divisions in pinyin with their suffix in English: Chaoyang District, Beijing)."""
    language = (translation.get_language() or "").lower()
    if language.startswith("en"):
        from .regions_en import english_region_names

        names, full_names = english_region_names()
        return (full_names if full else names).get(code, name)
    if not language.startswith("zh-hant"):
        return name
    from .setup import hant_region_names

    names, full_names = hant_region_names()
    return (full_names if full else names).get(code, name)


class Region(models.Model):
    """An administrative division (行政区划) with its GB/T 2260 code: province, prefecture or county."""

    class Level(models.IntegerChoices):
        PROVINCE = 1, _("Province")
        CITY = 2, _("City")
        DISTRICT = 3, _("District / county")

    code = models.CharField(_("code"), max_length=6, primary_key=True)
    name = models.CharField(_("name"), max_length=64)
    parent = models.ForeignKey("self", models.PROTECT, null=True, blank=True, related_name="children")
    level = models.PositiveSmallIntegerField(_("level"), choices=Level.choices)
    full_name = models.CharField(_("full name"), max_length=128, blank=True)

    class Meta:
        verbose_name = _("region")
        verbose_name_plural = _("regions")
        ordering = ["code"]

    def __str__(self) -> str:
        return self.display_full_name

    @property
    def display_name(self) -> str:
        """The name in the page's script: Traditional characters on zh-Hant pages."""
        return region_label(self.code, self.name)

    @property
    def display_full_name(self) -> str:
        return region_label(self.code, self.full_name or self.name, full=True)

    @property
    def province_code(self) -> str:
        return self.code[:2] + "0000"

    @property
    def city_code(self) -> str | None:
        return None if self.level == self.Level.PROVINCE else self.code[:4] + "00"

    def code_range(self) -> tuple[str, str]:
        """[low, high) bounds of the codes inside this region, for an indexed range filter."""
        width = {1: 2, 2: 4, 3: 6}[self.level]
        stem = self.code[:width]
        return stem.ljust(6, "0"), (str(int(stem) + 1)).ljust(6, "0")


class Team(models.Model):
    """A sales or service team (团队); its territory is a set of regions."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    lead = models.ForeignKey(
        "core.User", models.SET_NULL, null=True, blank=True, related_name="led_teams", verbose_name=_("team lead")
    )
    territory = models.ManyToManyField(Region, blank=True, related_name="teams", verbose_name=_("territory"))
    # a team the product named (a key account's service team, 重点客户服务组·协和医院): what it named it from, so that
    # the name reads in the reader's language (`shown_name`); `name` keeps it as stored (unique, matched by imports)
    generated = models.CharField(max_length=20, blank=True, default="", editable=False)
    generated_params = models.JSONField(default=dict, blank=True, editable=False)

    class Meta:
        verbose_name = _("team")
        verbose_name_plural = _("teams")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.shown_name

    @property
    def shown_name(self) -> str:
        """The name in the reader's language when the product named the team and nobody renamed it since; else as
        stored (in the product's language a generated name reads as stored, too)."""
        named = GENERATED_TEAM_NAMES.get(self.generated)
        if named is None or named[0](self.generated_params or {}) != self.name:
            return self.name
        language = translation.get_language() or settings.LANGUAGE_CODE
        if translation.get_supported_language_variant(language) == settings.LANGUAGE_CODE:
            return self.name
        return named[1](self.generated_params or {})


KEY_ACCOUNT_TEAM_PREFIX = "重点客户服务组·"


def _key_account_team_stored(p: dict) -> str | None:
    """The name a key account's service team is stored under (keyaccounts.services.service_team)."""
    try:
        return f"{KEY_ACCOUNT_TEAM_PREFIX}{p['customer']}" + (f"·{p['suffix']}" if p.get("suffix") else "")
    except (KeyError, TypeError):
        return None


def _key_account_team_shown(p: dict) -> str:
    from django.utils.translation import gettext

    name = gettext("Key-account service team · %(customer)s") % {"customer": p["customer"]}
    return f"{name} · {p['suffix']}" if p.get("suffix") else name


# kind → (the name as stored, the name in the reader's language), from the parameters stored with the team
GENERATED_TEAM_NAMES = {"key_account": (_key_account_team_stored, _key_account_team_shown)}


class User(AbstractUser):
    """A person who signs in; roles are Django groups named after `Role` values."""

    display_name = models.CharField(_("display name"), max_length=64, blank=True)
    teams = models.ManyToManyField(Team, blank=True, related_name="members", verbose_name=_("teams"))
    territory = models.ManyToManyField(
        Region, blank=True, related_name="users", verbose_name=_("personal territory")
    )
    version = models.PositiveIntegerField(default=1, editable=False)  # optimistic locking (core.services.update_user)
    # Mixed into the session hash (get_session_auth_hash) once set: a new value ends every web session of the account
    # at once, as a new password does. Set when the account is deactivated (User.save), so that a session signed in
    # before does not come back to life when the account is reactivated. Empty: Django's hash, unchanged.
    session_salt = models.CharField(max_length=32, blank=True, default="", editable=False)
    # the language the user chose in the menu: their pages after sign-in, their notifications and e-mails
    language = models.CharField(
        _("language"), max_length=10, blank=True, choices=settings.LANGUAGES,
        help_text=_("Pages, notifications and e-mails in this language; empty: the product's default."),
    )  # fmt: skip

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")

    def __str__(self) -> str:
        return self.display_name or self.get_full_name() or self.username

    def get_full_name(self) -> str:
        """A Chinese name is written surname first, without a space (王芳); other names as Django writes them
        (first name, space, last name)."""
        first, last = self.first_name.strip(), self.last_name.strip()
        if _HAN.search(first + last):
            return f"{last}{first}"
        return super().get_full_name()

    def _get_session_auth_hash(self, secret=None):
        """Django's session hash (of the password hash), with the account's session salt mixed in once it has one:
        every session signed in before the salt changed is signed out at its next request."""
        if not self.session_salt:
            return super()._get_session_auth_hash(secret=secret)
        from django.utils.crypto import salted_hmac

        key_salt = "pharmacrm.core.models.User.get_session_auth_hash"
        value = f"{self.password}\x00{self.session_salt}"
        return salted_hmac(key_salt, value, secret=secret, algorithm="sha256").hexdigest()

    def save(self, *args, **kwargs):
        # A new password revokes every API token, whichever way it was set (core.services.update_user, which
        # also audits it; `pharmacrm changepassword`; the Django admin). Django sets `_password` only for a
        # real change: a hash upgrade at sign-in clears it first, and keeps the tokens.
        password_changed = self._password is not None and self.pk is not None
        # Deactivating (an administrator on the Users page or the API, a script) ends the account's web sessions and
        # revokes its API tokens at once: a dismissed employee's open browser is signed out, and stays signed out
        # if the account is ever reactivated.
        deactivated = (
            self.pk is not None and not self.is_active
            and type(self)._default_manager.filter(pk=self.pk, is_active=True).exists()
        )  # fmt: skip
        if deactivated:
            self.session_salt = secrets.token_hex(16)
            if kwargs.get("update_fields") is not None:
                kwargs["update_fields"] = {*kwargs["update_fields"], "session_salt"}
        super().save(*args, **kwargs)
        revoked = 0
        if password_changed or deactivated:
            revoked = ApiToken.objects.filter(user=self).delete()[0]
        self._sessions_ended = deactivated
        if password_changed and not getattr(self, "_password_change_audited", False):  # update_user audits its own
            self._audit_password_change(revoked)
        elif deactivated and not getattr(self, "_password_change_audited", False):
            self._audit_deactivation(revoked)

    def _audit_deactivation(self, revoked: int) -> None:
        """An account deactivated outside update_user (a script) is audited too, with its sessions and tokens."""
        from . import audit

        who = {}
        if audit.current().user is None:
            from .management.commands._ops import cli_actor

            who["actor_name"] = cli_actor()
        audit.record(
            AuditEntry.Action.UPDATE, self, changes={"is_active": [True, False]}, sessions_ended=True,
            tokens_revoked=revoked, **who,
        )  # fmt: skip

    def _audit_password_change(self, revoked: int) -> None:
        """A password set outside update_user (`pharmacrm changepassword`, the Django admin) is audited too:
        by whom — the signed-in administrator, else the operating-system account — never the password."""
        from . import audit

        who = {}
        if audit.current().user is None:
            from .management.commands._ops import cli_actor

            who["actor_name"] = cli_actor()
        audit.record(AuditEntry.Action.UPDATE, self, password_changed=True, tokens_revoked=revoked, **who)

    @cached_property
    def roles(self) -> frozenset[Role]:
        """The user's roles; a superuser (the first administrator, made by `createsuperuser`) is an administrator
        whatever their groups — the Users pages and the API showed that account with no role at all."""
        names = {g.name for g in self.groups.all()}
        if self.is_superuser:
            names.add(Role.ADMIN.value)
        return frozenset(r for r in Role if r.value in names)

    def has_role(self, *roles: Role) -> bool:
        return bool(self.roles.intersection(roles))


class AuditEntry(models.Model):
    """One append-only, hash-chained record of who did what to which object, and when."""

    class Action(models.TextChoices):
        CREATE = "create", _("Create")
        UPDATE = "update", _("Update")
        DELETE = "delete", _("Delete")
        MERGE = "merge", _("Merge")
        IMPORT = "import", _("Import")
        EXPORT = "export", _("Export")
        LOGIN = "login", _("Login")
        LOGIN_FAILED = "login_failed", _("Failed login")
        LOGOUT = "logout", _("Logout")
        READ_PERSONAL = "read_personal", _("Read personal data")
        ROTATE_KEYS = "rotate_keys", _("Rotate encryption keys")
        BACKUP = "backup", _("Backup")
        RESTORE = "restore", _("Restore")
        ACCESS_DENIED = "access_denied", _("Access denied")
        SIGN = "sign", _("Electronic signature")

    seq = models.BigIntegerField(_("sequence"), unique=True)
    at = models.DateTimeField(_("time"), db_index=True)
    actor = models.ForeignKey(
        User, models.SET_NULL, null=True, blank=True, related_name="+", db_constraint=False, verbose_name=_("actor"),
        db_index=False,  # audit_actor (actor, seq) serves it
    )
    actor_name = models.CharField(_("actor name"), max_length=150, blank=True)
    action = models.CharField(_("action"), max_length=20, choices=Action.choices)
    object_type = models.CharField(_("object type"), max_length=64, blank=True)
    object_id = models.CharField(_("object id"), max_length=64, blank=True)
    object_repr = models.CharField(_("object"), max_length=200, blank=True)
    changes = models.JSONField(_("changes"), default=dict, blank=True)  # {field: [before, after]}
    extra = models.JSONField(_("details"), default=dict, blank=True)
    request_id = models.CharField(_("request id"), max_length=64, blank=True)
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        verbose_name = _("audit entry")
        verbose_name_plural = _("audit trail")
        ordering = ["-seq"]
        # every entry updates each index: none twice (a LIKE index on PostgreSQL, or a column that leads
        # another index, cost 15 % of a bulk append and served no query)
        indexes = [
            models.Index(fields=["object_type", "object_id", "seq"], name="audit_object"),
            models.Index(fields=["actor", "seq"], name="audit_actor"),
            models.Index(fields=["action"], name="audit_action"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} {self.object_type}:{self.object_id}"


class AuditChainHead(models.Model):
    """The chain's last sequence number and hash: serialises writers, and shows a cut-off tail."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    seq = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64, default="0" * 64)

    def __str__(self) -> str:
        return f"#{self.seq} {self.hash[:12]}"


class ApiToken(models.Model):
    """A bearer token for the REST API; only its SHA-256 is stored."""

    user = models.ForeignKey(User, models.CASCADE, related_name="api_tokens")
    key_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=8)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    second_factor = models.BooleanField(default=False)

    class Meta:
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")

    def __str__(self) -> str:
        return f"{self.user} {self.prefix}…"

    @staticmethod
    def hash_key(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    @classmethod
    def issue(cls, user: User, lifetime, second_factor: bool) -> tuple[ApiToken, str]:
        key = secrets.token_urlsafe(32)
        token = cls.objects.create(
            user=user,
            key_hash=cls.hash_key(key),
            prefix=key[:8],
            expires_at=timezone.now() + lifetime,
            second_factor=second_factor,
        )
        return token, key


# Enrolment codes avoid characters that are easily confused when read aloud or copied by hand (0/O, 1/I).
ENROLMENT_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
ENROLMENT_CODE_LENGTH = 12
_HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_CODE_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015\u2212]+")


class SecondFactorEnrolment(models.Model):
    """A one-time code (二次验证绑定码) an administrator issues so that a user may set up their
    authenticator app; only its SHA-256 is stored."""

    user = models.ForeignKey(
        User, models.CASCADE, related_name="second_factor_enrolments", verbose_name=_("user")
    )
    code_hash = models.CharField(_("code hash"), max_length=64, unique=True)
    issued_by = models.ForeignKey(
        User, models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("issued by")
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    expires_at = models.DateTimeField(_("expires at"))
    used_at = models.DateTimeField(_("used at"), null=True, blank=True)

    class Meta:
        verbose_name = _("second-factor enrolment code")
        verbose_name_plural = _("second-factor enrolment codes")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.user} {self.created_at:%Y-%m-%d %H:%M}"

    @staticmethod
    def normalise(code: str) -> str:
        """The code as issued: upper case, without the spaces and dashes people type or copy."""
        # NFKC turns the full-width letters, digits and dashes of a Chinese input method into ASCII
        return _CODE_SEPARATORS.sub("", unicodedata.normalize("NFKC", str(code))).upper()

    @classmethod
    def hash_code(cls, code: str) -> str:
        return hashlib.sha256(cls.normalise(code).encode()).hexdigest()

    @staticmethod
    def new_code() -> str:
        """A fresh random code, grouped for reading: XXXX-XXXX-XXXX (60 bits)."""
        raw = "".join(secrets.choice(ENROLMENT_ALPHABET) for _n in range(ENROLMENT_CODE_LENGTH))
        return "-".join(raw[i : i + 4] for i in range(0, ENROLMENT_CODE_LENGTH, 4))

    @property
    def is_used(self) -> bool:
        return self.used_at is not None

    def is_expired(self, now=None) -> bool:
        return self.expires_at <= (now or timezone.now())

    def is_usable(self, now=None) -> bool:
        return not self.is_used and not self.is_expired(now)


class Counter(models.Model):
    """Named sequences for human-readable numbers (I00000123, TK-2026-000123 …), allocated in blocks."""

    name = models.CharField(max_length=64, primary_key=True)
    value = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name}={self.value}"

    @classmethod
    def allocate(cls, name: str, count: int = 1) -> int:
        """Reserve `count` consecutive numbers and return the first; safe under concurrency."""
        from django.db import connection, transaction

        table = connection.ops.quote_name(cls._meta.db_table)
        sql = f"UPDATE {table} SET value = value + %s WHERE name = %s RETURNING value"  # one round trip
        with transaction.atomic(savepoint=False), connection.cursor() as cursor:  # no savepoint when nested
            cursor.execute(sql, [count, name])
            row = cursor.fetchone()
            if row is None:  # the first number of this sequence
                cls.objects.get_or_create(name=name)
                cursor.execute(sql, [count, name])
                row = cursor.fetchone()
            return row[0] - count + 1


class Signature(models.Model):
    """An electronic signature (21 CFR Part 11 sense): who signed, when, what it means ("approved for
    submission"), for which object — given by re-entering a one-time code from the signer's authenticator
    at that moment (core/signatures.py). `digest` binds the four together with the audit key."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.PROTECT, related_name="signatures")
    signed_at = models.DateTimeField(_("signed"), default=timezone.now)
    meaning = models.CharField(_("meaning"), max_length=40)
    object_type = models.CharField(max_length=60)
    object_id = models.CharField(max_length=64)
    object_label = models.CharField(max_length=200, blank=True)
    reason = models.TextField(_("comment"), blank=True)
    digest = models.CharField(max_length=64, editable=False)

    class Meta:
        verbose_name = _("electronic signature")
        verbose_name_plural = _("electronic signatures")
        indexes = [models.Index(fields=["object_type", "object_id"], name="signature_object")]

    def __str__(self) -> str:
        return f"{self.user} {self.meaning} {self.object_label} {self.signed_at:%Y-%m-%d %H:%M}"


class IdempotentRequest(models.Model):
    """An API POST sent with an `Idempotency-Key` header and the answer it got (core.idempotency): the same request
    sent again with the same key — a client retrying after a time-out — gets that answer again instead of creating
    a second ticket, case or order. Kept IDEMPOTENCY_HOURS; the answer is encrypted, as it may name a patient."""

    scope = models.CharField(max_length=64, unique=True)  # HMAC of who sent it (user or token) and the key
    fingerprint = models.CharField(max_length=64)  # SHA-256 of the method, path, content type and body
    done = models.BooleanField(default=False)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    content_type = models.CharField(max_length=200, blank=True)
    body = EncryptedTextField()
    # the answer showed personal data in clear (the first request audited a read): a replay is audited as one too
    personal = models.BooleanField(default=False)
    request_id = models.CharField(max_length=64, blank=True)  # the first request's, to find its audit entries
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        verbose_name = _("idempotent API request")
        verbose_name_plural = _("idempotent API requests")

    def __str__(self) -> str:
        return f"{self.scope[:12]}… {self.status_code or '…'}"
