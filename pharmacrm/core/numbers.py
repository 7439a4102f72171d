"""Numbers as people type them into the forms: a Chinese input method in full-width mode gives ８７．５, －２０, ￥1,234.50
or 1,234.50元; a typesetter gives −20. One reading for every form that takes a number as text."""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal

# digits with an optional sign and point, nothing else: Decimal and float() also read 1_000, 1e2 and Arabic-Indic ١٢,
# which nobody types meaning a number here (the order import refuses them as well)
PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)", re.ASCII)
AMOUNT_MARKS = ("¥", "元")  # of an amount in yuan (￥ is ¥ under NFKC)


def typed_decimal(value, *marks: str) -> Decimal | None:
    """A number as typed, with thousands separators, spaces and the `marks` of its unit (AMOUNT_MARKS of a price, %
    of a share) left out, full-width characters read as what they are (￥12.50, ３５．５％); None for anything else
    (1.2万, 十二, 1_000, ١٢)."""
    text = unicodedata.normalize("NFKC", str(value)).replace("\u2212", "-")
    for junk in (",", " ", "\u00a0", *marks):
        text = text.replace(junk, "")
    return Decimal(text) if PLAIN_NUMBER.fullmatch(text) else None


def typed_code(value) -> str:
    """A code of digits as typed (a region code, 行政区划代码): full-width digits (１１０１０１, an input method's
    full-width mode) read as the ASCII ones and spaces left out. Anything else is given back as it is, for the
    reader to refuse."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", str(value)))
