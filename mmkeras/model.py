"""build_model(config, preprocessing) → a tf_keras functional Model.

    inputs (one per modality + a presence flag each)
      → in-model preprocessing (rescale, log-mel, standardise)
      → one encoder per modality → embeddings
      → modality dropout on the presence mask → fusion → task heads
"""
import inspect

import tf_keras as keras

from mmkeras.data.pipeline import presence_key
from mmkeras.encoders import DEFAULT_ENCODER, build_encoder
from mmkeras.errors import ConfigError, did_you_mean
from mmkeras.fusion import FUSIONS, ModalityDropout
from mmkeras.heads import build_heads


def build_fusion(fusion_cfg):
    """The configured fusion layer; unknown parameters fail with a did-you-mean."""
    cls = FUSIONS.get(fusion_cfg.type)
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "kwargs", "name")]
    for key in fusion_cfg.params:
        if key not in allowed:
            raise ConfigError(f"fusion: unknown key '{key}' for fusion '{fusion_cfg.type}'"
                              f"{did_you_mean(key, allowed + ['type', 'modality_dropout'])}; "
                              f"allowed: {', '.join(['type', 'modality_dropout'] + allowed)}")
    return cls(name="fusion", **fusion_cfg.params)


def build_model(cfg, prep):
    """Assemble the multimodal model for a config and its fitted preprocessing."""
    inputs, embeddings, presences = {}, {}, []
    for h in prep.handlers:
        inputs[h.name] = h.model_input()
        presence = keras.Input(shape=(1,), name=presence_key(h.name))
        inputs[presence_key(h.name)] = presence
        presences.append(presence)
        params = dict(h.cfg.encoder)
        encoder_type = params.pop("type", DEFAULT_ENCODER[h.cfg.type])
        features = h.preprocess(inputs[h.name])
        embeddings[h.name] = build_encoder(features, h.feature_spec(), h.name, encoder_type, params)

    mask = presences[0] if len(presences) == 1 else keras.layers.Concatenate(name="presence")(presences)
    if cfg.fusion.modality_dropout > 0:
        mask = ModalityDropout(cfg.fusion.modality_dropout, seed=cfg.training.seed, name="modality_dropout")(mask)
    fused = build_fusion(cfg.fusion)(list(embeddings.values()), mask)
    outputs = build_heads(fused, embeddings, cfg, prep.labels, prep.targets)
    return keras.Model(inputs=inputs, outputs=outputs, name="mmkeras")
