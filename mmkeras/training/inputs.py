"""Input pipelines for model.fit under any strategy: each worker reads its own share of the records.

Each worker builds its pipeline over every W-th validated record (W workers),
before any file is decoded, batched by the global batch size, with tf.data
auto-sharding off. tf.distribute splits each of a worker's batches into W × R
pieces (R replicas per worker) and feeds R of them per step, so one step consumes
`training.batch_size` records over the cluster and an epoch reads every record
once; the last, partial batch is handled by tf.distribute (an empty batch for a
worker whose share ran out one batch early). Auto-sharding by data
(AutoShardPolicy.DATA) would instead decode every record on every worker and
needs the record order identical on all of them, which parallel,
non-deterministic decoding does not give.
"""
import numpy as np
import tensorflow as tf

from mmkeras.data.pipeline import make_dataset
from mmkeras.heads import head_targets


def shard(split, index, count):
    """Every `count`-th record of `split`, starting at `index`."""
    return split if count == 1 else split.subset(np.arange(index, len(split), count))


def worker_dataset(worker, split, cfg, prep, training):
    """This worker's share of `split` as a dataset for `model.fit`.

    Args:
        worker: this process's `Worker` (its index among the workers).
        split: the validated records.
        cfg: the run's Config; `training.batch_size` is the global batch.
        prep: fitted Preprocessing (handlers, label names).
        training: shuffle and random crops when True.
    """
    part = shard(split, worker.index, worker.workers)
    ds = make_dataset(part, prep.handlers, cfg.data, cfg.training.batch_size, training=training,
                      targets=head_targets(part, cfg, prep.labels), seed=cfg.training.seed)
    if worker.workers == 1:
        return ds
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    # Keras takes a known cardinality as the steps per epoch, but a worker's share holds 1/W of
    # the steps' batches: with an unknown one it runs until the shares (synchronised) run out.
    return ds.with_options(options).filter(lambda *_: True)


def steps_per_epoch(n_records, worker, global_batch):
    """Training steps in one epoch: the largest worker share over one worker's part of the batch."""
    largest_share = -(-n_records // worker.workers)
    return -(-largest_share * worker.workers // global_batch)
