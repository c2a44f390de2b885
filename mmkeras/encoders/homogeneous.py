"""`homogeneous`: one repeated Transformer module for every modality.

Each modality is first turned into a token sequence [B, N, dim] by its own plugin
(`mmkeras.modalities`); from there the encoder is the same stack of identical blocks
whatever the input was, so it takes every input type.
"""
import dataclasses

from mmkeras.encoders import ENCODERS
from mmkeras.encoders.text_transformer import encode_tokens
from mmkeras.modalities import MODALITIES


@ENCODERS.register("homogeneous")
def homogeneous(features, spec, name, params):
    """Any modality → tokens → positions → `blocks` identical TransformerBlocks → mean → [B, dim].

    Each modality makes its own tokens (its plugin's `tokens`): image = non-overlapping
    patch_size×patch_size patches (zero-padded to whole patches); text = token embeddings
    (padding masked); audio = one token per frame; numeric = one token per column;
    timeseries = one token per patch_size samples.

    Args:
        params: `mmkeras.config.encoders.HomogeneousParams`.
    """
    tokens, mask, grid = MODALITIES.get(spec.modality).tokens(features, spec, name, params.dim, params)
    encoded = encode_tokens(tokens, mask, name, params, blocks=params.blocks, share_weights=params.share_weights)
    return dataclasses.replace(encoded, grid=grid) if grid else encoded
