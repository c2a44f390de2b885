"""`gated` fusion: Gated Multimodal Unit (Arevalo et al. 2017) generalised to M modalities."""
from typing import Literal

from mmkeras.config.base import registered
from mmkeras.fusion.base import FUSIONS, FUSION_PARAMS, FusionLayer, FusionParams, embedding_dims
from mmkeras.lazy import keras, tf


@registered(FUSION_PARAMS)
class GatedParams(FusionParams):
    """`gated`: gated multimodal unit, softmax gates over the present modalities.

    Example:
        fusion: {type: gated, dim: 64}
    """

    type: Literal["gated"] = "gated"


@FUSIONS.register("gated")
class GatedFusion(FusionLayer):
    """Weighted sum of h_i = tanh(W_i x_i) with softmax gates over the present modalities.

    The gate logits come from the concatenated inputs and presence flags, so each sample picks
    how much to trust each modality; absent modalities get weight 0.

    Args:
        dim: width of the fused vector.
        dropout: dropout rate on the fused vector.

    Example:
        fused = GatedFusion(dim=64, dropout=0.1)([image_vec, text_vec, audio_vec], presence)  # [B, 64]
    """

    def build(self, input_shape):
        dims = embedding_dims(input_shape)
        self.transforms = []
        for i, d in enumerate(dims):
            transform = keras.layers.Dense(self.dim, activation="tanh", name=f"transform_{i}", dtype=self.dtype_policy)
            transform.build((None, d))
            self.transforms.append(transform)
        self.gate = keras.layers.Dense(len(dims), name="gate", dtype=self.dtype_policy)
        self.gate.build((None, sum(dims) + len(dims)))
        super().build(input_shape)

    def fuse(self, embeddings, presence, training):
        from mmkeras.layers.masking import masked_softmax

        hidden = tf.stack([t(x) for t, x in zip(self.transforms, embeddings)], axis=1)
        logits = self.gate(tf.concat([*embeddings, presence], axis=-1))
        weights = masked_softmax(logits, presence)  # [B, M]
        return tf.reduce_sum(hidden * weights[:, :, tf.newaxis], axis=1)
