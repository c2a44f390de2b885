"""`concat` fusion: masked embeddings + presence flags → Dense(dim) + ReLU."""
from typing import Literal

from mmkeras.config.base import registered
from mmkeras.fusion.base import FUSIONS, FUSION_PARAMS, FusionLayer, FusionParams, embedding_dims
from mmkeras.lazy import keras, tf


@registered(FUSION_PARAMS)
class ConcatParams(FusionParams):
    """`concat`: masked embeddings + presence vector → Dense(dim) + ReLU.

    Example:
        fusion: {type: concat, dim: 128}
    """

    type: Literal["concat"] = "concat"


@FUSIONS.register("concat")
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
