"""A finished run loaded for export: config, preprocessing state, the Keras model, samples.

Nothing here retrains: everything comes from RUN_DIR (config.yaml, labels.json,
vocab/, preprocessing.json, model.keras).
"""
import copy
import functools

import numpy as np
import tensorflow as tf
import tf_keras as keras

from mmkeras.data.pipeline import make_dataset
from mmkeras.data.preprocessing import load_splits
from mmkeras.data.records import BadRecordLog
from mmkeras.errors import UserError
from mmkeras.heads import head_targets, inference_model
from mmkeras.names import features_key
from mmkeras.run_dir import load_run
from mmkeras.runtime import apply_frontends

# Samples per Keras call when export scores the trained model (`ExportContext.keras_outputs`).
KERAS_BATCH = 256


def input_specs(model):
    """A dict-input Keras model's inputs → (shape without batch, dtype name), in input order."""
    return {name: (tuple(t.shape[1:]), t.dtype.name) for name, t in model.input.items()}


def consumers(model, tensor):
    """The layers of functional `model`'s graph that take Keras tensor `tensor` as an input.

    A layer's own `_outbound_nodes` would also list its calls in other models built on the same
    layers (the training model's auxiliary heads); tf_keras keeps one model's graph in
    `_nodes_by_depth` (there is no public accessor).
    """
    return [node.layer for nodes in model._nodes_by_depth.values() for node in nodes
            if any(t is tensor for t in tf.nest.flatten(node.input_tensors))]


def frontend_chain(model, first):
    """Layer `first` of `model`, then each following layer that declares `float_in_int8`, takes
    that one tensor and is its only consumer in the graph: the layers a float front-end runs.

    A layer that needs more than 8 bits of its input (audio's per-utterance normalisation, the
    numeric quantile bins) is exact and costs nothing extra in the float front-end, where in a
    full-integer variant it would read an 8-bit input (emoji_multilingual's bins: int8 0.38
    against float32 0.74) or run without an int8 kernel (SQUARED_DIFFERENCE: half of
    spoken_commands' int8 time). A consumer shared with other layers (a token fusion's column
    tokens beside the bins) ends the chain, since the variants would then need both tensors.
    """
    chain = [model.get_layer(first)]
    while True:
        after = consumers(model, chain[-1].output)
        if len(after) != 1 or not getattr(after[0], "float_in_int8", False) or after[0].input is not chain[-1].output:
            return chain
        chain.append(after[0])


class ExportContext:
    """Everything export needs from one run directory.

    Args:
        run_dir: a directory written by train.py.

    Example:
        ctx = ExportContext("runs/demo")
        ctx.inference_model(sample_inputs)  # {output: probabilities}
    """

    def __init__(self, run_dir):
        self.run, self.cfg, self.prep, self.model = load_run(run_dir)
        self.output_names = [o.name for o in self.cfg.outputs]
        self._splits = None
        self._use(self.model)

    def _use(self, model):
        self.inference_model = inference_model(model, self.cfg)
        # Inputs whose in-model front-end ships as its own float TFLite model: input name → its
        # layers in order (the modality's front-end, then the float-only layers it extends through).
        self.frontend_chains = {h.name: frontend_chain(self.inference_model, h.float_frontend())
                                for h in self.prep.handlers if h.float_frontend()}
        # Input name → the layer the TFLite variants are cut after (its output is `<name>_features`).
        self.frontend_layers = {name: chain[-1] for name, chain in self.frontend_chains.items()}

    def with_model(self, model):
        """This context for another Keras model of the run — a fine-tuned copy (`mmkeras.export.fine_tune`)
        with the same inputs, outputs and front-ends: same config, splits and samples."""
        other = copy.copy(self)
        for cached in ("tflite_model", "frontend_models"):
            other.__dict__.pop(cached, None)
        other.model = model
        other._use(model)
        return other

    @property
    def input_specs(self):
        """Model input name → (shape without batch, dtype name), in model input order."""
        return input_specs(self.inference_model)

    @functools.cached_property
    def tflite_model(self):
        """The inference model cut after each float front-end: TFLite variants convert from this.

        It takes `<name>_features` (the front-end's output, e.g. log-mel) instead of input `name`;
        the other inputs are unchanged. Layers and weights are the trained model's own.
        """
        inputs = dict(self.inference_model.input)
        for name, layer in self.frontend_layers.items():
            del inputs[name]
            inputs[features_key(name)] = layer.output
        return keras.Model(inputs, self.inference_model.output, name="mmkeras_tflite")

    @functools.cached_property
    def frontend_models(self):
        """Input name → the Keras model of its float front-end alone ({name: raw} → {`<name>_features`})."""
        return {name: keras.Model({name: self.inference_model.input[name]}, {features_key(name): layer.output},
                                  name=f"{name}_frontend")
                for name, layer in self.frontend_layers.items()}

    def tflite_inputs(self, inputs):
        """One batch of model inputs → the TFLite models' inputs (front-ends applied in Keras)."""
        return apply_frontends(inputs, self.frontend_models)

    def split(self, name):
        if self._splits is None:
            self._splits = load_splits(self.cfg, BadRecordLog("skip"), known_labels=self.prep.labels)
        if name not in self._splits:
            raise UserError(f"split '{name}' is not configured in {self.run.config}")
        return self._splits[name]

    def samples(self, split_name, limit=None):
        """Preprocessed samples of a split, batch 1, in manifest order.

        Returns a list of (inputs: {model input name: np array [1, ...]}, targets: {output: np array [1, ...]}).
        """
        split = self.split(split_name)
        targets = head_targets(split, self.cfg, self.prep.labels)
        targets = {name: targets[name] for name in self.output_names}
        ds = make_dataset(split, self.prep.handlers, self.cfg.data, 1, training=False, targets=targets)
        if limit:
            ds = ds.take(limit)
        return [({k: v.numpy() for k, v in x.items()}, {k: v.numpy() for k, v in y.items()}) for x, y in ds]

    def keras_predict(self, inputs):
        """Float model outputs for one preprocessed batch → {output: np array}."""
        return {k: np.asarray(v) for k, v in self.inference_model(inputs, training=False).items()}

    def keras_outputs(self, samples, batch_size=KERAS_BATCH):
        """`keras_predict` of each of `samples` (as `samples` gives them) → one {output: [1, ...]} per
        sample, computed `batch_size` samples at a time.

        Why batches: one eager call per sample took ~0.1 s on sort_of_clevr's model, and its
        5000 test questions kept export "loading" for 8-13 min. Inference is per sample (no
        batch statistics), so a batch's rows are the single calls' outputs up to float rounding.
        """
        outputs = []
        for start in range(0, len(samples), batch_size):
            chunk = [inputs for inputs, _ in samples[start : start + batch_size]]
            batch = self.keras_predict({k: np.concatenate([inputs[k] for inputs in chunk]) for k in chunk[0]})
            outputs.extend({k: v[i : i + 1] for k, v in batch.items()} for i in range(len(chunk)))
        return outputs
