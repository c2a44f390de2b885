"""The export report: report.json (every number), report.md (one table), report.png (trade-offs).

`results` maps each TFLite variant to `verify.verify_variant(...)` merged with
`tflite.inspect_tflite(...)` ({"ops", "float_ops", "gpu"}); `frontends` maps each
input with a float front-end to `verify.verify_frontend(...)` merged likewise.

Example:
    write_report("runs/demo/export", {"float32": {...}, "int8": {...}},
                 {"model": "demo", "split": "test", "samples": 190}, {"speech": {...}})
"""

from mmkeras.evaluation.plots import new_figure
from mmkeras.io import atomic_path, atomic_write_json, atomic_write_text
from mmkeras.run_dir import ExportDir

REFERENCE = "float32"  # ratios are relative to the unquantised model


def write_report(export_dir, results, meta, frontends=None):
    """Write report.json, report.md and report.png into `export_dir`; returns their paths.

    Args:
        export_dir: folder to write into.
        results: variant name → verification result (see the module docstring).
        meta: facts about the run shown above the table (model, split, samples, ...).
        frontends: input name → its float front-end's verification result (none without audio).
    """
    frontends = frontends or {}
    paths = [ExportDir(export_dir).report(ext) for ext in ("json", "md", "png")]
    atomic_write_json(paths[0], {"meta": meta, "frontends": frontends, "variants": results})
    atomic_write_text(paths[1], markdown(results, meta, frontends))
    plot(results, paths[2])
    return paths


# === Markdown ===


def _ratio(value, reference):
    return f"{value / reference:.2f}" if reference else "—"


def _scores(result):
    return "<br>".join(f"{name} {o['metric']} {o['value']:.3f}" for name, o in result["outputs"].items())


def _agreement(result):
    values = [f"{o['agreement']:.3f}" for o in result["outputs"].values() if "agreement" in o]
    return " / ".join(values) or "—"


def _gpu(result):
    gpu = result.get("gpu")
    if gpu is None:
        return "—"
    return "yes" if gpu["compatible"] else f"no ({len(gpu['warnings'])} issues)"


def _edgetpu(result):
    edgetpu = result.get("edgetpu")
    if edgetpu is None:
        return "—"
    return "yes" if edgetpu["compatible"] else f"no ({len(edgetpu['issues'])} issues)"


def _float_ops(result):
    ops = result.get("float_ops")
    if ops is None:
        return "—"
    return ", ".join(f"{op}×{n}" if n > 1 else op for op, n in ops.items()) or "none"


def _model_latency(result):
    """Latency of the variant's own file (without front-ends); None for the SavedModel, which
    is timed end to end from raw inputs only."""
    return result.get("model_latency_ms")


def _model_ms(result):
    return f"{result['model_latency_ms']:.3f}" if "model_latency_ms" in result else "—"


def _model_ratio(result, ref):
    value, reference = _model_latency(result), ref and _model_latency(ref)
    return _ratio(value, reference) if value is not None else "—"


# (header, cell(result, float32 result)) per column of report.md.
COLUMNS = [
    ("variant", lambda r, ref: r["variant"]),
    ("size KB", lambda r, ref: f"{r['size_bytes'] / 1024:.1f}"),
    ("size vs float32", lambda r, ref: _ratio(r["size_bytes"], ref and ref["size_bytes"])),
    ("graph KB", lambda r, ref: f"{r['graph_size_bytes'] / 1024:.1f}" if "graph_size_bytes" in r else "—"),
    ("graph vs float32", lambda r, ref: _ratio(r["graph_size_bytes"], ref and ref.get("graph_size_bytes"))
                                        if "graph_size_bytes" in r else "—"),
    ("zipped KB", lambda r, ref: f"{r['zipped_size_bytes'] / 1024:.1f}" if "zipped_size_bytes" in r else "—"),
    ("accuracy", lambda r, ref: _scores(r)),
    ("agreement", lambda r, ref: _agreement(r)),
    ("max diff", lambda r, ref: f"{r['max_abs_diff']:.1e}"),
    ("latency ms", lambda r, ref: f"{r['latency_ms']:.3f}"),
    ("model ms", lambda r, ref: _model_ms(r)),
    ("model latency vs float32", _model_ratio),
    ("GPU delegate", lambda r, ref: _gpu(r)),
    ("float ops in int8", lambda r, ref: _float_ops(r)),
    ("Edge TPU check", lambda r, ref: _edgetpu(r)),
]


def markdown(results, meta, frontends=None):
    """report.md: run facts, the Keras reference, the front-ends, one table row per variant, GPU warnings."""
    title = meta.get("model", "model")
    lines = [f"# TFLite export report: {title}", ""]
    lines += [f"- {key}: {value}" for key, value in meta.items()]
    trained = next((r for r in results.values() if "fine_tune" not in r), None)
    if trained:
        lines.append(f"- Keras model: {_keras_scores(trained)}")
    lines += _fine_tunes(results)
    for name, f in (frontends or {}).items():
        lines.append(f"- {name} front-end (float32, shared by every TFLite variant): {f['path']}, "
                     f"{f['size_bytes'] / 1024:.1f} KB, {f['latency_ms']:.3f} ms, max diff {f['max_abs_diff']:.1e}")
    lines += ["", "| " + " | ".join(h for h, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    ref = results.get(REFERENCE)
    lines += ["| " + " | ".join(cell(r, ref) for _, cell in COLUMNS) + " |" for r in results.values()]
    lines += _notes({**results, **{f"{name} front-end": f for name, f in (frontends or {}).items()}})
    lines += _op_times(results)
    return "\n".join(lines) + "\n"


OP_TYPES_SHOWN = 12


def _keras_scores(result):
    return "; ".join(f"{n} {o['metric']} {o['keras_value']:.3f}" for n, o in result["outputs"].items())


def _fine_tunes(results):
    """One line per fine-tuned copy: how it was tuned, what its Keras model scores, its sparsity."""
    lines, by_method = [], {}
    for name, r in results.items():
        if "fine_tune" in r:
            by_method.setdefault(r["fine_tune"]["method"], []).append(name)
    for method, names in by_method.items():
        first = results[names[0]]
        f = first["fine_tune"]
        line = (f"- {', '.join(names)}: converted from a copy fine-tuned by {method} for {f['epochs']} epoch(s) "
                f"at learning rate {f['learning_rate']:g}, epoch {f['kept_epoch']} kept"
                f"{' (the calibrated copy before any step)' if f['kept_epoch'] == 0 else ''}; its Keras model: "
                f"{_keras_scores(first)} (agreement and max diff are against it)")
        if "sparsity" in f:
            line += (f"; {100 * f['sparsity']:.1f}% of the pruned weights are zero ({100 * f['model_sparsity']:.1f}% "
                     f"of all weights; target {100 * f['target_sparsity']:.0f}%)")
        lines.append(line)
    for name, r in results.items():
        if "sparse_encoding" in r:
            lines.append(f"- {name}: zeros stored {'sparse' if r['sparse_encoding'] else 'dense'} "
                         f"({r['sparse_size_bytes'] / 1024:.1f} KB sparse, {r['dense_size_bytes'] / 1024:.1f} KB dense; "
                         "the smaller is kept)")
    return lines


# A variant scoring this many points under the Keras model on a higher-is-better metric gets a note.
POINTS_LOST_NOTE = 0.5
# An integer variant slower than this share of float32's model latency gets a note saying which op
# types cost it (the compression issue's aim: int8 at most half float32's time).
INT8_LATENCY_NOTE = 0.5
SLOWER_OP_TYPES_NAMED = 3


def why_int8_is_slow(result, reference):
    """One note when an integer variant's file is not ≤ INT8_LATENCY_NOTE× float32's latency: its
    ratio and the op types that take longer than in float32 (each op timed alone), the costliest
    first; None otherwise. Integer variants are those with a float-op check (`float_ops`)."""
    value, base = _model_latency(result), reference and _model_latency(reference)
    if result.get("float_ops") is None or not value or not base or value <= INT8_LATENCY_NOTE * base:
        return None
    mine, theirs = result.get("op_profile"), reference.get("op_profile")
    note = (f"- {result['variant']}: the file's latency is {value / base:.2f}× float32's "
            f"(the aim for an integer variant: ≤ {INT8_LATENCY_NOTE}×)")
    if not mine or not theirs:
        return note
    float_ms = {row["op"]: row["ms"] for row in theirs["by_op"]}
    slower = sorted(((row["ms"] - float_ms.get(row["op"], 0.0), row) for row in mine["by_op"]
                     if row["ms"] > float_ms.get(row["op"], 0.0)), key=lambda d: -d[0])
    if not slower:
        return note + "; no op type is slower than in float32 (the float islands' conversions or the whole graph's cost)"
    named = ", ".join(f"{row['op']} {row['ms']:.3f} against {float_ms.get(row['op'], 0.0):.3f} ms "
                      f"({row['count']} op{'s' if row['count'] > 1 else ''})" for _, row in slower[:SLOWER_OP_TYPES_NAMED])
    return note + f"; slower than in float32, each op timed alone: {named}"


# An integer variant larger than this share of float32's file gets a note saying which of its bytes
# did not shrink (the compression issue's aim: int8 at most 0.27× float32's size).
INT8_SIZE_NOTE = 0.27


def why_int8_is_large(result, reference):
    """One note when an integer variant's file is over INT8_SIZE_NOTE× float32's: its ratio, its
    weights against float32's, and the bytes 8 bits do not shrink (`tflite.size_breakdown`, and the
    metadata every variant carries alike), the largest first; None otherwise."""
    if result.get("float_ops") is None or not reference:
        return None
    if result["size_bytes"] <= INT8_SIZE_NOTE * reference["size_bytes"]:
        return None
    note = (f"- {result['variant']}: the file is {result['size_bytes'] / reference['size_bytes']:.2f}× float32's "
            f"(the aim for an integer variant: ≤ {INT8_SIZE_NOTE}×)")
    mine, theirs = result.get("size_breakdown"), reference.get("size_breakdown")
    if not mine or not theirs:
        return note
    # `size_breakdown` covers the converted graph; the file adds the metadata.
    kept = {part: size for part, size in mine.items() if part != "weights"}
    kept["metadata (descriptions, vocabulary, labels: the same in every variant)"] = (
        result["size_bytes"] - result["graph_size_bytes"])
    named = ", ".join(f"{part} {size / 1024:.1f} KB" for part, size in sorted(kept.items(), key=lambda p: -p[1]))
    return (note + f"; its weights are {_ratio(mine['weights'], theirs['weights'])}× float32's "
            f"({mine['weights'] / 1024:.1f} against {theirs['weights'] / 1024:.1f} KB); what 8 bits do not "
            f"shrink: {named}")


def describe_kept(kept):
    """One op a selective variant left float, and why (an entry of its `kept_float`)."""
    if "layer" in kept:
        why = f"its layer {kept['layer']} needs more than 8 bits of its input"
    else:
        why = f"{kept['float32_ms']:.3f} ms in float32 against {kept['int8_ms']:.3f} ms in int8"
    tensor = kept["tensor"].split(";")[0]  # the converter joins the names of fused ops with ";"
    return f"{kept['op']} {tensor} kept float32 ({why})"


def _op_times(results):
    """Per-op-type time of each variant (`mmkeras.export.profile`), the types that cost most first."""
    profiles = {name: r["op_profile"] for name, r in results.items() if r.get("op_profile")}
    if not profiles:
        return []
    cost = {}
    for profile in profiles.values():
        for row in profile["by_op"]:
            cost[row["op"]] = max(cost.get(row["op"], 0.0), row["ms"])
    shown = sorted(cost, key=lambda op: -cost[op])[:OP_TYPES_SHOWN]
    lines = ["", "## Time per op type", "",
             "Each op timed alone (a one-op model cut from the file, LiteRT, one thread, minus the per-invoke "
             "overhead): ms (number of ops). The sum of the ops is not the model's latency (XNNPACK fuses "
             "neighbours and the whole graph shares caches); it shows where each variant spends its time.", "",
             "| op | " + " | ".join(profiles) + " |", "|" + "---|" * (len(profiles) + 1)]
    for op in shown:
        cells = []
        for profile in profiles.values():
            row = next((r for r in profile["by_op"] if r["op"] == op), None)
            cells.append(f"{row['ms']:.3f} ({row['count']})" if row else "—")
        lines.append(f"| {op} | " + " | ".join(cells) + " |")
    lines.append("| **sum of ops** | " + " | ".join(f"{p['total_ms']:.3f}" for p in profiles.values()) + " |")
    for name, result in results.items():
        for kept in result.get("kept_float") or []:
            lines.append(f"- {name}: {describe_kept(kept)}")
    return lines


def _notes(results):
    """Explanations of the columns, then each variant's (and front-end's) GPU warnings."""
    notes = ["", "Agreement: share of samples whose top-1 class matches the Keras model's. "
             "Max diff: largest |TFLite − Keras| output value. Latency: median batch-1 run, one thread, "
             "end to end (front-ends included); model ms: the variant's file alone, fed the front-ends' features."]
    reference = results.get(REFERENCE)
    notes += [note for r in results.values()
              for note in (why_int8_is_slow(r, reference), why_int8_is_large(r, reference)) if note]
    for name, result in results.items():
        for output, o in result.get("outputs", {}).items():
            points = 100 * (o["keras_value"] - o["value"])
            if o.get("higher_is_better") and points > POINTS_LOST_NOTE:
                notes.append(f"- {name}: {output} {o['metric']} {o['value']:.3f}, {points:.1f} points under the "
                             f"Keras model's {o['keras_value']:.3f}")
        if result.get("xnnpack") is False:
            notes.append(f"- {name}: LiteRT's XNNPACK delegate refused this model; its latency is the built-in "
                         "kernels' (a device runs it the same way unless its delegate takes it)")
        for warning in (result.get("gpu") or {}).get("warnings", []):
            notes.append(f"- {name} GPU: {warning}")
        for issue in (result.get("edgetpu") or {}).get("issues", []):
            notes.append(f"- {name} Edge TPU: {issue}")
    return notes


# === Plot ===


def plot(results, path):
    """Primary metric vs size (marker area ∝ latency) and vs latency, one row of panels per output."""
    outputs = list(next(iter(results.values()))["outputs"])
    fig = new_figure(10, 3.6 * len(outputs))
    axes = fig.subplots(len(outputs), 2, squeeze=False)
    slowest = max(r["latency_ms"] for r in results.values())
    areas = {name: 40 + 400 * r["latency_ms"] / slowest for name, r in results.items()}
    for (by_size, by_latency), output in zip(axes, outputs):
        _scatter(by_size, results, output, lambda r: r["size_bytes"] / 1024, areas)
        by_size.set_xlabel("size (KB); marker area ∝ latency")
        _scatter(by_latency, results, output, lambda r: r["latency_ms"])
        by_latency.set_xlabel("median batch-1 latency (ms)")
    fig.suptitle("TFLite variants: score vs size and latency")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def _scatter(ax, results, output, x_of, areas=None):
    """One labelled point per variant at (x_of(result), score), and the Keras score as a dashed line."""
    for i, (name, result) in enumerate(results.items()):
        x, y = x_of(result), result["outputs"][output]["value"]
        ax.scatter(x, y, s=areas[name] if areas else 60, alpha=0.7)
        # Alternate above/below so variants with similar numbers keep readable labels.
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(6, 8 if i % 2 else -14))
    reference = next(iter(results.values()))["outputs"][output]
    ax.axhline(reference["keras_value"], linestyle="--", color="grey", label="Keras")
    ax.set_ylabel(f"{output} {reference['metric']}")
    ax.margins(x=0.2, y=0.2)  # room for the labels and the largest markers
    ax.legend(loc="best")
