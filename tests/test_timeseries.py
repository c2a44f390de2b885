"""The `timeseries` modality: its files, statistics, length policies, and a model trained, exported
to SavedModel and every TFLite variant, and predicted with — all through the real commands."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

from mmkeras.config import config_from_dict
from mmkeras.errors import ConfigError
from mmkeras.modalities import BadValue, handler

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSES = ["slow", "medium", "fast"]
FREQUENCIES = {"slow": 2.0, "medium": 5.0, "fast": 11.0}  # cycles per 64 samples


def input_config(**settings):
    """A validated timeseries input config (through the whole config, as users write it)."""
    raw = {"data": {"train": "x"}, "inputs": [{"name": "motion", "type": "timeseries", **settings}],
           "outputs": [{"name": "label"}]}
    return config_from_dict(raw).inputs[0]


def write_trace(folder, name, trace, header=None):
    """`.npy` or `.csv` by `name`'s suffix; returns the manifest value (relative path)."""
    path = os.path.join(folder, name)
    if name.endswith(".npy"):
        np.save(path, trace)
    else:
        with open(path, "w") as f:
            if header:
                f.write(",".join(header) + "\n")
            f.writelines(",".join(repr(float(v)) for v in np.atleast_1d(row)) + "\n" for row in trace)
    return name


def test_config_defaults_and_checks():
    inp = input_config(channels=3)
    assert (inp.length, inp.fit, inp.encoder.type) == (128, "crop", "conv1d")
    assert input_config(encoder={"dim": 8}).encoder.type == "conv1d"  # the default encoder, one key set
    assert input_config(encoder={"type": "homogeneous", "patch_size": 4}).encoder.patch_size == 4
    with pytest.raises(ConfigError, match=r"inputs\[0\]\.fit: expected one of crop, resample, got 'pad'"):
        input_config(fit="pad")
    with pytest.raises(ConfigError, match=r"inputs\[0\]\.encoder\.type: .*'cnn'"):
        input_config(encoder={"type": "cnn"})


def test_files_are_read_and_bad_ones_named(tmp_path):
    h = handler(input_config(channels=2))
    trace = np.arange(10, dtype=np.float64).reshape(5, 2)
    for name, header in (("a.npy", None), ("b.csv", None), ("c.csv", ["x", "y"])):
        path = h.parse({"motion": write_trace(str(tmp_path), name, trace, header)}, str(tmp_path))
        np.testing.assert_array_equal(h._read(np.asarray(path.encode())), trace.astype(np.float32))
    one_channel = handler(input_config(channels=1))
    path = one_channel.parse({"motion": write_trace(str(tmp_path), "flat.npy", np.arange(4.0))}, str(tmp_path))
    assert one_channel._read(np.asarray(path.encode())).shape == (4, 1)  # [T] is one channel

    bad = {
        "three.npy": (np.zeros((5, 3)), r"expected \[samples, 2\] \(one column per channel\), got shape \[5, 3\]"),
        "nan.csv": (np.array([[0.0, 1.0], [np.nan, 2.0]]), r"NaN or infinite values \(first at sample 1\)"),
        "empty.npy": (np.zeros((0, 2)), "has no samples"),
        "words.npy": (np.array([["a", "b"]]), "holds real numbers, got <U1"),
    }
    for name, (data, message) in bad.items():
        write_trace(str(tmp_path), name, data)
        with pytest.raises(BadValue, match=message):
            h.parse({"motion": name}, str(tmp_path))
    (tmp_path / "ragged.csv").write_text("1,2\n3\n")
    with pytest.raises(BadValue, match=r"not a readable \.csv time series: .*ragged\.csv"):
        h.parse({"motion": "ragged.csv"}, str(tmp_path))
    (tmp_path / "trace.txt").write_text("1,2\n")
    with pytest.raises(BadValue, match=r"a time series is a \.npy or \.csv file"):
        h.parse({"motion": "trace.txt"}, str(tmp_path))
    long = handler(input_config(channels=2, length=4))
    write_trace(str(tmp_path), "long.npy", np.zeros((100_001, 2), np.float32))
    with pytest.raises(BadValue, match="100001 samples is over the 100000-sample bound"):
        long.parse({"motion": "long.npy"}, str(tmp_path))


def test_statistics_are_exact_per_channel_across_files(tmp_path):
    rng = np.random.default_rng(0)
    # A channel at 1e5 ± 1e-3 beside one of unit scale: E[x²] − mean² would lose the first.
    traces = [np.stack([1e5 + rng.normal(0, 1e-3, n), rng.normal(3, 1, n)], -1) for n in (7, 30, 1)]
    paths = [os.path.join(tmp_path, write_trace(str(tmp_path), f"{i}.npy", t)) for i, t in enumerate(traces)]
    h = handler(input_config(channels=2))
    h.fit(paths)
    every = np.concatenate([t.astype(np.float32).astype(np.float64) for t in traces])
    np.testing.assert_allclose(h.state["mean"], every.mean(0), rtol=1e-12)
    np.testing.assert_allclose(h.state["variance"], every.var(0), rtol=1e-6)


def test_crop_pads_with_the_means_and_resample_interpolates(tmp_path):
    import tensorflow as tf

    ramp = np.arange(12, dtype=np.float32)[:, None]
    path = os.path.join(tmp_path, write_trace(str(tmp_path), "ramp.npy", ramp))
    crop = handler(input_config(length=8), {"mean": [-1.0], "variance": [1.0]})
    decoded = crop.decode(tf.constant(path))
    np.testing.assert_array_equal(crop.finalize(decoded, training=False)[:, 0], np.arange(2, 10))  # centred
    offsets = {int(crop.finalize(decoded, training=True)[0, 0]) for _ in range(40)}
    assert offsets <= set(range(5)) and len(offsets) > 1  # random crops in training
    short = handler(input_config(length=16), {"mean": [-1.0], "variance": [1.0]})
    np.testing.assert_array_equal(short.finalize(short.decode(tf.constant(path)), False)[12:, 0], [-1.0] * 4)
    assert short.finalize(short.absent(), False).shape == (16, 1)

    resample = handler(input_config(length=23, fit="resample"), {"mean": [0.0], "variance": [1.0]})
    line = resample.decode(tf.constant(path)).numpy()[:, 0]
    assert line.shape == (23,) and np.all(np.diff(line) > 0)  # a ramp stays a ramp
    np.testing.assert_allclose(np.diff(line)[3:-3], 12 / 23, rtol=1e-5)
    # The serving signature fits raw traces with the same ops.
    np.testing.assert_allclose(resample.from_raw(tf.constant(ramp[None]))[0, :, 0], line, atol=1e-6)
    np.testing.assert_array_equal(crop.from_raw(tf.constant(ramp[None]))[0], crop.finalize(decoded, False))


def _make_motion_set(folder, rng):
    """Three classes told apart by the frequency of a tiny channel (scale 1e-3) beside a loud
    noise channel (scale 1e3); traces of 50-90 samples in .npy and .csv files."""
    splits = {}
    for split, n in (("train", 150), ("val", 45), ("test", 60)):
        records = []
        for i in range(n):
            label = CLASSES[i % 3]
            t = np.arange(rng.integers(50, 90))
            signal = 1e-3 * np.sin(2 * np.pi * FREQUENCIES[label] * t / 64 + rng.uniform(0, 2 * np.pi))
            trace = np.stack([1e3 * rng.normal(size=len(t)) + 5e3, signal + rng.normal(0, 2e-4, len(t))], -1)
            name = f"{split}{i}.{'npy' if i % 2 else 'csv'}"
            records.append({"motion": write_trace(folder, name, trace, header=["loud", "tiny"]), "label": label})
        splits[split] = records
        with open(os.path.join(folder, f"{split}.jsonl"), "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in records)
    return splits


@pytest.fixture(scope="module")
def motion_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("motion")
    _make_motion_set(str(folder), np.random.default_rng(0))
    config = {"name": "motion", "data": {"train": str(folder / "train.jsonl"), "validation": str(folder / "val.jsonl"),
                                         "test": str(folder / "test.jsonl")},
              "inputs": [{"name": "motion", "type": "timeseries", "channels": 2, "length": 64,
                          "encoder": {"filters": [8, 16], "dim": 16}}],
              "outputs": [{"name": "label", "type": "category"}],
              "training": {"epochs": 12, "learning_rate": 0.01, "batch_size": 16},
              "export": {"representative_samples": 60}}
    (folder / "motion.yaml").write_text(yaml.safe_dump(config))
    run = str(folder / "run")
    proc = subprocess.run([sys.executable, "train.py", "--config", str(folder / "motion.yaml"), "--output", run, "--deterministic"],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = subprocess.run([sys.executable, "-m", "export", run], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run, str(folder)


def test_trained_exported_to_every_variant_and_predicted(motion_run):
    run, folder = motion_run
    metrics = json.load(open(os.path.join(run, "metrics.json")))
    assert metrics["test"]["label"]["accuracy"] >= 0.9, metrics["test"]
    report = json.load(open(os.path.join(run, "export", "report.json")))
    variants = report["variants"]
    assert set(variants) == {"saved_model", "float32", "dynamic", "float16", "int8", "int8_mixed"}
    assert variants["saved_model"]["max_abs_diff"] < 1e-4 and variants["float32"]["max_abs_diff"] < 1e-4
    float_accuracy = variants["float32"]["outputs"]["label"]["value"]
    # The tiny channel carries the label: standardised by the float front-end, int8 keeps it.
    assert variants["int8"]["outputs"]["label"]["value"] >= float_accuracy - 0.05, variants["int8"]
    assert variants["int8_mixed"]["outputs"]["label"]["value"] >= float_accuracy - 0.05, variants["int8_mixed"]
    assert report["frontends"]["motion"]["output"] == "motion_features"

    described = json.load(open(os.path.join(run, "export", "tflite", "motion_int8.json")))
    preprocessing = next(i for i in described["inputs"] if i["name"] == "motion_features")["preprocessing"]
    assert preprocessing["length"] == 64 and preprocessing["channels"] == 2 and "crop" in preprocessing
    assert len(preprocessing["mean"]) == 2 and preprocessing["std"][0] > 100 * preprocessing["std"][1]
    # The .tflite itself tells an app the same statistics (MediaPipe's NormalizationOptions).
    from mmkeras.export.metadata import read_metadata

    metadata, _ = read_metadata(open(os.path.join(run, "export", "tflite", "motion_int8.tflite"), "rb").read())
    tensor = next(t for t in metadata["subgraph_metadata"][0]["input_tensor_metadata"] if t["name"] == "motion_features")
    options = tensor["process_units"][0]["options"]
    # (the displayer's JSON prints 6 decimals)
    np.testing.assert_allclose(options["mean"], preprocessing["mean"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(options["std"], preprocessing["std"], rtol=1e-3, atol=1e-6)

    out = os.path.join(folder, "predictions.jsonl")
    proc = subprocess.run([sys.executable, "-m", "mmkeras.predict", run, os.path.join(folder, "test.jsonl"),
                           "--artifact", "tflite:int8", "--output", out], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in open(out)]
    truth = [json.loads(line)["label"] for line in open(os.path.join(folder, "test.jsonl"))]
    assert len(rows) == 60
    assert np.mean([r["label"]["label"] == t for r, t in zip(rows, truth)]) >= float_accuracy - 0.05


def test_saved_model_takes_raw_traces_of_any_length(motion_run):
    import tensorflow as tf

    from mmkeras.modalities.timeseries import load_trace

    run, folder = motion_run
    record = json.loads(open(os.path.join(folder, "test.jsonl")).readline())
    trace = load_trace(os.path.join(folder, record["motion"]), 2)
    versions = os.path.join(run, "export", "saved_model", "motion")
    serve = tf.saved_model.load(os.path.join(versions, sorted(os.listdir(versions))[-1])).signatures["serving_default"]
    out = serve(motion=tf.constant(trace[None]))
    assert out["label_label"].numpy()[0].decode() == record["label"]
