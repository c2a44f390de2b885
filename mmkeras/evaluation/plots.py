"""PNG plots for the run directory: confusion matrix, training history, per-modality ablation.

Uses `Figure` + the Agg canvas directly instead of pyplot, so importing this module
never switches the process-wide matplotlib backend or opens a window.
"""
import math
import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from mmkeras.io import atomic_path
from mmkeras.run_dir import read_history


def new_figure(width, height):
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path):
    """Write fig as PNG via a temporary file, so a crash never leaves a half-written plot at path."""
    path = os.fspath(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def plot_confusion_matrix(matrix, labels, path, title=None):
    """Annotated confusion-matrix heatmap: colour = share of the true class, text = count.

    Args:
        matrix: K x K counts, rows = true class, columns = predicted class.
        labels: the K class names.
        path: PNG file to write.
        title: figure title; a default explaining the colours is used when None.
    """
    counts = np.asarray(matrix, dtype=float)
    k = len(labels)
    if counts.shape != (k, k):
        raise ValueError(
            f"plot_confusion_matrix: matrix must be {k} x {k} (one row and column per label). "
            f"Received: matrix.shape={counts.shape}"
        )
    # Row-normalised colours keep rare classes as readable as frequent ones.
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    side = min(3.0 + 0.65 * k, 24.0)
    fig = new_figure(side + 1.2, side)
    ax = fig.add_subplot()
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, shrink=0.8, label="share of true class")
    ax.set_xticks(range(k), [str(label) for label in labels], rotation=40, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(k), [str(label) for label in labels])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "Confusion matrix (count; colour = share of true class)")
    if k <= 30:  # beyond that the numbers no longer fit in the cells
        fontsize = 9 if k <= 15 else 7
        for (row, col), count in np.ndenumerate(counts):
            colour = "white" if share[row, col] > 0.5 else ("0.6" if count == 0 else "black")
            ax.text(col, row, f"{count:.0f}", ha="center", va="center", color=colour, fontsize=fontsize)
    return _save(fig, path)


def _to_float(text):
    try:
        return float(text)
    except ValueError:  # CSVLogger writes "NA" for a metric missing in an epoch
        return math.nan


def history_series(history_csv):
    """A run's history.csv as (epochs, {metric: (train values or None, val values or None)}).

    Args:
        history_csv: path of the CSV file; `val_<metric>` columns are paired with `<metric>`.
    """
    rows = read_history(history_csv)
    if not rows:
        raise ValueError(f"{history_csv}: no epochs logged (the file is empty or holds only a header)")

    def column(name):
        return np.array([_to_float(row[name]) for row in rows]) if name in rows[0] else None

    names = dict.fromkeys(c.removeprefix("val_") for c in rows[0] if c != "epoch")
    # CSVLogger sorts columns alphabetically; loss is what people look at first.
    names = sorted(names, key=lambda name: name != "loss")
    epochs = column("epoch")
    epochs = np.arange(len(rows)) if epochs is None else epochs
    return epochs, {name: (column(name), column("val_" + name)) for name in names}


def plot_history(history_csv, path):
    """Loss and every metric against epoch, train vs validation, one subplot each.

    Args:
        history_csv: a Keras CSVLogger file (`epoch`, `loss`, `val_loss`, metrics and their `val_` twins).
        path: PNG file to write.
    """
    epochs, series = history_series(history_csv)
    ncols = min(3, len(series))
    nrows = math.ceil(len(series) / ncols)
    fig = new_figure(4.5 * ncols, 3.3 * nrows)
    for i, (name, pair) in enumerate(series.items()):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        for values, label in zip(pair, ("train", "validation")):
            if values is not None:
                ax.plot(epochs, values, marker="o", markersize=3, label=label)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


def plot_ablation(ablation, path, metric_names=None):
    """Grouped bars per output: the primary metric without each modality and with it alone, vs the full model.

    Args:
        ablation: {"full": {output: value}, "without": {modality: {output: value}},
            "only": {modality: {output: value}}}; missing entries are left blank.
        path: PNG file to write.
        metric_names: optional {output: metric name} for the y-axis labels (each output type's primary_metric).
    """
    full = ablation.get("full") or {}
    if not full:
        raise ValueError(f"plot_ablation: ablation['full'] names no outputs. Received: ablation={ablation}")
    groups = {"without": ablation.get("without", {}), "only": ablation.get("only", {})}
    modalities = list(dict.fromkeys(m for group in groups.values() for m in group))
    x = np.arange(len(modalities))
    width = 0.38
    fig = new_figure(max(4.0, 1.1 * len(modalities) + 1.5) * len(full), 4.0)
    for i, (output, full_value) in enumerate(full.items()):
        ax = fig.add_subplot(1, len(full), i + 1)
        for offset, (kind, group) in zip((-width / 2, width / 2), groups.items()):
            values = [group.get(m, {}).get(output, math.nan) for m in modalities]
            bars = ax.bar(x + offset, values, width, label=f"{kind} modality")
            ax.bar_label(bars, [f"{v:.3f}" if math.isfinite(v) else "" for v in values], fontsize=8)
        ax.axhline(full_value, color="black", linestyle="--", linewidth=1, label=f"full model ({full_value:.3f})")
        ax.set_xticks(x, modalities)
        ax.set_title(output)
        ax.set_ylabel((metric_names or {}).get(output, "primary metric"))
        ax.margins(y=0.15)  # room for the value labels above the tallest bar
        # Below the axes: inside, the legend would cover the bars and their values.
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncols=2)
    return _save(fig, path)
