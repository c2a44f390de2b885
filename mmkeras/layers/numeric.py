"""Layers of the numeric modality's in-model preprocessing (`mmkeras.modalities.numeric`)."""
import tensorflow as tf
import tf_keras as keras


@keras.saving.register_keras_serializable(package="mmkeras")
class SignedLog1p(keras.layers.Layer):
    """[B, n] → sign(x)·log(1 + |x|) on the columns flagged in `columns`, the others unchanged.

    Args:
        columns: one bool per column.

    Example:
        SignedLog1p([True, False])(numbers)
    """

    def __init__(self, columns, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.columns = [bool(c) for c in columns]

    def call(self, x):
        flag = tf.constant([self.columns], x.dtype)
        logged = tf.sign(x) * tf.math.log(1.0 + tf.abs(x))
        return flag * logged + (1.0 - flag) * x

    def get_config(self):
        return {**super().get_config(), "columns": self.columns}
