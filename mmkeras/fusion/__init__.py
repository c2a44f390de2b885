"""Fusion layers: one file each, registered by name, chosen by `fusion.type`.

Every fusion layer is a serialisable tf_keras Layer called as
`layer(embeddings, presence)` where `embeddings` is a list of M tensors
[B, d_i] (one per modality, dims may differ) and `presence` is float32 [B, M]
(1 = modality present, 0 = absent). Absent modalities must not influence the
output. It returns [B, dim]. Its constructor arguments are the `params` of the section
registered under the same name in `mmkeras.config.fusion` (keys, defaults, ranges), which
the config validates when it loads.
"""
from mmkeras.registry import Registry

FUSIONS = Registry("fusion")

from mmkeras.fusion import attention, bilinear, concat, gated  # noqa: E402,F401
from mmkeras.fusion.modality_dropout import ModalityDropout  # noqa: E402,F401
