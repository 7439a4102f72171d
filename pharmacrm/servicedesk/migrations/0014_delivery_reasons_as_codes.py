"""The reasons the worker wrote on a reply it gave up on ("Not sent: …", in zh-Hans) become codes, shown in each
reader's language (core.notsent): an agent whose screen is in English read them in Chinese. Only rows whose text
is exactly one of those reasons change; what a mail server answered stays as it came."""

from django.db import migrations

# as the worker stored them (in the site's default language, zh-Hans; also English and zh-Hant for a site whose
# default was one of those): frozen here, whatever the catalogue says later
STORED = {
    "未发送：该工单已没有客户的电子邮件地址。": "code:ticket_no_address",
    "未傳送：該工單已沒有客戶的電子郵件地址。": "code:ticket_no_address",
    "Not sent: the ticket no longer has the customer's e-mail address.": "code:ticket_no_address",
    "未发送：邮件服务器无法向含中文字符的地址发送邮件（不支持 SMTPUTF8）。请在工单详情中填写其他地址，或请管理员在邮件服务器上启用 "
    "SMTPUTF8，然后重新发送。": "code:no_smtputf8",
    "Not sent: the mail server cannot send to an address with Chinese characters (it does not support SMTPUTF8). "
    "Enter another address in the ticket's details, or ask the administrator to enable SMTPUTF8 on the mail "
    "server, then send again.": "code:no_smtputf8",
}


def known() -> dict[str, str]:
    from pharmacrm.core import notsent

    texts = dict(STORED)
    texts.update({t: c for t, c in notsent.known_texts().items() if c in STORED.values()})
    return texts


def forwards(apps, schema_editor):
    TicketMessage = apps.get_model("servicedesk", "TicketMessage")
    for text, code in known().items():
        TicketMessage.objects.filter(last_error=text[:500]).update(last_error=code)


def backwards(apps, schema_editor):
    from django.conf import settings
    from django.utils import translation

    from pharmacrm.core import notsent

    TicketMessage = apps.get_model("servicedesk", "TicketMessage")
    with translation.override(settings.LANGUAGE_CODE):
        for name, reason in notsent.REASONS.items():
            TicketMessage.objects.filter(last_error=notsent.code(name)).update(last_error=str(reason)[:500])


class Migration(migrations.Migration):
    dependencies = [
        ("servicedesk", "0013_version_for_concurrent_edits"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
