"""One ERP product code in any letter case, in the database too: a unique index on the code in capitals.

A database may hold codes stored before the import matched codes in any letter case (session 56: yp1001 is the
catalogue's YP1001), two spellings of one code side by side; the index could not be built over them. They are made
one first, nothing lost:

* the code kept is the one the import reads the others as (sales.importer.Resolver._load_spellings): the one linked
  to the catalogue, else the oldest;
* it takes the name and the catalogue link of another spelling where it has none;
* the order lines stored under another spelling are stored under the kept one (their months marked for the rollups'
  recomputation: a product bought under two spellings in a month was counted twice) and fingerprinted again, so a
  re-import of the same file finds them unchanged;
* each change is audited (by "system", reason "product code in another letter case"): the code kept (its name or
  link filled in, the spelling merged into it), the code removed (with its values), each line re-spelt;
* each merge is logged on the `pharmacrm.sales` logger, with one line of totals (docs/purchases.md).

Run again (a migration is run once), it finds nothing: the index refuses a second spelling from then on."""

import logging

from django.db import migrations, models
from django.db.models.functions import Upper

log = logging.getLogger("pharmacrm.sales")

REASON = "product code in another letter case"
BATCH = 2000
LINE_FIELDS = (
    "id", "order_number", "line_number", "order_date", "month", "institution_id", "product_code", "product_name",
    "batch_number", "quantity", "unit_price", "amount_fen", "invoice_number", "payment_due", "paid_date",
    "paid_fen", "row_hash",
)  # fmt: skip


def spellings(ProductCode) -> list[list]:
    """The groups of two or more codes that are one code (sales.models.product_code_key), the kept one first."""
    from pharmacrm.sales.models import product_code_key

    groups: dict[str, list] = {}
    rows = ProductCode.objects.order_by(models.F("product_id").asc(nulls_last=True), "id")
    for code in rows.iterator(chunk_size=5000):
        groups.setdefault(product_code_key(code.code), []).append(code)
    return [group for group in groups.values() if len(group) > 1]


def merge_case_variants(apps, schema_editor) -> dict:
    """Returns counts: codes merged (removed), lines re-spelt, months marked."""
    from pharmacrm.core import audit
    from pharmacrm.sales.importer import _hashed_values, row_hash
    from pharmacrm.servicedesk.services import SYSTEM

    ProductCode = apps.get_model("sales", "ProductCode")
    OrderLine = apps.get_model("sales", "OrderLine")
    connection = schema_editor.connection
    groups = spellings(ProductCode)
    merged = respelt = 0
    months: set[tuple[int, object]] = set()
    for group in groups:
        kept, others = group[0], group[1:]
        fill = {}
        for other in others:
            if not kept.name and not fill.get("name") and other.name:
                fill["name"] = other.name
            if kept.product_id is None and "product_id" not in fill and other.product_id is not None:
                fill["product_id"] = other.product_id
        label = ("sales.productcode", str(kept.pk), f"{kept.code} {fill.get('name', kept.name)}".strip()[:200])
        for other in others:
            lines = list(OrderLine.objects.filter(product_code=other.code).values(*LINE_FIELDS))
            updates, entries = [], []
            for line in lines:
                line["product_code"] = kept.code
                months.add((line["institution_id"], line["month"]))
                updates.append((kept.code, row_hash(_hashed_values(line, line["institution_id"])), line["id"]))
                entries.append(((
                    "sales.orderline", str(line["id"]), f"{line['order_number']}/{line['line_number']}"),
                    {"product_code": [other.code, kept.code]},
                ))  # fmt: skip
            with connection.cursor() as cursor:
                for i in range(0, len(updates), BATCH):
                    cursor.executemany("UPDATE sales_orderline SET product_code = %s, row_hash = %s WHERE id = %s",
                                       updates[i : i + BATCH])  # fmt: skip
            if entries:
                audit.record_many("update", entries, user=SYSTEM, reason=REASON, merged_code=other.code)
            audit.record("delete", ("sales.productcode", str(other.pk), f"{other.code} {other.name}".strip()[:200]),
                         user=SYSTEM, changes={"code": [other.code, None], "name": [other.name, None],
                                               "product": [other.product_id, None]},
                         reason=REASON, merged=kept.code)  # fmt: skip
            other.delete()
            merged += 1
            respelt += len(lines)
            log.warning("ERP product code %r is %r (one code in any letter case): merged, %s order line(s) re-spelt",
                        other.code, kept.code, len(lines))  # fmt: skip
        changes = {"merged": [None, [o.code for o in others]]}
        if fill:
            changes.update({field.removesuffix("_id"): [getattr(kept, field), value] for field, value in fill.items()})
            ProductCode.objects.filter(pk=kept.pk).update(**fill)
        audit.record("update", label, user=SYSTEM, changes=changes, reason=REASON)
    marks = sorted(months, key=lambda pair: (pair[0], str(pair[1])))
    with connection.cursor() as cursor:
        for i in range(0, len(marks), BATCH):
            cursor.executemany(
                "INSERT INTO sales_rollupdirty (institution_id, month) VALUES (%s, %s) "
                "ON CONFLICT (institution_id, month) DO NOTHING",
                [(inst, month if connection.vendor == "postgresql" else month.isoformat())
                 for inst, month in marks[i : i + BATCH]],
            )  # fmt: skip
    if connection.vendor == "postgresql":
        # the rows changed have their deferred foreign-key checks pending: PostgreSQL builds no index on a table
        # with pending trigger events (the next step), so they are checked now
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
    if merged:
        log.warning("ERP product codes in another letter case: %s merged into %s, %s order line(s) re-spelt, "
                    "%s month(s) to recompute", merged, len(groups), respelt, len(marks))  # fmt: skip
    return {"merged": merged, "lines": respelt, "months": len(marks)}


def forwards(apps, schema_editor):
    merge_case_variants(apps, schema_editor)


class Migration(migrations.Migration):
    dependencies = [
        ("sales", "0015_appraisal_teams"),
        ("core", "0013_lockout_names_digested"),  # the audit trail as sales.importer and core.audit write it
        ("servicedesk", "0026_quality_review"),
    ]

    operations = [
        migrations.RunPython(forwards, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="productcode",
            constraint=models.UniqueConstraint(Upper("code"), name="productcode_code_any_case"),
        ),
    ]
