"""TFLite variants of a run: float32, dynamic-range, float16 and full-integer int8.

Conversion starts from a tensor SavedModel (export.saved_model.save_tensor_model) of
`ctx.tflite_model`: the trained model cut after each float front-end. Every variant
takes pixels, token ids, raw numbers, `<name>_present` flags and, for audio,
`<name>_features` (log-mel) computed by the input's front-end, which ships once as
its own float32 model `<name>_<input>_frontend.tflite`. Why cut there: an 8-bit
waveform input erased quiet speech (speech-only agreement 0.5%) and the FFT has no
int8 kernel, so a whole-model int8 variant was both worse and no faster (measured).

Only builtin ops are allowed: the pip and Android interpreters have no Flex
delegate, so a Flex op would convert and then fail at inference.

Example:
    config = quantization_config("int8", representative_dataset(samples, signature_input_names(sm_dir)))
    tflite_bytes = convert(sm_dir, config)
    op_summary(tflite_bytes)            # {"CONV_2D": 8, ...}; raises on Flex or custom ops
    save_tflite(ctx, out_dir, "int8", tflite_bytes)   # <name>_int8.tflite + <name>_int8.json
"""
import collections
import contextlib
import dataclasses
import io
import os
import zlib
from typing import Callable, Optional

import tensorflow as tf
from ai_edge_litert import schema_py_generated as schema
from tensorflow.core.protobuf import saved_model_pb2

from mmkeras.config.export import VARIANTS
from mmkeras.export.metadata import frontend_with_metadata, with_metadata
from mmkeras.outputs import output_type
from mmkeras.run_dir import ExportDir
from mmkeras.runtime import LiteRTRunner
from mmkeras.errors import UserError
from mmkeras.io import atomic_path, atomic_write_json
from mmkeras.names import features_key, presence_key
from mmkeras.registry import Registry

SIGNATURE = "serving_default"
BUILTINS = (tf.lite.OpsSet.TFLITE_BUILTINS,)

# === Quantisation ===


@dataclasses.dataclass(frozen=True)
class QuantizationConfig:
    """How one TFLite variant is converted (MediaPipe Model Maker style value object).

    Args:
        name: variant name, used in file names and messages (float32, dynamic, ...).
        optimizations: `tf.lite.Optimize` flags.
        supported_types: `target_spec.supported_types` (float16 weights).
        representative_dataset: a callable returning an iterator of calibration inputs
            (dicts keyed by the signature's input names); turns on full-integer quantisation.
        inference_type: dtype of the model's float inputs and outputs (int8), or None to keep float32.
        op_sets: tuples of `tf.lite.OpsSet` tried in order; the next is used only when
            conversion with the previous one fails.
        selective: int8 only for the ops that run faster in int8 than in float32 (`convert`).
        float_layers: with `selective`, Keras layers whose ops stay float32 whatever their speed:
            those that need more than 8 bits of their input (a layer's `float_in_int8`).
        sparse: convert with the weights' zeros stored sparse too, and keep the smaller file.

    Example:
        converter = tf.lite.TFLiteConverter.from_saved_model(path)
        quantization_config("float16").configure(converter, BUILTINS)
    """

    name: str
    optimizations: tuple = ()
    supported_types: tuple = ()
    representative_dataset: Optional[Callable] = None
    inference_type: Optional[tf.DType] = None
    op_sets: tuple = (BUILTINS,)
    selective: bool = False
    float_layers: tuple = ()
    sparse: bool = False

    @classmethod
    def of(cls, variant, representative_dataset=None, float_layers=()):
        """The converter settings of a `mmkeras.config.export.Quantization` row.

        A calibrated (full-integer) variant has int8 inputs and outputs (int32 token ids stay
        int32) and allows float builtins only if the int8-only conversion fails. Even with
        int8 only, ops without int8 kernels (the audio front-end's RFFT2D, COMPLEX_ABS) stay
        float between DEQUANTIZE and QUANTIZE (TF 2.21, measured); `float_ops` lists them.
        """
        settings = {"optimizations": (tf.lite.Optimize.DEFAULT,) if variant.optimize else (),
                    "supported_types": (tf.as_dtype(variant.weight_type),) if variant.weight_type else (),
                    "sparse": variant.sparse}
        if not variant.calibrated:
            return cls(variant.name, **settings)
        if representative_dataset is None:
            raise UserError(f"{variant.name} quantisation needs a representative dataset "
                            "(export.representative_samples > 0)")
        int8 = (tf.lite.OpsSet.TFLITE_BUILTINS_INT8,)
        return cls(variant.name, **settings, representative_dataset=representative_dataset,
                   inference_type=None if variant.selective else tf.int8, op_sets=(int8, int8 + BUILTINS),
                   selective=variant.selective, float_layers=tuple(float_layers) if variant.selective else ())

    @property
    def full_integer(self):
        """True when activations are quantised too (calibrated with a representative dataset)."""
        return self.representative_dataset is not None

    @property
    def for_accelerators(self):
        """True for the full-integer variant that integer-only accelerators (Edge TPU, NPUs) can run."""
        return self.full_integer and not self.selective

    def configure(self, converter, op_set):
        """Set this variant's options on a `TFLiteConverter`, allowing the ops in `op_set`."""
        converter.optimizations = list(self.optimizations)
        converter.target_spec.supported_types = list(self.supported_types)
        converter.target_spec.supported_ops = list(op_set)
        if self.representative_dataset is not None:
            converter.representative_dataset = self.representative_dataset
            per_tensor_dense(converter)
        if self.inference_type is not None:
            converter.inference_input_type = self.inference_type
            converter.inference_output_type = self.inference_type
        return converter


def per_tensor_dense(converter):
    """Quantise Dense (FULLY_CONNECTED) weights with one scale per tensor; convolutions keep
    one per output channel.

    A per-channel scale costs 12 bytes in the file (float32 scale, int64 zero point) per
    output unit, and mmkeras's Dense layers are narrow next to their inputs: on the demo the
    int8 file shrank 3.5 % (12 KB), on debian_sections' stats-only model 20 %, with top-1
    agreement with Keras unchanged within a record or two (README, Export). The converter
    offers the choice only as this private attribute (TF 2.14+).
    """
    converter._experimental_disable_per_channel_quantization_for_dense_layers = True


# The variants by name (their definitions: mmkeras.config.export.VARIANTS), for did-you-mean lookups.
QUANTIZATIONS = Registry("quantization")
for _variant in VARIANTS.values():
    QUANTIZATIONS.register(_variant.name)(_variant)


def quantization_config(name, representative_dataset=None, float_layers=()):
    """The QuantizationConfig of variant `name` (unknown names raise with a did-you-mean).

    `float_layers`: names of Keras layers a selective variant keeps float (`float_layers_of`).
    """
    return QuantizationConfig.of(QUANTIZATIONS.get(name), representative_dataset, float_layers)


def float_layers_of(model):
    """Names of the layers of `model` that declare `float_in_int8` (they lose their input's
    information at 8 bits; see `mmkeras.layers.numeric.PiecewiseLinear`)."""
    return tuple(layer.name for layer in model.layers if getattr(layer, "float_in_int8", False))


def signature_input_names(saved_model_dir, signature=SIGNATURE):
    """Input names of a SavedModel signature, read from saved_model.pb without loading the model."""
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(saved_model_dir, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    return sorted(proto.meta_graphs[0].signature_def[signature].inputs)


def representative_dataset(samples, input_names):
    """Calibration data for int8: a callable yielding one dict per sample, keyed by input name.

    Dicts, not lists: the converter matches a positional list to the signature's
    inputs in a different order than the model's, and silently calibrates the wrong tensors.

    Args:
        samples: list of (inputs, targets) from `ExportContext.samples`, batch 1.
        input_names: the signature's input names (`signature_input_names`).
    """
    missing = set(input_names) - set(samples[0][0]) if samples else set(input_names)
    if missing:
        raise UserError(f"representative samples lack the signature inputs {sorted(missing)}")

    def generate():
        for inputs, _ in samples:
            yield {name: inputs[name] for name in input_names}

    return generate


# === Conversion ===


def convert(saved_model_dir, config):
    """Convert a SavedModel to TFLite bytes with one QuantizationConfig; builtin ops only.

    Args:
        saved_model_dir: a SavedModel with a `serving_default` signature.
        config: a QuantizationConfig.
    """
    return convert_variant(saved_model_dir, config)[0]


def convert_variant(saved_model_dir, config, converted=None):
    """`convert`, and what the conversion decided for the report: (bytes, {"kept_float": [...]})
    for a selective variant (`selective_float_ops`), (bytes, {}) for the others.

    `converted`: variant name → bytes already converted from this SavedModel; a selective variant
    times those instead of converting float32 and int8 again.
    """
    if config.selective:
        return _convert_selective(saved_model_dir, config, converted or {})
    if config.sparse:
        return _convert_sparse(saved_model_dir, config)
    for i, op_set in enumerate(config.op_sets):
        converter = config.configure(tf.lite.TFLiteConverter.from_saved_model(saved_model_dir), op_set)
        try:
            return converter.convert(), {}
        except Exception as e:  # the converter raises ConverterError, ValueError, RuntimeError...
            if i == len(config.op_sets) - 1:
                raise UserError(f"TFLite {config.name} conversion failed: {_first_line(e)}") from e


def _convert_sparse(saved_model_dir, config):
    """The smaller of the variant with its zeros stored sparse and stored dense.

    The converter's sparse format (`Optimize.EXPERIMENTAL_SPARSITY`: block-sparse weights that
    DENSIFY ops expand at load) pays for its indices only when enough of a tensor is zero:
    measured on the demo at 50% sparsity, float32 983.7 KB sparse against 1191.9 KB dense, but
    int8 392.6 KB sparse against 350.2 KB dense.
    """
    dense = convert(saved_model_dir, dataclasses.replace(config, sparse=False))
    sparse = convert(saved_model_dir, dataclasses.replace(
        config, sparse=False, optimizations=config.optimizations + (tf.lite.Optimize.EXPERIMENTAL_SPARSITY,)))
    chosen = sparse if len(sparse) < len(dense) else dense
    return chosen, {"sparse_encoding": chosen is sparse, "dense_size_bytes": len(dense), "sparse_size_bytes": len(sparse)}


# An op stays float when its float32 time is at most this share of its int8 time and it saves at
# least SELECTIVE_MIN_GAIN_MS: a float island costs a DEQUANTIZE/QUANTIZE pair at its edges, and
# the margin keeps ops whose two timings are within noise of each other from flipping between exports.
SELECTIVE_FLOAT_SHARE = 0.7
SELECTIVE_MIN_GAIN_MS = 0.01


def selective_float_ops(float32_bytes, int8_bytes):
    """The ops of a model that run faster in float32 than in int8, each timed alone in both files,
    the two twins back to back (`mmkeras.export.profile.paired_op_ms`); `choose_float_ops` decides."""
    from mmkeras.export.profile import output_names, paired_op_ms

    paired = paired_op_ms(float32_bytes, int8_bytes)
    return choose_float_ops(
        {name: float_ms for name, (float_ms, _) in paired.items()},
        [{"tensor": name, "op": op, "ms": paired[name][1]}
         for name, (op, _) in zip(output_names(int8_bytes), _operators(int8_bytes)) if name in paired])


def choose_float_ops(float32_ms, int8_ops):
    """Which int8 ops to leave float32, from their two timings.

    Ops are matched across the two files by their output tensor's name (the converter keeps
    the SavedModel's names; QUANTIZE/DEQUANTIZE have no float twin and never match).

    Args:
        float32_ms: output tensor name → ms of the float32 op (None: not timed).
        int8_ops: the int8 file's ops, [{"tensor", "op", "ms"}].

    Returns:
        [{"tensor", "op", "float32_ms", "int8_ms"}], slowest in int8 first.
    """
    kept = []
    for t in int8_ops:
        float_ms = float32_ms.get(t["tensor"])
        if float_ms is None or t["ms"] is None:
            continue
        if float_ms <= SELECTIVE_FLOAT_SHARE * t["ms"] and t["ms"] - float_ms >= SELECTIVE_MIN_GAIN_MS:
            kept.append({"tensor": t["tensor"], "op": t["op"], "float32_ms": float_ms, "int8_ms": t["ms"]})
    return sorted(kept, key=lambda k: -k["int8_ms"])


def _convert_selective(saved_model_dir, config, converted):
    """int8 where it is faster: convert float32 and full int8 (float inputs and outputs), time
    both op by op, and quantise again with float32 left for the ops int8 slows down and for
    every op of `config.float_layers`.

    The requantisation goes through `tf.lite.experimental.QuantizationDebugger`, TensorFlow's
    public entry to the MLIR quantiser's denylist (`denylisted_nodes`: op output tensor names).
    """
    from mmkeras.export.profile import output_names

    float32 = (converted.get("float32")
               or convert(saved_model_dir, QuantizationConfig(f"{config.name} (float32 reference)")))
    # The full-integer `int8` has int8 inputs and outputs, this one float: the ops between, which
    # are what is timed and matched by name, are the same.
    int8 = (converted.get("int8")
            or convert(saved_model_dir, dataclasses.replace(config, selective=False, float_layers=())))
    kept = selective_float_ops(float32, int8)
    faster = {k["tensor"] for k in kept}
    for name, (op, _) in zip(output_names(int8), _operators(int8)):
        # Tensor names carry the Keras layer's scope: "mmkeras_tflite/<layer>/...".
        layer = next((f for f in config.float_layers if f"/{f}/" in name), None)
        if layer and name not in faster:
            kept.append({"tensor": name, "op": op, "layer": layer})
    if not kept:
        return int8, {"kept_float": []}
    # Float builtins allowed (the kept ops), float inputs and outputs (`inference_type` None).
    converter = config.configure(tf.lite.TFLiteConverter.from_saved_model(saved_model_dir), BUILTINS)
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=[k["tensor"] for k in kept])
    try:
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=config.representative_dataset, debug_options=options)
        return debugger.get_nondebug_quantized_model(), {"kept_float": kept}
    except Exception as e:  # the converter raises ConverterError, ValueError, RuntimeError...
        raise UserError(f"TFLite {config.name} conversion failed: {_first_line(e)}") from e


def _first_line(error):
    """The most telling line of a (often multi-line) converter error."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    errors = [line for line in lines if "error:" in line.lower()]
    return (errors or lines or [type(error).__name__])[0]


# === Inspection ===

_OP_NAMES = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
_TENSOR_TYPES = {code: name.lower() for name, code in vars(schema.TensorType).items() if not name.startswith("_")}
_FLOAT_TYPES = {"float32", "float16", "complex64"}


def _operators(tflite_bytes):
    """(op name, input/output tensor type names) per operator, read from the flatbuffer.

    Reading the file (not an interpreter) also works for Flex and custom ops,
    which an interpreter without their kernels refuses to prepare.
    """
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(tflite_bytes, 0))
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            tensors = [i for i in [*op.inputs, *op.outputs] if i >= 0]  # -1 = omitted optional input
            yield op_name(model, op), {_TENSOR_TYPES[subgraph.tensors[i].type] for i in tensors}


def is_constant(model, tensor):
    """Whether a tensor of a flatbuffer `ModelT` holds data in the file (weights, biases, shapes)."""
    return tensor.buffer > 0 and model.buffers[tensor.buffer].data is not None


def op_name(model, op):
    """An operator's name in a flatbuffer `ModelT`: the builtin's ("CONV_2D") or a custom op's code."""
    code = model.operatorCodes[op.opcodeIndex]
    # Op codes above 127 live in builtinCode; older ones in the deprecated int8 field.
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    return code.customCode.decode() if builtin == schema.BuiltinOperator.CUSTOM else _OP_NAMES[builtin]


def op_summary(tflite_bytes, variant="model"):
    """Op name → count; raises UserError if any op is a Flex (TF) or custom op.

    Args:
        tflite_bytes: the .tflite flatbuffer.
        variant: name used in the error message.
    """
    counts = collections.Counter(name for name, _ in _operators(tflite_bytes))
    not_builtin = sorted(name for name in counts if name not in _OP_NAMES.values())
    if not_builtin:
        raise UserError(f"TFLite {variant} needs non-builtin ops {', '.join(not_builtin)}; the LiteRT "
                        f"interpreters run builtin ops only")
    return dict(counts.most_common())


def float_ops(tflite_bytes):
    """Op name → count of ops computing in float (for int8 models: what did not quantise).

    QUANTIZE/DEQUANTIZE are the boundaries, not float compute, so they are not counted.
    """
    counts = collections.Counter(
        name for name, types in _operators(tflite_bytes)
        if types & _FLOAT_TYPES and name not in ("QUANTIZE", "DEQUANTIZE"))
    return dict(counts.most_common())


# Ops the GPU delegate has kernels for (tensorflow/lite/tools/versioning/gpu_compatibility.cc,
# TF 2.21). Needed because the pip builds of the analyzer compile that check out: they report
# every model as compatible (a model with RFFT2D included; measured on TF 2.21).
GPU_DELEGATE_OPS = frozenset("""
    ABS ADD ADD_N ATAN2 AVERAGE_POOL_2D BATCH_MATMUL CAST CEIL CONCATENATION CONV_2D COS CUMSUM DENSIFY
    DEPTHWISE_CONV_2D DEPTH_TO_SPACE DEQUANTIZE DIV DYNAMIC_UPDATE_SLICE ELU EMBEDDING_LOOKUP EQUAL EXP FLOOR
    FLOOR_DIV FLOOR_MOD FULLY_CONNECTED GATHER GELU GREATER GREATER_EQUAL HARD_SWISH LEAKY_RELU LESS LESS_EQUAL
    LOG LOGICAL_AND LOGISTIC LSTM MAXIMUM MAX_POOL_2D MEAN MINIMUM MIRROR_PAD MUL NEG NOT_EQUAL ONE_HOT PACK PAD
    PADV2 POW PRELU QUANTIZE REDUCE_MAX REDUCE_MIN REDUCE_PROD RELU RELU6 RELU_N1_TO_1 RESHAPE RESIZE_BILINEAR
    RESIZE_NEAREST_NEIGHBOR RSQRT SELECT SELECT_V2 SIGN SIN SLICE SOFTMAX SPACE_TO_DEPTH SPLIT SPLIT_V SQRT
    SQUARE SQUARED_DIFFERENCE STABLEHLO_CLAMP STRIDED_SLICE SUB SUM TANH TILE TRANSPOSE TRANSPOSE_CONV
""".split())


def gpu_compatibility(tflite_bytes):
    """GPU delegate compatibility: {"compatible": bool, "warnings": [...]}.

    Combines the TFLite analyzer's verdict with an op-name check against the
    delegate's kernels. Neither guarantees the delegate runs every op (it also
    checks shapes and types at runtime); unsupported ops fall back to the CPU.
    """
    warnings = [line.strip() for line in _analyzer_report(tflite_bytes).splitlines()
                if "GPU COMPATIBILITY WARNING" in line]
    unsupported = sorted(set(op_summary(tflite_bytes)) - GPU_DELEGATE_OPS)
    warnings += [f"{op}: no GPU delegate kernel (runs on the CPU)" for op in unsupported]
    return {"compatible": not warnings, "warnings": warnings}


# The ops the Edge TPU runs, by the table of coral.ai/docs/edgetpu/models-intro ("Supported
# operations", latest runtime): only its names are checked here — each op's limitations (no fused
# activation, same x/y dilation, ...) and runtime-version column are the Edge TPU compiler's to
# apply (read from copies of the page: this machine has no network and no compiler).
EDGETPU_OPS = frozenset("""
    ADD AVERAGE_POOL_2D CONCATENATION CONV_2D DEPTHWISE_CONV_2D EXPAND_DIMS FULLY_CONNECTED L2_NORMALIZATION
    LOGISTIC UNIDIRECTIONAL_SEQUENCE_LSTM MAXIMUM MAX_POOL_2D MEAN MINIMUM MUL PACK PAD PRELU QUANTIZE REDUCE_MAX
    REDUCE_MIN RELU RELU6 RELU_N1_TO_1 RESHAPE RESIZE_BILINEAR RESIZE_NEAREST_NEIGHBOR RSQRT SLICE SOFTMAX
    SPACE_TO_DEPTH SPLIT SQUEEZE STRIDED_SLICE SUB SUM SQUARED_DIFFERENCE TANH TRANSPOSE TRANSPOSE_CONV
""".split())
_EIGHT_BIT = {"int8", "uint8"}


def edgetpu_compatibility(tflite_bytes):
    """An Edge-TPU-style check of a full-integer model, per op, from the flatbuffer.

    What the Edge TPU compiler requires of a model (coral.ai, "TensorFlow models on the Edge
    TPU"): every op in its supported set, every activation tensor 8-bit (weights and int32 biases
    are constants), sizes fixed at compile time (no dynamic dimension), at most the 3 innermost
    dimensions larger than 1. The compiler maps ops until the first it cannot and leaves that
    one and everything after it to the CPU, so one early unsupported op costs the whole model.

    Returns:
        {"compatible": bool, "ops": {op: "edge tpu" or why not}, "issues": [one line each]}.
    """
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(tflite_bytes, 0))
    ops, issues = {}, collections.Counter()
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            name = op_name(model, op)
            reasons = [] if name in EDGETPU_OPS else ["not in the Edge TPU's supported ops"]
            for i in (i for i in [*op.inputs, *op.outputs] if i >= 0):
                tensor = subgraph.tensors[i]
                constant = is_constant(model, tensor)
                kind = _TENSOR_TYPES[tensor.type]
                if not constant and kind not in _EIGHT_BIT:
                    reasons.append(f"{kind} activations")
                signature = tensor.shapeSignature if tensor.shapeSignature is not None else tensor.shape
                if signature is not None and any(d < 0 for d in signature):
                    reasons.append("a dynamic dimension")
                shape = list(tensor.shape) if tensor.shape is not None else []
                if not constant and any(d > 1 for d in shape[:-3]):
                    reasons.append(f"a {len(shape)}-D tensor {shape} with more than its 3 innermost dimensions > 1")
            reasons = list(dict.fromkeys(reasons))
            ops.setdefault(name, "; ".join(reasons) if reasons else "edge tpu")
            if reasons and ops[name] == "edge tpu":
                ops[name] = "; ".join(reasons)
            issues.update(f"{name}: {reason}" for reason in reasons)
    return {"compatible": not issues, "ops": ops,
            "issues": [f"{issue} ({count}×)" if count > 1 else issue for issue, count in issues.items()]}


def inspect_tflite(tflite_bytes, config, name=None):
    """{"ops", "float_ops", "gpu", "edgetpu"} of one model for the report; raises on non-builtin ops.

    Args:
        tflite_bytes: the converted model.
        config: its QuantizationConfig; float ops are listed only for full-integer models,
            where they are the exception (elsewhere every op computes in float).
        name: what error messages call the model (default: the quantisation variant).
    """
    return {"ops": op_summary(tflite_bytes, name or config.name),
            "float_ops": float_ops(tflite_bytes) if config.full_integer else None,
            "gpu": gpu_compatibility(tflite_bytes),
            # Accelerators of the Edge TPU kind run full-integer models only.
            "edgetpu": edgetpu_compatibility(tflite_bytes) if config.for_accelerators else None}


# The parts of `size_breakdown`, in the order the report names them.
SIZE_PARTS = ("weights", "int32 constants", "quantisation parameters", "names", "structure")


def size_breakdown(tflite_bytes):
    """Where a converted model's bytes go (its metadata not yet added): part of `SIZE_PARTS` → bytes.

    Why: 8-bit weights make only the weights 4× smaller. The rest does not shrink, or grows:
    int32 constants (an integer model's biases are as large as float32 ones; shapes), the
    quantisation parameters (a float32 scale and an int64 zero point per tensor or per channel),
    the tensors' names, and the structure (operators, tensor tables, signatures). On a small model
    that rest keeps the int8 file above a quarter of the float32 one, which the report says.

    Args:
        tflite_bytes: a converted model without metadata (`convert_variant`'s bytes).
    """
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(tflite_bytes, 0))
    parts, counted = dict.fromkeys(SIZE_PARTS, 0), set()
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            parts["names"] += len(tensor.name or b"")
            quantization = tensor.quantization
            if quantization is not None:
                parts["quantisation parameters"] += sum(
                    width * len(getattr(quantization, field) if getattr(quantization, field) is not None else ())
                    for field, width in (("scale", 4), ("zeroPoint", 8), ("min", 4), ("max", 4)))
            if is_constant(model, tensor) and tensor.buffer not in counted:  # a buffer shared by tensors counts once
                counted.add(tensor.buffer)
                part = "int32 constants" if _TENSOR_TYPES[tensor.type] == "int32" else "weights"
                parts[part] += len(model.buffers[tensor.buffer].data)
    parts["structure"] = len(tflite_bytes) - sum(parts.values())
    return parts


def _analyzer_report(tflite_bytes):
    """The text `tf.lite.experimental.Analyzer` prints (Python print of a C++ string)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        tf.lite.experimental.Analyzer.analyze(model_content=tflite_bytes, gpu_compatibility=True)
    return out.getvalue()


# === Metadata for apps ===

QUANTIZE_FORMULA = "q = clamp(round(x / scale) + zero_point, -128, 127); x = (q - zero_point) * scale"


def _computes(layer):
    """What one front-end layer computes: its config, and derived sizes (e.g. frame_length,
    fft_length), so a native front-end can be matched exactly."""
    computes = {k: v for k, v in layer.get_config().items() if k not in ("name", "trainable", "dtype")}
    computes.update({k: getattr(layer, k) for k in ("frame_length", "frame_step", "fft_length") if hasattr(layer, k)})
    return computes


def frontend_metadata(ctx, name):
    """How the app computes `<name>_features`: the front-end file, its tensors and what it computes
    (`then`: the float-only layers it runs after the modality's own, in order)."""
    first, *then = ctx.frontend_chains[name]
    shape, dtype = ctx.input_specs[name]
    return {"file": os.path.basename(ExportDir(ctx.run.export, ctx.cfg.name).frontend(name)),
            "quantization": "float32 (shared by every variant)", "layer": type(first).__name__,
            "input": {"name": name, "shape": [1, *shape], "dtype": dtype},
            "output": features_key(name), "computes": _computes(first),
            "then": [{"layer": type(layer).__name__, "computes": _computes(layer)} for layer in then]}


def metadata(ctx, config_name, runner):
    """Everything an app needs to feed the model and read its outputs, as a JSON-ready dict.

    Args:
        ctx: the run's ExportContext.
        config_name: the quantisation variant (float32, dynamic, float16, int8).
        runner: the converted model's LiteRTRunner; tensor shapes, dtypes and quantisation are read from it.
    """
    tensors = runner.describe()
    inputs = []
    for h in ctx.prep.handlers:
        flag = presence_key(h.name)
        entry = {"type": h.cfg.type, "optional": h.cfg.optional, "presence_flag": flag,
                 "preprocessing": h.app_preprocessing()}
        if h.name in ctx.frontend_layers:
            name = features_key(h.name)
            entry["frontend"] = frontend_metadata(ctx, h.name)
        else:
            name = h.name
        inputs.append({"name": name, **entry, **tensors["inputs"][name]})
        inputs.append({"name": flag, "type": "presence", **tensors["inputs"][flag],
                       "values": f"1.0 when {h.name} is present, 0.0 when absent"})
    outputs = [{"name": o.name, "type": o.type, **tensors["outputs"][o.name],
                "values": output_type(o).app_values, "labels": ctx.prep.labels.get(o.name)}
               for o in ctx.cfg.outputs]
    return {
        "model": ctx.cfg.name, "quantization": config_name, "signature": SIGNATURE, "batch_size": 1,
        "inputs": inputs, "outputs": outputs,
        "absent_modality": "set <name>_present to 0 and fill <name> with zeros (text: all pad ids; "
                           "<name>_features: the front-end's output for an all-zero input); "
                           "any input may be absent, but optional ones were seen absent in training",
        "quantized_tensors": f"tensors with a 'quantization' entry are int8: {QUANTIZE_FORMULA}",
    }


def zipped_size(tflite_bytes):
    """Bytes of the file deflated (zlib level 9), as an app store or a zip bundle ships it: what
    pruned zeros buy where LiteRT's file format and kernels do not use them."""
    return len(zlib.compress(tflite_bytes, 9))


def _write_bytes(path, content):
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(content)
    return path


def save_tflite(ctx, export_dir, config_name, tflite_bytes):
    """Write the variant with its TFLite metadata inside, and its `.json` beside it, atomically.

    Returns (path, the bytes written): what apps load, so what verification must run.
    """
    paths = ExportDir(export_dir, ctx.cfg.name)
    runner = LiteRTRunner(tflite_bytes)  # one interpreter reads the tensors for the .json and the metadata
    app = metadata(ctx, config_name, runner)
    model_bytes = with_metadata(ctx, config_name, tflite_bytes, app, runner)
    _write_bytes(paths.tflite(config_name), model_bytes)
    atomic_write_json(paths.tflite_metadata(config_name), app)
    return paths.tflite(config_name), model_bytes


def save_frontend(ctx, export_dir, input_name, tflite_bytes):
    """Write one input's front-end model with its metadata, atomically → (path, the bytes written)."""
    model_bytes = frontend_with_metadata(ctx, input_name, tflite_bytes)
    return _write_bytes(ExportDir(export_dir, ctx.cfg.name).frontend(input_name), model_bytes), model_bytes


def save_bundle(ctx, export_dir, config_name):
    """`<name>_<variant>.task`: the variant, its front-ends and its `.json` in one zip → its path.

    MediaPipe's model-asset-bundle format (uncompressed entries aligned to 4 bytes, so an app
    can memory-map each model inside it); entries keep their file names, which the `.json`
    and the metadata descriptions refer to. Written from the files just saved.
    """
    from mediapipe.tasks.python.metadata.metadata_writers.model_asset_bundle_utils import create_model_asset_bundle

    paths = ExportDir(export_dir, ctx.cfg.name)
    members = [paths.tflite(config_name), paths.tflite_metadata(config_name)]
    members += [paths.frontend(name) for name in ctx.frontend_layers]
    contents = {}
    for member in members:
        with open(member, "rb") as f:
            contents[os.path.basename(member)] = f.read()
    with atomic_path(paths.bundle(config_name)) as tmp:
        create_model_asset_bundle(contents, tmp)
    return paths.bundle(config_name)
