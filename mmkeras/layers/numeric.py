"""Numeric layers: the numeric modality's signed log (`mmkeras.modalities.numeric`) and the `mlp`
encoder's piecewise-linear bins (`mmkeras.encoders.mlp`)."""
import numpy as np
import tensorflow as tf
import tf_keras as keras


@keras.saving.register_keras_serializable(package="mmkeras")
class SignedLog1p(keras.layers.Layer):
    """[B, n] → sign(x)·log(1 + |x|) on the columns flagged in `columns`, the others unchanged.

    Args:
        columns: one bool per column.

    Example:
        SignedLog1p([True, False])(numbers)
    """

    def __init__(self, columns, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.columns = [bool(c) for c in columns]

    def call(self, x):
        flag = tf.constant([self.columns], x.dtype)
        logged = tf.sign(x) * tf.math.log(1.0 + tf.abs(x))
        return flag * logged + (1.0 - flag) * x

    def get_config(self):
        return {**super().get_config(), "columns": self.columns}


@keras.saving.register_keras_serializable(package="mmkeras")
class PiecewiseLinear(keras.layers.Layer):
    """Numeric [B, n] → [B, n + bins]: each column plus its piecewise-linear encoding.

    Column j with bin edges e_0 < … < e_T (training quantiles) adds T features
    clip((x − e_{t−1}) / (e_t − e_{t−1}), 0, 1): 1 for bins below x, the position
    inside x's bin, 0 above (Gorishniy et al. 2022, "On embeddings for numerical
    features in tabular deep learning"). An MLP on raw standardised values needs many
    units to carve a column into ranges (code-point blocks, size classes); on these
    features a range is one weight. Columns with few distinct values get few bins.

    Args:
        columns: per feature, the index of its column.
        left, width: per feature, its bin's lower edge and width.

    Example:
        PiecewiseLinear.from_quantiles([[-1, 0, 1], [0, 0, 2]])  # 2 + 1 features
    """

    # Quantile bins follow the data: where a column's values crowd (emoji code points, log-scaled
    # and standardised: 0.294-0.353 of a [-3.4, 0.4] range) the bins are 3e-4 wide, finer than an
    # int8 step of the column (0.03), so in int8 every bin reads 0 or 1. The `int8_mixed` export
    # variant keeps these ops float (emoji_multilingual: int8 0.447, int8_mixed 0.683, float32 0.682).
    float_in_int8 = True

    def __init__(self, columns, left, width, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.columns, self.left, self.width = list(columns), list(left), list(width)

    @classmethod
    def from_quantiles(cls, quantiles, max_bins=16, **kwargs):
        """Bins from per-column quantiles: at most `max_bins` per column, empty ones dropped."""
        columns, left, width = [], [], []
        for j, q in enumerate(quantiles):
            q = np.asarray(q, np.float64)
            picked = np.unique(q[np.round(np.linspace(0, len(q) - 1, max_bins + 1)).astype(int)])
            for lo, hi in zip(picked[:-1], picked[1:]):
                columns.append(j)
                left.append(float(lo))
                width.append(float(hi - lo))
        return cls(columns, left, width, **kwargs)

    @property
    def max_slope(self):
        """The most an input difference grows through this layer: 1 / the narrowest bin's width
        (the raw columns pass through too)."""
        return max([1.0] + [1.0 / w for w in self.width if w > 0])

    def call(self, x):
        if not self.columns:
            return x
        values = tf.gather(x, self.columns, axis=1)
        bins = tf.clip_by_value((values - self.left) / self.width, 0.0, 1.0)
        return tf.concat([x, bins], axis=1)

    def get_config(self):
        return {**super().get_config(), "columns": self.columns, "left": self.left, "width": self.width}
