"""Every registered input type is a whole plugin: one file, every part of the contract."""
import pytest

from mmkeras.config.base import tag
from mmkeras.encoders import ENCODER_PARAMS, encoder_choice, takes
from mmkeras.modalities import MODALITIES, InputConfig, Modality

# What every plugin implements itself (the base raises NotImplementedError or is a bare default).
REQUIRED = ("feature_shape", "decode", "app_preprocessing", "tflite_metadata", "tokens")


@pytest.mark.parametrize("name", MODALITIES.names())
def test_every_modality_provides_every_part(name):
    plugin = MODALITIES.get(name)
    assert issubclass(plugin, Modality) and issubclass(plugin.config, InputConfig)
    assert tag(plugin.config) == name
    missing = [part for part in REQUIRED if getattr(plugin, part) is getattr(Modality, part)]
    assert not missing, f"{name} lacks {missing}"
    if plugin.float_frontend is not Modality.float_frontend:  # its front-end model needs its own metadata
        assert plugin.frontend_tflite_metadata is not Modality.frontend_tflite_metadata
    # Its default encoder exists and takes it; the encoders for every modality (homogeneous) do too.
    default = plugin.config.__dataclass_fields__["encoder"].default_factory
    assert takes(default, name)
    assert "homogeneous" in [tag(p) for p in encoder_choice(name).__args__[0].__args__]
    assert plugin.__module__ == f"mmkeras.modalities.{name}", "one file per type, named by it"


def test_the_encoders_registry_and_the_modalities_agree():
    for kind in ENCODER_PARAMS.names():
        for modality in ENCODER_PARAMS.get(kind).modalities:
            assert modality == "*" or modality in MODALITIES, f"{kind} takes unknown input type {modality}"
