"""Label columns → training targets, one encoder per output type."""

import numpy as np

from mmkeras.data.modality import BadValue, parse_number


def _category(value, out, labels):
    if isinstance(value, (list, dict)):  # str() would make "['a', 'b']" a class of its own
        raise BadValue(f"expected one label name, got a JSON {type(value).__name__}")
    name = str(value).strip()
    if labels is not None and name not in labels:
        raise BadValue(f"label '{name}' does not occur in the training split")
    return name


def _multilabel(value, out, labels):
    names = value if isinstance(value, list) else str(value).split(out.separator)
    names = [str(n).strip() for n in names if str(n).strip()]
    unknown = [n for n in names if labels is not None and n not in labels]
    if unknown:
        raise BadValue(f"label '{unknown[0]}' does not occur in the training split")
    return names


def _numeric(value, out, labels):
    return parse_number(value)


PARSERS = {"category": _category, "multilabel": _multilabel, "numeric": _numeric}


def parse_target(record, out, labels=None):
    """Validate one record's label for output `out`; `labels` (known names) is None on the training split."""
    if out.source not in record:
        raise BadValue(f"missing label column '{out.source}'")
    value = record[out.source]
    if value is None or (isinstance(value, str) and not value.strip()) or (isinstance(value, list) and not value):
        raise BadValue("empty label")
    return PARSERS[out.type](value, out, labels)


def label_names(out, parsed):
    """The sorted label vocabulary of a category/multilabel output (None for numeric)."""
    if out.type == "category":
        return sorted(set(parsed))
    if out.type == "multilabel":
        return sorted({n for names in parsed for n in names})
    return None


def encode_targets(out, parsed, labels):
    """Parsed labels → numpy targets: class ids, multi-hot rows, or floats."""
    if out.type == "category":
        index = {n: i for i, n in enumerate(labels)}
        return np.array([index[n] for n in parsed], dtype=np.int32)
    if out.type == "multilabel":
        index = {n: i for i, n in enumerate(labels)}
        hot = np.zeros((len(parsed), len(labels)), dtype=np.float32)
        for row, names in enumerate(parsed):
            hot[row, [index[n] for n in names]] = 1.0
        return hot
    return np.asarray(parsed, dtype=np.float32)


def target_stats(values):
    """{"mean", "std"} of a numeric output's training targets (std 1 when they are constant)."""
    values = np.asarray(values, np.float64)
    std = float(values.std())
    return {"mean": float(values.mean()), "std": std if std > 0 else 1.0}
