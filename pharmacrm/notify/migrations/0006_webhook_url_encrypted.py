"""A webhook endpoint's address is stored encrypted, as its signing secret: a WeCom bot's address carries its key
(`send?key=…`), a DingTalk bot's its `access_token`, and whoever read the table (a database dump, a backup, a support
engineer's SELECT) could post into the group chat. The column becomes text (a ciphertext is longer than the
500 characters an address may have) and each stored address is encrypted; backwards, each is decrypted again.

Raw SQL, not the historical model: its field decrypts what it reads, and the addresses stored so far are plain."""

import django.core.validators
from django.db import migrations

import pharmacrm.core.fields

TABLE, COLUMN = "notify_webhookendpoint", "url"
CONTEXT = f"{TABLE}.{COLUMN}"  # as EncryptedTextField.context(): a ciphertext is bound to its column


def _rewrite(schema_editor, change) -> None:
    connection = schema_editor.connection
    table, column = connection.ops.quote_name(TABLE), connection.ops.quote_name(COLUMN)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, {column} FROM {table} ORDER BY id")
        rows = [(change(value), pk) for pk, value in cursor.fetchall() if value]
        cursor.executemany(f"UPDATE {table} SET {column} = %s WHERE id = %s", [r for r in rows if r[0] is not None])


def encrypt(apps, schema_editor):
    from pharmacrm.core import crypto

    _rewrite(schema_editor, lambda v: None if v.startswith(crypto.PREFIX + ":") else crypto.encrypt(v, CONTEXT))


def decrypt(apps, schema_editor):
    from pharmacrm.core import crypto

    _rewrite(schema_editor, lambda v: crypto.decrypt(v, CONTEXT) if v.startswith(crypto.PREFIX + ":") else None)


class Migration(migrations.Migration):
    dependencies = [
        ("notify", "0005_delivery_sending_since"),
    ]

    operations = [
        migrations.AlterField(
            model_name="webhookendpoint",
            name="url",
            field=pharmacrm.core.fields.EncryptedTextField(
                default="",
                validators=[django.core.validators.URLValidator(schemes=["http", "https"])],
                verbose_name="URL",
            ),
        ),
        migrations.RunPython(encrypt, decrypt),
    ]
