"""Every fusion type's parameters (`fusion`), typed: `type`, `modality_dropout` and its layer's arguments.

The single source of each fusion's keys, defaults and ranges: `mmkeras.model.build_fusion`
passes `params` to the layer registered under the same name in `mmkeras.fusion`. They live
apart from the layers because those import TensorFlow, and the config is checked before
TensorFlow loads.
"""
import dataclasses
from typing import Literal

import pydantic

from mmkeras.config.base import PositiveInt, Rate, heads_divide_dim, one_of, registered, section
from mmkeras.registry import Registry

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


@registered(FUSION_PARAMS)
class ConcatParams(FusionParams):
    """`concat`: masked embeddings + presence vector → Dense(dim) + ReLU.

    Example:
        fusion: {type: concat, dim: 128}
    """

    type: Literal["concat"] = "concat"


@registered(FUSION_PARAMS)
class GatedParams(FusionParams):
    """`gated`: gated multimodal unit, softmax gates over the present modalities.

    Example:
        fusion: {type: gated, dim: 64}
    """

    type: Literal["gated"] = "gated"


@registered(FUSION_PARAMS)
class BilinearParams(FusionParams):
    """`bilinear`: low-rank multimodal fusion, a product of per-modality rank-R factors.

    Args:
        rank: number of rank-1 terms summed.

    Example:
        fusion: {type: bilinear, dim: 64, rank: 4}
    """

    type: Literal["bilinear"] = "bilinear"
    rank: PositiveInt = 4


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


@registered(FUSION_PARAMS)
class FilmParams(FusionParams):
    """`film`: the other modalities' embeddings scale and shift, channel by channel, the
    feature map of the modality with the most tokens (FiLM, Perez et al. 2018).

    Args:
        blocks: FiLM residual blocks.

    Example:
        fusion: {type: film, dim: 64, blocks: 2}
    """

    type: Literal["film"] = "film"
    dim: PositiveInt = 64
    blocks: PositiveInt = 2


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


# The type of the config's `fusion` field: any registered fusion, chosen by `type`.
FUSION = one_of([FUSION_PARAMS.get(n) for n in FUSION_PARAMS.names()], FUSION_PARAMS)
