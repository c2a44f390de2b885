"""Validate every manifest record before it can reach a batch.

Each split is read once in Python: every input and label is checked (columns,
files, numbers, known labels). A bad record is either skipped — counted and
written to RUN_DIR/bad_records.jsonl as {manifest, line, column, value, reason} —
or, with `on_bad_record: error`, stops the run with one line naming it.
"""
import dataclasses
import itertools
import json
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from mmkeras.data.manifest import BadRow, read_manifest
from mmkeras.modalities.base import BadValue
from mmkeras.console import progress
from mmkeras.data.targets import parse_target
from mmkeras.errors import DataError


class BadRecordLog:
    """Collects skipped records; raises DataError at the first one in `error` mode."""

    def __init__(self, mode):
        self.mode = mode
        self.entries = []

    def add(self, manifest, line, column, value, reason):
        entry = {"manifest": manifest, "line": line, "column": column, "value": _jsonable(value), "reason": reason}
        if self.mode == "error":
            raise DataError(f"{self.describe(entry)} (value: {entry['value']!r})")
        self.entries.append(entry)

    @staticmethod
    def describe(entry):
        """`manifest:line, column 'c': reason` for one entry."""
        where = f", column '{entry['column']}'" if entry["column"] else ""
        return f"{entry['manifest']}:{entry['line']}{where}: {entry['reason']}"

    def count(self, manifest):
        return sum(e["manifest"] == manifest for e in self.entries)

    def write(self, path):
        if not self.entries:
            return
        from mmkeras.io import atomic_write_text

        atomic_write_text(path, "".join(json.dumps(e) + "\n" for e in self.entries))


def _jsonable(value):
    return value if isinstance(value, (str, int, float, bool, list, type(None))) else str(value)


@dataclasses.dataclass
class Split:
    """The valid records of one manifest, column by column.

    Args:
        values: input name → list of parsed values (the handler's empty value when absent).
        presence: input name → float32 [N] (1 present, 0 absent).
        labels: output name → list of parsed labels.
        lines: manifest line of each record.
        groups: manifest column → each record's value as a string, for the columns
            `evaluation.group_by` names (`MISSING_GROUP` where a record has none).
    """

    manifest: str
    values: dict
    presence: dict
    labels: dict
    lines: list
    groups: dict = dataclasses.field(default_factory=dict)

    def __len__(self):
        return len(self.lines)

    def subset(self, index):
        pick = lambda seq: [seq[i] for i in index]  # noqa: E731
        return Split(self.manifest, {k: pick(v) for k, v in self.values.items()},
                     {k: v[index] for k, v in self.presence.items()},
                     {k: pick(v) for k, v in self.labels.items()}, pick(self.lines),
                     {k: pick(v) for k, v in self.groups.items()})


def _bad_column(problem, handler_or_output):
    """Which column a problem (a BadValue or its message) is about: the one it names, else the first used."""
    columns = getattr(handler_or_output, "cfg", handler_or_output)
    columns = columns.columns_used() if hasattr(columns, "columns_used") else [columns.source]
    for column in columns:
        if f"'{column}'" in str(problem):
            return column
    return columns[0]


def _parse_record(record, folder, handlers, outputs, known_labels):
    """→ (parsed values by input/output name, None) or (None, (column, value, reason))."""
    if isinstance(record, BadRow):
        return None, (None, record.value, record.reason)
    row = {}
    for h in handlers:
        try:
            row[h.name] = h.parse(record, folder)
        except BadValue as e:
            column = _bad_column(e, h)
            return None, (column, record.get(column), str(e))
    for o in outputs:
        try:
            row[o.name] = parse_target(record, o, None if known_labels is None else known_labels.get(o.name))
        except BadValue as e:
            return None, (o.source, record.get(o.source), str(e))
    return row, None


# Validation reads and decodes files (PIL and libsndfile release the GIL): threads overlap the I/O.
VALIDATION_THREADS = 8
# Rows read ahead of validation: bounds memory on a manifest of any length.
VALIDATION_CHUNK = 4096


# The group of a record whose group_by column is missing, null or empty.
MISSING_GROUP = "(none)"


def _group_value(record, column):
    value = record.get(column) if isinstance(record, dict) else None
    return MISSING_GROUP if value is None or value == "" else str(value)


def validate_records(manifest, handlers, outputs, log, known_labels=None, chunk_size=VALIDATION_CHUNK):
    """Read and validate a manifest in chunks; bad records go to `log`.

    Yields, per chunk of `chunk_size` rows in manifest order, the list of its valid rows as
    (line, record, parsed row). Only one chunk is read ahead, so a manifest of any length
    streams (ThreadPoolExecutor.map would otherwise read the whole file at once).
    """
    manifest = os.path.abspath(manifest)
    folder = os.path.dirname(manifest)
    rows = read_manifest(manifest)
    pool = ThreadPoolExecutor(VALIDATION_THREADS)

    def parse(item):
        return _parse_record(item[1], folder, handlers, outputs, known_labels)

    try:
        while chunk := list(itertools.islice(rows, chunk_size)):
            # Each record's own checks in the threads, then each handler's batched file check
            # (TensorFlow, on this thread: see `Modality.parse_value`).
            parsed = _check_files(chunk, list(pool.map(parse, chunk)), handlers)
            valid = []
            # In manifest order, so `error` mode names the first bad line.
            for (line, record), (row, problem) in zip(chunk, parsed):
                if problem:
                    log.add(manifest, line, *problem)
                else:
                    valid.append((line, record, row))
            yield valid
    finally:
        pool.shutdown(cancel_futures=True)  # after an `error`, don't validate the rest


def _check_files(chunk, parsed, handlers):
    """`parsed` with the records whose files a handler's batched `check_files` rejects made bad."""
    for h in handlers:
        positions = [k for k, (row, problem) in enumerate(parsed) if not problem and row[h.name] is not None]
        if not positions:
            continue
        for i, reason in h.check_files([parsed[k][0][h.name] for k in positions]).items():
            record = chunk[positions[i]][1]
            column = _bad_column(reason, h)
            parsed[positions[i]] = (None, (column, record.get(column), reason))
    return parsed


def split_from_rows(manifest, rows, handlers, outputs, group_columns=()):
    """Valid rows from `validate_records` → a Split; `group_columns` are kept as strings."""
    values = {h.name: [] for h in handlers}
    presence = {h.name: [] for h in handlers}
    labels = {o.name: [] for o in outputs}
    lines, groups = [], {c: [] for c in group_columns}
    for line, record, row in rows:
        _append(row, handlers, outputs, values, presence, labels)
        lines.append(line)
        for column, kept in groups.items():
            kept.append(_group_value(record, column))
    presence = {k: np.asarray(v, np.float32).reshape(-1) for k, v in presence.items()}
    return Split(os.path.abspath(manifest), values, presence, labels, lines, groups)


def load_split(manifest, handlers, outputs, log, known_labels=None, group_columns=()):
    """Read and validate one manifest; bad records go to `log`; `group_columns` are kept as strings."""
    rows = itertools.chain.from_iterable(validate_records(manifest, handlers, outputs, log, known_labels))
    split = split_from_rows(manifest, progress(rows, f"validating {os.path.basename(manifest)}"), handlers,
                            outputs, group_columns)
    if not split.lines:
        raise DataError(f"{split.manifest}: no valid records ({log.count(split.manifest)} bad; "
                        "see bad_records.jsonl)")
    return split


def _append(row, handlers, outputs, values, presence, labels):
    for h in handlers:
        present = row[h.name] is not None
        values[h.name].append(row[h.name] if present else h.empty_value)
        presence[h.name].append(1.0 if present else 0.0)
    for o in outputs:
        labels[o.name].append(row[o.name])


def holdout(split, fraction, seed):
    """Split off a random `fraction` of records for validation (when no validation manifest is given)."""
    order = np.random.default_rng(seed).permutation(len(split))
    n_val = max(1, int(round(len(split) * fraction)))
    return split.subset(np.sort(order[n_val:])), split.subset(np.sort(order[:n_val]))
