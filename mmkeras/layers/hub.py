"""`HubLayer`: the `hub` encoder's TF Hub module as a registered Keras layer (`mmkeras.encoders.hub`)."""
import tensorflow_hub
import tf_keras as keras


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
