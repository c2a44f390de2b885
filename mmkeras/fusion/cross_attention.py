"""`cross_attention` fusion: Transformer blocks over the tokens of every modality, so text tokens
attend to image cells and back; a learned fusion token is the output."""
from typing import Literal

import pydantic

from mmkeras.config.base import PositiveInt, heads_divide_dim, registered
from mmkeras.fusion.base import (FUSIONS, FUSION_PARAMS, FusionParams, TokenFusionLayer, check_positive_int,
                                 modality_token_norms, token_shapes)
from mmkeras.lazy import keras, tf


@registered(FUSION_PARAMS)
class CrossAttentionParams(FusionParams):
    """`cross_attention`: Transformer blocks over the tokens of every modality (image cells,
    words, frames, columns) plus a fusion token, so words attend to image regions and back.

    Args:
        heads: attention heads per block; divides `dim`.
        layers: number of Transformer blocks.
        max_cells: the most cells of a feature map attended to; a larger map (an image's,
            an audio CNN's) is average-pooled down to it first (int8 keeps attention weights
            over a few dozen keys: on sort_of_clevr int8 top-1 agreement 0.76 over 100 cells, 0.83 over 25).

    Example:
        fusion: {type: cross_attention, dim: 64, heads: 4, layers: 2, max_cells: 25}
    """

    type: Literal["cross_attention"] = "cross_attention"
    dim: PositiveInt = 64
    heads: PositiveInt = 4
    layers: PositiveInt = 2
    max_cells: PositiveInt = 25

    _heads_divide_dim = pydantic.model_validator(mode="after")(heads_divide_dim)


@FUSIONS.register("cross_attention")
class CrossAttentionFusion(TokenFusionLayer):
    """Joint self-attention over all modalities' tokens plus a fusion token (a single-stream
    multimodal transformer, as VisualBERT or ViLT).

    Each modality's tokens are projected to `dim` and get a learned modality-type vector
    (positions come with the tokens: a CNN's cells carry their coordinates, text tokens
    their n-gram context). Padding and absent modalities are masked out of the keys with
    the bounded masks of `masked_softmax`; the fusion token is always a valid key. The
    fusion token's output and every pooled embedding go through Dense(dim) + ReLU.

    Args:
        dim: token width and width of the fused vector; divisible by `heads`.
        heads: attention heads per block.
        layers: number of Transformer blocks.
        max_cells: a feature map of more cells (an image's, an audio CNN's) is average-pooled
            down to at most this many first (cells merged k×k with their coordinates). Fewer
            keys: int8 attention weights over ~100 keys are a few quantisation steps each
            (measured on sort_of_clevr: int8 top-1 agreement 0.76 over 100 cells, 0.83 over 25), and the
            cost grows as the square of the tokens.
        dropout: dropout rate inside the blocks and on the fused vector.
        token_norm: LayerNorm each modality's projected tokens (`modality_token_norms`); a
            model saved before this argument existed has none and loads without them.

    Example:
        fused = CrossAttentionFusion(dim=64, heads=4, layers=2, max_cells=25, dropout=0.1, grids=[(10, 10), None])(
            {"embeddings": [img, txt], "tokens": [cells, words], "masks": [cell_mask, word_mask]}, presence)
    """

    def __init__(self, dim, heads, layers, max_cells, dropout, token_norm=True, **kwargs):
        super().__init__(dim=dim, dropout=dropout, **kwargs)
        self.token_norm = token_norm
        check_positive_int("heads", heads)
        check_positive_int("layers", layers)
        check_positive_int("max_cells", max_cells)
        self.max_cells = max_cells
        if dim % heads:
            raise ValueError(f"`dim` must be divisible by `heads`. Received: dim={dim}, heads={heads}")
        self.heads = heads
        self.layers = layers
        # === Layers ===
        from mmkeras.layers.transformer import TransformerBlock

        self.blocks = [TransformerBlock(dim, heads, ff_dim=2 * dim, dropout=dropout, name=f"block_{i}",
                                        dtype=self.dtype_policy) for i in range(layers)]
        self.output_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="output_norm", dtype=self.dtype_policy)
        self.head = keras.layers.Dense(dim, activation="relu", name="head", dtype=self.dtype_policy)

    def build(self, input_shape):
        shapes = token_shapes(input_shape)
        self.pools = [self.cell_pool(i, n, self.max_cells) for i, (n, _) in enumerate(shapes)]
        self.projections = []
        for i, (_, width) in enumerate(shapes):
            projection = keras.layers.Dense(self.dim, name=f"projection_{i}", dtype=self.dtype_policy)
            projection.build((None, None, width))
            self.projections.append(projection)
        self.token_norms = modality_token_norms(self, len(shapes), (None, None, self.dim))
        self.modality_embeddings = self.add_weight(name="modality_embeddings", shape=(len(shapes), self.dim),
                                                   initializer=keras.initializers.RandomNormal(stddev=0.02))
        # Unit scale, like the projected tokens, for the shared int8 scale (see AttentionFusion).
        self.fusion_token = self.add_weight(name="fusion_token", shape=(1, 1, self.dim),
                                            initializer=keras.initializers.RandomNormal(stddev=1.0))
        for block in self.blocks:  # its weights do not depend on the number of tokens
            block.build((None, None, self.dim))
        self.output_norm.build((None, self.dim))
        self.head.build((None, self.dim + self.pooled_width(input_shape)))
        super().build(input_shape)

    def fuse_tokens(self, embeddings, presence, tokens, masks, training):
        from mmkeras.layers.tokens import broadcast_over_batch  # TensorFlow: not at import (base.py)

        merged = [self.merge_cells(i, t, m, k) for i, (t, m, k) in enumerate(zip(tokens, masks, self.pools))]
        tokens, masks = [t for t, _ in merged], [m for _, m in merged]
        projected = [norm(p(t)) + self.modality_embeddings[i]
                     for i, (p, norm, t) in enumerate(zip(self.projections, self.token_norms, tokens))]
        fusion_token = broadcast_over_batch(self.fusion_token, projected[0])
        x = tf.concat([fusion_token, *projected], axis=1)
        key_mask = tf.concat([tf.ones_like(presence[:, :1]), *masks], axis=1)
        for block in self.blocks:
            x = block(x, padding_mask=key_mask, training=training)
        return self.head(tf.concat([self.output_norm(x[:, 0]), self.pooled(embeddings, presence)], axis=-1))

    def get_config(self):
        return {**super().get_config(), "heads": self.heads, "layers": self.layers, "max_cells": self.max_cells,
                "token_norm": self.token_norm}

    @classmethod
    def from_config(cls, config):
        return cls(**{"token_norm": False, **config})  # saved before token norms: as trained
