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


def _read_jsonl(f):
    for line_no, line in enumerate(f, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            yield line_no, BadRow(f"invalid JSON: {e.msg}", line.strip()[:200])
            continue
        if not isinstance(record, dict):
            yield line_no, BadRow("expected a JSON object", line.strip()[:200])
            continue
        yield line_no, record


def _read_csv(f):
    reader = csv.reader(f)
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


READERS = {".jsonl": _read_jsonl, ".json": _read_jsonl, ".csv": _read_csv}


def read_manifest(path):
    """Yield (line_number, record or BadRow) for each non-empty row of a manifest."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in READERS:
        raise DataError(f"{path}: unsupported manifest type '{ext}' (use .jsonl or .csv)")
    if not os.path.isfile(path):
        raise DataError(f"manifest not found: {path}")
    with open(path, encoding="utf-8", newline="") as f:
        yield from READERS[ext](f)


def manifest_columns(path, sample=1000):
    """Column names of a manifest: the CSV header, or the keys seen in its first `sample` JSONL objects."""
    columns = {}
    for i, (_, record) in enumerate(read_manifest(path)):
        if i >= sample:
            break
        if isinstance(record, dict):
            columns.update(dict.fromkeys(record))
    return list(columns)
