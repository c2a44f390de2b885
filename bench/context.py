"""What the benchmarks share: settings, the demo data loaded once, one trained and
exported run, and subprocesses of the real CLIs (train.py, python -m export).

Everything heavy is loaded on first use, so `--only NAME` pays only for what NAME needs.
"""
import dataclasses
import functools
import os
import subprocess
import sys
import time
from typing import Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass(frozen=True)
class Settings:
    """How much work each benchmark does.

    Args:
        quick: the reduced mode (`--quick`).
        repeats: timed repeats per measurement (medians; warm-up excluded).
        records: training records read by the pipeline and fit benchmarks (None = the whole split).
        train_epochs: epochs of the run exported for the int8 figures (None = the config's).
        rss_records: records of the 1× manifest of rss_growth_10x (None = the whole split).
        latency_samples: batch-1 test samples timed per latency (one repeat each).
    """

    quick: bool
    repeats: int
    records: Optional[int]
    train_epochs: Optional[int]
    rss_records: Optional[int]
    latency_samples: int


# Quick: every measurement still takes >= 5 repeats; fewer records and one short training run.
QUICK = Settings(quick=True, repeats=5, records=512, train_epochs=2, rss_records=128, latency_samples=20)
FULL = Settings(quick=False, repeats=7, records=None, train_epochs=None, rss_records=None, latency_samples=100)


class ChildFailed(RuntimeError):
    """A train.py or export subprocess exited with an error (the message ends with its log)."""


@dataclasses.dataclass
class ChildResult:
    wall_s: float
    peak_rss_bytes: int


def run_python(args, log_path):
    """Run `python ARGS` from the repo root, output to `log_path` → wall time and the child's own peak RSS.

    The child runs under bench/peak_rss.py, which says why a direct `os.wait4` would be wrong here.
    """
    from mmkeras.io import read_json

    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    result_path = f"{log_path}.rss.json"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    with open(log_path, "w", encoding="utf-8") as log:
        start = time.perf_counter()
        code = subprocess.run([sys.executable, "-m", "bench.peak_rss", result_path, sys.executable, *args],
                              cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
        wall = time.perf_counter() - start
    if code != 0:
        with open(log_path, encoding="utf-8") as f:
            tail = "".join(f.readlines()[-15:])
        raise ChildFailed(f"`python {' '.join(args)}` exited with {code}; end of {log_path}:\n{tail}")
    return ChildResult(wall, read_json(result_path)["peak_rss_bytes"])


class BenchContext:
    """Shared state of one harness run.

    Args:
        settings: QUICK or FULL.
        config_path: the config every benchmark uses (the demo by default).
        work_dir: where runs, logs and temporary manifests go.
        run_dir: an existing trained run to export instead of training one.
    """

    def __init__(self, settings, config_path, work_dir, run_dir=None):
        self.settings = settings
        self.config_path = os.path.abspath(config_path)
        self.work_dir = os.path.abspath(work_dir)
        self.run_dir = os.path.abspath(run_dir or os.path.join(self.work_dir, "run-quick" if settings.quick else "run"))
        self.logs = os.path.join(self.work_dir, "logs")

    # === Data, loaded in this process ===

    @functools.cached_property
    def cfg(self):
        from mmkeras.config import load_config

        return load_config(self.config_path)

    @functools.cached_property
    def splits(self):
        from mmkeras.data.preprocessing import load_splits
        from mmkeras.data.records import BadRecordLog

        return load_splits(self.cfg, BadRecordLog("skip"))

    @functools.cached_property
    def prep(self):
        from mmkeras.data.preprocessing import Preprocessing

        return Preprocessing.fit(self.cfg, self.splits["train"])

    @functools.cached_property
    def train_split(self):
        """The training records the in-process benchmarks read (the first N in quick mode)."""
        import numpy as np

        train = self.splits["train"]
        n = min(len(train), self.settings.records or len(train))
        return train if n == len(train) else train.subset(np.arange(n))

    # === The trained and exported run ===

    def trained_run(self):
        """The run directory, trained by train.py unless it already holds a model."""
        if not os.path.exists(os.path.join(self.run_dir, "model.keras")):
            epochs = self.settings.train_epochs
            overrides = [] if epochs is None else ["--set", f"training.epochs={epochs}"]
            print(f"  training {self.run_dir} (log: {self.logs}/train.log)", flush=True)
            run_python(["train.py", "--config", self.config_path, "--output", self.run_dir, *overrides],
                       os.path.join(self.logs, "train.log"))
        else:
            print(f"  reusing the trained run {self.run_dir}", flush=True)
        return self.run_dir

    @functools.cache
    def exported(self):
        """(export/report.json as a dict, wall seconds of `python -m export`), exported once per harness run."""
        from mmkeras.io import read_json
        from mmkeras.run_dir import ExportDir, RunDir

        run_dir = self.trained_run()
        print(f"  exporting {run_dir} (log: {self.logs}/export.log)", flush=True)
        child = run_python(["-m", "export", run_dir], os.path.join(self.logs, "export.log"))
        return read_json(ExportDir(RunDir(run_dir).export).report("json")), child.wall_s

    @functools.cached_property
    def export_context(self):
        """The exported run loaded as export does (model, preprocessing, test samples)."""
        from mmkeras.export.context import ExportContext

        self.exported()
        return ExportContext(self.run_dir)
