"""`film` fusion: the other modalities' embeddings condition one modality's feature map
(Feature-wise Linear Modulation, Perez et al. 2018)."""
import math
from typing import Literal

from mmkeras.config.base import PositiveInt, registered
from mmkeras.fusion.base import (FUSIONS, FUSION_PARAMS, FusionParams, TokenFusionLayer,
                                 check_positive_int, dense_over_parts, object_modality, token_shapes)
from mmkeras.fusion.relation import mean_over_pairs, pair_function
from mmkeras.lazy import keras, tf


# Depth of the relation readout's g: its first layer and one hidden layer (the `relation`
# fusion's own g is as deep as its `layers`).
RELATION_DEPTH = 2
READOUTS = ("max", "relation", "attention")


@registered(FUSION_PARAMS)
class FilmParams(FusionParams):
    """`film`: the other modalities' embeddings scale and shift, channel by channel, the
    feature map of the modality with the most tokens (FiLM, Perez et al. 2018).

    Args:
        blocks: FiLM residual blocks.
        readout: how the conditioned cells become one vector: "max" over the cells;
            "relation": the max and a relation network over pairs of cells (with their
            coordinates), which compares one object with every other (closest, furthest);
            "attention": the max and two attention glimpses, the second over every cell's
            offset from where the first looked, plus a mean (count, closest, furthest).
        max_objects: with "relation", the most cells paired (a larger map is average-pooled).

    Example:
        fusion: {type: film, dim: 64, blocks: 2, readout: relation}
    """

    type: Literal["film"] = "film"
    dim: PositiveInt = 64
    blocks: PositiveInt = 2
    readout: Literal["max", "relation", "attention"] = "max"
    max_objects: PositiveInt = 25


@FUSIONS.register("film")
class FilmFusion(TokenFusionLayer):
    """FiLM residual blocks over the tokens of the modality with the most tokens (the image's
    feature-map cells, say), each block's features scaled and shifted per channel by
    (γ, β) computed from the other modalities' embeddings; then max over the cells.

    Block (as in the FiLM paper): 1×1 conv + ReLU → 3×3 conv (a per-token Dense when the
    tokens are not a feature map) → BatchNorm without affine → (1 + γ)·x + β → ReLU → + input.
    The max-pooled cells and every pooled embedding go through Dense(dim) + ReLU, so a
    sample whose feature map is absent still gets an answer from the rest. With
    `readout="relation"` a relation network (`mean_over_pairs`, g `dim` wide) over pairs of
    the conditioned cells, each with its grid coordinates again, joins the max: a
    question's object is already picked out in the cells by FiLM, and g compares it with
    every other cell, where the max alone keeps no positions to compare.

    With `readout="attention"`, two glimpses (Perez et al.'s cells read the way stacked
    attention reads them): glimpse 1 is a softmax over the conditioned cells (each cell's
    own score plus a query from the condition against the cell's key), giving the
    attended cell's features r₁ and grid position p; then every cell i becomes
    h_i = ReLU(Dense(ReLU((1 + γ)·(W x_i + U [c_i − p, (c_i − p)²] + V r₁) + β))), so its
    squared distance from p is a linear function of h_i's inputs and the condition's (γ, β)
    choose what is compared; glimpse 2 is a softmax over a score of h plus κ·d_i², d_i cell i's
    distance from p in cells and κ a linear function of the condition (its sign picks closest or
    furthest); the masked mean of h joins (a max cannot count). Read: [max x, r₁, p,
    Σ softmax·h, mean h]. Without a feature map (tokens that have no grid) the offsets and
    the distance are left out.

    Args:
        dim: channels of the blocks and width of the fused vector.
        blocks: number of FiLM residual blocks.
        readout: "max", "relation" or "attention".
        max_objects: with "relation", the most cells paired.
        dropout: dropout rate on the fused vector.
        glimpse_distance: with "attention" over a feature map, glimpse 2's score also gets
            κ(condition)·(squared distance from p in cells²); a model saved before this
            argument existed has no κ and loads without it.

    Example:
        fused = FilmFusion(dim=64, blocks=2, dropout=0.1, grids=[(5, 5), None])(
            {"embeddings": [img, txt], "tokens": [cells, words], "masks": [cell_mask, word_mask]}, presence)
    """

    def __init__(self, dim, blocks, dropout, readout="max", max_objects=25, glimpse_distance=True, **kwargs):
        super().__init__(dim=dim, dropout=dropout, **kwargs)
        check_positive_int("blocks", blocks)
        check_positive_int("max_objects", max_objects)
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {', '.join(READOUTS)}, got {readout!r}")
        self.blocks, self.readout, self.max_objects = blocks, readout, max_objects
        self.glimpse_distance = glimpse_distance

    def build(self, input_shape):
        shapes = token_shapes(input_shape)
        self.target = object_modality(input_shape)
        grid = self.grid(self.target)
        n, width = shapes[self.target]
        self.spatial = grid is not None and grid[0] * grid[1] == n
        condition_width = self.condition_width(input_shape, self.target)
        policy = dict(dtype=self.dtype_policy)
        self.stem = keras.layers.Dense(self.dim, activation="relu", name="stem", **policy)
        self.stem.build((None, n, width))
        # Parallel lists of layers, not a list of tuples: the .keras weight saving walks lists
        # of layers but restores tuples in another order.
        self.pointwise, self.mixing, self.norms, self.films = [], [], [], []
        for b in range(self.blocks):
            pointwise = keras.layers.Dense(self.dim, activation="relu", name=f"block_{b}_conv1", **policy)
            pointwise.build((None, n, self.dim))
            if self.spatial:
                mixing = keras.layers.Conv2D(self.dim, 3, padding="same", use_bias=False, name=f"block_{b}_conv2", **policy)
                mixing.build((None, *grid, self.dim))
            else:
                mixing = keras.layers.Dense(self.dim, use_bias=False, name=f"block_{b}_conv2", **policy)
                mixing.build((None, n, self.dim))
            norm = keras.layers.BatchNormalization(center=False, scale=False, momentum=0.9, name=f"block_{b}_bn", **policy)
            norm.build((None, n, self.dim))
            film = keras.layers.Dense(2 * self.dim, name=f"block_{b}_film", **policy)
            film.build((None, condition_width))
            for layers, layer in zip((self.pointwise, self.mixing, self.norms, self.films), (pointwise, mixing, norm, film)):
                layers.append(layer)
        read_width = self.dim
        if self.readout == "relation":
            self.pool = self.cell_pool(self.target, n, self.max_objects)
            coordinates = 0
            if self.spatial:  # the cells get their (row, column) again, whatever the encoder's tokens carry
                from mmkeras.layers.tokens import GridTokens

                self.cells_with_positions = GridTokens(name="relation_cells", **policy)
                coordinates = 2
            # Attributes, not one tuple: .keras saving restores tuples of layers in another order.
            self.relation_left, self.relation_right, self.relation_condition, self.relation_hidden = pair_function(
                self.dim, RELATION_DEPTH, self.dim + coordinates, condition_width, policy, prefix="relation_g")
            read_width += self.dim
        if self.readout == "attention":
            read_width += self.build_glimpses(n, grid, condition_width, policy)
        self.head = keras.layers.Dense(self.dim, activation="relu", name="head", **policy)
        self.head.build((None, read_width + self.pooled_width(input_shape)))
        super().build(input_shape)

    def fuse_tokens(self, embeddings, presence, tokens, masks, training):
        condition = self.condition(embeddings, presence, self.target)
        mask = masks[self.target][:, :, None]
        x = self.stem(tokens[self.target]) * mask
        n = x.shape[1]
        for pointwise, mixing, norm, film in zip(self.pointwise, self.mixing, self.norms, self.films):
            h = pointwise(x)
            if self.spatial:
                h = tf.reshape(mixing(tf.reshape(h, [-1, *self.grid(self.target), self.dim])), [-1, n, self.dim])
            else:
                h = mixing(h)
            gamma, beta = tf.split(film(condition), 2, axis=-1)
            h = tf.nn.relu((1.0 + gamma[:, None]) * norm(h, training=training) + beta[:, None])
            x = (x + h) * mask
        # x ≥ 0 (sums of ReLUs), zero where masked: a plain max is the masked max.
        read = [tf.reduce_max(x, axis=1)]
        if self.readout == "relation":
            cells = self.cells_with_positions(tf.reshape(x, [-1, *self.grid(self.target), self.dim])) if self.spatial else x
            objects, object_mask = self.merge_cells(self.target, cells, masks[self.target], self.pool)
            g = (self.relation_left, self.relation_right, self.relation_condition, self.relation_hidden)
            read.append(mean_over_pairs(objects, object_mask, condition, g))
        if self.readout == "attention":
            read.extend(self.glimpses(x, masks[self.target], condition))
        return dense_over_parts(self.head, [*read, *self.pooled_parts(embeddings, presence)])

    def build_glimpses(self, n, grid, condition_width, policy):
        """The attention readout's layers; returns the width it adds to the head's input."""
        from mmkeras.layers.tokens import grid_coordinates
        from mmkeras.layers.transformer import MaskedMeanPooling

        def dense(units, name, input_shape, **kwargs):
            layer = keras.layers.Dense(units, name=name, **kwargs, **policy)
            layer.build(input_shape)
            return layer

        cells, condition = (None, n, self.dim), (None, condition_width)
        self.first_score = dense(1, "glimpse_1_score", cells)
        # A query from the condition against a key per cell, beside the cells' own score: the
        # question can then point at its object directly, not only through γ and β. Not shown
        # to learn faster: the README's sort_of_clevr section has the runs with and without it.
        self.first_query = dense(self.dim, "glimpse_1_query", condition)
        self.first_key = dense(self.dim, "glimpse_1_key", cells, use_bias=False)
        self.relative_cells = dense(self.dim, "glimpse_2_cells", cells, use_bias=False)
        self.relative_read = dense(self.dim, "glimpse_2_read", (None, self.dim))
        self.relative_film = dense(2 * self.dim, "glimpse_2_film", condition)
        self.relative_hidden = dense(self.dim, "glimpse_2_hidden", cells, activation="relu")
        self.second_score = dense(1, "glimpse_2_score", cells)
        self.cell_mean = MaskedMeanPooling(name="glimpse_2_mean", **policy)
        if not self.spatial:
            return 3 * self.dim
        # Only where the tokens are the map's cells: the coordinates are the map's own grid.
        self.coordinates = tf.constant(grid_coordinates(*grid), dtype=self.compute_dtype)
        self.relative_offsets = dense(self.dim, "glimpse_2_offsets", (None, n, 4), use_bias=False)
        if self.glimpse_distance:
            # Glimpse 2's score also gets κ(condition) · (squared distance from p, in cells²): picking
            # the closest or the furthest object needs the score to fall or rise steeply with
            # distance, which through h's layers at their initial scale takes many steps to learn
            # (objects are 2 cells apart or more: one cell² must move the softmax). Zero at first.
            self.cell_units = tf.constant([(grid[0] - 1) / 2, (grid[1] - 1) / 2], dtype=self.compute_dtype)
            self.distance_weight = dense(1, "glimpse_2_distance", condition, kernel_initializer="zeros")
        return 3 * self.dim + 2  # + the position p

    def glimpses(self, x, mask, condition):
        """[r₁, p (with a grid), Σ softmax·h, mean h] of the attention readout (see the class docstring)."""
        from mmkeras.layers.masking import masked_softmax

        query = self.first_query(condition)[:, None] / math.sqrt(self.dim)
        scores = self.first_score(x)[..., 0] + tf.reduce_sum(self.first_key(x) * query, axis=-1)
        first = masked_softmax(scores, mask)[..., None]  # [B, n, 1]
        read = tf.reduce_sum(first * x, axis=1)
        reads = [read]
        h = self.relative_cells(x) + self.relative_read(read)[:, None]
        if self.spatial:
            position = tf.reduce_sum(first * self.coordinates, axis=1)  # [B, 2]
            offsets = self.coordinates - position[:, None]
            h += self.relative_offsets(tf.concat([offsets, offsets * offsets], axis=-1))
            reads.append(position)
        gamma, beta = tf.split(self.relative_film(condition), 2, axis=-1)
        h = self.relative_hidden(tf.nn.relu((1.0 + gamma[:, None]) * h + beta[:, None])) * mask[:, :, None]
        scores = self.second_score(h)[..., 0]
        if self.spatial and self.glimpse_distance:
            cells = offsets * self.cell_units
            # x·x, not tf.square: int8 TFLite has a MUL kernel and no SQUARE one (a float island).
            scores += self.distance_weight(condition) * tf.reduce_sum(cells * cells, axis=-1)
        second = masked_softmax(scores, mask)[..., None]
        return [*reads, tf.reduce_sum(second * h, axis=1), self.cell_mean(h, padding_mask=mask)]

    def get_config(self):
        return {**super().get_config(), "blocks": self.blocks, "readout": self.readout, "max_objects": self.max_objects,
                "glimpse_distance": self.glimpse_distance}

    @classmethod
    def from_config(cls, config):
        return cls(**{"glimpse_distance": False, **config})  # saved before the distance term: as trained
