"""TFLite export: each variant converts with builtin ops, runs in LiteRT and is verified against Keras.

Conversion is slow (seconds per variant), so the trained run, its tensor SavedModel,
the converted variants and their verification results are module-scoped fixtures.
"""
import json
import os
import re
import types

import numpy as np
import pytest
import tensorflow as tf

from export import tflite
from export.context import ExportContext
from export.report import write_report
from export.saved_model import save_tensor_model
from export.verify import LiteRTRunner, ParityError, verify_variant
from mmkeras.errors import ConfigError, UserError

VARIANTS = ["float32", "dynamic", "float16", "int8"]
# TF's int8 calibration runs its own deprecated interpreter; mmkeras runs models with ai_edge_litert.
pytestmark = pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated:UserWarning")


@pytest.fixture(scope="module")
def ctx(tiny_run):
    return ExportContext(tiny_run)


@pytest.fixture(scope="module")
def saved_model(ctx, tmp_path_factory):
    return save_tensor_model(ctx, str(tmp_path_factory.mktemp("tensor_model") / "saved_model"))


@pytest.fixture(scope="module")
def samples(ctx):
    return ctx.samples("test", 8)


@pytest.fixture(scope="module")
def keras_outputs(ctx, samples):
    return [ctx.keras_predict(x) for x, _ in samples]


@pytest.fixture(scope="module")
def configs(ctx, saved_model):
    # Few calibration samples: TF calibrates through its deprecated interpreter, slowly.
    calibration = tflite.representative_dataset(ctx.samples("train", 4), tflite.signature_input_names(saved_model))
    return {name: tflite.quantization_config(name, calibration) for name in VARIANTS}


@pytest.fixture(scope="module")
def converted(saved_model, configs):
    return {name: tflite.convert(saved_model, config) for name, config in configs.items()}


@pytest.fixture(scope="module")
def results(ctx, converted, configs, samples, keras_outputs):
    return {name: {**verify_variant(LiteRTRunner(model), samples, keras_outputs, ctx, name),
                   **tflite.inspect_tflite(model, configs[name])}
            for name, model in converted.items()}


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_has_only_builtin_ops_and_runs_in_litert(variant, converted, samples):
    ops = tflite.op_summary(converted[variant], variant)
    assert not [op for op in ops if op.startswith("Flex") or not op.isupper()]
    assert "RFFT2D" in ops  # the audio front-end ships inside every variant
    probabilities = LiteRTRunner(converted[variant])(samples[0][0])["label"]
    assert probabilities.shape == (1, 3) and probabilities.dtype == np.float32
    assert probabilities.sum() == pytest.approx(1.0, abs=0.02)  # int8 softmax steps are 1/256


def test_op_summary_rejects_flex_ops():
    @tf.function(input_signature=[tf.TensorSpec([2, 2], tf.float32)])
    def determinant(x):
        return tf.linalg.det(x)  # no builtin kernel: converts only as a Flex op

    converter = tf.lite.TFLiteConverter.from_concrete_functions([determinant.get_concrete_function()], determinant)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    with pytest.raises(UserError, match="FlexMatrixDeterminant"):
        tflite.op_summary(converter.convert(), "float32")


def test_float32_matches_keras(results):
    assert results["float32"]["max_abs_diff"] <= 1e-4
    assert results["float32"]["outputs"]["label"]["agreement"] == 1.0


def test_int8_model_takes_and_returns_int8_except_token_ids(converted, ctx):
    runner = LiteRTRunner(converted["int8"])
    dtypes = {name: np.dtype(d["dtype"]) for name, d in runner.input_details.items()}
    assert dtypes == {name: np.int32 if dtype == "int32" else np.int8 for name, (_, dtype) in ctx.input_specs.items()}
    assert {np.dtype(d["dtype"]) for d in runner.output_details.values()} == {np.dtype(np.int8)}


def test_int8_keeps_only_the_audio_front_end_in_float(results):
    float_ops = results["int8"]["float_ops"]
    assert {"RFFT2D", "COMPLEX_ABS"} <= set(float_ops)
    assert "CONV_2D" not in float_ops and "FULLY_CONNECTED" not in float_ops
    assert results["float32"]["float_ops"] is None  # listed only where float is the exception


def test_calibration_data_is_keyed_by_signature_input_names(ctx, saved_model):
    names = tflite.signature_input_names(saved_model)
    assert set(names) == set(ctx.input_specs)
    batches = list(tflite.representative_dataset(ctx.samples("train", 2), names)())
    assert len(batches) == 2 and all(sorted(batch) == names for batch in batches)
    with pytest.raises(UserError, match="stats"):
        tflite.representative_dataset([({"image": np.zeros(1)}, {})], ["image", "stats"])


def fake_converter(monkeypatch, failures):
    """Replace the converter by one failing its first `failures` conversions; returns the op sets tried."""
    tried = []

    class FakeConverter:
        def __init__(self):
            self.target_spec = types.SimpleNamespace()

        def convert(self):
            tried.append(self.target_spec.supported_ops)
            if len(tried) <= failures:
                raise RuntimeError("<unknown>:0: error: 'tfl.rfft2d' op has no int8 kernel\n  more detail")
            return b"model"

    monkeypatch.setattr(tf.lite.TFLiteConverter, "from_saved_model", lambda path: FakeConverter())
    return tried


INT8_ONLY = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]


@pytest.mark.parametrize("failures, op_sets", [
    (0, [INT8_ONLY]),
    (1, [INT8_ONLY, INT8_ONLY + [tf.lite.OpsSet.TFLITE_BUILTINS]]),
])
def test_int8_allows_float_builtins_only_when_int8_only_fails(monkeypatch, failures, op_sets):
    tried = fake_converter(monkeypatch, failures)
    assert tflite.convert("unused", tflite.QuantizationConfig.for_int8(lambda: iter([]))) == b"model"
    assert tried == op_sets


def test_conversion_error_is_one_line_naming_the_variant(monkeypatch):
    fake_converter(monkeypatch, failures=1)
    with pytest.raises(UserError) as error:
        tflite.convert("unused", tflite.QuantizationConfig.for_float16())
    assert str(error.value) == ("TFLite float16 conversion failed: "
                                "<unknown>:0: error: 'tfl.rfft2d' op has no int8 kernel")


def test_unknown_quantization_is_a_config_error():
    with pytest.raises(ConfigError, match="did you mean 'int8'"):
        tflite.quantization_config("int9")


def test_gpu_compatibility_names_the_audio_front_end(results):
    gpu = results["float32"]["gpu"]
    assert gpu["compatible"] is False
    assert any(w.startswith("RFFT2D") for w in gpu["warnings"])


def test_metadata_gives_the_app_everything(ctx, converted, tmp_path):
    model_path = tflite.save_tflite(ctx, str(tmp_path), "int8", converted["int8"])
    assert os.path.relpath(model_path, tmp_path) == os.path.join("tflite", "tiny_int8.tflite")
    meta = json.loads((tmp_path / "tflite" / "tiny_int8.json").read_text())
    inputs = {i["name"]: i for i in meta["inputs"]}
    text = ctx.prep.handlers[[h.name for h in ctx.prep.handlers].index("text")]
    assert inputs["text"]["preprocessing"]["vocab"] == text.state["vocab"]
    assert inputs["text"]["dtype"] == "int32" and "quantization" not in inputs["text"]
    assert inputs["image"]["dtype"] == "int8" and inputs["image"]["quantization"]["scale"] > 0
    assert inputs["image_present"]["type"] == "presence" and "zero_point" in inputs["image_present"]["quantization"]
    assert inputs["speech"]["preprocessing"]["in_model"]["log_mel"]["n_mels"] == 16
    assert inputs["stats"]["preprocessing"]["columns"] == ["x1", "x2"]
    assert meta["outputs"][0]["labels"] == ctx.prep.labels["label"]
    assert "quantization" in meta["outputs"][0]
    assert sorted(os.listdir(tmp_path / "tflite")) == ["tiny_int8.json", "tiny_int8.tflite"]  # no temporary left


@pytest.mark.parametrize("variant", VARIANTS)
def test_verification_reports_every_field(variant, results, samples):
    result = results[variant]
    assert result["size_bytes"] > 0 and result["latency_ms"] > 0 and result["samples"] == len(samples)
    label = result["outputs"]["label"]
    assert set(label) == {"metric", "value", "keras_value", "max_abs_diff", "agreement"}
    assert label["metric"] == "accuracy" and 0 <= label["value"] <= 1 and 0 <= label["agreement"] <= 1


def test_float32_parity_gate_raises_with_the_measured_difference(ctx, converted, samples, keras_outputs):
    shifted = [{k: v + 0.0032 for k, v in out.items()} for out in keras_outputs]
    with pytest.raises(ParityError) as error:
        verify_variant(LiteRTRunner(converted["float32"]), samples, shifted, ctx, "float32")
    assert re.fullmatch(r"float32 export differs from the Keras model by 3\.2e-03 \(limit 1e-04\)", str(error.value))
    # Quantised variants are reported, not gated.
    assert verify_variant(LiteRTRunner(converted["dynamic"]), samples, shifted, ctx, "dynamic")["max_abs_diff"] > 1e-3


def test_report_files_are_written_atomically(results, tmp_path):
    paths = write_report(str(tmp_path), results, {"model": "tiny", "split": "test", "samples": 8})
    assert sorted(os.listdir(tmp_path)) == ["report.json", "report.md", "report.png"]
    assert json.loads((tmp_path / "report.json").read_text())["variants"]["int8"]["float_ops"]
    table = [line for line in (tmp_path / "report.md").read_text().splitlines() if line.startswith("| ")]
    assert [row.split(" | ")[0] for row in table] == ["| variant"] + [f"| {v}" for v in VARIANTS]
    assert "| 1.00 |" in table[1] and "RFFT2D" in table[4]
    assert os.path.getsize(paths[2]) > 1000
