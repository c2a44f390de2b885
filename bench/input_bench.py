"""Input-side benchmarks, in this process: the tf.data pipeline against a Python loader,
and model.fit fed by train.py's input path against pre-decoded tensors (and with XLA).
"""
import dataclasses
import functools
import math
import os
import tempfile

import numpy as np
import tensorflow as tf
import tf_keras as keras

from bench.loader import PythonLoader, load_image
from bench.machine import usable_cores
from bench.registry import BENCHMARKS
from bench.timing import Stopwatch, interleave, rate, ratio, timed
from mmkeras.data.pipeline import cache_mode, decoded_bytes, make_dataset
from mmkeras.heads import head_sample_weights, head_targets
from mmkeras.model import build_model
from mmkeras.training.loop import compile_model


def with_data(cfg, **changes):
    """A copy of the config with its `data` section changed (e.g. cache="none")."""
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, **changes))


def with_training(cfg, **changes):
    return dataclasses.replace(cfg, training=dataclasses.replace(cfg.training, **changes))


def consume(batches):
    for _ in batches:
        pass


def rates_of(timings, records):
    return {name: rate(records, t.median) for name, t in timings.items()}


# === pipeline_speedup ===


@BENCHMARKS.register("pipeline")
def pipeline(ctx):
    """tf.data (streaming, disk cache, memory cache) ÷ the per-sample Python loader, samples/s; profiles."""
    split, handlers, cfg = ctx.train_split, ctx.prep.handlers, ctx.cfg
    batch, seed = cfg.training.batch_size, cfg.training.seed
    loader = PythonLoader(split, handlers, batch)
    rng = np.random.default_rng(seed)

    def dataset(cache, cache_path=None):
        return make_dataset(split, handlers, with_data(cfg, cache=cache).data, batch, training=True, seed=seed,
                            cache_path=cache_path)

    with tempfile.TemporaryDirectory() as tmp:
        streaming, cached = dataset("none"), dataset("memory")
        on_disk = dataset("disk", os.path.join(tmp, "train"))
        # The warm-up epoch traces the pipeline and, for the caches, decodes once and fills them.
        timings = interleave({"tfdata_streaming": timed(lambda: consume(streaming)),
                              "tfdata_disk_cache": timed(lambda: consume(on_disk)),
                              "tfdata_cached": timed(lambda: consume(cached)),
                              "python_loader": timed(lambda: consume(loader.epoch(rng)))}, ctx.settings.repeats)
        disk_bytes = sum(os.path.getsize(os.path.join(tmp, f)) for f in os.listdir(tmp))
    rates = rates_of(timings, len(split))
    values = {"pipeline_speedup": ratio(rates["tfdata_streaming"], rates["python_loader"]),
              "pipeline_disk_cache_speedup": ratio(rates["tfdata_disk_cache"], rates["python_loader"]),
              "pipeline_cached_speedup": ratio(rates["tfdata_cached"], rates["python_loader"])}
    profile = {"python_loader_ms_per_sample": loader.ms_per_sample(),
               "cpu_bound": cpu_bound(timings, len(split)),
               "tfdata_samples_per_s_by_input": tfdata_rates_by_input(split, handlers, batch, ctx.settings.repeats),
               "disk_cache_bytes_per_sample": disk_bytes / len(split),
               "loader_check": loader_check(split, handlers, loader)}
    raw = {"records": len(split), "batch_size": batch, "samples_per_s": rates,
           "timings": {name: t.to_json() for name, t in timings.items()}, "profile": profile}
    return values, raw


def cpu_bound(timings, records):
    """CPU milliseconds per sample of each side, and the streaming speed-up this CPU allows at most.

    The loader decodes on one core; tf.data can keep every usable core busy. If both spend
    their CPU on the same decoders, streaming can be at most
    cores × (loader CPU per sample ÷ tf.data CPU per sample) times faster, however it is tuned.
    """
    cores = usable_cores()
    ms = {name: 1000 * t.cpu_median / records for name, t in timings.items()}
    return {"cpu_ms_per_sample": ms, "usable_cores": cores,
            "streaming_speedup_bound": ratio(cores * ms["python_loader"], ms["tfdata_streaming"])}


def tfdata_rates_by_input(split, handlers, batch, repeats):
    """Per-stage profile: samples/s of each input's decode (+ finalize) alone in tf.data, parallel, no cache."""
    tasks = {}
    for h in handlers:
        present = [v for v, p in zip(split.values[h.name], split.presence[h.name]) if p > 0]
        ds = (tf.data.Dataset.from_tensor_slices(h.column(present))
              .map(lambda v, h=h: h.finalize(h.decode(v), True), num_parallel_calls=tf.data.AUTOTUNE)
              .batch(batch).prefetch(tf.data.AUTOTUNE))
        tasks[h.name] = (timed(lambda ds=ds: consume(ds)), len(present))
    timings = interleave({name: task for name, (task, _) in tasks.items()}, repeats)
    return {name: {"samples_per_s": rate(n, timings[name].median),
                   "cpu_utilisation": timings[name].cpu_utilisation} for name, (_, n) in tasks.items()}


def _text_check(h, values, loader):
    wordpiece = loader.wordpieces[h.name]
    ids = h.decode(tf.constant(values)).numpy()
    return "token_rows_equal", float(np.mean([np.array_equal(a, wordpiece.ids(t)) for a, t in zip(ids, values)]))


def _image_check(h, values, loader):
    diff = max(float(np.max(np.abs(h.decode(v).numpy() - load_image(v, h.cfg)))) for v in values)
    return "max_abs_pixel_diff", diff


# Audio needs no check: both sides call mmkeras's load_audio; numbers are passed through.
LOADER_CHECKS = {"text": _text_check, "image": _image_check}


def loader_check(split, handlers, loader, n=64):
    """How closely the Python loader reproduces the pipeline's decoding, on the first `n` records."""
    check = {}
    for h in handlers:
        if h.cfg.type in LOADER_CHECKS:
            values = [v for v, p in zip(split.values[h.name][:n], split.presence[h.name][:n]) if p > 0]
            key, value = LOADER_CHECKS[h.cfg.type](h, values, loader)
            check[f"{h.name}_{key}"] = value
    return check


# === fit_vs_ceiling, xla_fit_speedup ===


class EpochTimer(keras.callbacks.Callback):
    """Times one epoch's training steps, not fit()'s set-up around them (the same for every input)."""

    def __init__(self):
        super().__init__()
        self.watch, self.sample = Stopwatch(), None

    def on_epoch_begin(self, epoch, logs=None):
        self.watch.start()

    def on_epoch_end(self, epoch, logs=None):
        self.sample = self.watch.stop()


def fit_task(model, dataset):
    """A task that trains one epoch on `dataset` and returns its time."""
    timer = EpochTimer()

    def task():
        model.fit(dataset, epochs=1, verbose=0, callbacks=[timer])
        return timer.sample

    return task


def steps(ctx):
    return math.ceil(len(ctx.train_split) / ctx.cfg.training.batch_size)


def compiled_model(ctx, cfg):
    """The config's model, built and compiled as train.py does (same seed, optimizer, losses)."""
    keras.utils.set_random_seed(cfg.training.seed)
    model = build_model(cfg, ctx.prep)
    compile_model(model, cfg, steps(ctx))  # steps only shape the learning-rate schedule
    return model


def train_path_dataset(ctx, cfg):
    """What train.py feeds model.fit on one replica (mmkeras.training.inputs): make_dataset over the split."""
    split = ctx.train_split
    return make_dataset(split, ctx.prep.handlers, cfg.data, cfg.training.batch_size, training=True,
                        targets=head_targets(split, cfg, ctx.prep.labels), seed=cfg.training.seed,
                        sample_weights=head_sample_weights(split, cfg))


def stack(dataset):
    """A finite (inputs, targets) dataset of batches → (inputs, targets) dicts of whole numpy arrays."""
    batches = list(dataset.as_numpy_iterator())
    return tuple({key: np.concatenate([b[i][key] for b in batches]) for key in batches[0][i]} for i in range(2))


@functools.cache
def ceiling_dataset(ctx):
    """The ceiling's input: the split decoded once (centred crops) into arrays, served from memory."""
    split, cfg = ctx.train_split, ctx.cfg
    targets = head_targets(split, cfg, ctx.prep.labels)
    decoded = make_dataset(split, ctx.prep.handlers, cfg.data, cfg.training.batch_size, training=False,
                           targets=targets)
    # Arrays already in memory are what a cache would serve, without the pipeline in front of it.
    return (tf.data.Dataset.from_tensor_slices(stack(decoded)).shuffle(len(split), seed=cfg.training.seed)
            .batch(cfg.training.batch_size).prefetch(tf.data.AUTOTUNE))


def fit_raw(ctx, timings, rates):
    return {"records": len(ctx.train_split), "batch_size": ctx.cfg.training.batch_size,
            "steps_per_epoch": steps(ctx),
            "samples_per_s": rates, "timings": {name: t.to_json() for name, t in timings.items()}}


@BENCHMARKS.register("fit")
def fit(ctx):
    """Training samples/s fed by train.py's input path (cache auto, and none) ÷ fed in-memory arrays."""
    cfg, split = ctx.cfg, ctx.train_split
    model = compiled_model(ctx, cfg)
    # The demo config's cache is `auto`, which caches the demo's decoded samples in memory.
    train_path, streaming = train_path_dataset(ctx, cfg), train_path_dataset(ctx, with_data(cfg, cache="none"))
    # One model for all three: the first (warm-up) epoch of each traces and fills caches.
    timings = interleave({"train_path": fit_task(model, train_path),
                          "train_path_streaming": fit_task(model, streaming),
                          "ceiling": fit_task(model, ceiling_dataset(ctx))}, ctx.settings.repeats)
    rates = rates_of(timings, len(split))
    values = {"fit_vs_ceiling": ratio(rates["train_path"], rates["ceiling"]),
              "fit_streaming_vs_ceiling": ratio(rates["train_path_streaming"], rates["ceiling"])}
    raw = {**fit_raw(ctx, timings, rates), "cache": cfg.data.cache,
           "auto_cache_caches": cache_mode(cfg.data, lambda: decoded_bytes(ctx.prep.handlers, split)) == "memory"}
    return values, raw


@BENCHMARKS.register("xla")
def xla(ctx):
    """Training samples/s on in-memory arrays with jit_compile ÷ without."""
    data = ceiling_dataset(ctx)  # in-memory inputs: the step itself is what XLA changes
    timings = interleave({"no_xla": fit_task(compiled_model(ctx, ctx.cfg), data),
                          "xla": fit_task(compiled_model(ctx, with_training(ctx.cfg, jit_compile=True)), data)},
                         ctx.settings.repeats)
    rates = rates_of(timings, len(ctx.train_split))
    return {"xla_fit_speedup": ratio(rates["xla"], rates["no_xla"])}, fit_raw(ctx, timings, rates)
