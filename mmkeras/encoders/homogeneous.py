"""`homogeneous`: one repeated Transformer module for every modality.

Each modality is first turned into a token sequence [B, N, dim]; from there the
encoder is the same stack of identical blocks whatever the input was.
"""
import tf_keras as keras

from mmkeras.encoders import ENCODERS
from mmkeras.encoders.image_cnn import BN_MOMENTUM
from mmkeras.encoders.text_transformer import embed_tokens, encode_tokens


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
    # The config checks that patch_size fits the image (HomogeneousParams.check_input).
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

    Tokens: image = non-overlapping patch_size×patch_size patches; text = token
    embeddings (padding masked); audio = one token per frame; numeric = one token per column.

    Args:
        params: `mmkeras.config.encoders.HomogeneousParams`.
    """
    tokenize = _TOKENIZERS[spec.modality]
    tokens, mask = tokenize(features, spec, name, params.dim, params.patch_size)
    return encode_tokens(tokens, mask, name, params, blocks=params.blocks, share_weights=params.share_weights)
