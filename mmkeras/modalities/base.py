"""The per-modality contract: one plugin file per input type, `mmkeras.modalities.<type>`.

A plugin holds everything mmkeras knows about one kind of input: its config section (an
`InputConfig` subclass, the handler's `config`, with its default encoder), and a handler
that knows, for one configured input, how to:
  parse      a manifest value in Python (validation; raises BadValue),
  fit        preprocessing state on the training split (vocabulary, statistics),
  decode     a parsed value into a tensor inside tf.data (cacheable, deterministic),
  finalize   that tensor per epoch (random crops) after the cache,
  model_input / preprocess   the model's input and its in-graph preprocessing,
  float_frontend   name the preprocessing TFLite keeps in float32,
  tokens     turn its features into tokens for token-level encoders (`homogeneous`),
  raw_spec / from_raw   decode raw values in the TF Serving signature,
  app_preprocessing / tflite_metadata   describe to an app what the TFLite input holds.
`register` files the handler under its config's `type`; `mmkeras.modalities` imports every
module of its package, so a new file is a new input type. TensorFlow is named through
`mmkeras.lazy`: the config reads these files before TensorFlow loads.
"""
import math
import os

from typing import Annotated, Optional

import numpy as np
import pydantic

from mmkeras.config.base import Bool, section, tag, with_default_type
from mmkeras.lazy import keras, tf
from mmkeras.registry import Registry

MODALITIES = Registry("input")


def register(cls):
    """Class decorator: file a Modality subclass under its config section's `type`."""
    MODALITIES.register(tag(cls.config))(cls)
    return cls


def _identifier(name):
    # Input and output names become Keras layer names, TensorFlow scopes, serving signature
    # keys and file names: ASCII only (isidentifier alone admits any Unicode letter).
    if not (name.isascii() and name.isidentifier()):
        raise ValueError(f"must be a valid identifier (ASCII letters, digits, _), got {name!r}")
    return name


Identifier = Annotated[str, pydantic.AfterValidator(_identifier)]


@section
class InputConfig:
    """Fields every modality input has; each plugin's section adds its own and its `encoder`.

    Args:
        name: model input name (and serving signature input name).
        type: the modality: the `type` of one of the plugins in `mmkeras.modalities`.
        column: manifest column holding the value (defaults to `name`).
        optional: records may leave this modality empty; the model then sees it as absent.
        encoder: (each modality's own field) `{type: ..., **params}`: one of the encoders
            that take the modality (`mmkeras.encoders.encoder_choice`); its default,
            `default_encoder(...)`, is the modality's default encoder.
    """

    name: Identifier
    type: str
    column: Optional[str] = None
    optional: Bool = False

    def columns_used(self):
        return [self.column or self.name]

    @pydantic.model_validator(mode="before")
    @classmethod
    def _default_encoder_type(cls, data):
        # `encoder: {dim: 8}` (or a `--set` of one key) is the default encoder with that key.
        return with_default_type(data, "encoder", tag(cls.__dataclass_fields__["encoder"].default_factory))

    @pydantic.model_validator(mode="after")
    def _encoder_takes_this_input(self):
        self.encoder.check_input(self)
        return self


# How an app that computes a front-end itself ends: the layers after the modality's own follow.
FRONTEND_RESULT = ("then the layers `frontend.then` lists, in order, from their `computes`; the result is "
                   "`<name>_features`")


def frontend_steps(frontend):
    """A front-end's layers after the modality's own (`frontend.then` in a variant's `.json`), for
    a description: '' or ', then A, then B'."""
    return "".join(f", then {step['layer']}" for step in frontend.get("then", ()))


def float_range(detail):
    """' int8: a to b representable.' for a quantised tensor (`mmkeras.runtime.tensor_info`; outside
    that range values clip), else '': the sentence the TFLite metadata adds to a tensor's description."""
    quantization = detail.get("quantization")
    return f" int8: {quantization['float_range'][0]:.4g} to {quantization['float_range'][1]:.4g} representable." \
        if quantization else ""


class BadValue(Exception):
    """A manifest value this modality cannot use; the message is the reason."""


class Modality:
    """Base handler: single-column input, no learned state, identity finalize."""

    # Placeholder stored (and decoded to zeros) when the modality is absent.
    empty_value = ""
    # True when parsed values are file paths (a disk cache then fingerprints the files too).
    reads_files = False

    def __init__(self, cfg, state=None):
        self.cfg = cfg
        self.state = state or {}

    @property
    def name(self):
        return self.cfg.name

    def raw_value(self, record):
        """The manifest value for this input, or None when absent (missing key or empty)."""
        column = self.cfg.columns_used()[0]
        if column not in record:
            if self.cfg.optional:
                return None
            raise BadValue(f"missing column '{column}'")
        value = record[column]
        if value is None or (isinstance(value, str) and not value.strip()):
            if self.cfg.optional:
                return None
            raise BadValue("empty value for a required input (declare it `optional: true` to allow)")
        return value

    def parse(self, record, manifest_dir):
        value = self.raw_value(record)
        return None if value is None else self.parse_value(value, manifest_dir)

    def parse_value(self, value, manifest_dir):
        """The value as the split holds it, or BadValue. Runs in validation's threads, so no
        TensorFlow here: TensorFlow makes an op's eager kernel the first time the op runs, and
        eight threads making the same kernels at once crashed the process (SIGSEGV in
        strided_slice and pad, about one run in fifteen on a loaded 2-core machine, when the
        image check decoded here). TensorFlow checks go in `check_files`."""
        return str(value)

    def check_files(self, values):
        """Problems found by reading many parsed, present values at once, after each record's
        `parse`, on the calling thread (a batched decode is several times faster than one call
        per record): position in `values` → reason."""
        return {}

    def fit(self, values):
        """Learn state from the training split's present values."""

    def state_to_json(self, run_dir):
        """The learned state as JSON; large parts may go to files under `run_dir`."""
        return self.state

    def state_from_json(self, data, run_dir):
        self.state = data

    def column(self, values):
        """The parsed values of a split as one tensor for `Dataset.from_tensor_slices`."""
        return tf.constant(values, tf.string)

    def decode(self, value):
        raise NotImplementedError

    def absent(self):
        """What `decode` yields for an absent value (never read from disk)."""
        return tf.zeros(self.feature_shape(), self.input_dtype)

    def finalize(self, x, training):
        return x

    def decoded_bytes(self, values, presence):
        """Bytes `decode` yields for these values (present or not), as a cache would hold them."""
        return len(values) * np.dtype(self.input_dtype).itemsize * int(np.prod(self.feature_shape()))

    def model_input(self):
        return keras.Input(shape=self.feature_shape(), dtype=self.input_dtype, name=self.name)

    input_dtype = "float32"

    def feature_shape(self):
        raise NotImplementedError

    def preprocess(self, x):
        """In-model preprocessing: model input → the features its encoder takes."""
        return x

    def present(self, x, presence):
        """In-model: the presence [B, 1] the input is fused under, from its model input `x` and
        its presence flag: the flag, or less where `x` carries nothing the model learned."""
        return presence

    def float_frontend(self):
        """Name of the in-model preprocessing layer that cannot be quantised (an FFT, say), or None.

        Export ships such a layer as its own float32 TFLite model, and every TFLite
        variant takes that layer's output instead of the raw input: an 8-bit input
        would otherwise quantise the signal before the front-end sees it (audio's log-mel;
        numeric standardisation, whose raw columns differ in scale).
        """
        return None

    def frontend_tflite_metadata(self, lib):
        """The front-end model's input as MediaPipe's TensorMetadataT (inputs with a `float_frontend`)."""
        raise NotImplementedError

    # === Serving (raw inputs in the TF Serving signature) ===

    raw_dtype = "string"  # a dtype name: the plugin files are read before TensorFlow loads
    raw_shape = ()

    def raw_spec(self):
        """TensorSpec of this input in the raw-input serving signature (batch first)."""
        return tf.TensorSpec([None, *self.raw_shape], self.raw_dtype, name=self.name)

    def from_raw(self, raw):
        """A batch of raw serving values → the model input batch (graph ops only)."""
        return tf.map_fn(self.decode, raw, fn_output_signature=tf.TensorSpec(self.feature_shape(), self.input_dtype))

    def raw_example(self, value):
        """One record's raw serving value, from the value its split holds (e.g. a path → file bytes);
        `value` is None when the modality is absent."""
        return "" if value is None else value

    def serving_resources(self):
        """tf.Modules the serving graph uses (saved along with it)."""
        return []

    # === The app: what the TFLite variants' `.json` and metadata say about this input ===

    def app_preprocessing(self):
        """What an app does to a raw value before feeding the TFLite input (JSON-ready, for its `.json`)."""
        raise NotImplementedError

    def tflite_metadata(self, lib, name, described, detail):
        """(the TFLite input `name`'s TensorMetadataT, built with MediaPipe's metadata_info, {associated file: bytes}).

        Args:
            lib: `mmkeras.export.metadata`'s handle on MediaPipe's metadata modules.
            described: this input's entry of the variant's `.json` (with `preprocessing`).
            detail: the TFLite tensor (`mmkeras.runtime.tensor_info`).
        """
        raise NotImplementedError

    # === Token-level encoders ===

    @staticmethod
    def tokens(features, spec, name, dim, params):
        """This modality's preprocessed features [B, ...] → (tokens [B, N, dim], mask [B, N] or None,
        grid (H, W) or None) for the encoders that see every modality as tokens (`homogeneous`,
        with its `params`)."""
        raise NotImplementedError

    def feature_spec(self):
        from mmkeras.encoders import FeatureSpec

        return FeatureSpec(modality=self.cfg.type)


class Standardised:
    """Mixin for the inputs the model standardises with the training split's statistics
    (`state["mean"]`, `state["variance"]` per column or channel) as a float front-end: numeric
    columns and time-series channels.

    Standardised before anything is quantised: one int8 scale over raw columns of different
    magnitudes (1e4 beside [0, 1]) leaves the small column only its zero point (measured:
    int8 accuracy 0.45 against float32 0.99 when the label lives in the small column).
    """

    # A constant column divides by 1e-6, not by zero.
    MIN_VARIANCE = 1e-12

    def float_frontend(self):
        return f"{self.name}_normalize"

    def variances(self):
        return [max(v, self.MIN_VARIANCE) for v in self.state["variance"]]

    def standard_deviations(self):
        return [v ** 0.5 for v in self.variances()]

    def standardise(self, x):
        """The in-model standardisation layer (the front-end the TFLite variants are cut after)."""
        # Stored as layer weights so the exported graph standardises by itself; float32 even under
        # mixed precision, since raw values can be large (bfloat16 keeps 8 bits).
        return keras.layers.Normalization(mean=self.state["mean"], variance=self.variances(), dtype="float32",
                                          name=self.float_frontend())(x)

    def normalization_unit(self, lib):
        """MediaPipe's NormalizationOptions process unit, (x - mean) / std, for the TFLite metadata."""
        unit = lib.fb.ProcessUnitT()
        unit.optionsType = lib.fb.ProcessUnitOptions.NormalizationOptions
        unit.options = lib.fb.NormalizationOptionsT()
        unit.options.mean, unit.options.std = list(self.state["mean"]), self.standard_deviations()
        return unit


# The model computes in float32: a value beyond it is infinite there (and its variance overflows).
FLOAT32_MAX = 3.4028234663852886e38


def parse_number(raw):
    """A manifest number (JSON number or numeric string) → float, or BadValue saying why not:
    a boolean (JSON `true` is no measurement), not a number, not finite, beyond float32."""
    if isinstance(raw, bool):
        raise BadValue(f"not a number: {raw!r}")
    try:
        number = float(raw)
    except OverflowError:  # an integer with hundreds of digits
        raise BadValue(f"outside the float32 range: {str(raw)[:40]}…") from None
    except (TypeError, ValueError):
        raise BadValue(f"not a number: {raw!r}") from None
    if not math.isfinite(number):
        raise BadValue(f"not a finite number: {raw!r}")
    if abs(number) > FLOAT32_MAX:
        raise BadValue(f"outside the float32 range (|x| ≤ 3.4e38): {raw!r}")
    return number


def present_total(values, presence, measure, sample_size):
    """Estimated sum of `measure(value)` over the present values, from up to `sample_size` evenly
    spaced ones (the mean of a few hundred files' lengths is within a few percent for any real
    data set, and a whole split's headers would cost seconds): variable-length inputs' cache sizes."""
    present = [v for v, p in zip(values, presence) if p > 0]
    if not present:
        return 0.0
    sample = present[::max(1, len(present) // sample_size)][:sample_size]
    return len(present) * float(np.mean([measure(value) for value in sample]))


def header_int(header, start, length, big_endian=False):
    """Unsigned integer from `length` bytes of a file header (a uint8 or int64 tensor), as int64
    (graph ops: WAV headers in tf.data, image headers in the serving signature)."""
    weights = [256 ** i for i in range(length)]
    values = tf.cast(header[start:start + length], tf.int64)
    return tf.reduce_sum(values * tf.constant(weights[::-1] if big_endian else weights, tf.int64))


def resolve_file(value, manifest_dir):
    """A manifest path → absolute path inside the manifest's folder, which must exist."""
    path = str(value).strip()
    if "\x00" in path:  # no file system takes one; os.path raises ValueError on it
        raise BadValue(f"file name holds a NUL character: {path!r}")
    full = os.path.realpath(os.path.join(manifest_dir, path))
    root = os.path.realpath(manifest_dir)
    if os.path.commonpath([full, root]) != root:
        raise BadValue(f"path '{path}' escapes the manifest's folder {root}")
    if not os.path.isfile(full):
        raise BadValue(f"file not found: {full}")
    return full


def handler(cfg, state=None):
    """The registered handler for an input config."""
    return MODALITIES.get(cfg.type)(cfg, state)
