"""`category`: one label per record out of a learned vocabulary; softmax head."""
import numpy as np
import tensorflow as tf
import tf_keras as keras

from mmkeras.modalities.base import BadValue
from mmkeras.evaluation.metrics import category_metrics
from mmkeras.names import label_key, probabilities_key
from mmkeras.outputs.base import OutputType, register, classification_metadata, probability


@keras.saving.register_keras_serializable(package="mmkeras")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Categorical cross-entropy on integer labels with label smoothing.

    Keras' sparse loss has no smoothing; one-hot targets would change the data
    contract, so the labels are one-hot encoded here, inside the loss.

    Args:
        label_smoothing: mass spread uniformly over all classes (0 = plain cross-entropy).
    """

    def __init__(self, label_smoothing=0.0, name="smoothed_sparse_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        depth = tf.shape(y_pred)[-1]
        one_hot = tf.one_hot(tf.cast(tf.reshape(y_true, [-1]), tf.int32), depth, dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(one_hot, y_pred, label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


@register("category")
class Category(OutputType):
    activation = "softmax"
    keras_metric = "accuracy"
    monitor_mode = "max"
    primary_metric = "accuracy"
    confusion_matrix = True
    app_values = "softmax probabilities"
    auto_aux_heads = True

    def parse(self, value, out, labels):
        if isinstance(value, (list, dict)):  # str() would make "['a', 'b']" a class of its own
            raise BadValue(f"expected one label name, got a JSON {type(value).__name__}")
        name = str(value).strip()
        if labels is not None and name not in labels:
            raise BadValue(f"label '{name}' does not occur in the training split")
        return name

    def label_names(self, parsed):
        return sorted(set(parsed))

    def encode(self, parsed, labels):
        index = {n: i for i, n in enumerate(labels)}
        return np.array([index[n] for n in parsed], dtype=np.int32)

    def loss(self, out):
        return SmoothedSparseCrossentropy(out.label_smoothing)

    def metrics(self, y_true, y_pred, labels):
        return category_metrics(y_true, y_pred, labels)

    def agreement(self, a, b):
        return float(np.mean(np.asarray(a).argmax(axis=-1) == np.asarray(b).argmax(axis=-1)))

    def serving_outputs(self, name, prediction, labels):
        return {probabilities_key(name): prediction, label_key(name): tf.gather(labels, tf.argmax(prediction, axis=-1))}

    def keras_output(self, name, served):
        return served[probabilities_key(name)]

    def tflite_metadata(self, lib, name, labels, detail):
        return classification_metadata(lib, name, labels, detail, "softmax probabilities over")

    def row(self, prediction, labels, top_k):
        order = np.argsort(-prediction, kind="stable")[:top_k]  # ties as argmax: lower index first
        return {"label": labels[order[0]], "probability": probability(prediction[order[0]]),
                "top_k": [{"label": labels[i], "probability": probability(prediction[i])} for i in order]}

    def flat(self, name, row, out):
        cells = {name: row["label"], f"{name}_probability": row["probability"]}
        for k, entry in enumerate(row["top_k"][1:], start=2):
            cells.update({f"{name}_top{k}": entry["label"], f"{name}_top{k}_probability": entry["probability"]})
        return cells
