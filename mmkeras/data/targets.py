"""Label columns → training targets, record by record; each output type's plugin
(`mmkeras.outputs`) parses, names and encodes its own labels."""
from mmkeras.modalities.base import BadValue
from mmkeras.outputs import output_type


def parse_target(record, out, labels=None):
    """Validate one record's label for output `out`; `labels` (known names) is None on the training split."""
    if out.source not in record:
        raise BadValue(f"missing label column '{out.source}'")
    value = record[out.source]
    if value is None or (isinstance(value, str) and not value.strip()) or (isinstance(value, list) and not value):
        raise BadValue("empty label")
    return output_type(out).parse(value, out, labels)


def label_names(out, parsed):
    """The sorted label vocabulary of an output (None for an output without labels)."""
    return output_type(out).label_names(parsed)


def encode_targets(out, parsed, labels):
    """Parsed labels → numpy targets: class ids, multi-hot rows, or floats."""
    return output_type(out).encode(parsed, labels)
