"""build_model(config, preprocessing) → a tf_keras functional Model.

    inputs (one per modality + a presence flag each)
      → in-model preprocessing (rescale, log-mel, standardise)
      → one encoder per modality → embeddings
      → modality dropout on the presence mask → fusion → task heads
"""
import tf_keras as keras

from mmkeras.config import DROPOUT_LAYER, FUSION_LAYER, MODEL_NAME, PRESENCE_LAYER
from mmkeras.data.pipeline import presence_key
from mmkeras.encoders import build_encoder
from mmkeras.fusion import FUSIONS, ModalityDropout
from mmkeras.heads import build_heads


def build_fusion(fusion_cfg):
    """The configured fusion layer (`fusion_cfg`: validated `mmkeras.config.fusion` parameters)."""
    return FUSIONS.get(fusion_cfg.type)(name=FUSION_LAYER, **fusion_cfg.params)


def build_model(cfg, prep):
    """Assemble the multimodal model for a config and its fitted preprocessing."""
    inputs, embeddings, presences = {}, {}, []
    for h in prep.handlers:
        inputs[h.name] = h.model_input()
        presence = keras.Input(shape=(1,), name=presence_key(h.name))
        inputs[presence_key(h.name)] = presence
        presences.append(presence)
        features = h.preprocess(inputs[h.name])
        embeddings[h.name] = build_encoder(features, h.feature_spec(), h.name, h.cfg.encoder)

    mask = presences[0] if len(presences) == 1 else keras.layers.Concatenate(name=PRESENCE_LAYER)(presences)
    if cfg.fusion.modality_dropout > 0:
        mask = ModalityDropout(cfg.fusion.modality_dropout, seed=cfg.training.seed, name=DROPOUT_LAYER)(mask)
    fused = build_fusion(cfg.fusion)(list(embeddings.values()), mask)
    outputs = build_heads(fused, embeddings, cfg, prep.labels, prep.targets)
    return keras.Model(inputs=inputs, outputs=outputs, name=MODEL_NAME)
