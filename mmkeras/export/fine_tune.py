"""Fine-tuned copies of a trained model for the compressed TFLite variants, with TF-MOT.

    qat    quantisation-aware training: fake-quant nodes on the weights and activations of
           every layer TF-MOT's 8-bit scheme knows (Conv2D, Dense, pooling, ...) and on the
           kernels and output of mmkeras's own layers that hold Dense or convolution kernels
           (`KernelQuantizeConfig`); the front-ends stay float, since they ship float.
    prune  magnitude pruning (`prune_low_magnitude`) of every Conv, Dense and Embedding
           kernel (those inside mmkeras's own layers too), from 0 to `export.prune_sparsity`
           along a polynomial schedule that ends two thirds of the way through the fine-tune,
           so the last third trains the survivors.

Both fine-tune the whole training model (auxiliary heads, modality dropout, augmentation:
what the run trained with) on the train split, with the run's losses at a small share of
its learning rate (a hundredth for `qat`, a tenth for `prune`, which must recover from the
zeros), then strip TF-MOT's wrappers into a plain Keras model that the variants convert
from like the trained one (`ExportContext.with_model`). `qat` first sets the activation
ranges from training batches (`calibrate_ranges`), then keeps the epoch whose validation figure
is best (the run's `training.monitor`), epoch 0 (calibrated, not fine-tuned) among them; `prune`
keeps the last, the only one at full sparsity.

TF-MOT requires absl-py 1 and mediapipe absl-py 2, so pip cannot install both from one
requirement set; TF-MOT is installed beside mmkeras with `--no-deps` (README "Install").

Example:
    tuned, facts = fine_tune(ctx, "qat", epochs=2)
    ctx.with_model(tuned).tflite_model       # converts to int8_qat
"""
import contextlib
import math

import numpy as np
import tensorflow as tf
import tf_keras as keras

from mmkeras.config import PRESENCE_LAYER
from mmkeras.errors import TrainingDiverged, UserError, op_error_reason
from mmkeras.registry import Registry

FINE_TUNES = Registry("fine-tune")
TFMOT_INSTALL = "pip install --no-deps tensorflow-model-optimization==0.8.1"


def tfmot():
    """tensorflow_model_optimization, or a one-line error saying how to install it."""
    try:
        import tensorflow_model_optimization
    except ImportError:
        raise UserError(f"the qat and pruned variants need TF-MOT, which is not installed: {TFMOT_INSTALL} "
                        "(README \"Install\" says why --no-deps)") from None
    return tensorflow_model_optimization


class FineTune:
    """One way of fine-tuning a copy of the trained model (a `FINE_TUNES` entry).

    `keeps_best_epoch`: the epoch kept is the best on validation, the prepared copy before any
    step (epoch 0) among the candidates; otherwise the last.

    Args:
        ctx: the run's ExportContext.
        epochs: fine-tune epochs.
        steps: training steps in those epochs.
    """

    keeps_best_epoch = True
    # The fine-tune's peak learning rate, as a share of the run's `training.learning_rate`.
    learning_rate_share = 0.1

    def __init__(self, ctx, epochs, steps):
        self.ctx, self.epochs, self.steps = ctx, epochs, steps
        # The layers whose float front-end ships as its own file, shared by every variant: frozen,
        # and neither quantised nor pruned.
        self.frontends = {layer.name for chain in ctx.frontend_chains.values() for layer in chain}

    def freeze_frontends(self, model):
        for name in self.frontends:
            model.get_layer(name).trainable = False

    def wrap(self, model):
        """The model with TF-MOT's wrappers, ready to compile (a new model; `model` is not changed)."""
        raise NotImplementedError

    def prepare(self, model, batches):
        """Ready the wrapped, compiled `model` for its fine-tune on `batches` (train-split batches)."""

    def callbacks(self):
        return []

    def strip(self, model):
        """The fine-tuned wrapped model → a plain Keras model whose variables hold what it learned."""
        raise NotImplementedError

    def facts(self, model):
        """What the report says about the stripped model, beyond epochs and learning rate."""
        return {}


def _clone_with_weights(model, scope=None):
    """A fresh single-graph copy of `model` with its weights (TF-MOT's results call some layers twice:
    their `.output` is then not this model's, which export's cut at the front-ends needs)."""
    with scope or contextlib.nullcontext():
        copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def _own_layer(layer):
    """One of mmkeras's own layers (a fusion, a transformer block...), which TF-MOT does not know."""
    return type(layer).__module__.startswith("mmkeras.")


def _mmkeras_kernels(layer):
    """(owner, attribute) of every kernel of one of mmkeras's own layers, found in its sublayers:
    Dense, EinsumDense and convolutions keep theirs in `kernel`."""
    found = []
    for sub in layer._flatten_layers(include_self=False):
        if isinstance(getattr(sub, "kernel", None), tf.Variable) and sub.kernel.trainable:
            found.append((sub, "kernel"))
    return found


def kernel_quantize_config_class():
    """`KernelQuantizeConfig`, made on first use (TF-MOT is imported only when a fine-tune runs)."""
    mot = tfmot()
    quantizers = mot.quantization.keras.quantizers

    class KernelQuantizeConfig(mot.quantization.keras.QuantizeConfig):
        """8-bit fake quantisation of an mmkeras layer: the kernels of its sublayers and its output.

        Kernels per tensor, as TF-MOT's own Dense config: per channel (what the converter then
        stores) the MLIR converter refuses the fake-quant node behind a MatMul ("'tfl.transpose'
        op has mismatched quantized axes"; TF 2.21, measured). The converter quantises the
        trained weights again, per channel, from their float values."""

        def get_weights_and_quantizers(self, layer):
            # Found once, at the wrapper's build: each call then replaces the kernels by their
            # fake-quantised tensors, which are no longer variables to find.
            self.kernels = _mmkeras_kernels(layer)
            return [(getattr(owner, attr), quantizers.LastValueQuantizer(num_bits=8, symmetric=True, narrow_range=True,
                                                                        per_axis=False))
                    for owner, attr in self.kernels]

        def get_activations_and_quantizers(self, layer):
            return []

        def set_quantize_weights(self, layer, quantize_weights):
            for (owner, attr), value in zip(self.kernels, quantize_weights, strict=True):
                setattr(owner, attr, value)

        def set_quantize_activations(self, layer, quantize_activations):
            pass

        def get_output_quantizers(self, layer):
            return [quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False,
                                                      narrow_range=False)]

        def get_config(self):
            return {}

    return KernelQuantizeConfig


@FINE_TUNES.register("qat")
class QuantizationAware(FineTune):
    """Quantisation-aware training (`int8_qat`)."""

    # Small, so the wrappers adjust the trained model rather than train it on. Measured with --qat 2
    # on four suite sets (README "Quantisation-aware training and pruning"): at 0.1 the copy itself
    # drifted from the trained model (japanese_vowels 0.992 -> 0.986, emoji_vendors 0.744 -> 0.733),
    # and int8_qat came out 0.5, 0.2-0.3, 0.2 and 0.1-0.3 points under its figure at 0.01 on
    # japanese_vowels, debian_tags, emoji_vendors and debian_sections.
    learning_rate_share = 0.01

    def wrap(self, model):
        mot = tfmot()
        from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
            default_8bit_quantize_registry)

        registry = default_8bit_quantize_registry.Default8BitQuantizeRegistry()
        config_class = kernel_quantize_config_class()
        annotate = mot.quantization.keras.quantize_annotate_layer
        annotated = set()

        def choose(layer):
            """TF-MOT's own configs where it has one; a BatchNormalization after an annotated layer
            (TF-MOT folds it into the conv or dense before it); mmkeras layers with kernels."""
            inbound = {getattr(l, "name", None) for node in layer._inbound_nodes
                       for l in tf.nest.flatten(node.inbound_layers)}
            if layer.name in self.frontends or getattr(layer, "float_in_int8", False):
                return layer
            if layer.name == PRESENCE_LAYER:
                # The flags are exactly 0 or 1 and need no range of their own; with one, the
                # converter gives its [0, 1] to the fusion's concatenation of them with the
                # embeddings, which no fake-quant node covers, and clips every embedding to [0, 1]
                # (emoji_vendors: int8_qat 0.674 against its Keras copy's 0.741). Left to the
                # converter's calibration, that concatenation gets the range of what it joins.
                return layer
            if registry.supports(layer) or (isinstance(layer, keras.layers.BatchNormalization)
                                            and inbound & annotated):
                annotated.add(layer.name)
                return annotate(layer)
            if _own_layer(layer) and _mmkeras_kernels(layer):
                annotated.add(layer.name)
                return annotate(layer, quantize_config=config_class())
            return layer

        self.scope = mot.quantization.keras.quantize_scope({"KernelQuantizeConfig": config_class})
        with self.scope:
            marked = keras.models.clone_model(model, clone_function=choose)
            return mot.quantization.keras.quantize_apply(marked)

    def prepare(self, model, batches):
        calibrate_ranges(model, batches.take(CALIBRATION_BATCHES))

    def strip(self, model):
        # The fake-quant wrappers stay: the converter reads their ranges (and folds them away).
        return _clone_with_weights(model, self.scope)


# TF-MOT's MovingAverageQuantizer starts every activation range at [-6, 6] and moves it toward each
# training batch's range by an exponential average of this decay (quant_ops.MovingAvgQuantize, fixed).
RANGE_DECAY = 0.999
CALIBRATION_BATCHES = 32


def _range_variables(model):
    """(quantizer, {"min_var", "max_var"}) of every range TF-MOT keeps in a wrapped `model`: the
    weights' (LastValueQuantizer: set from the weights at every training step), the inputs'
    QuantizeLayers', the activations' and the outputs'."""
    found = []
    for layer in model.layers:
        if hasattr(layer, "quantizer_vars"):  # a QuantizeLayer
            found.append((layer.quantizer, layer.quantizer_vars))
        found += [(quantizer, variables) for _, quantizer, variables in getattr(layer, "_weight_vars", [])]
        for activation in getattr(layer, "_quantize_activations", []):
            for attr in ("_pre_activation_vars", "_post_activation_vars"):
                if hasattr(activation, attr):
                    found.append((activation.quantizer, getattr(activation, attr)))
        if getattr(layer, "_output_quantizers", None):
            found.append((layer._output_quantizers[0], layer._output_quantizer_vars))
    return found


def calibrate_ranges(model, batches):
    """Set every activation range of a QAT-wrapped `model` to what post-training calibration would
    use (the extremes seen on `batches` of training data), and leave every other weight as it was.

    Why: TF-MOT's moving ranges start at [-6, 6] and follow the batches by an average of decay
    0.999, so a fine-tune of a hundred steps (the demo's 2 epochs: 96) ends with ranges still 90%
    the initial ones: half of a ReLU output's 256 steps spent on negatives it never takes, and
    anything above ~6 clipped. Calibrated, the fine-tune starts from the post-training int8 model
    and adjusts the weights to its rounding. (The inputs' all-values ranges, from 0 and widened to
    every value seen, and the weights' ranges are right after any pass.) Forward passes in
    training mode are what update the ranges, and they move BatchNorm's statistics too: those
    are put back.
    """
    moving_average = tfmot().quantization.keras.quantizers.MovingAverageQuantizer
    found = _range_variables(model)
    moving = [variables for quantizer, variables in found if isinstance(quantizer, moving_average)]
    kept = model.get_weights()
    forward = tf.function(lambda x: model(x, training=True))
    seen = [{"min_var": 0.0, "max_var": 0.0} for _ in moving]  # every TFLite range holds 0 (TF-MOT's rule)
    for batch in batches:
        before = [{k: v.numpy() for k, v in variables.items()} for variables in moving]
        forward(batch[0])
        for variables, old, widest in zip(moving, before, seen):
            for k, v in variables.items():
                # After one step the variable is d·old + (1 − d)·(this batch's range).
                batch_range = old[k] + (v.numpy() - old[k]) / (1.0 - RANGE_DECAY)
                widest[k] = (np.minimum if k == "min_var" else np.maximum)(widest[k], batch_range)
                v.assign(widest[k])  # the next batch is quantised with the widest range so far
    ranges = [(v, v.numpy()) for _, variables in found for v in variables.values()]
    model.set_weights(kept)
    for v, value in ranges:
        v.assign(value)


def _prunable_weights(layer, frozen):
    """The weights pruning zeroes in one layer: a Conv or Dense kernel, an Embedding's table, the
    kernels inside one of mmkeras's own layers (fusions, transformer blocks); none in a front-end."""
    if layer.name in frozen:
        return []
    if isinstance(layer, keras.layers.Embedding):
        return [layer.embeddings]
    if isinstance(layer, (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Dense)):
        return [layer.kernel]
    if _own_layer(layer):
        return [getattr(owner, attr) for owner, attr in _mmkeras_kernels(layer)]
    return []


@FINE_TUNES.register("prune")
class Pruning(FineTune):
    """Magnitude pruning to `export.prune_sparsity` (`float32_pruned`, `int8_pruned`)."""

    keeps_best_epoch = False
    UPDATES = 8  # sparsity steps along the schedule

    def __init__(self, ctx, epochs, steps):
        super().__init__(ctx, epochs, steps)
        self.sparsity = ctx.cfg.export.prune_sparsity

    def wrap(self, model):
        mot = tfmot()
        every = max(1, (2 * self.steps // 3) // self.UPDATES)
        schedule = mot.sparsity.keras.PolynomialDecay(initial_sparsity=0.0, final_sparsity=self.sparsity,
                                                      begin_step=0, end_step=every * self.UPDATES, frequency=every)

        def choose(layer):
            weights = _prunable_weights(layer, self.frontends)
            if not weights:
                return layer
            if _own_layer(layer):
                # TF-MOT prunes any layer that says which of its weights to prune.
                layer.get_prunable_weights = lambda: weights
            return mot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)

        return keras.models.clone_model(model, clone_function=choose)

    def callbacks(self):
        return [tfmot().sparsity.keras.UpdatePruningStep()]

    def strip(self, model):
        return _clone_with_weights(tfmot().sparsity.keras.strip_pruning(model))

    def facts(self, model):
        """The zeros among the pruned weights, and among all the model's float weights."""
        pruned = [w.numpy() for layer in model.layers for w in _prunable_weights(layer, self.frontends)]
        everything = [w for w in model.get_weights() if w.dtype.kind == "f"]
        return {"target_sparsity": self.sparsity, "sparsity": _zeros(pruned), "model_sparsity": _zeros(everything),
                "pruned_weights": len(pruned)}


def _zeros(arrays):
    total = sum(a.size for a in arrays)
    return float(sum(int(np.count_nonzero(a == 0)) for a in arrays) / total) if total else 0.0


class KeepBest(keras.callbacks.Callback):
    """Keep the weights of the epoch with the best `monitor`, the state before the first epoch
    (epoch 0, `consider`ed before training) among them."""

    def __init__(self, monitor, mode):
        super().__init__()
        self.monitor, self.higher = monitor, mode == "max"
        self.best_epoch, self.best, self.values = 0, -math.inf if self.higher else math.inf, []

    def consider(self, epoch, value, model):
        self.values.append(float(value))
        if (value > self.best) if self.higher else (value < self.best):
            self.best, self.best_epoch, self.weights = float(value), epoch, model.get_weights()

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            raise UserError(f"fine-tune: no '{self.monitor}' in the logs ({', '.join(sorted(logs or {}))})")
        self.consider(epoch + 1, value, self.model)

    def on_train_end(self, logs=None):
        self.model.set_weights(self.weights)


def wrapped_key(model, key):
    """A history key of the unwrapped model ("val_label_accuracy") → the wrapped model's: tf_keras
    names each output's figures after the layer that makes it ("quant_label"), not its key."""
    heads = dict(zip(sorted(model.output), model.output_names))
    prefix = "val_" if key.startswith("val_") else ""
    body = key[len(prefix):]
    for head in sorted(heads, key=len, reverse=True):
        if body.startswith(head + "_"):
            return prefix + heads[head] + body[len(head):]
    return key


def fine_tune(ctx, method, epochs):
    """A copy of the run's trained model fine-tuned by `method` ("qat" or "prune") → (model, facts).

    The run directory is not written: the copy lives only for the export's conversion.
    """
    from mmkeras.training.inputs import fit_inputs, steps_per_epoch
    from mmkeras.training.loop import compile_model, load_model, monitored_metric
    from mmkeras.training.strategy import Worker

    cfg = ctx.cfg
    splits = {"train": ctx.split("train"), "validation": ctx.split("validation")}
    steps = steps_per_epoch(len(splits["train"]), cfg.training.batch_size)
    tuner = FINE_TUNES.get(method)(ctx, epochs, steps * epochs)
    keras.utils.set_random_seed(cfg.training.seed)
    model = load_model(ctx.run.model)  # a fresh copy: ctx.model keeps the trained weights
    tuner.freeze_frontends(model)
    try:
        wrapped = tuner.wrap(model)
    except (ValueError, TypeError, NotImplementedError) as e:  # a layer TF-MOT's wrappers cannot take
        raise UserError(f"the {method} fine-tune cannot wrap this model's layers: {op_error_reason(e, 300)}") from e
    strategy = tf.distribute.get_strategy()
    inputs = fit_inputs(strategy, Worker.of(strategy), splits, cfg, ctx.prep)
    learning_rate = tuner.learning_rate_share * cfg.training.learning_rate
    compile_model(wrapped, cfg, steps, epochs=epochs, learning_rate=learning_rate)
    tuner.prepare(wrapped, inputs["x"])
    key, mode = monitored_metric(cfg)
    key = wrapped_key(wrapped, key)
    callbacks = tuner.callbacks()
    best = None
    if tuner.keeps_best_epoch:
        best = KeepBest(key, mode)
        # Epoch 0 is the copy as prepared (for QAT: calibrated, so the post-training int8 model's
        # function): kept when no epoch of the fine-tune beats it on validation.
        start = wrapped.evaluate(inputs["validation_data"], steps=inputs["validation_steps"], verbose=0,
                                 return_dict=True)
        best.consider(0, start[key.removeprefix("val_")], wrapped)
        callbacks.append(best)
    history = wrapped.fit(**inputs, epochs=epochs, callbacks=callbacks, verbose=0).history
    losses = history.get("loss", []) + history.get("val_loss", [])
    if not all(math.isfinite(v) for v in losses):
        raise TrainingDiverged(f"the {method} fine-tune diverged (losses {losses}); the trained model is unchanged")
    tuned = tuner.strip(wrapped)
    facts = {"method": method, "epochs": epochs, "learning_rate": learning_rate, "monitor": key,
             "validation": best.values if best else history.get(key), "first_epoch": 0 if best else 1,
             "kept_epoch": best.best_epoch if best else epochs, **tuner.facts(tuned)}
    return tuned, facts
