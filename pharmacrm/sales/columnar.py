"""The columnar lane of an initial load (`pharmacrm import orders FILE --initial-load`).

The ordinary import checks each row in Python (`importer.Fast.row`, about 39 µs of CPU per line with the look-ups,
the duplicate checks and the fingerprint): 22,000–23,000 lines per second at best on two cores. This lane reads a
UTF-8 CSV file with Arrow's CSV reader in blocks of about ten thousand lines and makes the same checks on whole
columns in Arrow's compiled kernels; it builds no Python object per line except the fingerprint's text. What it
stores is what the row-by-row lane stores, line for line and fingerprint for fingerprint:

- A line whose cells the kernels find plain (the shapes `Fast.row` accepts, a little narrower: no leading zeros, no
  spaces inside codes, amounts under a billion yuan…) and whose customer one code names is checked and converted in
  columns. Every other line — an error, an unusual but valid cell, a customer the two codes name differently, a row
  with more or fewer cells than the header — goes through the row-by-row checks (`Run.prepare`), in the same pass,
  so that its error or its value is exactly the ordinary import's.
- The in-file checks that need the whole file — the same order line twice, one order naming two customers — are
  made by the database at the end, on the loaded lines, instead of in per-line temporary files. A line carries its
  file row in its id (`id = base + row`), so that a refused line is reported at its row, with its own cells (read
  back from the file), as the ordinary import reports it. On SQLite the table's unique constraint stays and a
  repeated line is caught at insert (`INSERT OR IGNORE`, then the missing ids); on PostgreSQL it is dropped with the
  indexes, and the repeats are looked for only when it cannot be built again.

The lane is chosen for CSV files in UTF-8; other files (XLSX, GB18030, UTF-16 text) use the row-by-row lane. Where
Arrow cannot read the file as Python's csv module does (a row longer than a block, a cell longer than the csv module
reads), the load is rolled back and runs again row by row, which says what the ordinary import says."""

from __future__ import annotations

import csv
import datetime as dt
import functools
import io
import itertools
import mmap
import os
import threading
from hashlib import blake2b

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
from django.db import connection
from django.utils import timezone

from pharmacrm.customers import importer as base
from pharmacrm.customers import normalise
from pharmacrm.customers.models import Institution

from . import importer as orders
from .models import OrderLine


def _lean_pool() -> pa.MemoryPool:
    """jemalloc, as Arrow configures it, gives freed pages back to the system within a second; mimalloc, pyarrow's
    default on Linux, kept them: a 2 M-line load's peak was 430–440 MiB with mimalloc (of which its arena held
    about 135 MiB while Arrow's buffers were 50–80 MiB), 390–395 MiB with jemalloc, for the same CPU time
    (docs/benchmarks.md, fortieth session). An operator's ARROW_DEFAULT_MEMORY_POOL is left as chosen."""
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return pa.default_memory_pool()
    try:
        return pa.jemalloc_memory_pool()
    except NotImplementedError:  # a pyarrow built without jemalloc
        return pa.default_memory_pool()


pa.set_memory_pool(_lean_pool())  # pyarrow is used by this lane only: the pool of the whole process

BLOCK_BYTES = 2 << 20  # Arrow reads the file in blocks of this size (about 10,000 template lines); its reader holds
# about 30 blocks' worth at a time: 4 MiB blocks took the load to 430 MiB, 2 MiB to 330
SCAN_WINDOW = 32 << 20  # misquoted: bytes searched between two releases of the pages read
PREVIEW_ROWS = base.PREVIEW_ROWS  # the first rows go row by row: the preview shows them as the ordinary import does
ENCODINGS = ("utf-8", "utf-8-sig")
# what may not begin or end a free-text cell the kernels accept (the row-by-row lane strips Unicode spaces)
_EDGE = r"\x00-\x20\x7f-\xa0\x{1680}\x{180e}\x{2000}-\x{200b}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}\x{feff}"
_TRIMMED = rf"^(?:[^'{_EDGE}](?:.*[^{_EDGE}])?)?$"  # empty, or no space at either end and no ' first
_CODE = r"^(?:[!-&(-~][!-~]{0,39})?$"  # printable ASCII, no space, no ' first, at most 40 (batch, invoice)
_ORDER = r"^[!-&(-~][!-~]{0,39}$"
_PRODUCT = r"^[!-&(-+\--~][!-+\--~]{0,39}$"  # …and no comma
_DATE = r"^20[0-9]{2}-[01][0-9]-[0-3][0-9]$"
_QTY = r"^(?:0|[1-9][0-9]{0,5})(?:\.[0-9]{1,3})?$"  # under a million: quantity × price stays in 64 bits
_PRICE = r"^(?:0|[1-9][0-9]{0,4})(?:\.[0-9]{1,4})?$"  # under 100,000 yuan
_MONEY = r"^(?:0|[1-9][0-9]{0,8})(?:\.[0-9]{1,2})?$"  # under a billion yuan
_SLACK = {2: 100, 3: 10, 4: 1}  # importer._PRICE_SLACK


def misquoted(path, delimiter: str, window: int = SCAN_WINDOW) -> bool:
    """Whether the csv module, reading strictly as the ordinary import does, stops at the file's quotes: a quotation
    mark opening a cell that nothing closes, or a cell's closing mark followed by more text than the delimiter or
    the line's end (a stray quote that a later cell's quote closed). The ordinary import refuses such a file, naming
    the row (`base.UnreadableRow`); Arrow reads on and says nothing. Read as the csv module reads: a quote opens a
    cell only at the cell's start, and after that only a run of an odd number of quotes closes it (two are a quote
    in the text). A jump from quote to quote (`find`, at memory speed): a file without quotes costs 0.1 s a GiB.

    The file is mapped, and the mapped pages it has read count as the process's memory until they are let go: the
    search goes `window` bytes at a time and gives back the pages behind it, so that a 2 GiB file does not show as
    2 GiB more of the load's peak memory."""
    with open(path, "rb") as fh:
        size = fh.seek(0, io.SEEK_END)
        if not size:
            return False
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            released = 0

            def next_quote(start: int) -> int:
                nonlocal released
                while start < size:
                    behind = (start - mmap.PAGESIZE) // mmap.PAGESIZE * mmap.PAGESIZE  # a page kept for look-behind
                    if behind - released >= window and hasattr(mm, "madvise"):
                        mm.madvise(mmap.MADV_DONTNEED, released, behind - released)
                        released = behind
                    stop = min(size, start + window)
                    found = mm.find(b'"', start, stop)
                    if found >= 0:
                        return found
                    start = stop
                return -1

            begin = 3 if mm[:3] == b"\xef\xbb\xbf" else 0
            delimiter = delimiter.encode("utf-8")
            width = len(delimiter)
            inside, pos = False, next_quote(begin)
            while pos >= 0:
                end = pos + 1
                while end < size and mm[end] == 0x22:
                    end += 1
                run = end - pos
                if inside:
                    closed = run % 2 == 1
                elif pos == begin or mm[pos - 1] in b"\r\n" or mm[pos - width : pos] == delimiter:
                    closed = run % 2 == 0  # the first quote opens the cell; an odd run after it closes it
                else:  # a quote inside a cell that no quote opened: text
                    pos = next_quote(end)
                    continue
                inside = not closed
                if closed and end < size and mm[end] not in b"\r\n" and mm[end : end + width] != delimiter:
                    return True
                pos = next_quote(end)
            return inside


class NotColumnar(Exception):
    """Arrow could not read the file the way Python's csv module does: the load starts again row by row."""


def eligible(sheet) -> bool:
    info = sheet.info
    return info.kind == "csv" and info.encoding in ENCODINGS and len(info.delimiter) == 1


class Customers:
    """Every customer's credit code and external id → the record its orders go to (a merged record's survivor, to
    the end of the chain), as Arrow arrays for `index_in`. Loaded once, under the writers' lock (a merge needs it
    too, so none happens while the file loads). A code two records share is left out: the row-by-row lane decides."""

    def __init__(self):
        rows = list(Institution.objects.values_list("id", "credit_code", "external_id", "merged_into_id"))
        merged = {pk: into for pk, _c, _e, into in rows if into}

        def survivor(pk: int) -> int:
            seen = set()
            while pk in merged and pk not in seen:
                seen.add(pk)
                pk = merged[pk]
            return pk

        self.credit = self._index([(c, pk) for pk, c, _e, _m in rows if c], survivor)
        self.external = self._index([(e, pk) for pk, _c, e, _m in rows if e], survivor)

    @staticmethod
    def _index(pairs, survivor) -> dict[str, int]:
        seen: dict[str, int | None] = {}
        for code, pk in pairs:
            seen[code] = None if code in seen else survivor(pk)
        return {c: pk for c, pk in seen.items() if pk is not None}

    @staticmethod
    def find(codes: pa.Array, index: dict[str, int]) -> pa.Array:
        """The customer id of each code, null where none (or an empty code). Looked up per distinct code of the block
        (a few thousand), not by `index_in` against every customer's code, which builds a hash table of all of them
        (100,000) for every block: 5 ms a block, 10 s of a 10 M-line load on the reading core."""
        unique = pc.unique(codes)
        ids = pa.array([index.get(code) for code in unique.to_pylist()], pa.int64())
        return pc.take(ids, pc.index_in(codes, value_set=unique))


def _matches(column: pa.Array, pattern: str) -> pa.Array:
    return pc.match_substring_regex(column, pattern)


def _split(text: pa.Array, places: int) -> tuple[pa.Array, pa.Array, pa.Array]:
    """A plain decimal's canonical text ('12.5' → '12.500' with 3 places, '7' → '7.000'), its value in units of the
    last place (12500), and how many places it was given with (1)."""
    dotted = pc.if_else(pc.match_substring(text, "."), text, pc.binary_join_element_wise(text, ".", ""))
    parts = pc.split_pattern(dotted, ".", max_splits=1)
    whole, fraction = pc.list_element(parts, 0), pc.list_element(parts, 1)
    filled = pc.utf8_slice_codeunits(pc.binary_join_element_wise(fraction, "0" * places, ""), 0, places)
    canonical = pc.binary_join_element_wise(whole, filled, ".")
    units = pc.cast(pc.binary_join_element_wise(whole, filled, ""), pa.int64())
    return canonical, units, pc.utf8_length(fraction)


def _fingerprints(joined: pa.Array) -> pa.Array:
    """`importer.row_hash` of each line's joined canonical text (the one loop over lines in Python)."""
    digest, number = blake2b, int.from_bytes
    return pa.array(
        [number(digest(text, digest_size=8).digest(), "big", signed=True) for text in joined.cast(pa.binary()).to_pylist()],
        pa.int64(),
    )  # fmt: skip


class Lane:
    """Reads the file in Arrow blocks and turns each into a `Chunk`: its plain lines as an Arrow table of the line
    table's columns (`Chunk.table`), its other rows checked row by row (`Chunk.rows`), as `Run.prepare` does."""

    def __init__(self, run, sheet, header):
        self.run, self.path, self.info, self.header = run, sheet.path, sheet.info, header
        self.width = max(len(header.cells), self._data_width())
        self.names = [f"c{i}" for i in range(self.width)]
        self.where = {col.key: f"c{i}" for i, col in header.mapping}
        self.ragged: list[tuple[int, list[str]]] = []  # (row, cells) of rows with more or fewer cells than the header
        self.customers: Customers | None = None
        today = timezone.localdate()
        self.today, self.latest = today.isoformat(), (today + dt.timedelta(days=366 * 5)).isoformat()
        self.days: dict[str, bool] = {}  # a date's text → a real day

    def _data_width(self) -> int:
        """The cells of the first data row: an export that ends every data row with an empty cell more than its
        header (a trailing delimiter) is read at that width, not row by row as rows of another width."""
        with open(self.path, encoding=self.info.encoding, newline="") as fh:
            for number, cells in enumerate(csv.reader(fh, delimiter=self.info.delimiter), start=1):
                if number > self.header.row:
                    return len(cells)
        return 0

    def _reader(self):
        def aside(row) -> str:
            if row.number is None or row.number < 1:
                raise NotColumnar("a row with another number of cells, at an unknown row")
            cells = next(csv.reader(io.StringIO(row.text, newline=""), delimiter=self.info.delimiter), [])
            self.ragged.append((row.number, cells))
            return "skip"

        try:
            return pcsv.open_csv(
                self.path,
                read_options=pcsv.ReadOptions(column_names=self.names, block_size=BLOCK_BYTES, use_threads=False),
                parse_options=pcsv.ParseOptions(delimiter=self.info.delimiter, newlines_in_values=True,
                                                ignore_empty_lines=False, invalid_row_handler=aside),
                convert_options=pcsv.ConvertOptions(column_types=dict.fromkeys(self.names, pa.string()),
                                                    strings_can_be_null=False, quoted_strings_can_be_null=False),
            )  # fmt: skip
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            raise NotColumnar(str(e)) from e

    def batches(self):
        """(file rows, record batch) of the data rows, in file order, header and title rows left out."""
        if misquoted(self.path, self.info.delimiter):
            raise NotColumnar("a quotation mark that nothing closes, or text after a closing one")
        reader = self._reader()
        nxt, taken = 1, 0  # the next record's row if no row is set aside; ragged rows counted so far
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                raise NotColumnar(str(e)) from e
            n = batch.num_rows
            rows = pa.array(range(nxt + taken, nxt + taken + n), pa.int64())
            nxt += n
            self.ragged.sort()
            top = nxt + taken - 1
            while taken < len(self.ragged) and self.ragged[taken][0] <= top:  # a set-aside row shifts those after
                rows = pc.if_else(pc.greater_equal(rows, self.ragged[taken][0]), pc.add(rows, 1), rows)
                taken += 1
                top += 1
            keep = pc.greater(rows, self.header.row)
            if not pc.all(keep).as_py():
                batch, rows = batch.filter(keep), rows.filter(keep)
            if batch.num_rows:
                yield rows, batch

    @staticmethod
    def _readable(batch) -> None:
        """A cell longer than Python's csv module reads stops the row-by-row import at its row ("the file cannot be
        read past row N"): the load goes that way, to say the same."""
        for column in batch.columns:
            if (pc.max(pc.binary_length(column)).as_py() or 0) > csv.field_size_limit():
                if (pc.max(pc.utf8_length(column)).as_py() or 0) > csv.field_size_limit():
                    raise NotColumnar("a cell longer than the csv module reads")

    def _col(self, batch, key: str) -> pa.Array:
        name = self.where.get(key)
        if name is None:
            return pa.repeat("", batch.num_rows).cast(pa.string()) if batch.num_rows else pa.array([], pa.string())
        return batch.column(name)

    def _real_days(self, text: pa.Array) -> pa.Array:
        """Whether each YYYY-MM-DD text is a real day (2025-02-30 is not): the few distinct texts in Python."""
        for value in pc.unique(text).to_pylist():
            if value not in self.days:
                try:
                    dt.date.fromisoformat(value)
                    self.days[value] = True
                except ValueError:
                    self.days[value] = False
                if len(self.days) > 100_000:
                    self.days.clear()
        good = [t for t in pc.unique(text).to_pylist() if self.days.get(t)]
        return pc.is_in(text, value_set=pa.array(good, pa.string()))

    @staticmethod
    def _approvals_fit(ap: pa.Array) -> pa.Array:
        """Whether each approval number fits the catalogue's 16 characters as the row-by-row checks read it, normalised
        (`importer.approval_cell`; the block's few distinct texts in Python): measured as typed, 国药准字H1㍿0950224 (㍿
        is 株式会社 once normalised) was taken here and refused row by row."""
        texts = pc.unique(ap).to_pylist()
        fits = [t for t in texts if orders.approval_cell(t) is not None]
        if len(fits) == len(texts):
            return pa.repeat(True, len(ap)) if len(ap) else pa.array([], pa.bool_())
        return pc.is_in(ap, value_set=pa.array(fits, pa.string()))

    def plain(self, batch, row_by_row: int = 0) -> tuple[pa.Array, dict]:
        """Which lines the kernels take (never the first `row_by_row`), and the taken lines' values as columns."""
        col = functools.partial(self._col, batch)
        on, ln, od, cc, ext = col("order_number"), col("line_number"), col("order_date"), col("credit_code"), col("external_id")
        code, name, ap, bn, inv = col("product_code"), col("product_name"), col("approval_number"), col("batch_number"), col("invoice_number")
        qty, price, amt, due, paid, paid_amt = col("quantity"), col("unit_price"), col("amount"), col("payment_due"), col("paid_date"), col("paid_amount")  # fmt: skip
        ok = pc.and_(_matches(on, _ORDER), _matches(ln, r"^[1-9][0-9]{0,5}$"))
        for column, pattern in ((code, _PRODUCT), (bn, _CODE), (inv, _CODE), (qty, _QTY), (price, _PRICE),
                                (amt, rf"^$|{_MONEY}"), (paid_amt, rf"^$|{_MONEY}"), (due, rf"^$|{_DATE}"),
                                (paid, rf"^$|{_DATE}"), (od, _DATE), (name, _TRIMMED), (ap, _TRIMMED),
                                (cc, r"^(?:[0-9A-Z]{18})?$"), (ext, r"^[!-~]*$")):  # fmt: skip
            ok = pc.and_(ok, _matches(column, pattern))
        for column in (on, code, bn, inv, ext):  # as Excel writes a large number (2.40111E+19): row by row
            ok = pc.and_(ok, pc.invert(pc.match_substring(column, "E+")))
        ok = pc.and_(ok, pc.invert(pc.match_substring(ext, "e+")))
        ok = pc.and_(ok, pc.and_(pc.less_equal(pc.utf8_length(name), 100), self._approvals_fit(ap)))
        for _i, column in self.header.mapping:  # a failed formula's value (#N/A), a NUL: row by row
            cells = batch.column(f"c{_i}")
            ok = pc.and_(ok, pc.invert(pc.is_in(cells, value_set=pa.array(sorted(base.EXCEL_ERRORS)))))
            if self.info.has_nul:
                ok = pc.and_(ok, pc.invert(pc.match_substring(cells, "\x00")))
            if column.key == "currency":
                ok = pc.and_(ok, pc.is_in(cells, value_set=pa.array(sorted(orders._YUAN))))
        ok = pc.and_(ok, pc.less_equal(pc.cast(pc.if_else(_matches(ln, r"^[0-9]{1,6}$"), ln, "0"), pa.int64()), 100_000))
        ok = pc.and_(ok, pc.and_(pc.greater_equal(od, "2000-01-01"), pc.less_equal(od, self.today)))
        ok = pc.and_(ok, pc.or_(pc.not_equal(cc, ""), pc.not_equal(ext, "")))
        if row_by_row:  # the lines up to the `row_by_row`-th that surely counts in the preview (neither blank nor
            # a totals line: one of these cells holds more than spaces); a blank line does not count, row by row
            counts = functools.reduce(pc.or_, [_matches(c, rf"[^{_EDGE}]") for c in (ln, od, cc, ext)])
            before = pc.subtract(pc.cumulative_sum(pc.cast(counts, pa.int64())), pc.cast(counts, pa.int64()))
            ok = pc.and_(ok, pc.greater_equal(before, row_by_row))
        # the customer: one code given and found, or both naming the same record
        if self.customers is None:
            self.customers = Customers()
        a = Customers.find(cc, self.customers.credit)
        b = Customers.find(ext, self.customers.external)
        inst = pc.coalesce(a, b)
        same = pc.or_kleene(pc.or_kleene(pc.equal(cc, ""), pc.equal(ext, "")), pc.equal(a, b))
        ok = pc.and_(ok, pc.fill_null(pc.and_kleene(pc.is_valid(inst), same), False))
        if not pc.any(ok).as_py():
            return ok, {}
        # the values, on the taken lines only from here (the others may not even convert)
        keep = ok
        t = {k: v.filter(keep) for k, v in dict(on=on, ln=ln, od=od, code=code, name=name, ap=ap, bn=bn, inv=inv,
                                                 qty=qty, price=price, amt=amt, due=due, paid=paid,
                                                 paid_amt=paid_amt, inst=inst).items()}  # fmt: skip
        days = pc.and_(self._real_days(t["od"]), pc.or_(pc.equal(t["due"], ""), self._real_days(t["due"])))
        days = pc.and_(days, pc.or_(pc.equal(t["paid"], ""), self._real_days(t["paid"])))
        quantity, q_milli, _places = _split(t["qty"], 3)
        unit_price, price_e4, price_places = _split(t["price"], 4)
        checks = pc.and_(days, pc.not_equal(q_milli, 0))
        exact_2e5 = pc.multiply(pc.multiply(q_milli, price_e4), 2)
        given = pc.not_equal(t["amt"], "")
        _c, given_fen, _p = _split(pc.if_else(given, t["amt"], "0"), 2)
        computed = pc.divide(pc.add(pc.multiply(q_milli, price_e4), 50_000), 100_000)
        slack_per = pc.if_else(pc.less_equal(price_places, 2), _SLACK[2], pc.if_else(pc.equal(price_places, 3), _SLACK[3], _SLACK[4]))
        slack = pc.add(200_000, pc.multiply(q_milli, pc.cast(slack_per, pa.int64())))
        off = pc.abs(pc.subtract(pc.multiply(given_fen, 200_000), exact_2e5))
        checks = pc.and_(checks, pc.or_(pc.invert(given), pc.less_equal(off, slack)))
        amount = pc.if_else(given, given_fen, computed)
        has_due, has_paid = pc.not_equal(t["due"], ""), pc.not_equal(t["paid"], "")
        checks = pc.and_(checks, pc.or_(pc.invert(has_due), pc.and_(pc.greater_equal(t["due"], t["od"]),
                                                                       pc.less_equal(t["due"], self.latest))))  # fmt: skip
        checks = pc.and_(checks, pc.or_(pc.invert(has_paid), pc.and_(pc.greater_equal(t["paid"], t["od"]),
                                                                        pc.less_equal(t["paid"], self.today))))  # fmt: skip
        paid_given = pc.not_equal(t["paid_amt"], "")
        checks = pc.and_(checks, pc.or_(has_paid, pc.invert(paid_given)))  # a paid amount without its date: row by row
        _c, paid_given_fen, _p = _split(pc.if_else(paid_given, t["paid_amt"], "0"), 2)
        paid_fen = pc.if_else(has_paid, pc.if_else(paid_given, paid_given_fen, amount), 0)
        checks = pc.and_(checks, pc.less_equal(paid_fen, amount))
        values = dict(
            order_number=t["on"], line_number=pc.cast(t["ln"], pa.int64()), order_date=t["od"],
            month=pc.binary_join_element_wise(pc.utf8_slice_codeunits(t["od"], 0, 7), "-01", ""),
            institution_id=t["inst"], product_code=t["code"], product_name=t["name"], batch_number=t["bn"],
            quantity=quantity, unit_price=unit_price, amount_fen=amount, invoice_number=t["inv"],
            payment_due=pc.if_else(has_due, t["due"], pa.scalar(None, pa.string())),
            paid_date=pc.if_else(has_paid, t["paid"], pa.scalar(None, pa.string())), paid_fen=paid_fen,
        )  # fmt: skip
        values["approval"] = t["ap"]
        ok = pc.replace_with_mask(ok, ok, checks)  # `checks` (over the taken lines) back over the batch
        return ok, {k: v.filter(checks) for k, v in values.items()}

    def chunks(self, locked: threading.Event, writer):
        """The file's chunks for the writer. The customers are read once the writer holds the writers' lock."""
        from .importer import Chunk

        run = self.run
        while not locked.wait(0.5):
            if writer.error is not None:
                raise writer.error
        done = 0  # ragged rows handed on
        for rows, batch in self.batches():
            ragged = 0
            last = rows[-1].as_py()
            self._readable(batch)
            ok, values = self.plain(batch, row_by_row=max(PREVIEW_ROWS - run.preview_rows, 0))
            other = pc.invert(ok)
            careful = []
            if pc.any(other).as_py():
                rest = batch.filter(other)
                columns = [c.to_pylist() for c in rest.columns]
                careful = list(zip(rows.filter(other).to_pylist(), map(list, zip(*columns, strict=True)), strict=True))
            self.ragged.sort()
            while done < len(self.ragged) and self.ragged[done][0] <= last:
                if self.ragged[done][0] > self.header.row:
                    careful.append(self.ragged[done])
                    ragged += 1
                done += 1
            careful.sort(key=lambda r: r[0])
            known = len(run.unknown_products)
            if careful and values:  # a product code new to the catalogue is spelt as its first line, of either kind
                self._note_first_spellings(values["product_code"], rows.filter(ok))
            chunk = run.prepare(careful) if careful else Chunk([], [], {}, [])
            chunk.approval_rows = self._approval_rows(careful, chunk)
            chunk.processed = batch.num_rows + ragged
            chunk.last_row = run.last_row = max(last, careful[-1][0] if careful else 0)
            if values:
                chunk.table = self._table(values, rows.filter(ok), chunk)
                if chunk.rows and len(run.unknown_products) - known > 1:
                    self._unknown_in_file_order(known, chunk)
            yield chunk
        self.ragged.sort()
        tail = [r for r in self.ragged[done:] if r[0] > self.header.row]
        if tail:  # rows of another width after the last block's rows
            chunk = run.prepare(tail)
            chunk.last_row = run.last_row = tail[-1][0]
            yield chunk

    def _approval_rows(self, careful: list[tuple[int, list[str]]], chunk) -> dict[str, int]:
        """The row of the approval number each code links by among the chunk's lines checked row by row (the last
        of them the catalogue knows), so that a line the kernels take links the code only when it comes later."""
        where = next((i for i, col in self.header.mapping if col.key == "approval_number"), None)
        if where is None or not chunk.approvals:
            return {}
        good = dict(zip(chunk.numbers, (r[5] for r in chunk.rows), strict=True))
        out: dict[str, int] = {}
        for number, cells in careful:
            code = good.get(number)
            if code in chunk.approvals and where < len(cells) and cells[where].strip():
                if orders.approval_cell(cells[where]) == chunk.approvals[code]:
                    out[code] = number
        return out

    def _note_first_spellings(self, codes: pa.Array, rows: pa.Array) -> None:
        """The first row of each product code the block's lines taken in columns give (per distinct code)."""
        firsts = pa.table({"code": codes, "row": rows}).group_by("code", use_threads=False).aggregate([("row", "min")])
        self.run.resolver.note_first_spellings(dict(zip(firsts["code"].to_pylist(), firsts["row_min"].to_pylist(),
                                                        strict=True)))  # fmt: skip

    def _spelt(self, codes: pa.Array, rows: pa.Array) -> pa.Array:
        """The block's product codes as the catalogue keeps them (`Resolver.spell`): the distinct codes are looked
        up, and the column rebuilt only when one of them is spelt otherwise (yp1001 for the catalogue's YP1001)."""
        unique = pc.unique(codes)
        given = unique.to_pylist()

        def first_rows() -> dict[str, int]:
            firsts = pa.table({"code": codes, "row": rows}).group_by("code", use_threads=False).aggregate(
                [("row", "min")]
            )
            return dict(zip(firsts["code"].to_pylist(), firsts["row_min"].to_pylist(), strict=True))

        spelt = self.run.resolver.spell(set(given), first_rows)
        if all(spelt[c] == c for c in given):
            return codes
        return pc.take(pa.array([spelt[c] for c in given], pa.string()), pc.index_in(codes, value_set=unique))

    def _unknown_in_file_order(self, known: int, chunk) -> None:
        """The product codes the catalogue lacks that this chunk met first, in the order of their first lines (the
        note names them as the row-by-row lane meets them): its lines checked row by row were counted first."""
        unknown = self.run.unknown_products
        first: dict[str, int] = {}
        for number, r in zip(chunk.numbers, chunk.rows, strict=True):
            first.setdefault(r[5], number)
        table = chunk.table.group_by("product_code", use_threads=False).aggregate([("row", "min")])
        for code, row in zip(table["product_code"].to_pylist(), table["row_min"].to_pylist(), strict=True):
            first[code] = min(row, first.get(code, row))
        for code in sorted(itertools.islice(unknown, known, None), key=lambda c: first.get(c, 0)):
            unknown[code] = unknown.pop(code)

    def _table(self, v: dict, rows: pa.Array, chunk) -> pa.Table:
        """The taken lines as the line table's columns (`importer.LINE_COLUMNS`) and their file rows; the chunk's
        product links and the job's unknown products as the row-by-row lane counts them."""
        run = self.run
        v["product_code"] = self._spelt(v["product_code"], rows)
        ap = v.pop("approval")
        given = pc.not_equal(ap, "")
        if pc.any(given).as_py():
            texts = [t for t in pc.unique(ap.filter(given)).to_pylist()]
            normal = pa.array([orders.approval_cell(t) for t in texts], pa.string())
            ap = pc.if_else(given, pc.take(normal, pc.index_in(ap, value_set=pa.array(texts, pa.string()))), "")
            run.resolver.load_products({t.as_py() for t in pc.unique(ap.filter(given))})
            known = [a for a in pc.unique(ap.filter(given)).to_pylist() if run.resolver.products.get(a)]
            if known:  # each code's last approval number the catalogue knows, in file order with the chunk's others
                linking = pc.is_in(ap, value_set=pa.array(known, pa.string()))
                links = [c.filter(linking).to_pylist() for c in (v["product_code"], ap, rows)]
                for code, approval, row in zip(*links, strict=True):
                    if row > chunk.approval_rows.get(code, 0):
                        chunk.approvals[code], chunk.approval_rows[code] = approval, row
        self._count_products(v["product_code"], ap)
        linking = [a for a in pc.unique(ap).to_pylist() if a and run.resolver.products.get(a)]
        if linking:
            links = pc.value_counts(v["product_code"].filter(pc.is_in(ap, value_set=pa.array(linking, pa.string()))))
            for code, n in zip(links.field("values").to_pylist(), links.field("counts").to_pylist(), strict=True):
                run.resolver.link_lines[code] = run.resolver.link_lines.get(code, 0) + n
        hashed = [v[k] for k in orders.LINE_COLUMNS[:15]]
        joined = pc.binary_join_element_wise(
            *[pc.fill_null(c if c.type == pa.string() else pc.cast(c, pa.string()), "") for c in hashed], "\x1f"
        )
        v["outstanding_fen"] = pc.max_element_wise(pc.subtract(v["amount_fen"], v["paid_fen"]), 0)
        v["row_hash"] = _fingerprints(joined)
        v["row"] = rows
        return pa.table({k: v[k] for k in (*orders.LINE_COLUMNS, "row")})

    def _count_products(self, codes: pa.Array, approvals: pa.Array) -> None:
        run, resolver = self.run, self.run.resolver
        counts = pc.value_counts(codes)  # in the order of first appearance
        unique = counts.field("values").to_pylist()
        resolver.load_linked(set(unique))
        linking = {c for c, a in zip(codes.to_pylist(), approvals.to_pylist(), strict=True)
                   if a and resolver.products.get(a)} if pc.any(pc.not_equal(approvals, "")).as_py() else set()  # fmt: skip
        for code, n in zip(unique, counts.field("counts").to_pylist(), strict=True):
            if code in run.linked_in_file or resolver.linked.get(code):
                continue
            if code in linking:
                run.linked_in_file.add(code)
                continue
            if code in run.unknown_products:
                run.unknown_products[code] += n
            elif len(run.unknown_products) < orders.UNKNOWN_CODES_KEPT:
                run.unknown_products[code] = n
            else:
                run.unknown_overflow += n

    def cells_of(self, wanted: set[int]) -> dict[int, list[str]]:
        """The cells of these rows, read from the file again (for the report of lines refused at the end)."""
        found = {r: cells for r, cells in self.ragged if r in wanted}
        self.ragged = []
        for rows, batch in self.batches():
            hit = pc.is_in(rows, value_set=pa.array(sorted(wanted), pa.int64()))
            if pc.any(hit).as_py():
                part = batch.filter(hit)
                columns = [c.to_pylist() for c in part.columns]
                found.update(zip(rows.filter(hit).to_pylist(), map(list, zip(*columns, strict=True)), strict=True))
        return found


# --- the writing side (the writer's connection, in the load's transaction) ----------------------------------------

_TABLE = OrderLine._meta.db_table
_COLUMNS = ["id", *orders.LINE_COLUMNS, "job_id", "imported_at"]


def first_id() -> int:
    """The id before the load's first line: a line's id is this plus its file row (the table is empty, and the
    writers' lock keeps every other writer of lines out until the load commits)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id'))", [_TABLE])
        else:
            cursor.execute(f"SELECT MAX(seq) FROM sqlite_sequence WHERE name = '{_TABLE}'")  # noqa: S608
        return cursor.fetchone()[0] or 0


def write(writer, chunk, rows: list[tuple]) -> list[str]:
    """Store a chunk of the columnar lane: its product codes, then its lines with their ids."""
    run, first = writer.run, writer.first_id
    table = chunk.table
    # each code with the chunk's last name given (in file order, both kinds of line), as row by row
    last = {r[5]: (0, "") for r in rows}
    last.update({r[5]: (n, r[6]) for n, r in zip(chunk.numbers, rows, strict=True) if r[6]})
    if table is not None:
        gives = pc.not_equal(table["product_name"], "")  # the lines giving a name (the others null: skipped)
        given = pa.table({"product_code": table["product_code"],
                          "name": pc.if_else(gives, table["product_name"], pa.scalar(None, pa.string())),
                          "at": pc.if_else(gives, table["row"], pa.scalar(None, pa.int64()))})  # fmt: skip
        names = given.group_by("product_code", use_threads=False).aggregate(
            [("name", "last", pc.ScalarAggregateOptions(skip_nulls=True)), ("at", "max")]
        )
        for code, name, row in zip(*[names[c].to_pylist() for c in ("product_code", "name_last", "at_max")],
                                   strict=True):  # fmt: skip
            if code not in last or last[code][0] < (row or 0):
                last[code] = (row or 0, name or "")
    named = [(None, None, None, None, None, code, name) for code, (_row, name) in last.items()]
    if named:
        run.resolver.save_product_codes(named, chunk.approvals)
    now = writer.now if connection.vendor == "postgresql" else connection.ops.adapt_datetimefield_value(writer.now)
    careful = [(first + n, *r, writer.job_id, now) for n, r in zip(chunk.numbers, rows, strict=True)]
    if connection.vendor == "postgresql":
        base.insert_rows(_TABLE, _COLUMNS, careful)
        if table is not None:
            _copy(table, first, writer.job_id, now)
        return ["create"] * len(rows)
    lines = careful
    if table is not None:
        n = table.num_rows
        columns = [pc.add(table["row"], first).to_pylist(), *[table[c].to_pylist() for c in orders.LINE_COLUMNS],
                   [writer.job_id] * n, [now] * n]  # fmt: skip
        lines += zip(*columns, strict=True)
        lines.sort(key=lambda r: r[0])  # in file order: of two equal lines the first stays, as row by row
    qn = connection.ops.quote_name
    head = f"INSERT OR IGNORE INTO {qn(_TABLE)} ({', '.join(qn(c) for c in _COLUMNS)}) VALUES "
    with connection.cursor() as cursor, connection.wrap_database_errors:
        raw = cursor.cursor.connection
        before = raw.total_changes
        base._sqlite_insert(cursor.cursor, head, len(_COLUMNS), lines)
        if raw.total_changes - before < len(lines):
            _repeats_at_insert(writer, lines)
    return ["create"] * len(rows)


def _copy(table: pa.Table, first: int, job_id: int, now) -> None:
    n = table.num_rows
    out = pa.table({
        "id": pc.add(table["row"], first),
        **{c: table[c] for c in orders.LINE_COLUMNS},
        "job_id": pa.repeat(job_id, n).cast(pa.int64()),
        "imported_at": pa.repeat(now.isoformat(), n).cast(pa.string()),
    })  # fmt: skip
    sink = io.BytesIO()
    pcsv.write_csv(out, sink, write_options=pcsv.WriteOptions(include_header=False, quoting_style="needed"))
    qn = connection.ops.quote_name
    with connection.cursor() as cursor, connection.wrap_database_errors:
        with cursor.cursor.copy(f"COPY {qn(_TABLE)} ({', '.join(qn(c) for c in _COLUMNS)}) FROM STDIN "
                                "WITH (FORMAT csv)") as copy:  # fmt: skip
            copy.write(sink.getbuffer())


def _repeats_at_insert(writer, lines: list[tuple]) -> None:
    """SQLite: the lines the unique constraint kept out (an order line the file has already) → refused, with the row
    of the line stored first."""
    first = writer.first_id
    ids = [r[0] for r in lines]
    stored = set()
    with connection.cursor() as cursor:
        stored.update(pk for (pk,) in orders.in_parts(cursor, f"SELECT id FROM {_TABLE} WHERE id IN ({{}})", ids))
        for r in lines:
            if r[0] in stored:
                continue
            cursor.execute(f"SELECT id FROM {_TABLE} WHERE order_number = %s AND line_number = %s", [r[1], r[2]])  # noqa: S608
            kept = cursor.fetchone()[0]
            writer.refused.append((r[0] - first, "line_number", "duplicate_line",
                                   {"order": r[1], "line": r[2], "row": kept - first}, None, r[6]))  # fmt: skip


def after_load(writer) -> None:
    """The checks that need the whole file, on the loaded lines: the same order line twice (PostgreSQL; SQLite caught
    it at insert), one order naming two customers or two order dates. The lines refused are deleted and reported at
    their rows."""
    first, run = writer.first_id, writer.run
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL maintenance_work_mem = '256MB'")  # as `BareTable.restore`: the sort in memory
            _build_unique(writer, cursor)
        # one pass over the lines for both: an order naming two customers, or two order dates (counted in two months)
        cursor.execute(
            f"SELECT order_number FROM {_TABLE} GROUP BY order_number HAVING MIN(institution_id) <> MAX(institution_id) "  # noqa: S608
            "OR MIN(order_date) <> MAX(order_date)"
        )
        split = [on for (on,) in cursor.fetchall()]
        owners: dict[str, tuple[int, str, int]] = {}
        lines = orders.in_parts(cursor, f"SELECT id, order_number, institution_id, order_date, product_code FROM {_TABLE} "
                                  "WHERE order_number IN ({})", split)  # fmt: skip
        for pk, on, inst, day, code in sorted(lines):
            day = orders._iso(day)
            owner = owners.setdefault(on, (inst, day, pk))
            if owner[0] != inst:
                writer.refused.append((pk - first, None, "order_two_customers", {
                    "order": on, "row": owner[2] - first, "first": run.resolver.name(owner[0]),
                    "customer": run.resolver.name(inst),
                }, pk, code))  # fmt: skip
            elif owner[1] != day:
                writer.refused.append((pk - first, "order_date", "order_two_dates", {
                    "order": on, "row": owner[2] - first, "first": owner[1], "date": day,
                }, pk, code))  # fmt: skip
        orders.in_parts(cursor, f"DELETE FROM {_TABLE} WHERE id IN ({{}})", [r[4] for r in writer.refused if r[4] is not None])
    if writer.refused:
        _report(writer)
    with connection.cursor() as cursor:
        if writer.refused and run.unknown_products:  # counted before some of their lines were refused
            _recount_unknown(run, cursor)
        if connection.vendor == "postgresql":
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence(%s, 'id'), COALESCE((SELECT MAX(id) FROM {qn(_TABLE)}), %s))",  # noqa: S608
                [_TABLE, max(first, 1)],
            )


def _undo_product_codes(run, refused: list[tuple], cells_of: dict[int, list[str]], first: int) -> None:
    """What the refused lines did to the product codes, undone where no kept line does the same: a code only they
    carried is not recorded (or goes back to what it was), a link to the catalogue only their approval numbers made
    goes back — the row-by-row lane records codes from the lines it keeps only."""
    from .models import ProductCode

    resolver = run.resolver
    where = next((i for i, col in run.header.mapping if col.key == "approval_number"), None)
    linked_by_refused: dict[str, int] = {}
    for row, *_rest, code in refused:
        cells = cells_of.get(row, [])
        text = cells[where].strip() if where is not None and where < len(cells) else ""
        if text and resolver.products.get(orders.approval_cell(text) or ""):
            linked_by_refused[code] = linked_by_refused.get(code, 0) + 1
    codes = sorted({r[-1] for r in refused})
    with connection.cursor() as cursor:  # the codes kept, and the last kept line of each that gives a name
        found = orders.in_parts(cursor, f"SELECT product_code, MAX(CASE WHEN product_name <> '' THEN id END) FROM {_TABLE} "  # noqa: S608
                                  "WHERE product_code IN ({}) GROUP BY product_code", codes)  # fmt: skip
        kept = {c for c, _pk in found}
        last_name = dict(orders.in_parts(cursor, f"SELECT product_code, product_name FROM {_TABLE} WHERE id IN ({{}})",  # noqa: S608
                                   [pk for _c, pk in found if pk is not None]))  # fmt: skip
    links = _kept_links(run, set(linked_by_refused), first) if linked_by_refused else {}
    resolver.before_change(code for code in codes if code in resolver.before)  # audited as the load leaves them
    missing = object()
    for code in codes:
        before = resolver.before.get(code, missing)
        if before is missing:
            continue  # the load never touched it
        if code in kept and resolver.named.get(code, last_name.get(code, "")) != last_name.get(code, ""):
            # named by a refused line: by the last kept line that gives a name, as row by row
            resolver.named[code] = last_name.get(code, "")
            ProductCode.objects.filter(code=code).update(name=resolver.named[code])
        only_refused_link = code in linked_by_refused and code not in links
        if only_refused_link and code in run.linked_in_file and not resolver.linked.get(code):
            run.linked_in_file.discard(code)  # its kept lines are in the note of codes the catalogue lacks
            run.unknown_products.setdefault(code, 0)  # (counted again on the kept lines)
        if code in links:  # linked by the last kept line that links it, not by a refused one after it
            ProductCode.objects.filter(code=code).exclude(product_id=links[code]).update(product_id=links[code])
        if code in kept and not only_refused_link:
            continue
        if code not in kept and before is None:
            ProductCode.objects.filter(code=code).delete()
        elif code not in kept:
            ProductCode.objects.filter(code=code).update(name=before[0], product_id=before[1])
        else:
            ProductCode.objects.filter(code=code).update(product_id=before[1] if before else None)
        resolver.codes.discard(code)


def _kept_links(run, codes: set[str], first: int) -> dict[str, int]:
    """The catalogue product each of these codes links to as row by row: that of the approval number of its last
    kept line whose number the catalogue knows (a code some refused line linked; none: no kept line links it). The
    file is read again for its approval numbers, block by block; the kept lines are the table's."""
    resolver, lane = run.resolver, run.lane
    where = next((i for i, col in run.header.mapping if col.key == "approval_number"), None)
    if where is None:
        return {}
    last: dict[str, tuple[int, int]] = {}  # code → (row, product)

    def consider(rows: list[int], texts: list[str]) -> None:
        normal = {t: orders.approval_cell(t) or "" for t in set(texts)}
        resolver.load_products(set(normal.values()) - {""})
        product = {r: resolver.products.get(normal[t]) for r, t in zip(rows, texts, strict=True)}
        linking = [r for r, p in product.items() if p]
        with connection.cursor() as cursor:
            for pk, code in orders.in_parts(cursor, f"SELECT id, product_code FROM {_TABLE} WHERE id IN ({{}})",  # noqa: S608
                                      [first + r for r in linking]):  # fmt: skip
                row = pk - first
                if code in codes and row > last.get(code, (0, 0))[0]:
                    last[code] = (row, product[row])

    lane.ragged = []
    for rows, batch in lane.batches():
        texts = batch.column(f"c{where}")
        given = pc.not_equal(pc.utf8_trim_whitespace(texts), "")
        if pc.any(given).as_py():
            consider(rows.filter(given).to_pylist(), texts.filter(given).to_pylist())
    ragged = [(r, cells[where]) for r, cells in lane.ragged if r > run.header.row and where < len(cells)]
    if ragged:
        consider([r for r, _t in ragged], [t for _r, t in ragged])
    return {code: product for code, (_row, product) in last.items()}


def _recount_unknown(run, cursor) -> None:
    """The lines of the product codes the catalogue lacks, counted again on the lines kept, and in the order of their
    first kept line (the note names the codes as the row-by-row lane meets them)."""
    found = orders.in_parts(cursor, f"SELECT product_code, COUNT(*), MIN(id) FROM {_TABLE} WHERE product_code IN ({{}}) "
                              "GROUP BY product_code", list(run.unknown_products))  # fmt: skip
    run.unknown_products = {code: n for code, n, _first in sorted(found, key=lambda r: r[2])}


def _build_unique(writer, cursor) -> None:
    """PostgreSQL: the unique constraint back first; when the file repeats an order line it cannot be built, and the
    repeats (every copy after the first) are refused and deleted before it is built."""
    from django.db import IntegrityError, transaction

    qn = connection.ops.quote_name
    constraints, writer.bare.constraints = writer.bare.constraints, []
    for name, definition in constraints:
        add = f"ALTER TABLE {qn(_TABLE)} ADD CONSTRAINT {qn(name)} {definition}"
        try:
            with transaction.atomic():
                cursor.execute(add)
            continue
        except IntegrityError:
            pass
        cursor.execute(
            f"SELECT id, order_number, line_number, kept, product_code FROM (SELECT id, order_number, line_number, "  # noqa: S608
            f"product_code, MIN(id) OVER (PARTITION BY order_number, line_number) AS kept FROM {qn(_TABLE)}) s "
            "WHERE id <> kept"
        )
        repeats = cursor.fetchall()
        first = writer.first_id
        for pk, on, line, kept, code in repeats:
            writer.refused.append((pk - first, "line_number", "duplicate_line",
                                   {"order": on, "line": line, "row": kept - first}, None, code))  # fmt: skip
        orders.in_parts(cursor, f"DELETE FROM {_TABLE} WHERE id IN ({{}})", [r[0] for r in repeats])
        cursor.execute(add)


def _report(writer) -> None:
    """Report the lines refused at the end as the row-by-row lane reports them: each at its row, with its cells (read
    from the file again), in row order among the other errors; the counts and the preview say so too."""
    run, lane = writer.run, writer.run.lane
    refused = sorted(writer.refused, key=lambda r: r[0])
    cells_of = lane.cells_of({r[0] for r in refused})
    credit = next((i for i, col in run.header.mapping if col.key == "credit_code"), None)
    _undo_product_codes(run, refused, cells_of, writer.first_id)
    # the errors kept for the page are the file's first: these among those kept already, the first of them all kept
    kept, run.kept_errors = run.kept_errors, []
    for row, key, code, params, _pk, _product in refused:
        cells = cells_of.get(row, [])
        if key is None:  # the customer's column: the credit code when the row gives one (as `Parser` reads it)
            given = credit is not None and credit < len(cells) and normalise.credit_code(cells[credit])
            key = "credit_code" if given else "external_id"
        run._error(row, cells, [(key, code, params)], [])
        for entry in run.preview:
            if entry["row"] == row:
                entry["action"] = "error"
                entry["errors"] = [{"column": run.headers.get(key, ""), "code": code, "params": params}]
    run.flush_errors()
    run.kept_errors = sorted(kept + run.kept_errors, key=lambda e: e["row"])[: base.MAX_KEPT_ERRORS]
    n = len(refused)
    run.counts.created -= n
    run.saved.created -= n
    run.saved.errors += n
    if run.all_or_nothing:
        run.stop_writing = True
    if run.error_file is not None:  # the report in row order: the rows refused at the end among the others
        run.error_file.flush()
        path = run.error_file.name
        run.error_file.close()
        run.error_file = run.error_writer = None
        with open(path, encoding="utf-8", newline="") as fh:
            lines = list(csv.reader(fh))
        lines[1:] = sorted(lines[1:], key=lambda r: int(r[0]))
        with open(path, "w", encoding="utf-8", newline="") as fh:
            csv.writer(fh).writerows(lines)
