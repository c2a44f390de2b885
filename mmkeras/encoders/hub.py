"""`hub`: a pretrained TF Hub / SavedModel encoder, optionally fine-tuned, with an optional projection."""
from typing import ClassVar, Literal, Optional

from mmkeras.config.base import Bool, PositiveInt, registered
from mmkeras.encoders.base import ENCODER_PARAMS, ENCODERS, EncoderParams
from mmkeras.errors import ConfigError
from mmkeras.lazy import keras


@registered(ENCODER_PARAMS)
class HubParams(EncoderParams):
    """`hub`: a pretrained TF Hub / SavedModel module, optionally fine-tuned and projected.

    Args:
        handle: TF Hub URL or local SavedModel directory (relative paths: against the config file).
        trainable: fine-tune the module's weights (false = frozen feature extractor).
        output_key: key of the embedding when the module returns a dict.
        dim: size of a Dense projection after the module; null = its output as is.

    Example:
        encoder: {type: hub, handle: models/image_feature_vector, trainable: false, dim: 128}
    """

    modalities: ClassVar[tuple] = ("image", "numeric", "audio")
    type: Literal["hub"] = "hub"
    handle: str
    trainable: Bool = False
    output_key: Optional[str] = None
    dim: Optional[PositiveInt] = None


@ENCODERS.register("hub")
def hub(features, spec, name, params):
    """Features → a TF2 SavedModel (TF Hub format) → optional Dense(dim) → [B, d].

    The module must take the modality's features as they are (image float [0, 1]
    [B, H, W, C], numeric [B, n], audio log-mel [B, frames, n_mels], text int ids) and
    return [B, d], or a dict holding such a tensor under `output_key`.

    Args:
        params: `HubParams`.
    """
    from mmkeras.layers.hub import HubLayer

    where = f"inputs.{name}.encoder: module '{params.handle}'"
    try:
        x = HubLayer(params.handle, trainable=params.trainable, output_key=params.output_key,
                     name=f"{name}_hub")(features)
    except (OSError, ValueError) as err:  # missing path, wrong input shape/dtype, unknown output_key
        raise ConfigError(f"{where}: {str(err).strip().splitlines()[0]}") from err
    if isinstance(x, dict):
        raise ConfigError(f"{where} returns a dict: set output_key to one of: {', '.join(sorted(x))}")
    if x.shape.rank != 2:
        raise ConfigError(f"{where} returns shape {x.shape}, expected [batch, d]")
    if params.dim:
        x = keras.layers.Dense(params.dim, name=f"{name}_projection")(x)
    return x
