"""Validated splits → streaming tf.data pipelines of (inputs, targets).

Order of stages, and why:
  slices of paths/strings (cheap) → shuffle (when not caching) → parallel decode →
  cache (decoded, deterministic part) → shuffle (when caching) →
  finalize (per-epoch random crops) → batch → prefetch.
Files are read lazily, so the data set never has to fit in memory. Caching is an
optimisation: `memory` when the decoded split fits (`auto` decides by size), or
`disk` — decoded samples written to a file during the first epoch and streamed
back from it afterwards, for data sets too large for memory whose decoding
(compressed audio above all) costs more than reading the decoded bytes.
"""
import dataclasses
import functools
import glob
import hashlib
import json
import os

import numpy as np
import tensorflow as tf

from mmkeras.names import presence_key

AUTOTUNE = tf.data.AUTOTUNE


def decoded_bytes(handlers, split):
    """Bytes of a split's decoded samples as a cache holds them: before the per-epoch crops,
    so audio counts whole waveforms (each handler's `decoded_bytes`)."""
    return sum(h.decoded_bytes(split.values[h.name], split.presence[h.name]) for h in handlers)


def cache_mode(data_cfg, size, cache_path=None):
    """Where decoded samples are kept between epochs: "memory", "disk" or "none".

    `auto` caches in memory when the decoded split fits in `cache_limit_mb`; `size` is a
    callable giving the split's `decoded_bytes`, called only then (audio reads file headers).
    `disk` needs a `cache_path` (train.py gives one per split and worker); one-pass readers
    (evaluation, export) give none and stream, since a cache they read once would only cost a write.
    """
    if data_cfg.cache == "auto":
        return "memory" if size() <= data_cfg.cache_limit_mb * 2**20 else "none"
    if data_cfg.cache == "disk" and cache_path is None:
        return "none"
    return data_cfg.cache


def shuffle_buffer(data_cfg, n, cache, size):
    """Decoded samples held by the per-epoch shuffle after a cache.

    A disk cache is for data that does not fit in memory, so its buffer is also kept
    within `cache_limit_mb` of decoded samples, at the split's mean decoded size (`size()`:
    its `decoded_bytes`).
    """
    buffer = min(n, data_cfg.shuffle_buffer)
    if cache == "disk":
        per_sample = max(size() // max(n, 1), 1)
        buffer = min(buffer, max(1, data_cfg.cache_limit_mb * 2**20 // per_sample))
    return buffer


# Bump when decoding changes what a cached sample holds, so no run reads an older version's cache.
CACHE_VERSION = 1


def _json_default(value):
    return value.tolist() if hasattr(value, "tolist") else str(value)


def fingerprint(split, handlers, targets):
    """A hash of everything a disk cache holds: records, file sizes and times, preprocessing, targets.

    A changed manifest, a file rewritten in place, a new vocabulary or input setting (or a
    new CACHE_VERSION) gives a new fingerprint, so a cache left by an earlier run is never
    read for different data.
    """
    digest = hashlib.sha256(f"mmkeras-cache-{CACHE_VERSION}".encode())
    for h in handlers:
        values = split.values[h.name]
        # The input's settings without its encoder's: the encoder does not change decoded samples.
        settings = {k: v for k, v in dataclasses.asdict(h.cfg).items() if k != "encoder"}
        digest.update(json.dumps([settings, h.state, values, split.presence[h.name]], default=_json_default,
                                 sort_keys=True).encode())
        if h.reads_files:
            stats = [os.stat(v) for v, p in zip(values, split.presence[h.name]) if p > 0]
            digest.update(np.array([(s.st_size, s.st_mtime_ns) for s in stats], np.int64).tobytes())
    for name, value in sorted((targets or {}).items()):
        digest.update(name.encode() + np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()[:16]


def disk_cache_file(cache_path, digest):
    """`<cache_path>-<digest>`, ready for `Dataset.cache`: caches of other fingerprints and the
    leftovers of an interrupted first pass (lock and partial files) under this prefix are removed.

    tf.data writes the cache during the first full pass and finalises it at the end of
    that pass (`.index` + `.data-*`); an interrupted pass leaves a lock file that would
    make every later run fail, so it is cleared here (one process owns each prefix).
    """
    os.makedirs(os.path.dirname(cache_path), exist_ok=True)
    path = f"{cache_path}-{digest}"
    complete = os.path.exists(f"{path}.index")
    for leftover in glob.glob(f"{glob.escape(cache_path)}-*"):
        if not (complete and (leftover == f"{path}.index" or leftover.startswith(f"{path}.data-"))):
            os.remove(leftover)
    return path


def make_dataset(split, handlers, data_cfg, batch_size, training, targets=None, seed=0, cache_path=None,
                 sample_weights=None):
    """Build the tf.data pipeline for one split.

    Args:
        split: a validated `Split`.
        handlers: modality handlers with their fitted state, in input order.
        data_cfg: the config's `data` section (cache, shuffle buffer).
        batch_size: records per batch (mmkeras.training.inputs shards and re-batches per replica).
        training: shuffle and random crops when True; fixed order otherwise.
        targets: output name → numpy targets, or None for inputs only.
        cache_path: file prefix for `data.cache: disk` (a fingerprint is appended); None streams instead.
        sample_weights: head name → float32 [N] loss weights (needs `targets`), or None.
    """
    features = {}
    for h in handlers:
        features[h.name] = h.column(split.values[h.name])
        features[presence_key(h.name)] = split.presence[h.name].reshape(-1, 1)
    elements = (features,) + tuple(part for part in (targets, sample_weights) if part is not None)
    ds = tf.data.Dataset.from_tensor_slices(elements)
    size = functools.cache(lambda: decoded_bytes(handlers, split))  # only where a size decides
    cache = cache_mode(data_cfg, size, cache_path)
    if training:
        # Index slices are cheap to shuffle whole. With a cache the order is fixed once, so the
        # cache holds records in random order (not the manifest's, which may be sorted by label)
        # and the bounded shuffle after it mixes further every epoch.
        ds = ds.shuffle(len(split), seed=seed, reshuffle_each_iteration=cache == "none")

    # Written with tf.cond, so autograph has nothing to convert; skipping its pass over every
    # handler's decode saves ~0.3 s of tracing a map (there are 2 per split).
    @tf.autograph.experimental.do_not_convert
    def decode(x, *rest):
        out = dict(x)
        for h in handlers:
            present = x[presence_key(h.name)][0] > 0
            out[h.name] = tf.cond(present, lambda h=h: h.decode(x[h.name]),
                                  h.absent)
        return (out, *rest)

    @tf.autograph.experimental.do_not_convert
    def finalize(x, *rest):
        out = dict(x)
        for h in handlers:
            out[h.name] = h.finalize(x[h.name], training)
        return (out, *rest)

    ds = ds.map(decode, num_parallel_calls=AUTOTUNE, deterministic=not training)
    if cache != "none":
        ds = ds.cache(disk_cache_file(cache_path, fingerprint(split, handlers, targets)) if cache == "disk" else "")
        if training:
            ds = ds.shuffle(shuffle_buffer(data_cfg, len(split), cache, size), seed=seed,
                            reshuffle_each_iteration=True)
    ds = ds.map(finalize, num_parallel_calls=AUTOTUNE, deterministic=not training)
    return ds.batch(batch_size).prefetch(AUTOTUNE)
