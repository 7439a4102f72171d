"""The reasons the worker wrote on a notification it did not send ("Not sent: …", in zh-Hans) become codes, shown
in each reader's language (core.notsent), on the row and in its attempt log. Only texts that are exactly one of
those reasons change; what a receiver answered stays as it came."""

from django.db import migrations

STORED = {
    "未发送：收件人的账号已停用。": "code:recipient_deactivated",
    "未傳送：收件人的賬號已停用。": "code:recipient_deactivated",
    "Not sent: the recipient's account was deactivated.": "code:recipient_deactivated",
    "未发送：收件人已没有电子邮件地址。": "code:recipient_no_email",
    "未傳送：收件人已沒有電子郵件地址。": "code:recipient_no_email",
    "Not sent: the recipient no longer has an e-mail address.": "code:recipient_no_email",
    "未发送：该端点已停用。": "code:endpoint_off",
    "未傳送：該端點已停用。": "code:endpoint_off",
    "Not sent: the endpoint was switched off.": "code:endpoint_off",
}


def known() -> dict[str, str]:
    from pharmacrm.core import notsent

    texts = dict(STORED)
    texts.update({t: c for t, c in notsent.known_texts().items() if c in STORED.values()})
    return texts


def forwards(apps, schema_editor):
    Delivery = apps.get_model("notify", "Delivery")
    texts = known()
    for row in Delivery.objects.filter(status="gave_up", last_error__in=list(texts)).only(
        "pk", "last_error", "log"
    ):
        log = [
            {**entry, "error": texts.get(entry.get("error"), entry.get("error"))}
            if isinstance(entry, dict)
            else entry
            for entry in row.log or ()
        ]
        Delivery.objects.filter(pk=row.pk).update(last_error=texts[row.last_error], log=log)


class Migration(migrations.Migration):
    dependencies = [
        ("notify", "0003_version_for_concurrent_edits"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
