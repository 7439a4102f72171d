"""Forms of the conversation panel, the ticket-details editor and the knowledge pages. Validation is the
services' (knowledge, editing, conversation); the forms only carry the input and show the errors."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from pharmacrm.core import personal
from pharmacrm.core.addresses import validate_address
from pharmacrm.core.ordering import PinyinModelChoiceField
from pharmacrm.customers.choices import PreferredLanguage
from pharmacrm.customers.forms import OnceTokenForm, ServiceErrorsMixin

from .choices import MessageKind
from .forms import CustomerPickers
from .models import APPROVAL_NUMBER_HELP, AnswerTemplate, Product, TicketCategory


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files in one input; each is checked by attachments.validate_upload in the service."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput(attrs={"multiple": True}))
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        if isinstance(data, list | tuple):
            return [super(MultipleFileField, self).clean(d, initial) for d in data if d]
        return [super().clean(data, initial)] if data else []


def accept_attr() -> str:
    return ",".join(sorted({e for exts in settings.ATTACHMENT_TYPES.values() for e in exts}))


class ComposerForm(ServiceErrorsMixin, OnceTokenForm):
    """A reply to the customer or an internal note, with files; id="composer", textarea #message-body. Its one-time
    token: the form sent twice (a double click on Send) sends once."""

    kind = forms.ChoiceField(
        label=_("Kind"), choices=[(MessageKind.REPLY, MessageKind.REPLY.label), (MessageKind.NOTE, MessageKind.NOTE.label)],
        initial=MessageKind.REPLY, widget=forms.RadioSelect,
    )  # fmt: skip
    template = forms.ModelChoiceField(
        label=_("Answer template"), queryset=AnswerTemplate.objects.none(), required=False, empty_label="—"
    )
    body = forms.CharField(
        label=_("Text"), widget=forms.Textarea(attrs={"rows": 8, "id": "message-body"}),
        error_messages={"required": _("Write the text of the message.")},
    )  # fmt: skip
    files = MultipleFileField(label=_("Attachments"), required=False)

    def __init__(self, *args, templates=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["template"].queryset = AnswerTemplate.objects.filter(active=True)
        if templates is not None:
            self.fields["template"].choices = [("", "—")] + [(t.pk, t.name) for t in templates]
        self.fields["files"].widget.attrs["accept"] = accept_attr()


class TicketEditForm(ServiceErrorsMixin, CustomerPickers):
    subject = forms.CharField(label=_("Subject"), max_length=200)
    description = forms.CharField(
        label=_("Description"), required=False, widget=forms.Textarea(attrs={"rows": 5})
    )
    category = forms.ModelChoiceField(
        label=_("Category"), queryset=TicketCategory.objects.none(), empty_label=None
    )
    product = PinyinModelChoiceField(
        label=_("Product"), queryset=Product.objects.none(), required=False, empty_label="—"
    )
    batch_number = forms.CharField(label=_("Batch / lot number"), max_length=40, required=False)
    safety_relevant = forms.BooleanField(
        label=_("Safety-relevant"), required=False, help_text=_("Hand the ticket to pharmacovigilance.")
    )
    # personal data: never pre-filled (the page would show it in clear to roles that see it masked); a value
    # typed here replaces the one on file, an empty field keeps it
    caller_name = forms.CharField(label=_("Caller's name"), required=False)  # refused by the service, named
    caller_phone = forms.CharField(
        label=_("Caller's phone"), required=False, max_length=32, widget=forms.TextInput(attrs={"inputmode": "tel"})
    )
    reply_email = forms.CharField(  # 张三@公司.cn too, which EmailField (and the browser's type=email) refuse
        label=_("Customer's e-mail"), required=False, max_length=254, validators=[validate_address],
        widget=forms.TextInput(attrs={"inputmode": "email", "autocomplete": "off"}),
        help_text=_("Replies to the customer are e-mailed here."),
    )  # fmt: skip
    language = forms.ChoiceField(
        label=_("Customer's language"), choices=PreferredLanguage.choices, required=False,
        help_text=_("The desk's own mails to the customer (the survey among them) and the pages their links open "
                    "are in it."),
    )  # fmt: skip
    clear_contact = forms.BooleanField(
        label=_("Remove the caller's name, phone and e-mail"), required=False,
        help_text=_("For example once the caller is linked to a recorded customer."),
    )  # fmt: skip
    reason = forms.CharField(label=_("Reason for the change"), max_length=500, required=False)
    version = forms.IntegerField(widget=forms.HiddenInput)

    field_order = [
        "subject", "description", "category", "product", "batch_number", "safety_relevant", "institution", "person",
        "caller_name", "caller_phone", "reply_email", "language", "clear_contact", "reason", "version",
    ]  # fmt: skip

    def __init__(self, *args, ticket=None, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        if user is not None:
            self._set_up_pickers(user)
        if ticket is not None:
            for field in ("caller_name", "caller_phone", "reply_email"):
                if getattr(ticket, field):
                    self.fields[field].widget.attrs["placeholder"] = str(_("On file; type to replace"))
        categories = TicketCategory.objects.filter(active=True)
        products = Product.objects.filter(active=True)
        if ticket is not None:  # keep what the ticket has even when it was switched off since
            categories = TicketCategory.objects.filter(active=True) | TicketCategory.objects.filter(
                pk=ticket.category_id
            )
            if ticket.product_id:
                products = Product.objects.filter(active=True) | Product.objects.filter(pk=ticket.product_id)
        self.fields["category"].queryset = categories.order_by("position", "code")
        self.fields["product"].queryset = products.order_by("brand_name", "strength")

    @staticmethod
    def initial_for(ticket, user=None) -> dict:
        """The form filled in from the ticket; for a `user` who sees personal data masked (an agent), the contact
        details typed into the subject and description masked as on the ticket page (put back on saving)."""
        masked = user is None or personal.masks_free_text(user)
        return {
            "subject": personal.free_text(ticket.subject, masked),
            "description": personal.free_text(ticket.description, masked), "category": ticket.category_id,
            "product": ticket.product_id, "batch_number": ticket.batch_number,
            "safety_relevant": ticket.safety_relevant, "version": ticket.version,
            "institution": ticket.institution_id, "person": ticket.person_id, "language": ticket.language,
        }  # fmt: skip

    def service_changes(self) -> dict:
        """The changes for editing.edit_ticket: an empty personal field keeps what is on file."""
        d = dict(self.cleaned_data)
        d.pop("version", None), d.pop("reason", None)
        clear = d.pop("clear_contact", False)
        for field in ("institution", "person"):
            if field not in self.data:
                d.pop(field, None)  # a client that does not send the selects changes no customer
        if not d.get("language"):
            d.pop("language", None)  # nor does one that does not send the language change it
        for field in ("caller_name", "caller_phone", "reply_email"):
            if clear:
                d[field] = ""
            elif not (d.get(field) or "").strip():
                d.pop(field, None)
        return d


class ProductForm(ServiceErrorsMixin, OnceTokenForm):  # its one-time token: the new form sent twice creates one
    brand_name = forms.CharField(label=_("Brand name"), max_length=100)
    generic_name = forms.CharField(label=_("Generic name"), max_length=100)
    approval_number = forms.CharField(
        label=_("Approval number"), max_length=24, help_text=APPROVAL_NUMBER_HELP,
        widget=forms.TextInput(attrs={"placeholder": "国药准字H20059876"}),
    )  # fmt: skip
    dosage_form = forms.CharField(label=_("Dosage form"), max_length=40)
    strength = forms.CharField(label=_("Strength"), max_length=60)
    indications = forms.CharField(
        label=_("Indications"), required=False, widget=forms.Textarea(attrs={"rows": 3})
    )
    contraindications = forms.CharField(
        label=_("Contraindications"), required=False, widget=forms.Textarea(attrs={"rows": 3})
    )
    usage = forms.CharField(
        label=_("Usage and dosage"), required=False, widget=forms.Textarea(attrs={"rows": 3})
    )
    active = forms.BooleanField(label=pgettext_lazy("enabled checkbox", "Active"), required=False, initial=True)
    version = forms.IntegerField(widget=forms.HiddenInput, required=False)


class TemplateForm(ServiceErrorsMixin, OnceTokenForm):  # its one-time token: the new form sent twice creates one
    name = forms.CharField(label=_("Name"), max_length=100)
    category = forms.ModelChoiceField(
        label=_("Category"),
        queryset=TicketCategory.objects.none(),
        required=False,
        empty_label=_("Any category"),
    )
    language = forms.ChoiceField(label=_("Language"), choices=settings.LANGUAGES, initial="zh-hans")
    body = forms.CharField(label=_("Text"), widget=forms.Textarea(attrs={"rows": 10}))
    active = forms.BooleanField(label=pgettext_lazy("enabled checkbox", "Active"), required=False, initial=True)
    version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["category"].queryset = TicketCategory.objects.filter(active=True).order_by(
            "position", "code"
        )
