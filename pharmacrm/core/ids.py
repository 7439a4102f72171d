"""Ids from query strings and forms: only plain ASCII digits that fit a database integer count as an id
("²" is a digit to str.isdigit(), and 30 nines overflow the database)."""

MAX_ID = 2**63 - 1


def is_id(value) -> bool:
    text = "" if value is None else str(value)
    return text.isascii() and text.isdecimal() and len(text) < 19 and int(text) <= MAX_ID


def as_id(value) -> int | None:
    return int(str(value)) if is_id(value) else None
