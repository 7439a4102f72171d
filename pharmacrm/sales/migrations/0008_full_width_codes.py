"""Order lines imported before the import read full-width characters (ＹＰ１００１ is YP1001: sales.importer._code,
NFKC) still hold their order, product, batch and invoice numbers as typed, so a re-import of the corrected file
added a second line beside each instead of updating it, and the batch trace and the list's filters did not find
them. Their codes are normalised as the import now reads them.

Only lines with a code that is not plain ASCII are read (filtered in SQL: a pass over the table's rows, none of
them fetched, then the few found). A line whose order number, once normalised, is that of another line (the
corrected file imported since, or two spellings of one number) is merged with it: the line the later import
wrote is kept, with its values, and the others are removed, each merge logged. The months of every line changed
or removed are marked for recomputation (the worker's refresh of dirty rollups recomputes their orders, products
and amounts; so does the next import), and the lines are fingerprinted again, so a re-import of the same file
finds them unchanged. ERP product codes are normalised the same way (two spellings of one code become one,
keeping the name and catalogue link found)."""

import logging
import unicodedata

from django.db import migrations

log = logging.getLogger("pharmacrm.sales")

CODES = ("order_number", "product_code", "batch_number", "invoice_number")
MAX_LENGTH = 40
BATCH = 2000
FIELDS = (
    "id", "order_number", "line_number", "order_date", "month", "institution_id", "product_code", "product_name",
    "batch_number", "quantity", "unit_price", "amount_fen", "invoice_number", "payment_due", "paid_date",
    "paid_fen", "imported_at",
)  # fmt: skip


def normal(value: str) -> str:
    """A code as the import reads it now (sales.importer._code): NFKC, no surrounding spaces."""
    return unicodedata.normalize("NFKC", value).strip()


def not_ascii(vendor: str, column: str) -> str:
    if vendor == "postgresql":
        return f"octet_length({column}) <> char_length({column})"
    return f"length(CAST({column} AS BLOB)) <> length({column})"


def fixed_codes(line: dict) -> dict:
    """The codes of `line` that change, normalised; one the import would refuse stays as it is (logged)."""
    out = {}
    for column in CODES:
        value = normal(line[column])
        if value == line[column]:
            continue
        bad = len(value) > MAX_LENGTH or (column in ("order_number", "product_code") and not value)
        if column == "product_code" and any(c in value for c in ",\r\n"):
            bad = True
        if bad:
            log.warning("order line %s/%s: %s %r left as it is (normalised it would be refused: %r)",
                        line["order_number"], line["line_number"], column, line[column], value)  # fmt: skip
            continue
        out[column] = value
    return out


def normalise_lines(apps, schema_editor) -> dict:
    """Returns counts: lines changed, lines removed as merged, months marked."""
    from pharmacrm.sales.importer import _hashed_values, row_hash

    OrderLine = apps.get_model("sales", "OrderLine")
    connection = schema_editor.connection
    where = " OR ".join(not_ascii(connection.vendor, c) for c in CODES)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id FROM sales_orderline WHERE {where} ORDER BY id")
        ids = [row[0] for row in cursor.fetchall()]
    # what changes per line, and its (order number, line number) after
    changes: dict[int, dict] = {}
    keys: dict[tuple[str, int], list[tuple]] = {}  # normalised key → (imported_at, id, institution, month)
    for i in range(0, len(ids), BATCH):
        for line in OrderLine.objects.filter(pk__in=ids[i : i + BATCH]).values(*FIELDS):
            fixes = fixed_codes(line)
            if not fixes:
                continue
            changes[line["id"]] = fixes
            if "order_number" in fixes:
                key = (fixes["order_number"], line["line_number"])
                keys.setdefault(key, []).append((line["imported_at"], line["id"], line["institution_id"], line["month"]))
    # the lines already holding a normalised key (the corrected file imported since)
    numbers = sorted({k[0] for k in keys})
    for i in range(0, len(numbers), BATCH):
        for pk, number, n, at, inst, month in OrderLine.objects.filter(order_number__in=numbers[i : i + BATCH]).values_list(
            "id", "order_number", "line_number", "imported_at", "institution_id", "month"
        ):
            if (number, n) in keys and "order_number" not in changes.get(pk, {}):  # not counted yet
                keys[(number, n)].append((at, pk, inst, month))
    removed: list[int] = []
    months: set[tuple[int, object]] = set()
    for (number, n), lines in keys.items():
        if len(lines) < 2:
            continue
        lines.sort(key=lambda row: (row[0], row[1]))
        kept = lines[-1]
        gone = lines[:-1]
        removed.extend(row[1] for row in gone)
        months.update((row[2], row[3]) for row in lines)
        log.warning(
            "order line %s/%s: kept line id %s (imported %s); removed line id(s) %s, the same line with its number "
            "written in full width (imported %s)", number, n, kept[1], kept[0],
            ", ".join(str(row[1]) for row in gone), ", ".join(str(row[0]) for row in gone),
        )  # fmt: skip
    for pk in removed:
        changes.pop(pk, None)
    table = "sales_orderline"
    with connection.cursor() as cursor:
        for i in range(0, len(removed), BATCH):
            part = removed[i : i + BATCH]
            cursor.execute(f"DELETE FROM {table} WHERE id IN ({', '.join(['%s'] * len(part))})", part)
        todo = sorted(changes)
        for i in range(0, len(todo), BATCH):
            updates = []
            for line in OrderLine.objects.filter(pk__in=todo[i : i + BATCH]).values(*FIELDS):
                line.update(changes[line["id"]])
                months.add((line["institution_id"], line["month"]))
                updates.append((*(line[c] for c in CODES), row_hash(_hashed_values(line, line["institution_id"])),
                                line["id"]))  # fmt: skip
            cursor.executemany(
                f"UPDATE {table} SET {', '.join(f'{c} = %s' for c in CODES)}, row_hash = %s WHERE id = %s", updates
            )
        marks = sorted(months, key=lambda pair: (pair[0], str(pair[1])))
        for i in range(0, len(marks), BATCH):
            cursor.executemany(
                "INSERT INTO sales_rollupdirty (institution_id, month) VALUES (%s, %s) "
                "ON CONFLICT (institution_id, month) DO NOTHING",
                [(inst, month if connection.vendor == "postgresql" else month.isoformat()) for inst, month in marks[i : i + BATCH]],
            )
    if changes or removed:
        log.warning("order lines with full-width codes: %s normalised, %s removed as merged, %s months to recompute",
                    len(changes), len(removed), len(months))  # fmt: skip
    return {"changed": len(changes), "removed": len(removed), "months": len(months)}


def normalise_product_codes(apps, schema_editor) -> int:
    """ERP product codes: a full-width spelling becomes the ordinary one; when that exists already, the two are
    one (its name and catalogue link kept, else the other's). Returns how many codes changed."""
    ProductCode = apps.get_model("sales", "ProductCode")
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id FROM sales_productcode WHERE {not_ascii(connection.vendor, 'code')}")
        ids = [row[0] for row in cursor.fetchall()]
    changed = 0
    for code in ProductCode.objects.filter(pk__in=ids).order_by("id"):
        value = normal(code.code)
        if value == code.code or not value or len(value) > MAX_LENGTH or any(c in value for c in ",\r\n"):
            continue
        same = ProductCode.objects.filter(code=value).first()
        if same is None:
            code.code = value
            code.save(update_fields=["code"])
        else:
            fill = {}
            if not same.name and code.name:
                fill["name"] = code.name
            if same.product_id is None and code.product_id is not None:
                fill["product_id"] = code.product_id
            if fill:
                ProductCode.objects.filter(pk=same.pk).update(**fill)
            code.delete()
            log.warning("ERP product code %r is %r: merged", code.code, value)
        changed += 1
    return changed


def forwards(apps, schema_editor):
    normalise_lines(apps, schema_editor)
    normalise_product_codes(apps, schema_editor)


class Migration(migrations.Migration):
    dependencies = [("sales", "0007_nothing_paid_is_not_late")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
