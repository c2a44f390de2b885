"""End to end through the real commands: train.py, then python -m mmkeras.evaluate."""
import csv
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*args):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO)


EPOCHS = 10


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory):
    import yaml

    from conftest import tiny_config_dict

    tmp = tmp_path_factory.mktemp("train")
    # 10 epochs: at 6 the multilabel head's micro-F1 on seed 0 sat at 0.39-0.5 whether or not
    # the category output had auxiliary heads (0.77-1.0 at 10; README "Quality").
    raw = tiny_config_dict(tiny_data, epochs=EPOCHS)
    raw["data"]["train"] = _manifest_with_bad_rows(tiny_data)
    raw["outputs"].append({"name": "tags", "type": "multilabel", "loss_weight": 1.0, "aux_weight": 0.2})
    raw["outputs"].append({"name": "score", "type": "numeric", "loss_weight": 0.1})
    raw["data"]["cache"] = "disk"  # the export tests' run covers the default (in memory)
    raw["evaluation"] = {"group_by": ["tags"]}
    cfg = tmp / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    out = tmp / "run"
    # --deterministic: the scores below are thresholds on one 10-epoch run; a CI run of the parallel
    # pipeline under load gave tags micro-F1 0.436 where the others gave more than 0.5.
    proc = run("train.py", "--config", str(cfg), "--output", str(out), "--deterministic")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return cfg, out, proc


BAD_ROWS = [
    ({"image": "img/none.png"}, "image", "img/none.png", "file not found"),
    ({"x1": "NaN"}, "x1", "NaN", "column 'x1': not a finite number: 'NaN'"),
]


def _manifest_with_bad_rows(folder):
    """train.jsonl plus two bad records (lines 49 and 50)."""
    lines = open(os.path.join(folder, "train.jsonl")).read().splitlines()
    good = json.loads(lines[0])
    path = os.path.join(folder, "train_with_bad.jsonl")
    with open(path, "w") as f:
        f.write("\n".join(lines + [json.dumps({**good, **change}) for change, *_ in BAD_ROWS]) + "\n")
    return path


def test_bad_records_are_skipped_listed_and_counted(trained):
    _, out, proc = trained
    entries = [json.loads(line) for line in open(out / "bad_records.jsonl")]
    assert [(e["line"], e["column"], e["value"]) for e in entries] == [(49, "image", "img/none.png"), (50, "x1", "NaN")]
    assert all(e["manifest"].endswith("train_with_bad.jsonl") for e in entries)
    assert "file not found" in entries[0]["reason"] and entries[1]["reason"] == BAD_ROWS[1][3]
    assert f"skipped 2 bad records, listed in {out / 'bad_records.jsonl'}" in proc.stdout
    assert "train: 48 records" in proc.stdout


def test_output_is_one_readable_line_per_epoch_and_no_tensorflow_noise(trained):
    _, out, proc = trained
    # TensorFlow's C++ start-up lines (absl, CUDA stubs, cuInit without a GPU) are hidden.
    assert not any(word in proc.stderr for word in ("absl", "cuInit", "cuda", "oneDNN")), proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("epoch"))
    epochs = [line for line in lines[header + 1:] if line[:7].strip().endswith(f"/{EPOCHS}")]
    with open(out / "history.csv") as f:
        assert len(epochs) == len(f.read().splitlines()) - 1  # one line per epoch trained
    # The main heads (label, tags, score) with train / validation pairs; the auxiliary
    # heads' numbers only in history.csv.
    assert all(f"{o} loss" in lines[header] for o in ("label", "tags", "score")), lines[header]
    assert "_from_" not in proc.stdout and "_from_" in open(out / "history.csv").readline()
    assert max(len(line) for line in epochs) < 160 and epochs[0].count(" / ") == 7
    # "best" marks exactly the epochs whose validation loss improved on every earlier one.
    with open(out / "history.csv") as f:
        val_loss = [float(row["val_loss"]) for row in csv.DictReader(f)]
    improved = [loss < min(val_loss[:i], default=float("inf")) for i, loss in enumerate(val_loss)]
    assert [line.endswith("best") for line in epochs] == improved


def test_a_diverging_run_stops_with_one_line_and_exit_2(tiny_data, tmp_path):
    import yaml
    from conftest import tiny_config_dict

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config_dict(tiny_data, epochs=3)))
    # A learning rate this large throws the weights to ±1e12 at the first step: NaN at once.
    proc = run("train.py", "--config", str(cfg), "--output", str(tmp_path / "run"),
               "--set", "training.learning_rate=1e12")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: training diverged: the loss became nan at step ") and "of epoch 1" in last
    assert "training.learning_rate=1e+12" in last and "new --output" in last
    # Nothing of the diverged epoch was recorded as if it had trained.
    assert not (tmp_path / "run" / "model.keras").exists() and not (tmp_path / "run" / "history.csv").exists()


def test_overwrite_keeps_the_previous_run_when_the_new_data_is_bad(tiny_data, tmp_path):
    import yaml
    from conftest import tiny_config_dict

    previous = tmp_path / "run"
    previous.mkdir()
    (previous / "model.keras").write_text("the previous run's model")
    raw = tiny_config_dict(tiny_data, epochs=1)
    raw["data"]["on_bad_record"] = "error"
    raw["data"]["train"] = _manifest_with_bad_rows(tiny_data)  # line 49: a missing image
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    proc = run("train.py", "--config", str(cfg), "--output", str(previous), "--overwrite")
    assert proc.returncode == 2 and ":49, column 'image': file not found" in proc.stderr.strip().splitlines()[-1]
    assert (previous / "model.keras").read_text() == "the previous run's model"
    assert sorted(p.name for p in previous.iterdir()) == ["model.keras"]


def test_bad_record_in_error_mode_is_one_line_exit_2(trained, tmp_path):
    cfg, _, _ = trained
    proc = run("train.py", "--config", str(cfg), "--output", str(tmp_path / "run"), "--set", "data.on_bad_record=error")
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "train_with_bad.jsonl:49, column 'image': file not found: " in last
    assert last.endswith("(value: 'img/none.png')") and "Traceback" not in proc.stderr
    assert not os.path.exists(tmp_path / "run" / "model.keras")


def test_run_directory_layout(trained):
    _, out, _ = trained
    for name in ("config.yaml", "model.keras", "labels.json", "preprocessing.json", "vocab/text.txt",
                 "metrics.json", "history.csv", "confusion_label.png", "ablation.png", "history.png",
                 "checkpoints/best.weights.h5"):
        assert os.path.exists(out / name), name
    assert os.listdir(out / "logs")
    assert not [f for f in os.listdir(out) if ".tmp" in f]
    assert not os.path.exists(out / "cache")  # the disk cache lives only while training can resume from it
    assert json.load(open(out / "labels.json"))["tags"] == ["blue", "cool", "green", "red", "warm"]


def test_the_train_step_is_traced_once_with_the_metrics_fit_names(tiny_run):
    """`build_training_state` creates the optimizer's and metrics' variables before `fit`, so its
    train step is traced once (not twice), and the metrics keep the names history.csv has."""
    from mmkeras.data.pipeline import make_dataset
    from mmkeras.data.preprocessing import load_splits
    from mmkeras.data.records import BadRecordLog
    from mmkeras.heads import head_targets
    from mmkeras.run_dir import RunDir, load_run, read_history
    from mmkeras.training.loop import build_training_state, compile_model

    _, cfg, prep, model = load_run(tiny_run)
    split = load_splits(cfg, BadRecordLog("skip"), known_labels=prep.labels)["train"]
    targets = head_targets(split, cfg, prep.labels)
    compile_model(model, cfg, steps_per_epoch=2)
    build_training_state(model, targets)
    logs = model.fit(make_dataset(split, prep.handlers, cfg.data, 32, training=True, targets=targets),
                     epochs=1, verbose=0).history
    assert model.train_function.experimental_get_tracing_count() == 1
    history = read_history(RunDir(tiny_run).history)[0]
    assert set(logs) == {k for k in history if k != "epoch" and not k.startswith("val_")}


def test_learning_rate_warms_up_then_decays(tiny_data):
    """`training.warmup_epochs`: the rate rises linearly from 0 to `learning_rate`, then follows
    the cosine decay over the remaining steps; a fine-tune (`epochs` given) starts at its peak."""
    from conftest import tiny_config_dict
    from mmkeras.config import config_from_dict
    from mmkeras.training.loop import learning_rate_schedule

    cfg = config_from_dict(tiny_config_dict(tiny_data, epochs=10, learning_rate=0.01, warmup_epochs=1.5))
    rate = learning_rate_schedule(cfg, steps_per_epoch=4)  # 6 warm-up steps of 40
    assert [round(float(rate(step)), 6) for step in (0, 3, 6)] == [0.0, 0.005, 0.01]
    assert float(rate(23)) == pytest.approx(0.01 * (0.05 + 0.95 * 0.5), rel=1e-4)  # halfway through the decay
    assert float(rate(40)) == pytest.approx(0.0005)
    assert float(learning_rate_schedule(cfg, 4, epochs=2, learning_rate=0.001)(0)) == pytest.approx(0.001)
    unwarmed = config_from_dict(tiny_config_dict(tiny_data, epochs=10, learning_rate=0.01))
    assert float(learning_rate_schedule(unwarmed, 4)(0)) == pytest.approx(0.01)


def test_joint_training_learns_every_output(trained):
    _, out, _ = trained
    metrics = json.load(open(out / "metrics.json"))
    test = metrics["test"]
    assert test["label"]["accuracy"] > 0.6  # 3 balanced classes: chance is 0.33
    assert set(test["label"]) >= {"accuracy", "macro_precision", "macro_recall", "macro_f1", "confusion_matrix"}
    assert test["tags"]["micro_f1"] > 0.5 and "mae" in test["score"]
    history = open(out / "history.csv").read().splitlines()
    assert "tags_from_image_loss" in history[0]  # auxiliary heads trained jointly
    assert len(history) == 1 + EPOCHS


def test_ablation_covers_every_modality(trained):
    _, out, _ = trained
    ablation = json.load(open(out / "metrics.json"))["ablation"]
    assert ablation["split"] == "test" and ablation["metric"]["label"] == "accuracy"
    for group in ("without", "only"):
        assert set(ablation[group]) == {"image", "text", "speech", "stats"}
    assert ablation["full"]["label"] == json.load(open(out / "metrics.json"))["test"]["label"]["accuracy"]


def test_metrics_per_group_of_a_manifest_column(trained):
    _, out, proc = trained
    metrics = json.load(open(out / "metrics.json"))
    groups = metrics["groups"]
    assert groups["split"] == "test" and set(groups["by"]) == {"tags"}
    by_tag = groups["by"]["tags"]
    assert set(by_tag) == {"red;warm", "cool;green", "blue;cool"}
    # The groups partition the split: their counts add up and their accuracies average to the whole.
    counts = {tag: m["label"]["n"] for tag, m in by_tag.items()}
    assert sum(counts.values()) == metrics["test"]["label"]["n"]
    weighted = sum(m["label"]["accuracy"] * counts[tag] for tag, m in by_tag.items()) / sum(counts.values())
    assert weighted == pytest.approx(metrics["test"]["label"]["accuracy"])
    assert "mae" in by_tag["red;warm"]["score"] and "per_class" not in by_tag["red;warm"]["label"]
    assert f"tags=red;warm (n={counts['red;warm']}): label accuracy" in proc.stdout


def test_evaluate_cli_reloads_the_saved_model(trained):
    _, out, _ = trained
    before = json.load(open(out / "metrics.json"))
    proc = run("-m", "mmkeras.evaluate", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    after = json.load(open(out / "metrics.json"))
    assert after["test"]["label"]["accuracy"] == pytest.approx(before["test"]["label"]["accuracy"])
    assert after["test"]["score"]["mae"] == pytest.approx(before["test"]["score"]["mae"], rel=1e-4)


def test_finished_run_is_not_clobbered(trained):
    cfg, out, _ = trained
    proc = run("train.py", "--config", str(cfg), "--output", str(out))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: {out} already holds a trained run (model.keras); "
        "pass --overwrite to replace it or --output to train elsewhere")


def test_model_files_cannot_run_code(tmp_path):
    """safe_mode: a .keras file with a Lambda layer (arbitrary Python) is refused, not executed."""
    import tf_keras as keras

    from mmkeras.training.loop import load_model

    x = keras.Input((2,))
    model = keras.Model(x, keras.layers.Lambda(lambda t: t * 2)(x))
    path = str(tmp_path / "evil.keras")
    model.save(path)
    with pytest.raises(ValueError, match="(?i)unsafe|safe_mode"):
        load_model(path)


def test_output_that_cannot_be_a_run_directory_is_refused_before_any_work(tmp_path):
    from mmkeras.errors import UserError
    from mmkeras.run_dir import RunDir

    afile = tmp_path / "afile"
    afile.write_text("x")
    cases = {str(afile): "exists and is not a directory",
             str(afile / "run"): f"{afile} is a file, not a directory",
             str(tmp_path / ("x" * 300) / "run"): "is 300 characters; this file system takes at most",
             "/proc/mmkeras-run": "cannot create it in /proc"}
    for path, message in cases.items():
        with pytest.raises(UserError, match=message):
            RunDir(path).check()
    assert sorted(os.listdir(tmp_path)) == ["afile"]  # nothing created, no probe left behind


def test_only_the_chief_takes_the_run_directory_lock(tmp_path):
    """Other workers share the chief's directory: reaching their check after the chief locked it is no error."""
    from mmkeras.errors import UserError
    from mmkeras.run_dir import RunDir

    chief = RunDir(str(tmp_path / "run"))
    chief.prepare(is_chief=True)
    assert RunDir(chief.path).prepare(is_chief=False) is False  # a worker of the same run
    with pytest.raises(UserError, match="another train.py is writing this run directory"):
        RunDir(chief.path).check()  # a second chief
    os.close(chief._lock_fd)
    RunDir(chief.path).check()


def test_a_model_too_large_for_memory_is_one_line_and_costs_no_previous_run(tiny_data, tmp_path):
    """A fusion dim of 2e9 is a valid int32 and a 288 GB allocation: one line, not TensorFlow's OOM
    traceback, found before --overwrite deletes anything."""
    import yaml
    from conftest import tiny_config_dict

    previous = tmp_path / "run"
    previous.mkdir()
    (previous / "model.keras").write_text("the previous run's model")
    raw = tiny_config_dict(tiny_data, epochs=1)
    raw["fusion"]["dim"] = 2_000_000_000
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    proc = run("train.py", "--config", str(cfg), "--output", str(previous), "--overwrite")
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 2 and last.startswith("error: the configured model does not fit in memory (OOM "
                                                    "when allocating tensor with shape["), last
    assert sorted(p.name for p in previous.iterdir()) == ["model.keras"]
    assert (previous / "model.keras").read_text() == "the previous run's model"


def test_a_backup_resumes_whatever_the_export_section_says(tmp_path):
    """Export acts after training: a config saved before a release added export keys (qat_epochs...)
    or with other variants listed still resumes; a model key still refuses."""
    import yaml

    from mmkeras.errors import UserError
    from mmkeras.run_dir import RunDir

    run = RunDir(str(tmp_path / "run"))
    os.makedirs(run.path)
    saved = {"fusion": {"type": "concat", "dim": 16}, "training": {"epochs": 3},
             "export": {"quantize": ["float32"], "representative_samples": 200}}
    with open(run.config, "w", encoding="utf-8") as f:
        yaml.safe_dump(saved, f)
    newer = {**saved, "training": {"epochs": 9},
             "export": {"quantize": ["float32", "int8_qat"], "representative_samples": 200, "qat_epochs": 2}}
    run.check_resume(newer)
    with pytest.raises(UserError, match=r"another config \(fusion.dim: 16 → 12\)"):
        run.check_resume({**newer, "fusion": {"type": "concat", "dim": 12}})
