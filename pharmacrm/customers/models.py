"""Customer master data (客户主数据): institutions, people, consents, tags, the search index, merges."""

from __future__ import annotations

from collections.abc import Iterator

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from pharmacrm.core import crypto
from pharmacrm.core.fields import CodeCharField, EncryptedDateField, EncryptedTextField
from pharmacrm.core.models import Region, Team

from . import normalise, readings
from .choices import (
    Channel,
    ConsentPurpose,
    ConsentStatus,
    Gender,
    HospitalGrade,
    InstitutionType,
    PersonRole,
    PreferredLanguage,
    Source,
    Stage,
    Tier,
)


class Tag(models.Model):
    name = models.CharField(_("name"), max_length=50, unique=True)

    class Meta:
        verbose_name = _("tag")
        verbose_name_plural = _("tags")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


def region_columns(region_id) -> tuple[str, str]:
    """(province, city) codes of a GB/T 2260 region code — the equality columns that lists, filters and the
    access scope use, so that "in this province" is an index look-up that also serves the sort order.
    The levels follow the code's shape, as Region.code_range does: ``xx0000`` is a province, ``xxxx00`` a
    city, anything else a district."""
    if not region_id:
        return "", ""
    code = str(region_id)
    return code[:2] + "0000", ("" if code.endswith("0000") else code[:4] + "00")


INSTITUTION_REGION = object()  # Person.refresh_derived: "read it from the institution"
# the normalised names' columns, as long as the names: a name that grows under NFKC (㍿ is 株式会社) is compared by
# its first characters, not refused by PostgreSQL with a server error (found by QA)
NAME_NORM_LENGTH = 200
PERSON_NAME_NORM_LENGTH = 50


ACTIVE = models.Q(merged_into__isnull=True)  # lists show active (not merged) records only
LIST_FILTER_COLUMNS = ("stage", "tier", "role")


class CustomerQuerySet(models.QuerySet):
    def active(self):
        return self.filter(merged_into__isnull=True)


class Customer(models.Model):
    """What every customer carries, institution or person."""

    code = models.CharField(_("internal code"), max_length=32, unique=True, editable=False)
    external_id = models.CharField(_("external id"), max_length=64, unique=True, null=True, blank=True)
    tier = models.CharField(_("tier"), max_length=12, choices=Tier.choices, default=Tier.NEW)
    stage = models.CharField(_("lifecycle stage"), max_length=12, choices=Stage.choices, default=Stage.POTENTIAL)
    # indexed by the partial indexes in each model's Meta (most customers have no owner or team: a plain
    # index's statistics then tell SQLite's planner that `owner_id = ?` matches most of the table)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("owner"),
        db_index=False,
    )
    team = models.ForeignKey(
        Team, models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("team"), db_index=False
    )
    source = models.CharField(_("information source"), max_length=16, choices=Source.choices, blank=True)
    needs = models.TextField(_("needs"), blank=True)
    notes = models.TextField(_("notes"), blank=True)
    tags = models.ManyToManyField(Tag, blank=True, related_name="+", verbose_name=_("tags"))
    merged_into = models.ForeignKey(
        "self", models.SET_NULL, null=True, blank=True, related_name="merged_from", verbose_name=_("merged into")
    )
    # derived from the region (a person's: their institution's) by refresh_derived and the services
    province = models.CharField(max_length=6, blank=True, default="", editable=False)
    city = models.CharField(max_length=6, blank=True, default="", editable=False)
    version = models.PositiveIntegerField(default=1, editable=False)  # optimistic locking
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated"), default=timezone.now, editable=False)

    objects = CustomerQuerySet.as_manager()

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return self.name


def with_departments(institution_id: int) -> list[int]:
    """The institution's id and its departments' (at any depth): what a hospital's Customer 360 page covers
    when it lists the tickets and interactions of the hospital."""
    ids, frontier = [institution_id], [institution_id]
    while frontier and len(ids) < 10_000:
        frontier = list(Institution.objects.filter(parent_id__in=frontier).exclude(pk__in=ids).values_list("pk", flat=True))
        ids += frontier
    return ids


class Institution(Customer):
    """A hospital, department, clinic, pharmacy, distributor, insurance bureau … (机构)."""

    CODE_PREFIX = "I"

    name = models.CharField(_("name"), max_length=200)
    name_norm = models.CharField(max_length=NAME_NORM_LENGTH, editable=False)
    name_key = CodeCharField(max_length=readings.NAME_KEY_LENGTH, editable=False, default="")  # pinyin order
    short_name = models.CharField(_("short name"), max_length=60, blank=True)
    kind = models.CharField(_("type"), max_length=16, choices=InstitutionType.choices)  # index inst_kind_updated
    grade = models.CharField(_("hospital grade"), max_length=8, choices=HospitalGrade.choices, blank=True)
    specialties = models.JSONField(_("specialties"), default=list, blank=True)
    beds = models.PositiveIntegerField(_("beds"), null=True, blank=True)
    parent = models.ForeignKey(
        "self", models.PROTECT, null=True, blank=True, related_name="children", verbose_name=_("parent institution")
    )
    region = models.ForeignKey(
        Region, models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("region"), db_index=False
    )  # index inst_region_name (region, name_norm)
    credit_code = models.CharField(_("unified social credit code"), max_length=18, unique=True, null=True, blank=True)
    legal_representative = models.CharField(_("legal representative"), max_length=50, blank=True)
    address = models.CharField(_("address"), max_length=255, blank=True)
    phone = models.CharField(_("phone"), max_length=32, blank=True)
    phone_norm = models.CharField(max_length=32, blank=True, editable=False, db_index=True)

    class Meta:
        verbose_name = _("institution")
        verbose_name_plural = _("institutions")
        ordering = ["name_key", "id"]
        indexes = [
            models.Index(fields=["name_key", "id"], name="inst_name"),
            models.Index(fields=["region", "name_norm"], name="inst_region_name"),
            models.Index(fields=["stage"], name="inst_stage"),
            models.Index(fields=["updated_at", "id"], name="inst_updated"),
            models.Index(fields=["kind", "updated_at", "id"], name="inst_kind_updated"),
            models.Index(fields=["province", "updated_at", "id"], name="inst_province_updated"),
            models.Index(fields=["city", "updated_at", "id"], name="inst_city_updated"),
            models.Index(fields=["tier", "updated_at", "id"], name="inst_tier_updated"),
            models.Index(fields=["owner"], condition=models.Q(owner__isnull=False), name="inst_owner"),
            models.Index(fields=["team"], condition=models.Q(team__isnull=False), name="inst_team"),
        ]

    def refresh_derived(self) -> None:
        """Recompute the normalised columns from the editable ones."""
        self.name_norm = normalise.name(self.name)[:NAME_NORM_LENGTH]
        self.name_key = readings.name_key(self.name)
        self.phone_norm = normalise.phone(self.phone)
        self.province, self.city = region_columns(self.region_id)

    @property
    def is_department(self) -> bool:
        return self.kind == InstitutionType.DEPARTMENT

    def lineage(self) -> Iterator[Institution]:
        """The institution, its parent, the parent's parent … each once: stored data holding a loop (two
        institutions each under the other, as an import once wrote them) ends the walk instead of running it for
        ever, a query per step."""
        node, seen = self, set()
        while node is not None and node.pk not in seen:
            seen.add(node.pk)
            yield node
            node = node.parent


class Person(Customer):
    """A doctor, pharmacist, purchasing officer … (客户联系人); contact details are encrypted."""

    CODE_PREFIX = "P"
    PERSONAL_FIELDS = ("mobile", "landline", "email", "birthday", "home_address", "id_number")
    # encrypted text has no length of its own: the forms, the API and the import all hold a home address to this
    # (an institution's address's 255), counted as it is stored, and refuse a longer one rather than cut it
    HOME_ADDRESS_MAX_LENGTH = 255

    name = models.CharField(pgettext_lazy("person", "name"), max_length=50)
    name_norm = models.CharField(max_length=PERSON_NAME_NORM_LENGTH, editable=False)
    name_key = CodeCharField(max_length=readings.NAME_KEY_LENGTH, editable=False, default="")  # pinyin order
    gender = models.CharField(_("gender"), max_length=1, choices=Gender.choices, blank=True)
    role = models.CharField(_("role"), max_length=16, choices=PersonRole.choices, default=PersonRole.DOCTOR)
    title = models.CharField(_("title"), max_length=50, blank=True)
    # the service desk writes to the person in it (acknowledgements, survey mails); blank: as their mail is written,
    # else the site's default (zh-Hans). A mail's own Content-Language still wins for the answer to that mail.
    preferred_language = models.CharField(
        _("preferred language"), max_length=8, choices=PreferredLanguage.choices, blank=True, default=""
    )
    institution = models.ForeignKey(
        Institution, models.PROTECT, null=True, blank=True, related_name="people", verbose_name=_("institution")
    )
    department = models.ForeignKey(
        Institution, models.SET_NULL, null=True, blank=True, related_name="department_people",
        verbose_name=_("department"),
    )
    mobile = EncryptedTextField(_("mobile phone"))
    mobile_bidx = models.CharField(max_length=32, blank=True, editable=False, db_index=True)
    landline = EncryptedTextField(_("landline"))
    landline_bidx = models.CharField(max_length=32, blank=True, editable=False, db_index=True)
    email = EncryptedTextField(_("e-mail"))
    email_bidx = models.CharField(max_length=32, blank=True, editable=False, db_index=True)
    birthday = EncryptedDateField(_("birthday"), null=True)
    home_address = EncryptedTextField(_("home address"))
    id_number = EncryptedTextField(_("ID card number"))
    id_number_bidx = models.CharField(max_length=32, blank=True, editable=False, db_index=True)
    # the institution's region, kept here (with province and city) so that filters and the access scope
    # are indexed look-ups on this table instead of a join per row; services keep it in step
    region = models.ForeignKey(
        Region, models.SET_NULL, null=True, blank=True, related_name="+", editable=False, db_index=False
    )

    class Meta:
        verbose_name = _("person")
        verbose_name_plural = _("people")
        ordering = ["name_key", "id"]
        indexes = [
            models.Index(fields=["name_key", "id"], name="person_name"),
            models.Index(fields=["institution", "name_norm"], name="person_inst_name"),
            models.Index(fields=["updated_at", "id"], name="person_updated"),
            # a rep's territory walked in list order: the usual filters ride along in the index, and only
            # active records are in it, so a filtered page is read from the index alone (no row look-ups)
            models.Index(
                fields=["province", "updated_at", "id", *LIST_FILTER_COLUMNS], condition=ACTIVE,
                name="person_province_updated",
            ),
            models.Index(
                fields=["province", "name_key", "id", *LIST_FILTER_COLUMNS], condition=ACTIVE, name="person_province_name"
            ),
            models.Index(
                fields=["city", "updated_at", "id", *LIST_FILTER_COLUMNS], condition=ACTIVE, name="person_city_updated"
            ),
            # the whole country's lists by one filter (an agent's): active records only, so that counting a
            # page's 10,001 matches reads the index alone (a stage's 50,000 people: 95 → 3 ms on PostgreSQL)
            models.Index(fields=["tier", "updated_at", "id"], condition=ACTIVE, name="person_tier_updated"),
            models.Index(fields=["stage", "name_key", "id"], condition=ACTIVE, name="person_stage_name"),
            models.Index(fields=["role", "updated_at", "id"], condition=ACTIVE, name="person_role_updated"),
            models.Index(fields=["owner"], condition=models.Q(owner__isnull=False), name="person_owner"),
            models.Index(fields=["team"], condition=models.Q(team__isnull=False), name="person_team"),
        ]

    def refresh_derived(self, region_id=INSTITUTION_REGION) -> None:
        """Normalised name, blind indexes, and the institution's region (which bulk writers that already
        know it pass in, instead of a look-up per row)."""
        self.name_norm = normalise.name(self.name)[:PERSON_NAME_NORM_LENGTH]
        self.name_key = readings.name_key(self.name, person=True)
        if region_id is INSTITUTION_REGION:
            region_id = self.institution.region_id if self.institution_id else None
        self.region_id = region_id or None
        self.province, self.city = region_columns(region_id)
        self.mobile_bidx = crypto.blind_index(normalise.phone(self.mobile), "phone")
        self.landline_bidx = crypto.blind_index(normalise.phone(self.landline), "phone")
        self.email_bidx = crypto.blind_index(normalise.email(self.email), "email")
        # (the seed's light stand-ins carry no ID number)
        self.id_number_bidx = crypto.blind_index(normalise.credit_code(getattr(self, "id_number", "") or ""), "id_number")


class Consent(models.Model):
    """A person's consent (同意) to a purpose through a channel, given or withdrawn, with evidence."""

    person = models.ForeignKey(Person, models.CASCADE, related_name="consents", verbose_name=_("person"))
    purpose = models.CharField(_("purpose"), max_length=20, choices=ConsentPurpose.choices)
    channel = models.CharField(_("channel"), max_length=12, choices=Channel.choices)
    status = models.CharField(_("status"), max_length=10, choices=ConsentStatus.choices)
    at = models.DateTimeField(_("when"), default=timezone.now)
    evidence = models.TextField(_("evidence"), blank=True)
    # text has no length of its own: the form and the API hold the evidence to this, and refuse a longer one
    EVIDENCE_MAX_LENGTH = 5000
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("recorded by"),
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("consent")
        verbose_name_plural = _("consents")
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["person", "purpose", "-at"], name="consent_latest")]

    def __str__(self) -> str:
        return f"{self.get_purpose_display()} · {self.get_status_display()}"

    @property
    def audit_name(self) -> tuple[str, str, str]:
        """What its audit entries name it by: its purpose's and status's codes (surveys · given), which the audit page
        shows in its reader's language (crm.AUDIT_NAMED_BY_CODES) — str() reads in the actor's language."""
        return self._meta.label_lower, str(self.pk), f"{self.purpose} · {self.status}"


class SearchTerm(models.Model):
    """The search index: n-grams and pinyin keys of customer names, one row per (term, customer).

    `term` starts with a namespace letter: `C` a CJK bigram/unigram at the name's start, `c` one
    inside it, `L` pinyin (full or initials) from the start, `l` pinyin from inside the name.

    `province` is the customer's province as its two-digit GB/T 2260 prefix (33 for 浙江, 0 for none), kept
    in step with the customer's region: a rep's search reads the postings of their territory only, from
    the index itself, instead of ranking a thousand customers of the whole country to keep thirty.
    """

    class Kind(models.IntegerChoices):
        INSTITUTION = 1, _("institution")
        PERSON = 2, _("person")

    term = models.CharField(max_length=64)
    kind = models.PositiveSmallIntegerField(choices=Kind.choices)
    obj_id = models.BigIntegerField()
    province = models.SmallIntegerField(db_default=0)

    class Meta:
        indexes = [
            # province last: one term's postings stay in obj_id order, and the territory test reads the index
            models.Index(fields=["term", "kind", "obj_id", "province"], name="search_term"),
            # obj_id first: a bare `kind = ?` must never be answered from this index (SQLite picked it for
            # pinyin range scans without statistics and read every row of the kind)
            models.Index(fields=["obj_id", "kind"], name="search_obj"),
        ]

    def __str__(self) -> str:
        return f"{self.term} → {self.kind}:{self.obj_id}"


class MergeRecord(models.Model):
    """A merge of a duplicate into a survivor: what moved, and the merged record as it was."""

    kind = models.PositiveSmallIntegerField(choices=SearchTerm.Kind.choices)
    survivor_id = models.BigIntegerField()
    merged_id = models.BigIntegerField()
    snapshot = models.JSONField(default=dict)
    moved = models.JSONField(default=dict)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, related_name="+")
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("merge")
        verbose_name_plural = _("merges")
        indexes = [models.Index(fields=["kind", "survivor_id"], name="merge_survivor")]

    def __str__(self) -> str:
        return f"{self.merged_id} → {self.survivor_id}"


class DistinctPair(models.Model):
    """Two records a user confirmed are different customers (two doctors both called 刘倩 at one hospital): the
    duplicate list and each record's "likely duplicates" no longer pair them. Ids in ascending order."""

    kind = models.PositiveSmallIntegerField(choices=SearchTerm.Kind.choices)
    low_id = models.BigIntegerField()
    high_id = models.BigIntegerField()
    by = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, related_name="+")
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("pair of different customers")
        verbose_name_plural = _("pairs of different customers")
        constraints = [models.UniqueConstraint(fields=["kind", "low_id", "high_id"], name="distinct_pair")]
        indexes = [models.Index(fields=["kind", "high_id"], name="distinct_pair_high")]

    def __str__(self) -> str:
        return f"{self.low_id} ≠ {self.high_id}"


class ImportJob(models.Model):
    """One upload being checked or imported by the worker, with its progress and row errors."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting")
        RUNNING = "running", _("Running")
        PREVIEWED = "previewed", _("Checked (dry run)")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")
        REJECTED = "rejected", _("Rejected: nothing imported")
        CANCELLED = "cancelled", _("Cancelled after the check: nothing imported")

    class Mode(models.TextChoices):
        ALL_OR_NOTHING = "all", _("All or nothing")
        GOOD_ROWS = "good", _("Import the good rows only")

    class Target(models.TextChoices):
        INSTITUTIONS = "institutions", _("Institutions")
        PEOPLE = "people", _("People")
        ORDERS = "orders", _("Orders and payments")

    target = models.CharField(_("what"), max_length=16, choices=Target.choices)
    mode = models.CharField(_("mode"), max_length=8, choices=Mode.choices, default=Mode.ALL_OR_NOTHING)
    dry_run = models.BooleanField(_("dry run"), default=True)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    file_name = models.CharField(_("file name"), max_length=255)
    file_path = models.CharField(max_length=500)
    file_sha256 = models.CharField(max_length=64)
    file_size = models.BigIntegerField(default=0)
    total_rows = models.PositiveIntegerField(default=0)
    processed_rows = models.PositiveIntegerField(default=0)
    created_count = models.PositiveIntegerField(default=0)
    updated_count = models.PositiveIntegerField(default=0)
    unchanged_count = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)  # [{row, column, code, params}] (first 1000)
    preview = models.JSONField(default=list, blank=True)
    message = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # a running job beats (per chunk, with the counts saved so far); one whose beat stops is marked interrupted
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    last_row = models.PositiveIntegerField(default=0)  # the file row through which rows were handled and saved
    # and its sheet, when the import went on in a workbook's further sheets (the rows of the sheets before it are done)
    last_sheet = models.CharField(max_length=31, blank=True, default="")
    unkeyed_count = models.PositiveIntegerField(default=0)  # rows created that a re-import could not recognise

    class Meta:
        verbose_name = _("import")
        verbose_name_plural = _("imports")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.get_target_display()} · {self.file_name}"

    @property
    def audit_name(self) -> tuple[str, str, str]:
        """What its audit entries name it by: its file's name, as uploaded. str() starts with what was imported in the
        actor's language (People · p.csv); the audit page names a job by its current name, in its reader's language."""
        return self._meta.label_lower, str(self.pk), self.file_name

    @property
    def percent(self) -> int:
        return int(100 * self.processed_rows / self.total_rows) if self.total_rows else 0
