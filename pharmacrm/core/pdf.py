"""PDF documents with Chinese text (fpdf2): the CJK font found on the machine, an A4 page with a footer
(page x/y, when generated), tables that wrap their cells, and tick boxes.

Reports, agreements and the 药品不良反应/事件报告表 (safety/report_pdf.py) build on `document()`.
Parsing a 20 MB font collection costs a quarter of a second, so each face is parsed once per process and
every document gets a light copy of it (fpdf2 subsets the font it embeds in place, so the copy opens its
own handle on the file)."""

from __future__ import annotations

import contextlib
import copy
import glob
import io
import os
import threading
import types
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import fpdf.output
from django.conf import settings
from django.utils import formats, timezone, translation
from django.utils.translation import gettext as _
from fontTools import subset as ftsubset
from fontTools import ttLib
from fpdf import FPDF, FontFace
from fpdf.enums import TextEmphasis
from fpdf.fonts import SubsetMap, TTFFont

FAMILY = "cjk"
FONT_PACKAGE = "fonts-noto-cjk"
# looked for in this order when PHARMACRM_PDF_FONT is not set; the bold face sits next to the regular one
FONT_CANDIDATES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/*.tt[cf]",
)
MARGIN = 15.0  # mm
FOOTER_HEIGHT = 10.0  # mm
BOX_CHECKED, BOX_EMPTY = "☑", "☐"
BOX_CHECKED_FALLBACK, BOX_EMPTY_FALLBACK = "■", "□"  # in every CJK font (GB 2312 has them)
# Tables removed from each document's handle on the font (not from the file) before fpdf2 subsets it: the
# subsetter reads and prunes every table present, about 0.7 s per face of Noto CJK, while what is embedded
# needs far fewer. A CID-keyed CFF font (Noto CJK) is embedded as its CFF table alone, which the subsetter
# cuts with the help of head and maxp; a TrueType font is embedded whole, less the OpenType layout tables
# fpdf2 drops anyway (it lays text out without them). The metrics fpdf2 lays the text out with were read
# once per process (_parsed_face), not from this handle.
CID_CFF_SUBSET_TABLES = ("GlyphOrder", "CFF ", "head", "maxp")
UNUSED_LAYOUT_TABLES = ("GSUB", "GPOS", "GDEF")


@dataclass(frozen=True)
class Face:
    """One face of a font file: a .ttc collection holds several (JP, KR, SC, TC …)."""

    path: str
    index: int = 0


@dataclass(frozen=True)
class Fonts:
    regular: Face
    bold: Face | None
    boxes: tuple[str, str]  # (checked, empty)


def _sc_index(path: str) -> int:
    """The Simplified Chinese face of a collection ("Noto Sans CJK SC" is index 2 of Debian's Noto .ttc);
    the first face when none says SC."""
    if not path.lower().endswith((".ttc", ".otc")):
        return 0
    collection = ttLib.TTCollection(path, lazy=True)
    try:
        for index, face in enumerate(collection.fonts):
            name = face["name"].getDebugName(1) or ""
            if name.endswith((" SC", " GB")) or "Simplified" in name:
                return index
        return 0
    finally:
        collection.close()


def _bold_sibling(path: str) -> str | None:
    for regular, bold in (("-Regular.", "-Bold."), ("Regular", "Bold")):
        if regular in os.path.basename(path):
            candidate = os.path.join(os.path.dirname(path), os.path.basename(path).replace(regular, bold, 1))
            if os.path.exists(candidate):
                return candidate
    return None


def _boxes(face: Face) -> tuple[str, str]:
    font = ttLib.TTFont(face.path, fontNumber=face.index, lazy=True)
    try:
        cmap = font.getBestCmap() or {}
    finally:
        font.close()
    if ord(BOX_CHECKED) in cmap and ord(BOX_EMPTY) in cmap:
        return BOX_CHECKED, BOX_EMPTY
    return BOX_CHECKED_FALLBACK, BOX_EMPTY_FALLBACK


@lru_cache(maxsize=4)
def _find_fonts(configured: str) -> Fonts:
    if configured:
        if not os.path.isfile(configured):
            raise RuntimeError(
                _("PHARMACRM_PDF_FONT names %(path)s, which is not a font file.") % {"path": configured}
            )
        path = configured
    else:
        found = [p for pattern in FONT_CANDIDATES for p in sorted(glob.glob(pattern)) if os.path.isfile(p)]
        if not found:
            raise RuntimeError(
                _(
                    "No Chinese font for PDF documents: install the Debian package %(package)s "
                    "or set PHARMACRM_PDF_FONT to a .ttf/.otf/.ttc file."
                )
                % {"package": FONT_PACKAGE}
            )
        path = found[0]
    regular = Face(path, _sc_index(path))
    bold_path = _bold_sibling(path)
    bold = Face(bold_path, _sc_index(bold_path)) if bold_path else None
    return Fonts(regular, bold, _boxes(regular))


def fonts() -> Fonts:
    """The CJK font of this machine: the PHARMACRM_PDF_FONT setting (or environment variable), else the
    first installed of FONT_CANDIDATES; RuntimeError naming the package to install when there is none."""
    configured = getattr(settings, "PHARMACRM_PDF_FONT", None) or os.environ.get("PHARMACRM_PDF_FONT", "")
    return _find_fonts(str(configured))


_parsed: dict[tuple[Face, str], TTFFont] = {}
_parsed_lock = threading.Lock()


def _parsed_face(face: Face, style: str) -> TTFFont:
    """The face parsed once per process (metrics, cmap, glyph ids: what makes add_font slow)."""
    key = (face, style)
    with _parsed_lock:
        font = _parsed.get(key)
        if font is None:
            scratch = FPDF()
            scratch.add_font(FAMILY, style, face.path, collection_font_number=face.index)
            font = scratch.fonts[f"{FAMILY}{style}"]
            font.ttfont.close()  # each document opens its own (below)
            _parsed[key] = font
        return font


# --- Subsets kept. fpdf2 cuts each embedded face down to the glyphs the document uses (fontTools' subsetter):
# 0.3–0.5 s of CPU per face of Noto CJK, most of it reading the CFF table of 65,000 glyphs. The same glyphs of the
# same face give the same bytes, so the last SUBSETS_KEPT subsets are kept (tens of KB each) and a document that
# uses the same glyphs as one before (an agreement issued again, a report regenerated, the same template filled
# for another customer of the same name's characters) gets a copy of the kept one. Only for CID-keyed CFF faces,
# whose glyph names (cid00123) come from the font's own character ids and so survive the round trip through
# bytes; a TrueType face's subset renumbers glyphs whose names may be made from their numbers.
SUBSETS_KEPT = 32
_subsets: OrderedDict[tuple, bytes] = OrderedDict()
_subsets_lock = threading.Lock()


class _KeptSubsetter(ftsubset.Subsetter):
    def populate(self, glyphs=(), **kwargs):
        self._glyph_set = frozenset(glyphs)
        super().populate(glyphs=glyphs, **kwargs)

    def subset(self, font: ttLib.TTFont) -> None:
        face = getattr(font, "pharmacrm_face", None)
        if face is None or not hasattr(self, "_glyph_set"):
            return super().subset(font)
        key = (face, self._glyph_set, repr(sorted(vars(self.options).items())))
        with _subsets_lock:
            kept = _subsets.get(key)
            if kept is not None:
                _subsets.move_to_end(key)
        if kept is None:
            super().subset(font)
            out = io.BytesIO()
            font.save(out)
            with _subsets_lock:
                _subsets[key] = out.getvalue()
                while len(_subsets) > SUBSETS_KEPT:
                    _subsets.popitem(last=False)
            return None
        font.close()
        ttLib.TTFont.__init__(font, io.BytesIO(kept), recalcBBoxes=False, recalcTimestamp=False)
        return None


# fpdf2 reads Options and Subsetter from this module attribute when it writes a document
fpdf.output.ftsubset = types.SimpleNamespace(Options=ftsubset.Options, Subsetter=_KeptSubsetter)


def _add_font(pdf: FPDF, face: Face, style: str) -> None:
    """pdf.add_font() without parsing the file again: share the parsed metrics, give the document its own
    font handle and subset (both are changed when the document is written)."""
    parsed = _parsed_face(face, style)
    font = copy.copy(parsed)
    font.i = len(pdf.fonts) + 1
    font.ttfont = ttLib.TTFont(face.path, recalcBBoxes=False, recalcTimestamp=False, fontNumber=face.index, lazy=True)
    if font.is_cff and font.is_cid_keyed:
        unused = [tag for tag in font.ttfont.keys() if tag not in CID_CFF_SUBSET_TABLES]
        font.ttfont.pharmacrm_face = (face, os.stat(face.path).st_mtime_ns)  # its subsets may be kept
    else:
        unused = [tag for tag in UNUSED_LAYOUT_TABLES if tag in font.ttfont]
    for tag in unused:
        del font.ttfont[tag]
    font.missing_glyphs = []
    font.biggest_size_pt = 0
    font._hbfont = None
    font.subset = SubsetMap(font)
    pdf.fonts[font.fontkey] = font
    if font.is_cff and font.is_cid_keyed:
        pdf._set_min_pdf_version("1.6")


class Document(FPDF):
    """An A4 page in the CJK font with a footer: the title, page x/y and when it was generated."""

    def __init__(self, title: str, *, languages: tuple[str, ...] = ()) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.doc_title = title
        self.languages = languages  # a bilingual document's footer in each of them; else the reader's
        self.generated_at = timezone.localtime()
        self.cjk = fonts()
        self.boxes = self.cjk.boxes
        _add_font(self, self.cjk.regular, "")
        self.set_margins(MARGIN, MARGIN, MARGIN)
        self.set_auto_page_break(True, margin=MARGIN + FOOTER_HEIGHT)
        self.set_title(title)
        self.set_creator("PharmaCRM")
        self.set_creation_date(self.generated_at)
        self.set_font(FAMILY, size=10)

    def set_font(self, family: str | None = None, style: str | TextEmphasis = "", size: float = 0) -> None:
        """Embeds the bold face only in a document that uses it: every face embedded costs about 0.2 s of
        subsetting when the document is written."""
        if family in (None, "", FAMILY) and "B" in str(getattr(style, "style", style)).upper():
            if f"{FAMILY}B" not in self.fonts:
                _add_font(self, self.cjk.bold or self.cjk.regular, "B")
        super().set_font(family, style, size)

    def _fitted_cell(self, width: float, text: str) -> None:
        """A footer cell whose text fits its width: a smaller face first, then cut with an ellipsis (a bare cut
        left "重点客户专属服务协议 Key-Account Service", as if that were the title)."""
        if self.get_string_width(text) > width:
            self.set_font(FAMILY, size=6.5)
        if self.get_string_width(text) > width:
            while text and self.get_string_width(text + "…") > width:
                text = text[:-1]
            text = text.rstrip() + "…"
        self.cell(width, 5, text, align="L")

    def footer(self) -> None:
        self.set_y(-(MARGIN + FOOTER_HEIGHT / 2))
        self.set_font(FAMILY, size=8)
        self.set_text_color(90)
        generated = formats.date_format(self.generated_at, "Y-m-d H:i")
        parts = []
        for language in self.languages or (None,):
            with translation.override(language) if language else contextlib.nullcontext():
                page = _("Page %(page)s of %(pages)s") % {"page": self.page_no(), "pages": self.str_alias_nb_pages}
                parts.append((page, _("Generated %(time)s") % {"time": generated}))
        text = " / ".join(p for p, _g in parts) + "    " + " / ".join(g for _p, g in parts)
        # the page numbers and time take what they need (the page count's alias is wider than its digits); the
        # title the rest, at least a quarter of the line
        right = min(self.get_string_width(text) + 2, self.epw * 0.75)
        self._fitted_cell(self.epw - right, self.doc_title)
        self.set_font(FAMILY, size=8)
        self.cell(right, 5, text, align="R")
        self.set_text_color(0)
        self.set_font(FAMILY, size=10)


def document(title: str, *, heading: bool = True, languages: tuple[str, ...] = ()) -> Document:
    """A new document with its first page, the title printed on it as a heading unless heading=False;
    `languages` for a bilingual document (its footer in both)."""
    pdf = Document(title, languages=languages)
    pdf.add_page()
    if heading:
        pdf.set_font(FAMILY, "B", 16)
        pdf.multi_cell(0, 9, title, align="C", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
        pdf.set_font(FAMILY, size=10)
    return pdf


def to_bytes(pdf: FPDF) -> bytes:
    return bytes(pdf.output())


def _text(value: object) -> str:
    return "" if value is None else str(value)


def table(
    pdf: FPDF,
    headers: Sequence[str],
    rows: Iterable[Sequence[object]],
    widths: Sequence[float],
    *,
    font_size: float = 9,
    min_row_height: float = 0,
) -> None:
    """A bordered table across the page width: `widths` are relative, cell text wraps, the header row
    repeats on each new page. None prints as an empty cell."""
    pdf.set_font(FAMILY, size=font_size)
    with pdf.table(
        width=pdf.epw,
        col_widths=tuple(widths),
        headings_style=FontFace(emphasis="BOLD", fill_color=(235, 235, 235)),
        line_height=font_size * 0.5,
        text_align="LEFT",
        v_align="TOP",
        padding=1,
        min_row_height=min_row_height or None,
    ) as grid:
        head = grid.row()
        for header in headers:
            head.cell(_text(header))
        for values in rows:
            row = grid.row()
            for value in values:
                row.cell(_text(value))
    pdf.set_font(FAMILY, size=10)


def checkbox(label: str, checked: bool) -> str:
    """A labelled tick box as on Chinese paper forms ("男☐ 女☑"), in whichever box characters the font has."""
    ticked, empty = fonts().boxes
    return f"{label}{ticked if checked else empty}"


def checkboxes(options: Iterable[tuple[str, bool]], sep: str = "  ") -> str:
    return sep.join(checkbox(label, checked) for label, checked in options)
