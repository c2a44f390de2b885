"""Compile, fit with the standard callbacks, keep the best weights, save atomically."""
import os
import sys

import tf_keras as keras

from mmkeras.heads import compile_args
from mmkeras.io import atomic_path


def compile_model(model, cfg, steps_per_epoch):
    """AdamW with cosine decay over the planned steps, one loss per head weighted by λ."""
    t = cfg.training
    schedule = keras.optimizers.schedules.CosineDecay(
        t.learning_rate, decay_steps=max(1, t.epochs * steps_per_epoch), alpha=0.05)
    optimizer = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=t.weight_decay)
    loss, loss_weights, metrics = compile_args(cfg)
    model.compile(optimizer=optimizer, loss=loss, loss_weights=loss_weights, metrics=metrics,
                  jit_compile=t.jit_compile)


def standard_callbacks(cfg, run):
    os.makedirs(os.path.dirname(run.checkpoint), exist_ok=True)
    return [
        # First, so an interrupted run resumes at its last finished epoch.
        keras.callbacks.BackupAndRestore(run.backup),
        keras.callbacks.ModelCheckpoint(run.checkpoint, monitor="val_loss", save_best_only=True,
                                        save_weights_only=True),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.training.early_stopping_patience),
        keras.callbacks.TensorBoard(run.logs),
        keras.callbacks.CSVLogger(run.history, append=True),
    ]


def fit(model, train_ds, val_ds, cfg, run):
    """Train, then restore the best validation epoch's weights."""
    # The progress bar redraws in place on a terminal; one line per epoch in logs.
    verbose = 1 if sys.stdout.isatty() else 2
    history = model.fit(train_ds, validation_data=val_ds, epochs=cfg.training.epochs,
                        callbacks=standard_callbacks(cfg, run), verbose=verbose)
    if os.path.exists(run.checkpoint):
        model.load_weights(run.checkpoint)
    return history


def save_model(model, path):
    with atomic_path(path) as tmp:
        model.save(tmp)


def load_model(path):
    """Load a saved run model; safe_mode refuses arbitrary code (e.g. lambda layers) from the file."""
    import mmkeras.encoders  # noqa: F401  (register custom layers)
    import mmkeras.fusion  # noqa: F401

    return keras.models.load_model(path, safe_mode=True)
