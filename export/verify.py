"""Check every exported variant against the trained Keras model: parity, accuracy, size, latency.

A variant is anything callable as `runner(inputs) -> {output: float array}` with a
`size_bytes`: a TFLite model with its float front-ends (TFLitePipeline), or the TF
Serving SavedModel through its raw-input signature.

Example:
    keras_outputs = [ctx.keras_predict(x) for x, _ in samples]   # once, shared by all variants
    frontends = {"speech": LiteRTRunner(frontend_bytes)}
    result = verify_variant(TFLitePipeline(LiteRTRunner(tflite_bytes), frontends), samples, keras_outputs,
                            ctx, "float32")
"""
import os
import statistics
import time

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer ops the serving graph uses)
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from export.context import apply_frontends
from export.saved_model import keras_output

from mmkeras.errors import UserError
from mmkeras.evaluation.metrics import METRICS, PRIMARY_METRIC
from mmkeras.names import features_key

# Largest |variant - Keras| output difference allowed. Only the float variants are gated:
# quantised ones trade exactness for size, so their differences are reported instead.
PARITY_LIMITS = {"float32": 1e-4, "saved_model": 1e-4}
# A front-end's log-mel features: float32 FFTs differ in rounding, amplified near log's floor.
FRONTEND_PARITY_LIMIT = 1e-3


class ParityError(UserError):
    """An exported variant's outputs differ from the Keras model's beyond its limit."""


class LiteRTRunner:
    """A TFLite model's `serving_default` signature, called with float inputs → float outputs.

    int8 input tensors are quantised and int8 outputs dequantised with the tensors'
    own scale and zero point, so callers compare every variant on the same scale.

    Args:
        model: path to a .tflite file, or its bytes.
        num_threads: interpreter threads (1 = what a phone's background thread gets).

    Example:
        runner = LiteRTRunner("runs/demo/export/tflite/demo_int8.tflite")
        runner(inputs)  # {"label": float32 probabilities [1, K]}
    """

    def __init__(self, model, num_threads=1):
        if isinstance(model, (bytes, bytearray)):
            content = bytes(model)
        else:
            with open(model, "rb") as f:
                content = f.read()
        self.size_bytes = len(content)
        self.interpreter = Interpreter(model_content=content, num_threads=num_threads)
        # LiteRT applies its default XNNPACK delegate when tensors are allocated. XNNPACK refuses
        # some valid int8 nodes (measured: a relation fusion's broadcast ADD whose input scales
        # it does not take), failing the whole model; the built-in kernels still run it, as on
        # a device without XNNPACK. The refusal is kept for the report.
        self.xnnpack_refused = None
        try:
            self.interpreter.allocate_tensors()
        except RuntimeError as e:
            if "XNNPACK" not in str(e):
                raise
            self.xnnpack_refused = str(e).strip().splitlines()[0]
            self.interpreter = Interpreter(model_content=content, num_threads=num_threads,
                                           experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        self._signature = self.interpreter.get_signature_runner()
        self.input_details = self._signature.get_input_details()
        self.output_details = self._signature.get_output_details()

    def __call__(self, inputs):
        feed = {name: quantize(inputs[name], detail) for name, detail in self.input_details.items()}
        raw = self._signature(**feed)
        return {name: dequantize(value, self.output_details[name]) for name, value in raw.items()}

    def describe(self):
        """{"inputs": {name: tensor_info}, "outputs": {...}} for metadata and tests."""
        return {"inputs": {n: tensor_info(d) for n, d in self.input_details.items()},
                "outputs": {n: tensor_info(d) for n, d in self.output_details.items()}}


class TFLitePipeline:
    """A TFLite variant as an app runs it: each input's float front-end model, then the variant.

    Called with the Keras model's inputs (waveforms, pixels, ...) → {output: float array}.

    Args:
        model: the variant's LiteRTRunner (inputs `<name>_features` for front-end inputs).
        frontends: input name → LiteRTRunner of its front-end model (output `<name>_features`).

    Attributes:
        size_bytes: the variant's file alone; the front-ends are shared by every variant and reported once.
    """

    def __init__(self, model, frontends):
        self.model, self.frontends = model, frontends
        self.size_bytes = model.size_bytes

    def features(self, inputs):
        """Model inputs → the variant's inputs (front-end outputs in place of their raw inputs)."""
        return apply_frontends(inputs, self.frontends)

    def __call__(self, inputs):
        return self.model(self.features(inputs))


def _quantization(detail):
    """(scale, zero_point), or None for a tensor that is not quantised (scale 0)."""
    scale, zero_point = detail["quantization"]
    return (float(scale), int(zero_point)) if scale else None


def tensor_info(detail):
    """Shape, dtype and (for quantised tensors) scale and zero point of one signature tensor."""
    info = {"shape": [int(d) for d in detail["shape"]], "dtype": np.dtype(detail["dtype"]).name}
    params = _quantization(detail)
    if params:
        scale, zero_point = params
        limits = np.iinfo(info["dtype"])
        # Floats outside the calibrated range clip: apps should know where that starts.
        info["quantization"] = {"scale": scale, "zero_point": zero_point,
                                "float_range": [(limits.min - zero_point) * scale, (limits.max - zero_point) * scale]}
    return info


def quantize(x, detail):
    """A float array → the tensor's dtype, through its scale and zero point when quantised."""
    dtype, params = np.dtype(detail["dtype"]), _quantization(detail)
    x = np.asarray(x)
    if params is None:
        return x.astype(dtype)
    scale, zero_point = params
    limits = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero_point, limits.min, limits.max).astype(dtype)


def dequantize(q, detail):
    """A tensor's value → float32 (quantised tensors through their scale and zero point)."""
    params = _quantization(detail)
    if params is None:
        return np.asarray(q, np.float32)
    scale, zero_point = params
    return ((np.asarray(q, np.float32) - zero_point) * scale).astype(np.float32)


def primary_metric(out, y_true, y_pred, labels):
    """The output's primary metric (accuracy, micro-F1 or MAE) over stacked samples."""
    return METRICS[out.type](y_true, y_pred, labels)[PRIMARY_METRIC[out.type]]


def run_timed(runner, samples):
    """Outputs per sample and the median batch-1 latency in ms (after one untimed warm-up run)."""
    runner(samples[0][0])  # first run allocates and packs weights: not what a user waits for
    outputs, times = [], []
    for inputs, _ in samples:
        start = time.perf_counter()
        outputs.append(runner(inputs))
        times.append(time.perf_counter() - start)
    return outputs, 1000 * statistics.median(times)


def _stack(dicts, name):
    return np.concatenate([np.asarray(d[name]) for d in dicts])


def compare_output(out, lite, keras, targets, labels):
    """One output's scores for TFLite and Keras predictions, their top-1 agreement and max difference."""
    result = {"metric": PRIMARY_METRIC[out.type],
              "value": primary_metric(out, targets, lite, labels),
              "keras_value": primary_metric(out, targets, keras, labels),
              "max_abs_diff": float(np.max(np.abs(lite - keras)))}
    if out.type == "category":
        result["agreement"] = float(np.mean(lite.argmax(axis=-1) == keras.argmax(axis=-1)))
    return result


def verify_variant(runner, samples, keras_outputs, ctx, variant):
    """Score one exported variant on `samples` against the Keras model; gate its parity.

    Args:
        runner: a TFLitePipeline (a variant with its front-ends), a LiteRTRunner or a SavedModelRunner.
        samples: list of (inputs, targets), batch 1, in the runner's input format
            (`ExportContext.samples` for TFLite; raw examples for the SavedModel).
        keras_outputs: the Keras model's output dict for each sample (computed once, shared).
        ctx: the run's ExportContext (outputs and labels).
        variant: quantisation name; variants in PARITY_LIMITS raise ParityError beyond their limit.

    Returns:
        {"variant", "size_bytes", "latency_ms", "samples", "max_abs_diff",
         "outputs": {output: {"metric", "value", "keras_value", "max_abs_diff", "agreement" (category)}}}
    """
    lite_outputs, latency_ms = run_timed(runner, samples)
    targets = [t for _, t in samples]
    outputs = {
        out.name: compare_output(out, _stack(lite_outputs, out.name), _stack(keras_outputs, out.name),
                                 _stack(targets, out.name), ctx.prep.labels.get(out.name))
        for out in ctx.cfg.outputs
    }
    result = {"variant": variant, "size_bytes": runner.size_bytes, "latency_ms": latency_ms,
              "samples": len(samples), "max_abs_diff": max(o["max_abs_diff"] for o in outputs.values()),
              "outputs": outputs}
    if isinstance(runner, TFLitePipeline):
        # The variant's own file, fed precomputed features: what quantisation can speed up.
        result["model_latency_ms"] = run_timed(runner.model, [(runner.features(x), None) for x, _ in samples])[1]
    check_parity(result)
    return result


def verify_frontend(runner, keras_frontend, samples, name):
    """One input's front-end TFLite model against its Keras layers: size, latency, max |difference|.

    Args:
        runner: LiteRTRunner of the front-end model.
        keras_frontend: `ctx.frontend_models[name]`.
        samples: list of (inputs, targets) in the Keras model's input format.
        name: the input (e.g. "speech").

    Raises:
        ParityError beyond FRONTEND_PARITY_LIMIT.
    """
    inputs = [({name: x[name]}, None) for x, _ in samples]
    lite, latency_ms = run_timed(runner, inputs)
    key = features_key(name)
    diff = max(float(np.max(np.abs(out[key] - np.asarray(keras_frontend(x)[key]))))
               for out, (x, _) in zip(lite, inputs))
    if not diff <= FRONTEND_PARITY_LIMIT:
        raise ParityError(f"{name} front-end export differs from the Keras model by {diff:.1e} "
                          f"(limit {FRONTEND_PARITY_LIMIT:.0e})")
    return {"input": name, "output": key, "size_bytes": runner.size_bytes, "latency_ms": latency_ms,
            "max_abs_diff": diff}


def check_parity(result):
    """Raise ParityError when a gated variant's max |difference| from Keras exceeds its limit."""
    limit = PARITY_LIMITS.get(result["variant"])
    if limit is not None and not result["max_abs_diff"] <= limit:  # `not <=` also catches NaN
        raise ParityError(f"{result['variant']} export differs from the Keras model by "
                          f"{result['max_abs_diff']:.1e} (limit {limit:.0e})")


class SavedModelRunner:
    """The TF Serving SavedModel's raw-input signature, returning outputs as the Keras model names them.

    Args:
        path: a SavedModel version folder written by `save_serving_model`.
        ctx: the run's ExportContext (output names and types).
    """

    def __init__(self, path, ctx):
        self.signature = tf.saved_model.load(path).signatures["serving_default"]
        self.outputs = ctx.cfg.outputs
        self.size_bytes = sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)

    def __call__(self, raw):
        served = self.signature(**{k: tf.constant(v) for k, v in raw.items()})
        return {o.name: np.asarray(keras_output(o, served)) for o in self.outputs}
