"""Audio inputs: files read as mono float32 at the configured rate; cropped or padded
to fixed length in tf.data; log-mel inside the model.

16-bit PCM WAV files already at the configured rate (the common case for speech
data) decode with TensorFlow's own `tf.audio.decode_wav`: no Python, no GIL, so
decoding scales with tf.data's threads. Everything else (other WAV depths and
rates, FLAC, OGG/Opus, non-canonical WAV headers) goes through soundfile in
`tf.numpy_function`, since `decode_wav` reads only 16-bit PCM and tensorflow-io's
ops do not load on TF 2.21. Both give the same samples (int16 / 32768). The model
itself takes a float32 waveform, so the serving graph needs no Python.
"""
import math
from typing import Annotated, Literal

import numpy as np
import soundfile
from annotated_types import Ge, Gt

from mmkeras.config.base import Int, Number, section
from mmkeras.encoders import default_encoder, encoder_choice
from mmkeras.lazy import keras, tf
from mmkeras.modalities.base import (BadValue, InputConfig, Modality, float_range, frontend_steps, header_int,
                                     present_total, register, resolve_file)


@section
class AudioInput(InputConfig):
    """An audio file (WAV any bit depth, FLAC, OGG), mono at `sample_rate`, `seconds` long; log-mel in-graph."""

    type: Literal["audio"] = "audio"
    sample_rate: Annotated[Int, Ge(1000)] = 16000
    seconds: Annotated[Number, Gt(0)] = 1.0
    n_mels: Annotated[Int, Ge(8)] = 64
    encoder: encoder_choice("audio") = default_encoder("audio_cnn")

    @property
    def num_samples(self):
        return int(round(self.sample_rate * self.seconds))


def load_audio(path, sample_rate):
    """Read an audio file → float32 mono waveform in [-1, 1] at `sample_rate`.

    Stereo is averaged; another rate is resampled with a polyphase filter
    (scipy.signal.resample_poly, Kaiser window), which avoids aliasing.
    """
    data, rate = soundfile.read(path, dtype="float32", always_2d=True)
    wave = data.mean(axis=1)
    if rate != sample_rate:
        from scipy.signal import resample_poly  # 0.75 s to import: only when a file needs it

        g = math.gcd(int(rate), int(sample_rate))
        wave = resample_poly(wave, sample_rate // g, int(rate) // g).astype(np.float32)
    return np.clip(wave, -1.0, 1.0)


# Longest audio file a record may hold, before cropping: the longer of MIN_AUDIO_BOUND_S and
# AUDIO_BOUND_FACTOR × the input's `seconds` (random crops of a longer clip are fine; an hour
# of audio per record is a mistake that costs minutes of decoding and gigabytes of cache).
MIN_AUDIO_BOUND_S, AUDIO_BOUND_FACTOR = 60, 20


# Files whose headers estimate a split's decoded audio size (a header read is ~50 µs).
SIZE_SAMPLE = 256


def max_audio_seconds(seconds):
    return max(MIN_AUDIO_BOUND_S, AUDIO_BOUND_FACTOR * seconds)


def is_native_wav(contents, sample_rate):
    """True when the file bytes are a canonical 16-bit PCM WAV at `sample_rate`: the files
    `tf.audio.decode_wav` reads exactly as soundfile does.

    Canonical: the 44-byte header — "RIFF....WAVE", a 16-byte "fmt " chunk, then the "data"
    chunk, whose size is whole frames and ends the file. Valid WAVs laid out otherwise (other
    chunks before or after the data, an 18/40-byte fmt chunk, WAVE_FORMAT_EXTENSIBLE, a
    streaming writer's unknown data size, a truncated file) take the soundfile path:
    `decode_wav` rejects several of them, which would stop training mid-epoch.
    """
    # Padded, so a file shorter than a header compares as not-a-WAV instead of failing.
    padded = tf.strings.join([contents, b"\0" * 44])
    header = tf.io.decode_raw(tf.strings.substr(padded, 0, 44), tf.uint8)
    magic = tf.strings.join([tf.strings.substr(padded, 0, 4), tf.strings.substr(padded, 8, 8),
                             tf.strings.substr(padded, 36, 4)])
    data_size = header_int(header, 40, 4)
    channels = header_int(header, 22, 2)
    block_align = header_int(header, 32, 2)
    # A block align or byte rate that disagrees with channels × 16 bit passes soundfile (which
    # derives them) but fails `decode_wav` inside tf.data: such files take the soundfile path.
    return tf.logical_and(
        tf.equal(magic, b"RIFFWAVEfmt data"),
        tf.reduce_all(tf.stack([tf.equal(header_int(header, 16, 4), 16),           # fmt chunk size
                                tf.equal(header_int(header, 20, 2), 1),            # PCM
                                tf.equal(header_int(header, 24, 4), sample_rate),
                                tf.equal(header_int(header, 34, 2), 16),           # bits per sample
                                tf.greater(channels, 0),
                                tf.equal(block_align, 2 * channels),
                                tf.equal(header_int(header, 28, 4), sample_rate * 2 * channels),  # byte rate
                                tf.equal(tf.math.floormod(data_size, tf.maximum(block_align, 1)), 0),
                                tf.equal(44 + data_size, tf.cast(tf.strings.length(contents), tf.int64))])))


def decode_native_wav(contents):
    audio, _ = tf.audio.decode_wav(contents)  # [samples, channels], int16 / 32768
    return tf.clip_by_value(tf.reduce_mean(audio, axis=1), -1.0, 1.0)


def fit_length(wave, num_samples, training):
    """Crop (random in training, centred otherwise) or zero-pad a waveform to `num_samples`."""
    excess = tf.maximum(tf.shape(wave)[0] - num_samples, 0)
    if training:
        offset = tf.random.uniform([], 0, excess + 1, dtype=tf.int32)
    else:
        offset = excess // 2
    wave = wave[offset: offset + num_samples]
    wave = tf.pad(wave, [[0, num_samples - tf.shape(wave)[0]]])
    return tf.ensure_shape(wave, [num_samples])


@register
class AudioModality(Modality):
    config = AudioInput
    reads_files = True

    def parse_value(self, value, manifest_dir):
        path = resolve_file(value, manifest_dir)
        try:
            # Bounded before it is read: every record's whole waveform is decoded (and, with
            # the memory cache, held) although training crops it to `seconds`.
            info = soundfile.info(path)
            limit = max_audio_seconds(self.cfg.seconds)
            if info.frames > limit * info.samplerate:
                raise BadValue(f"audio of {info.frames / info.samplerate:.0f} s is over the {limit:.0f} s bound "
                               f"(the longer of {MIN_AUDIO_BOUND_S} s and {AUDIO_BOUND_FACTOR}× inputs seconds); "
                               f"cut the file: {path}")
            # A full read, not just the header: a truncated or corrupt file must fail here,
            # named by its line, rather than inside a tf.data batch mid-epoch.
            frames, _ = soundfile.read(path, dtype="float32", always_2d=True)
        except BadValue:
            raise
        except Exception as e:  # soundfile raises several types for unreadable files
            raise BadValue(f"not a readable audio file: {path} ({str(e).splitlines()[0]})") from None
        if not len(frames):
            raise BadValue(f"audio file has no samples: {path}")
        if not np.isfinite(frames).all():
            raise BadValue(f"audio file holds NaN or infinite samples: {path}")
        return path

    def feature_shape(self):
        return (self.cfg.num_samples,)

    def decode(self, path):
        # Full-length waveform: the crop happens after the cache, so each epoch may crop anew.
        contents = tf.io.read_file(path)
        wave = tf.cond(
            is_native_wav(contents, self.cfg.sample_rate),
            lambda: decode_native_wav(contents),
            # The path arrives as bytes in tf.data, as a 0-d array when called eagerly.
            lambda: tf.numpy_function(lambda p: load_audio(np.asarray(p).item().decode(), self.cfg.sample_rate),
                                      [path], tf.float32, stateful=False))
        return tf.ensure_shape(wave, [None])

    def absent(self):
        return tf.zeros([0], tf.float32)  # zero samples long; finalize pads it

    def decoded_bytes(self, values, presence):
        """Whole waveforms at the configured rate (the crop comes after the cache), not `seconds`:
        their mean length read from the headers of up to SIZE_SAMPLE evenly spaced files."""
        def seconds(path):
            info = soundfile.info(path)
            return info.frames / info.samplerate

        return int(present_total(values, presence, seconds, SIZE_SAMPLE) * self.cfg.sample_rate) * 4

    def finalize(self, x, training):
        return fit_length(x, self.cfg.num_samples, training)

    raw_dtype = "float32"
    raw_shape = (None,)  # any length: centre-cropped or zero-padded like evaluation data

    def from_raw(self, raw):
        return tf.map_fn(lambda wave: fit_length(wave, self.cfg.num_samples, training=False), raw)

    def raw_example(self, value):
        return np.zeros([0], np.float32) if value is None else load_audio(value, self.cfg.sample_rate)

    def preprocess(self, x):
        from mmkeras.layers.audio import LogMelSpectrogram

        return LogMelSpectrogram(sample_rate=self.cfg.sample_rate, n_mels=self.cfg.n_mels,
                                 name=self.float_frontend())(x)

    @staticmethod
    def tokens(features, spec, name, dim, params):
        """One token per log-mel frame, each mel band standardised first (raw log-mel sits around
        -14..5 with per-band offsets)."""
        from mmkeras.encoders.cnn import BN_MOMENTUM

        x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_input_norm")(features)
        return keras.layers.Dense(dim, name=f"{name}_frame_tokens")(x), None, None

    def app_preprocessing(self):
        cfg = self.cfg
        return {
            "sample_rate": cfg.sample_rate, "num_samples": cfg.num_samples, "seconds": cfg.seconds,
            "channels": "mono: average the channels", "resample": "polyphase filter (scipy.signal.resample_poly)",
            "length": "longer: centre crop (offset = (length - num_samples) // 2); shorter: zero-pad at the end",
            "values": "float32 waveform in [-1, 1], fed to the front-end model (see `frontend`)",
        }

    def tflite_metadata(self, lib, name, described, detail):
        """The variants' audio input is the front-end's output (`<name>_features`)."""
        frontend = described["frontend"]
        return lib.info.TensorMd(
            name=name, description=f"{self.name}: {frontend['layer']} of a {self.cfg.seconds} s mono waveform at "
                                   f"{self.cfg.sample_rate} Hz{frontend_steps(frontend)}, computed by "
                                   f"{frontend['file']} (float32)."
                                   f"{float_range(detail)}").create_metadata(), {}

    def frontend_tflite_metadata(self, lib):
        """The front-end model's input, as MediaPipe's TensorMetadataT: a waveform with its rate."""
        md = lib.info.TensorMd(
            name=self.name, description=f"{self.name}: {self.cfg.seconds} s mono float32 waveform in [-1, 1] at "
                                        f"{self.cfg.sample_rate} Hz, centre-cropped or zero-padded at the end",
            min_values=[-1.0], max_values=[1.0], content_type=lib.fb.ContentProperties.AudioProperties
        ).create_metadata()
        md.content.contentProperties.sampleRate = self.cfg.sample_rate
        md.content.contentProperties.channels = 1
        return md

    def float_frontend(self):
        # An 8-bit waveform erases quiet speech, and RFFT2D has no int8 kernel (measured).
        return f"{self.name}_logmel"
