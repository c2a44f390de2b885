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


def test_a_text_with_no_word_the_vocabulary_holds_whole_counts_as_absent():
    import numpy as np
    import tf_keras as keras

    from mmkeras.layers.known_words import KnownWordPresence, word_flags
    from mmkeras.modalities.base import handler
    from mmkeras.modalities.text import PAD, UNK, TextInput, Tokenizer
    from test_encoders import assert_config_roundtrip

    vocab = [PAD, UNK, ":", "flag", "germany", "kol", "##umb", "##ia", "##ga", "2"]
    texts = ["flag: Germany",  # known words
             "Flagga: Kolumbia",  # flag ##ga : kol ##umb ##ia — pieces and punctuation only
             "kolumbia", "flagga 2",  # a digit is a word
             "flaggor flag",  # [UNK] flag
             "kolumbia kolumbia germany"]  # the known word cut off by max_tokens
    ids = Tokenizer(vocab, max_tokens=6)(texts)
    layer = KnownWordPresence(len(vocab), word_flags(vocab, (PAD, UNK)))
    presence = np.ones((len(texts), 1), np.float32)
    presence[3] = 0  # an absent text stays absent
    np.testing.assert_array_equal(layer([ids, presence]).numpy().ravel(), [1, 0, 0, 0, 1, 0])
    assert_config_roundtrip(KnownWordPresence(len(vocab)))

    flag = keras.Input((1,))
    for setting, kept in (("absent", False), ("encode", True)):
        h = handler(TextInput(name="text", max_tokens=6, unknown_text=setting), {"vocab": vocab})
        assert (h.present(keras.Input((6,), dtype="int32"), flag) is flag) == kept
