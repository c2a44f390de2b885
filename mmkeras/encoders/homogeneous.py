"""`homogeneous`: one repeated Transformer module for every modality.

Each modality is first turned into a token sequence [B, N, dim] by its own plugin
(`mmkeras.modalities`); from there the encoder is the same stack of identical blocks
whatever the input was, so it takes every input type.
"""
import dataclasses
from typing import ClassVar, Literal

from mmkeras.config.base import Bool, PositiveInt, registered
from mmkeras.encoders.base import ENCODER_PARAMS, ENCODERS, EVERY_MODALITY
from mmkeras.encoders.transformer import AttentionStackParams, encode_tokens


@registered(ENCODER_PARAMS)
class HomogeneousParams(AttentionStackParams):
    """`homogeneous`: any modality as tokens through `blocks` identical Transformer blocks.

    Args:
        blocks: depth of the stack.
        patch_size: side of an image patch in pixels; samples per time-series token.
        share_weights: true = one block applied `blocks` times (ALBERT-style), so the
            parameter count does not depend on depth.

    Example:
        encoder: {type: homogeneous, dim: 64, blocks: 4, share_weights: true}
    """

    modalities: ClassVar[tuple] = (EVERY_MODALITY,)
    type: Literal["homogeneous"] = "homogeneous"
    blocks: PositiveInt = 2
    patch_size: PositiveInt = 8
    share_weights: Bool = False

    def check_input(self, inp):
        if inp.type == "image" and self.patch_size > min(inp.size):
            raise ValueError(f"encoder patch_size={self.patch_size} is larger than the "
                             f"{inp.size[0]}x{inp.size[1]} image")


@ENCODERS.register("homogeneous")
def homogeneous(features, spec, name, params):
    """Any modality → tokens → positions → `blocks` identical TransformerBlocks → mean → [B, dim].

    Each modality makes its own tokens (its plugin's `tokens`): image = non-overlapping
    patch_size×patch_size patches (zero-padded to whole patches); text = token embeddings
    (padding masked); audio = one token per frame; numeric = one token per column;
    timeseries = one token per patch_size samples.

    Args:
        params: `HomogeneousParams`.
    """
    from mmkeras.modalities import MODALITIES

    tokens, mask, grid = MODALITIES.get(spec.modality).tokens(features, spec, name, params.dim, params)
    encoded = encode_tokens(tokens, mask, name, params, blocks=params.blocks, share_weights=params.share_weights)
    return dataclasses.replace(encoded, grid=grid) if grid else encoded
