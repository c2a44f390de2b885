"""Export-side benchmarks: the int8 TFLite variant against float32, on the files the real
`python -m export` wrote (sizes and accuracy from RUN_DIR/export/report.json, latency
re-timed here, interleaved), and Keras `predict` against TFLite; plus profiles of
what bounds the int8 figures.

Every TFLite variant takes the audio front-end's log-mel features; the front-end is one
float32 file shared by all variants (mmkeras/export/tflite.py says why). The int8 latency goal
compares the variant files; the end-to-end ratio (front-end included) is reported too.
"""
import collections
import functools
import os
import shutil
import tempfile

import tf_keras as keras

from ai_edge_litert import schema_py_generated as schema

from bench.registry import BENCHMARKS
from bench.report import FIGURE_KEYS
from bench.timing import MIN_REPEATS, cycling, interleave, ratio
from mmkeras.export.tflite import _FLOAT_TYPES, _TENSOR_TYPES  # the flatbuffer's type names, as export reads them
from mmkeras.names import features_key
from mmkeras.export.saved_model import save_tensor_model
from mmkeras.export.tflite import convert, quantization_config, representative_dataset
from mmkeras.run_dir import RunDir
from mmkeras.runtime import LiteRTRunner, TFLitePipeline


def variant_path(run_dir, report, variant):
    """A variant's file: report.json gives it relative to the export folder."""
    return os.path.join(RunDir(run_dir).export, report["variants"][variant]["path"])


def frontend_runners(run_dir, report):
    """Input name → its exported float front-end, in LiteRT on one thread (none without audio)."""
    return {name: LiteRTRunner(os.path.join(RunDir(run_dir).export, f["path"]), num_threads=1)
            for name, f in report.get("frontends", {}).items()}


def variant_pipeline(run_dir, report, variant, frontends):
    """A variant's file behind its front-ends, in LiteRT on one thread, as an app runs it."""
    return TFLitePipeline(LiteRTRunner(variant_path(run_dir, report, variant), num_threads=1), frontends)


def file_task(pipeline, inputs):
    """A latency task timing the variant's file alone, on inputs prepared beforehand
    (`TFLitePipeline.file_feed`: quantising in numpy is not the file's time)."""
    return cycling(pipeline.model.invoke, [pipeline.file_feed(x) for x in inputs])


@functools.cache
def latency_inputs(ctx):
    """Batch-1 model inputs of the held-out split export verified on (its first N records)."""
    export_ctx = ctx.export_context
    split = "test" if export_ctx.cfg.data.test else "validation"
    return [x for x, _ in export_ctx.samples(split, ctx.settings.latency_samples)]


def latency_ms(tasks, ctx):
    """Median ms per task; latencies are timed one input per repeat, round robin over the inputs."""
    timings = interleave(tasks, max(ctx.settings.latency_samples, MIN_REPEATS))
    return {name: 1000 * t.median for name, t in timings.items()}, {n: t.to_json() for n, t in timings.items()}


# === int8 figures ===


def primary_scores(result):
    return {name: {"metric": o["metric"], "value": o["value"]} for name, o in result["outputs"].items()}


def accuracy_delta_pt(reference, quantized):
    """int8 − float32 accuracy in points, on the first output scored by accuracy (None if none is)."""
    for name, out in reference["outputs"].items():
        if out["metric"] == "accuracy":
            return 100 * (quantized["outputs"][name]["value"] - out["value"])
    return None


@BENCHMARKS.register("int8")
def int8(ctx):
    """int8 ÷ float32 latency (re-timed), size and accuracy (report.json); export wall time; profiles."""
    report, wall_s = ctx.exported()
    reference, quantized = report["variants"]["float32"], report["variants"]["int8"]
    latency = int8_latency(ctx, report)
    ms = latency["latency_ms"]
    values = {"int8_latency_ratio": ratio(ms["int8"], ms["float32"]),
              "int8_end_to_end_latency_ratio": ratio(ms["int8_end_to_end"], ms["float32_end_to_end"]),
              "int8_size_ratio": ratio(quantized["size_bytes"], reference["size_bytes"]),
              "int8_graph_size_ratio": ratio(quantized["graph_size_bytes"], reference["graph_size_bytes"]),
              "int8_accuracy_delta_pt": accuracy_delta_pt(reference, quantized),
              "export_wall_s": wall_s}
    if "int8_mixed" in ms:  # the CPU variant: int8 only where it is faster (README "Export")
        mixed = report["variants"]["int8_mixed"]
        values.update({"int8_mixed_latency_ratio": ratio(ms["int8_mixed"], ms["float32"]),
                       "int8_mixed_size_ratio": ratio(mixed["size_bytes"], reference["size_bytes"]),
                       "int8_mixed_accuracy_delta_pt": accuracy_delta_pt(reference, mixed)})
    raw = {"export_meta": report["meta"], "frontends": report.get("frontends", {}),
           "variants": {name: {"size_bytes": v["size_bytes"], "latency_ms": v["latency_ms"],
                               "model_latency_ms": v.get("model_latency_ms"),
                               "max_abs_diff": v["max_abs_diff"], "scores": primary_scores(v),
                               "float_ops": v.get("float_ops")} for name, v in report["variants"].items()},
           "latency": latency,
           "profile": {"latency_by_branch": int8_branch_profile(ctx),
                       "size": {name: constant_bytes(variant_path(ctx.run_dir, report, name))
                                for name in ("float32", "int8")}}}
    return values, raw


def int8_latency(ctx, report):
    """Median batch-1 ms, interleaved: each variant file on front-end features, each front-end on its
    raw input, and each variant end to end (front-ends + file), as an app runs them."""
    inputs = latency_inputs(ctx)
    frontends = frontend_runners(ctx.run_dir, report)
    tasks = {}
    for variant in ("float32", "int8", "int8_mixed"):
        if variant not in report["variants"]:  # int8_mixed: exports before 2026-12-06 lack it
            continue
        pipeline = variant_pipeline(ctx.run_dir, report, variant, frontends)
        tasks[variant] = file_task(pipeline, inputs)
        tasks[f"{variant}_end_to_end"] = cycling(pipeline, inputs)
    for name, runner in frontends.items():
        tasks[f"frontend_{name}"] = cycling(runner, [{name: x[name]} for x in inputs])
    ms, timings = latency_ms(tasks, ctx)
    return {"latency_ms": ms, "timings": timings}


def branch_models(export_ctx):
    """Input name → Keras model of that input's branch alone: its TFLite input → its encoder's embedding."""
    model = export_ctx.inference_model
    embeddings = model.get_layer("fusion").inbound_nodes[0].call_args[0]  # in handler order
    branches = {}
    for h, embedding in zip(export_ctx.prep.handlers, embeddings):
        if h.name in export_ctx.frontend_layers:
            source = {features_key(h.name): export_ctx.frontend_layers[h.name].output}
        else:
            source = {h.name: model.input[h.name]}
        branches[h.name] = keras.Model(source, {"embedding": embedding}, name=f"{h.name}_branch")
    return branches


def int8_branch_profile(ctx, calibration_samples=100):
    """Per-branch timing: each encoder converted alone to float32, dynamic-range and int8, timed interleaved.

    Shows where the variant's time goes and how much int8 speeds up each kind of layer
    (the fusion head and output layers are what remains of the whole model); dynamic-range
    (int8 weights, activations quantised on the fly by XNNPACK) is the reference it is up against.
    """
    export_ctx, inputs = ctx.export_context, latency_inputs(ctx)
    features = [export_ctx.tflite_inputs(x) for x in inputs]
    train = [export_ctx.tflite_inputs(x) for x, _ in export_ctx.samples("train", calibration_samples)]
    tasks = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, branch in branch_models(export_ctx).items():
            path = save_tensor_model(branch, os.path.join(tmp, name))
            keys = list(branch.input)
            calibration = representative_dataset([({k: x[k] for k in keys}, None) for x in train], keys)
            feed = [{k: x[k] for k in keys} for x in features]
            for variant in BRANCH_VARIANTS:
                config = quantization_config(variant, calibration)
                tasks[f"{name}_{variant}"] = cycling(LiteRTRunner(convert(path, config), num_threads=1), feed)
    ms, _ = latency_ms(tasks, ctx)
    profile = {}
    for name in branch_models(export_ctx):
        profile[name] = {f"{v}_ms": ms[f"{name}_{v}"] for v in BRANCH_VARIANTS}
        profile[name].update({f"{v}_ratio": ratio(ms[f"{name}_{v}"], ms[f"{name}_float32"]) for v in BRANCH_VARIANTS[1:]})
    return profile


BRANCH_VARIANTS = ("float32", "dynamic", "int8")


def constant_bytes(path):
    """Size profile of a .tflite file: constant bytes by tensor type, quantisation parameters
    (per-channel scales and zero points live in the graph, not in buffers), tensor names, the
    largest float constants, and the rest (graph structure)."""
    with open(path, "rb") as f:
        content = f.read()
    model = schema.Model.GetRootAsModel(content, 0)
    by_type, floats, seen, quant_params, names = collections.Counter(), [], set(), 0, 0
    for g in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(g)
        for t in range(subgraph.TensorsLength()):
            tensor = subgraph.Tensors(t)
            names += len(tensor.Name() or b"")
            quant = tensor.Quantization()
            if quant:  # float32 scales, int64 zero points
                quant_params += 4 * quant.ScaleLength() + 8 * quant.ZeroPointLength()
            index = tensor.Buffer()
            size = model.Buffers(index).DataLength() if index else 0  # buffer 0 is the empty sentinel
            if not size or index in seen:
                continue
            seen.add(index)
            kind = _TENSOR_TYPES[tensor.Type()]
            by_type[kind] += size
            if kind in _FLOAT_TYPES:
                shape = tensor.ShapeAsNumpy().tolist() if tensor.ShapeLength() else []
                floats.append({"name": tensor.Name().decode(), "shape": shape, "bytes": size})
    return {"file_bytes": len(content), "constants_by_type": dict(by_type.most_common()),
            "quantization_param_bytes": quant_params, "tensor_name_bytes": names,
            "other_bytes": len(content) - sum(by_type.values()) - quant_params - names,
            "largest_float_constants": sorted(floats, key=lambda c: -c["bytes"])[:5]}


# === Compression: QAT and pruning against post-training int8 ===

# What the benchmark asks the export for: the defaults of `export.qat_epochs` and
# `export.prune_sparsity` (mmkeras/config), written out so the figures say what they measured.
QAT_EPOCHS, PRUNE_SPARSITY = 2, 0.5
COMPRESSED = ("int8", "int8_qat", "float32_pruned", "int8_pruned")


@BENCHMARKS.register("compression")
def compression(ctx):
    """int8 after quantisation-aware training and the pruned variants, side by side with post-training
    int8 and float32: one `python -m export --qat --prune` of a copy of the trained run (the harness's
    own export stays as it was), every variant file re-timed interleaved; sizes and accuracy from its
    report.json."""
    from mmkeras.io import read_json
    from mmkeras.run_dir import ExportDir

    from bench.context import run_python

    run_dir = os.path.join(ctx.work_dir, "compressed")
    shutil.rmtree(run_dir, ignore_errors=True)
    shutil.copytree(ctx.trained_run(), run_dir, ignore=shutil.ignore_patterns("export"))
    print(f"  exporting {run_dir} with --qat {QAT_EPOCHS} --prune {PRUNE_SPARSITY} "
          f"(log: {ctx.logs}/export-compressed.log)", flush=True)
    child = run_python(["-m", "export", run_dir, "--formats", "tflite", "--quantize", "float32,int8",
                        "--qat", str(QAT_EPOCHS), "--prune", str(PRUNE_SPARSITY)],
                       os.path.join(ctx.logs, "export-compressed.log"))
    report = read_json(ExportDir(RunDir(run_dir).export).report("json"))
    inputs = latency_inputs(ctx)
    frontends = frontend_runners(run_dir, report)
    tasks = {variant: file_task(variant_pipeline(run_dir, report, variant, frontends), inputs)
             for variant in ("float32", *COMPRESSED)}
    ms, timings = latency_ms(tasks, ctx)
    variants = report["variants"]
    reference = variants["float32"]
    values = {"compression_export_wall_s": child.wall_s}
    for variant in COMPRESSED:
        key = f"compression_{variant}"
        values.update({f"{key}_latency_ratio": ratio(ms[variant], ms["float32"]),
                       f"{key}_size_ratio": ratio(variants[variant]["size_bytes"], reference["size_bytes"]),
                       f"{key}_zipped_ratio": ratio(variants[variant]["zipped_size_bytes"],
                                                    reference["zipped_size_bytes"]),
                       f"{key}_accuracy_delta_pt": accuracy_delta_pt(reference, variants[variant])})
    # The figures bench/report.py declares; the other ratios stay in the raw data.
    raw = {"all_ratios": values, "latency_ms": ms, "timings": timings,
           "variants": {name: {"size_bytes": v["size_bytes"], "zipped_size_bytes": v["zipped_size_bytes"],
                               "scores": primary_scores(v), "fine_tune": v.get("fine_tune"),
                               "sparse_encoding": v.get("sparse_encoding")} for name, v in variants.items()}}
    return {k: v for k, v in values.items() if k in FIGURE_KEYS}, raw


# === Keras predict against TFLite ===


@BENCHMARKS.register("predict")
def predict(ctx):
    """Batch-1 latency of Keras `predict` ÷ the float32 TFLite file, on the same test inputs."""
    report, _ = ctx.exported()
    model = ctx.export_context.inference_model
    frontends = frontend_runners(ctx.run_dir, report)
    # End to end on both sides: Keras computes the log-mel inside the model.
    lite = variant_pipeline(ctx.run_dir, report, "float32", frontends)
    inputs = latency_inputs(ctx)
    ms, timings = latency_ms({"keras_predict": cycling(lambda x: model.predict(x, verbose=0), inputs),
                              "tflite_float32": cycling(lite, inputs)}, ctx)
    return {"keras_predict_vs_tflite": ratio(ms["keras_predict"], ms["tflite_float32"])}, \
        {"latency_ms": ms, "timings": timings}
