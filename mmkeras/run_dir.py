"""The run directory layout (a user contract: scripts read these paths)."""
import os
import shutil

from mmkeras.errors import UserError


class RunDir:
    """Paths inside one run directory.

    Args:
        path: the run directory.
    Example:
        run = RunDir("runs/demo"); run.model  # runs/demo/model.keras
    """

    def __init__(self, path):
        self.path = os.path.abspath(path)

    def __getattr__(self, name):
        if name in LAYOUT:
            return os.path.join(self.path, LAYOUT[name])
        raise AttributeError(name)

    def prepare(self, overwrite=False):
        """Create the directory; refuse to clobber a finished run, resume an interrupted one.

        Returns True when an interrupted run's backup will be resumed.
        """
        finished = os.path.exists(self.model)
        if finished and not overwrite:
            raise UserError(f"{self.path} already holds a trained run (model.keras); "
                            "pass --overwrite to replace it or --output to train elsewhere")
        if finished:
            shutil.rmtree(self.path)
        resuming = os.path.isdir(self.backup) and bool(os.listdir(self.backup))
        os.makedirs(self.path, exist_ok=True)
        return resuming


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
}
