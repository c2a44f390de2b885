"""Feature normalisation and training-only augmentation layers for the encoders.

The augmentation layers return their input unchanged unless called with
`training=True`, and decide that in Python: the graph traced for inference (the
SavedModel, every TFLite variant) holds none of their random ops.
"""
import math

import tensorflow as tf
import tf_keras as keras


@keras.saving.register_keras_serializable(package="mmkeras")
class UtteranceNorm(keras.layers.Layer):
    """Log-mel [B, frames, n_mels] → each clip normalised by its own statistics.

    Subtracts each mel band's mean over the clip's frames (cepstral mean normalisation:
    removes the recording channel's and the voice's fixed spectral tilt) and divides by
    the clip's standard deviation over all frames and bands (removes its loudness range),
    so a voice or microphone unseen in training looks like the ones seen. Builtin ops only
    (MEAN, SUB, MUL, SQRT, DIV).

    Args:
        epsilon: added to the variance; log-mel of digital silence has variance 0.

    Example:
        x = UtteranceNorm()(log_mel)
    """

    # Statistics over a whole clip need float: in int8 the squared deviations lose their small
    # values, and SQUARED_DIFFERENCE has no int8 XNNPACK kernel (half of spoken_commands' int8
    # time). Export runs it in the audio's float front-end (`mmkeras.export.context.frontend_chain`).
    float_in_int8 = True

    def __init__(self, epsilon=1e-3, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.epsilon = epsilon

    @property
    def max_slope(self):
        """The most an input difference grows through this layer: 1 / the smallest std it divides by."""
        return 1.0 / math.sqrt(self.epsilon)

    def call(self, x):
        centred = x - tf.reduce_mean(x, axis=1, keepdims=True)
        variance = tf.reduce_mean(tf.square(centred), axis=[1, 2], keepdims=True)
        return centred / tf.sqrt(variance + self.epsilon)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="mmkeras")
class SpecAugment(keras.layers.Layer):
    """SpecAugment's masking (Park et al. 2019) on [B, frames, bands] features, in training only.

    Each example gets `time_masks` bands of at most `max_time` of its frames and
    `freq_masks` bands of at most `max_freq` of its mel bands set to zero (the mean
    after `UtteranceNorm`), at random places, so the encoder cannot lean on one word
    part or one formant of the voices it was trained on.

    Args:
        time_masks, freq_masks: masks per example along each axis.
        max_time, max_freq: largest mask width, as a fraction of the axis.
        seed: seed of the mask positions.

    Example:
        x = SpecAugment()(features)  # identity at inference
    """

    def __init__(self, time_masks=2, max_time=0.1, freq_masks=2, max_freq=0.15, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.time_masks, self.max_time = time_masks, max_time
        self.freq_masks, self.max_freq = freq_masks, max_freq
        self.seed = seed
        self._generator = None

    def _axis_mask(self, batch, length, masks, max_fraction):
        """[B, length] float: 0 inside any of `masks` random spans, 1 elsewhere."""
        max_width = max(1, int(length * max_fraction))
        positions = tf.range(length)[None, None, :]
        width = tf.random.uniform([batch, masks, 1], 0, max_width + 1, dtype=tf.int32, seed=self.seed)
        start = tf.random.uniform([batch, masks, 1], 0, length, dtype=tf.int32, seed=self.seed)
        inside = tf.logical_and(positions >= start, positions < start + width)
        return 1.0 - tf.cast(tf.reduce_any(inside, axis=1), self.compute_dtype)

    def call(self, x, training=None):
        if not training:
            return x
        batch = tf.shape(x)[0]
        frames, bands = x.shape[1], x.shape[2]
        mask = self._axis_mask(batch, frames, self.time_masks, self.max_time)[:, :, None]
        mask *= self._axis_mask(batch, bands, self.freq_masks, self.max_freq)[:, None, :]
        return x * mask

    def get_config(self):
        return {**super().get_config(), "time_masks": self.time_masks, "max_time": self.max_time,
                "freq_masks": self.freq_masks, "max_freq": self.max_freq, "seed": self.seed}


@keras.saving.register_keras_serializable(package="mmkeras")
class RandomShift(keras.layers.Layer):
    """Images [B, H, W, C] shifted by up to `fraction` of each side, in training only.

    Pads with edge pixels and crops back at a random offset per example: a cheap,
    label-preserving augmentation for pictures whose subject is not always centred
    (no flips: digits, letters and many symbols change meaning when mirrored).

    Args:
        fraction: largest shift as a fraction of the height and width.
        seed: seed of the offsets.

    Example:
        x = RandomShift(0.1)(images)  # identity at inference
    """

    def __init__(self, fraction=0.1, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.fraction = fraction
        self.seed = seed

    def call(self, x, training=None):
        if not training:
            return x
        height, width = x.shape[1], x.shape[2]
        dy, dx = max(1, int(height * self.fraction)), max(1, int(width * self.fraction))
        padded = tf.pad(x, [[0, 0], [dy, dy], [dx, dx], [0, 0]], mode="SYMMETRIC")
        batch = tf.shape(x)[0]
        oy = tf.random.uniform([batch], 0, 2 * dy + 1, dtype=tf.int32, seed=self.seed)
        ox = tf.random.uniform([batch], 0, 2 * dx + 1, dtype=tf.int32, seed=self.seed)
        # One gather per axis: rows then columns, each example at its own offset.
        rows = oy[:, None] + tf.range(height)[None, :]
        cols = ox[:, None] + tf.range(width)[None, :]
        x = tf.gather(padded, rows, axis=1, batch_dims=1)
        return tf.gather(x, cols, axis=2, batch_dims=1)

    def get_config(self):
        return {**super().get_config(), "fraction": self.fraction, "seed": self.seed}


@keras.saving.register_keras_serializable(package="mmkeras")
class TokenDropout(keras.layers.Layer):
    """Token ids [B, T]: each real token replaced by the unknown token with probability `rate`, in training only.

    Word dropout (Iyyer et al. 2015): a text met in deployment holds words the vocabulary
    never saw (a new item's name, a language not in training), which tokenise to the
    unknown token. Trained on texts with such holes, the model learns to read what is
    left and, when little is, to lean on the other modalities. Padding (id 0) stays.

    Args:
        rate: probability of replacing each real token, in [0, 1).
        unknown_id: the id the unknown token has in the vocabulary.
        seed: seed of the draws.

    Example:
        ids = TokenDropout(0.1, unknown_id=1)(ids)  # identity at inference
    """

    def __init__(self, rate, unknown_id, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate, self.unknown_id, self.seed = rate, unknown_id, seed

    def call(self, ids, training=None):
        if not training or not self.rate:
            return ids
        drop = tf.logical_and(tf.random.uniform(tf.shape(ids), seed=self.seed) < self.rate, ids != 0)
        return tf.where(drop, tf.cast(self.unknown_id, ids.dtype), ids)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "unknown_id": self.unknown_id, "seed": self.seed}
