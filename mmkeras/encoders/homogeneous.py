"""`homogeneous`: one repeated Transformer module for every modality.

Each modality is first turned into a token sequence [B, N, dim]; from there the
encoder is the same stack of identical blocks whatever the input was.
"""
import dataclasses
import math

import tf_keras as keras

from mmkeras.encoders import ENCODERS
from mmkeras.encoders.image_cnn import BN_MOMENTUM
from mmkeras.encoders.text_transformer import embed_tokens, encode_tokens
from mmkeras.layers.tokens import ColumnTokens


def _patch_grid(image_shape, patch_size):
    """(rows, columns) of patches: the last partial row and column count (they are zero-padded)."""
    return tuple(math.ceil(side / patch_size) for side in image_shape[1:3])


def _image_tokens(features, spec, name, dim, patch_size):
    # The config checks that patch_size fits the image (HomogeneousParams.check_input).
    # Zero-pad bottom and right to whole patches: a strided conv would drop the last
    # H mod patch_size rows and columns (75 px with 8 px patches: 3 of each).
    rows, cols = _patch_grid(features.shape, patch_size)
    pad_h, pad_w = rows * patch_size - features.shape[1], cols * patch_size - features.shape[2]
    if pad_h or pad_w:
        features = keras.layers.ZeroPadding2D(((0, pad_h), (0, pad_w)), name=f"{name}_pad")(features)
    # Non-overlapping patches: a conv whose stride equals its kernel is a per-patch Dense.
    patches = keras.layers.Conv2D(dim, patch_size, strides=patch_size, name=f"{name}_patches")(features)
    return keras.layers.Reshape((-1, dim), name=f"{name}_patch_tokens")(patches), None


def _text_tokens(features, spec, name, dim, patch_size):
    return embed_tokens(features, spec, name, dim)


def _audio_tokens(features, spec, name, dim, patch_size):
    # Standardise each mel band first: raw log-mel sits around -14..5 with per-band offsets.
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_input_norm")(features)
    return keras.layers.Dense(dim, name=f"{name}_frame_tokens")(x), None


def _numeric_tokens(features, spec, name, dim, patch_size):
    return ColumnTokens(dim, name=f"{name}_column_tokens")(features), None


_TOKENIZERS = {"image": _image_tokens, "text": _text_tokens, "audio": _audio_tokens, "numeric": _numeric_tokens}


@ENCODERS.register("homogeneous")
def homogeneous(features, spec, name, params):
    """Any modality → tokens → positions → `blocks` identical TransformerBlocks → mean → [B, dim].

    Tokens: image = non-overlapping patch_size×patch_size patches (the image zero-padded
    to whole patches); text = token
    embeddings (padding masked); audio = one token per frame; numeric = one token per column.

    Args:
        params: `mmkeras.config.encoders.HomogeneousParams`.
    """
    tokenize = _TOKENIZERS[spec.modality]
    tokens, mask = tokenize(features, spec, name, params.dim, params.patch_size)
    encoded = encode_tokens(tokens, mask, name, params, blocks=params.blocks, share_weights=params.share_weights)
    if spec.modality == "image":  # patch tokens are row-major cells, like a CNN's
        encoded = dataclasses.replace(encoded, grid=_patch_grid(features.shape, params.patch_size))
    return encoded
