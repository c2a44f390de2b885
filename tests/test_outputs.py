"""Every output type is one plugin (`mmkeras.outputs`) that provides every part mmkeras asks of it."""
import typing

import numpy as np
import pytest

from mmkeras.config import OutputConfig
from mmkeras.outputs import OUTPUT_TYPES, OutputType

ATTRIBUTES = ("activation", "keras_metric", "primary_metric", "app_values")
METHODS = ("parse", "encode", "loss", "metrics", "serving_outputs", "keras_output", "tflite_metadata", "row", "flat")


def test_the_config_and_the_registry_name_the_same_output_types():
    from bench.quality.harness import PRIMARY

    config_types = typing.get_args(OutputConfig.__dataclass_fields__["type"].type)
    assert sorted(config_types) == OUTPUT_TYPES.names() == sorted(PRIMARY)
    for name, (metric, higher) in PRIMARY.items():  # the harness's TF-free copy
        assert (OUTPUT_TYPES.get(name).primary_metric, OUTPUT_TYPES.get(name).higher_is_better) == (metric, higher)


@pytest.mark.parametrize("name", OUTPUT_TYPES.names())
def test_every_output_type_provides_every_part(name):
    kind = OUTPUT_TYPES.get(name)
    assert isinstance(kind, OutputType)
    assert type(kind).__module__ == f"mmkeras.outputs.{name}", "one file per type, named by it"
    for attribute in ATTRIBUTES:
        assert getattr(kind, attribute), f"{name}.{attribute}"
    for method in METHODS:
        assert getattr(type(kind), method) is not getattr(OutputType, method), f"{name} lacks {method}"


@pytest.mark.parametrize("name, raw, labels", [
    ("category", ["b", "a", "b"], None),
    ("multilabel", ["a;b", ["b"], "a"], None),
    ("numeric", [1.0, "2.5", 4], None),
])
def test_labels_round_trip_through_parse_encode_and_metrics(name, raw, labels):
    import tensorflow as tf

    out = OutputConfig(name="y", type=name)
    kind = OUTPUT_TYPES.get(name)
    parsed = [kind.parse(value, out, None) for value in raw]
    names = kind.label_names(parsed)
    targets = kind.encode(parsed, names)
    # A perfect prediction in the Keras output's form scores perfectly on the primary metric.
    if name == "category":
        prediction = np.eye(len(names), dtype=np.float32)[targets]
    elif name == "multilabel":
        prediction = targets.astype(np.float32)
    else:
        prediction = targets.reshape(-1, 1)
    best = 0.0 if not kind.higher_is_better else 1.0
    assert kind.metrics(targets, prediction, names)[kind.primary_metric] == pytest.approx(best)
    # Serving outputs map back to the Keras output exactly.
    served = kind.serving_outputs("y", tf.constant(prediction), tf.constant(names or [""]))
    np.testing.assert_array_equal(np.asarray(kind.keras_output("y", served)), prediction)
    row = kind.row(prediction[0], names, 2)
    assert kind.flat("y", row, out) and all(key.startswith("y") for key in kind.flat("y", row, out))


def test_auto_aux_weight_shares_the_output_weight_among_its_inputs(tiny_data):
    from conftest import tiny_config_dict

    from mmkeras.config import config_from_dict
    from mmkeras.heads import heads

    raw = tiny_config_dict(tiny_data)
    raw["outputs"] = [{"name": "label", "type": "category", "loss_weight": 2.0, "aux_weight": "auto"},
                      {"name": "tags", "type": "multilabel"},
                      {"name": "score", "type": "numeric", "aux_weight": 0.3}]
    weights = {name: weight for name, _, weight, _ in heads(config_from_dict(raw))}
    # Four inputs: the category output's heads share its weight; multilabel gets none under
    # `auto` (the default); a number is each head's own weight.
    assert weights == {"label": 2.0, **{f"label_from_{i}": 0.5 for i in ("image", "text", "speech", "stats")},
                       "tags": 1.0, "score": 1.0, **{f"score_from_{i}": 0.3 for i in ("image", "text", "speech", "stats")}}
    raw["inputs"] = raw["inputs"][:1]
    assert [name for name, *_ in heads(config_from_dict(raw))] == ["label", "tags", "score", "score_from_image"]
