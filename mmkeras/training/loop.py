"""Compile, fit with the standard callbacks, keep the best epoch, save atomically.

Fault tolerance: BackupAndRestore saves the training state (weights, optimizer,
epoch) to RUN_DIR/backup at the end of every epoch; the same command restarted
after a crash, a preemption or Ctrl-C resumes at the first epoch the backup does
not hold (work done in an unfinished epoch is redone). The callbacks below carry
the rest across a resume: history.csv keeps each epoch once, and the best-epoch
bookkeeping (best val_loss, early-stopping patience, best weights) continues.
"""
import contextlib
import csv
import io
import math
import os
import shlex
import sys
import time

import numpy as np
import tensorflow as tf
import tf_keras as keras

from mmkeras.errors import TrainingDiverged
from mmkeras.heads import compile_args, heads
from mmkeras.io import atomic_path, atomic_write_text
from mmkeras.outputs import output_type
from mmkeras.run_dir import read_history


def compile_model(model, cfg, steps_per_epoch, epochs=None, learning_rate=None):
    """AdamW on `learning_rate_schedule`, one loss per head weighted by λ.

    `epochs` and `learning_rate` replace `training.epochs` and `training.learning_rate` (a fine-tune).
    """
    t = cfg.training
    schedule = learning_rate_schedule(cfg, steps_per_epoch, epochs, learning_rate)
    optimizer = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=t.weight_decay)
    loss, loss_weights, metrics = compile_args(cfg, model)
    # Under mixed_float16, compile wraps the optimizer in a LossScaleOptimizer. Per-record
    # weights (`head_sample_weights`: auxiliary heads with an optional input) weigh the losses
    # only; `weighted_metrics=[]` says so, or Keras warns twice an epoch that metrics ignore them.
    model.compile(optimizer=optimizer, loss=loss, loss_weights=loss_weights, metrics=metrics,
                  weighted_metrics=[], jit_compile=t.jit_compile)


def learning_rate_schedule(cfg, steps_per_epoch, epochs=None, learning_rate=None):
    """Cosine decay to 5% over the planned steps, after `training.warmup_epochs` of linear
    warm-up from 0; a fine-tune (`epochs` given) starts from trained weights, so at its peak."""
    t = cfg.training
    total = max(1, (epochs or t.epochs) * steps_per_epoch)
    warmup = 0 if epochs else min(total - 1, round(t.warmup_epochs * steps_per_epoch))
    peak = learning_rate or t.learning_rate
    return keras.optimizers.schedules.CosineDecay(
        0.0 if warmup else peak, decay_steps=total - warmup, alpha=0.05,
        warmup_target=peak if warmup else None, warmup_steps=warmup)


def build_training_state(model, targets):
    """Create the optimizer's slots and the compiled losses' and metrics' variables before `fit`
    (inside the strategy's scope).

    `fit` would create them inside its first traced train step, and tf.function then traces
    the step a second time to lift them out; built here, the step is traced once.

    Args:
        targets: head name → the training targets (`head_targets`): one row of each tells the
            metrics their shapes, which decide what "accuracy" means (sparse or not).
    """
    model.optimizer.build(model.trainable_variables)
    y_pred = {name: tf.zeros([1, *t.shape[1:]], t.dtype) for name, t in model.output.items()}
    model.compiled_loss.build(y_pred)
    model.compiled_metrics.build(y_pred, {name: tf.constant(targets[name][:1]) for name in y_pred})


class EpochHistory(keras.callbacks.Callback):
    """history.csv with one row per epoch, rewritten atomically at each epoch end.

    An epoch that was running (or whose row was written but not yet backed up) when
    the run was killed is re-run after the resume; its new row replaces any old one,
    where CSVLogger(append=True) would list it twice.
    """

    def __init__(self, path):
        super().__init__()
        self.path = path

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch, **{k: float(v) for k, v in sorted((logs or {}).items())}}
        rows = read_history(self.path, before=epoch) + [row]
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(row), restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.path, out.getvalue())


def history_key(cfg, head, metric):
    """The key of a head's metric in Keras' logs: tf_keras prefixes it with the head's name
    only when the model has several heads ("label_accuracy"; alone: "accuracy")."""
    several = sum(1 for _ in heads(cfg)) > 1
    return f"{head}_{metric}" if several else metric


def monitored_metric(cfg):
    """(history key, mode) that chooses the best epoch: the validation loss, or with
    `training.monitor: primary` the first output's Keras metric (accuracy for a category
    output, MAE for a numeric one; multilabel outputs have no Keras F1, so their loss)."""
    out = cfg.outputs[0]
    kind = output_type(out)
    if cfg.training.monitor == "loss" or kind.monitor_mode is None:
        return "val_loss", "min"
    return "val_" + history_key(cfg, out.name, kind.keras_metric), kind.monitor_mode


class EpochLine(keras.callbacks.Callback):
    """One readable line per epoch: the total loss, then each output's loss and metric, as
    train / validation, the epoch's time, and "best" when `best` chose this epoch.

    Auxiliary heads (`<output>_from_<input>`) are left out: with four inputs they made a
    900-character line; their numbers stay in history.csv and TensorBoard.

    Args:
        best: the run's BestEpoch, listed before this callback: "best" is its choice (which
            continues across a resume), not a second tally of the monitored figure.
    """

    def __init__(self, cfg, best, stream=None):
        super().__init__()
        self.best = best
        self.stream = stream or sys.stdout
        self.columns = [("loss", "loss")]
        for out in cfg.outputs:
            if history_key(cfg, out.name, "loss") != "loss":  # one head: its loss is the total
                self.columns.append((f"{out.name} loss", history_key(cfg, out.name, "loss")))
            metric = output_type(out).keras_metric
            self.columns.append((f"{out.name} {metric}", history_key(cfg, out.name, metric)))

    def on_train_begin(self, logs=None):
        self.widths = [max(len(name), len("0.000 / 0.000")) for name, _ in self.columns]
        header = "  ".join(name.ljust(w) for (name, _), w in zip(self.columns, self.widths))
        print(f"{'epoch':<7} {'time':>8}  {header}  (each: train / validation)", file=self.stream, flush=True)

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        cells = [" / ".join(f"{logs[k]:.3f}" if k in logs else "—" for k in (key, "val_" + key)).ljust(w)
                 for (_, key), w in zip(self.columns, self.widths)]
        improved = self.best.best_epoch == epoch
        print(f"{epoch + 1:>3}/{self.params['epochs']:<3} {time.perf_counter() - self.started:6.1f} s  "
              + "  ".join(cells) + ("  best" if improved else ""), file=self.stream, flush=True)


class StopOnNonFinite(keras.callbacks.Callback):
    """Stop at the first non-finite training loss (or validation loss) with a TrainingDiverged
    error naming the epoch and step, instead of a run that "succeeds" with NaN weights.

    It raises rather than setting `stop_training` (as Keras' TerminateOnNaN does), and it runs
    first among the callbacks: the epoch then never reaches BackupAndRestore, BestEpoch or
    history.csv, so RUN_DIR/backup keeps the last good epoch and no NaN row is written.
    """

    def __init__(self, cfg, run):
        super().__init__()
        self.cfg, self.run = cfg, run
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self._check((logs or {}).get("loss"), f"step {batch + 1} of epoch {self.epoch + 1}")

    def on_epoch_end(self, epoch, logs=None):
        self._check((logs or {}).get("val_loss"), f"validation after epoch {epoch + 1}")

    def _check(self, loss, where):
        if loss is None or math.isfinite(float(loss)):
            return
        t = self.cfg.training
        done = f"epochs before it are backed up in {self.run.backup}" if self.epoch else "no epoch finished"
        raise TrainingDiverged(
            f"training diverged: the loss became {float(loss)} at {where} ({done}); likely causes: a learning "
            f"rate too high for this data (training.learning_rate={t.learning_rate:g}), inputs or numeric targets "
            f"of extreme magnitude{', float16 overflow (training.mixed_precision)' if t.mixed_precision else ''}; "
            f"start over with a lower learning_rate in a new --output, or after deleting {self.run.chief.path} "
            f"(rerunning the same command would resume from the backup)")


class EpochTensorBoard(keras.callbacks.TensorBoard):
    """Keras' TensorBoard callback (epoch summaries, the graph) without its per-step cost.

    tf_keras runs every callback's batch hooks once any callback has them (StopOnNonFinite
    checks each step's loss), and TensorBoard's `on_train_batch_end` then calls
    `tf.summary.scalar` for every logged figure at every step. With the default
    `update_freq="epoch"` no writer records them, but each call still costs ~0.6 ms: 7 figures
    × 990 steps were 4.6 s of a 50 s run (emoji_vendors, cProfile). The hook keeps its other
    work (the graph on the first step, profiling).
    """

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, logs=None)


class BestEpoch(keras.callbacks.EarlyStopping):
    """Early stopping on a validation figure that ends training with the best epoch's weights.

    The best weights are kept in memory by every worker (the same on all: val_loss is
    reduced across replicas), so no worker has to read a file another one writes; each
    improvement is also saved to RUN_DIR/checkpoints. BackupAndRestore restores the
    model, not callback state: at the first epoch after a resume, the best val_loss,
    the patience count and the best weights continue from the chief's history.csv and
    checkpoint.

    Args:
        run: the RunDir this process writes (its `chief` holds the history to resume).
        patience: epochs without a better validation figure before training stops.
        monitor, mode: the history key watched and whether lower ("min") or higher is better.
    """

    def __init__(self, run, patience, monitor="val_loss", mode="min"):
        super().__init__(monitor=monitor, mode=mode, patience=patience, restore_best_weights=True)
        self.higher_is_better = mode == "max"
        self.run = run
        self.first_epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        if self.first_epoch is None:
            self.first_epoch = epoch
            self._continue_from(epoch)

    def _continue_from(self, epoch):
        rows = read_history(self.run.chief.history, before=epoch)
        if not rows or not os.path.exists(self.run.chief.checkpoint):
            return
        values = [float(r[self.monitor]) for r in rows]
        best = int(np.argmax(values) if self.higher_is_better else np.argmin(values))
        self.best, self.best_epoch, self.wait = values[best], int(rows[best]["epoch"]), len(rows) - 1 - best
        current = self.model.get_weights()
        self.model.load_weights(self.run.chief.checkpoint)
        self.best_weights = self.model.get_weights()
        self.model.set_weights(current)

    def on_epoch_end(self, epoch, logs=None):
        best = self.best
        super().on_epoch_end(epoch, logs)
        if self.best != best:
            with atomic_path(self.run.checkpoint) as tmp:  # keeps the ".weights.h5" that picks the format
                self.model.save_weights(tmp)


def standard_callbacks(cfg, run):
    os.makedirs(os.path.dirname(run.checkpoint), exist_ok=True)
    best = BestEpoch(run, cfg.training.early_stopping_patience, *monitored_metric(cfg))
    return [
        StopOnNonFinite(cfg, run),  # first: a diverged epoch reaches no other callback
        EpochTensorBoard(run.logs),
        best,
        EpochLine(cfg, best),  # after `best`, which decides this epoch's "best"
        EpochHistory(run.history),
        # Last: an epoch counts as finished (not redone after a resume) only once
        # the callbacks above have recorded it.
        keras.callbacks.BackupAndRestore(run.backup),
    ]


def fit(model, inputs, cfg, run):
    """Train (resuming from RUN_DIR/backup if it holds a state); ends with the best epoch's weights.

    Args:
        inputs: model.fit's data arguments (see `mmkeras.training.inputs.fit_inputs`).
    """
    # Keras' own epoch line lists every auxiliary head: EpochLine prints a readable one instead.
    return model.fit(**inputs, epochs=cfg.training.epochs, callbacks=standard_callbacks(cfg, run), verbose=0)


@contextlib.contextmanager
def resume_hint(run):
    """On Ctrl-C, print the command that resumes the run: the one that was interrupted (on every worker)."""
    try:
        yield
    except KeyboardInterrupt:
        backed_up = os.path.isdir(run.backup) and os.listdir(run.backup)
        what = "resumes from the last finished epoch" if backed_up else "starts again (no epoch finished)"
        print(f"\nThe same command {what}:\n  cd {shlex.quote(os.getcwd())} && {shlex.join(sys.orig_argv)}",
              file=sys.stderr)
        raise


def save_model(model, path):
    with atomic_path(path) as tmp:
        model.save(tmp)


def load_model(path):
    """Load a saved run model; safe_mode refuses arbitrary code (e.g. lambda layers) from the file."""
    import mmkeras.layers  # noqa: F401  (registers the custom layers)
    from mmkeras.fusion import FUSIONS

    FUSIONS.layer_classes()  # the fusions' Layer classes are made, and registered, on first use

    model = keras.models.load_model(path, safe_mode=True)
    saved = saved_layer_weights(path)
    if saved is not None and saved != len(model.weights):
        # tf_keras checks each layer's own variables but not a sublayer that the config no longer
        # builds: a film readout saved with its distance term, loaded by code whose config made
        # no term, dropped κ's weights without a word and scored 0.70 against 0.95.
        raise ValueError(f"it holds {saved} weight arrays where the model its config builds has {len(model.weights)}: "
                         "it was saved by another version of mmkeras's layers")
    return model


def saved_layer_weights(path):
    """Number of layer weight arrays in a .keras file (its optimizer's and metrics' not counted);
    None when the file keeps its weights in another form than model.weights.h5."""
    import zipfile

    import h5py

    with zipfile.ZipFile(path) as archive:
        if "model.weights.h5" not in archive.namelist():
            return None
        # Stored, not deflated (tf_keras's writer): h5py seeks in the member without reading it all.
        with archive.open("model.weights.h5") as member, h5py.File(member, "r") as weights:
            if "layers" not in weights:
                return None
            count = []
            weights["layers"].visititems(lambda _, item: count.append(1) if isinstance(item, h5py.Dataset) else None)
    return len(count)
