"""Token views of encoder outputs, for the fusions that look past one pooled vector per modality."""
import numpy as np
import tensorflow as tf
import tf_keras as keras


def grid_coordinates(h, w):
    """[1, h·w, 2] float32 numpy: each cell's (row, column) in [-1, 1], row-major."""
    rows, cols = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    return np.stack([rows, cols], -1).reshape(1, h * w, 2).astype("float32")


def broadcast_over_batch(constant, like):
    """`constant` [1, ...] repeated over the batch of tensor `like` [B, ...] → [B, ...].

    BROADCAST_TO, not `constant + tf.zeros_like(like)`: int8 TFLite has no int8 ZEROS_LIKE
    kernel, so that sum stayed a float island (dequantise, zeros, add, quantise) in every int8
    file of the token fusions; with a static batch the converter folds this to a constant.
    """
    batch = tf.shape(like)[:1]
    return tf.broadcast_to(constant, tf.concat([batch, tf.shape(constant)[1:]], axis=0))


@keras.saving.register_keras_serializable(package="mmkeras")
class GridTokens(keras.layers.Layer):
    """Feature map [B, H, W, C] → tokens [B, H·W, C + 2]: each cell with its (row, column) in [-1, 1].

    A fusion that attends over, pairs or conditions these cells can then tell *where* a
    feature is (left of, closest to), which global pooling throws away. The coordinates
    are constants broadcast over the batch (`broadcast_over_batch`), so the graph stays
    builtin ops and int8 keeps them on the tokens' own scale.

    Example:
        tokens = GridTokens()(feature_map)  # [B, 5, 5, 64] → [B, 25, 66]
    """

    def build(self, input_shape):
        h, w = int(input_shape[1]), int(input_shape[2])
        self.coordinates = tf.constant(grid_coordinates(h, w), dtype=self.compute_dtype)
        super().build(input_shape)

    def call(self, feature_map):
        h, w, c = feature_map.shape[1:]
        cells = tf.reshape(feature_map, [-1, h * w, c])
        return tf.concat([cells, broadcast_over_batch(self.coordinates, cells)], axis=-1)

    def compute_output_shape(self, input_shape):
        return tf.TensorShape([input_shape[0], input_shape[1] * input_shape[2], input_shape[3] + 2])


@keras.saving.register_keras_serializable(package="mmkeras")
class ColumnTokens(keras.layers.Layer):
    """Numeric [B, columns] → [B, columns, dim]: column c becomes value_c × w_c (+ b_c), learned vectors.

    `offsets`: add the FT-Transformer tokenizer's per-column vector b_c, which tells the
    columns apart. `homogeneous` leaves it out because its position embedding does that.

    Args:
        dim: width of each token.
        offsets: add a learned vector per column.

    Example:
        tokens = ColumnTokens(dim=64)(numeric)  # [B, 5] → [B, 5, 64]
    """

    def __init__(self, dim, offsets=False, **kwargs):
        super().__init__(**kwargs)
        self.dim = dim
        self.offsets = offsets

    def build(self, input_shape):
        self.column_vectors = self.add_weight(name="column_vectors", shape=(input_shape[-1], self.dim))
        if self.offsets:
            self.column_offsets = self.add_weight(name="column_offsets", shape=(input_shape[-1], self.dim),
                                                  initializer="zeros")
        super().build(input_shape)

    def call(self, inputs):
        tokens = inputs[:, :, None] * self.column_vectors
        return tokens + self.column_offsets if self.offsets else tokens

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "offsets": self.offsets}


@keras.saving.register_keras_serializable(package="mmkeras")
class AllTokens(keras.layers.Layer):
    """Tokens [B, N, d] → mask [B, N] of ones: every token is real (a feature map's cells, columns).

    Example:
        mask = AllTokens()(cells)  # [B, 25, 66] → [B, 25]
    """

    def call(self, tokens):
        return tf.ones_like(tokens[:, :, 0])

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape[:2])
