"""SavedModels: the TF Serving one (raw inputs) and the tensor one TFLite converts from.

TF Serving layout: RUN_DIR/export/saved_model/<name>/<version>/ with an integer
version, the next free one. Each version is written to a hidden temporary folder
and renamed into place, so a serving process polling the folder never loads half
a model. Warmup requests (real validation records) go to
assets.extra/tf_serving_warmup_requests.
"""
import os

import tensorflow as tf

from mmkeras.export.context import input_specs
from mmkeras.io import atomic_path
from mmkeras.run_dir import ExportDir
from mmkeras.names import presence_key
from mmkeras.outputs import output_type


def save_tensor_model(model, path, batch_size=1):
    """Save a dict-input Keras model with one `serving_default` signature over its tensors.

    TFLite converts from this: `ctx.tflite_model` (pixels, token ids, front-end features,
    numbers, `<name>_present` flags → main heads) and each of `ctx.frontend_models`.
    Inputs keep their names at a fixed batch size: TFLite on phones runs batch 1.
    """
    spec = {name: tf.TensorSpec([batch_size, *shape], dtype, name=name)
            for name, (shape, dtype) in input_specs(model).items()}

    @tf.function(input_signature=[spec])
    def serve(inputs):
        return model(inputs, training=False)

    module = tf.Module()
    module.model = model
    tf.saved_model.save(module, path, signatures={"serving_default": serve})
    return path


# === Raw-input serving signature ===


def raw_signature(ctx):
    """The raw serving inputs: one per modality, plus `<name>_present` for optional ones."""
    spec = {}
    for h in ctx.prep.handlers:
        spec[h.name] = h.raw_spec()
        if h.cfg.optional:
            key = presence_key(h.name)
            spec[key] = tf.TensorSpec([None], tf.float32, name=key)
    return spec


class ServingModule(tf.Module):
    """The trained model behind a raw-input signature: bytes, strings, waveforms, numbers in."""

    def __init__(self, ctx):
        super().__init__()
        self.model = ctx.inference_model
        self.handlers = ctx.prep.handlers
        # Attributes so the tokenizers' resources are saved with the module.
        self.resources = [r for h in self.handlers for r in h.serving_resources()]
        self.outputs = [(o.name, output_type(o), tf.constant(ctx.prep.labels.get(o.name) or [""]))
                        for o in ctx.cfg.outputs]
        self.serve = tf.function(self._serve, input_signature=[raw_signature(ctx)])

    def _serve(self, raw):
        inputs = {}
        batch = tf.shape(raw[self.handlers[0].name])[0]
        for h in self.handlers:
            present = raw.get(presence_key(h.name), tf.ones([batch]))
            inputs[h.name] = h.from_raw(raw[h.name])
            inputs[presence_key(h.name)] = tf.reshape(present, [-1, 1])
        predictions = self.model(inputs, training=False)
        result = {}
        for name, kind, labels in self.outputs:
            result.update(kind.serving_outputs(name, predictions[name], labels))
        return result


def write_warmup(path, model_name, examples):
    """TF Serving warmup: PredictionLog records (tensorflow-serving-api protos) in a TFRecord file."""
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for raw in examples:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model_name
            request.model_spec.signature_name = "serving_default"
            for key, value in raw.items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


def save_serving_model(ctx, export_dir, warmup_examples):
    """Write the next version of the TF Serving model; returns its folder."""
    paths = ExportDir(export_dir, ctx.cfg.name)
    final = os.path.join(paths.saved_model, str(max(paths.saved_model_versions(), default=0) + 1))
    # The temporary sibling ("3.tmp-<pid>") is not all digits, so TF Serving never loads it.
    with atomic_path(final) as tmp:
        module = ServingModule(ctx)
        tf.saved_model.save(module, tmp, signatures={"serving_default": module.serve})
        write_warmup(os.path.join(tmp, "assets.extra", "tf_serving_warmup_requests"), ctx.cfg.name, warmup_examples)
    return final
