"""Input pipelines for model.fit under any strategy.

`training.batch_size` is the global batch. With one replica the split is simply
batched by it. With several (MirroredStrategy, MultiWorkerMirroredStrategy), each
worker builds its own pipeline over every W-th record (W workers) before any file
is decoded (`strategy.distribute_datasets_from_function`), and cuts one pass over
its share into exactly `steps × R` per-replica batches (R replicas per worker) of
as equal sizes as possible: every worker takes the same number of steps, every
record is read once per epoch, and no replica ever gets an empty batch. (A
tf.distribute split of a last, partial batch can leave a replica empty, and
TF 2.21's CPU convolutions return wrong shapes for an empty batch.) Auto-sharding
by data (AutoShardPolicy.DATA) would instead decode every record on every worker
and needs the record order identical on all of them, which parallel decoding does
not give.
"""
import contextlib
import glob
import os

import numpy as np

from mmkeras.data.pipeline import make_dataset
from mmkeras.errors import DataError
from mmkeras.heads import head_sample_weights, head_targets


def shard(split, index, count):
    """Every `count`-th record of `split`, starting at `index`."""
    return split if count == 1 else split.subset(np.arange(index, len(split), count))


def even_sizes(n, parts):
    """`parts` batch sizes summing to `n` that differ by at most one, larger first."""
    return [n // parts + (i < n % parts) for i in range(parts)]


def steps_per_epoch(n_records, global_batch):
    return -(-n_records // global_batch)


def distributed_dataset(strategy, worker, split, cfg, prep, training, cache_path=None):
    """`split` as model.fit input under `strategy` → (dataset, steps per epoch, or None for one replica).

    Args:
        strategy: the tf.distribute strategy training runs under.
        worker: this process's `Worker` (workers and replicas in the cluster).
        split: the validated records.
        cfg: the run's Config; `training.batch_size` is the global batch.
        prep: fitted Preprocessing (handlers, label names).
        training: shuffle and random crops when True.
        cache_path: file prefix of this split's disk cache (`data.cache: disk`); each input
            pipeline appends its id, since every worker caches its own share.
    """
    global_batch = cfg.training.batch_size

    def pipeline(records, batch_size, pipeline_id=None):
        path = cache_path if cache_path is None or pipeline_id is None else f"{cache_path}-p{pipeline_id}"
        return make_dataset(records, prep.handlers, cfg.data, batch_size, training=training,
                            targets=head_targets(records, cfg, prep.labels), seed=cfg.training.seed,
                            cache_path=path, sample_weights=head_sample_weights(records, cfg))

    if worker.replicas == 1:
        return pipeline(split, global_batch), None
    steps = steps_per_epoch(len(split), global_batch)
    per_worker = worker.replicas // worker.workers
    if len(split) // worker.workers < steps * per_worker:
        raise DataError(f"{split.manifest}: {len(split)} records cannot give each of {worker.replicas} replicas "
                        f"a batch in each of {steps} steps; use more records or fewer replicas")

    def dataset_fn(context):
        part = shard(split, context.input_pipeline_id, context.num_input_pipelines)
        sizes = even_sizes(len(part), steps * per_worker)
        # Repeated: Keras keeps one iterator over all epochs of a distributed dataset.
        return pipeline(part, max(sizes), context.input_pipeline_id).rebatch(sizes).repeat()

    return strategy.distribute_datasets_from_function(dataset_fn), steps


CACHED_SPLITS = ("train", "validation")  # the splits read every epoch, so the ones a disk cache pays for


def fit_inputs(strategy, worker, splits, cfg, prep, cache_dir=None):
    """model.fit's data arguments for the train and validation splits (disk caches under `cache_dir`)."""
    def cache_path(name):
        return None if cache_dir is None else os.path.join(cache_dir, name)

    x, steps = distributed_dataset(strategy, worker, splits["train"], cfg, prep, training=True,
                                   cache_path=cache_path("train"))
    val, val_steps = distributed_dataset(strategy, worker, splits["validation"], cfg, prep, training=False,
                                         cache_path=cache_path("validation"))
    return {"x": x, "steps_per_epoch": steps, "validation_data": val, "validation_steps": val_steps}


def remove_disk_caches(cache_dir):
    """Delete the disk caches fit_inputs wrote under `cache_dir` (and the folder, if left empty).

    Only mmkeras's own files go, in case the folder holds anything else.
    """
    for name in CACHED_SPLITS:
        for path in glob.glob(os.path.join(glob.escape(cache_dir), f"{name}-*")):
            # Workers sharing a data.cache_dir finish together and may remove the same files.
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
    with contextlib.suppress(OSError):  # absent, or holds someone else's files
        os.rmdir(cache_dir)
