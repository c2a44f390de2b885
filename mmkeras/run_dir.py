"""The run directory layout (a user contract: scripts read these paths)."""
import contextlib
import hashlib
import os
import shutil
import tempfile

from mmkeras.errors import UserError


class RunDir:
    """Paths inside one run directory.

    In multi-worker training only the chief writes the run directory; every other
    worker writes the same files into a temporary directory (`for_worker`), because
    saving is collective and all workers must take part. `chief` is the real run
    directory either way: every worker restores from its backup.

    Args:
        path: the directory this process writes.
        chief_path: the real run directory, when `path` is a worker's temporary one.
    Example:
        run = RunDir("runs/demo"); run.model  # runs/demo/model.keras
    """

    def __init__(self, path, chief_path=None):
        self.path = os.path.abspath(path)
        self.chief = self if chief_path is None else RunDir(chief_path)

    def __getattr__(self, name):
        if name in LAYOUT:
            return os.path.join(self.path, LAYOUT[name])
        raise AttributeError(name)

    def cache_dir(self, root=None):
        """Where this run's disk caches go: RUN_DIR/cache, or a folder of its own under `root`.

        Under a shared `root` (`data.cache_dir`) each run gets `<run name>-<hash of its path>`,
        so runs never read or delete each other's caches, and a resumed run finds its own.
        (Without a root, a non-chief worker's caches live in its temporary run folder and go
        with it at exit: a restarted worker decodes its first epoch again.)
        """
        if root is None:
            return self.cache
        key = hashlib.sha256(self.chief.path.encode()).hexdigest()[:8]
        return os.path.join(os.path.abspath(root), f"{os.path.basename(self.chief.path)}-{key}")

    @property
    def backup(self):
        # Shared by all workers: BackupAndRestore itself keeps non-chief writes out of it.
        return os.path.join(self.chief.path, LAYOUT["backup"])

    def check(self, overwrite=False):
        """Refuse a finished run unless `overwrite`, touching nothing; → whether it is finished."""
        finished = os.path.exists(self.model)
        if finished and not overwrite:
            raise UserError(f"{self.path} already holds a trained run (model.keras); "
                            "pass --overwrite to replace it or --output to train elsewhere")
        return finished

    def prepare(self, overwrite=False, is_chief=True):
        """Create the directory; refuse to clobber a finished run, resume an interrupted one.

        Only the chief creates or replaces it; other workers check the same conditions.
        Returns True when an interrupted run's backup will be resumed.
        """
        finished = self.check(overwrite)
        resuming = not finished and os.path.isdir(self.backup) and bool(os.listdir(self.backup))
        if is_chief:
            if finished:
                shutil.rmtree(self.path)
            os.makedirs(self.path, exist_ok=True)
        return resuming

    @contextlib.contextmanager
    def for_worker(self, worker):
        """Yield the RunDir `worker` writes: this one for the chief, else a temporary one removed at exit."""
        if worker.is_chief:
            yield self
            return
        tmp = tempfile.mkdtemp(prefix=f"mmkeras-{worker.name.replace(' ', '')}-")
        try:
            yield RunDir(tmp, chief_path=self.path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


LAYOUT = {
    "config": "config.yaml",
    "model": "model.keras",
    "labels": "labels.json",
    "metrics": "metrics.json",
    "bad_records": "bad_records.jsonl",
    "history": "history.csv",
    "logs": "logs",
    "backup": "backup",
    "checkpoint": os.path.join("checkpoints", "best.weights.h5"),
    "export": "export",
    "cache": "cache",  # data.cache: disk, while training runs
}
