"""Numeric inputs: several columns → float32 vector, standardised inside the model."""
import math

import numpy as np
import tensorflow as tf
import tf_keras as keras

from mmkeras.data.modality import MODALITIES, BadValue, Modality


@MODALITIES.register("numeric")
class NumericModality(Modality):
    empty_value = None  # filled per input: a vector of zeros

    def __init__(self, cfg, state=None):
        super().__init__(cfg, state)
        self.empty_value = [0.0] * len(cfg.columns)

    def parse(self, record, manifest_dir):
        values, absent = [], []
        for column in self.cfg.columns:
            raw = record.get(column)
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                if column not in record and not self.cfg.optional:
                    raise BadValue(f"missing column '{column}'")
                absent.append(column)
                continue
            try:
                number = float(raw)
            except (TypeError, ValueError):
                raise BadValue(f"column '{column}': not a number: {raw!r}") from None
            if not math.isfinite(number):
                raise BadValue(f"column '{column}': not a finite number: {raw!r}")
            values.append(number)
        if absent:
            if self.cfg.optional and len(absent) == len(self.cfg.columns):
                return None
            raise BadValue(f"empty value in column '{absent[0]}'")
        return values

    def fit(self, values):
        matrix = np.asarray(values, dtype=np.float64).reshape(-1, len(self.cfg.columns))
        self.state = {"mean": matrix.mean(axis=0).tolist(), "variance": matrix.var(axis=0).tolist()}

    def feature_shape(self):
        return (len(self.cfg.columns),)

    def column(self, values):
        return np.asarray(values, np.float32).reshape(len(values), len(self.cfg.columns))

    def decode(self, value):
        return value

    raw_dtype = tf.float32

    @property
    def raw_shape(self):
        return (len(self.cfg.columns),)

    def from_raw(self, raw):
        return raw

    def raw_example(self, value):
        return np.asarray(self.empty_value if value is None else value, np.float32)

    def preprocess(self, x):
        # Stored as layer weights so the exported graph standardises by itself.
        variance = [max(v, 1e-12) for v in self.state["variance"]]
        # float32 even under mixed precision: raw columns can be large (bfloat16 keeps 8 bits).
        return keras.layers.Normalization(mean=self.state["mean"], variance=variance, dtype="float32",
                                          name=f"{self.name}_normalize")(x)
