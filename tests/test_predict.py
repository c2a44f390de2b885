"""python -m mmkeras.predict: every artifact predicts the same, bad records are listed, memory-bounded chunks."""
import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from mmkeras.config import OutputConfig
from mmkeras.predict import main, parse_args
from mmkeras.outputs import OUTPUT_TYPES
from mmkeras.prediction import Predictor, Scores, read_chunks

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def predict_cli(*args):
    """In-process CLI run (TensorFlow is imported once for the module) → (exit code, stdout, stderr)."""
    from mmkeras.cli import run_cli

    return run_cli(main, parse_args([str(a) for a in args]))


def _predictions(run, manifest, spec, chunk_size=2048):
    from mmkeras.data.records import BadRecordLog

    predictor = Predictor.open(run, spec)
    log = BadRecordLog("skip")
    outputs = [predictor.artifact(split) for split, _ in read_chunks(manifest, predictor.prep.handlers, log,
                                                                       chunk_size)]
    return {k: np.concatenate([o[k] for o in outputs]) for k in outputs[0]}


def test_every_artifact_predicts_what_the_keras_model_does(tiny_run, exported, tiny_data):
    manifest = os.path.join(tiny_data, "test.jsonl")
    keras = _predictions(tiny_run, manifest, "keras")["label"]
    assert keras.shape == (18, 3)
    # Chunks of 5 records (4 chunks, the last short) give the same predictions as one chunk.
    np.testing.assert_allclose(_predictions(tiny_run, manifest, "keras", chunk_size=5)["label"], keras, atol=1e-6)
    for spec in ("saved_model", "tflite:float32"):
        other = _predictions(tiny_run, manifest, spec)["label"]
        np.testing.assert_allclose(other, keras, atol=1e-4, err_msg=spec)


def test_cli_writes_rows_and_scores_labelled_manifests(tiny_run, exported, tiny_data, tmp_path, capsys):
    manifest = os.path.join(tiny_data, "test.jsonl")
    out = tmp_path / "preds.csv"
    assert predict_cli(tiny_run, manifest, "--artifact", "tflite:float32", "--output", out, "--top-k", 2) == 0
    printed = capsys.readouterr().out
    assert "predicted 18 records with export/tflite/tiny_float32.tflite" in printed
    assert "label: accuracy" in printed and "(n=18)" in printed
    rows = list(csv.DictReader(open(out)))
    assert list(rows[0]) == ["line", "label", "label_probability", "label_top2", "label_top2_probability"]
    assert [int(r["line"]) for r in rows] == list(range(1, 19))
    assert all(r["label"] in ("red", "green", "blue") for r in rows)
    assert all(float(r["label_probability"]) >= float(r["label_top2_probability"]) for r in rows)
    assert not os.path.exists(tmp_path / "preds.bad_records.jsonl")


def test_bad_records_are_listed_and_skipped_labels_not_needed(tiny_run, tiny_data, tmp_path, capsys):
    records = [json.loads(line) for line in open(os.path.join(tiny_data, "test.jsonl"))][:3]
    for r in records:
        del r["label"]
    records[1]["image"] = "img/missing.png"
    lines = [json.dumps(records[0]), "{not json", json.dumps(records[1]), json.dumps(records[2])]
    manifest = os.path.join(tiny_data, "new.jsonl")  # beside the files it names (paths never leave its folder)
    with open(manifest, "w") as f:
        f.write("\n".join(lines) + "\n")

    assert predict_cli(tiny_run, manifest) == 0  # JSONL on stdout, the summary on stderr
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert [r["line"] for r in rows] == [1, 4]
    top = [e["probability"] for e in rows[0]["label"]["top_k"]]
    assert len(top) == 3 and top == sorted(top, reverse=True)
    assert "skipped 2 bad records" in captured.err and "new.jsonl:2: invalid JSON" in captured.err
    assert "column 'image': file not found" in captured.err
    assert "accuracy" not in captured.err  # no labels, no metrics

    out = tmp_path / "p.jsonl"
    assert predict_cli(tiny_run, manifest, "--output", out) == 0
    listed = [json.loads(line) for line in open(tmp_path / "p.bad_records.jsonl")]
    assert [(e["line"], e["column"]) for e in listed] == [(2, None), (3, "image")]

    assert predict_cli(tiny_run, manifest, "--on-bad-record", "error", "--output", tmp_path / "e.jsonl") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "new.jsonl:2: invalid JSON" in err[0]
    assert not os.path.exists(tmp_path / "e.jsonl")  # stopped: no half-written predictions


@pytest.mark.parametrize("args, message", [
    (["--artifact", "tflite:int9"], "no such variant"),
    (["--artifact", "tflit"], "did you mean 'tflite'"),
    (["--artifact", "tflite"], "needs its variant"),
    (["--output", "preds.txt"], "unsupported type '.txt'"),
    (["--top-k", "0"], "--top-k: must be at least 1"),
])
def test_user_errors_are_one_line(tiny_run, exported, tiny_data, args, message, capsys):
    assert predict_cli(tiny_run, os.path.join(tiny_data, "test.jsonl"), *args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_output_cannot_overwrite_the_manifest(tiny_run, tiny_data, capsys):
    manifest = os.path.join(tiny_data, "test.jsonl")
    assert predict_cli(tiny_run, manifest, "--output", manifest) == 2
    assert "is the manifest being read" in capsys.readouterr().err


def test_rows_per_output_type():
    labels = ["a", "b", "c"]
    row = OUTPUT_TYPES.get("category").row(np.array([0.2, 0.7, 0.1]), labels, 2)
    assert row == {"label": "b", "probability": 0.7, "top_k": [{"label": "b", "probability": 0.7},
                                                                {"label": "a", "probability": 0.2}]}
    multi = OutputConfig(name="tags", type="multilabel")
    row = OUTPUT_TYPES.get("multilabel").row(np.array([0.6, 0.2, 0.9]), labels, 3)
    assert row == {"labels": ["c", "a"], "probabilities": [0.9, 0.6]}
    assert OUTPUT_TYPES.get("multilabel").flat("tags", row, multi) == {"tags": "c;a", "tags_probabilities": "0.9;0.6"}
    assert OUTPUT_TYPES.get("numeric").row(np.array([3.5]), None, 3) == {"value": 3.5}


def test_scores_skip_records_without_a_valid_label():
    out = OutputConfig(name="label", type="category")
    scores = Scores([out], {"label": ["a", "b"]})
    records = [{"label": "a"}, {"label": "zzz"}, {}, {"label": "b"}]
    scores.add(records, {"label": np.array([[0.9, 0.1], [0.5, 0.5], [0.5, 0.5], [0.8, 0.2]], np.float32)})
    metrics = scores.metrics()["label"]
    assert metrics["n"] == 2 and metrics["accuracy"] == 0.5 and scores.unscored["label"] == 2


def test_command_runs_as_a_module(tiny_run, tiny_data, tmp_path):
    out = tmp_path / "p.jsonl"
    proc = subprocess.run([sys.executable, "-m", "mmkeras.predict", tiny_run, os.path.join(tiny_data, "val.jsonl"),
                           "--output", str(out)], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "predicted 18 records with model.keras" in proc.stdout and proc.stderr == ""
    assert len(out.read_text().splitlines()) == 18


@pytest.mark.slow
def test_every_artifact_predicts_the_same_on_the_demo(tmp_path):
    """The demo (four modalities, Opus audio, a front-end) trained one epoch, exported, predicted three ways."""
    run = str(tmp_path / "demo")
    for command in (["train.py", "--config", "configs/demo.yaml", "--output", run, "--set", "training.epochs=1"],
                    ["-m", "export", run, "--quantize", "float32"]):
        proc = subprocess.run([sys.executable, *command], capture_output=True, text=True, cwd=REPO)
        assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = os.path.join(REPO, "data", "demo", "test.jsonl")
    keras = _predictions(run, manifest, "keras")["label"]
    assert keras.shape == (190, 9)
    for spec in ("saved_model", "tflite:float32"):
        other = _predictions(run, manifest, spec)["label"]
        np.testing.assert_allclose(other, keras, atol=1e-4, err_msg=spec)
        assert (other.argmax(axis=1) == keras.argmax(axis=1)).all()
