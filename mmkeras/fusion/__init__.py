"""Fusion layers: one file each, registered by name, chosen by `fusion.type`.

Every fusion layer is a serialisable tf_keras Layer called as
`layer(embeddings, presence)` where `embeddings` is a list of M tensors
[B, d_i] (one per modality, dims may differ) and `presence` is float32 [B, M]
(1 = modality present, 0 = absent). Absent modalities must not influence the
output. It returns [B, dim]. Its constructor arguments are the `params` of the section
registered under the same name in `mmkeras.config.fusion` (keys, defaults, ranges), which
the config validates when it loads.

A fusion whose class sets `takes_tokens` (`TokenFusionLayer`) is called instead as
`layer({"embeddings": [...], "tokens": [...], "masks": [...]}, presence)`: each modality's
pooled embedding, its encoder's tokens [B, N_i, t_i] and their mask [B, N_i]
(`mmkeras.model.fuse` assembles them; an encoder without tokens gives its embedding as one).
"""
from mmkeras.registry import Registry

FUSIONS = Registry("fusion")

from mmkeras.fusion import attention, bilinear, concat, cross_attention, film, gated, relation  # noqa: E402,F401
from mmkeras.fusion.modality_dropout import ModalityDropout  # noqa: E402,F401
