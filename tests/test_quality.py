"""The quality suite's harness: builds a set, trains it, measures it, tabulates it."""
import json
import subprocess
import sys
from pathlib import Path

import yaml

from bench.quality import harness

ROOT = Path(__file__).resolve().parents[1]


def test_suite_trains_a_small_set_and_tabulates_it(tmp_path):
    out, data = tmp_path / "out", tmp_path / "data"
    command = [sys.executable, str(ROOT / "bench/quality.py"), "--sets", "demo", "--small", "--peer", "none",
               "--no-single", "--epochs", "1", "--out", str(out), "--data", str(data),
               "--mm-set", "inputs.{audio}.encoder.normalize=utterance", "--tag", "smoke"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

    (row,) = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert (row["set"], row["variant"], row["tool"], row["returncode"]) == ("demo", "all", "mmkeras", 0)
    assert 0.0 <= row["metrics"]["label"]["accuracy"] <= 1.0
    assert row["wall_s"] > 0 and row["peak_rss_mb"] > 100  # TensorFlow alone is hundreds of MB
    # The override reached the run: its resolved config holds it.
    run_cfg = yaml.safe_load(Path(row["log"]).with_name("run").joinpath("config.yaml").read_text())
    assert run_cfg["inputs"][2]["encoder"]["normalize"] == "utterance"
    table = (out / "table.md").read_text()
    assert f"| smoke | demo | all | label (accuracy) | {row['metrics']['label']['accuracy']:.3f} | — |" in table
    # The small set's manifests point at copies inside its own folder.
    assert (data / "demo-small" / "built.json").exists()


def test_overrides_expand_per_input_type(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"inputs": [{"name": "a", "type": "audio"}, {"name": "b", "type": "audio"},
                                                 {"name": "t", "type": "text"}]}))
    assert harness.expand_overrides(config, ["inputs.{audio}.encoder.spec_augment=true", "training.seed=1",
                                             "inputs.{image}.encoder.pooling=flatten"]) == [
        "inputs.a.encoder.spec_augment=true", "inputs.b.encoder.spec_augment=true", "training.seed=1"]


def test_table_compares_tools_and_says_which_way_is_better():
    def row(tool, value, wall):
        return {"tag": "t", "set": "s", "variant": "all", "tool": tool, "primary": [["size", "mae", False]],
                "metrics": {"size": {"mae": value}}, "wall_s": wall, "peak_rss_mb": 1000.0}

    text = harness.table([row("mmkeras", 0.5, 60.0), row("ludwig", 0.75, 90.0)])
    assert "| t | s | all | size (mae) | 0.500 | 0.750 | -0.250 (lower is better) | 60 / 90 | 1000 / 1000 |" in text
