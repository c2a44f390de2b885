"""training.strategy → a tf.distribute strategy, one builder per name."""
import json
import os

import tensorflow as tf


def _one_device():
    # The default strategy places work on the first GPU if any, else the CPU. Not
    # OneDeviceStrategy: Keras BackupAndRestore refuses it (tf_keras 2.21).
    return tf.distribute.get_strategy()


def _mirrored():
    return tf.distribute.MirroredStrategy()


def _multi_worker():
    # Reads the cluster from TF_CONFIG (or a SLURM allocation when TF_CONFIG is unset).
    resolver = None
    if "TF_CONFIG" not in os.environ and "SLURM_JOB_ID" in os.environ:
        resolver = tf.distribute.cluster_resolver.SlurmClusterResolver()
    return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)


def _tpu():
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def _cluster_configured():
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    return sum(len(v) for v in cluster.values()) > 1


def _auto():
    if _cluster_configured():
        return _multi_worker()
    return _mirrored() if len(tf.config.list_logical_devices("GPU")) > 1 else _one_device()


STRATEGIES = {"auto": _auto, "one_device": _one_device, "mirrored": _mirrored,
              "multi_worker": _multi_worker, "tpu": _tpu}


def make_strategy(name):
    return STRATEGIES[name]()
