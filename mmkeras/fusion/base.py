"""The fusion plugin contract: one file per fusion, `mmkeras.fusion.<type>`.

A fusion file holds its parameters section (a `FusionParams` subclass registered in
`FUSION_PARAMS`: keys, defaults, ranges; validated when the config loads) and its layer,
registered in `FUSIONS` under the same name, whose constructor arguments are the section's
`params`.

The layer is written as a plain class on `FusionLayer` or `TokenFusionLayer`, naming
TensorFlow through `mmkeras.lazy`; `FUSIONS.get(name)` gives the tf_keras Layer class made
from it (`mmkeras.lazy.layer_class`). That is what lets the parameters and the layer share
one file: a class written on `keras.layers.Layer` needs TensorFlow (~4 s) when its module
loads, and the config reads the parameters, and reports a typo in them, before TensorFlow loads.

Also here: argument checks, presence masking, the token helpers the token fusions share.
"""
import dataclasses
import math

from mmkeras.config.base import PositiveInt, Rate, one_of, section
from mmkeras.lazy import keras, tf
from mmkeras.registry import LayerRegistry, Registry

FUSIONS = LayerRegistry("fusion")
FUSION_PARAMS = Registry("fusion")

# concat: on the demo 88.9% test accuracy vs 83.7% for attention (same settings), and the
# cheapest and most int8-friendly; the other types are a config line away.
DEFAULT_FUSION = "concat"


@section
class FusionParams:
    """What every fusion type has.

    Args:
        type: the fusion layer: concat | attention | gated | bilinear over the pooled
            embeddings; cross_attention | film | relation over the encoders' tokens.
        modality_dropout: in training, each present modality is dropped from a sample with
            this probability (never all of a sample's modalities), so the model learns to
            predict from any subset.
        dim: width of the fused vector.
        dropout: dropout rate on the fused vector.
    """

    type: str
    # 0.5 (was 0.1): each branch must also predict alone, so a fast-learning one (text) cannot
    # leave the others untrained: +1.0 to +3.4 points on 4 suite sets, level on 1, -1.4 F1 on
    # debian_tags (README "Quality", 2026-12-06).
    modality_dropout: Rate = 0.5
    dim: PositiveInt = 128
    dropout: Rate = 0.1

    @property
    def params(self):
        """The fusion layer's constructor arguments: every key but `type` and `modality_dropout`."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in ("type", "modality_dropout")}


def fusion_choice():
    """The type of the config's `fusion` field: any registered fusion, chosen by `type`."""
    return one_of([FUSION_PARAMS.get(n) for n in FUSION_PARAMS.names()], FUSION_PARAMS)


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


def per_modality(values):
    """A fusion's per-modality list, also when it holds one modality.

    A functional model saved with a one-element list of inputs to a layer gives the layer a
    bare tensor (and a bare shape to `build`) when it is loaded again: a single-modality run
    then failed to load for evaluate, export and predict.
    """
    if isinstance(values, (list, tuple)) and not _is_shape(values):
        return list(values)
    return [values]


def _is_shape(value):
    """A single shape: a TensorShape, or a list/tuple of dimensions (ints or None)."""
    return isinstance(value, tf.TensorShape) or (
        isinstance(value, (list, tuple)) and all(d is None or isinstance(d, int) for d in value))


def embedding_dims(input_shape):
    """Widths d_i of the M embeddings; `input_shape` is a list of shapes (lists after reload)."""
    return [int(tf.TensorShape(shape)[-1]) for shape in per_modality(input_shape)]


class FusionLayer:
    """Base of the fusion layers: zeroes absent embeddings, calls `fuse`, applies output dropout.

    A plain class: `FUSIONS.get(name)` adds `keras.layers.Layer` (see the module docstring).

    Subclasses implement `fuse(embeddings, presence, training) -> [B, dim]`; the embeddings they
    receive are already multiplied by their presence flag, so an absent one is all zeros.

    Args:
        dim: width of the fused vector.
        dropout: dropout rate on the fused vector (training only).

    Defaults for every argument live in the fusion's `FusionParams` section, the one place a
    config reads them from.

    Example:
        @FUSIONS.register("max")
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
        embeddings = per_modality(embeddings)
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

    def compute_output_shape(self, input_shape):
        # Keras cannot infer it (the layer takes the presence as a second argument); TF-MOT's
        # wrappers ask for it to build the fused vector's fake-quant range.
        return tf.TensorShape([None, self.dim])

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "dropout": self.dropout}


# Large for a LayerNorm (Keras: 1e-3, ours elsewhere 1e-6): a padded or absent modality's
# projected token is the projection's bias alone, zeros at initialisation, and its normalising
# factor 1/√(0 + ε) sets the calibrated int8 range of every token's factor: 1000 with 1e-6,
# where real tokens need 1-20; 32 with 1e-3. Tokens whose spread is above ~0.1 are normalised
# all the same.
TOKEN_NORM_EPSILON = 1e-3


def modality_token_norms(layer, count, shape):
    """One LayerNormalization per modality for its projected tokens (of `shape`), before the
    modalities share one sequence (`attention`, `cross_attention`); identities for a model
    saved before they existed (`layer.token_norm` False), which loads as it was trained.

    Why: the sequence is one tensor, so int8 TFLite gives every modality's tokens one scale.
    Unnormalised, the demo's projected text tokens had an RMS of 0.055 beside audio tokens
    of 1.1 (max 7.2): one int8 step was as large as a text token, the text branch read as
    zeros, and int8 agreed with Keras on 0.92 of the test records (README, Export).
    """
    if not layer.token_norm:
        return [lambda x: x] * count
    norms = [keras.layers.LayerNormalization(epsilon=TOKEN_NORM_EPSILON, name=f"token_norm_{i}",
                                             dtype=layer.dtype_policy) for i in range(count)]
    for norm in norms:
        norm.build(shape)
    return norms


def dense_over_parts(layer, parts):
    """`layer` (a built Dense) applied to the concatenation of `parts` ([B, w_i] each) without
    concatenating them: Σ_i part_i·W[rows of part i] + b, then the activation. The same weights
    and, in float, the same function (up to summation order).

    Why: int8 TFLite gives a concatenation one scale. A part of small range beside large
    features keeps few steps of it: the attention readout's position p, in [-1, 1] beside
    features up to 26, had 18, half a cell of the 10×10 map, and int8 answered sort_of_clevr's
    left/right questions at 0.906 against Keras's 0.985 (README, VQA section). Apart, each
    part is quantised on its own range before its product, and each part's rows of the kernel
    get their own per-channel scales.
    """
    kernel = tf.cast(layer.kernel, layer.compute_dtype)
    start, total = 0, None
    for part in parts:
        width = int(part.shape[-1])
        product = tf.matmul(part, kernel[start : start + width])
        total = product if total is None else total + product
        start += width
    if start != kernel.shape[0]:
        raise ValueError(f"The parts are {start} wide in all; `{layer.name}` takes {kernel.shape[0]}")
    if layer.use_bias:
        total = tf.nn.bias_add(total, tf.cast(layer.bias, layer.compute_dtype))
    return layer.activation(total)


def token_shapes(input_shape):
    """(N_i, d_i) of each modality's tokens; `input_shape` is a token fusion's input shapes."""
    return [tuple(int(s) for s in tf.TensorShape(shape)[1:]) for shape in per_modality(input_shape["tokens"])]


def object_modality(input_shape):
    """Index of the modality with the most tokens (the first on a tie): the objects or feature map."""
    counts = [n for n, _ in token_shapes(input_shape)]
    return counts.index(max(counts))


class TokenFusionLayer(FusionLayer):
    """Base of the fusions that see every modality's tokens, not only its pooled embedding.

    Called as `layer({"embeddings": [...], "tokens": [...], "masks": [...]}, presence)`:
    per modality its embedding [B, d_i], its tokens [B, N_i, t_i] and their mask [B, N_i]
    (1 = real token). Each mask is multiplied by the modality's presence and masked tokens
    are zeroed, so subclasses implement
    `fuse_tokens(embeddings, presence, tokens, masks, training) -> [B, dim]` with absent
    modalities and padding already out of every value; `masks` are float [B, N_i].

    Every token fusion's output layer also sees `pooled(...)`, every modality's pooled
    embedding and the presence flags (what `concat` fuses): the token-level reasoning adds
    to what the pooled vectors already give, and every encoder's projection gets a gradient.

    Args:
        dim, dropout: as `FusionLayer`.
        grids: per modality, (H, W) when its tokens are the cells of an H×W feature map
            (row-major), else None; set by the model from its encoders.
    """

    takes_tokens = True

    def __init__(self, dim, dropout, grids=None, **kwargs):
        super().__init__(dim=dim, dropout=dropout, **kwargs)
        self.grids = [tuple(g) if g else None for g in grids] if grids is not None else None

    def grid(self, i):
        return self.grids[i] if self.grids else None

    def cell_pool(self, i, n, max_cells):
        """k such that merging k×k cells brings modality `i`'s feature map (of `n` tokens) within
        `max_cells`; 1 when its tokens are no feature map or already few enough."""
        grid, k = self.grid(i), 1
        if grid is not None and grid[0] * grid[1] == n:
            while math.ceil(grid[0] / k) * math.ceil(grid[1] / k) > max_cells:
                k += 1
        return k

    def merge_cells(self, i, tokens, mask, k):
        """Average k×k cells of modality `i`'s feature map (their coordinates with them) → (tokens, mask)."""
        if k == 1:
            return tokens, mask
        rows, cols = self.grid(i)
        pool = lambda x: keras.backend.pool2d(tf.reshape(x, [-1, rows, cols, x.shape[-1]]), (k, k),  # noqa: E731
                                              strides=(k, k), padding="same", pool_mode="avg")
        cells, cell_mask = pool(tokens), pool(mask[:, :, None])
        n = cells.shape[1] * cells.shape[2]
        return tf.reshape(cells, [-1, n, tokens.shape[-1]]), tf.reshape(cell_mask, [-1, n])

    @staticmethod
    def pooled_width(input_shape):
        """Width of `pooled`: every embedding's plus one presence flag per modality."""
        dims = embedding_dims(input_shape["embeddings"])
        return sum(dims) + len(dims)

    @staticmethod
    def pooled_parts(embeddings, presence):
        """What `pooled` concatenates, in its order: every (presence-masked) embedding, then the
        presence flags (for `dense_over_parts`, which reads them without concatenating)."""
        return [*embeddings, presence]

    @classmethod
    def pooled(cls, embeddings, presence):
        """[B, Σd_i + M]: every (presence-masked) embedding and the presence flags."""
        return tf.concat(cls.pooled_parts(embeddings, presence), axis=-1)

    @staticmethod
    def condition_width(input_shape, target):
        """Width of `condition`: the embeddings of every modality but `target`, plus the presence flags."""
        dims = embedding_dims(input_shape["embeddings"])
        return sum(d for i, d in enumerate(dims) if i != target) + len(dims)

    @staticmethod
    def condition(embeddings, presence, target):
        """[B, ·]: what conditions modality `target`'s tokens: the other embeddings and the presence flags."""
        return tf.concat([e for i, e in enumerate(embeddings) if i != target] + [presence], axis=-1)

    def call(self, inputs, presence, training=None):
        embeddings, tokens, masks = (per_modality(inputs[key]) for key in ("embeddings", "tokens", "masks"))
        if not len(embeddings) == len(tokens) == len(masks):
            raise ValueError(f"Expected one embedding, token tensor and mask per modality. Received: "
                             f"{len(embeddings)} embeddings, {len(tokens)} token tensors, {len(masks)} masks")
        presence = tf.cast(presence, self.compute_dtype)
        embeddings = [x * presence[:, i : i + 1] for i, x in enumerate(embeddings)]
        masks = [tf.cast(m, self.compute_dtype) * presence[:, i : i + 1] for i, m in enumerate(masks)]
        # expand_dims, not m[:, :, None]: for a one-token modality the converter kept that
        # slice's RESHAPE, STRIDED_SLICE and the product float in int8 files.
        tokens = [t * tf.expand_dims(m, -1) for t, m in zip(tokens, masks)]
        fused = self.fuse_tokens(embeddings, presence, tokens, masks, training)
        return self.output_dropout(fused, training=training)

    def fuse_tokens(self, embeddings, presence, tokens, masks, training):
        raise NotImplementedError

    def get_config(self):
        return {**super().get_config(), "grids": self.grids}
