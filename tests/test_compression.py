"""`python -m export --qat / --prune`: fine-tuned copies with TF-MOT, converted and verified like the others."""
import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def export(run_dir, *args):
    return subprocess.run([sys.executable, "-m", "export", run_dir, *args], capture_output=True, text=True, cwd=REPO)


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture(scope="module")
def compressed(tiny_run, tmp_path_factory):
    """A copy of `tiny_run` exported with QAT and pruning (its own folder: `exported` shares tiny_run's)."""
    run = str(tmp_path_factory.mktemp("compressed") / "run")
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("export"))
    before = digest(os.path.join(run, "model.keras"))
    proc = export(run, "--formats", "tflite", "--quantize", "float32", "--samples", "8",
                  "--qat", "2", "--prune", "0.6", "--prune-epochs", "3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.load(open(os.path.join(run, "export", "report.json")))
    return run, report, before, proc.stdout


def test_qat_and_pruned_variants_are_written_and_verified(compressed):
    run, report, _, _ = compressed
    variants = report["variants"]
    assert list(variants) == ["float32", "int8_qat", "float32_pruned", "int8_pruned"]
    for name in ("int8_qat", "float32_pruned", "int8_pruned"):
        for ext in ("tflite", "json", "task"):
            assert os.path.exists(os.path.join(run, "export", "tflite", f"tiny_{name}.{ext}")), (name, ext)
        assert 0 < variants[name]["zipped_size_bytes"] < variants[name]["size_bytes"]
        assert set(variants[name]["ops"]) <= set(variants["float32"]["ops"]) | {"QUANTIZE", "DEQUANTIZE", "DENSIFY"}
    # The float pruned file is gated like float32, against its own (pruned) Keras model.
    assert variants["float32_pruned"]["max_abs_diff"] < 1e-4
    # Full integer, like int8: the accelerators' check runs on both int8 files.
    for name in ("int8_qat", "int8_pruned"):
        assert variants[name]["edgetpu"] is not None
        assert "FULLY_CONNECTED" not in (variants[name]["float_ops"] or {})
    md = open(os.path.join(run, "export", "report.md")).read()
    assert "int8_qat: converted from a copy fine-tuned by qat for 2 epoch(s)" in md
    # The fusion joins the presence flags (0 or 1) with embeddings of either sign: its int8 range
    # must reach below 0. When the flags had a fake-quant range of their own, the converter gave
    # its [0, 1] (zero point -128) to that concatenation and clipped every embedding to [0, 1].
    from ai_edge_litert.interpreter import Interpreter

    tensors = Interpreter(model_path=os.path.join(run, "export", "tflite", "tiny_int8_qat.tflite")).get_tensor_details()
    joined = [t["quantization"] for t in tensors if t["name"].endswith("fusion/concat")]
    assert joined and all(zero_point > -128 for _, zero_point in joined), joined
    assert "zipped KB" in md


def test_pruning_reaches_its_sparsity_and_qat_keeps_its_best_epoch(compressed):
    _, report, _, stdout = compressed
    pruned = report["variants"]["float32_pruned"]["fine_tune"]
    assert pruned["method"] == "prune" and pruned["epochs"] == 3 and pruned["kept_epoch"] == 3
    assert pruned["target_sparsity"] == 0.6
    assert 0.58 <= pruned["sparsity"] <= 0.62, pruned
    assert report["variants"]["int8_pruned"]["fine_tune"] == pruned  # one fine-tune for both
    qat = report["variants"]["int8_qat"]["fine_tune"]
    # Epoch 0, the calibrated copy before any step, is a candidate too.
    assert qat["method"] == "qat" and len(qat["validation"]) == 3 and qat["first_epoch"] == 0
    values = np.array(qat["validation"])
    best = values.argmax() if qat["monitor"].endswith(("accuracy", "f1")) else values.argmin()
    assert qat["kept_epoch"] == best
    assert "qat: kept epoch" in stdout


def test_the_trained_model_is_not_changed(compressed):
    run, _, before, _ = compressed
    assert digest(os.path.join(run, "model.keras")) == before


@pytest.mark.parametrize("args, message", [
    (["--qat", "0"], "error: --qat: quantisation-aware training needs at least 1 epoch, got 0"),
    (["--prune", "1.5"], "error: --prune: the share of weights set to zero must be between 0 and 1 (exclusive), got 1.5"),
    (["--prune", "0.5", "--prune-epochs", "-1"], "error: --prune-epochs: the pruning fine-tune needs at least 1 epoch, got -1"),
])
def test_impossible_settings_are_one_line(tiny_run, args, message):
    proc = export(tiny_run, *args)
    assert proc.returncode == 2
    assert proc.stderr.strip() == message


def test_wrapped_history_keys_follow_the_wrapped_head_names():
    import tf_keras as keras

    from mmkeras.export.fine_tune import wrapped_key

    x = keras.Input((3,))
    model = keras.Model(x, {"label": keras.layers.Dense(2, name="quant_label")(x),
                            "label_from_image": keras.layers.Dense(2, name="quant_label_from_image")(x)})
    assert wrapped_key(model, "val_label_accuracy") == "val_quant_label_accuracy"
    assert wrapped_key(model, "val_label_from_image_loss") == "val_quant_label_from_image_loss"
    assert wrapped_key(model, "val_loss") == "val_loss"


def test_without_tfmot_the_fine_tunes_say_how_to_install_it(monkeypatch):
    from mmkeras.errors import UserError
    from mmkeras.export.fine_tune import TFMOT_INSTALL, tfmot

    monkeypatch.setitem(sys.modules, "tensorflow_model_optimization", None)  # import then raises ImportError
    with pytest.raises(UserError, match="TF-MOT, which is not installed") as error:
        tfmot()
    assert TFMOT_INSTALL in str(error.value) and "\n" not in str(error.value)


def test_qat_ranges_start_from_the_data_and_leave_the_other_weights():
    """TF-MOT's ranges start at [-6, 6]; calibrated, they are the data's, BatchNorm's statistics unchanged."""
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras

    from mmkeras.export.fine_tune import _range_variables, calibrate_ranges

    keras.utils.set_random_seed(0)
    image = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, use_bias=False, kernel_initializer=keras.initializers.Constant(5.0))(image)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = tfmot.quantization.keras.quantize_model(keras.Model(image, keras.layers.Dense(2)(x)))
    images = np.random.default_rng(0).uniform(0.0, 0.5, (64, 8, 8, 1)).astype("float32")
    batches = tf.data.Dataset.from_tensor_slices((images, np.zeros(64, "int64"))).batch(16)
    ranges = _range_variables(model)
    moving = [v for q, v in ranges if isinstance(q, tfmot.quantization.keras.quantizers.MovingAverageQuantizer)]
    assert len(moving) >= 2 and all(float(v["max_var"].numpy()) == 6.0 for v in moving)
    is_range = {variable.ref() for _, pair in ranges for variable in pair.values()}
    before = {w.name: w.numpy() for w in model.weights if w.ref() not in is_range}

    calibrate_ranges(model, batches)

    for w in model.weights:
        if w.ref() not in is_range and "optimizer_step" not in w.name:
            np.testing.assert_array_equal(w.numpy(), before[w.name], err_msg=w.name)  # BatchNorm's statistics too
    inputs = [v for q, v in ranges if isinstance(q, tfmot.quantization.keras.quantizers.AllValuesQuantizer)]
    assert len(inputs) == 1  # the image's QuantizeLayer: its range is the pixels', from 0
    assert float(inputs[0]["min_var"].numpy()) == 0.0
    assert float(inputs[0]["max_var"].numpy()) == pytest.approx(images.max(), rel=1e-6)
    # The ReLU after the BatchNorm: its range is [0, the largest output seen], far below 6.
    # In training mode BatchNorm normalises each batch, so its outputs' maxima are a few units.
    assert all(-6.0 < float(v["min_var"].numpy()) <= 0.0 < float(v["max_var"].numpy()) < 6.0 for v in moving)
    # The kernels' ranges are the kernels' own (a training step sets them), kept after the pass.
    kernels = [v for q, v in ranges if isinstance(q, tfmot.quantization.keras.quantizers.LastValueQuantizer)]
    assert kernels and all(np.max(v["max_var"].numpy()) < 6.0 for v in kernels)
    assert any(np.all(v["max_var"].numpy() == pytest.approx(5.0)) for v in kernels)  # the conv's constant kernel
    relu = [v for v in moving if float(v["min_var"].numpy()) == 0.0]
    assert relu and all(0.5 < float(v["max_var"].numpy()) < 5.0 for v in relu), [v["max_var"] for v in relu]
