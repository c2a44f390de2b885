"""Config loading: every mistake a user makes gets one precise line."""
import subprocess
import sys

import pytest
import yaml

from conftest import tiny_config_dict
from mmkeras.config import config_from_dict, config_to_dict, load_config, save_config
from mmkeras.modalities.audio import AudioInput
from mmkeras.errors import ConfigError


def write(tmp_path, raw):
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def test_loads_typed_sections_and_defaults(tiny_data):
    cfg = config_from_dict(tiny_config_dict(tiny_data))
    assert isinstance(cfg.inputs[2], AudioInput) and cfg.inputs[2].num_samples == 4000
    assert cfg.training.epochs == 2 and cfg.training.seed == 0
    # The layer's arguments with every default filled in (what RUN_DIR/config.yaml records).
    assert cfg.fusion.type == "concat" and cfg.fusion.params == {"dim": 16, "dropout": 0.1}


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r["training"].update(epoch=3), "training.epoch: unknown key (did you mean 'epochs'?)"),
    (lambda r: r.update(evaluation={"group_by": ["tags", "tags"]}), "evaluation.group_by: names a column twice"),
    (lambda r: r.update(evaluation={"group_bye": ["tags"]}), "evaluation.group_bye: unknown key (did you mean 'group_by'?)"),
    (lambda r: r["training"].update(epochs="ten"), "training.epochs: expected an integer, got 'ten'"),
    (lambda r: r["inputs"][0].update(sise=[8, 8]), "inputs[0].sise: unknown key (did you mean 'size'?)"),
    (lambda r: r["inputs"][0].update(type="imag"), "inputs[0].type: expected one of audio, image, numeric, text, "
                                                    "timeseries, got 'imag' (did you mean 'image'?)"),
    (lambda r: r["data"].update(on_bad_record="ignore"), "data.on_bad_record: expected one of skip, error"),
    (lambda r: r["outputs"][0].update(type="categorical"), "(did you mean 'category'?)"),
    (lambda r: r["inputs"][3].update(column="x1"), "numeric inputs take `columns`"),
    (lambda r: r["inputs"][1].update(name="image"), "input name 'image' is used twice"),
    (lambda r: r["inputs"][3].update(name="speech_features"),
     "input name 'speech_features' is reserved: it is the TFLite front-end output of input 'speech'; rename it"),
    (lambda r: r["inputs"][3].update(name="image_present"), "is the presence flag of input 'image'"),
    (lambda r: r["outputs"].append({"name": "label_from_text", "type": "category", "column": "label"}),
     "output name 'label_from_text' is reserved: it is the auxiliary head of output 'label' on input 'text'"),
    (lambda r: r.pop("outputs"), "outputs: must be a non-empty list"),
    # Names that become paths, layer names and signature keys.
    (lambda r: r["outputs"].append({"name": "tags", "type": "multilabel", "separator": ""}),
     "outputs[1].separator: must not be empty: a multilabel value given as one string is split on it"),
    (lambda r: r["training"].update(seed=-1), "training.seed: expected a value in [0, 2147483647], got -1"),
    (lambda r: r["fusion"].update(dim=10**20), "fusion.dim: expected a value in (0, 2147483647], got 1000000"),
    (lambda r: r.update(name="../../../x"), "name: must be a plain file name"),
    (lambda r: r.update(name="/tmp/x"), "name: must be a plain file name"),
    (lambda r: r.update(name="a" * 101), "name: must be a plain file name"),
    (lambda r: r["inputs"][0].update(name="my image"), "inputs[0].name: must be a valid identifier"),
    (lambda r: r["inputs"][0].update(name="bild_ä"), "inputs[0].name: must be a valid identifier (ASCII"),
    (lambda r: r["outputs"][0].update(name="the label"), "outputs[0].name: must be a valid identifier"),
    (lambda r: r["inputs"][0].update(name="fusion"), "input name 'fusion' is reserved: it is the fusion layer"),
    (lambda r: r["outputs"][0].update(name="presence"), "output name 'presence' is reserved"),
    (lambda r: r["data"].pop("train"), "data.train: missing required key"),
    (lambda r: r["fusion"].update(modality_dropout=1.5), "fusion.modality_dropout: expected a value in [0, 1)"),
    (lambda r: r["outputs"][0].update(aux_weight=-1), "outputs[0].aux_weight: expected a number >= 0 or auto, got -1"),
    (lambda r: r["outputs"][0].update(aux_weight="aut"), "outputs[0].aux_weight: expected a number >= 0 or auto, got 'aut'"),
    # Encoder parameters, per encoder type, restricted to the encoders that take the modality.
    (lambda r: r["inputs"][3].update(encoder={"type": "mlpp", "units": [3]}),
     "inputs[3].encoder.type: expected one of homogeneous, hub, mlp, got 'mlpp' (did you mean 'mlp'?)"),
    (lambda r: r["inputs"][2]["encoder"].update(normalise="batch"),
     "inputs[2].encoder.normalise: unknown key (did you mean 'normalize'?)"),
    (lambda r: r["inputs"][2]["encoder"].update(normalize="batc"),
     "inputs[2].encoder.normalize: expected one of batch, utterance, got 'batc' (did you mean 'batch'?)"),
    (lambda r: r["inputs"][0].update(encoder={"type": "text_cnn"}),
     "inputs[0].encoder.type: encoder 'text_cnn' does not take image inputs; choose one of cnn, homogeneous, hub"),
    (lambda r: r["inputs"][0]["encoder"].update(dim=-5), "inputs[0].encoder.dim: expected a value in (0, 2147483647], got -5"),
    (lambda r: r["inputs"][0]["encoder"].update(filters=[4, 0]),
     "inputs[0].encoder.filters[1]: expected a value in (0, 2147483647], got 0"),
    (lambda r: r["inputs"][0]["encoder"].update(dropout=1), "inputs[0].encoder.dropout: expected a value in [0, 1), got 1"),
    (lambda r: r["inputs"][1]["encoder"].update(heads=3), "inputs[1].encoder: dim=8 must be divisible by heads=3"),
    (lambda r: r["inputs"][0].update(encoder={"type": "homogeneous", "patch_size": 32}),
     "inputs[0]: encoder patch_size=32 is larger than the 16x16 image"),
    (lambda r: r["inputs"][3].update(encoder={"type": "hub"}), "inputs[3].encoder.handle: missing required key"),
    # Fusion parameters, per fusion type.
    (lambda r: r["fusion"].update(type="concatt"),
     "fusion.type: expected one of attention, bilinear, concat, cross_attention, film, gated, relation, got 'concatt' (did you mean 'concat'?)"),
    (lambda r: r["fusion"].update(dimm=3), "fusion.dimm: unknown key (did you mean 'dim'?)"),
    (lambda r: r["fusion"].update(rank=2), "fusion.rank: unknown key"),  # a bilinear key on concat
    (lambda r: r["fusion"].update(dim=-3), "fusion.dim: expected a value in (0, 2147483647], got -3"),
    (lambda r: r["fusion"].update(type="attention", dim=10, heads=4), "fusion: dim=10 must be divisible by heads=4"),
    # Export, against the quantisation variants and formats the exporter has.
    (lambda r: r.update(export={"quantize": ["int9"]}),
     "export.quantize[0]: expected one of float32, dynamic, float16, int8, int8_mixed, int8_qat, float32_pruned, "
     "int8_pruned, got 'int9' (did you mean 'int8'?)"),
    (lambda r: r.update(export={"prune_sparsity": 1}), "export.prune_sparsity: expected a value in (0, 1), got 1"),
    (lambda r: r.update(export={"qat_epochs": 0}), "export.qat_epochs: expected a value in (0, 2147483647], got 0"),
    (lambda r: r.update(export={"formats": ["tf_lite"]}), "export.formats[0]: expected one of saved_model, tflite, "
                                                           "got 'tf_lite' (did you mean 'tflite'?)"),
    (lambda r: r.update(export={"representative_samples": 0}),
     "export: quantize int8, int8_mixed calibrate on training records: representative_samples must be >= 1"),
    (lambda r: r["training"].update(mixed_precision="yes"), "training.mixed_precision: expected true or false, got 'yes'"),
    (lambda r: r["training"].update(learning_rate=True), "training.learning_rate: expected a number, got True"),
    (lambda r: r["training"].update(learning_rate=float("inf")), "training.learning_rate: expected a finite number, got inf"),
    (lambda r: r["fusion"].update(modality_dropout=float("nan")), "fusion.modality_dropout: expected a finite number, got nan"),
    (lambda r: r["training"].update(warmup_epochs=2), "training: warmup_epochs (2) must be fewer than epochs (2)"),
    (lambda r: r["training"].update(warmup_epochs=-1), "training.warmup_epochs: expected a value >= 0, got -1"),
])
def test_config_errors_name_key_and_value(tiny_data, mutate, message):
    raw = tiny_config_dict(tiny_data)
    mutate(raw)
    with pytest.raises(ConfigError) as err:
        config_from_dict(raw)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_overrides_by_path_list_name_and_index(tiny_data, tmp_path):
    path = write(tmp_path, tiny_config_dict(tiny_data))
    cfg = load_config(path, ["training.epochs=7", "inputs.image.size=[20, 24]", "inputs.1.max_tokens=9",
                             "fusion.type=gated", "training.learning_rate=1e-4", "inputs[2].seconds=0.25"])
    assert cfg.training.epochs == 7 and cfg.inputs[0].size == [20, 24] and cfg.inputs[1].max_tokens == 9
    assert cfg.inputs[2].seconds == 0.25  # the notation config errors use
    assert cfg.fusion.type == "gated" and cfg.training.learning_rate == pytest.approx(1e-4)
    with pytest.raises(ConfigError, match=r"no list item 'imag' at inputs.imag \(did you mean 'image'\?\)"):
        load_config(path, ["inputs.imag.size=[8, 8]"])


def test_resolved_config_round_trips(tiny_data, tmp_path):
    cfg = config_from_dict(tiny_config_dict(tiny_data))
    again = config_from_dict(yaml.safe_load(yaml.safe_dump(config_to_dict(cfg))))
    assert config_to_dict(again) == config_to_dict(cfg)


def test_saved_config_fills_in_every_default_encoders_and_fusion_included(tiny_data, tmp_path):
    raw = tiny_config_dict(tiny_data)
    del raw["inputs"][2]["encoder"]  # speech: the audio default
    raw["inputs"][3]["encoder"] = {"bins": 0}  # stats: the numeric default's type, one key changed
    raw["fusion"] = {"dim": 32}
    cfg = config_from_dict(raw)
    save_config(cfg, str(tmp_path / "config.yaml"))
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert saved["inputs"][2]["encoder"] == {
        "type": "audio_cnn", "filters": [32, 64, 128], "convs_per_stage": 1, "dim": 128, "dropout": 0.0,
        "pooling": "average", "normalize": "utterance", "spec_augment": False, "convolve": "time", "kernel_size": 5}
    assert saved["inputs"][3]["encoder"] == {"type": "mlp", "units": [64, 64], "dropout": 0.0, "bins": 0}
    assert saved["inputs"][0]["encoder"]["pooling"] == "average"  # given type, missing keys filled
    assert saved["fusion"] == {"type": "concat", "modality_dropout": 0.5, "dim": 32, "dropout": 0.1}
    assert saved["export"]["quantize"] == ["float32", "dynamic", "float16", "int8", "int8_mixed"]
    again = load_config(str(tmp_path / "config.yaml"))
    assert config_to_dict(again) == config_to_dict(cfg)
    assert again.inputs[2].encoder == cfg.inputs[2].encoder and again.fusion == cfg.fusion


def test_override_reaches_the_default_encoder(tiny_data, tmp_path):
    raw = tiny_config_dict(tiny_data)
    del raw["inputs"][2]["encoder"]
    path = write(tmp_path, raw)
    cfg = load_config(path, ["inputs.speech.encoder.normalize=batch", "fusion.type=attention", "fusion.heads=2"])
    assert cfg.input("speech").encoder.type == "audio_cnn" and cfg.input("speech").encoder.normalize == "batch"
    assert cfg.fusion.params == {"dim": 16, "dropout": 0.1, "heads": 2, "layers": 1}


def test_config_loads_without_tensorflow():
    code = ("import sys; from mmkeras.config import load_config; load_config('configs/demo.yaml'); "
            "print('tensorflow' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=_repo())
    assert proc.stdout.strip() == "False", proc.stderr


def test_relative_data_paths_resolve_against_config_folder(tiny_data, tmp_path):
    raw = tiny_config_dict(tiny_data)
    raw["data"] = {"train": "train.jsonl"}
    path = tmp_path / "elsewhere.yaml"
    (tmp_path / "train.jsonl").write_text("")
    path.write_text(yaml.safe_dump(raw))
    assert load_config(str(path)).data.train == str(tmp_path / "train.jsonl")


def test_invalid_yaml_names_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\ninputs: [\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:\d+: invalid YAML"):
        load_config(str(path))


def test_cli_config_error_is_one_line_exit_2(tiny_data, tmp_path):
    raw = tiny_config_dict(tiny_data)
    raw["trainig"] = {}
    path = write(tmp_path, raw)
    proc = subprocess.run([sys.executable, "train.py", "--config", path, "--output", str(tmp_path / "run")],
                          capture_output=True, text=True, cwd=_repo())
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == f"error: {path}: trainig: unknown key (did you mean 'training'?)"
    assert "Traceback" not in proc.stderr


def test_bad_encoder_key_fails_before_tensorflow_and_leaves_the_run_dir(tiny_data, tmp_path):
    raw = tiny_config_dict(tiny_data)
    raw["inputs"][2]["encoder"]["normalise"] = "batch"
    path = write(tmp_path, raw)
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").write_text("the previous run")
    # run_path as `python train.py` would, then report whether TensorFlow was ever imported.
    code = ("import runpy, sys\n"
            f"sys.argv = ['train.py', '--config', {path!r}, '--output', {str(run)!r}, '--overwrite']\n"
            "try:\n    runpy.run_path('train.py', run_name='__main__')\n"
            "finally:\n    print('tensorflow' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=_repo())
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {path}: inputs[2].encoder.normalise: unknown key (did you mean 'normalize'?)"]
    assert proc.stdout.strip() == "False"  # the error came before TensorFlow was imported
    assert sorted(p.name for p in run.iterdir()) == ["model.keras"]
    assert (run / "model.keras").read_text() == "the previous run"


def test_debug_flag_shows_the_traceback(tiny_data, tmp_path):
    raw = tiny_config_dict(tiny_data)
    raw["trainig"] = {}
    path = write(tmp_path, raw)
    proc = subprocess.run([sys.executable, "train.py", "--config", path, "--debug"],
                          capture_output=True, text=True, cwd=_repo())
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "ConfigError" in proc.stderr


def _repo():
    import os

    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_manifest_missing_or_column_absent_fails_before_reading_records(tiny_data, tmp_path):
    from mmkeras.data.preprocessing import check_manifests

    raw = tiny_config_dict(tiny_data)
    raw["outputs"][0]["column"] = "labl"
    with pytest.raises(ConfigError) as err:
        check_manifests(config_from_dict(raw))
    assert str(err.value).startswith("outputs.label.column: column 'labl' is not in ")
    assert "(did you mean 'label'?)" in str(err.value)
    raw = tiny_config_dict(tiny_data)
    raw["inputs"][3]["columns"] = ["x1", "x11"]
    with pytest.raises(ConfigError, match=r"inputs.stats: column 'x11' is not in .*train.jsonl \(did you mean 'x1'\?\)"):
        check_manifests(config_from_dict(raw))
    raw["inputs"][3]["optional"] = True  # an optional input's column may be missing entirely
    check_manifests(config_from_dict(raw))
    raw = tiny_config_dict(tiny_data)
    raw["data"]["test"] = str(tmp_path / "nope.jsonl")
    with pytest.raises(ConfigError, match=r"data.test: manifest not found: .*nope.jsonl"):
        check_manifests(config_from_dict(raw))


def test_yaml_alias_bomb_is_refused_before_it_is_walked(tmp_path):
    from mmkeras.config import MAX_CONFIG_VALUES

    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]  # 9^9 values
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match=f"more than {MAX_CONFIG_VALUES} values once its YAML aliases are expanded"):
        load_config(str(path))
    # A recursive alias terminates too, and is a plain type error.
    path.write_text("name: &a [*a]\ndata: {train: x.jsonl}\ninputs: [{name: t, type: text}]\noutputs: [{name: y}]\n")
    with pytest.raises(ConfigError, match="name: expected a string"):
        load_config(str(path))


def test_group_by_column_must_be_in_a_manifest(tiny_data):
    from mmkeras.data.preprocessing import check_manifests

    raw = tiny_config_dict(tiny_data)
    raw["evaluation"] = {"group_by": "tags"}  # one column as a plain string
    check_manifests(config_from_dict(raw))
    assert config_from_dict(raw).evaluation.group_by == ["tags"]
    raw["evaluation"] = {"group_by": ["tagz"]}
    with pytest.raises(ConfigError, match="evaluation.group_by: column 'tagz' is in none of the manifests "
                                          r"\(did you mean 'tags'\?\)"):
        check_manifests(config_from_dict(raw))


@pytest.mark.parametrize("write, override, message", [
    (lambda p: p.write_bytes(b"name: x\n\xff\xfe bad\n"), None, "cfg.yaml: not UTF-8 text (byte b'\\xff' at offset 8)"),
    (lambda p: p.mkdir(), None, "cfg.yaml: not a file (a config is one YAML file)"),
    (None, "training.epochs=[1", "--set training.epochs=[1: the value is not valid YAML: expected ',' or ']'"),
    (None, "training.epochs=!!python/object/apply:os.system [id]",
     "the value is not valid YAML: could not determine a constructor for the tag"),
], ids=["not-utf8", "directory", "set-bad-yaml", "set-python-tag"])
def test_unreadable_config_or_override_is_one_line(tiny_data, tmp_path, write, override, message):
    path = tmp_path / "cfg.yaml"
    if write:
        write(path)
    else:
        path.write_text(yaml.safe_dump(tiny_config_dict(tiny_data)))
    with pytest.raises(ConfigError) as err:
        load_config(str(path), [override] if override else [])
    assert message in str(err.value) and "\n" not in str(err.value)
