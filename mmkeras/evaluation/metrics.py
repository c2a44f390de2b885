"""Metrics per output type, as plain Python values so they go straight into metrics.json.

Pure numpy (no TensorFlow), so evaluation and its tests stay fast.
"""
import numpy as np


def _check(name, y_true, y_pred):
    """Raise a ValueError naming the problem if the inputs are empty or disagree in length."""
    if len(y_true) == 0:
        raise ValueError(f"{name}: y_true is empty (N=0); there are no samples to evaluate")
    if len(y_pred) != len(y_true):
        raise ValueError(
            f"{name}: y_true and predictions differ in length. "
            f"Received: len(y_true)={len(y_true)}, len(predictions)={len(y_pred)}"
        )


def _div(num, den):
    """Elementwise num / den with 0 where den == 0 (the zero-division convention, without warnings)."""
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def _prf(tp, fp, fn):
    """Precision, recall and F1 from true-positive, false-positive and false-negative counts."""
    precision, recall = _div(tp, tp + fp), _div(tp, tp + fn)
    return precision, recall, _div(2 * tp, 2 * tp + fp + fn)


def _per_class(labels, precision, recall, f1, support):
    return {
        str(label): {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for label, p, r, f, s in zip(labels, precision, recall, f1, support)
    }


def _macro(values, seen):
    # Classes that occur neither in y_true nor in the predictions say nothing about
    # the model; counting them as 0 would punish a test split that lacks a rare class.
    return float(values[seen].mean()) if seen.any() else 0.0


def category_metrics(y_true, y_prob, labels):
    """Accuracy, macro precision/recall/F1, per-class scores and the confusion matrix.

    Args:
        y_true: int class indices, shape [N].
        y_prob: class probabilities (or scores), shape [N, K]; the prediction is the argmax.
        labels: the K class names, in index order.
    """
    y_true, y_prob = np.asarray(y_true, dtype=int).reshape(-1), np.asarray(y_prob, dtype=float)
    _check("category_metrics", y_true, y_prob)
    k = len(labels)
    if y_prob.ndim != 2 or y_prob.shape[1] != k:
        raise ValueError(
            f"category_metrics: y_prob must have shape [N, {k}] (one column per label). "
            f"Received: y_prob.shape={y_prob.shape}"
        )
    if y_true.min() < 0 or y_true.max() >= k:
        raise ValueError(
            f"category_metrics: y_true holds class indices outside [0, {k}). "
            f"Received: min={y_true.min()}, max={y_true.max()}"
        )
    y_pred = y_prob.argmax(axis=1)
    matrix = np.zeros((k, k), dtype=int)
    np.add.at(matrix, (y_true, y_pred), 1)
    tp, support, predicted = np.diag(matrix), matrix.sum(axis=1), matrix.sum(axis=0)
    precision, recall, f1 = _prf(tp, predicted - tp, support - tp)
    seen = (support + predicted) > 0
    result = {
        "accuracy": float(tp.sum() / len(y_true)),
        "macro_precision": _macro(precision, seen),
        "macro_recall": _macro(recall, seen),
        "macro_f1": _macro(f1, seen),
        "per_class": _per_class(labels, precision, recall, f1, support),
        "confusion_matrix": matrix.tolist(),
        "labels": [str(label) for label in labels],
        "n": int(len(y_true)),
    }
    if k > 3:
        # argsort is stable, so ties are broken the same way as argmax (lower index first).
        top3 = np.argsort(-y_prob, axis=1, kind="stable")[:, :3]
        result["top3_accuracy"] = float((top3 == y_true[:, None]).any(axis=1).mean())
    return result


# A multilabel output predicts each label whose probability is above this (metrics and predict).
MULTILABEL_THRESHOLD = 0.5


def multilabel_metrics(y_true, y_prob, labels, threshold=MULTILABEL_THRESHOLD):
    """Micro/macro F1, subset accuracy, Hamming loss and per-class scores.

    Args:
        y_true: 0/1 indicators, shape [N, K].
        y_prob: per-label probabilities, shape [N, K].
        labels: the K label names, in column order.
        threshold: a label is predicted when its probability is above this
            (strictly, as in Keras `binary_accuracy`).
    """
    y_true, y_prob = np.asarray(y_true, dtype=float), np.asarray(y_prob, dtype=float)
    _check("multilabel_metrics", y_true, y_prob)
    if y_true.shape != y_prob.shape or y_true.ndim != 2 or y_true.shape[1] != len(labels):
        raise ValueError(
            f"multilabel_metrics: y_true and y_prob must both have shape [N, {len(labels)}]. "
            f"Received: y_true.shape={y_true.shape}, y_prob.shape={y_prob.shape}"
        )
    truth, pred = y_true > 0.5, y_prob > threshold
    tp = (truth & pred).sum(axis=0)
    fp = (~truth & pred).sum(axis=0)
    fn = (truth & ~pred).sum(axis=0)
    precision, recall, f1 = _prf(tp, fp, fn)
    _, _, micro_f1 = _prf(tp.sum(), fp.sum(), fn.sum())
    return {
        "micro_f1": float(micro_f1),
        "macro_f1": _macro(f1, (tp + fp + fn) > 0),
        "subset_accuracy": float((truth == pred).all(axis=1).mean()),
        "hamming_loss": float((truth != pred).mean()),
        "per_class": _per_class(labels, precision, recall, f1, truth.sum(axis=0)),
        "n": int(len(y_true)),
    }


def numeric_metrics(y_true, y_pred, labels=None):
    """Mean absolute error, root mean squared error and R².

    Args:
        y_true: targets, shape [N] or [N, D].
        y_pred: predictions with the same number of values (a Keras [N, 1] output is fine for [N] targets).
        labels: ignored; accepted so every output type's metrics take the same arguments.
    """
    y_true, y_pred = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    _check("numeric_metrics", y_true, y_pred)
    if y_true.size != y_pred.size:
        raise ValueError(
            "numeric_metrics: y_true and y_pred hold different numbers of values. "
            f"Received: y_true.shape={y_true.shape}, y_pred.shape={y_pred.shape}"
        )
    n = len(y_true)
    y_true, y_pred = y_true.reshape(-1), y_pred.reshape(-1)
    error = y_pred - y_true
    ss_res = float((error**2).sum())
    ss_tot = float(((y_true - y_true.mean()) ** 2).sum())
    # Constant targets make R² undefined; report 1 for a perfect fit and 0 otherwise
    # (scikit-learn's convention) rather than NaN, which json.dumps writes as invalid JSON.
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else float(ss_res == 0)
    return {
        "mae": float(np.abs(error).mean()),
        "rmse": float(np.sqrt((error**2).mean())),
        "r2": float(r2),
        "n": int(n),
    }

