"""Manifests: JSONL (one object per line) or CSV (header row), read row by row.

Rows come out as (line_number, record_dict); a row that cannot be parsed comes out
as (line_number, BadRow) so the caller can skip or stop with the line named.
"""
import csv
import json
import os

from mmkeras.errors import DataError


class BadRow:
    """A manifest line that is not a valid record."""

    def __init__(self, reason, value):
        self.reason, self.value = reason, value


# A field this long is not a value any modality reads (a path, a text, a number); csv's own
# limit (128 KiB) would raise mid-file, json has none. Documented in the README's bounds.
MAX_FIELD_BYTES = 8 * 1024 * 1024
# Deeper JSON than this is no manifest record; json.loads would hit Python's recursion limit.
MAX_JSON_DEPTH = 32


def _depth(line):
    """Nesting depth of a JSON text, counted on brackets outside strings, before parsing it."""
    if line.count("[") + line.count("{") <= MAX_JSON_DEPTH:  # the common case, without a scan
        return 0
    depth = deepest = 0
    in_string = escaped = False
    for ch in line:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _is_unicode(record):
    try:
        json.dumps(record, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _read_jsonl(f):
    for line_no, raw in enumerate(f, start=1):
        if len(raw) > MAX_FIELD_BYTES:  # before decoding or scanning it
            yield line_no, BadRow(f"line longer than {MAX_FIELD_BYTES} bytes", raw[:200].decode("utf-8", "replace"))
            continue
        try:
            # A UTF-8 byte-order mark (Windows editors write one) is not part of line 1's JSON.
            line = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
        except UnicodeDecodeError as e:
            yield line_no, BadRow(f"not UTF-8 text (byte {e.start} of the line)", raw[:200].decode("utf-8", "replace"))
            continue
        shown = line.strip()[:200]
        if not shown:
            continue
        if _depth(line) > MAX_JSON_DEPTH:
            yield line_no, BadRow(f"JSON nested deeper than {MAX_JSON_DEPTH} levels", shown)
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            yield line_no, BadRow(f"invalid JSON: {e.msg}", shown)
            continue
        except ValueError as e:  # an integer of more than 4300 digits (Python's int limit)
            yield line_no, BadRow(f"invalid JSON: {e}", shown)
            continue
        if not isinstance(record, dict):
            yield line_no, BadRow("expected a JSON object", shown)
            continue
        # "\ud800" is valid JSON but no Unicode text: it cannot be written as UTF-8 (vocabularies,
        # labels files) nor passed to TensorFlow. Only an escape can carry one (the line is UTF-8).
        if "\\ud" in line.lower() and not _is_unicode(record):
            yield line_no, BadRow("a string holds a lone surrogate escape (\\ud800-\\udfff): not Unicode text", shown)
            continue
        yield line_no, record


def _read_csv(f):
    csv.field_size_limit(MAX_FIELD_BYTES)
    reader = csv.reader(f)
    try:
        header = next(reader, None)
        if not header:
            return
        for row in reader:
            line_no = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                yield line_no, BadRow(f"expected {len(header)} fields, got {len(row)}", ",".join(row)[:200])
                continue
            yield line_no, dict(zip(header, row))
    except csv.Error as e:  # e.g. a field over MAX_FIELD_BYTES: the reader cannot go on past it
        raise DataError(f"line {reader.line_num}: unreadable CSV: {e}") from None


# How each reader wants the file: JSONL as bytes (each line decoded on its own, so one bad
# line is one bad record), CSV as text (a quoted field may span lines); "utf-8-sig" drops a BOM.
READERS = {".jsonl": (_read_jsonl, {"mode": "rb"}), ".json": (_read_jsonl, {"mode": "rb"}),
           ".csv": (_read_csv, {"mode": "r", "encoding": "utf-8-sig", "newline": ""})}


def read_manifest(path):
    """Yield (line_number, record or BadRow) for each non-empty row of a manifest."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in READERS:
        raise DataError(f"{path}: unsupported manifest type '{ext}' (use .jsonl or .csv)")
    if not os.path.isfile(path):
        raise DataError(f"manifest not found: {path}")
    reader, mode = READERS[ext]
    with open(path, **mode) as f:
        try:
            yield from reader(f)
        except UnicodeDecodeError:
            raise DataError(f"{path}: not UTF-8 text; save the file as UTF-8") from None
        except DataError as e:
            raise DataError(f"{path}: {e}") from None


def manifest_columns(path, sample=1000):
    """Column names of a manifest: the CSV header, or the keys seen in its first `sample` JSONL objects."""
    columns = {}
    for i, (_, record) in enumerate(read_manifest(path)):
        if i >= sample:
            break
        if isinstance(record, dict):
            columns.update(dict.fromkeys(record))
    return list(columns)
