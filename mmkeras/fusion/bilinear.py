"""`bilinear` fusion: low-rank multimodal fusion (LMF, Liu et al. 2018)."""
from typing import Literal

from mmkeras.config.base import PositiveInt, registered
from mmkeras.fusion.base import FUSIONS, FUSION_PARAMS, FusionLayer, FusionParams, check_positive_int, embedding_dims
from mmkeras.lazy import keras, tf


@registered(FUSION_PARAMS)
class BilinearParams(FusionParams):
    """`bilinear`: low-rank multimodal fusion, a product of per-modality rank-R factors.

    Args:
        rank: number of rank-1 terms summed.

    Example:
        fusion: {type: bilinear, dim: 64, rank: 4}
    """

    type: Literal["bilinear"] = "bilinear"
    rank: PositiveInt = 4


@FUSIONS.register("bilinear")
class BilinearFusion(FusionLayer):
    """Multiplicative fusion: fused = Σ_r Π_i LayerNorm([x_i; 1] W_i)_r with rank-R factors.

    The product models interactions between all modalities at once at a cost linear in M.
    An absent modality (x_i = 0) contributes its constant bias row, i.e. a learned default.

    Args:
        dim: width of the fused vector.
        rank: number of rank-1 terms summed.
        dropout: dropout rate on the fused vector.

    Example:
        fused = BilinearFusion(dim=64, rank=4, dropout=0.1)([image_vec, text_vec], presence)  # [B, 64]
    """

    def __init__(self, dim, rank, dropout, **kwargs):
        super().__init__(dim=dim, dropout=dropout, **kwargs)
        check_positive_int("rank", rank)
        self.rank = rank

    def build(self, input_shape):
        self.factors, self.factor_norms = [], []
        for i, d in enumerate(embedding_dims(input_shape)):
            # A Dense layer is exactly [x; 1] W. Its bias is random, not zero: it is the whole
            # factor of an absent modality, and a zero row normalises to 0, wiping the product.
            factor = keras.layers.Dense(
                self.rank * self.dim,
                bias_initializer=keras.initializers.RandomNormal(stddev=0.1),
                name=f"factor_{i}",
                dtype=self.dtype_policy,
            )
            factor.build((None, d))
            # Normalising each factor keeps the product of M factors at unit scale.
            norm = keras.layers.LayerNormalization(epsilon=1e-6, name=f"factor_norm_{i}", dtype=self.dtype_policy)
            norm.build((None, self.rank, self.dim))
            self.factors.append(factor)
            self.factor_norms.append(norm)
        super().build(input_shape)

    def fuse(self, embeddings, presence, training):
        product = None
        for x, factor, norm in zip(embeddings, self.factors, self.factor_norms):
            term = norm(tf.reshape(factor(x), [-1, self.rank, self.dim]))
            product = term if product is None else product * term
        return tf.reduce_sum(product, axis=1)

    def get_config(self):
        return {**super().get_config(), "rank": self.rank}
