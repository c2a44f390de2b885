"""The figures the harness reports, their goals, and how they print (terminal table,
README Markdown, JSON document).

Example:
    values = {"pipeline_speedup": 2.4, ...}
    print(text_table(values))
    doc = document(values, raw, machine, settings, errors)
"""
import dataclasses
import operator
from typing import Optional

# Comparison name → function; a goal reads "value <op> threshold".
OPERATORS = {">=": operator.ge, "<=": operator.le}


@dataclasses.dataclass(frozen=True)
class Goal:
    op: str
    threshold: float

    def met(self, value):
        return None if value is None else OPERATORS[self.op](value, self.threshold)

    def __str__(self):
        return f"{'≥' if self.op == '>=' else '≤'} {self.threshold:g}"


@dataclasses.dataclass(frozen=True)
class Figure:
    """One reported number.

    Args:
        key: its key in the JSON document.
        compared: what was timed against what (shown in the table).
        goal: the target, or None for figures reported without one.
        fmt: format spec of the value.
    """

    key: str
    compared: str
    goal: Optional[Goal] = None
    fmt: str = ".2f"

    def format(self, value):
        return "—" if value is None else format(value, self.fmt)

    def verdict(self, value):
        """yes / no for a goal, "—" without one, "n/a" when the value is missing."""
        if self.goal is None:
            return "—"
        met = self.goal.met(value)
        return "n/a" if met is None else ("yes" if met else "no")


# Table order; the benchmark that produces each key is in bench/benchmarks.py.
FIGURES = [
    Figure("pipeline_speedup", "samples/s: mmkeras tf.data (cache none, decodes every epoch) ÷ per-sample "
           "Python loader (PIL, soundfile, Python WordPiece, np.stack), same records", Goal(">=", 5)),
    Figure("pipeline_disk_cache_speedup", "samples/s: mmkeras tf.data reading its disk cache (data.cache: disk, "
           "written in the warm-up epoch) ÷ the same Python loader"),
    Figure("pipeline_cached_speedup", "samples/s: mmkeras tf.data with its memory cache ÷ the same Python loader"),
    Figure("fit_vs_ceiling", "training samples/s: train.py's input path (demo config, cache auto) ÷ the same "
           "model fed pre-decoded in-memory tensors", Goal(">=", 0.9)),
    Figure("fit_streaming_vs_ceiling", "training samples/s: train.py's input path with cache none ÷ the same ceiling"),
    Figure("xla_fit_speedup", "training samples/s on in-memory tensors: jit_compile=true ÷ false"),
    Figure("int8_latency_ratio", "batch-1 median latency, LiteRT 1 thread: int8 ÷ float32 TFLite file "
           "(fed the audio front-end's log-mel)", Goal("<=", 0.4)),
    Figure("int8_end_to_end_latency_ratio", "the same, end to end: shared float32 audio front-end + int8 ÷ "
           "front-end + float32"),
    Figure("int8_size_ratio", "file size: int8 ÷ float32 TFLite", Goal("<=", 0.27), ".3f"),
    Figure("int8_graph_size_ratio", "the same without the metadata and its packed files (vocabulary, labels), "
           "which are the same bytes in both", fmt=".3f"),
    Figure("int8_accuracy_delta_pt", "test accuracy, int8 − float32 TFLite, in points", Goal(">=", -0.5), "+.2f"),
    Figure("int8_mixed_latency_ratio", "batch-1 median latency, LiteRT 1 thread: int8_mixed (int8 where it is "
           "faster op by op) ÷ float32 TFLite file", Goal("<=", 0.5)),
    Figure("int8_mixed_size_ratio", "file size: int8_mixed ÷ float32 TFLite", Goal("<=", 0.27), ".3f"),
    Figure("int8_mixed_accuracy_delta_pt", "test accuracy, int8_mixed − float32 TFLite, in points", Goal(">=", -0.5),
           "+.2f"),
    # `compression`: one export with --qat 2 --prune 0.5, its files timed interleaved (bench/export_bench.py).
    Figure("compression_int8_latency_ratio", "batch-1 median latency, LiteRT 1 thread: post-training int8 ÷ float32 "
           "file, timed with the QAT and pruned files below"),
    Figure("compression_int8_size_ratio", "file size: post-training int8 ÷ float32 (that export)", fmt=".3f"),
    Figure("compression_int8_accuracy_delta_pt", "test accuracy, post-training int8 − float32 (that export), in points",
           fmt="+.2f"),
    Figure("compression_int8_qat_latency_ratio", "the same: int8 after 2 epochs of quantisation-aware training ÷ "
           "float32", Goal("<=", 0.5)),
    Figure("compression_int8_qat_size_ratio", "file size: int8_qat ÷ float32", Goal("<=", 0.27), ".3f"),
    Figure("compression_int8_qat_accuracy_delta_pt", "test accuracy, int8_qat − float32 TFLite, in points",
           Goal(">=", -0.2), "+.2f"),
    Figure("compression_float32_pruned_latency_ratio", "batch-1 median latency: float32 pruned to 50% zeros ÷ float32"),
    Figure("compression_float32_pruned_size_ratio", "file size: float32_pruned (zeros stored sparse when smaller) "
           "÷ float32", fmt=".3f"),
    Figure("compression_float32_pruned_zipped_ratio", "zipped file size (deflate): float32_pruned ÷ float32", fmt=".3f"),
    Figure("compression_float32_pruned_accuracy_delta_pt", "test accuracy, float32_pruned − float32, in points",
           fmt="+.2f"),
    Figure("compression_int8_pruned_latency_ratio", "batch-1 median latency: int8 of the pruned model ÷ float32"),
    Figure("compression_int8_pruned_size_ratio", "file size: int8_pruned ÷ float32", fmt=".3f"),
    Figure("compression_int8_pruned_zipped_ratio", "zipped file size: int8_pruned ÷ float32", fmt=".3f"),
    Figure("compression_int8_pruned_accuracy_delta_pt", "test accuracy, int8_pruned − float32, in points",
           fmt="+.2f"),
    Figure("compression_export_wall_s", "seconds of that `python -m export --qat 2 --prune 0.5` (two fine-tunes, "
           "5 TFLite variants)", fmt=".0f"),
    Figure("keras_predict_vs_tflite", "batch-1 median latency: Keras model.predict (all cores) ÷ float32 TFLite "
           "(1 thread)", fmt=".1f"),
    Figure("export_wall_s", "seconds of one `python -m export RUN_DIR` (SavedModel + audio front-end + "
           "5 TFLite variants, verified)", fmt=".0f"),
    Figure("rss_growth_10x", "peak RSS of train.py, one epoch, cache none: 10× manifest ÷ 1×", Goal("<=", 1.2)),
    Figure("rss_growth_10x_cached", "peak RSS of train.py, one epoch, cache auto: 10× manifest ÷ 1×"),
    Figure("predict_keras_vs_keras", "records/s: `mmkeras.predict` with model.keras (read, validate, decode, "
           "predict, rows) ÷ the same model's `predict` on the records decoded in memory (in-process ceiling)"),
    Figure("predict_saved_model_vs_keras", "records/s: the same path with the TF Serving SavedModel "
           "(raw-input signature) ÷ that ceiling"),
    Figure("predict_tflite_float32_vs_keras", "records/s: the same path with the float32 TFLite variant "
           "(batch 1, LiteRT) ÷ that ceiling"),
    Figure("predict_tflite_int8_vs_keras", "records/s: the same path with the int8 TFLite variant ÷ that ceiling"),
    Figure("predict_rss_growth_20x", "peak RSS of `python -m mmkeras.predict` (keras): 20× manifest ÷ 1× "
           "(held-out records repeated, unlabelled)", Goal("<=", 1.2)),
]
FIGURE_KEYS = [f.key for f in FIGURES]


def rows(values):
    """(key, value, goal, met, compared) strings per figure, in table order."""
    return [(f.key, f.format(values.get(f.key)), str(f.goal) if f.goal else "—", f.verdict(values.get(f.key)),
             f.compared) for f in FIGURES]


HEADER = ("key", "value", "goal", "met?", "what was compared")


def text_table(values):
    """Aligned plain-text table for the terminal (the last column is left ragged)."""
    table = [HEADER, *rows(values)]
    widths = [max(len(r[i]) for r in table) for i in range(len(HEADER) - 1)]
    return "\n".join("  ".join([*(cell.ljust(w) for cell, w in zip(r, widths)), r[-1]]).rstrip() for r in table)


def markdown_table(values):
    def line(cells):
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(HEADER), line(["---"] * len(HEADER)), *(line(r) for r in rows(values))])


def machine_line(machine):
    """One Markdown line naming the machine a table came from."""
    load = machine.get("load_average_1m", {})
    return (f"{machine['cpu_model']}, {machine['cores']} cores, {machine['ram_gb']:.0f} GB RAM, "
            f"TensorFlow {machine['tensorflow']}, Python {machine['python']}, {machine['date']}; "
            f"1-minute load average {load.get('start', 0):.1f} at start, {load.get('end', 0):.1f} at end")


def markdown_section(values, machine, settings):
    """The README's "Latest results" section: machine, mode, table."""
    mode = "`--quick`" if settings.get("quick") else "full"
    return "\n".join([
        "### Latest results", "",
        f"Machine: {machine_line(machine)}. Mode: {mode}, {settings['repeats']} timed repeats per "
        f"measurement (median), warm-up excluded.", "",
        markdown_table(values), ""])


def document(values, raw, machine, settings, errors):
    """The JSON document: every figure key at the top level (None when not measured), then context."""
    return {**{key: values.get(key) for key in FIGURE_KEYS},
            "goals": {f.key: str(f.goal) for f in FIGURES if f.goal},
            "met": {f.key: f.verdict(values.get(f.key)) for f in FIGURES if f.goal},
            "compared": {f.key: f.compared for f in FIGURES},
            "machine": machine, "settings": settings, "raw": raw, "errors": errors}
