"""`relation` fusion: a relation network over pairs of one modality's tokens, conditioned on the
other modalities (Santoro et al. 2017)."""
from typing import Literal

from mmkeras.config.base import PositiveInt, registered
from mmkeras.fusion.base import (FUSIONS, FUSION_PARAMS, FusionParams, TokenFusionLayer,
                                 check_positive_int, object_modality, token_shapes)
from mmkeras.lazy import keras, tf


@registered(FUSION_PARAMS)
class RelationParams(FusionParams):
    """`relation`: a relation network over every pair of the tokens of the modality with the
    most tokens, conditioned on the other modalities (Santoro et al. 2017).

    Args:
        units: width of the pair function g's layers.
        layers: depth of g.
        max_objects: the most tokens paired; a larger feature map is average-pooled down
            to it (the pairs grow as its square).

    Example:
        fusion: {type: relation, units: 128, layers: 3, max_objects: 25}
    """

    type: Literal["relation"] = "relation"
    units: PositiveInt = 128
    layers: PositiveInt = 3
    max_objects: PositiveInt = 25


def pair_function(units, layers, object_width, condition_width, policy, prefix="g"):
    """The relation network's g, built: (left, right, condition, hidden layers) for `mean_over_pairs`.

    g's first layer is linear in (o_i, o_j, q), so it is kept as three Dense layers applied
    once per object (left, right) and once per sample (condition), then broadcast over the
    pairs: N² additions instead of N² matrix products.
    """
    left = keras.layers.Dense(units, use_bias=False, name=f"{prefix}_left", **policy)
    right = keras.layers.Dense(units, use_bias=False, name=f"{prefix}_right", **policy)
    for layer in (left, right):
        layer.build((None, None, object_width))
    condition = keras.layers.Dense(units, name=f"{prefix}_condition", **policy)
    condition.build((None, condition_width))
    hidden = []
    for i in range(1, layers):
        layer = keras.layers.Dense(units, activation="relu", name=f"{prefix}_{i}", **policy)
        layer.build((None, None, None, units))
        hidden.append(layer)
    return left, right, condition, hidden


def mean_over_pairs(objects, mask, condition, g):
    """Mean over the pairs (i, j) of real objects of g(o_i, o_j, q) → [B, units].

    Args:
        objects: [B, N, width]; mask: [B, N] (1 = real); condition: q, [B, ·].
        g: the layers `pair_function` built.
    """
    left, right, first_condition, hidden = g
    q = first_condition(condition)  # [B, units]
    pairs = tf.nn.relu(left(objects)[:, :, None] + right(objects)[:, None] + q[:, None, None])  # [B, N, N, units]
    for layer in hidden:
        pairs = layer(pairs)
    pair_mask = mask[:, :, None] * mask[:, None]  # [B, N, N]
    total = tf.reduce_sum(pairs * pair_mask[..., None], axis=[1, 2])
    count = tf.reduce_sum(pair_mask, axis=[1, 2])[:, None]
    return total / tf.maximum(count, 1.0)


@FUSIONS.register("relation")
class RelationFusion(TokenFusionLayer):
    """RN(O, q) = f( mean over pairs (i, j) of g(o_i, o_j, q), every pooled embedding ), with O the
    tokens of the modality with the most tokens (an image's cells, with their coordinates)
    and q the other modalities' embeddings.

    g's first layer is linear in (o_i, o_j, q) (`pair_function`). A feature map of more
    than `max_objects` cells is average-pooled first (cells merged k×k, their coordinates
    averaged with them), since the pairs grow as the square of the cells. Masked tokens take no part in a pair; a mean rather than the paper's sum keeps
    the scale independent of how many objects are real.

    Args:
        dim: width of f's layers and of the fused vector.
        units: width of g's layers.
        layers: depth of g.
        max_objects: most tokens paired (feature maps are pooled down to it).
        dropout: dropout rate in f and on the fused vector.

    Example:
        fused = RelationFusion(dim=128, units=128, layers=3, max_objects=25, dropout=0.1, grids=[(10, 10), None])(
            {"embeddings": [img, txt], "tokens": [cells, words], "masks": [cell_mask, word_mask]}, presence)
    """

    def __init__(self, dim, units, layers, max_objects, dropout, **kwargs):
        super().__init__(dim=dim, dropout=dropout, **kwargs)
        for name, value in (("units", units), ("layers", layers), ("max_objects", max_objects)):
            check_positive_int(name, value)
        self.units, self.layers, self.max_objects = units, layers, max_objects

    def build(self, input_shape):
        shapes = token_shapes(input_shape)
        self.target = object_modality(input_shape)
        n, width = shapes[self.target]
        self.pool = self.cell_pool(self.target, n, self.max_objects)
        condition_width = self.condition_width(input_shape, self.target)
        policy = dict(dtype=self.dtype_policy)
        self.first_left, self.first_right, self.first_condition, self.g_layers = pair_function(
            self.units, self.layers, width, condition_width, policy)
        self.f_hidden = keras.layers.Dense(self.dim, activation="relu", name="f_hidden", **policy)
        self.f_hidden.build((None, self.units + self.pooled_width(input_shape)))
        self.f_dropout = keras.layers.Dropout(self.dropout, **policy)
        self.f_output = keras.layers.Dense(self.dim, activation="relu", name="f_output", **policy)
        self.f_output.build((None, self.dim))
        super().build(input_shape)

    def fuse_tokens(self, embeddings, presence, tokens, masks, training):
        condition = self.condition(embeddings, presence, self.target)
        objects, mask = self.merge_cells(self.target, tokens[self.target], masks[self.target], self.pool)
        relations = mean_over_pairs(objects, mask, condition,
                                    (self.first_left, self.first_right, self.first_condition, self.g_layers))
        x = self.f_hidden(tf.concat([relations, self.pooled(embeddings, presence)], axis=-1))
        return self.f_output(self.f_dropout(x, training=training))

    def get_config(self):
        return {**super().get_config(), "units": self.units, "layers": self.layers, "max_objects": self.max_objects}
