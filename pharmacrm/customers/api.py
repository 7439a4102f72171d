"""Customer REST endpoints: institutions, people, consents, regions, search, import and export.

Reads go through the access module's scoped querysets; every write goes through services."""

from __future__ import annotations

import re

import django_filters
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.http import Http404
from django.utils.translation import gettext as _
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import mixins, parsers, permissions, serializers, status
from rest_framework.response import Response

from pharmacrm.core import access, viewsets
from pharmacrm.core.api_utils import (
    MAX_INT32,
    Conflict,
    DateField,
    DateTimeFilter,
    HasCapability,
    IntegerFilter,
    ModelSerializer,
    QuerySerializer,
    RegionCodeField,
    SafeDateTimeField,
    Serializer,
    StableOrdering,
    TypedIntegerField,
    clean_text,
    expected_version,
    versioned,
)
from pharmacrm.core.models import Region, Team, User
from pharmacrm.core.numbers import typed_code
from pharmacrm.core.personal import FREE_TEXT_FIELDS, contact_view, free_text, masks_free_text
from pharmacrm.core.roles import Cap
from pharmacrm.core.viewsets import APIView

from . import normalise, search, services
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
from .forms import picker_label
from .models import Consent, ImportJob, Institution, Person

MAX_ID = 2**63 - 1
CUSTOMER_CAPS = {
    "create": Cap.CHANGE_CUSTOMERS,
    "update": Cap.CHANGE_CUSTOMERS,
    "partial_update": Cap.CHANGE_CUSTOMERS,
    "destroy": Cap.DELETE_CUSTOMERS,
    "*": Cap.VIEW_CUSTOMERS,
}

# --- fields ------------------------------------------------------------------------------------


class VisibleInstitutionField(serializers.PrimaryKeyRelatedField):
    """An institution id, accepted only if the requesting user may see that institution, or if it is the one the
    record being changed already has (as the edit form keeps it): a rep's own doctor at a hospital outside the
    territory, sent back as read, was refused for the hospital the API itself had given."""

    def scoped(self, user):
        return access.institutions_for(user)

    def get_queryset(self):
        qs = self.scoped(self.context["request"].user)
        instance = getattr(self.parent, "instance", None)
        current = getattr(instance, f"{self.source}_id", None) if isinstance(instance, Institution | Person) else None
        if current is not None:
            qs = Institution.objects.filter(Q(pk__in=qs.values("pk")) | Q(pk=current))
        return qs


class WorkplaceField(VisibleInstitutionField):
    """A person's institution: one the user may see, the hospital of a department they may see (a rep's own department
    of a hospital outside the territory; the person then goes in that department), or the one the person already has."""

    def scoped(self, user):
        return access.workplaces_for(user)


class OwnerField(serializers.PrimaryKeyRelatedField):
    """An active user, or the owner the record being changed already has: a record of a departed (deactivated) rep,
    sent back as read, was refused with "object does not exist" for the owner the API itself had given."""

    def get_queryset(self):
        instance = getattr(self.parent, "instance", None)
        current = instance.owner_id if isinstance(instance, Institution | Person) else None
        if current is not None:
            return User.objects.filter(Q(is_active=True) | Q(pk=current))
        return User.objects.filter(is_active=True)


class VisiblePersonField(serializers.PrimaryKeyRelatedField):
    def get_queryset(self):
        return access.people_for(self.context["request"].user)


class TagsField(serializers.ListField):
    """Tag names: a list of strings in and out (unknown names become new tags)."""

    # each at most 50 characters counted as stored (spaces collapsed): the services' check, in their words
    child = serializers.CharField()

    def to_representation(self, data):
        return [t.name for t in data.all()]


class CustomerSerializer(ModelSerializer):
    """Fields every customer has: code, tier, stage, owner, team, source, needs, notes, tags, version …"""

    code = serializers.CharField(read_only=True, help_text="Internal code, e.g. I00000123.")
    external_id = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, help_text="Id in another system; at most 64 characters."
    )
    tier = serializers.ChoiceField(
        choices=Tier.choices, required=False,
        help_text="\"key\" is set and cleared by the key-account programme only (listing, de-listing).",
    )  # fmt: skip
    stage = serializers.ChoiceField(choices=Stage.choices, required=False)
    owner = OwnerField(required=False, allow_null=True)
    owner_name = serializers.CharField(source="owner", read_only=True, allow_null=True)
    team = serializers.PrimaryKeyRelatedField(queryset=Team.objects.all(), required=False, allow_null=True)
    team_name = serializers.CharField(source="team.name", read_only=True, allow_null=True,
                                      help_text="The team's name as stored (in the product's language).")  # fmt: skip
    team_label = serializers.CharField(
        source="team.shown_name", read_only=True, allow_null=True,
        help_text="The team's name in the request's language (Accept-Language): a team the product named (a key "
        "account's service team) reads in it; `team_name` keeps it as stored, a team named by a user reads as typed.",
    )  # fmt: skip
    source = serializers.ChoiceField(choices=Source.choices, required=False, allow_blank=True)
    needs = serializers.CharField(required=False, allow_blank=True, max_length=5000)
    notes = serializers.CharField(required=False, allow_blank=True, max_length=20000)
    tags = TagsField(required=False, max_length=50)
    version = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_INT32,
        help_text="On update: the version you loaded (or send it as If-Match); a newer one answers 409.",
    )
    merged_into = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    def to_representation(self, instance):
        data = super().to_representation(instance)
        # contact details typed into the free text are masked for a role that sees personal data masked: a person's
        # as their contact data are (clear after a reveal), an institution's for the role
        contact = data.get("contact")
        if isinstance(contact, dict):
            masked = contact.get("masked", True)
        else:
            if "_free_text_masked" not in self.context:
                request = self.context.get("request")
                self.context["_free_text_masked"] = request is None or masks_free_text(request.user)
            masked = self.context["_free_text_masked"]
        for name in FREE_TEXT_FIELDS:
            if name in data:
                data[name] = free_text(data[name], masked)
        return data

    def validate_tags(self, value):
        clean = services.clean_institution if isinstance(self, InstitutionSerializer) else services.clean_person
        return _checked(clean, "tags", value, self.instance)

    def validate_tier(self, value):
        """"key" is granted and withdrawn by the key-account programme only (its listing and de-listing):
        not set on a customer without an active key-account file, nor taken from one that has it."""
        from pharmacrm.keyaccounts.services import tier_change_error

        error = tier_change_error(self.instance, value)
        if error:
            raise serializers.ValidationError(error, code="key_tier")
        return value


def _checked(clean, field: str, value, instance=None):
    """The service's own rule for one field (clean_institution / clean_person), run as a field validator: a
    client gets every field's error in one answer instead of the service's only after the field checks
    passed. The service checks everything again when saving, with the rules that join several fields."""
    errors = services.field_errors(clean, field, value, instance)
    if errors:
        raise ValidationError(errors)
    return value


class InstitutionSerializer(CustomerSerializer):
    # the free-text fields: at most their column's length counted as stored (spaces collapsed), checked by the
    # services (validate_* below) in the words the import and the forms use; DRF's max_length counted them as sent
    name = serializers.CharField(help_text="At most 200 characters, counted as stored (spaces collapsed).")
    short_name = serializers.CharField(
        required=False, allow_blank=True, help_text="At most 60 characters, counted as stored (spaces collapsed)."
    )
    kind = serializers.ChoiceField(choices=InstitutionType.choices)
    grade = serializers.ChoiceField(choices=HospitalGrade.choices, required=False, allow_blank=True)
    specialties = serializers.ListField(
        child=serializers.CharField(max_length=50), required=False, max_length=50
    )
    beds = TypedIntegerField(required=False, allow_null=True, min_value=0, max_value=100000)
    parent = VisibleInstitutionField(required=False, allow_null=True)
    parent_name = serializers.CharField(source="parent.name", read_only=True, allow_null=True)
    region = RegionCodeField(
        queryset=Region.objects.all(), required=False, allow_null=True,
        help_text="GB/T 2260 code of the province, city or district.",
    )  # fmt: skip
    region_name = serializers.CharField(source="region.full_name", read_only=True, allow_null=True)
    credit_code = serializers.CharField(
        max_length=32,
        required=False,
        allow_null=True,
        allow_blank=True,
        help_text="统一社会信用代码 (18 characters).",
    )
    legal_representative = serializers.CharField(
        required=False, allow_blank=True, help_text="At most 50 characters, counted as stored (spaces collapsed)."
    )
    address = serializers.CharField(
        required=False, allow_blank=True, help_text="At most 255 characters, counted as stored (spaces collapsed)."
    )
    phone = serializers.CharField(max_length=32, required=False, allow_blank=True)

    class Meta:
        model = Institution
        fields = [
            "id", "code", "name", "short_name", "kind", "grade", "specialties", "beds", "parent", "parent_name",
            "region", "region_name", "credit_code", "legal_representative", "address", "phone", "external_id",
            "tier", "stage", "owner", "owner_name", "team", "team_name", "team_label", "source", "needs", "notes", "tags",
            "version", "merged_into", "created_at", "updated_at",
        ]  # fmt: skip

    def validate_name(self, value):
        return _checked(services.clean_institution, "name", value, self.instance)

    def validate_credit_code(self, value):
        return _checked(services.clean_institution, "credit_code", value, self.instance)

    def validate_phone(self, value):
        return _checked(services.clean_institution, "phone", value, self.instance)

    def validate_address(self, value):
        return _checked(services.clean_institution, "address", value, self.instance)

    def validate_short_name(self, value):
        return _checked(services.clean_institution, "short_name", value, self.instance)

    def validate_legal_representative(self, value):
        return _checked(services.clean_institution, "legal_representative", value, self.instance)

    def validate_external_id(self, value):
        return _checked(services.clean_institution, "external_id", value, self.instance)


class ContactSerializer(Serializer):
    """Personal data as this user may see it: masked unless the role may see it (or revealed it)."""

    mobile = serializers.CharField()
    landline = serializers.CharField()
    email = serializers.CharField()
    birthday = serializers.CharField(help_text="YYYY-MM-DD, or ****-MM-DD when masked.")
    home_address = serializers.CharField()
    id_number = serializers.CharField()
    masked = serializers.BooleanField()


class LanguageField(serializers.ChoiceField):
    """A language code; written as a language tag is (zh-Hans, EN) it is taken as the code."""

    def to_internal_value(self, data):
        return super().to_internal_value(data.strip().lower() if isinstance(data, str) else data)


class BirthdayField(DateField):
    """A birthday; "" (or only spaces) is no birthday, as an empty date on the person form is: a client sending its
    empty form field was refused with "Date has wrong format", and had to know to send null instead."""

    def validate_empty_values(self, data):
        if isinstance(data, str) and not data.strip():
            data = None
        return super().validate_empty_values(data)


class PersonSerializer(CustomerSerializer):
    name = serializers.CharField(help_text="At most 50 characters, counted as stored (spaces collapsed).")
    gender = serializers.ChoiceField(choices=Gender.choices, required=False, allow_blank=True)
    preferred_language = LanguageField(
        choices=PreferredLanguage.choices, required=False, allow_blank=True,
        help_text="The language the service desk writes to the person in (acknowledgements, survey mails): zh-hans, "
        "en or zh-hant; empty: as their mail is written, else the site's default. A mail's own Content-Language "
        "still wins for the answer to that mail.",
    )  # fmt: skip
    role = serializers.ChoiceField(choices=PersonRole.choices, required=False)
    title = serializers.CharField(
        required=False, allow_blank=True, help_text="At most 50 characters, counted as stored (spaces collapsed)."
    )
    institution = WorkplaceField(required=False, allow_null=True)
    institution_name = serializers.CharField(source="institution.name", read_only=True, allow_null=True)
    department = VisibleInstitutionField(required=False, allow_null=True)
    department_name = serializers.CharField(source="department.name", read_only=True, allow_null=True)
    # personal data is written here and read back through `contact` (masked or plain, audited)
    mobile = serializers.CharField(max_length=32, required=False, allow_blank=True, write_only=True)
    landline = serializers.CharField(max_length=32, required=False, allow_blank=True, write_only=True)
    email = serializers.CharField(max_length=254, required=False, allow_blank=True, write_only=True)
    birthday = BirthdayField(
        required=False, allow_null=True, write_only=True,
        help_text="YYYY-MM-DD; null or \"\" for none (on an update: removes the one stored).",
    )
    home_address = serializers.CharField(
        required=False, allow_blank=True, write_only=True, help_text="At most 255 characters."
    )
    id_number = serializers.CharField(max_length=32, required=False, allow_blank=True, write_only=True)
    contact = serializers.SerializerMethodField()

    class Meta:
        model = Person
        fields = [
            "id", "code", "name", "gender", "preferred_language", "role", "title", "institution", "institution_name", "department",
            "department_name", "mobile", "landline", "email", "birthday", "home_address", "id_number", "contact",
            "external_id", "tier", "stage", "owner", "owner_name", "team", "team_name", "team_label", "source", "needs", "notes",
            "tags", "version", "merged_into", "created_at", "updated_at",
        ]  # fmt: skip

    def validate_name(self, value):
        return _checked(services.clean_person, "name", value, self.instance)

    def validate_mobile(self, value):
        return _checked(services.clean_person, "mobile", value, self.instance)

    def validate_landline(self, value):
        return _checked(services.clean_person, "landline", value, self.instance)

    def validate_email(self, value):
        return _checked(services.clean_person, "email", value, self.instance)

    def validate_birthday(self, value):
        return _checked(services.clean_person, "birthday", value, self.instance)

    def validate_id_number(self, value):
        return _checked(services.clean_person, "id_number", value, self.instance)

    def validate_home_address(self, value):
        return _checked(services.clean_person, "home_address", value, self.instance)

    def validate_title(self, value):
        return _checked(services.clean_person, "title", value, self.instance)

    def validate_external_id(self, value):
        return _checked(services.clean_person, "external_id", value, self.instance)

    @extend_schema_field(ContactSerializer)
    def get_contact(self, obj: Person) -> dict:
        contacts = self.context.get("contacts")
        if contacts is None or obj.pk not in contacts:
            request = self.context["request"]
            contacts = contact_view(request.user, [obj], purpose="api")
        row = dict(contacts[obj.pk])
        row["masked"] = row.pop("_masked")
        row.pop("_texts", None)  # shown in `needs` and `notes`, masked as these values are
        return row


# --- filters -----------------------------------------------------------------------------------


class TypedRegionChoiceField(django_filters.fields.ModelChoiceField):
    """A region by its code as typed: full-width digits (１１０１０１) are the ASCII ones, spaces are left out (they
    were refused as no such region). Anything but digits is refused without asking the database."""

    def to_python(self, value):
        code = typed_code(value) if value not in self.empty_values else value
        if code not in self.empty_values and not re.fullmatch(r"[0-9]{1,12}", code):
            raise ValidationError(self.error_messages["invalid_choice"], code="invalid_choice")
        return super().to_python(code)


@extend_schema_field(OpenApiTypes.STR)
class RegionCodeFilter(django_filters.ModelChoiceFilter):
    """A region by its code (as typed: TypedRegionChoiceField); the filter method widens it to everything inside
    the region."""

    field_class = TypedRegionChoiceField


class CustomerFilter(django_filters.FilterSet):
    tier = django_filters.ChoiceFilter(choices=Tier.choices)
    stage = django_filters.ChoiceFilter(choices=Stage.choices)
    owner = django_filters.ModelChoiceFilter(queryset=User.objects.all())
    team = django_filters.ModelChoiceFilter(queryset=Team.objects.all())
    tags = django_filters.CharFilter(method="filter_tags", label="Tag names, comma-separated (any of them).")
    updated_since = DateTimeFilter(field_name="updated_at", lookup_expr="gte")
    external_id = django_filters.CharFilter()
    region = RegionCodeFilter(
        queryset=Region.objects.all(), to_field_name="code", method="filter_region",
        label="Region code: a province, city or district and everything inside it.",
    )  # fmt: skip


    def filter_tags(self, qs, name, value):
        names = [n.strip() for n in value.replace("，", ",").split(",") if n.strip()]
        return qs.filter(services.tag_q(names)).distinct() if names else qs

    def filter_region(self, qs, name, region):
        return qs.filter(access.region_q(region.code)) if region else qs


class InstitutionFilter(CustomerFilter):
    kind = django_filters.ChoiceFilter(choices=InstitutionType.choices)
    grade = django_filters.ChoiceFilter(choices=HospitalGrade.choices)
    parent = IntegerFilter(field_name="parent_id", min_value=1, max_value=MAX_ID)
    credit_code = django_filters.CharFilter(method="filter_credit_code")

    class Meta:
        model = Institution
        fields: list[str] = []

    def filter_credit_code(self, qs, name, value):
        return qs.filter(credit_code=normalise.credit_code(value))


class PersonFilter(CustomerFilter):
    role = django_filters.ChoiceFilter(choices=PersonRole.choices)
    institution = IntegerFilter(field_name="institution_id", min_value=1, max_value=MAX_ID)
    department = IntegerFilter(field_name="department_id", min_value=1, max_value=MAX_ID)


    class Meta:
        model = Person
        fields: list[str] = []


# --- institutions and people -------------------------------------------------------------------


class PinyinOrdering(StableOrdering):
    """`ordering=name` (or `-name`) sorts names in pinyin order, as the pages do (the `name_key` column). Records
    that tie on the fields asked for (every `new` customer for `ordering=tier`) follow in id order (StableOrdering)."""

    def get_ordering(self, request, queryset, view):
        ordering = super().get_ordering(request, queryset, view)
        return [{"name": "name_key", "-name": "-name_key"}.get(f, f) for f in ordering or []] or ordering


class CustomerViewSet(viewsets.ModelViewSet):
    """What institutions and people share: scoping, versioned updates, deletes through services."""

    permission_classes = [HasCapability]
    required_caps = CUSTOMER_CAPS
    filter_backends = [DjangoFilterBackend, PinyinOrdering]
    ordering_fields = ["id", "name", "code", "tier", "stage", "created_at", "updated_at"]
    ordering = ["id"]  # stable pages over a growing table, cheap on the primary key
    lookup_value_regex = r"[0-9]{1,18}"

    def scoped(self, user):
        raise NotImplementedError

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no user to scope by
            return self.queryset
        qs = self.scoped(self.request.user)
        if self.action == "list":
            qs = qs.filter(merged_into__isnull=True)  # merged duplicates stay reachable by id
        return qs

    def retrieve(self, request, *args, **kwargs):
        obj = self.get_object()
        return versioned(Response(self.get_serializer(obj).data), obj)

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        data.pop("version", None)
        obj = self.create_service(request.user, data)
        return versioned(Response(self.get_serializer(obj).data, status=status.HTTP_201_CREATED), obj)

    def update(self, request, *args, **kwargs):
        obj = self.get_object()
        serializer = self.get_serializer(obj, data=request.data, partial=kwargs.get("partial", False))
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        version = expected_version(request, data.pop("version", None))
        obj = self.update_service(request.user, obj, data, version=version)
        return versioned(Response(self.get_serializer(obj).data), obj)

    def destroy(self, request, *args, **kwargs):
        obj = self.get_object()
        # If-Match (the ETag of the GET): a record someone changed after the caller loaded it is not deleted (409),
        # as a change based on it would not be saved — the caller decided on what it no longer holds
        version = expected_version(request, None) if request.headers.get("If-Match") else None
        try:
            services.delete_customer(request.user, obj, version=version)
        except ValidationError as e:
            # blocked by dependent records: a state conflict, not a malformed request
            raise Conflict(" ".join(e.messages)) from None
        return Response(status=status.HTTP_204_NO_CONTENT)


class InstitutionViewSet(CustomerViewSet):
    """Institutions (机构): hospitals, departments, clinics, pharmacies, distributors …"""

    queryset = Institution.objects.none()  # the real one is scoped per user: see scoped()
    serializer_class = InstitutionSerializer
    filterset_class = InstitutionFilter
    create_service = staticmethod(services.create_institution)
    update_service = staticmethod(services.update_institution)

    def scoped(self, user):
        base = Institution.objects.select_related("region", "parent", "owner", "team").prefetch_related(
            "tags"
        )
        return access.institutions_for(user, base)


class PersonViewSet(CustomerViewSet):
    """People (联系人): doctors, pharmacists, purchasing officers …; contact data masked by role."""

    queryset = Person.objects.none()
    serializer_class = PersonSerializer
    filterset_class = PersonFilter
    create_service = staticmethod(services.create_person)
    update_service = staticmethod(services.update_person)

    def scoped(self, user):
        base = Person.objects.select_related("institution", "department", "owner", "team").prefetch_related(
            "tags"
        )
        return access.people_for(user, base)

    def get_serializer_context(self):
        context = super().get_serializer_context()
        context["contacts"] = getattr(self, "_contacts", None)
        return context

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        # one contact_view call per page: one audit entry for all the clear values shown
        self._contacts = contact_view(request.user, page, purpose="api-list", texts=FREE_TEXT_FIELDS)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "reveal_reason",
                str,
                description=(
                    "Why you need to see this person's contact data (reveal roles): at least 2 characters, "
                    "not only digits and punctuation, at most 500 (400 otherwise)."
                ),
            )
        ]
    )
    def retrieve(self, request, *args, **kwargs):
        obj = self.get_object()
        reason = clean_text(request.query_params.get("reveal_reason", "")).strip()
        if reason:
            from .views import reveal_reason_error  # the reveal page's rule: one rule for both

            error = reveal_reason_error(reason)
            if error:
                raise serializers.ValidationError({"reveal_reason": [error]})
        self._contacts = contact_view(
            request.user, [obj], reveal_reason=reason, purpose="api", texts=FREE_TEXT_FIELDS
        )
        return versioned(Response(self.get_serializer(obj).data), obj)


# --- consents ----------------------------------------------------------------------------------


class ConsentSerializer(ModelSerializer):
    person = VisiblePersonField()
    purpose = serializers.ChoiceField(choices=ConsentPurpose.choices)
    channel = serializers.ChoiceField(choices=Channel.choices)
    status = serializers.ChoiceField(choices=ConsentStatus.choices)
    at = SafeDateTimeField(required=False, help_text="When it was given or withdrawn; default now.")
    evidence = serializers.CharField(required=False, allow_blank=True, help_text="At most 5000 characters.")
    recorded_by = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = Consent
        fields = [
            "id",
            "person",
            "purpose",
            "channel",
            "status",
            "at",
            "evidence",
            "recorded_by",
            "created_at",
        ]
        read_only_fields = ["created_at"]

    def validate_person(self, value):
        """A person merged away is refused under `person`, naming the one to record it on, as tickets and interactions
        refuse one: a 403 "may no longer be changed" read as a lack of rights (and was audited as access denied)."""
        errors = services.merged_choice_errors({"person": value}, keys=("person",))
        if errors:
            raise serializers.ValidationError(errors["person"], code="merged")
        return value

    def to_representation(self, instance):
        """As stored, except the evidence with the contact details typed in it masked for a reader who sees personal
        data masked, as on the person's page."""
        data = super().to_representation(instance)
        if "_free_text_masked" not in self.context:
            request = self.context.get("request")
            self.context["_free_text_masked"] = request is None or masks_free_text(request.user)
        data["evidence"] = free_text(data.get("evidence"), self.context["_free_text_masked"])
        return data

    def validate_evidence(self, value):
        """The web form's rule and words (normalise.check_length), with the other fields' errors."""
        return normalise.check_length("evidence", value, Consent.EVIDENCE_MAX_LENGTH)


class ConsentFilter(django_filters.FilterSet):
    person = IntegerFilter(field_name="person_id", min_value=1, max_value=MAX_ID)
    purpose = django_filters.ChoiceFilter(choices=ConsentPurpose.choices)
    channel = django_filters.ChoiceFilter(choices=Channel.choices)
    status = django_filters.ChoiceFilter(choices=ConsentStatus.choices)

    class Meta:
        model = Consent
        fields: list[str] = []


class ConsentViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    """Consent records (同意) of the people the user may see; new records through services."""

    queryset = Consent.objects.none()
    serializer_class = ConsentSerializer
    permission_classes = [HasCapability]
    required_caps = {"create": Cap.MANAGE_CONSENTS, "*": Cap.VIEW_CUSTOMERS}
    filterset_class = ConsentFilter
    ordering_fields = ["at", "id"]
    ordering = ["-at", "-id"]
    lookup_value_regex = r"[0-9]{1,18}"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        user = self.request.user
        qs = Consent.objects.all()
        if access.institution_scope_q(user) is not None:
            qs = qs.filter(person__in=access.people_for(user).values("id"))
        return qs

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        person = data.pop("person")
        serializer.instance = services.record_consent(self.request.user, person, data)


# --- regions -----------------------------------------------------------------------------------


class RegionSerializer(ModelSerializer):
    class Meta:
        model = Region
        fields = ["code", "name", "full_name", "level", "parent"]


class RegionFilter(django_filters.FilterSet):
    parent = django_filters.CharFilter(field_name="parent_id", max_length=6, label="Parent region code.")
    level = django_filters.ChoiceFilter(choices=Region.Level.choices)
    name = django_filters.CharFilter(lookup_expr="contains")

    class Meta:
        model = Region
        fields: list[str] = []


class RegionViewSet(viewsets.ReadOnlyModelViewSet):
    """The official province / city / district list (GB/T 2260)."""

    queryset = Region.objects.all()
    serializer_class = RegionSerializer
    filterset_class = RegionFilter
    ordering_fields = ["code"]
    ordering = ["code"]
    lookup_field = "code"
    lookup_value_regex = r"[0-9]{6}"


# --- search ------------------------------------------------------------------------------------


class TypedRegionCodeParam(serializers.RegexField):
    """A region code as typed (core.numbers.typed_code): １１０１０１ is 110101."""

    def to_internal_value(self, data):
        return super().to_internal_value(typed_code(data) if isinstance(data, str) else data)


class SearchParams(QuerySerializer):
    q = serializers.CharField(
        max_length=100, help_text="Name fragment, pinyin, initials, phone, credit code or code."
    )
    kind = serializers.ChoiceField(
        choices=[("institution", "institution"), ("person", "person")], required=False, allow_blank=True
    )
    type = serializers.ChoiceField(choices=InstitutionType.choices, required=False, allow_blank=True)
    region = TypedRegionCodeParam(r"^[0-9]{2,6}$", required=False, allow_blank=True, help_text="Region code.")
    tier = serializers.ChoiceField(choices=Tier.choices, required=False, allow_blank=True)
    stage = serializers.ChoiceField(choices=Stage.choices, required=False, allow_blank=True)
    owner = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=100, default=20)


class SearchHitSerializer(Serializer):
    kind = serializers.ChoiceField(choices=[("institution", "institution"), ("person", "person")])
    id = serializers.IntegerField()
    code = serializers.CharField()
    name = serializers.CharField()
    score = serializers.FloatField()
    match = serializers.CharField(
        help_text="What matched: name, pinyin, phone, email, credit_code, code, or keywords (several words "
        "separated by spaces, matched in the name or the institution's: 石家庄 产科)."
    )
    institution = serializers.CharField(
        allow_null=True,
        help_text="For people: their institution (a department with its hospital); for departments: their hospital.",
    )
    region = serializers.CharField(allow_null=True)
    phone = serializers.CharField(help_text="Institutions: switchboard; people: masked mobile.")


class SearchResultSerializer(Serializer):
    results = SearchHitSerializer(many=True)


def hit_data(hit: search.Hit) -> dict:
    obj = hit.obj
    if isinstance(obj, Institution):
        inst = obj.parent.name if obj.parent_id else None  # a department's hospital
        region, phone = obj.region.full_name if obj.region_id else None, obj.phone
    else:
        inst = picker_label(obj.institution) if obj.institution_id else None  # a department with its hospital
        region = None
        phone = normalise.mask_phone(obj.mobile or obj.landline)  # search never shows personal data in clear
    return {
        "kind": hit.kind, "id": obj.pk, "code": obj.code, "name": obj.name, "score": round(hit.score, 2),
        "match": hit.match, "institution": inst, "region": region, "phone": phone,
    }  # fmt: skip


class SearchView(APIView):
    """One box for institutions and people, ranked; only customers the user may see."""

    permission_classes = [HasCapability]
    required_caps = {"*": Cap.VIEW_CUSTOMERS}

    @extend_schema(parameters=[SearchParams], responses=SearchResultSerializer, tags=["search"])
    def get(self, request):
        params = SearchParams(data=request.query_params)
        params.is_valid(raise_exception=True)
        p = params.validated_data
        filters = search.Filters(
            type=p.get("type", ""), region=p.get("region", ""), tier=p.get("tier", ""),
            owner=p.get("owner"), stage=p.get("stage", ""),
        )  # fmt: skip
        kinds = (p["kind"],) if p.get("kind") else ("institution", "person")
        hits = search.search(request.user, p["q"], filters, limit=p["limit"], kinds=kinds)
        return Response({"results": [hit_data(h) for h in hits]})


# --- import and export -------------------------------------------------------------------------


class ImportErrorSerializer(Serializer):
    row = serializers.IntegerField(help_text="Row number in the file (the header is row 1).")
    column = serializers.CharField(help_text="The column's header as written in the file.")
    code = serializers.CharField()
    message = serializers.CharField(help_text="Why, in the request's language.")
    value = serializers.CharField(required=False, help_text="The offending value (never for personal data).")


class ImportJobSerializer(ModelSerializer):
    processed_rows = serializers.SerializerMethodField()
    percent = serializers.SerializerMethodField()
    errors = serializers.SerializerMethodField()
    notes = serializers.SerializerMethodField()

    class Meta:
        model = ImportJob
        fields = [
            "id", "target", "mode", "dry_run", "status", "file_name", "file_size", "total_rows", "processed_rows",
            "percent", "created_count", "updated_count", "unchanged_count", "error_count", "errors", "notes",
            "created_at", "started_at", "finished_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_processed_rows(self, job: ImportJob) -> int:
        from . import importer

        return importer.read_progress(job)

    def get_percent(self, job: ImportJob) -> int:
        done = self.get_processed_rows(job)
        return min(100, int(100 * done / job.total_rows)) if job.total_rows else 0

    @extend_schema_field(ImportErrorSerializer(many=True))
    def get_errors(self, job: ImportJob) -> list[dict]:
        """The first row errors (the importer keeps up to 1000), with reasons in the user's language."""
        from . import importer

        out = []
        for err in job.errors or []:
            row = {"row": err.get("row"), "column": err.get("column", ""), "code": err.get("code", "")}
            row["message"] = importer.error_text(err, job.target)  # a column it names in the user's language
            if err.get("value"):
                row["value"] = err["value"]
            out.append(row)
        return out

    def get_notes(self, job: ImportJob) -> list[str]:
        from . import importer

        return importer.job_messages(job)


class ImportUploadSerializer(Serializer):
    file = serializers.FileField(
        help_text="XLSX, CSV or TXT (UTF-8, GB18030 or UTF-16 with its byte-order mark; comma- or tab-separated, "
        "as Excel saves Unicode Text and Text (Tab delimited)), using the template's headers."
    )
    target = serializers.ChoiceField(choices=ImportJob.Target.choices)
    mode = serializers.ChoiceField(choices=ImportJob.Mode.choices, default=ImportJob.Mode.ALL_OR_NOTHING)
    dry_run = serializers.BooleanField(default=True, help_text="Check and preview only; confirm later.")


class ImportConfirmSerializer(Serializer):
    mode = serializers.ChoiceField(
        choices=ImportJob.Mode.choices, required=False, help_text="Switch the mode."
    )


class MayImport(permissions.BasePermission):
    """Someone who may import some kind of data (institutions, people, orders); the target's own
    capability is checked when the file is stored."""

    def has_permission(self, request, view):
        from . import importer

        return bool(importer.importable_targets(request.user))


class ImportCreateView(APIView):
    """Upload a file to import; the worker checks it (dry run) or imports it."""

    permission_classes = [MayImport]
    parser_classes = [parsers.MultiPartParser, parsers.FormParser]

    @extend_schema(
        request={"multipart/form-data": ImportUploadSerializer},
        responses={202: ImportJobSerializer},
        tags=["import"],
        operation_id="v1_imports_create",
    )
    def post(self, request):
        from . import importer

        form = ImportUploadSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        d = form.validated_data
        try:
            job = importer.start_import(request.user, d["file"], d["target"], d["mode"], d["dry_run"])
        except ValidationError as e:
            if hasattr(e, "error_dict"):
                raise
            raise serializers.ValidationError({"file": [str(m) for m in e.messages]}) from None
        job.refresh_from_db()  # a worker running inline (tests, small set-ups) may be done already
        return Response(ImportJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class ImportDetailView(APIView):
    """An import's progress and row errors (GET), and confirming a checked dry run (POST)."""

    permission_classes = [MayImport]

    def get_job(self, request, pk: int) -> ImportJob:
        from . import importer

        job = importer.visible_jobs(request.user).filter(pk=pk).first()
        if job is None:
            raise Http404(_("No such import."))
        return job

    @extend_schema(responses=ImportJobSerializer, tags=["import"], operation_id="v1_imports_retrieve")
    def get(self, request, pk: int):
        return Response(ImportJobSerializer(self.get_job(request, pk)).data)

    @extend_schema(
        request=ImportConfirmSerializer,
        responses={
            202: ImportJobSerializer,
            409: OpenApiResponse(description="Not a checked, unconfirmed dry run."),
        },
        tags=["import"],
        operation_id="v1_imports_confirm",
    )
    def post(self, request, pk: int):
        from . import importer

        job = self.get_job(request, pk)
        form = ImportConfirmSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        mode = form.validated_data.get("mode") or job.mode
        if mode == ImportJob.Mode.ALL_OR_NOTHING and job.error_count:
            raise Conflict(importer.message("all_or_nothing_rejected", {"errors": job.error_count}))
        try:
            job = importer.confirm_import(request.user, job, mode=mode)
        except ValidationError as e:
            raise Conflict(" ".join(str(m) for m in e.messages)) from None
        job.refresh_from_db()
        return Response(ImportJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


EXPORT_TYPES = {
    "csv": "text/csv",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


class ExportFilters(QuerySerializer):
    """The export's filters, checked: a mistyped value is a 400 naming the field, where the web export (like
    the list page it comes from) ignores it. Ignoring it here turned a narrow export into one of every
    customer, personal data included."""

    MAX_ID = 2**63 - 1
    type = serializers.ChoiceField(InstitutionType.choices, required=False, allow_blank=True)
    region = serializers.RegexField(r"^[0-9]{2,6}$", required=False, allow_blank=True)
    province = serializers.RegexField(r"^[0-9]{2,6}$", required=False, allow_blank=True)
    city = serializers.RegexField(r"^[0-9]{2,6}$", required=False, allow_blank=True)
    tier = serializers.ChoiceField(Tier.choices, required=False, allow_blank=True)
    stage = serializers.ChoiceField(Stage.choices, required=False, allow_blank=True)
    owner = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False, allow_null=True)
    q = serializers.CharField(max_length=100, required=False, allow_blank=True)
    tag = serializers.CharField(max_length=50, required=False, allow_blank=True)
    role = serializers.ChoiceField(PersonRole.choices, required=False, allow_blank=True)
    institution = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False, allow_null=True)


class ExportView(APIView):
    """Download institutions or people as CSV or XLSX: scoped and masked like every other read."""

    permission_classes = [HasCapability]
    required_caps = {"*": Cap.EXPORT_CUSTOMERS}

    def perform_content_negotiation(self, request, force=False):
        # the body is a file, whatever the Accept header asks for; errors still come back as JSON
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        parameters=[
            OpenApiParameter("target", str, OpenApiParameter.PATH, enum=["institutions", "people"]),
            OpenApiParameter("fmt", str, OpenApiParameter.PATH, enum=list(EXPORT_TYPES)),
            OpenApiParameter(
                "type", str, enum=InstitutionType.values, description="Institutions: their type."
            ),
            OpenApiParameter("region", str, description="Region code (province, city or district)."),
            OpenApiParameter("tier", str, enum=Tier.values),
            OpenApiParameter("stage", str, enum=Stage.values),
            OpenApiParameter("owner", int, description="Owner's user id."),
            OpenApiParameter("tag", str, description="One tag name."),
            OpenApiParameter("q", str, description="Only what the search box finds for this text."),
            OpenApiParameter("role", str, enum=PersonRole.values, description="People: their role."),
            OpenApiParameter("institution", int, description="People: of this institution or department."),
        ],
        responses={
            (200, EXPORT_TYPES["csv"]): OpenApiTypes.BINARY,
            (200, EXPORT_TYPES["xlsx"]): OpenApiTypes.BINARY,
            400: OpenApiResponse(description="A filter's value is invalid: per-field messages, nothing exported."),
            403: OpenApiResponse(description="The role may not export."),
        },
        tags=["export"],
        operation_id="v1_export",
    )
    def get(self, request, target: str, fmt: str):
        from . import exporter

        if target not in ("institutions", "people") or fmt not in EXPORT_TYPES:
            raise Http404(_("Export institutions or people, as csv or xlsx."))
        unknown = sorted(set(request.query_params) - set(ExportFilters().fields) - {"format"})
        if unknown:
            # a filter of another name (the lists' `kind`, `tags`, `updated_since` …) was ignored like a mistyped
            # value: the export of "hospitals tagged 核心" was one of every customer, personal data included
            raise serializers.ValidationError({name: [_(
                "The export has no filter of this name: use %(names)s."
            ) % {"names": ", ".join(ExportFilters().fields)}] for name in unknown[:10]})  # fmt: skip
        ExportFilters(data=request.query_params).is_valid(raise_exception=True)
        return exporter.export_response(request.user, target, fmt, request.query_params)
