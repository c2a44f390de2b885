"""Export-side benchmarks: the int8 TFLite variant against float32, as the real
`python -m export` measured them (RUN_DIR/export/report.json), and Keras `predict`
against TFLite; plus a first profile of what bounds the int8 figures.
"""
import collections
import functools
import os

import tensorflow as tf
from ai_edge_litert import schema_py_generated as schema

from bench.registry import BENCHMARKS
from bench.timing import MIN_REPEATS, cycling, interleave, ratio
from export.tflite import _FLOAT_TYPES, _TENSOR_TYPES  # the flatbuffer's type names, as export reads them
from export.verify import LiteRTRunner
from mmkeras.layers.audio import LogMelSpectrogram


def variant_path(ctx, report, variant):
    return os.path.join(ctx.run_dir, "export", report["variants"][variant]["path"])


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
    """int8 ÷ float32 latency, size and accuracy from export's report.json; export wall time; profiles."""
    report, wall_s = ctx.exported()
    reference, quantized = report["variants"]["float32"], report["variants"]["int8"]
    values = {"int8_latency_ratio": ratio(quantized["latency_ms"], reference["latency_ms"]),
              "int8_size_ratio": ratio(quantized["size_bytes"], reference["size_bytes"]),
              "int8_accuracy_delta_pt": accuracy_delta_pt(reference, quantized),
              "export_wall_s": wall_s}
    raw = {"export_meta": report["meta"],
           "variants": {name: {"size_bytes": v["size_bytes"], "latency_ms": v["latency_ms"],
                               "max_abs_diff": v["max_abs_diff"], "scores": primary_scores(v),
                               "float_ops": v.get("float_ops")} for name, v in report["variants"].items()},
           "profile": {"latency": int8_latency_profile(ctx, report),
                       "size": {name: constant_bytes(variant_path(ctx, report, name)) for name in ("float32", "int8")}}}
    return values, raw


def frontend_model(layer, num_samples, input_name):
    """A float32 TFLite model of the audio front-end alone (a copy of the run's log-mel layer)."""
    frontend = LogMelSpectrogram.from_config(layer.get_config())
    fn = tf.function(lambda wave: {"logmel": frontend(wave)},
                     input_signature=[tf.TensorSpec([1, num_samples], tf.float32, name=input_name)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], frontend)
    return converter.convert()


def int8_latency_profile(ctx, report):
    """Per-stage timing: each audio front-end alone (float in every variant) against the whole models.

    `floor` is the int8 ÷ float32 ratio if everything but the front-ends took no time;
    `rest_ratio` the ratio of what remains once the front-ends' time is taken out.
    """
    export_ctx, inputs = ctx.export_context, latency_inputs(ctx)
    tasks = {v: cycling(LiteRTRunner(variant_path(ctx, report, v), num_threads=1), inputs) for v in ("float32", "int8")}
    for h in export_ctx.prep.handlers:
        if h.cfg.type == "audio":
            layer = export_ctx.inference_model.get_layer(f"{h.name}_logmel")
            runner = LiteRTRunner(frontend_model(layer, h.cfg.num_samples, h.name), num_threads=1)
            tasks[f"frontend_{h.name}"] = cycling(runner, [{h.name: x[h.name]} for x in inputs])
    ms, timings = latency_ms(tasks, ctx)
    frontend = sum(v for k, v in ms.items() if k.startswith("frontend_"))
    return {"latency_ms": ms, "floor": ratio(frontend, ms["float32"]),
            "rest_ratio": ratio(ms["int8"] - frontend, ms["float32"] - frontend), "timings": timings}


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


# === Keras predict against TFLite ===


@BENCHMARKS.register("predict")
def predict(ctx):
    """Batch-1 latency of Keras `predict` ÷ the float32 TFLite file, on the same test inputs."""
    report, _ = ctx.exported()
    model = ctx.export_context.inference_model
    lite = LiteRTRunner(variant_path(ctx, report, "float32"), num_threads=1)
    inputs = latency_inputs(ctx)
    ms, timings = latency_ms({"keras_predict": cycling(lambda x: model.predict(x, verbose=0), inputs),
                              "tflite_float32": cycling(lite, inputs)}, ctx)
    return {"keras_predict_vs_tflite": ratio(ms["keras_predict"], ms["tflite_float32"])}, \
        {"latency_ms": ms, "timings": timings}
