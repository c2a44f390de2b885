"""Fusion layers, one plugin file per type (named by it): `fusion.type` picks one.

Every fusion layer is a serialisable tf_keras Layer called as
`layer(embeddings, presence)` where `embeddings` is a list of M tensors
[B, d_i] (one per modality, dims may differ) and `presence` is float32 [B, M]
(1 = modality present, 0 = absent). Absent modalities must not influence the
output. It returns [B, dim]. Its constructor arguments are the `params` of the section
its file registers under the same name (keys, defaults, ranges), which the config
validates when it loads.

A fusion whose class sets `takes_tokens` (`TokenFusionLayer`) is called instead as
`layer({"embeddings": [...], "tokens": [...], "masks": [...]}, presence)`: each modality's
pooled embedding, its encoder's tokens [B, N_i, t_i] and their mask [B, N_i]
(`mmkeras.model.fuse` assembles them; an encoder without tokens gives its embedding as one).

Importing the package imports every module in it (`base.py` holds the contract) without
TensorFlow, so adding a fusion is adding its file.
"""
from mmkeras.fusion.base import DEFAULT_FUSION, FUSION_PARAMS, FUSIONS, FusionParams, fusion_choice  # noqa: F401
from mmkeras.registry import import_plugins

import_plugins(__name__)
