"""`attention` fusion: a small transformer over one token per modality plus a fusion token."""
from typing import Literal

import pydantic

from mmkeras.config.base import PositiveInt, heads_divide_dim, registered
from mmkeras.fusion.base import (FUSIONS, FUSION_PARAMS, FusionLayer, FusionParams, check_positive_int, embedding_dims,
                                 modality_token_norms)
from mmkeras.lazy import keras, tf


@registered(FUSION_PARAMS)
class AttentionParams(FusionParams):
    """`attention`: one token per modality + a fusion token through Transformer blocks.

    Args:
        heads: attention heads per block; divides `dim`.
        layers: number of Transformer blocks.

    Example:
        fusion: {type: attention, dim: 128, heads: 4}
    """

    type: Literal["attention"] = "attention"
    heads: PositiveInt = 4
    layers: PositiveInt = 1

    _heads_divide_dim = pydantic.model_validator(mode="after")(heads_divide_dim)


@FUSIONS.register("attention")
class AttentionFusion(FusionLayer):
    """Cross-modal transformer: modalities attend to each other; a learned fusion token is output.

    Each embedding is projected to one `dim`-wide token plus a learned modality-type vector.
    Absent modalities are masked out of the keys; the fusion token is always a valid key, so a
    row with nothing present still has a defined output.

    Args:
        dim: width of the tokens and of the fused vector; divisible by `heads`.
        heads: attention heads per block.
        layers: number of transformer blocks.
        dropout: dropout rate inside the blocks and on the fused vector.
        token_norm: LayerNorm each modality's token (`modality_token_norms`); a model saved
            before this argument existed has none and loads without them.

    Example:
        fused = AttentionFusion(dim=64, heads=4, layers=1, dropout=0.1)([image_vec, text_vec], presence)
    """

    def __init__(self, dim, heads, layers, dropout, token_norm=True, **kwargs):
        super().__init__(dim=dim, dropout=dropout, **kwargs)
        self.token_norm = token_norm
        check_positive_int("heads", heads)
        check_positive_int("layers", layers)
        if dim % heads:
            raise ValueError(
                f"`dim` must be divisible by `heads`. Received: dim={dim}, heads={heads}"
            )
        self.heads = heads
        self.layers = layers

        # === Layers ===
        from mmkeras.layers.transformer import TransformerBlock

        # ff_dim = 2·dim, not the usual 4·dim: there are only M + 1 tokens and data is small.
        self.blocks = [
            TransformerBlock(dim, heads, ff_dim=2 * dim, dropout=dropout, name=f"block_{i}", dtype=self.dtype_policy)
            for i in range(layers)
        ]
        # Pre-LN blocks leave the residual stream unnormalised.
        self.output_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="output_norm", dtype=self.dtype_policy)

    def build(self, input_shape):
        dims = embedding_dims(input_shape)
        self.projections = []
        for i, d in enumerate(dims):
            projection = keras.layers.Dense(self.dim, name=f"projection_{i}", dtype=self.dtype_policy)
            projection.build((None, d))
            self.projections.append(projection)
        self.token_norms = modality_token_norms(self, len(dims), (None, self.dim))
        self.modality_embeddings = self.add_weight(
            name="modality_embeddings",
            shape=(len(dims), self.dim),
            initializer=keras.initializers.RandomNormal(stddev=0.02),
        )
        # Unit scale like the projected tokens: the tokens share one int8 scale in TFLite, and a
        # BERT-style 0.02 token drowns in it (measured int8 error: 0.27 → 0.02 of the output std).
        self.fusion_token = self.add_weight(
            name="fusion_token",
            shape=(1, 1, self.dim),
            initializer=keras.initializers.RandomNormal(stddev=1.0),
        )
        self.output_norm.build((None, self.dim))
        super().build(input_shape)

    def fuse(self, embeddings, presence, training):
        from mmkeras.layers.tokens import broadcast_over_batch  # TensorFlow: not at import (base.py)

        tokens = tf.stack([norm(p(x)) for p, norm, x in zip(self.projections, self.token_norms, embeddings)], axis=1)
        tokens += self.modality_embeddings  # [B, M, dim]
        fusion_token = broadcast_over_batch(self.fusion_token, tokens)
        tokens = tf.concat([fusion_token, tokens], axis=1)
        key_mask = tf.concat([tf.ones_like(presence[:, :1]), presence], axis=1)  # [B, M + 1]
        for block in self.blocks:
            tokens = block(tokens, padding_mask=key_mask, training=training)
        return self.output_norm(tokens[:, 0])

    def get_config(self):
        return {**super().get_config(), "heads": self.heads, "layers": self.layers, "token_norm": self.token_norm}

    @classmethod
    def from_config(cls, config):
        return cls(**{"token_norm": False, **config})  # saved before token norms: as trained
