"""Preprocessing state learned on the training split, saved in the run directory so a
run can be evaluated and re-exported without retraining:

  RUN_DIR/labels.json           output → label names (category, multilabel)
  RUN_DIR/vocab/<input>.txt     WordPiece vocabulary per text input
  RUN_DIR/preprocessing.json    the rest: per input (numeric mean/variance, ...), and
                                under "output:<name>" a numeric output's target mean/std
"""
import os

from mmkeras.data.manifest import manifest_columns
from mmkeras.modalities.base import handler
from mmkeras.data.records import holdout, load_split
from mmkeras.data.targets import label_names
from mmkeras.errors import ConfigError, did_you_mean
from mmkeras.io import atomic_write_json, read_json
from mmkeras.outputs import output_type

# Keys of output entries in preprocessing.json; ":" keeps them apart from input names (identifiers).
OUTPUT_KEY = "output:{}"


class Preprocessing:
    """Label vocabularies plus one fitted modality handler per input.

    Args:
        cfg: the run's Config.
        labels: output name → list of label names (None for numeric outputs).
        states: input name → the handler's learned state.
        targets: numeric output name → {"mean", "std"} of its training targets.
    """

    def __init__(self, cfg, labels, states, targets=None):
        self.cfg = cfg
        self.labels = labels
        self.handlers = [handler(i, states.get(i.name)) for i in cfg.inputs]
        self.targets = targets or {}

    @classmethod
    def fit(cls, cfg, train):
        labels = {o.name: label_names(o, train.labels[o.name]) for o in cfg.outputs}
        targets = {o.name: stats for o in cfg.outputs
                   if (stats := output_type(o).target_stats(train.labels[o.name])) is not None}
        prep = cls(cfg, labels, {}, targets)
        for h in prep.handlers:
            present = [v for v, p in zip(train.values[h.name], train.presence[h.name]) if p > 0]
            h.fit(present)
        return prep

    def save(self, run_dir):
        atomic_write_json(os.path.join(run_dir, "labels.json"), self.labels)
        states = {h.name: h.state_to_json(run_dir) for h in self.handlers}
        states.update({OUTPUT_KEY.format(name): stats for name, stats in self.targets.items()})
        atomic_write_json(os.path.join(run_dir, "preprocessing.json"), states)

    @classmethod
    def load(cls, cfg, run_dir):
        labels = read_json(os.path.join(run_dir, "labels.json"))
        saved = read_json(os.path.join(run_dir, "preprocessing.json"))
        targets = {o.name: saved[OUTPUT_KEY.format(o.name)] for o in cfg.outputs
                   if OUTPUT_KEY.format(o.name) in saved}  # absent in runs saved before
        prep = cls(cfg, labels, {}, targets)
        for h in prep.handlers:
            h.state_from_json(saved[h.name], run_dir)
        return prep


def check_manifests(cfg):
    """Before reading any record: every configured manifest exists and has every column the
    config names (optional inputs excepted), so a typo fails once, not on every row."""
    required = [(f"outputs.{o.name}.column", o.source) for o in cfg.outputs]
    required += [(f"inputs.{i.name}", c) for i in cfg.inputs if not i.optional for c in i.columns_used()]
    seen = []
    for split in ("train", "validation", "test"):
        path = getattr(cfg.data, split)
        if not path:
            continue
        if not os.path.isfile(path):
            raise ConfigError(f"data.{split}: manifest not found: {path}")
        columns = manifest_columns(path)
        seen += [c for c in columns if c not in seen]
        for key, column in required:
            if column not in columns:
                raise ConfigError(f"{key}: column '{column}' is not in {path}{did_you_mean(column, columns)}; "
                                  f"columns: {', '.join(columns)}")
    # A group_by column may be in the evaluated split only; records without it form their own group.
    for column in cfg.evaluation.group_by:
        if column not in seen:
            raise ConfigError(f"evaluation.group_by: column '{column}' is in none of the manifests"
                              f"{did_you_mean(column, seen)}; columns: {', '.join(seen)}")


def load_splits(cfg, log, known_labels=None):
    """Validate the configured manifests → {"train", "validation", "test"} Splits (test may be absent).

    With `known_labels` (a loaded run), labels outside them are bad records in every split.
    """
    check_manifests(cfg)
    handlers = [handler(i) for i in cfg.inputs]
    groups = cfg.evaluation.group_by
    train = load_split(cfg.data.train, handlers, cfg.outputs, log, known_labels, groups)
    train_labels = known_labels or {o.name: label_names(o, train.labels[o.name]) for o in cfg.outputs}
    splits = {"train": train}
    if cfg.data.validation:
        splits["validation"] = load_split(cfg.data.validation, handlers, cfg.outputs, log, train_labels, groups)
    else:
        splits["train"], splits["validation"] = holdout(train, cfg.data.validation_split, cfg.training.seed)
    if cfg.data.test:
        splits["test"] = load_split(cfg.data.test, handlers, cfg.outputs, log, train_labels, groups)
    return splits
