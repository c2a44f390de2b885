"""The quality suite's harness: builds a set, trains it, measures it, tabulates it."""
import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

from bench.quality import harness

ROOT = Path(__file__).resolve().parents[1]


def run_small_suite(tmp_path, name, *args):
    """bench/quality.py on the small version of set `name`, mmkeras only, one epoch → (out, data) folders."""
    out, data = tmp_path / "out", tmp_path / "data"
    command = [sys.executable, str(ROOT / "bench/quality.py"), "--sets", name, "--small", "--peer", "none",
               "--no-single", "--epochs", "1", "--out", str(out), "--data", str(data), *args]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return out, data


def test_suite_trains_a_small_set_and_tabulates_it(tmp_path):
    out, data = run_small_suite(tmp_path, "demo", "--mm-set", "inputs.{audio}.encoder.normalize=utterance",
                                "--tag", "smoke")

    (row,) = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert (row["set"], row["variant"], row["tool"], row["returncode"]) == ("demo", "all", "mmkeras", 0)
    assert 0.0 <= row["metrics"]["label"]["accuracy"] <= 1.0
    assert row["wall_s"] > 0 and row["peak_rss_mb"] > 100  # TensorFlow alone is hundreds of MB
    # The override reached the run: its resolved config holds it.
    run_cfg = yaml.safe_load(Path(row["log"]).with_name("run").joinpath("config.yaml").read_text())
    assert run_cfg["inputs"][2]["encoder"]["normalize"] == "utterance"
    table = (out / "table.md").read_text()
    assert f"| smoke | demo | all | label (accuracy) | {row['metrics']['label']['accuracy']:.3f} | — |" in table
    assert row["seed"] == 0 and run_cfg["training"]["seed"] == 0
    # The small set's manifests point at copies inside its own folder.
    assert (data / "demo-small" / "built.json").exists()


def test_overrides_expand_per_input_and_output_type(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"inputs": [{"name": "a", "type": "audio"}, {"name": "b", "type": "audio"},
                                                 {"name": "t", "type": "text"}],
                                      # An output without `type` is a category output (the config's default).
                                      "outputs": [{"name": "y"}, {"name": "n", "type": "numeric"}]}))
    assert harness.expand_overrides(config, ["inputs.{audio}.encoder.spec_augment=true", "training.seed=1",
                                             "inputs.{image}.encoder.pooling=flatten",
                                             "outputs.{category}.aux_weight=0.3"]) == [
        "inputs.a.encoder.spec_augment=true", "inputs.b.encoder.spec_augment=true", "training.seed=1",
        "outputs.y.aux_weight=0.3"]


def test_table_compares_tools_and_says_which_way_is_better():
    text = harness.table([_row("mmkeras", 0.5, 60.0), _row("ludwig", 0.75, 90.0)])
    assert "| t | s | all | size (mae) | 0.500 | 0.750 | -0.250 (lower is better) | 60 / 90 | 1000 / 1000 | 1 / 1 |" in text


def _row(tool, value, wall, seed=0, rss=1000.0):
    return {"tag": "t", "set": "s", "variant": "all", "tool": tool, "primary": [["size", "mae", False]], "seed": seed,
            "metrics": {"size": {"mae": value}}, "wall_s": wall, "peak_rss_mb": rss}


def test_seeds_are_averaged_and_a_rerun_of_a_seed_replaces_it():
    failed = {**_row("mmkeras", 0.0, 1.0, seed=3), "returncode": 1}
    del failed["metrics"]
    rows = [_row("mmkeras", 9.0, 10.0, seed=0), _row("mmkeras", 0.4, 50.0, seed=0),  # the rerun wins
            _row("mmkeras", 0.6, 70.0, seed=1, rss=1200.0), _row("mmkeras", 0.5, 60.0, seed=2), failed,
            _row("ludwig", 0.75, 90.0)]
    text = harness.table(rows)
    assert ("| t | s | all | size (mae) | 0.500 ±0.100 (1 failed) | 0.750 | -0.250 (lower is better) | 60 / 90 "
            "| 1200 / 1000 | 3 / 1 |") in text
    assert "| s | size (mae) | 0.500 ±0.100 (1 failed) | 0.750 |" in harness.pivot(rows)


def test_vqa_set_builds_trains_a_token_fusion_and_tabulates_per_question_type(tmp_path):
    out, data = run_small_suite(tmp_path, "sort_of_clevr", "--mm-set", "fusion.type=relation", "--tag", "rn")

    (row,) = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert set(row["groups"]) == {"qtype", "relational"}
    assert set(row["groups"]["relational"]) == {"relational", "non-relational"}
    qtypes = row["groups"]["qtype"]
    assert set(qtypes) <= {"shape", "leftright", "topbottom", "closest", "furthest", "count"} and len(qtypes) >= 4
    assert sum(q["answer"]["n"] for q in qtypes.values()) == 40  # 4 test scenes × 10 questions
    table = (out / "table.md").read_text()
    assert "Per group (evaluation.group_by)" in table and "| rn | all | " in table
    built = json.loads((data / "sort_of_clevr-small" / "built.json").read_text())
    assert built["seed"] == 20170605 and built["small"] is True

    # The scene-batched probe runs the registered fusion on the same set.
    probe = subprocess.run([sys.executable, str(ROOT / "bench/quality/sort_of_clevr/probe.py"), "--epochs", "1",
                            "--scenes", "4", "--set", "readout=attention", "--data", str(data / "sort_of_clevr-small")],
                           capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert probe.returncode == 0, probe.stderr[-2000:]
    lines = probe.stdout.splitlines()
    assert lines[0] == "film {'readout': 'attention'}: 120 training questions, 12 scenes, 4 scenes a step"
    assert re.match(r"epoch 1: \d+ s, loss \d+\.\d{3}, validation (0\.\d{3}|1\.000) \(shape ", lines[1]), lines[1]
    assert re.search(r"variance from the colour (0|1)\.\d\d, from the type (0|1)\.\d\d$", lines[1]), lines[1]


def test_group_table_lists_every_group_value():
    row = {**_row("mmkeras", 0.9, 100.0), "primary": [["answer", "accuracy", True]],
           "metrics": {"answer": {"accuracy": 0.9}},
           "groups": {"qtype": {"count": {"answer": {"accuracy": 0.7}}, "shape": {"answer": {"accuracy": 1.0}}}}}
    text = harness.group_table([row, _row("ludwig", 0.5, 10.0)])
    assert "| tag | model | overall | qtype=count | qtype=shape | wall s | seed |" in text
    assert "| t | all | 0.900 | 0.700 | 1.000 | 100 | 0 |" in text
    assert harness.group_table([_row("mmkeras", 0.9, 1.0)]) == ""
