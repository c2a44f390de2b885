"""Typed configuration: YAML → pydantic dataclasses, with overrides and one-line errors.

Every section, encoder and fusion parameters included, is a pydantic dataclass that
rejects unknown keys (`mmkeras.config.base`); inputs are one dataclass per modality, and
encoder and fusion parameters one per type, each in its plugin file (`mmkeras.modalities`,
`mmkeras.encoders`, `mmkeras.fusion`, which name TensorFlow lazily); each chosen by its
`type`. `load_config` checks the whole file, with a did-you-mean for a typo, before anything
reads a record or touches a run directory, and without importing TensorFlow.

Example:
    cfg = load_config("configs/demo.yaml", overrides=["training.epochs=3"])
    cfg.inputs[0].name, cfg.inputs[0].encoder.dim, cfg.training.batch_size
"""
import dataclasses
import os
import re
from typing import Annotated, Literal, Optional, Union

import pydantic
import yaml
from annotated_types import Ge, Gt, Lt

from mmkeras.config.base import (Bool, NonNegativeInt, Number, PositiveInt, Rate, one_of, section, validate,
                                 with_default_type)
from mmkeras.encoders.hub import HubParams
from mmkeras.config.export import DEFAULT_QUANTIZATIONS, FORMATS, QUANTIZATIONS, calibrates
from mmkeras.errors import ConfigError, did_you_mean
from mmkeras.fusion import DEFAULT_FUSION, FUSION_PARAMS, fusion_choice
from mmkeras.modalities import MODALITIES
from mmkeras.modalities.base import Identifier
from mmkeras.names import derived_names
from mmkeras.registry import plugin_modules

# The model's own layers next to the inputs' and outputs' (mmkeras/model.py names them from
# here): a configured name equal to one would collide in the graph.
FUSION_LAYER, PRESENCE_LAYER, DROPOUT_LAYER, MODEL_NAME = "fusion", "presence", "modality_dropout", "mmkeras"
# The `fusion` field's type: any fusion plugin's parameters, chosen by `type`.
FUSION = fusion_choice()

INTERNAL_NAMES = {FUSION_LAYER: "the fusion layer", PRESENCE_LAYER: "the joined presence flags",
                  DROPOUT_LAYER: "the modality-dropout layer", MODEL_NAME: "the model itself"}


def _run_name(name):
    # `name` becomes runs/<name> and the export's file names: one plain path component.
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name):
        raise ValueError("must be a plain file name (ASCII letters, digits, '.', '_', '-'; "
                         f"starting with a letter or digit; at most 100 characters), got {name!r}")
    return name


# Output types: the plugin files of mmkeras.outputs, by name (they import TensorFlow; their names do not).
OUTPUT_TYPES = tuple(plugin_modules("mmkeras.outputs"))
# Inputs: one config section per modality plugin (`mmkeras.modalities`), chosen by `type`.
INPUT_TYPES = {name: MODALITIES.get(name).config for name in MODALITIES.names()}

# === Other sections ===


@section
class DataConfig:
    """Manifests and how to treat bad records.

    Args:
        train/validation/test: JSONL or CSV manifests. Relative paths resolve against the
            working directory, then against the config file's folder.
        validation_split: fraction of train held out (stratified by seed) when `validation` is unset.
        on_bad_record: skip (counted, listed in RUN_DIR/bad_records.jsonl) or error (exit 2).
        cache: keep decoded samples between epochs: auto (in memory when they fit in
            `cache_limit_mb`), memory, disk (a file written in the first epoch, streamed back
            after it), or none (decode every epoch).
        cache_dir: a folder for `disk` caches, e.g. on a fast local disk; each run caches into its
            own subfolder (default RUN_DIR/cache; removed when training finishes).
    """

    train: str
    validation: Optional[str] = None
    test: Optional[str] = None
    validation_split: Annotated[Number, Gt(0), Lt(1)] = 0.1
    on_bad_record: Literal["skip", "error"] = "skip"
    cache: Literal["auto", "memory", "disk", "none"] = "auto"
    cache_limit_mb: NonNegativeInt = 2048
    cache_dir: Optional[str] = None
    shuffle_buffer: PositiveInt = 10000


def _separator(text):
    if not text:
        raise ValueError("must not be empty: a multilabel value given as one string is split on it")
    return text


@section
class OutputConfig:
    """One task head.

    Args:
        name: output (and serving output) name.
        type: one of the output type plugins (`mmkeras.outputs`): category | multilabel | numeric.
        column: manifest column with the label (defaults to `name`).
        loss_weight: λ in loss = Σ λ_k·ℓ_k.
        aux_weight: > 0 adds one auxiliary head per modality for this output, trained
            with this weight, so every encoder learns on its own too. `auto`: heads whose
            weights share `loss_weight` (each loss_weight / number of inputs) where the
            output type gains from them (`OutputType.auto_aux_heads`) and there are two
            or more inputs; none otherwise.
        separator: multilabel values given as one string are split on it.
        label_smoothing: category outputs: target mass spread over all classes, a
            regulariser against over-confident predictions on small data.
        standardize: numeric outputs: the head learns the target standardised with its
            training mean and standard deviation (the model still outputs raw units).
    """

    name: Identifier
    type: Literal[OUTPUT_TYPES] = "category"
    column: Optional[str] = None
    loss_weight: Annotated[Number, Ge(0)] = 1.0
    aux_weight: Union[Annotated[Number, Ge(0)], Literal["auto"]] = "auto"
    separator: Annotated[str, pydantic.AfterValidator(_separator)] = ";"
    # A regulariser against over-confident predictions on small data (README: the demo).
    label_smoothing: Rate = 0.1
    standardize: Bool = True

    @property
    def source(self):
        return self.column or self.name


@section
class TrainingConfig:
    """Optimisation settings (the global batch is split across replicas)."""

    epochs: PositiveInt = 15
    batch_size: PositiveInt = 32
    learning_rate: Annotated[Number, Gt(0)] = 2e-3
    # Epochs over which the learning rate rises linearly from 0 to `learning_rate` before the
    # cosine decay over the rest; may be fractional. 0: no warm-up (README "Quality").
    warmup_epochs: Annotated[Number, Ge(0)] = 0.0
    # AdamW's decoupled decay (scaled by the learning rate); 0.05 regularises small data sets.
    weight_decay: Annotated[Number, Ge(0)] = 0.05
    # Patience in epochs on the monitored figure; the best epoch's weights are kept. 15 (no stop
    # within the default budget): at 5, a noisy validation loss on shifted data stopped
    # spoken_commands at epoch 7 with the epoch-2 weights in 3 of 9 runs (test 0.26-0.28
    # against 0.47); at 15 none of 3, and no set lost (README "Quality", 2026-12-06).
    early_stopping_patience: NonNegativeInt = 15
    # Which validation figure picks the best epoch and stops early: the loss, or the first
    # output's primary metric where Keras computes it (loop.monitored_metric).
    monitor: Literal["loss", "primary"] = "loss"
    strategy: Literal["auto", "one_device", "mirrored", "multi_worker", "tpu"] = "auto"
    mixed_precision: Bool = False
    jit_compile: Bool = False
    seed: NonNegativeInt = 0

    @pydantic.model_validator(mode="after")
    def _warmup_within_the_epochs(self):
        if self.warmup_epochs >= self.epochs:
            raise ValueError(f"warmup_epochs ({self.warmup_epochs:g}) must be fewer than epochs ({self.epochs}): "
                             "the learning rate would never leave its warm-up")
        return self


@section
class ExportConfig:
    """What `python -m export RUN_DIR` writes by default.

    Args:
        formats: saved_model (TF Serving layout) and/or tflite.
        quantize: the TFLite variants (`mmkeras.config.export.QUANTIZATIONS`); by default every
            one that needs no fine-tuning.
        representative_samples: training records int8 calibrates on.
        qat_epochs: epochs of quantisation-aware fine-tuning for `int8_qat` (`--qat EPOCHS`).
        prune_sparsity: share of each prunable layer's weights set to zero for the `_pruned`
            variants (`--prune SPARSITY`).
        prune_epochs: epochs of the pruning fine-tune (`--prune-epochs`).
        description, version, author, license: written into every .tflite's metadata (and the
            `.task` bundles) for model viewers, Android Studio and the app; the model's name is `name`.
    """

    formats: list[Literal[FORMATS]] = dataclasses.field(default_factory=lambda: list(FORMATS))
    quantize: list[Literal[QUANTIZATIONS]] = dataclasses.field(default_factory=lambda: list(DEFAULT_QUANTIZATIONS))
    representative_samples: NonNegativeInt = 200
    qat_epochs: PositiveInt = 2
    prune_sparsity: Annotated[Number, Gt(0), Lt(1)] = 0.5
    prune_epochs: PositiveInt = 2
    description: str = ""
    version: str = "1"
    author: str = ""
    license: str = ""

    @pydantic.model_validator(mode="after")
    def _int8_has_calibration_records(self):
        if calibrates(self.quantize) and self.representative_samples < 1:
            names = [q for q in self.quantize if calibrates([q])]
            verb = "calibrates" if len(names) == 1 else "calibrate"
            raise ValueError(f"quantize {', '.join(names)} {verb} on training records: representative_samples must be >= 1")
        return self


@section
class EvaluationConfig:
    """How evaluation reports a split.

    Args:
        group_by: manifest columns (not model inputs) whose values split the metrics: every
            output's metrics are also reported per value of each column, in metrics.json
            ("groups") and the summary, e.g. per question type or per recording device.
            One column may be given as a plain string.
    """

    group_by: list[str] = dataclasses.field(default_factory=list)

    @pydantic.field_validator("group_by", mode="before")
    @classmethod
    def _one_column(cls, columns):
        return [columns] if isinstance(columns, str) else columns

    @pydantic.field_validator("group_by")
    @classmethod
    def _distinct(cls, columns):
        if len(set(columns)) != len(columns):
            raise ValueError(f"names a column twice: {columns}")
        return columns


@section
class Config:
    data: DataConfig
    inputs: list[one_of(INPUT_TYPES.values())]
    outputs: list[OutputConfig]
    name: Annotated[str, pydantic.AfterValidator(_run_name)] = "run"
    fusion: FUSION = dataclasses.field(default_factory=FUSION_PARAMS.get(DEFAULT_FUSION))
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)
    export: ExportConfig = dataclasses.field(default_factory=ExportConfig)
    evaluation: EvaluationConfig = dataclasses.field(default_factory=EvaluationConfig)

    def input(self, name):
        return next(i for i in self.inputs if i.name == name)

    @pydantic.model_validator(mode="before")
    @classmethod
    def _default_fusion_type(cls, data):
        return with_default_type(data, "fusion", DEFAULT_FUSION)


# === Loading ===


def config_from_dict(raw):
    """Build a validated Config from a plain dict (as read from YAML)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"expected a mapping at the top level, got {type(raw).__name__}")
    for key in ("inputs", "outputs"):
        if not raw.get(key):
            raise ConfigError(f"{key}: must be a non-empty list")
    cfg = validate(Config, raw)
    _check_cross_references(cfg)
    return cfg


def _derived_names(cfg):
    """Names mmkeras makes from the configured ones → what they name (model and export tensors, heads)."""
    return {**INTERNAL_NAMES, **derived_names([i.name for i in cfg.inputs], [o.name for o in cfg.outputs])}


def _check_cross_references(cfg):
    seen = {}
    derived = _derived_names(cfg)
    for kind, items in (("input", cfg.inputs), ("output", cfg.outputs)):
        for item in items:
            if item.name in seen:
                raise ConfigError(f"{kind} name '{item.name}' is used twice (also an {seen[item.name]})")
            if item.name in derived:
                raise ConfigError(f"{kind} name '{item.name}' is reserved: it is {derived[item.name]}; rename it")
            seen[item.name] = kind


def apply_override(raw, assignment):
    """Apply one `a.b.c=value` override to the raw dict; list items by index or by `name`
    (`inputs.2.seconds`, `inputs.speech.seconds` or `inputs[2].seconds`)."""
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment}: expected key.path=value")
    path, text = assignment.split("=", 1)
    try:
        value = yaml.safe_load(text) if text else ""
    except yaml.YAMLError as e:  # unbalanced brackets, a !!python tag (safe_load refuses to build it)
        raise ConfigError(f"--set {assignment}: the value is not valid YAML: "
                          f"{getattr(e, 'problem', None) or str(e).splitlines()[0]}") from None
    # `inputs[2].seconds`, as config errors name keys, is `inputs.2.seconds`.
    keys = re.sub(r"\[([^\[\]]+)\]", r".\1", path).split(".")
    node = raw
    for i, key in enumerate(keys):
        last = i == len(keys) - 1
        where = ".".join(keys[: i + 1])
        if isinstance(node, list):
            match = [item for item in node if isinstance(item, dict) and item.get("name") == key]
            if key.isdigit() and int(key) < len(node):
                idx = int(key)
            elif match:
                idx = node.index(match[0])
            else:
                names = [item.get("name") for item in node if isinstance(item, dict)]
                raise ConfigError(f"--set {assignment}: no list item '{key}' at {where}{did_you_mean(key, names)}")
            if last:
                node[idx] = value
            node = node[idx]
        elif isinstance(node, dict):
            if last:
                node[key] = value
            else:
                node = node.setdefault(key, {})
        else:
            raise ConfigError(f"--set {assignment}: {where} is not a section")
    return raw


def resolve_path(path, config_dir):
    """Resolve a data path: as given (CWD) if it exists, else relative to the config's folder."""
    if os.path.isabs(path) or os.path.exists(path) or not config_dir:
        return os.path.abspath(path)
    return os.path.abspath(os.path.join(config_dir, path))


# A config is a few hundred values; YAML aliases can make a small file expand to billions
# ("billion laughs": nine aliases of nine aliases ...), which validating and saving would walk.
MAX_CONFIG_VALUES = 100_000


def _expanded_size(value, memo):
    """How many values `value` holds once its YAML aliases (shared objects) are expanded;
    each shared object is counted once per reference but walked only once."""
    if not isinstance(value, (dict, list)):
        return 1
    if id(value) not in memo:
        memo[id(value)] = 0  # a recursive alias (`&a [*a]`) counts as one value on its way round
        items = value.values() if isinstance(value, dict) else value
        memo[id(value)] = 1 + sum(min(_expanded_size(v, memo), MAX_CONFIG_VALUES + 1) for v in items)
    return memo[id(value)]


def load_config(path, overrides=()):
    """Read a YAML config, apply `--set` overrides, validate, and make data paths absolute."""
    if not os.path.exists(path):
        raise ConfigError(f"config file not found: {path}")
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: not a file (a config is one YAML file)")
    try:
        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{line}: invalid YAML: {getattr(e, 'problem', e)}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.object[e.start:e.start + 1]!r} at offset {e.start})") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    if _expanded_size(raw, {}) > MAX_CONFIG_VALUES:
        raise ConfigError(f"{path}: more than {MAX_CONFIG_VALUES} values once its YAML aliases are expanded; "
                          "a config needs a few hundred")
    for assignment in overrides:
        apply_override(raw, assignment)
    try:
        cfg = config_from_dict(raw)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    config_dir = os.path.dirname(os.path.abspath(path))
    for split in ("train", "validation", "test"):
        value = getattr(cfg.data, split)
        if value:
            setattr(cfg.data, split, resolve_path(value, config_dir))
    for i, inp in enumerate(cfg.inputs):
        # A saved model re-reads its hub module from `handle`: pin local paths absolutely.
        if isinstance(inp.encoder, HubParams) and "://" not in inp.encoder.handle:
            inp.encoder.handle = resolve_path(inp.encoder.handle, config_dir)
            if not os.path.exists(inp.encoder.handle):
                raise ConfigError(f"{path}: inputs[{i}].encoder.handle: no such SavedModel directory: "
                                  f"{inp.encoder.handle}")
    return cfg


def config_to_dict(cfg):
    """Plain dict of the fully resolved config, every default filled in (encoders and fusion too)."""
    return dataclasses.asdict(cfg)


def save_config(cfg, path):
    from mmkeras.io import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
