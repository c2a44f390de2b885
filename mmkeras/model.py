"""build_model(config, preprocessing) → a tf_keras functional Model.

    inputs (one per modality + a presence flag each)
      → in-model preprocessing (rescale, log-mel, standardise)
      → one encoder per modality → embeddings (and tokens, for the fusions that take them)
      → modality dropout on the presence mask → fusion → task heads
"""
import tf_keras as keras

from mmkeras.config import DROPOUT_LAYER, FUSION_LAYER, MODEL_NAME, PRESENCE_LAYER
from mmkeras.encoders import build_encoder
from mmkeras.fusion import FUSIONS
from mmkeras.heads import build_heads
from mmkeras.layers.modality_dropout import ModalityDropout
from mmkeras.layers.tokens import AllTokens
from mmkeras.names import presence_key


def build_fusion(fusion_cfg, **kwargs):
    """The configured fusion layer (`fusion_cfg`: its validated `FusionParams`)."""
    return FUSIONS.get(fusion_cfg.type)(name=FUSION_LAYER, **fusion_cfg.params, **kwargs)


def token_view(encoded, name):
    """An encoder's (tokens [B, N, d], mask [B, N]); an encoder without tokens gives its embedding as one."""
    tokens = encoded.tokens
    if tokens is None:
        tokens = keras.layers.Reshape((1, encoded.embedding.shape[-1]), name=f"{name}_token")(encoded.embedding)
    mask = encoded.mask if encoded.mask is not None else AllTokens(name=f"{name}_token_mask")(tokens)
    return tokens, mask


def fuse(fusion_cfg, encoded, mask):
    """Fusion of the encoders' outputs (`encoded`: input name → `Encoded`) under the presence `mask`."""
    fusion_cls = FUSIONS.get(fusion_cfg.type)
    embeddings = [e.embedding for e in encoded.values()]
    if not getattr(fusion_cls, "takes_tokens", False):
        return build_fusion(fusion_cfg)(embeddings, mask)
    views = [token_view(e, name) for name, e in encoded.items()]
    layer = build_fusion(fusion_cfg, grids=[e.grid for e in encoded.values()])
    return layer({"embeddings": embeddings, "tokens": [t for t, _ in views], "masks": [m for _, m in views]}, mask)


def build_model(cfg, prep):
    """Assemble the multimodal model for a config and its fitted preprocessing."""
    inputs, encoded, presences = {}, {}, []
    for h in prep.handlers:
        inputs[h.name] = h.model_input()
        presence = keras.Input(shape=(1,), name=presence_key(h.name))
        inputs[presence_key(h.name)] = presence
        presences.append(h.present(inputs[h.name], presence))
        features = h.preprocess(inputs[h.name])
        encoded[h.name] = build_encoder(features, h.feature_spec(), h.name, h.cfg.encoder)

    mask = presences[0] if len(presences) == 1 else keras.layers.Concatenate(name=PRESENCE_LAYER)(presences)
    if cfg.fusion.modality_dropout > 0:
        mask = ModalityDropout(cfg.fusion.modality_dropout, seed=cfg.training.seed, name=DROPOUT_LAYER)(mask)
    fused = fuse(cfg.fusion, encoded, mask)
    embeddings = {name: e.embedding for name, e in encoded.items()}
    outputs = build_heads(fused, embeddings, cfg, prep.labels, prep.targets)
    return keras.Model(inputs=inputs, outputs=outputs, name=MODEL_NAME)
