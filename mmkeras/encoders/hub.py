"""`hub`: a pretrained TF Hub / SavedModel encoder, optionally fine-tuned, with an optional projection."""
import tensorflow_hub
import tf_keras as keras

from mmkeras.encoders import ENCODERS
from mmkeras.errors import ConfigError


@keras.saving.register_keras_serializable(package="mmkeras")
class HubLayer(tensorflow_hub.KerasLayer):
    """`tensorflow_hub.KerasLayer` registered with Keras, so `.keras` files holding it load with safe_mode=True.

    On load the module is read again from `handle` (which must still resolve), then the
    weights saved in the `.keras` file (fine-tuned or not) overwrite it.

    Example:
        HubLayer("/models/mobilenet_feature_vector", trainable=False)(images)
    """

    def __init__(self, handle, **kwargs):
        # A SavedModel's signature fixes its input dtypes: never autocast to float16.
        kwargs.setdefault("dtype", "float32")
        super().__init__(handle, **kwargs)


@ENCODERS.register("hub")
def hub(features, spec, name, params):
    """Features → a TF2 SavedModel (TF Hub format) → optional Dense(dim) → [B, d].

    The module must take the modality's features as they are (image float [0, 1]
    [B, H, W, C], numeric [B, n], audio log-mel [B, frames, n_mels], text int ids) and
    return [B, d], or a dict holding such a tensor under `output_key`.

    Args:
        params: `mmkeras.config.encoders.HubParams`.
    """
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
