"""Task heads and their targets; what differs per output type is its plugin (`mmkeras.outputs`).

Joint training minimises Σ λ_k·ℓ_k: Keras `loss_weights` carries each output's
`loss_weight`, and `aux_weight` for its per-modality auxiliary heads. An auxiliary
head learns only from records whose modality is present (per-record loss weights).
"""
import numpy as np
import tensorflow as tf
import tf_keras as keras

from mmkeras.data.targets import encode_targets
from mmkeras.names import aux_output_name
from mmkeras.outputs import output_type
from mmkeras.outputs.category import SmoothedSparseCrossentropy  # noqa: F401  (models saved with it load)


@keras.saving.register_keras_serializable(package="mmkeras")
class Destandardize(keras.layers.Layer):
    """z → z·std + mean: a numeric head learns the standardised target, the model outputs its units.

    A Dense head starts near 0; a target whose mean is 10 or 1e4 then takes most of
    training just to move the bias there, and its squared error in raw units outweighs
    every other head's loss in the shared layers.

    Args:
        mean, std: the target's mean and standard deviation on the training split.

    Example:
        y = Destandardize(12.5, 3.0)(keras.layers.Dense(1)(x))
    """

    def __init__(self, mean=0.0, std=1.0, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.mean, self.std = float(mean), float(std)

    def call(self, z):
        return z * self.std + self.mean

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "std": self.std}


@keras.saving.register_keras_serializable(package="mmkeras")
class StandardizedMSE(keras.losses.Loss):
    """Mean squared error in units of the target's standard deviation: ((y − ŷ) / std)².

    Keeps a numeric head's loss on the scale of a cross-entropy whatever the target's
    units, so `loss_weight` means the same for every output type.

    Args:
        std: the target's standard deviation on the training split.
    """

    def __init__(self, std=1.0, name="standardized_mse", **kwargs):
        super().__init__(name=name, **kwargs)
        self.std = float(std)

    def call(self, y_true, y_pred):
        y_true = tf.reshape(tf.cast(y_true, y_pred.dtype), tf.shape(y_pred))
        return tf.reduce_mean(tf.square((y_pred - y_true) / self.std), axis=-1)

    def get_config(self):
        return {**super().get_config(), "std": self.std}


def numeric_scale(out, targets):
    """The (mean, std) a numeric output's head learns in, or None when it learns raw values."""
    stats = targets.get(out.name) if out.standardize else None
    return (stats["mean"], stats["std"]) if stats else None


def inference_model(model, cfg):
    """The trained model with only its main heads, {output: prediction}: what export ships and
    predict runs (auxiliary per-modality heads exist for training). Same layers and weights."""
    # By output key, not layer name: a fine-tuned copy's head layers are wrapped and renamed ("quant_label").
    return keras.Model(model.input, {o.name: model.output[o.name] for o in cfg.outputs}, name="mmkeras")


def aux_weight(out, cfg):
    """The loss weight of each of `out`'s auxiliary heads (0: none).

    `auto` shares the output's own weight among its M per-input heads (each
    loss_weight / M), so the auxiliary losses together weigh what the main head does
    however many inputs there are, and an output with heads does not crowd out the other
    outputs' (README "Quality": a fixed 1.0 per head made a category output weigh 1 + M).
    """
    if out.aux_weight != "auto":
        return out.aux_weight
    if len(cfg.inputs) < 2 or not output_type(out).auto_aux_heads:
        return 0.0
    return out.loss_weight / len(cfg.inputs)


def heads(cfg):
    """Yield (head name, output config, loss weight, source modality or None) for every head."""
    for out in cfg.outputs:
        yield out.name, out, out.loss_weight, None
        weight = aux_weight(out, cfg)
        if weight > 0:
            for inp in cfg.inputs:
                yield aux_output_name(out.name, inp.name), out, weight, inp.name


def build_heads(fused, embeddings, cfg, labels, targets=None):
    """Add every head → dict name → output tensor.

    Args:
        fused: the fusion output [B, D].
        embeddings: input name → that modality's embedding [B, d], for auxiliary heads.
        cfg: the Config; labels: output name → label names (None for numeric).
        targets: numeric output name → its training targets' {"mean", "std"} (the output type's `target_stats`).
    """
    outputs = {}
    for name, out, _, modality in heads(cfg):
        kind = output_type(out)
        source = fused if modality is None else embeddings[modality]
        scale = numeric_scale(out, targets or {})
        # float32 outputs keep losses stable under mixed precision.
        head = keras.layers.Dense(kind.units(labels.get(out.name)), activation=kind.activation, dtype="float32",
                                  name=f"{name}_standardized" if scale else name)(source)
        outputs[name] = Destandardize(*scale, name=name)(head) if scale else head
    return outputs


def compile_args(cfg, model=None):
    """Keras compile arguments (loss, loss_weights, metrics), keyed by head name.

    A numeric head that ends in `Destandardize` (read from `model`) gets its loss in units
    of the target's standard deviation.
    """
    loss, weights, metrics = {}, {}, {}
    layers = {layer.name: layer for layer in model.layers} if model is not None else {}
    for name, out, weight, _ in heads(cfg):
        layer = layers.get(name)  # a fine-tuned copy wraps (and renames) its Dense heads, not Destandardize
        if isinstance(layer, Destandardize):
            loss[name] = StandardizedMSE(layer.std)
        else:
            loss[name] = output_type(out).loss(out)
        weights[name] = weight
        metrics[name] = [output_type(out).keras_metric]
    return loss, weights, metrics


def head_targets(split, cfg, labels):
    """Targets for every head of a split (auxiliary heads share their output's targets)."""
    encoded = {o.name: encode_targets(o, split.labels[o.name], labels.get(o.name)) for o in cfg.outputs}
    return {name: encoded[out.name] for name, out, _, _ in heads(cfg)}


def head_sample_weights(split, cfg):
    """Per-record loss weights for every head, or None when no input is optional.

    An auxiliary head `<output>_from_<input>` sees only its input's embedding, so a record
    whose input is absent (zeros) has nothing to teach it: the loss would only pull the
    head, and through it the encoder, towards predicting the label prior from zeros.
    Those records weigh 0 for it; main heads weigh every record 1. Keras averages a weighted
    loss over the batch, not over the weights, so an auxiliary head's pull scales with how
    often its modality is present. Decided by the config, not the data, so every worker's
    shard has the same (inputs, targets, weights) structure.
    """
    if not any(i.optional for i in cfg.inputs):
        return None
    ones = np.ones(len(split), np.float32)
    return {name: ones if modality is None else split.presence[modality].astype(np.float32)
            for name, _, _, modality in heads(cfg)}
