"""Numbers as people type them into the forms: a Chinese input method in full-width mode gives ８７．５, －２０, ￥1,234.50
or 1,234.50元; a typesetter gives −20. One reading for every form that takes a number as text."""

from __future__ import annotations

import re
import unicodedata
from decimal import ROUND_HALF_UP, Decimal

# digits with an optional sign and point, nothing else: Decimal and float() also read 1_000, 1e2 and Arabic-Indic ١٢,
# which nobody types meaning a number here (the order import refuses them as well)
PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)", re.ASCII)
AMOUNT_MARKS = ("¥", "元")  # of an amount in yuan (￥ is ¥ under NFKC)
PERCENT_MARKS = ("%",)  # of a figure in percent: 30% is 30 (％ is % under NFKC)


def typed_decimal(value, *marks: str) -> Decimal | None:
    """A number as typed, with thousands separators, spaces and the `marks` of its unit (AMOUNT_MARKS of a price, %
    of a share) left out, full-width characters read as what they are (￥12.50, ３５．５％); None for anything else
    (1.2万, 十二, 1_000, ١٢)."""
    text = unicodedata.normalize("NFKC", str(value)).replace("\u2212", "-")
    for junk in (",", " ", "\u00a0"):
        text = text.replace(junk, "")
    sign, text = (text[0], text[1:]) if text[:1] in ("+", "-") else ("", text)
    # a mark once, before the number or after it (¥12, -¥12, 12元, 30%): 3%0 or 30%% is no number
    text = next((text[len(m):] for m in marks if text.startswith(m)), text)
    text = next((text[: -len(m)] for m in marks if text.endswith(m)), text)
    text = sign + text
    return Decimal(text) if PLAIN_NUMBER.fullmatch(text) else None


def typed_share(value) -> Decimal | None:
    """A share or a ratio as typed (a bonus coefficient of 1.2): a number as typed_decimal reads it, or a percentage
    of it — 30% or ３０％ is 0.3, 120% is 1.2; None for anything else."""
    text = unicodedata.normalize("NFKC", str(value)).strip()
    if not text.endswith("%"):
        return typed_decimal(text)
    number = typed_decimal(text[:-1])
    return None if number is None else number / 100


def typed_code(value) -> str:
    """A code of digits as typed (a region code, 行政区划代码): full-width digits (１１０１０１, an input method's
    full-width mode) read as the ASCII ones and spaces left out. Anything else is given back as it is, for the
    reader to refuse."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", str(value)))


def percent_text(value, *, fraction: bool = False, exact: bool = False) -> str:
    """A percentage as every page, chart label and text export writes it, as Chinese business software does: "12.5%"
    — no space before the sign, one decimal place, none when the figure needs none ("12%", not "12.0%"); "—" for no
    figure. `value` is in percent (12.5), or a fraction of one (0.125) with `fraction`; `exact` for a figure somebody
    set (a discount level of 2.25%, a weight, a goal), shown as set without trailing zeros rather than rounded. Pages
    wrote "12.5%", "12.50 %", "12.5 %" and 0.125 for the same kind of figure. Anything that is no number is given
    back as text."""
    if value is None or value == "":
        return "—"
    try:
        number = Decimal(str(value))
    except (ArithmeticError, ValueError):
        return str(value)
    if not number.is_finite():
        return str(value)
    if fraction:
        number *= 100
    if exact:
        number = number.normalize()
    else:
        number = number.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    if number == number.to_integral_value():
        number = number.quantize(Decimal("1"))
    return f"{number + 0:f}%"  # + 0: -0.0 is "0%"
