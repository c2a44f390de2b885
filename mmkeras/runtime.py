"""The app runtime: run an exported model as an app does, in Python.

Everything here takes the model's float inputs and returns its float outputs, whatever
the artifact: a TFLite variant (int8 tensors quantised and dequantised with their own
scale and zero point) with its float front-ends, or the TF Serving SavedModel's
raw-input signature. Export verifies every variant through these classes and
`python -m mmkeras.predict` predicts with them, so an app's reference is what was checked.

Example:
    tflite = "runs/demo/export/tflite"
    app = TFLitePipeline(LiteRTRunner(f"{tflite}/demo_int8.tflite"),
                         {"speech": LiteRTRunner(f"{tflite}/demo_speech_frontend.tflite")})
    app(inputs)["label"]  # [1, 9] probabilities
"""
import os

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from mmkeras.names import presence_key


def apply_frontends(inputs, frontends):
    """Model inputs → the TFLite variants' inputs: each front-end's output in place of its raw input.

    Args:
        inputs: one batch of model inputs, name → array.
        frontends: input name → callable `{name: raw}` → `{<name>_features: features}` (the Keras
            front-end models, or their LiteRT runners).
    """
    feed = dict(inputs)
    for name, frontend in frontends.items():
        feed.update({k: np.asarray(v) for k, v in frontend({name: feed.pop(name)}).items()})
    return feed


def raw_example(handlers, split, index):
    """One record of a validated split as the SavedModel's raw inputs, batch 1 (file bytes, text,
    waveform, numbers, and `<name>_present` for optional inputs)."""
    raw = {}
    for h in handlers:
        present = split.presence[h.name][index] > 0
        value = h.raw_example(split.values[h.name][index] if present else None)
        raw[h.name] = np.expand_dims(np.asarray(value, dtype=object if h.raw_dtype == "string" else np.float32), 0)
        if h.cfg.optional:
            raw[presence_key(h.name)] = np.array([1.0 if present else 0.0], np.float32)
    return raw


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
        raw = self.invoke(self.feed(inputs))
        return {name: dequantize(value, self.output_details[name]) for name, value in raw.items()}

    def feed(self, inputs):
        """Float inputs → what the file takes (int8 tensors quantised with their scale and zero point)."""
        return {name: quantize(inputs[name], detail) for name, detail in self.input_details.items()}

    def invoke(self, feed):
        """One run on a prepared `feed` → the raw outputs (int8 stays int8).

        Timing this, not `__call__`, is timing the file: an int8 file's inputs are quantised by the
        app, here in numpy, which costs 20 µs — as much as a whole tiny tabular model (measured).
        """
        return self._signature(**feed)

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

    def file_feed(self, inputs):
        """Model inputs → what the variant's file takes, prepared for `self.model.invoke`: timing
        that is timing the file alone (front-ends and input quantisation done beforehand)."""
        return self.model.feed(self.features(inputs))

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


class SavedModelRunner:
    """The TF Serving SavedModel's raw-input signature, returning outputs as the Keras model names them.

    Args:
        path: a SavedModel version folder written by `save_serving_model`.
        outputs: the run's output configs (`cfg.outputs`: names and types).
    """

    def __init__(self, path, outputs):
        import tensorflow_text  # noqa: F401  (registers the tokenizer ops the serving graph uses)

        self.signature = tf.saved_model.load(path).signatures["serving_default"]
        self.outputs = outputs
        self.size_bytes = sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)

    def __call__(self, raw):
        served = self.signature(**{k: tf.constant(v) for k, v in raw.items()})
        from mmkeras.outputs import output_type  # the output types' modules import this one

        return {o.name: np.asarray(output_type(o).keras_output(o.name, served)) for o in self.outputs}
