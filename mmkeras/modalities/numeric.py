"""Numeric inputs: several columns → float32 vector, standardised inside the model.

Heavy-tailed columns (sizes, counts, prices: a few values thousands of times the
typical one) are first compressed with a signed log, chosen per column on the
training split (`transform: auto`): standardised raw, such a column is a handful of
huge outliers and a crowd of near-identical values around -0.1.
"""

from typing import Annotated, Literal

import numpy as np
import pydantic

from mmkeras.config.base import NonEmpty, section
from mmkeras.encoders import default_encoder, encoder_choice
from mmkeras.modalities.base import (FRONTEND_RESULT, BadValue, InputConfig, Modality, Standardised, float_range,
                                     frontend_steps, parse_number, register)

# A column is heavy-tailed when its largest magnitude is this many times its typical
# (median) magnitude; 100 leaves [0, 1] ratios, years and small counts untouched.
HEAVY_TAIL_RATIO = 100.0
# Quantiles kept per column for piecewise-linear encoders (`mlp` with `bins`): 0, 1/32, ..., 1.
QUANTILES = 33


def signed_log1p(x):
    return np.sign(x) * np.log1p(np.abs(x))


def is_heavy_tailed(column):
    magnitude = np.abs(column)
    typical = np.median(magnitude)
    return bool(magnitude.max() > HEAVY_TAIL_RATIO * max(typical, 1e-12)) and bool(magnitude.max() > 1.0)


@section
class NumericInput(InputConfig):
    """Several numeric columns, standardised with mean/variance from the training split.

    Args:
        transform: before standardising, "auto" takes a signed log of the columns whose
            largest magnitude is over 100× their median one (heavy-tailed: sizes, counts),
            "log" of every column, "none" of none.
    """

    type: Literal["numeric"] = "numeric"
    columns: Annotated[list[str], NonEmpty]
    transform: Literal["auto", "log", "none"] = "auto"
    encoder: encoder_choice("numeric") = default_encoder("mlp")

    def columns_used(self):
        return list(self.columns)

    @pydantic.model_validator(mode="after")
    def _columns_not_column(self):
        if self.column is not None:
            raise ValueError("numeric inputs take `columns` (a list), not `column`")
        return self


@register
class NumericModality(Standardised, Modality):
    config = NumericInput
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
                values.append(parse_number(raw))
            except BadValue as e:
                raise BadValue(f"column '{column}': {e}") from None
        if absent:
            if self.cfg.optional and len(absent) == len(self.cfg.columns):
                return None
            raise BadValue(f"empty value in column '{absent[0]}'")
        return values

    def fit(self, values):
        matrix = np.asarray(values, dtype=np.float64).reshape(-1, len(self.cfg.columns))
        log = [self._wants_log(column) for column in matrix.T]
        transformed = np.where(log, signed_log1p(matrix), matrix)
        mean, variance = transformed.mean(axis=0), transformed.var(axis=0)
        standardised = (transformed - mean) / np.sqrt(np.maximum(variance, self.MIN_VARIANCE))
        quantiles = np.quantile(standardised, np.linspace(0, 1, QUANTILES), axis=0).T
        self.state = {"mean": mean.tolist(), "variance": variance.tolist(), "log": log,
                      "quantiles": quantiles.tolist()}

    def _wants_log(self, column):
        if self.cfg.transform != "auto":
            return self.cfg.transform == "log"
        return is_heavy_tailed(column)

    def feature_shape(self):
        return (len(self.cfg.columns),)

    def feature_spec(self):
        from mmkeras.encoders import FeatureSpec

        # Runs saved before quantiles were kept have none: their encoders take no bins.
        quantiles = tuple(tuple(q) for q in self.state.get("quantiles", ())) if self.state else ()
        return FeatureSpec(modality="numeric", quantiles=quantiles)

    def column(self, values):
        return np.asarray(values, np.float32).reshape(len(values), len(self.cfg.columns))

    def decode(self, value):
        return value

    raw_dtype = "float32"

    @property
    def raw_shape(self):
        return (len(self.cfg.columns),)

    def from_raw(self, raw):
        return raw

    def raw_example(self, value):
        return np.asarray(self.empty_value if value is None else value, np.float32)

    def _log(self):
        return self.state.get("log", [False] * len(self.cfg.columns))  # runs saved before `transform`: none

    def app_preprocessing(self):
        log = self._log()
        return {
            "columns": list(self.cfg.columns), "values": "float32 raw values in this column order, fed to the "
                                                          "front-end model (see `frontend`)",
            "standardize": "or computed by the app: columns flagged in `log` become sign(x)*log(1+|x|), then "
                           f"each column (x - mean) / std; {FRONTEND_RESULT}",
            "log": log, "mean": self.state["mean"], "std": self.standard_deviations(), "variance": self.state["variance"],
        }

    def tflite_metadata(self, lib, name, described, detail):
        """The variants' numeric input is the front-end's output (`<name>_features`): the standardised
        columns, or their quantile bins when the encoder bins them (`frontend.then`)."""
        log, steps = self._log(), frontend_steps(described["frontend"])
        exact = not any(log) and not steps  # NormalizationOptions is (x - mean) / std exactly
        columns = ", ".join(f"{c}{' (signed log first)' if flagged else ''}" for c, flagged in zip(self.cfg.columns, log))
        md = lib.info.TensorMd(
            name=name, description=f"{self.name}: columns [{columns}] standardised as (x - mean) / std"
                                   f"{' with the normalization parameters below' if exact else ''}{steps}, computed "
                                   f"by {described['frontend']['file']} or by the app.{float_range(detail)}"
        ).create_metadata()
        if exact:
            md.processUnits = [self.normalization_unit(lib)]
        return md, {}

    def frontend_tflite_metadata(self, lib):
        """The front-end model's input: the raw columns."""
        return lib.info.TensorMd(
            name=self.name, description=f"{self.name}: raw float32 values of columns "
                                        f"[{', '.join(self.cfg.columns)}] in this order").create_metadata()

    @staticmethod
    def tokens(features, spec, name, dim, params):
        """One token per column: value × a learned vector (the position embedding tells columns apart)."""
        from mmkeras.layers.tokens import ColumnTokens

        return ColumnTokens(dim, name=f"{name}_column_tokens")(features), None, None

    def preprocess(self, x):
        from mmkeras.layers.numeric import SignedLog1p

        log = self._log()
        if any(log):
            x = SignedLog1p(log, name=f"{self.name}_log")(x)
        return self.standardise(x)
