"""`concat` fusion: masked embeddings + presence flags → Dense(dim) + ReLU."""
import tensorflow as tf
import tf_keras as keras

from mmkeras.fusion import FUSIONS
from mmkeras.fusion.base import FusionLayer, embedding_dims


@FUSIONS.register("concat")
@keras.saving.register_keras_serializable(package="mmkeras")
class ConcatFusion(FusionLayer):
    """Concatenates the masked embeddings and the presence vector, then Dense(dim) + ReLU + dropout.

    Args:
        dim: width of the fused vector.
        dropout: dropout rate on the fused vector.

    Example:
        fused = ConcatFusion(dim=64, dropout=0.1)([image_vec, text_vec], presence)  # [B, 64]
    """

    def __init__(self, dim, dropout, **kwargs):
        super().__init__(dim=dim, dropout=dropout, **kwargs)
        self.projection = keras.layers.Dense(dim, activation="relu", name="projection", dtype=self.dtype_policy)

    def build(self, input_shape):
        dims = embedding_dims(input_shape)
        self.projection.build((None, sum(dims) + len(dims)))
        super().build(input_shape)

    def fuse(self, embeddings, presence, training):
        # The flags let the projection tell "missing" from an embedding that happens to be zero.
        return self.projection(tf.concat([*embeddings, presence], axis=-1))
