"""What mmkeras knows about one kind of output, in one class per type (Model Garden's Task idea).

An output type owns its whole life: the manifest label (parsing, label vocabulary, targets),
the head (activation, loss, Keras metric, the figure that picks the best epoch), evaluation
(numpy metrics, the primary metric, the top-1 agreement of an export), serving (the TF
Serving outputs and their mapping back to the Keras output), the app (what a TFLite output
holds, its TFLite metadata) and predict's rows. Adding an output type is one file in this
package plus its test; `tests/test_outputs.py` checks every registered type provides every part.

The config lists the type names itself (it loads before TensorFlow); a test checks they agree.
"""
from mmkeras.names import labels_file
from mmkeras.registry import Registry
from mmkeras.modalities.base import float_range

OUTPUT_TYPES = Registry("output")


def register(name):
    """Class decorator: register one instance of an OutputType subclass under `name`."""
    def decorator(cls):
        OUTPUT_TYPES.register(name)(cls())
        return cls

    return decorator


class OutputType:
    """Base of every output type; subclasses set the attributes and implement the methods.

    Attributes:
        activation: the head's Keras activation.
        keras_metric: the Keras metric compiled on the head (shown per epoch, in history.csv).
        monitor_mode: "max"/"min" for `training.monitor: primary` on `keras_metric`; None
            when the Keras metric cannot choose the best epoch (then the loss does).
        primary_metric: the one figure of `metrics` that ablations, exports and the quality
            suite report; `higher_is_better` says which way it improves.
        confusion_matrix: whether evaluation draws `confusion_<output>.png`.
        app_values: what the TFLite output holds, for the app's `.json`.
        auto_aux_heads: whether `aux_weight: auto` gives this output per-input auxiliary
            heads (README "Quality": measured where they help).
    """

    activation = None
    keras_metric = None
    monitor_mode = None
    primary_metric = None
    higher_is_better = True
    confusion_matrix = False
    app_values = None
    auto_aux_heads = False

    # === The manifest's labels ===

    def parse(self, value, out, labels):
        """One record's label value → the parsed label; BadValue says why not. `labels`: the
        known label names (None on the training split)."""
        raise NotImplementedError

    def label_names(self, parsed):
        """The label vocabulary learned from the training split's parsed labels (None: no labels)."""
        return None

    def target_stats(self, parsed):
        """Statistics of the training targets the head learns in (None: none)."""
        return None

    def encode(self, parsed, labels):
        """Parsed labels → numpy training targets."""
        raise NotImplementedError

    # === The head ===

    def units(self, labels):
        return len(labels)

    def loss(self, out):
        """The Keras loss of a head of this output (`out`: its OutputConfig)."""
        raise NotImplementedError

    # === Evaluation ===

    def metrics(self, y_true, y_pred, labels):
        """Numpy metrics of predictions in the Keras output's form (a dict, JSON-ready)."""
        raise NotImplementedError

    def agreement(self, a, b):
        """Share of records two predictions agree on (an export against Keras), or None."""
        return None

    # === Serving (TF Serving's raw-input signature) ===

    def serving_outputs(self, name, prediction, labels):
        """The Keras output → the served tensors {key: tensor}; `labels`: a string tensor."""
        raise NotImplementedError

    def keras_output(self, name, served):
        """The served tensors → the Keras output's form (inverse of `serving_outputs`)."""
        raise NotImplementedError

    # === The app and predict ===

    def tflite_metadata(self, lib, name, labels, detail):
        """(the TFLite output's TensorMetadataT, built with MediaPipe's metadata_info, {associated file: bytes}).

        Args:
            lib: `mmkeras.export.metadata`'s handle on MediaPipe's metadata modules.
            name: the output; labels: its label names or None; detail: its tensor (`tensor_info`).
        """
        raise NotImplementedError

    def row(self, prediction, labels, top_k):
        """One record's prediction (a row of the Keras output) → what predict writes (JSON-ready)."""
        raise NotImplementedError

    def flat(self, name, row, out):
        """`row` → flat CSV cells {column: value}, columns named after the output."""
        raise NotImplementedError


def output_type(out):
    """The registered OutputType (an instance) of an output config."""
    return OUTPUT_TYPES.get(out.type)


def probability(p):
    """A probability as predict writes it: a float rounded to 6 digits."""
    return round(float(p), 6)


def classification_metadata(lib, name, labels, detail, kind):
    """A classification output's TFLite metadata: its labels file and what the scores are."""
    tensor_type = lib.schema_fb.TensorType.FLOAT32 if detail["dtype"] == "float32" else None
    md = lib.info.ClassificationTensorMd(
        name=name, description=f"{name}: {kind} the {len(labels)} labels of {labels_file(name)}.{float_range(detail)}",
        label_files=[lib.info.LabelFileMd(labels_file(name))], tensor_type=tensor_type)
    return md.create_metadata(), {labels_file(name): "".join(f"{label}\n" for label in labels).encode("utf-8")}
