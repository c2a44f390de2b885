"""Shared by the fusion layers: argument checks, presence masking, masked softmax, dropout."""
import tensorflow as tf
import tf_keras as keras

from mmkeras.layers.masking import masked_softmax  # noqa: F401  (re-exported for the fusion layers)


def check_positive_int(name, value):
    """Raise a ValueError naming `name` unless `value` is an int > 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(
            f"Received an invalid value for `{name}`, expected a positive integer. "
            f"Received: {name}={value!r}"
        )


def check_rate(name, value):
    """Raise a ValueError naming `name` unless 0 <= `value` < 1."""
    if not 0 <= value < 1:
        raise ValueError(
            f"Received an invalid value for `{name}`, expected a number in [0, 1). "
            f"Received: {name}={value!r}"
        )


def embedding_dims(input_shape):
    """Widths d_i of the M embeddings; `input_shape` is a list of shapes (lists after reload)."""
    return [int(tf.TensorShape(shape)[-1]) for shape in input_shape]


class FusionLayer(keras.layers.Layer):
    """Base of the fusion layers: zeroes absent embeddings, calls `fuse`, applies output dropout.

    Subclasses implement `fuse(embeddings, presence, training) -> [B, dim]`; the embeddings they
    receive are already multiplied by their presence flag, so an absent one is all zeros.

    Args:
        dim: width of the fused vector.
        dropout: dropout rate on the fused vector (training only).

    Defaults for every argument live in `mmkeras.config.fusion`, the one place a config
    reads them from.

    Example:
        class MaxFusion(FusionLayer):  # assumes every embedding is already `dim` wide
            def fuse(self, embeddings, presence, training):
                return tf.reduce_max(tf.stack(embeddings, axis=1), axis=1)
    """

    def __init__(self, dim, dropout, **kwargs):
        super().__init__(**kwargs)
        check_positive_int("dim", dim)
        check_rate("dropout", dropout)
        self.dim = dim
        self.dropout = dropout
        self.output_dropout = keras.layers.Dropout(dropout, name="output_dropout", dtype=self.dtype_policy)

    def call(self, embeddings, presence, training=None):
        embeddings = list(embeddings)
        if presence.shape[-1] is not None and presence.shape[-1] != len(embeddings):
            raise ValueError(
                f"`presence` must have one column per embedding. Received: "
                f"{len(embeddings)} embeddings, presence shape {presence.shape}"
            )
        presence = tf.cast(presence, self.compute_dtype)
        # Zeroing is what keeps an absent modality's (arbitrary) encoder output out of the result.
        masked = [x * presence[:, i : i + 1] for i, x in enumerate(embeddings)]
        return self.output_dropout(self.fuse(masked, presence, training), training=training)

    def fuse(self, embeddings, presence, training):
        raise NotImplementedError

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "dropout": self.dropout}
