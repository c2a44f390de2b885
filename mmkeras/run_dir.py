"""The run directory layout (a user contract: scripts read these paths)."""
import contextlib
import csv
import errno
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import warnings

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

    def check(self, overwrite=False, is_chief=True):
        """Refuse an unusable path, a run another process is writing, or a finished run unless
        `overwrite`, touching nothing; → whether it is finished.

        Only the chief asks for the lock: in multi-worker training the other workers share the
        directory with it (they write nothing there) and may get here after it took the lock.
        """
        self._check_location()
        self.check_contained()
        if is_chief and os.path.isdir(self.path):
            os.close(_lock_directory(self.path))  # another train.py answers now, not after validation
        finished = os.path.exists(self.model)
        if finished and not overwrite:
            raise UserError(f"{self.path} already holds a trained run (model.keras); "
                            "pass --overwrite to replace it or --output to train elsewhere")
        return finished

    def prepare(self, overwrite=False, is_chief=True, config=None):
        """Create the directory; refuse to clobber a finished run, resume an interrupted one.

        Only the chief creates or replaces it; other workers check the same conditions.
        Returns True when an interrupted run's backup will be resumed (`config`, the new run's
        resolved config as a plain dict, must then be the interrupted run's: `check_resume`).
        """
        finished = self.check(overwrite, is_chief)
        resuming = not finished and os.path.isdir(self.backup) and bool(os.listdir(self.backup))
        if resuming and config is not None:
            self.check_resume(config)
        if is_chief:
            os.makedirs(self.path, exist_ok=True)
            # Held until the process exits: a second train.py into this directory stops with one line.
            self._lock_fd = _lock_directory(self.path)
            if finished:  # the contents only: the directory (and so the lock) stays
                for entry in os.scandir(self.path):
                    shutil.rmtree(entry.path) if entry.is_dir(follow_symlinks=False) else os.remove(entry.path)
        return resuming

    def check_resume(self, config):
        """Refuse to resume the backup of a run whose saved config differs from `config` (a plain dict,
        `config_to_dict`) in anything but `training.epochs` and the `export` section: its weights may not
        even fit the new model."""
        import yaml

        if not os.path.exists(self.config):
            return
        with open(self.config, encoding="utf-8") as f:
            saved = yaml.safe_load(f)
        # `export` acts after training: its keys (and keys a newer mmkeras adds there) cannot change
        # what the backup holds.
        changed = _differences(_plain(saved), _plain(config), ignore={"training.epochs", "export"})
        if changed:
            shown = "; ".join(f"{key}: {old!r} → {new!r}" for key, old, new in changed[:3])
            more = f" (and {len(changed) - 3} more)" if len(changed) > 3 else ""
            raise UserError(f"{self.path} holds an interrupted run of another config ({shown}{more}): "
                            f"run the same config to resume it, or delete {self.path} (or use another --output) "
                            "to start over")

    def check_contained(self):
        """Refuse a run directory whose files or folders (config.yaml, export/, logs/, ...) are
        symlinks leading out of it: every write must land under the directory the user gave.
        The run directory itself may be a symlink; what is inside it may not escape it."""
        root = os.path.realpath(self.path)
        export_parts = [os.path.join(self.export, p) for p in os.listdir(self.export)] if os.path.isdir(self.export) else []
        for path in [getattr(self, name) for name in LAYOUT] + export_parts:
            target = os.path.realpath(path)
            if os.path.lexists(path) and os.path.commonpath([root, target]) != root:
                raise UserError(f"{path}: leads out of the run directory (to {target}); "
                                "mmkeras writes only inside the run directory")

    def _check_location(self):
        """The directory can be created and written: not a file, under directories, names the file system takes."""
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise UserError(f"--output {self.path}: exists and is not a directory")
        ancestor = self.path
        while not os.path.exists(ancestor):
            ancestor = os.path.dirname(ancestor)
        if not os.path.isdir(ancestor):
            raise UserError(f"--output {self.path}: {ancestor} is a file, not a directory")
        name_max = os.pathconf(ancestor, "PC_NAME_MAX")
        for part in self.path.split(os.sep):
            if len(part.encode("utf-8", "surrogateescape")) > name_max:
                raise UserError(f"--output: the name {part[:40]}… is {len(part)} characters; "
                                f"this file system takes at most {name_max}")
        try:  # what the process may do there, root or not, read-only mount or not
            os.rmdir(tempfile.mkdtemp(prefix=".mmkeras-probe-", dir=ancestor))
        except OSError as e:
            raise UserError(f"--output {self.path}: cannot create it in {ancestor}: {e.strerror}") from None

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


def load_run(path):
    """A finished run → (RunDir, Config, Preprocessing, Keras model), for evaluate, export and predict.

    Every way a run directory can be incomplete or damaged (no model, a missing or truncated
    state file, a model file that does not load or holds code safe mode refuses) is one
    UserError naming the file.
    """
    from mmkeras.config import load_config
    from mmkeras.data.preprocessing import Preprocessing
    from mmkeras.training.loop import load_model

    run = RunDir(path)
    if not os.path.isdir(run.path):
        raise UserError(f"{run.path}: no such run directory")
    run.check_contained()
    if not os.path.exists(run.model):
        raise UserError(f"{run.path}: no trained model (model.keras) — train first with train.py")
    if not os.path.exists(run.config):
        raise UserError(f"{run.config}: missing; {run.path} is not a complete run directory")
    cfg = load_config(run.config)
    try:
        prep = Preprocessing.load(cfg, run.path)
    except FileNotFoundError as e:
        raise UserError(f"{e.filename}: missing; {run.path} is not a complete run directory") from None
    except (ValueError, KeyError, TypeError) as e:  # JSON that is not what train.py wrote
        raise UserError(f"{run.path}: preprocessing state (labels.json, preprocessing.json, vocab/) is damaged: "
                        f"{type(e).__name__}: {e}") from None
    try:
        with warnings.catch_warnings():  # e.g. a Lambda layer's "module not loaded" before safe mode refuses it
            warnings.simplefilter("ignore")
            model = load_model(run.model)
    except Exception as e:  # truncated zip, wrong format, a Lambda layer refused by safe mode
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{run.model}: cannot be loaded: {reason[:300]}") from None
    return run, cfg, prep, model


def read_history(path, before=None):
    """Rows of a run's history.csv (dicts of strings), only epochs < `before` when given; [] when absent.

    The one reader: training rewrites the file from it on resume, the plots read their series from it.
    """
    if not os.path.exists(path):
        return []
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [r for r in rows if before is None or int(r["epoch"]) < before]


def _lock_directory(path):
    """An exclusive flock on the directory itself (no lock file to leave behind) → its open fd, which
    holds the lock until closed; UserError if another process holds it."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise
        raise UserError(f"{path}: another train.py is writing this run directory; wait for it to finish "
                        "or train into another --output") from None
    return fd


def _plain(value):
    return json.loads(json.dumps(value))  # tuples → lists, as read back from YAML


def _differences(old, new, ignore=(), prefix=""):
    """[(dotted key, old value, new value)] where two plain config dicts differ, `ignore` keys (and
    everything under an ignored section) left out."""
    if prefix.rstrip(".") in ignore:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in list(old) + [k for k in new if k not in old]:
            found += _differences(old.get(key), new.get(key), ignore, f"{prefix}{key}.")
        return found
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [d for i, (a, b) in enumerate(zip(old, new)) for d in _differences(a, b, ignore, f"{prefix}{i}.")]
    key = prefix.rstrip(".")
    return [] if old == new or key in ignore else [(key, old, new)]


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


class ExportDir:
    """Paths inside RUN_DIR/export (a user contract: TF Serving and apps read them); the SavedModel
    and TFLite paths need the model's name (the config's `name`), the report's do not.

    Example:
        ExportDir("runs/demo/export", "demo").tflite("int8")  # runs/demo/export/tflite/demo_int8.tflite
    """

    def __init__(self, path, model_name=None):
        self.path, self.model_name = os.path.abspath(path), model_name

    def report(self, ext):
        """`report.json`, `report.md` or `report.png` (ext without the dot): every variant's verification."""
        return os.path.join(self.path, f"report.{ext}")

    @property
    def saved_model(self):
        """The TF Serving model folder; its versions are integer-named subfolders."""
        return os.path.join(self.path, "saved_model", self.model_name)

    def saved_model_versions(self):
        """Finished SavedModel versions, ascending (a temporary `3.tmp-<pid>` is not one)."""
        base = self.saved_model
        names = os.listdir(base) if os.path.isdir(base) else []
        return sorted(int(d) for d in names if d.isdigit() and os.path.isdir(os.path.join(base, d)))

    def _tflite_stem(self, variant):
        return os.path.join(self.path, "tflite", f"{self.model_name}_{variant}")

    def tflite(self, variant):
        """`tflite/<name>_<variant>.tflite`."""
        return f"{self._tflite_stem(variant)}.tflite"

    def tflite_metadata(self, variant):
        """`tflite/<name>_<variant>.json`: what an app needs, beside the model."""
        return f"{self._tflite_stem(variant)}.json"

    def bundle(self, variant):
        """`tflite/<name>_<variant>.task`: the variant, its front-ends and its `.json` in one file."""
        return f"{self._tflite_stem(variant)}.task"

    def frontend(self, input_name):
        """`tflite/<name>_<input>_frontend.tflite`: an input's float front-end, shared by every variant."""
        return self.tflite(f"{input_name}_frontend")

    def tflite_variants(self):
        """The variants exported so far (those with a metadata file beside their model), sorted."""
        folder, prefix = os.path.join(self.path, "tflite"), f"{self.model_name}_"
        names = os.listdir(folder) if os.path.isdir(folder) else []
        return sorted(n[len(prefix):-len(".json")] for n in names if n.startswith(prefix) and n.endswith(".json")
                      and os.path.exists(os.path.join(folder, n[:-len(".json")] + ".tflite")))

