"""Distribution and fault tolerance through the real train.py: replicas, several worker
processes, kills and restarts, Ctrl-C, repeatable seeds, mixed precision.

Every process runs with a timeout and is killed in `finally`. Multi-worker tests use
localhost ports the OS hands out, and a light config (image + numbers) because two
TensorFlow processes share the 2 CI cores.
"""
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import zipfile

import pytest
import yaml

from conftest import tiny_config_dict
from mmkeras.config import load_config
from mmkeras.errors import ConfigError, UserError
from mmkeras.run_dir import RunDir
from mmkeras.training.inputs import even_sizes
from mmkeras.run_dir import read_history
from mmkeras.training.loop import EpochHistory, history_key
from mmkeras.training.strategy import Worker

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 400  # seconds for one training process; the machine may be shared

# Splits TensorFlow's one CPU into two logical devices before the runtime starts, then runs train.py.
TWO_CPUS = """import runpy, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
sys.argv = ["train.py"] + sys.argv[1:]
runpy.run_path("train.py", run_name="__main__")
"""


def write_config(folder, data, light=False, **training):
    raw = tiny_config_dict(data, **training)
    if light:
        raw["inputs"] = [i for i in raw["inputs"] if i["name"] in ("image", "stats")]
    path = os.path.join(folder, "tiny.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(raw, f)
    return path


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@contextlib.contextmanager
def launched():
    """Start processes with `start(args, log, env=...)`; any still running at exit are killed."""
    procs = []

    def start(args, log, env=None):
        out = open(log, "w")
        # Unbuffered, with faulthandler: a native crash (seen twice under load, exit -11) leaves
        # every line printed before it and the Python stack where it happened in the log.
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1", **(env or {})}
        procs.append(subprocess.Popen([sys.executable, *args], cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                      env=env, start_new_session=True))
        out.close()
        return procs[-1]

    try:
        yield start
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def wait_all(procs, logs):
    for p, log in zip(procs, logs):
        try:
            p.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"timed out; log tail:\n{open(log).read()[-3000:]}")
    return [open(log).read() for log in logs]


def wait_for_backup(run_dir, procs, timeout=TIMEOUT):
    """Poll until BackupAndRestore has written its first state (the end of epoch 1)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(os.path.join(run_dir, "backup", "chief", "checkpoint")):
            return
        if any(p.poll() is not None for p in procs):
            pytest.fail("training ended before the first backup")
        time.sleep(0.1)
    pytest.fail("no backup appeared")


def worker_envs(tmp_path, n=2):
    hosts = [f"localhost:{p}" for p in free_ports(n)]
    # TMPDIR: a killed worker cannot remove its temporary directory; keep any leftover in tmp_path.
    return [{"TF_CONFIG": json.dumps({"cluster": {"worker": hosts}, "task": {"type": "worker", "index": i}}),
             "TMPDIR": str(tmp_path)} for i in range(n)]


def epochs_in(history_path):
    return [int(r["epoch"]) for r in read_history(history_path)]


# === Fast checks of the pieces ===


def test_global_batch_must_split_evenly_across_replicas():
    assert Worker("", 1, 2, True).per_replica_batch(8) == 4
    with pytest.raises(ConfigError, match="training.batch_size: .* 3 replicas, so it must be a multiple of 3; got 8"):
        Worker("", 1, 3, True).per_replica_batch(8)


def test_replica_batches_are_never_empty():
    # 17 validation records, 3 steps of 2 replicas: a plain split of the last batch of 1 leaves a replica empty.
    sizes = even_sizes(17, 6)
    assert sum(sizes) == 17 and min(sizes) >= 1 and max(sizes) - min(sizes) <= 1


def test_history_keeps_each_epoch_once_when_an_epoch_is_redone(tmp_path):
    path = str(tmp_path / "history.csv")
    history = EpochHistory(path)
    for epoch in range(3):
        history.on_epoch_end(epoch, {"loss": 1.0 / (epoch + 1), "val_loss": 2.0})
    # Killed after epoch 2's row but before its backup: the resumed run redoes epochs 1 and 2.
    history.on_epoch_end(1, {"loss": 0.25, "val_loss": 1.5})
    assert [(r["epoch"], r["loss"]) for r in read_history(path)] == [("0", "1.0"), ("1", "0.25")]


def test_non_chief_writes_a_temporary_directory_removed_at_exit(tmp_path):
    shared = RunDir(str(tmp_path / "run"))
    with shared.for_worker(Worker("worker 1", 2, 2, False)) as run:
        assert run.path != shared.path and os.path.isdir(run.path)
        assert run.backup == shared.backup  # every worker restores the chief's backup
        assert run.chief.history == shared.history
    assert not os.path.exists(run.path)
    with shared.for_worker(Worker("", 1, 1, True)) as run:
        assert run is shared


def test_slurm_job_step_resolves_to_a_cluster(monkeypatch):
    from mmkeras.training import strategy

    for name, value in {"SLURM_PROCID": "1", "SLURM_STEP_NUM_TASKS": "2", "SLURM_STEP_NODELIST": "node[01-02]",
                        "SLURM_STEP_TASKS_PER_NODE": "1(x2)", "CUDA_VISIBLE_DEVICES": "0,1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert strategy._cluster_configured()
    resolver = strategy._slurm_resolver()
    assert resolver.cluster_spec().as_dict() == {"worker": ["node01:8888", "node02:8888"]}
    assert (resolver.task_type, resolver.task_id) == ("worker", 1)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1"  # each task: its node's two GPUs
    # Without GPUs the resolver lists no tasks: a clear error instead of one cluster per task.
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setattr(strategy.shutil, "which", lambda _: None)
    with pytest.raises(UserError, match="SLURM job step without GPUs: .* set TF_CONFIG"):
        strategy._slurm_resolver()


# === Real processes ===


def test_mirrored_on_two_cpu_devices_reads_every_record_once(tiny_data, tmp_path):
    # 17 validation records: the last global batch (1 record) is smaller than the 2 replicas.
    val17 = os.path.join(tiny_data, "val17.jsonl")  # beside the files its records name
    with open(os.path.join(tiny_data, "val.jsonl")) as f, open(val17, "w") as out:
        out.writelines(f.readlines()[:17])
    config = write_config(str(tmp_path), tiny_data, light=True, strategy="mirrored")
    raw = yaml.safe_load(open(config))
    raw["data"]["validation"] = val17
    yaml.safe_dump(raw, open(config, "w"))
    (tmp_path / "two_cpus.py").write_text(TWO_CPUS)
    out = tmp_path / "run"
    with launched() as start:
        proc = start([str(tmp_path / "two_cpus.py"), "--config", config, "--output", str(out)], tmp_path / "log")
        (log,) = wait_all([proc], [tmp_path / "log"])
    assert proc.returncode == 0, log[-3000:]
    assert "MirroredStrategy, 2 replica(s) in 1 worker(s), batch 4 per replica" in log
    assert os.path.exists(out / "model.keras") and os.path.exists(out / "metrics.json")
    accuracy = history_key(load_config(config), "label", "accuracy")  # prefixed: there are auxiliary heads
    for row in read_history(str(out / "history.csv")):  # accuracies over all 48 / 17 records
        for key, n in ((accuracy, 48), (f"val_{accuracy}", 17)):
            assert abs(float(row[key]) * n - round(float(row[key]) * n)) < 1e-3, (key, row[key])


def test_two_workers_only_the_chief_writes(tiny_data, tmp_path):
    config = write_config(str(tmp_path), tiny_data, light=True, strategy="multi_worker")
    outs, logs = [tmp_path / "chief_run", tmp_path / "worker_run"], [tmp_path / "w0.log", tmp_path / "w1.log"]
    with launched() as start:
        procs = [start(["train.py", "--config", config, "--output", str(out)], log, env)
                 for out, log, env in zip(outs, logs, worker_envs(tmp_path))]
        texts = wait_all(procs, logs)
    for p, text in zip(procs, texts):
        assert p.returncode == 0, text[-3000:]
    assert "CollectiveAllReduceStrategy, 2 replica(s) in 2 worker(s), batch 4 per replica" in texts[0]
    for name in ("model.keras", "metrics.json", "history.csv", "config.yaml", "checkpoints/best.weights.h5"):
        assert os.path.exists(outs[0] / name), name
    assert epochs_in(str(outs[0] / "history.csv")) == [0, 1]
    written = [os.path.join(d, f) for d, _, files in os.walk(outs[1]) for f in files]
    assert written == []  # the worker's own --output: nothing, at most empty folders
    temp = re.search(r"this worker writes (\S+) \(removed at exit\)", texts[1]).group(1)
    assert not os.path.exists(temp)
    assert not [d for d, _, _ in os.walk(outs[0]) if "workertemp" in d]


@pytest.mark.slow
def test_killed_workers_resume_from_the_backup(tiny_data, tmp_path):
    config = write_config(str(tmp_path), tiny_data, light=True, strategy="multi_worker", epochs=6)
    out = tmp_path / "run"
    command = ["train.py", "--config", config, "--output", str(out)]
    envs = worker_envs(tmp_path)
    with launched() as start:
        first = [start(command, tmp_path / f"first{i}.log", env) for i, env in enumerate(envs)]
        wait_for_backup(str(out), first)
        for p in first:  # preempted: no chance to clean up
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        logs = [tmp_path / f"again{i}.log" for i in range(2)]
        again = [start(command, log, env) for log, env in zip(logs, envs)]
        texts = wait_all(again, logs)
    for p, text in zip(again, texts):
        assert p.returncode == 0, text[-3000:]
        assert "resuming the interrupted run" in text
        assert not re.search(r"^\s*1/6 ", text, re.M)  # restarted after the backed-up epochs
    assert epochs_in(str(out / "history.csv")) == list(range(6))
    metrics = json.load(open(out / "metrics.json"))
    assert metrics["test"]["label"]["accuracy"] > 0.6


def test_ctrl_c_prints_the_command_that_resumes(tiny_data, tmp_path):
    config = write_config(str(tmp_path), tiny_data, light=True, epochs=6)
    out = tmp_path / "run"
    command = ["train.py", "--config", config, "--output", str(out)]
    with launched() as start:
        proc = start(command, tmp_path / "first.log")
        wait_for_backup(str(out), [proc])
        os.killpg(proc.pid, signal.SIGINT)
        (text,) = wait_all([proc], [tmp_path / "first.log"])
        assert proc.returncode == 130, text[-3000:]
        assert "The same command resumes from the last finished epoch:" in text
        resume = text.split("The same command resumes from the last finished epoch:\n")[1].splitlines()[0]
        assert resume.strip().endswith(" ".join(command))
        proc = start(command, tmp_path / "again.log")
        (text,) = wait_all([proc], [tmp_path / "again.log"])
    assert proc.returncode == 0 and "resuming the interrupted run" in text, text[-3000:]
    assert epochs_in(str(out / "history.csv")) == list(range(6))


def test_seeded_runs_repeat_exactly_with_deterministic(tiny_data, tmp_path):
    config = write_config(str(tmp_path), tiny_data)  # all modalities: random audio crops, dropout
    raw = yaml.safe_load(open(config))
    del raw["data"]["test"]  # no evaluation: only training has to repeat
    yaml.safe_dump(raw, open(config, "w"))
    runs = [tmp_path / "a", tmp_path / "b"]
    with launched() as start:
        procs = [start(["train.py", "--config", config, "--output", str(run), "--deterministic"],
                       tmp_path / f"{run.name}.log") for run in runs]
        texts = wait_all(procs, [tmp_path / f"{run.name}.log" for run in runs])
    for p, text in zip(procs, texts):
        assert p.returncode == 0, text[-3000:]
    losses = [[(r["loss"], r["val_loss"]) for r in read_history(str(run / "history.csv"))] for run in runs]
    assert len(losses[0]) == 2 and losses[0] == losses[1]


def test_mixed_precision_keeps_heads_in_float32(tiny_data, tmp_path):
    config = write_config(str(tmp_path), tiny_data, mixed_precision=True)
    out = tmp_path / "run"
    with launched() as start:
        proc = start(["train.py", "--config", config, "--output", str(out)], tmp_path / "log")
        (text,) = wait_all([proc], [tmp_path / "log"])
    assert proc.returncode == 0, text[-3000:]
    assert "precision mixed_bfloat16" in text  # CPU: bfloat16, no loss scaling needed
    assert os.path.exists(out / "metrics.json")
    with zipfile.ZipFile(out / "model.keras") as archive:
        layers = json.loads(archive.read("config.json"))["config"]["layers"]
    policy = {layer["name"]: layer["config"]["dtype"] for layer in layers}
    name = lambda p: p["config"]["name"] if isinstance(p, dict) else p  # noqa: E731
    assert name(policy["label"]) == "float32" and name(policy["speech_logmel"]) == "float32"
    assert name(policy["image_stage1_conv1"]) == "mixed_bfloat16"


def test_one_writer_per_run_directory_and_a_backup_resumes_only_its_config(tiny_data, tmp_path):
    # Still training when killed.
    config = write_config(str(tmp_path), tiny_data, light=True, epochs=500, early_stopping_patience=500)
    out = tmp_path / "run"
    command = [sys.executable, "train.py", "--config", config, "--output", str(out)]
    with launched() as start:
        first = start(command[1:], tmp_path / "first.log")
        wait_for_backup(str(out), [first])
        # A second train.py into the directory the first is writing: one line, exit 2, nothing touched.
        second = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT)
        assert second.returncode == 2, second.stderr[-3000:]
        assert second.stderr.strip() == (f"error: {out}: another train.py is writing this run directory; "
                                         "wait for it to finish or train into another --output")
        assert first.poll() is None
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    # The backup belongs to its config: another one is told so instead of failing to restore it.
    changed = subprocess.run([*command, "--set", "fusion.dim=12"], cwd=REPO, capture_output=True, text=True,
                             timeout=TIMEOUT)
    assert changed.returncode == 2, changed.stderr[-3000:]
    assert f"error: {out} holds an interrupted run of another config (fusion.dim: 16 → 12)" in changed.stderr
    assert os.path.isdir(out / "backup")
