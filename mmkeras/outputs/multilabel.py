"""`multilabel`: any number of labels per record (a JSON list or a separated string); sigmoid head."""
import numpy as np

from mmkeras.modalities.base import BadValue
from mmkeras.evaluation.metrics import MULTILABEL_THRESHOLD, multilabel_metrics
from mmkeras.names import probabilities_key
from mmkeras.outputs.base import OutputType, register, classification_metadata, probability


@register("multilabel")
class Multilabel(OutputType):
    activation = "sigmoid"
    keras_metric = "binary_accuracy"
    monitor_mode = None  # no Keras F1: the loss picks the best epoch
    primary_metric = "micro_f1"
    app_values = "independent sigmoid probabilities"

    def parse(self, value, out, labels):
        names = value if isinstance(value, list) else str(value).split(out.separator)
        names = [str(n).strip() for n in names if str(n).strip()]
        unknown = [n for n in names if labels is not None and n not in labels]
        if unknown:
            raise BadValue(f"label '{unknown[0]}' does not occur in the training split")
        return names

    def label_names(self, parsed):
        return sorted({n for names in parsed for n in names})

    def encode(self, parsed, labels):
        index = {n: i for i, n in enumerate(labels)}
        hot = np.zeros((len(parsed), len(labels)), dtype=np.float32)
        for row, names in enumerate(parsed):
            hot[row, [index[n] for n in names]] = 1.0
        return hot

    def loss(self, out):
        return "binary_crossentropy"

    def metrics(self, y_true, y_pred, labels):
        return multilabel_metrics(y_true, y_pred, labels)

    def serving_outputs(self, name, prediction, labels):
        return {probabilities_key(name): prediction}

    def keras_output(self, name, served):
        return served[probabilities_key(name)]

    def tflite_metadata(self, lib, name, labels, detail):
        return classification_metadata(lib, name, labels, detail, "independent sigmoid probabilities of")

    def row(self, prediction, labels, top_k):
        """Every label over MULTILABEL_THRESHOLD with its probability, most probable first."""
        order = [i for i in np.argsort(-prediction, kind="stable") if prediction[i] > MULTILABEL_THRESHOLD]
        return {"labels": [labels[i] for i in order], "probabilities": [probability(prediction[i]) for i in order]}

    def flat(self, name, row, out):
        return {name: out.separator.join(row["labels"]),
                f"{name}_probabilities": out.separator.join(str(p) for p in row["probabilities"])}
