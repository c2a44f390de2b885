"""training.strategy → a tf.distribute strategy (one builder per name), and this process's place in it.

`make_strategy` must run before any other TensorFlow op: MultiWorkerMirroredStrategy
configures collective ops at startup and refuses once the runtime is up.
"""
import dataclasses
import json
import os
import shutil

import tensorflow as tf
import tf_keras as keras

from mmkeras.errors import ConfigError, UserError


def _one_device():
    # The default strategy places work on the first GPU if any, else the CPU. Not
    # OneDeviceStrategy: Keras BackupAndRestore refuses it (tf_keras 2.21).
    return tf.distribute.get_strategy()


def _mirrored():
    # Every GPU; without GPUs every logical CPU device, which is one unless the
    # process split the CPU (tf.config.set_logical_device_configuration), as the tests do.
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([d.name for d in devices])


def _in_slurm_step():
    """True when `srun` started this process as one of several tasks of a job step."""
    return int(os.environ.get("SLURM_STEP_NUM_TASKS", "1")) > 1


def _slurm_resolver():
    # SlurmClusterResolver pairs each task with GPUs (and sets CUDA_VISIBLE_DEVICES); it lists no
    # task at all on nodes without GPUs (TF 2.21), so there TF_CONFIG must describe the cluster.
    if "CUDA_VISIBLE_DEVICES" not in os.environ and not shutil.which("nvidia-smi"):
        raise UserError("SLURM job step without GPUs: SlurmClusterResolver needs GPUs; set TF_CONFIG "
                        "in each task instead (see the README, 'Several machines')")
    return tf.distribute.cluster_resolver.SlurmClusterResolver()


def _multi_worker():
    # The cluster comes from TF_CONFIG; without it, from the SLURM job step that started this task.
    resolver = _slurm_resolver() if "TF_CONFIG" not in os.environ and _in_slurm_step() else None
    return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)


def _tpu():
    # A TPU VM's own chips are "local"; TPU_NAME names a remote TPU (node or pod slice).
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver.connect(tpu=os.environ.get("TPU_NAME", "local"))
    return tf.distribute.TPUStrategy(resolver)


def _cluster_configured():
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    return sum(len(v) for v in cluster.values()) > 1 or _in_slurm_step()


def _auto():
    if _cluster_configured():
        return _multi_worker()
    return _mirrored() if len(tf.config.list_logical_devices("GPU")) > 1 else _one_device()


STRATEGIES = {"auto": _auto, "one_device": _one_device, "mirrored": _mirrored,
              "multi_worker": _multi_worker, "tpu": _tpu}


def make_strategy(name):
    return STRATEGIES[name]()


@dataclasses.dataclass(frozen=True)
class Worker:
    """This process's place in the training cluster.

    Args:
        name: task type and index, e.g. "worker 1" ("" in a single-process run).
        workers: processes training together, each with its own input pipeline.
        replicas: model replicas across all workers; the global batch is split among them.
        is_chief: the one process that writes the run directory.
    Example:
        worker = Worker.of(make_strategy("auto")); worker.per_replica_batch(32)
    """

    name: str
    workers: int
    replicas: int
    is_chief: bool

    @classmethod
    def of(cls, strategy):
        # One Python process drives every host of a TPU: only MultiWorkerMirroredStrategy has several.
        multi = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        resolver = strategy.cluster_resolver if multi else None
        spec = resolver.cluster_spec().as_dict() if resolver else {}
        workers = len(spec.get("chief", [])) + len(spec.get("worker", []))
        if workers < 2:
            return cls("", 1, strategy.num_replicas_in_sync, True)
        # should_checkpoint is tf.distribute's own chief test (the chief task, else worker 0).
        return cls(f"{resolver.task_type} {resolver.task_id}", workers, strategy.num_replicas_in_sync,
                   strategy.extended.should_checkpoint)

    def per_replica_batch(self, global_batch):
        if global_batch % self.replicas:
            raise ConfigError(f"training.batch_size: the global batch is split evenly across the {self.replicas} "
                              f"replicas, so it must be a multiple of {self.replicas}; got {global_batch}")
        return global_batch // self.replicas


def set_precision(mixed):
    """Mixed precision before any layer is built: float16 on GPUs, bfloat16 on CPUs and TPUs.

    Heads and the log-mel front end pin themselves to float32.
    """
    on_gpu = bool(tf.config.list_logical_devices("GPU"))
    policy = ("mixed_float16" if on_gpu else "mixed_bfloat16") if mixed else "float32"
    keras.mixed_precision.set_global_policy(policy)
    return policy
