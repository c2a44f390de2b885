"""Modality dropout: hide present modalities at random in training, so missing ones are familiar."""
import tensorflow as tf
import tf_keras as keras

from mmkeras.fusion.base import check_rate


@keras.saving.register_keras_serializable(package="mmkeras")
class ModalityDropout(keras.layers.Layer):
    """Sets each present modality of each sample to absent with probability `rate` (training only).

    A row never loses all its present modalities: if every one would be dropped, the row keeps its
    original presence. Identity at inference.

    Args:
        rate: probability of dropping each present modality, in [0, 1).
        seed: optional integer seed for the random draws.

    Example:
        presence = ModalityDropout(0.1)(presence)  # [B, M] float 0/1
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        check_rate("rate", rate)
        self.rate = rate
        self.seed = seed

    def call(self, presence, training=None):
        if training is None:
            training = keras.backend.learning_phase()
        return tf.__internal__.smart_cond.smart_cond(
            training, lambda: self._drop(presence), lambda: tf.identity(presence)
        )

    def _drop(self, presence):
        keep = tf.random.uniform(tf.shape(presence), seed=self.seed) >= self.rate
        dropped = presence * tf.cast(keep, presence.dtype)
        emptied = 1.0 - tf.reduce_max(dropped, axis=-1, keepdims=True)  # 1 where nothing is left
        return dropped + emptied * presence

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
