"""Validated splits → streaming tf.data pipelines of (inputs, targets).

Order of stages, and why:
  slices of paths/strings (cheap) → shuffle (when not caching) → parallel decode →
  cache (decoded, deterministic part; only when it fits) → shuffle (when caching) →
  finalize (per-epoch random crops) → batch → prefetch.
Files are read lazily, so the data set never has to fit in memory; caching is an
optimisation chosen by size.
"""
import numpy as np
import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE


def presence_key(name):
    """Model input name of the presence flag for input `name`."""
    return f"{name}_present"


def _decoded_bytes(handlers, n):
    per_sample = sum(4 * int(np.prod(h.feature_shape())) for h in handlers)
    return per_sample * n


def should_cache(data_cfg, handlers, n):
    if data_cfg.cache == "auto":
        return _decoded_bytes(handlers, n) <= data_cfg.cache_limit_mb * 2**20
    return data_cfg.cache == "memory"


def make_dataset(split, handlers, data_cfg, batch_size, training, targets=None, seed=0):
    """Build the tf.data pipeline for one split.

    Args:
        split: a validated `Split`.
        handlers: modality handlers with their fitted state, in input order.
        data_cfg: the config's `data` section (cache, shuffle buffer).
        batch_size: records per batch (mmkeras.training.inputs shards and re-batches per replica).
        training: shuffle and random crops when True; fixed order otherwise.
        targets: output name → numpy targets, or None for inputs only.
    """
    features = {}
    for h in handlers:
        features[h.name] = h.column(split.values[h.name])
        features[presence_key(h.name)] = split.presence[h.name].reshape(-1, 1)
    elements = (features, targets) if targets is not None else (features,)
    ds = tf.data.Dataset.from_tensor_slices(elements)
    cache = should_cache(data_cfg, handlers, len(split))
    buffer = min(len(split), data_cfg.shuffle_buffer)
    if training and not cache:
        ds = ds.shuffle(len(split), seed=seed, reshuffle_each_iteration=True)

    def decode(x, *rest):
        out = dict(x)
        for h in handlers:
            present = x[presence_key(h.name)][0] > 0
            out[h.name] = tf.cond(present, lambda h=h: h.decode(x[h.name]),
                                  h.absent)
        return (out, *rest)

    def finalize(x, *rest):
        out = dict(x)
        for h in handlers:
            out[h.name] = h.finalize(x[h.name], training)
        return (out, *rest)

    ds = ds.map(decode, num_parallel_calls=AUTOTUNE, deterministic=not training)
    if cache:
        ds = ds.cache()
        if training:
            ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(finalize, num_parallel_calls=AUTOTUNE, deterministic=not training)
    return ds.batch(batch_size).prefetch(AUTOTUNE)
