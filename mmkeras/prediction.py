"""Predictions for a manifest of new records, from the trained model or any exported artifact.

The records go through the same validation as training (bad ones are listed and skipped,
or stop the run), in chunks, so memory stays flat on a manifest of any length. Each
artifact is run the way its users run it:

  keras          RUN_DIR/model.keras on tf.data batches (the model's own preprocessing);
  saved_model    the TF Serving SavedModel's raw-input signature (file bytes, text, waveforms);
  tflite:<v>     variant <v>'s .tflite at batch 1 behind its float front-ends, through LiteRT,
                 as `mmkeras.runtime` runs it for an app.

Every artifact returns the Keras model's outputs (probabilities, or numeric values), so
rows and metrics are computed once, whatever produced them.

Example:
    predictor = Predictor.open("runs/demo", "tflite:int8")
    for split, records in read_chunks("new.jsonl", predictor.prep.handlers, BadRecordLog("skip"), 2048):
        outputs = predictor.artifact(split)  # {"label": [n, 9] probabilities}
        rows = prediction_rows(predictor.cfg, predictor.prep.labels, split, outputs, top_k=3)
"""
import dataclasses
import os

import numpy as np
import tensorflow as tf

from mmkeras.cli import native_stderr_silenced
from mmkeras.data.manifest import manifest_columns
from mmkeras.modalities.base import BadValue
from mmkeras.data.pipeline import make_dataset
from mmkeras.data.records import split_from_rows, validate_records
from mmkeras.data.targets import encode_targets, parse_target
from mmkeras.errors import UserError
from mmkeras.heads import inference_model
from mmkeras.outputs import output_type
from mmkeras.registry import Registry
from mmkeras.run_dir import ExportDir, load_run

ARTIFACTS = Registry("artifact")


def read_chunks(manifest, handlers, log, chunk_size):
    """A manifest's valid records as Splits of up to `chunk_size` records, with the records themselves.

    Yields (Split, [record dict]); labels are not read here (predict needs none).
    """
    for rows in validate_records(manifest, handlers, [], log, chunk_size=chunk_size):
        if rows:
            yield split_from_rows(manifest, rows, handlers, []), [record for _, record, _ in rows]


class Artifact:
    """One way to run the trained model: chunk of records → {output: Keras-format predictions}.

    Args:
        run, cfg, prep, model: a loaded run (`load_run`).
        variant: the part after `:` in `--artifact` (a TFLite variant), or None.
        batch_size: records per model call where the artifact takes batches.
    """

    # Whether `--artifact` names a variant after a colon (tflite:int8).
    takes_variant = False

    def __init__(self, run, cfg, prep, model, variant, batch_size):
        self.run, self.cfg, self.prep, self.variant, self.batch_size = run, cfg, prep, variant, batch_size
        self.output_names = [o.name for o in cfg.outputs]
        self.model = inference_model(model, cfg)
        # A one-pass reader gains nothing from a cache: it would only hold the chunk twice.
        self.data_cfg = dataclasses.replace(cfg.data, cache="none")

    @property
    def export(self):
        return ExportDir(self.run.export, self.cfg.name)

    def dataset(self, split, batch_size):
        """Model inputs of a chunk, in manifest order (a dict per batch, not make_dataset's 1-tuples)."""
        return make_dataset(split, self.prep.handlers, self.data_cfg, batch_size, training=False).map(lambda x: x)

    def __call__(self, split):
        raise NotImplementedError


def _concat(batches, names):
    return {n: np.concatenate([b[n] for b in batches]) for n in names}


@ARTIFACTS.register("keras")
class KerasArtifact(Artifact):
    """RUN_DIR/model.keras, batch by batch."""

    description = "model.keras"

    def __init__(self, *args):
        super().__init__(*args)
        # One graph for every batch; the last, shorter batch traces once more, not per chunk.
        self._call = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True)

    def __call__(self, split):
        batches = [{k: v.numpy() for k, v in self._call(x).items()} for x in self.dataset(split, self.batch_size)]
        return _concat(batches, self.output_names)


@ARTIFACTS.register("saved_model")
class SavedModelArtifact(Artifact):
    """The newest TF Serving SavedModel version, called through its raw-input signature.

    Consecutive records whose raw inputs have the same shapes go in one call (audio of other
    lengths cannot share a batch: the signature crops or pads each waveform itself).
    """

    def __init__(self, *args):
        super().__init__(*args)
        from mmkeras.runtime import SavedModelRunner

        versions = self.export.saved_model_versions()
        if not versions:
            raise UserError(f"{self.export.saved_model}: no SavedModel exported; run python -m export {self.run.path}")
        self.path = os.path.join(self.export.saved_model, str(versions[-1]))
        self.runner = SavedModelRunner(self.path, self.cfg.outputs)
        self.description = os.path.relpath(self.path, self.run.path)

    def __call__(self, split):
        from mmkeras.runtime import raw_example

        batches, pending = [], []

        def flush():
            if pending:
                batches.append(self.runner({k: np.concatenate([r[k] for r in pending]) for k in pending[0]}))
                pending.clear()

        for i in range(len(split)):
            raw = raw_example(self.prep.handlers, split, i)
            if pending and (len(pending) == self.batch_size or
                            any(v.shape != pending[0][k].shape for k, v in raw.items())):
                flush()
            pending.append(raw)
        flush()
        return _concat(batches, self.output_names)


@ARTIFACTS.register("tflite")
class TFLiteArtifact(Artifact):
    """A TFLite variant at batch 1 (how it was exported) behind its inputs' float front-ends."""

    takes_variant = True

    def __init__(self, *args):
        super().__init__(*args)
        from mmkeras.runtime import LiteRTRunner, TFLitePipeline

        variant, export = self.variant, self.export
        exported = export.tflite_variants()
        if variant not in exported:
            hint = (f"exported: {', '.join(exported)}" if exported
                    else f"none exported yet; run python -m export {self.run.path}")
            raise UserError(f"--artifact tflite:{variant}: no such variant in {os.path.dirname(export.tflite(variant))} "
                            f"({hint})")
        # LiteRT prints "INFO: Created TensorFlow Lite XNNPACK delegate" to descriptor 2 itself.
        with native_stderr_silenced():
            frontends = {h.name: LiteRTRunner(export.frontend(h.name))
                         for h in self.prep.handlers if h.float_frontend()}
            self.runner = TFLitePipeline(LiteRTRunner(export.tflite(variant)), frontends)
        self.description = os.path.relpath(export.tflite(variant), self.run.path)

    def __call__(self, split):
        batches = [self.runner({k: v.numpy() for k, v in x.items()}) for x in self.dataset(split, 1)]
        return _concat(batches, self.output_names)


def parse_artifact(spec):
    """`keras`, `saved_model` or `tflite:<variant>` → (registered kind, variant or None)."""
    kind, _, variant = str(spec).partition(":")
    takes_variant = ARTIFACTS.get(kind).takes_variant  # one line with a did-you-mean for a typo
    if takes_variant and not variant:
        raise UserError(f"--artifact {kind} needs its variant: {kind}:float32, {kind}:int8, ...")
    if variant and not takes_variant:
        raise UserError(f"--artifact {spec}: {kind} takes no variant")
    return kind, variant or None


class Predictor:
    """A loaded run with one artifact to predict with.

    Example:
        predictor = Predictor.open("runs/demo", "saved_model", batch_size=64)
        outputs = predictor.artifact(split)  # {"label": [N, 9] probabilities}
    """

    def __init__(self, run, cfg, prep, artifact):
        self.run, self.cfg, self.prep, self.artifact = run, cfg, prep, artifact

    @classmethod
    def open(cls, run_dir, spec="keras", batch_size=None):
        kind, variant = parse_artifact(spec)  # before loading anything
        run, cfg, prep, model = load_run(run_dir)
        artifact = ARTIFACTS.get(kind)(run, cfg, prep, model, variant, batch_size or cfg.training.batch_size)
        return cls(run, cfg, prep, artifact)

    def labelled_outputs(self, manifest):
        """The outputs whose label column the manifest has: predictions are scored on those."""
        columns = manifest_columns(manifest)
        return [o for o in self.cfg.outputs if o.source in columns]


# === Rows: one per record, per output what it predicts ===


def prediction_rows(cfg, labels, split, outputs, top_k):
    """One chunk's predictions → a row per record: {"line": manifest line, output: its prediction}."""
    rows = []
    for i, line in enumerate(split.lines):
        row = {"line": line}
        for o in cfg.outputs:
            row[o.name] = output_type(o).row(outputs[o.name][i], labels.get(o.name), top_k)
        rows.append(row)
    return rows


def flat_row(cfg, row):
    """A prediction row → flat CSV cells (line, then each output's columns)."""
    cells = {"line": row["line"]}
    for o in cfg.outputs:
        cells.update(output_type(o).flat(o.name, row[o.name], o))
    return cells


# === Scores, when the manifest has labels ===


class Scores:
    """Accumulates labels and predictions of the labelled outputs; records without a valid label
    are predicted but not scored (counted per output).

    Holds 4·K bytes per scored record and output (K labels): predictions of unlabelled
    manifests are never kept.
    """

    def __init__(self, outputs, labels):
        self.outputs, self.labels = outputs, labels
        self.y_true = {o.name: [] for o in outputs}
        self.y_pred = {o.name: [] for o in outputs}
        self.unscored = {o.name: 0 for o in outputs}

    def add(self, records, predictions):
        for o in self.outputs:
            names = self.labels.get(o.name)
            keep, parsed = [], []
            for i, record in enumerate(records):
                try:
                    parsed.append(parse_target(record, o, names))
                    keep.append(i)
                except BadValue:
                    self.unscored[o.name] += 1
            if keep:
                self.y_true[o.name].append(encode_targets(o, parsed, names))
                self.y_pred[o.name].append(np.asarray(predictions[o.name][keep], np.float32))

    def metrics(self):
        """{output: metrics} for each output with at least one scored record."""
        return {o.name: output_type(o).metrics(np.concatenate(self.y_true[o.name]),
                                               np.concatenate(self.y_pred[o.name]), self.labels.get(o.name))
                for o in self.outputs if self.y_true[o.name]}
