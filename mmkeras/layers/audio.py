"""In-graph audio front-end: waveform → log-mel, so the exported model takes raw audio."""
import math

import tensorflow as tf
import tf_keras as keras


@keras.saving.register_keras_serializable(package="mmkeras")
class LogMelSpectrogram(keras.layers.Layer):
    """Float32 waveform [B, samples] in [-1, 1] → log-mel [B, frames, n_mels] = log(mel + 1e-6).

    Converts to TFLite with builtin ops only (RFFT2D, COMPLEX_ABS, MATMUL, LOG).

    Args:
        sample_rate: sampling rate of the waveform in Hz.
        frame_length_ms: STFT window length in milliseconds.
        frame_step_ms: hop between frames in milliseconds.
        n_mels: number of mel bands.
        fmin: lowest band edge in Hz.
        fmax: highest band edge in Hz; None = sample_rate / 2.

    Example:
        layer = LogMelSpectrogram(sample_rate=16000)
        features = layer(waveform)                    # [B, 98, 64] for 1 s
        LogMelSpectrogram.num_frames(16000, 16000)    # 98
    """

    def __init__(
        self,
        sample_rate,
        frame_length_ms=25,
        frame_step_ms=10,
        n_mels=64,
        fmin=20.0,
        fmax=None,
        **kwargs,
    ):
        # The STFT has no float16 kernel: keep this layer float32 under mixed precision.
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.sample_rate = sample_rate
        self.frame_length_ms = frame_length_ms
        self.frame_step_ms = frame_step_ms
        self.n_mels = n_mels
        self.fmin = fmin
        self.fmax = fmax
        self.frame_length, self.frame_step = self.frame_sizes(sample_rate, frame_length_ms, frame_step_ms)
        self.fft_length = 2 ** math.ceil(math.log2(self.frame_length))

    @staticmethod
    def frame_sizes(sample_rate, frame_length_ms=25, frame_step_ms=10):
        """(frame_length, frame_step) in samples."""
        return round(sample_rate * frame_length_ms / 1000), round(sample_rate * frame_step_ms / 1000)

    @staticmethod
    def num_frames(samples, sample_rate, frame_length_ms=25, frame_step_ms=10):
        """Number of frames the layer produces for `samples` samples (no end padding)."""
        frame_length, frame_step = LogMelSpectrogram.frame_sizes(sample_rate, frame_length_ms, frame_step_ms)
        return max(0, 1 + (samples - frame_length) // frame_step)

    def build(self, input_shape):
        # A constant, not a weight: it is fixed by the config, so it stays out of the
        # checkpoint and TFLite folds it into the MATMUL.
        with tf.init_scope():
            self.mel_matrix = tf.signal.linear_to_mel_weight_matrix(
                num_mel_bins=self.n_mels,
                num_spectrogram_bins=self.fft_length // 2 + 1,
                sample_rate=self.sample_rate,
                lower_edge_hertz=self.fmin,
                upper_edge_hertz=self.fmax or self.sample_rate / 2,
            )
        super().build(input_shape)

    def call(self, waveform):
        stft = tf.signal.stft(
            tf.cast(waveform, tf.float32),
            frame_length=self.frame_length,
            frame_step=self.frame_step,
            fft_length=self.fft_length,
        )
        mel = tf.matmul(tf.abs(stft), self.mel_matrix)
        return tf.math.log(mel + 1e-6)

    def compute_output_shape(self, input_shape):
        samples = input_shape[-1]
        frames = None if samples is None else self.num_frames(
            samples, self.sample_rate, self.frame_length_ms, self.frame_step_ms
        )
        return tf.TensorShape([input_shape[0], frames, self.n_mels])

    def get_config(self):
        return {
            **super().get_config(),
            "sample_rate": self.sample_rate,
            "frame_length_ms": self.frame_length_ms,
            "frame_step_ms": self.frame_step_ms,
            "n_mels": self.n_mels,
            "fmin": self.fmin,
            "fmax": self.fmax,
        }
