"""What every download of a page shares (its Excel exports above all): rows whose text is never run as a formula,
the workbook's bytes, and the download's response (named in the reader's language, dated, and never kept by a shared
cache).

A customer, product or finding whose name begins with "=" is text someone typed; openpyxl writes any such string
as a formula, which the reader's Excel would run (formula injection: =HYPERLINK(…) sending the sheet's data away).
`append_row` writes it as text."""

from __future__ import annotations

import io
import re
from collections.abc import Iterable

from django.http import HttpResponse
from django.utils import timezone
from django.utils.http import content_disposition_header

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# characters XML 1.0 (and so a workbook) cannot hold: openpyxl refuses them, and one pasted into a comment (\x0b from a
# Word document) turned the whole export into a server error for every reader
ILLEGAL_XML = re.compile(r"[\000-\010]|[\013-\014]|[\016-\037]")


def append_row(sheet, values: Iterable) -> None:
    """Append a row to a worksheet (normal or write-only); a string beginning with "=" stays text, and a control
    character no workbook can hold is left out."""
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.worksheet._write_only import WriteOnlyWorksheet

    values = [ILLEGAL_XML.sub("", v) if isinstance(v, str) else v for v in values]
    if isinstance(sheet, WriteOnlyWorksheet):  # its cells are made here, typed before they are written
        cells = []
        for value in values:
            if isinstance(value, str) and value.startswith("="):
                value = WriteOnlyCell(sheet, value=value)
                value.data_type = "s"
            cells.append(value)
        sheet.append(cells)
        return
    sheet.append(values)
    for cell in sheet[sheet.max_row]:
        if cell.data_type == "f":
            cell.data_type = "s"


def workbook_bytes(book) -> bytes:
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def attachment(content, filename: str, content_type: str) -> HttpResponse:
    """A file to save: its name (any language, RFC 6266), and `private, no-store`: an export holds what only its
    reader may see, so neither a shared proxy nor the browser's cache keeps it."""
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = content_disposition_header(True, filename)
    response["Cache-Control"] = "private, no-store"
    return response


def file_name(title: str, *parts, dated: bool = True, extension: str = "xlsx") -> str:
    """The title "Service performance" and "2026-11" → "Service-performance-2026-11-20261207.xlsx": the title (in the reader's
    language) with its words joined by hyphens, the parts, and the day it was made."""
    words = ["-".join(str(title).split()), *(str(p) for p in parts if p not in (None, ""))]
    if dated:
        words.append(timezone.localtime().strftime("%Y%m%d"))
    return f"{'-'.join(words)}.{extension}"


def xlsx(content: bytes, title: str, *parts, dated: bool = True) -> HttpResponse:
    return attachment(content, file_name(title, *parts, dated=dated), XLSX_TYPE)
