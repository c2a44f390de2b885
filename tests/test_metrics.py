"""Metrics against hand-computed values, and plots that write valid PNGs atomically."""
import json
import struct
import subprocess
import sys
import warnings

import numpy as np
import pytest

from mmkeras.evaluation import plots
from mmkeras.evaluation.metrics import (
    category_metrics,
    multilabel_metrics,
    numeric_metrics,
)

# Worked on paper: predictions are the argmax of each row.
# true: cat cat cat dog dog bird, pred: cat cat dog dog cat dog.
# "bird" is never predicted; "fish" is in neither truth nor predictions.
LABELS = ["cat", "dog", "bird", "fish"]
Y_TRUE = [0, 0, 0, 1, 1, 2]
Y_PROB = [
    [0.7, 0.1, 0.15, 0.05],
    [0.6, 0.2, 0.15, 0.05],
    [0.3, 0.5, 0.15, 0.05],
    [0.1, 0.6, 0.2, 0.1],
    [0.5, 0.3, 0.15, 0.05],
    [0.3, 0.4, 0.05, 0.25],  # bird ranks 4th: the only top-3 miss
]


def assert_plain_json(value):
    """Every leaf is a built-in type, so json.dumps works and nothing is a numpy scalar."""
    if isinstance(value, dict):
        assert all(type(k) is str for k in value)
        for v in value.values():
            assert_plain_json(v)
    elif isinstance(value, list):
        for v in value:
            assert_plain_json(v)
    else:
        assert type(value) in (int, float, str), (value, type(value))


def png_size(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_category_hand_computed():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # zero division (bird, fish) must not warn
        m = category_metrics(Y_TRUE, Y_PROB, LABELS)
    assert m["confusion_matrix"] == [[2, 1, 0, 0], [1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]]
    assert m["accuracy"] == pytest.approx(3 / 6)
    # cat P=R=F=2/3; dog P=1/3 R=1/2 F=2/5; bird all 0 and counted; fish excluded.
    assert m["macro_precision"] == pytest.approx((2 / 3 + 1 / 3 + 0) / 3)
    assert m["macro_recall"] == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)
    assert m["macro_f1"] == pytest.approx(16 / 45)
    assert m["per_class"]["dog"] == pytest.approx({"precision": 1 / 3, "recall": 0.5, "f1": 0.4, "support": 2})
    assert m["per_class"]["bird"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert m["per_class"]["fish"]["support"] == 0
    assert m["top3_accuracy"] == pytest.approx(5 / 6)
    assert m["labels"] == LABELS and m["n"] == 6
    assert_plain_json(m)
    assert json.loads(json.dumps(m)) == m


def test_category_top3_only_with_more_than_three_classes():
    m = category_metrics([0, 1, 2], np.eye(3), ["a", "b", "c"])
    assert m["accuracy"] == 1.0 and m["macro_f1"] == 1.0
    assert "top3_accuracy" not in m


def test_category_rejects_bad_shapes_and_indices():
    with pytest.raises(ValueError, match="shape"):
        category_metrics([0, 1], np.eye(2), ["a", "b", "c"])
    with pytest.raises(ValueError, match="outside"):
        category_metrics([0, 3], np.eye(2, 3), ["a", "b", "c"])


def test_multilabel_hand_computed():
    y_true = [[1, 0, 1], [0, 1, 0], [1, 1, 0]]
    y_prob = [[0.9, 0.2, 0.4], [0.1, 0.7, 0.6], [0.8, 0.6, 0.1]]
    # pred:   [1, 0, 0]        [0, 1, 1]        [1, 1, 0]
    m = multilabel_metrics(y_true, y_prob, ["a", "b", "c"])
    # tp=4 fp=1 fn=1 overall; per class F1: a=1, b=1, c=0 (tp=0 fp=1 fn=1).
    assert m["micro_f1"] == pytest.approx(0.8)
    assert m["macro_f1"] == pytest.approx(2 / 3)
    assert m["subset_accuracy"] == pytest.approx(1 / 3)
    assert m["hamming_loss"] == pytest.approx(2 / 9)
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert m["n"] == 3
    assert_plain_json(m)


def test_multilabel_threshold_is_strict_like_keras():
    m = multilabel_metrics([[1, 0]], [[0.5, 0.5]], ["a", "b"])
    assert m["per_class"]["a"]["recall"] == 0.0 and m["hamming_loss"] == 0.5


def test_numeric_hand_computed():
    # errors 0.5, 0, -1, 1; mean(y)=2.5 so SS_tot=5, SS_res=2.25.
    m = numeric_metrics([1, 2, 3, 4], [[1.5], [2], [2], [5]])  # Keras-style [N, 1] predictions
    assert m == pytest.approx({"mae": 0.625, "rmse": 0.75, "r2": 0.55, "n": 4})
    assert_plain_json(m)


def test_numeric_constant_target_gives_finite_r2():
    assert numeric_metrics([2, 2], [2, 2])["r2"] == 1.0
    assert numeric_metrics([2, 2], [1, 3])["r2"] == 0.0


@pytest.mark.parametrize(
    "call",
    [
        lambda: category_metrics([], np.zeros((0, 2)), ["a", "b"]),
        lambda: multilabel_metrics(np.zeros((0, 2)), np.zeros((0, 2)), ["a", "b"]),
        lambda: numeric_metrics([], []),
    ],
)
def test_empty_input_raises(call):
    with pytest.raises(ValueError, match="empty"):
        call()


def test_length_mismatch_raises():
    with pytest.raises(ValueError, match="differ in length"):
        numeric_metrics([1, 2, 3], [1, 2])



def test_modules_import_without_tensorflow_or_pyplot():
    code = (
        "import sys, mmkeras.evaluation.metrics, mmkeras.evaluation.plots; "
        "print('tensorflow' in sys.modules, 'matplotlib.pyplot' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_confusion_matrix_png(tmp_path):
    labels = ["smileys & emotion", "people & body", "animals & nature", "food & drink", "travel & places",
              "activities", "objects", "symbols", "flags", "component"]
    rng = np.random.default_rng(0)
    matrix = rng.integers(0, 20, size=(10, 10)) + np.diag(rng.integers(20, 80, size=10))
    path = tmp_path / "confusion.png"
    assert plots.plot_confusion_matrix(matrix.tolist(), labels, path, title="test") == str(path)
    width, height = png_size(path)
    assert 500 <= width <= 2500 and 500 <= height <= 2500
    assert [p.name for p in tmp_path.iterdir()] == ["confusion.png"]


def test_confusion_matrix_rejects_wrong_shape(tmp_path):
    with pytest.raises(ValueError, match="3 x 3"):
        plots.plot_confusion_matrix([[1, 2], [3, 4]], ["a", "b", "c"], tmp_path / "cm.png")


HISTORY = (
    "epoch,label_accuracy,label_loss,loss,val_label_accuracy,val_label_loss,val_loss\n"
    "0,0.5,1.2,1.3,0.4,1.4,1.5\n"
    "1,0.6,1.0,1.1,NA,1.2,1.3\n"
    "2,0.7,0.8,0.9,0.6,1.1,1.2\n"
)


def test_read_history_pairs_val_columns(tmp_path):
    csv_path = tmp_path / "history.csv"
    csv_path.write_text(HISTORY)
    epochs, series = plots.history_series(csv_path)
    assert epochs.tolist() == [0, 1, 2]
    assert list(series) == ["loss", "label_accuracy", "label_loss"]
    train, val = series["label_accuracy"]
    assert train.tolist() == [0.5, 0.6, 0.7]
    assert np.isnan(val[1]) and val[2] == 0.6


def test_history_png(tmp_path):
    csv_path = tmp_path / "history.csv"
    csv_path.write_text(HISTORY)
    plots.plot_history(csv_path, tmp_path / "plots" / "history.png")
    png_size(tmp_path / "plots" / "history.png")
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["history.png"]


def test_history_without_epochs_raises(tmp_path):
    csv_path = tmp_path / "history.csv"
    csv_path.write_text("epoch,loss,val_loss\n")
    with pytest.raises(ValueError, match="no epochs"):
        plots.plot_history(csv_path, tmp_path / "history.png")


def test_ablation_png(tmp_path):
    ablation = {
        "full": {"label": 0.8, "score": 0.3},
        "without": {"image": {"label": 0.6, "score": 0.5}, "text": {"label": 0.7, "score": 0.4}},
        "only": {"image": {"label": 0.5}, "text": {"label": 0.4, "score": 0.6}},  # one missing value
    }
    path = tmp_path / "ablation.png"
    plots.plot_ablation(ablation, path, metric_names={"label": "accuracy", "score": "mae"})
    png_size(path)
    assert [p.name for p in tmp_path.iterdir()] == ["ablation.png"]
