"""Feature normalisation and training-only augmentation: what each layer promises."""
import numpy as np
import pytest
import tensorflow as tf

from mmkeras.layers.numeric import SignedLog1p
from mmkeras.modalities.numeric import is_heavy_tailed
from mmkeras.errors import ConfigError
from mmkeras.layers.augment import RandomShift, SpecAugment, TokenDropout, UtteranceNorm
from test_encoders import assert_config_roundtrip, encoder_model

RNG = np.random.default_rng(0)
LOG_MEL = RNG.normal(-5, 2, (4, 40, 16)).astype("float32")


@pytest.mark.parametrize("layer", [UtteranceNorm(), SpecAugment(time_masks=1, max_freq=0.2, seed=3),
                                   RandomShift(0.2, seed=1), SignedLog1p([True, False]),
                                   TokenDropout(0.2, unknown_id=1, seed=2)],
                         ids=lambda layer: type(layer).__name__)
def test_layer_config_roundtrip(layer):
    assert_config_roundtrip(layer)


def test_utterance_norm_ignores_gain_and_channel_tilt():
    # A louder recording adds a constant to log-mel; a microphone's tilt adds one per band.
    tilt = np.linspace(-3, 3, LOG_MEL.shape[2], dtype="float32")
    louder = LOG_MEL + 2.5 + tilt
    np.testing.assert_allclose(UtteranceNorm()(louder), UtteranceNorm()(LOG_MEL), atol=1e-4)
    out = UtteranceNorm()(LOG_MEL).numpy()
    np.testing.assert_allclose(out.mean(axis=1), 0, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=(1, 2)), 1, atol=1e-3)


def test_spec_augment_masks_only_in_training():
    layer = SpecAugment(time_masks=2, max_time=0.2, freq_masks=2, max_freq=0.25, seed=0)
    np.testing.assert_array_equal(layer(LOG_MEL, training=False), LOG_MEL)
    np.testing.assert_array_equal(layer(LOG_MEL), LOG_MEL)  # no training flag: inference
    masked = layer(LOG_MEL, training=True).numpy()
    zeroed = masked == 0
    assert 0 < zeroed.mean() < 0.6
    # Masks are whole frames or whole bands: a zeroed cell's row or column is zero throughout.
    rows, cols = zeroed.all(axis=2), zeroed.all(axis=1)
    assert np.all(zeroed == (rows[:, :, None] | cols[:, None, :]))
    np.testing.assert_array_equal(masked[~zeroed], LOG_MEL[~zeroed])


def test_random_shift_moves_pixels_only_in_training():
    images = RNG.uniform(0, 255, (6, 20, 20, 3)).astype("float32")
    layer = RandomShift(0.1, seed=0)
    np.testing.assert_array_equal(layer(images, training=False), images)
    shifted = layer(images, training=True).numpy()
    assert shifted.shape == images.shape
    moved = [not np.array_equal(s, i) for s, i in zip(shifted, images)]
    assert any(moved)
    # A shift keeps the picture: the centre block reappears somewhere within ±2 pixels.
    for s, i in zip(shifted, images):
        centre = i[4:16, 4:16]
        assert any(np.array_equal(s[4 + dy:16 + dy, 4 + dx:16 + dx], centre)
                   for dy in range(-2, 3) for dx in range(-2, 3))


def test_token_dropout_replaces_real_tokens_only_in_training():
    ids = np.where(np.arange(32)[None] < RNG.integers(1, 33, (64, 1)), RNG.integers(2, 500, (64, 32)), 0)
    layer = TokenDropout(0.25, unknown_id=1, seed=0)
    np.testing.assert_array_equal(layer(ids, training=False), ids)
    np.testing.assert_array_equal(layer(ids), ids)  # no training flag: inference
    dropped = layer(ids, training=True).numpy()
    changed = dropped != ids
    assert np.all(dropped[changed] == 1) and not np.any(changed[ids == 0])  # padding stays
    assert 0.2 < changed[ids != 0].mean() < 0.3


def test_augmenting_encoders_export_no_random_ops():
    model = encoder_model("audio", "audio_cnn", {"filters": [4], "dim": 4, "normalize": "utterance",
                                                 "spec_augment": True})
    graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(
        tf.TensorSpec([1, 12, 8], tf.float32)).graph
    assert not [op.type for op in graph.get_operations() if "Random" in op.type]


def test_bad_pooling_and_normalize_values_name_the_key():
    with pytest.raises(ConfigError, match="encoder.pooling: expected one of average, flatten, got 'max'"):
        encoder_model("image", "cnn", {"filters": [4], "pooling": "max"})
    with pytest.raises(ConfigError, match="encoder.normalize"):
        encoder_model("audio", "audio_cnn", {"filters": [4], "normalize": "instance"})


def test_heavy_tailed_columns_are_detected_and_logged():
    sizes = np.r_[RNG.integers(10, 200, 500), 3e6].astype("float64")  # installed sizes in KiB
    assert is_heavy_tailed(sizes)
    assert not is_heavy_tailed(RNG.uniform(0, 1, 500))  # ratios
    assert not is_heavy_tailed(np.r_[np.full(99, 1.0), 16.0])  # small counts
    x = tf.constant([[1e6, 0.5], [-9.0, -0.25]])
    out = SignedLog1p([True, False])(x).numpy()
    np.testing.assert_allclose(out[:, 0], np.sign([1e6, -9.0]) * np.log1p([1e6, 9.0]), rtol=1e-6)
    np.testing.assert_array_equal(out[:, 1], [0.5, -0.25])


def test_numeric_head_learns_standardised_targets_and_outputs_raw_units():
    import tf_keras as keras

    from mmkeras.config import OutputConfig
    from mmkeras.heads import Destandardize, StandardizedMSE, build_heads, compile_args

    class Cfg:  # the two fields heads() reads
        outputs = [OutputConfig(name="size", type="numeric")]
        inputs = []

    x = keras.Input((3,))
    out = build_heads(x, {}, Cfg, {"size": None}, {"size": {"mean": 1e4, "std": 50.0}})
    model = keras.Model(x, out)
    assert isinstance(model.get_layer("size"), Destandardize)
    # An untrained head already predicts around the training mean, in raw units.
    pred = model(np.zeros((2, 3), "float32"))["size"].numpy()
    np.testing.assert_allclose(pred, 1e4, atol=1)
    (loss,) = compile_args(Cfg, model)[0].values()
    assert isinstance(loss, StandardizedMSE)
    np.testing.assert_allclose(loss(np.array([[1e4]]), np.array([[1e4 + 100.0]])), 4.0, rtol=1e-6)
    assert_config_roundtrip(model.get_layer("size"))
    assert_config_roundtrip(loss)


def test_piecewise_linear_bins_encode_where_a_value_falls():
    from mmkeras.layers.numeric import PiecewiseLinear

    # Column 0: edges -1, 0, 1 (two bins); column 1 constant: no bins.
    layer = PiecewiseLinear.from_quantiles([[-1.0, -1.0, 0.0, 1.0, 1.0], [0.5] * 5], max_bins=4)
    assert layer.columns == [0, 0]
    out = layer(tf.constant([[-2.0, 0.5], [-0.5, 0.5], [0.5, 0.5], [3.0, 0.5]])).numpy()
    np.testing.assert_allclose(out[:, 2:], [[0, 0], [0.5, 0], [1, 0.5], [1, 1]])
    np.testing.assert_array_equal(out[:, :2], [[-2, 0.5], [-0.5, 0.5], [0.5, 0.5], [3, 0.5]])
    assert_config_roundtrip(layer)
