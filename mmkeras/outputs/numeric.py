"""`numeric`: one number per record; a linear head that learns the standardised target."""
import numpy as np
import tensorflow as tf

from mmkeras.modalities.base import parse_number
from mmkeras.evaluation.metrics import numeric_metrics
from mmkeras.outputs.base import OutputType, register
from mmkeras.modalities.base import float_range


@register("numeric")
class Numeric(OutputType):
    activation = "linear"
    keras_metric = "mae"
    monitor_mode = "min"
    primary_metric = "mae"
    higher_is_better = False
    app_values = "the predicted value"

    def parse(self, value, out, labels):
        return parse_number(value)

    def target_stats(self, parsed):
        """{"mean", "std"} of the training targets (std 1 when they are constant)."""
        values = np.asarray(parsed, np.float64)
        std = float(values.std())
        return {"mean": float(values.mean()), "std": std if std > 0 else 1.0}

    def encode(self, parsed, labels):
        return np.asarray(parsed, dtype=np.float32)

    def units(self, labels):
        return 1

    def loss(self, out):
        return "mse"  # a standardising head's loss is StandardizedMSE (heads.compile_args)

    def metrics(self, y_true, y_pred, labels):
        return numeric_metrics(y_true, y_pred, labels)

    def serving_outputs(self, name, prediction, labels):
        return {name: prediction[:, 0]}

    def keras_output(self, name, served):
        return tf.reshape(served[name], [-1, 1])

    def tflite_metadata(self, lib, name, labels, detail):
        return lib.info.TensorMd(name=name, description=f"{name}: the predicted value, in the target's units."
                                                        f"{float_range(detail)}").create_metadata(), {}

    def row(self, prediction, labels, top_k):
        return {"value": float(prediction[0])}

    def flat(self, name, row, out):
        return {name: row["value"]}
