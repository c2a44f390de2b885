"""Encoders and their custom layers: shapes, config round-trip, .keras save/load, masking, TFLite front-end."""
import json

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from mmkeras.config.base import validate
from mmkeras.encoders import ENCODER_PARAMS, EVERY_MODALITY, encoder_choice, takes
from mmkeras.encoders import ENCODERS, FeatureSpec, build_encoder
from mmkeras.layers.hub import HubLayer
from mmkeras.errors import ConfigError
from mmkeras.layers.audio import LogMelSpectrogram
from mmkeras.layers.tokens import ColumnTokens, GridTokens
from mmkeras.modalities import MODALITIES
from mmkeras.layers.transformer import MaskedMaxPooling, MaskedMeanPooling, PaddingMask, PositionEmbedding, TransformerBlock

BATCH = 2
VOCAB = 50
RNG = np.random.default_rng(0)

# Tiny inputs per modality, in the form the in-model preprocessing hands to encoders.
FEATURES = {
    "image": RNG.uniform(0, 1, (BATCH, 16, 16, 3)).astype("float32"),
    "text": np.array([[5, 9, 3, 0, 0, 0], [7, 0, 0, 0, 0, 0]], dtype="int32"),
    "audio": RNG.normal(-5, 2, (BATCH, 12, 8)).astype("float32"),
    "numeric": RNG.normal(0, 1, (BATCH, 5)).astype("float32"),
    "timeseries": RNG.normal(0, 1, (BATCH, 20, 3)).astype("float32"),
}


def spec_for(modality):
    if modality == "numeric":  # quartiles of each column, as NumericModality.fit keeps them
        return FeatureSpec(modality, quantiles=tuple(map(tuple, np.quantile(FEATURES["numeric"], np.linspace(0, 1, 5), axis=0).T)))
    return FeatureSpec(modality, vocab_size=VOCAB if modality == "text" else 0)


def encoder_params(modality, encoder_type, params, name="enc"):
    """Encoder parameters as YAML gives them → validated, as the config hands them to `build_encoder`."""
    return validate(encoder_choice(modality), {"type": encoder_type, **params}, f"inputs.{name}.encoder")


def encoder_model(modality, encoder_type, params, name="enc"):
    data = FEATURES[modality]
    inputs = keras.Input(data.shape[1:], dtype=data.dtype, name=modality)
    outputs = build_encoder(inputs, spec_for(modality), name, encoder_params(modality, encoder_type, params, name))
    return keras.Model(inputs, outputs.embedding)


def as_json(config):
    return json.loads(json.dumps(config))  # tuples → lists, as after a real JSON trip


def assert_config_roundtrip(obj):
    """get_config → JSON → from_config → the same config (works for layers and models)."""
    config = as_json(obj.get_config())
    assert as_json(type(obj).from_config(config).get_config()) == config


def assert_save_load(model, inputs, path):
    """Saving to .keras and loading with safe_mode=True gives the same outputs."""
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded(inputs, training=False), model(inputs, training=False), atol=1e-5)
    return loaded


# --- Encoders ------------------------------------------------------------------------------

# (encoder type, modality, params as they arrive from YAML, expected embedding size)
ENCODER_CASES = [
    ("cnn", "image", {"filters": [4, 8], "convs_per_stage": 1, "dim": 6}, 6),
    ("cnn", "image", {"filters": [4, 8], "dim": 6, "pooling": "flatten", "augment": 0.1}, 6),
    ("audio_cnn", "audio", {"filters": [4, 8], "dim": 6, "dropout": 0.1}, 6),
    ("audio_cnn", "audio", {"filters": [4, 8], "dim": 6, "normalize": "utterance", "spec_augment": True}, 6),
    ("audio_cnn", "audio", {"filters": [4, 8], "dim": 6, "convolve": "time_frequency"}, 6),
    ("audio_cnn", "audio", {"filters": [4, 8], "dim": 6, "kernel_size": 3}, 6),
    ("transformer", "text", {"dim": 8, "heads": 2, "layers": 2, "ff_dim": 16}, 8),
    ("bow", "text", {"dim": 8}, 8),
    ("text_cnn", "text", {"dim": 8, "widths": [2, 3], "filters": 4}, 8),
    ("mlp", "numeric", {"units": [8, 6], "dropout": 0.1}, 6),
    ("mlp", "numeric", {"units": [6], "bins": 4}, 6),
    ("homogeneous", "image", {"dim": 8, "ff_dim": 16, "patch_size": 4}, 8),
    ("homogeneous", "text", {"dim": 8, "ff_dim": 16}, 8),
    ("homogeneous", "audio", {"dim": 8, "ff_dim": 16, "share_weights": True}, 8),
    ("homogeneous", "numeric", {"dim": 8, "ff_dim": 16, "blocks": 1}, 8),
    ("conv1d", "timeseries", {"filters": [4, 8], "kernel_size": 3, "dim": 6}, 6),
    ("homogeneous", "timeseries", {"dim": 8, "ff_dim": 16, "patch_size": 6}, 8),
]


@pytest.mark.parametrize(
    "encoder_type, modality, params, dim", ENCODER_CASES, ids=[f"{c[0]}-{c[1]}" for c in ENCODER_CASES]
)
def test_encoder_shape_config_and_save_load(encoder_type, modality, params, dim, tmp_path):
    model = encoder_model(modality, encoder_type, params)
    outputs = model(FEATURES[modality], training=False)
    assert outputs.shape == (BATCH, dim)
    assert np.all(np.isfinite(outputs))
    # Every layer is prefixed with the encoder's name, so several encoders fit in one model.
    assert all(layer.name.startswith(("enc_", modality)) for layer in model.layers)

    assert_config_roundtrip(model)
    assert_save_load(model, FEATURES[modality], tmp_path / "model.keras")


@pytest.mark.parametrize(
    "encoder_type, modality, params, dim", ENCODER_CASES, ids=[f"{c[0]}-{c[1]}" for c in ENCODER_CASES]
)
def test_encoder_exposes_tokens_and_their_mask(encoder_type, modality, params, dim):
    """The token view the cross-modal fusions read: [B, N, d] tokens, a [B, N] mask, an H×W grid for feature maps."""
    data = FEATURES[modality]
    inputs = keras.Input(data.shape[1:], dtype=data.dtype, name=modality)
    encoded = build_encoder(inputs, spec_for(modality), "enc", encoder_params(modality, encoder_type, params))
    outputs = [encoded.tokens] + ([encoded.mask] if encoded.mask is not None else [])
    tokens, *mask = keras.Model(inputs, outputs)(data, training=False) if len(outputs) > 1 else (
        keras.Model(inputs, outputs[0])(data, training=False),)
    assert tokens.shape.rank == 3 and tokens.shape[0] == BATCH and np.isfinite(tokens).all()
    if modality == "text":  # one token per position, padding masked
        np.testing.assert_array_equal(np.asarray(mask[0], bool), data != 0)
    if modality == "numeric":
        assert tokens.shape[1] == data.shape[1]  # one token per column
    if encoded.grid is not None:
        rows, cols = encoded.grid
        assert tokens.shape[1] == rows * cols
    if encoder_type == "homogeneous" and modality == "timeseries":  # 20 samples, 6 per patch: 4 tokens
        assert tokens.shape[1] == 4
    if encoder_type in ("cnn", "audio_cnn", "conv1d"):  # cells carry their (row, column) in [-1, 1], row-major
        positions = tokens.numpy()[0, :, -2:].reshape(rows, cols, 2)
        np.testing.assert_allclose(positions[:, 0, 0], np.linspace(-1, 1, rows))
        np.testing.assert_allclose(positions[0, :, 1], np.linspace(-1, 1, cols))


def test_homogeneous_image_patches_cover_every_pixel():
    """18 px with 4 px patches: 5×5 patches (the image zero-padded), not 4×4 that drop 2 rows and columns."""
    image = RNG.uniform(0, 1, (1, 18, 18, 3)).astype("float32")
    inputs = keras.Input(image.shape[1:], name="image")
    params = encoder_params("image", "homogeneous", {"dim": 8, "ff_dim": 16, "patch_size": 4})
    encoded = build_encoder(inputs, spec_for("image"), "enc", params)
    assert encoded.grid == (5, 5)
    model = keras.Model(inputs, encoded.embedding)
    corner = image.copy()
    corner[0, 17, 17] += 1.0  # the last pixel: outside every whole 4 px patch
    assert np.abs(model(corner) - model(image)).max() > 1e-4


def test_grid_tokens_round_trip(tmp_path):
    feature_map = RNG.normal(size=(BATCH, 3, 4, 5)).astype("float32")
    inputs = keras.Input(feature_map.shape[1:])
    model = keras.Model(inputs, GridTokens()(inputs))
    tokens = model(feature_map).numpy()
    assert tokens.shape == (BATCH, 12, 7)
    np.testing.assert_array_equal(tokens[:, :, :5], feature_map.reshape(BATCH, 12, 5))
    assert_config_roundtrip(model)
    assert_save_load(model, feature_map, tmp_path / "grid.keras")


def test_every_registered_encoder_is_tested():
    tested = {case[0] for case in ENCODER_CASES} | {"hub"}  # hub: tests below
    assert tested == set(ENCODERS.names())


def test_every_encoder_has_its_parameters_and_modalities():
    assert ENCODERS.names() == ENCODER_PARAMS.names()
    for name in ENCODERS.names():  # one file per encoder, named by it: its parameters and its builder
        assert ENCODERS.get(name).__module__ == ENCODER_PARAMS.get(name).__module__ == f"mmkeras.encoders.{name}"
    for name in ENCODER_PARAMS.names():
        params = ENCODER_PARAMS.get(name)
        assert params.modalities and set(params.modalities) <= {*MODALITIES.names(), EVERY_MODALITY}
    # Every case above runs its encoder on a modality the encoder declares.
    assert all(takes(ENCODER_PARAMS.get(kind), modality) for kind, modality, _, _ in ENCODER_CASES)
    # An encoder for every modality runs on every modality here.
    every = [kind for kind in ENCODER_PARAMS.names() if EVERY_MODALITY in ENCODER_PARAMS.get(kind).modalities]
    assert {(kind, m) for kind in every for m in MODALITIES.names()} <= {(c[0], c[1]) for c in ENCODER_CASES}


def test_two_encoders_coexist_in_one_model():
    image = keras.Input((16, 16, 3), name="image")
    numbers = keras.Input((5,), name="numeric")
    small_cnn = encoder_params("image", "cnn", {"filters": [4], "dim": 4})
    a = build_encoder(image, spec_for("image"), "front", small_cnn)
    b = build_encoder(image, spec_for("image"), "side", small_cnn)
    c = build_encoder(numbers, spec_for("numeric"), "stats",
                      encoder_params("numeric", "homogeneous", {"dim": 4, "heads": 1, "ff_dim": 8}))
    assert keras.Model([image, numbers], [a.embedding, b.embedding, c.embedding]).count_params() > 0


def test_unknown_encoder_param_suggests_the_right_one():
    with pytest.raises(ConfigError, match=r"inputs\.img\.encoder\.filter: unknown key \(did you mean 'filters'\?\)"):
        encoder_model("image", "cnn", {"filter": [4]}, name="img")


def test_heads_must_divide_dim():
    with pytest.raises(ConfigError, match="dim=6 must be divisible by heads=4"):
        encoder_model("text", "transformer", {"dim": 6, "heads": 4})


def test_homogeneous_shared_weights_do_not_grow_with_depth():
    def params(blocks, share_weights):
        return encoder_model(
            "numeric", "homogeneous", {"dim": 8, "ff_dim": 16, "blocks": blocks, "share_weights": share_weights}
        ).count_params()

    assert params(1, True) == params(4, True)
    assert params(4, False) > params(1, False) == params(1, True)


def test_bow_is_the_mean_of_real_token_embeddings():
    model = encoder_model("text", "bow", {"dim": 8})
    table = model.get_layer("enc_embedding").embeddings.numpy()
    expected = [table[[5, 9, 3]].mean(axis=0), table[[7]].mean(axis=0)]
    np.testing.assert_allclose(model(FEATURES["text"]), expected, atol=1e-6)


@pytest.mark.parametrize("encoder_type", ["transformer", "bow", "text_cnn", "homogeneous"])
def test_text_with_no_tokens_embeds_to_zeros(encoder_type):
    model = encoder_model("text", encoder_type, {"dim": 8})
    out = model(np.zeros((1, 6), "int32"), training=False).numpy()
    np.testing.assert_array_equal(out, np.zeros((1, 8)))


# --- Hub ------------------------------------------------------------------------------------


class TinyModule(tf.Module):
    """A reusable TF2 SavedModel: [B, 5] → {"embedding": [B, 3]}."""

    # The Reusable SavedModel API reads `variables` / `trainable_variables` as saved
    # attributes; tf.Module only computes them, so shadow the properties with lists.
    variables = trainable_variables = ()

    def __init__(self):
        super().__init__()
        self.kernel = tf.Variable(tf.random.stateless_normal([5, 3], seed=[1, 2]))
        self.offset = tf.Variable(tf.fill([5], 0.5), trainable=False)
        self.variables = [self.kernel, self.offset]
        self.trainable_variables = [self.kernel]

    @tf.function(input_signature=[tf.TensorSpec([None, 5], tf.float32)])
    def __call__(self, x):
        return {"embedding": tf.matmul(x - self.offset, self.kernel)}


@pytest.fixture(scope="module")
def hub_handle(tmp_path_factory):
    path = tmp_path_factory.mktemp("hub") / "tiny_module"
    tf.saved_model.save(TinyModule(), str(path))
    return str(path)


@pytest.mark.parametrize("trainable", [False, True])
def test_hub_trainable_controls_weights(hub_handle, trainable):
    model = encoder_model("numeric", "hub", {"handle": hub_handle, "output_key": "embedding", "trainable": trainable})
    hub_layer = model.get_layer("enc_hub")
    assert model(FEATURES["numeric"]).shape == (BATCH, 3)
    assert len(hub_layer.weights) == 2
    assert len(hub_layer.trainable_weights) == (1 if trainable else 0)


def test_hub_save_load_keeps_fine_tuned_weights(hub_handle, tmp_path):
    model = encoder_model(
        "numeric", "hub", {"handle": hub_handle, "output_key": "embedding", "trainable": True, "dim": 4}
    )
    kernel = model.get_layer("enc_hub").trainable_weights[0]
    kernel.assign(kernel + 1.0)  # as if fine-tuned: now differs from the SavedModel on disk
    loaded = assert_save_load(model, FEATURES["numeric"], tmp_path / "model.keras")
    assert isinstance(loaded.get_layer("enc_hub"), HubLayer)
    assert_config_roundtrip(model.get_layer("enc_hub"))


def test_hub_errors_name_the_problem(hub_handle, tmp_path):
    with pytest.raises(ConfigError, match=r"inputs\.enc\.encoder\.handle: missing required key"):
        encoder_model("numeric", "hub", {})
    with pytest.raises(ConfigError, match="set output_key to one of: embedding"):
        encoder_model("numeric", "hub", {"handle": hub_handle})
    with pytest.raises(ConfigError, match="inputs.enc.encoder: module"):
        encoder_model("numeric", "hub", {"handle": str(tmp_path / "missing")})


# --- Layers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "layer",
    [
        TransformerBlock(8, 2, 16, dropout=0.1, norm_first=False),
        PositionEmbedding(max_length=6, dim=8),
        MaskedMeanPooling(),
        MaskedMaxPooling(),
        PaddingMask(padding_id=1),
        ColumnTokens(dim=4),
        LogMelSpectrogram(8000, n_mels=16, fmax=3000.0),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_layer_config_roundtrip(layer):
    assert_config_roundtrip(layer)


@pytest.mark.parametrize("norm_first", [True, False])
def test_transformer_block_ignores_padded_positions(norm_first, tmp_path):
    x = RNG.normal(size=(BATCH, 6, 8)).astype("float32")
    mask = np.array([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 0]], dtype=bool)
    noisy = np.where(mask[..., None], x, RNG.normal(size=x.shape) * 10).astype("float32")

    tokens, padding = keras.Input((6, 8)), keras.Input((6,), dtype="bool")
    block = TransformerBlock(8, 2, 16, norm_first=norm_first)
    model = keras.Model([tokens, padding], block(tokens, padding_mask=padding))

    clean_out, noisy_out = model([x, mask]).numpy(), model([noisy, mask]).numpy()
    np.testing.assert_allclose(clean_out[mask], noisy_out[mask], atol=1e-5)
    assert_save_load(model, [x, mask], tmp_path / "block.keras")


def test_masked_mean_pooling_ignores_padding_and_zeroes_empty_rows():
    x = RNG.normal(size=(3, 4, 2)).astype("float32")
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]], dtype="float32")
    pooled = MaskedMeanPooling()(x, padding_mask=mask).numpy()

    np.testing.assert_allclose(pooled[0], x[0, :2].mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(pooled[1], x[1].mean(axis=0), atol=1e-6)
    np.testing.assert_array_equal(pooled[2], np.zeros(2))  # all padding: zeros, not NaN
    changed = np.where(mask[..., None] > 0, x, 99.0)
    np.testing.assert_allclose(MaskedMeanPooling()(changed, padding_mask=mask), pooled, atol=1e-6)


def test_position_embedding_adds_a_vector_per_position(tmp_path):
    inputs = keras.Input((4, 3))
    model = keras.Model(inputs, PositionEmbedding(max_length=6, dim=3)(inputs))
    zeros = np.zeros((BATCH, 4, 3), "float32")
    out = model(zeros).numpy()
    np.testing.assert_array_equal(out[0], out[1])  # same for every example
    assert not np.allclose(out[0, 0], out[0, 1])  # different per position
    assert_save_load(model, zeros, tmp_path / "positions.keras")


# --- Audio front-end ------------------------------------------------------------------------

SAMPLE_RATE = 8000


@pytest.fixture(scope="module")
def tone():
    """0.25 s of a 1 kHz sine and of silence: [2, 2000]."""
    t = np.arange(SAMPLE_RATE // 4) / SAMPLE_RATE
    return np.stack([0.5 * np.sin(2 * np.pi * 1000 * t), np.zeros_like(t)]).astype("float32")


@pytest.fixture(scope="module")
def log_mel_model(tone):
    inputs = keras.Input((tone.shape[1],), name="waveform")
    return keras.Model(inputs, LogMelSpectrogram(SAMPLE_RATE, n_mels=16)(inputs))


def test_log_mel_shape_and_content(log_mel_model, tone, tmp_path):
    layer = log_mel_model.layers[-1]
    frames = LogMelSpectrogram.num_frames(tone.shape[1], SAMPLE_RATE)
    assert frames == 1 + (2000 - 200) // 80
    assert log_mel_model.output_shape == (None, frames, 16)

    out = log_mel_model(tone).numpy()
    assert out.shape == (BATCH, frames, 16)
    # The tone's energy lands in the mel band whose filter peaks at 1 kHz.
    fft_bin = round(1000 * layer.fft_length / SAMPLE_RATE)
    assert np.all(out[0].argmax(axis=-1) == np.argmax(layer.mel_matrix.numpy()[fft_bin]))
    np.testing.assert_allclose(out[1], np.log(1e-6), atol=1e-4)  # silence → log(0 + 1e-6)
    assert_save_load(log_mel_model, tone, tmp_path / "log_mel.keras")


def test_log_mel_converts_to_builtin_tflite_ops(log_mel_model, tone):
    from ai_edge_litert.interpreter import Interpreter

    # Broadband input, like real audio. A pure tone is ill-conditioned: its far sidelobes
    # sit ~1e-6 below the peak, where TF's and TFLite's FFT rounding (~1e-7 of the peak)
    # differ by up to 2e-3 after the log (measured), though both are correct to float32.
    waveform = RNG.uniform(-0.5, 0.5, tone.shape).astype("float32")

    converter = tf.lite.TFLiteConverter.from_keras_model(log_mel_model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # no Flex: fails to convert instead
    interpreter = Interpreter(model_content=converter.convert())
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    interpreter.resize_tensor_input(inp["index"], waveform.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], waveform)
    interpreter.invoke()
    np.testing.assert_allclose(interpreter.get_tensor(out["index"]), log_mel_model(waveform), atol=1e-4)


# Float model I/O is intended here (the exporter decides I/O types), which TFLite warns about.
@pytest.mark.filterwarnings("ignore:Statistics for quantized inputs")
def test_cnn_converts_to_full_int8_tflite():
    from ai_edge_litert.interpreter import Interpreter

    model = encoder_model("image", "cnn", {"filters": [4, 8], "dim": 8})
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([FEATURES["image"][i : i + 1]] for i in range(BATCH))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]  # every op integer
    interpreter = Interpreter(model_content=converter.convert())
    interpreter.allocate_tensors()
    assert {t["dtype"] for t in interpreter.get_tensor_details() if "conv" in t["name"]} >= {np.int8}


# Float model I/O is intended here (the exporter decides I/O types), which TFLite warns about.
@pytest.mark.filterwarnings("ignore:Statistics for quantized inputs")
def test_transformer_converts_to_full_int8_tflite():
    from ai_edge_litert.interpreter import Interpreter

    keras.utils.set_random_seed(0)
    length, rng = 12, np.random.default_rng(0)

    def token_ids(rows):
        ids = rng.integers(1, VOCAB, (rows, length))
        real = rng.integers(1, length + 1, rows)  # 1..12 real tokens, the rest padding
        return np.where(np.arange(length) < real[:, None], ids, 0).astype("int32")

    inputs = keras.Input((length,), dtype="int32", name="text")
    params = {"dim": 8, "heads": 2, "layers": 1, "ff_dim": 16, "dropout": 0.0}
    embedding = build_encoder(inputs, spec_for("text"), "enc", encoder_params("text", "transformer", params)).embedding
    model = keras.Model(inputs, keras.layers.Dense(4, name="head")(embedding))

    representative = token_ids(32)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([representative[i : i + 1]] for i in range(32))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]  # every op integer
    interpreter = Interpreter(model_content=converter.convert())
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert inp["dtype"] == np.int32  # token ids stay ids

    data = token_ids(32)
    interpreter.resize_tensor_input(inp["index"], data.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], data)
    interpreter.invoke()
    expected, quantised = model(data, training=False).numpy(), interpreter.get_tensor(out["index"])
    # Measured 0.06-0.10 of the output std (0.06 on a briefly trained model). Keras
    # MultiHeadAttention's -1e9 key mask gives 0.9-1.5: its int8 scale (~4e6) rounds every
    # real attention score to 0.
    assert np.sqrt(np.mean((quantised - expected) ** 2)) < 0.25 * expected.std()
