"""Time-series inputs: a sensor trace per record (accelerometer, ECG, a machine's sensors …).

A manifest value is the path of a `.npy` file (a [T, C] or, for one channel, [T] array of
any real dtype) or a `.csv` file (one row per sample, one comma-separated column per
channel, an optional header row). `length` samples reach the model: with `fit: crop` a
longer trace is cropped (at random in training, centred otherwise) and a shorter one
padded at the end with the channel means; with `fit: resample` the whole trace is
linearly resampled to `length` (anti-aliased when it shrinks). Each channel is
standardised with the training split's mean and standard deviation inside the model, as
a float front-end: channels of very different scales (g next to mV) keep their
information in int8.

Example:
    inputs:
      - {name: motion, type: timeseries, channels: 3, length: 128}
"""
import math
from typing import Literal

import numpy as np

from mmkeras.config.base import PositiveInt, section
from mmkeras.encoders import default_encoder, encoder_choice
from mmkeras.lazy import keras, tf
from mmkeras.modalities.base import (FLOAT32_MAX, FRONTEND_RESULT, BadValue, InputConfig, Modality, Standardised,
                                     float_range, present_total, register, resolve_file)

FORMATS = (".npy", ".csv")
# Longest trace a record may hold: the longer of MIN_TRACE_BOUND samples and
# TRACE_BOUND_FACTOR × `length` (random crops of a longer trace are fine; a day of samples per
# record is a mistake that costs minutes of decoding and gigabytes of cache).
MIN_TRACE_BOUND, TRACE_BOUND_FACTOR = 100_000, 20
# Files whose lengths estimate a split's decoded size (see `decoded_bytes`).
SIZE_SAMPLE = 64


@section
class TimeseriesInput(InputConfig):
    """A `.npy` or `.csv` file of [T, C] samples, fitted to `length` samples of `channels` channels.

    Args:
        channels: C, the columns every file must have.
        length: samples per trace the model sees.
        fit: "crop" (crop a longer trace, pad a shorter one with the channel means) or
            "resample" (linear interpolation of the whole trace to `length`).
    """

    type: Literal["timeseries"] = "timeseries"
    channels: PositiveInt = 1
    length: PositiveInt = 128
    fit: Literal["crop", "resample"] = "crop"
    encoder: encoder_choice("timeseries") = default_encoder("conv1d")

    @property
    def max_samples(self):
        return max(MIN_TRACE_BOUND, TRACE_BOUND_FACTOR * self.length)


def _csv_trace(path):
    with open(path, encoding="utf-8") as f:
        first = f.readline()
    try:
        [float(field) for field in first.split(",")]
        header = 0
    except ValueError:  # a header row names the channels
        header = 1
    return np.loadtxt(path, delimiter=",", skiprows=header, ndmin=2, dtype=np.float64, encoding="utf-8")


def load_trace(path, channels, max_samples=None):
    """A `.npy` or `.csv` trace → float32 [T, channels]; BadValue says why a file cannot be one.

    The one reader of trace files: validation, the training statistics, tf.data's decode,
    predict and the benchmarks all read through it.
    """
    suffix = path[path.rfind("."):].lower()
    if suffix not in FORMATS:
        raise BadValue(f"a time series is a .npy or .csv file, got {path}")
    try:
        data = np.load(path, allow_pickle=False) if suffix == ".npy" else _csv_trace(path)
    except (ValueError, OSError, EOFError, UnicodeDecodeError) as e:
        raise BadValue(f"not a readable {suffix} time series: {path} ({str(e).splitlines()[0]})") from None
    if not isinstance(data, np.ndarray) or not (np.issubdtype(data.dtype, np.integer)
                                                or np.issubdtype(data.dtype, np.floating)):
        raise BadValue(f"a time series holds real numbers, got {getattr(data, 'dtype', type(data).__name__)}: {path}")
    if data.ndim == 1 and channels == 1:
        data = data[:, None]
    if data.ndim != 2 or data.shape[1] != channels:
        raise BadValue(f"expected [samples, {channels}] (one column per channel), got shape {list(data.shape)}: {path}")
    if not len(data):
        raise BadValue(f"time series has no samples: {path}")
    if max_samples and len(data) > max_samples:
        raise BadValue(f"time series of {len(data)} samples is over the {max_samples}-sample bound (the longer of "
                       f"{MIN_TRACE_BOUND} and {TRACE_BOUND_FACTOR}× inputs length); cut the file: {path}")
    if not np.isfinite(data).all():
        row = int(np.argwhere(~np.isfinite(data))[0][0])
        raise BadValue(f"time series holds NaN or infinite values (first at sample {row}): {path}")
    if np.abs(data).max() > FLOAT32_MAX:
        raise BadValue(f"time series values outside the float32 range: {path}")
    return data.astype(np.float32)


def fit_trace(trace, cfg, fill, training):
    """A [T, C] trace → [length, C] (graph ops): the input's `fit` policy.

    crop: crop (random offset in training, centred otherwise) or pad at the end with `fill`
    (the channel means, 0 once standardised). resample: bilinear interpolation along time,
    anti-aliased when shrinking — the same op in tf.data and the serving signature.
    """
    if cfg.fit == "resample":
        resized = tf.image.resize(trace[:, None, :], [cfg.length, 1], method="bilinear", antialias=True)
        return tf.ensure_shape(resized[:, 0, :], [cfg.length, cfg.channels])
    excess = tf.maximum(tf.shape(trace)[0] - cfg.length, 0)
    offset = tf.random.uniform([], 0, excess + 1, dtype=tf.int32) if training else excess // 2
    trace = trace[offset: offset + cfg.length]
    missing = cfg.length - tf.shape(trace)[0]
    padding = tf.zeros([missing, cfg.channels]) + tf.constant([fill], tf.float32)
    return tf.ensure_shape(tf.concat([trace, padding], axis=0), [cfg.length, cfg.channels])


def _combine(count, mean, m2, other_count, other_mean, other_m2):
    """Chan et al.'s pairwise update of (count, mean, sum of squared deviations) per channel:
    exact for a channel at 1e5 ± 1e-3, where E[x²] − mean² loses every digit."""
    total = count + other_count
    delta = other_mean - mean
    return total, mean + delta * other_count / total, m2 + other_m2 + delta ** 2 * count * other_count / total


@register
class TimeseriesModality(Standardised, Modality):
    config = TimeseriesInput
    reads_files = True

    def parse_value(self, value, manifest_dir):
        path = resolve_file(value, manifest_dir)
        load_trace(path, self.cfg.channels, self.cfg.max_samples)  # a full read: a bad file fails here
        return path

    def fit(self, values):
        channels = self.cfg.channels
        count, mean, m2 = 0, np.zeros(channels), np.zeros(channels)
        for path in values:
            trace = load_trace(path, channels).astype(np.float64)
            trace_mean = trace.mean(axis=0)
            count, mean, m2 = _combine(count, mean, m2, len(trace), trace_mean, ((trace - trace_mean) ** 2).sum(axis=0))
        variance = m2 / max(count, 1)
        self.state = {"mean": mean.tolist(), "variance": variance.tolist()}

    def feature_shape(self):
        return (self.cfg.length, self.cfg.channels)

    def _read(self, path):
        # tf.data hands the path over as bytes, an eager call as a 0-d array.
        return load_trace(np.asarray(path).item().decode(), self.cfg.channels)

    def decode(self, path):
        trace = tf.numpy_function(self._read, [path], tf.float32, stateful=False)
        trace = tf.ensure_shape(trace, [None, self.cfg.channels])
        # Resampling is deterministic: done before the cache. A crop is per epoch (finalize).
        return fit_trace(trace, self.cfg, None, False) if self.cfg.fit == "resample" else trace

    def absent(self):
        return tf.zeros([self.cfg.length if self.cfg.fit == "resample" else 0, self.cfg.channels])

    def finalize(self, x, training):
        return x if self.cfg.fit == "resample" else fit_trace(x, self.cfg, self.state["mean"], training)

    def decoded_bytes(self, values, presence):
        """crop: whole traces (the crop comes after the cache), their mean length from up to
        SIZE_SAMPLE evenly spaced files; resample: `length` samples each."""
        if self.cfg.fit == "resample":
            return super().decoded_bytes(values, presence)
        samples = present_total(values, presence, lambda path: len(load_trace(path, self.cfg.channels)), SIZE_SAMPLE)
        return int(samples * self.cfg.channels * 4)

    # === Serving: float32 [batch, samples, channels], any number of samples ===

    raw_dtype = "float32"

    @property
    def raw_shape(self):
        return (None, self.cfg.channels)

    def from_raw(self, raw):
        return tf.map_fn(lambda trace: fit_trace(trace, self.cfg, self.state["mean"], False), raw)

    def raw_example(self, value):
        return np.zeros([0, self.cfg.channels], np.float32) if value is None else load_trace(value, self.cfg.channels)

    # === In the model ===

    def preprocess(self, x):
        return self.standardise(x)  # per channel, a float front-end (`Standardised`)

    @staticmethod
    def tokens(features, spec, name, dim, params):
        """One token per `patch_size` samples (the trace zero-padded at the end to whole patches)."""
        patch = params.patch_size
        length = features.shape[1]
        pad = math.ceil(length / patch) * patch - length
        if pad:
            features = keras.layers.ZeroPadding1D((0, pad), name=f"{name}_pad")(features)
        return keras.layers.Conv1D(dim, patch, strides=patch, name=f"{name}_patch_tokens")(features), None, None

    # === The app ===

    def app_preprocessing(self):
        cfg = self.cfg
        fit = ({"crop": "longer: centre crop (offset = (samples - length) // 2); shorter: pad at the end with "
                        "`mean` (per channel)"} if cfg.fit == "crop" else
               {"resample": "linear interpolation of the whole trace to `length` samples, anti-aliased when "
                            "shrinking (tf.image.resize(method='bilinear', antialias=True) over time)"})
        return {
            "file": ".npy [samples, channels] or .csv (one row per sample, one column per channel)",
            "channels": cfg.channels, "length": cfg.length, **fit,
            "values": "float32 [length, channels] raw samples, fed to the front-end model (see `frontend`)",
            "standardize": f"or computed by the app: each channel (x - mean) / std; {FRONTEND_RESULT}",
            "mean": self.state["mean"], "std": self.standard_deviations(), "variance": self.state["variance"],
        }

    def tflite_metadata(self, lib, name, described, detail):
        """The variants' input is the standardised trace (`<name>_features`)."""
        md = lib.info.TensorMd(
            name=name, description=f"{self.name}: {self.cfg.length} samples x {self.cfg.channels} channels, each "
                                   f"channel standardised as (x - mean) / std with the normalization parameters "
                                   f"below, computed by {described['frontend']['file']} or by the app."
                                   f"{float_range(detail)}").create_metadata()
        md.processUnits = [self.normalization_unit(lib)]
        return md, {}

    def frontend_tflite_metadata(self, lib):
        """The front-end model's input: the raw trace."""
        return lib.info.TensorMd(
            name=self.name, description=f"{self.name}: raw float32 samples [{self.cfg.length}, {self.cfg.channels}] "
                                        f"(time, channel), fitted to {self.cfg.length} samples by "
                                        f"{self.cfg.fit}").create_metadata()
