"""`homogeneous`: one repeated Transformer module for every modality.

Each modality is first turned into a token sequence [B, N, dim]; from there the
encoder is the same stack of identical blocks whatever the input was.
"""
import tf_keras as keras

from mmkeras.encoders import ENCODERS
from mmkeras.encoders.image_cnn import BN_MOMENTUM
from mmkeras.encoders.text_transformer import embed_tokens, encode_tokens
from mmkeras.errors import ConfigError


@keras.saving.register_keras_serializable(package="mmkeras")
class ColumnTokens(keras.layers.Layer):
    """Numeric [B, columns] → [B, columns, dim]: column c becomes value_c × (its learned vector w_c).

    The per-column offset of the FT-Transformer tokenizer is the position embedding
    the encoder adds next, so it is not duplicated here.

    Args:
        dim: width of each token.

    Example:
        tokens = ColumnTokens(dim=64)(numeric)  # [B, 5] → [B, 5, 64]
    """

    def __init__(self, dim, **kwargs):
        super().__init__(**kwargs)
        self.dim = dim

    def build(self, input_shape):
        self.column_vectors = self.add_weight(name="column_vectors", shape=(input_shape[-1], self.dim))
        super().build(input_shape)

    def call(self, inputs):
        return inputs[:, :, None] * self.column_vectors

    def get_config(self):
        return {**super().get_config(), "dim": self.dim}


def _image_tokens(features, spec, name, dim, patch_size):
    height, width = features.shape[1:3]
    if height < patch_size or width < patch_size:
        raise ConfigError(
            f"inputs.{name}.encoder: patch_size={patch_size} is larger than the {height}x{width} image"
        )
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
def homogeneous(
    features, spec, name, *, dim=64, heads=2, blocks=2, ff_dim=128, dropout=0.1, patch_size=8, share_weights=False
):
    """Any modality → tokens → positions → `blocks` identical TransformerBlocks → mean → [B, dim].

    Tokens: image = non-overlapping patch_size×patch_size patches; text = token
    embeddings (padding masked); audio = one token per frame; numeric = one token per column.

    Args:
        dim: token width (divisible by `heads`).
        heads: attention heads per block.
        blocks: depth of the stack.
        ff_dim: hidden width of each block's feed-forward network.
        dropout: dropout rate in the blocks and on the tokens.
        patch_size: side of an image patch in pixels (image only).
        share_weights: True = one block applied `blocks` times (ALBERT-style), so the
            parameter count does not depend on depth.

    Example:
        encoder: {type: homogeneous, dim: 64, blocks: 4, share_weights: true}
    """
    tokenize = _TOKENIZERS[spec.modality]
    tokens, mask = tokenize(features, spec, name, dim, patch_size)
    return encode_tokens(
        tokens, mask, name, heads=heads, blocks=blocks, ff_dim=ff_dim, dropout=dropout, share_weights=share_weights
    )
