"""Validation against the official ICH E2B(R3) schemas shipped under pharmacrm/safety/data/e2b-r3/.

Parsing the schema set takes about a second, so each schema is compiled once per process. Documents are
parsed with a hardened parser: no network, no entity expansion, no DTD loading (an ICSR arrives from
outside the company)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.utils.translation import gettext as _
from lxml import etree

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "data" / "e2b-r3" / "multicacheschemas"
BATCH = "MCCI_IN200100UV01"  # an ICSR batch
ACK = "MCCI_IN200101UV01"  # an acknowledgement
HL7 = "urn:hl7-org:v3"


def max_bytes() -> int:
    """The largest E2B(R3) file taken in or released (settings.ICSR_MAX_BYTES, 50 MB unless configured): read on
    each call, so the page, the API, the command line and the export never disagree."""
    return int(settings.ICSR_MAX_BYTES)


def max_mb() -> str:
    return f"{max_bytes() / (1024 * 1024):g}"


def too_large() -> str:
    """The refusal of a file over the limit, the same on the import page (on its `file` field), in the API (under
    `file`) and on the command line."""
    return _("The file is larger than %(size)s MB: nothing was imported.") % {"size": max_mb()}


@dataclass(frozen=True)
class SchemaError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@functools.cache
def schema(name: str) -> etree.XMLSchema:
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    return etree.XMLSchema(etree.parse(str(SCHEMA_DIR / f"{name}.xsd"), parser))


def parser() -> etree.XMLParser:
    return etree.XMLParser(
        no_network=True, resolve_entities=False, load_dtd=False, dtd_validation=False, huge_tree=False,
        remove_blank_text=False,
    )  # fmt: skip


def parse(data: bytes) -> etree._ElementTree:
    """Parse untrusted XML; raises etree.XMLSyntaxError (or ValueError when too large)."""
    if len(data) > max_bytes():
        raise ValueError("too large")
    return etree.ElementTree(etree.fromstring(data, parser()))


def validate(doc: etree._ElementTree | bytes, name: str = BATCH) -> list[SchemaError]:
    """The schema errors of a document (empty when it validates)."""
    if isinstance(doc, bytes):
        doc = parse(doc)
    xsd = schema(name)
    if xsd.validate(doc):
        return []
    return [SchemaError(e.line, e.message) for e in xsd.error_log]
