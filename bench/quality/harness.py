"""Train mmkeras (and a peer) on every quality-suite set, side by side, and tabulate.

For each set: the model on all its inputs, and one model per input alone, each with
mmkeras's defaults (the set's config names no encoder, fusion or training settings)
and with the peer's defaults, on the same splits and epoch budget. Every run is one
subprocess measured the same way (`measure.run_measured`: wall time of the whole
command, peak RSS of its process tree). Results accumulate in `<out>/results.jsonl`
(one line per run, so an interrupted suite keeps what it measured); the table is
rebuilt from it.
"""
from __future__ import annotations

import datetime
import importlib
import json
import os
import platform
import shutil
import statistics
import sys
from pathlib import Path

import yaml

from bench.quality import common
from bench.quality.measure import run_measured

ROOT = Path(__file__).resolve().parents[2]
QUALITY_DIR = Path(__file__).resolve().parent
# The primary metric per output type (`mmkeras.outputs`: each type's primary_metric and
# higher_is_better). Repeated here on purpose: the harness must not import TensorFlow (it only
# starts the runs); tests/test_outputs.py checks the two agree.
PRIMARY = {"category": ("accuracy", True), "multilabel": ("micro_f1", True), "numeric": ("mae", False)}


def available_sets() -> list[str]:
    """Every folder of bench/quality/ with a build.py, in name order, plus the shipped demo."""
    sets = sorted(p.parent.name for p in QUALITY_DIR.glob("*/build.py"))
    return sets + ["demo"]


def ensure_built(name: str, root: Path, small: bool, rebuild: bool) -> Path:
    """The set's folder under `root`, built first if it is not complete."""
    out = common.set_dir(name + ("-small" if small else ""), root)
    if rebuild or not common.is_built(out):
        print(f"building {name} into {out}", flush=True)
        if name == "demo":
            build_demo(out, small)
        else:
            importlib.import_module(f"bench.quality.{name}.build").build(out, small=small)
    return out


# Records per split of the small demo (a smoke test of the suite that trains in seconds).
SMALL_DEMO = {"train": 120, "val": 40, "test": 40}


def build_demo(out: Path, small: bool = False) -> None:
    """The shipped demo as a suite set: its manifests, its inputs and outputs, none of its model settings.

    Full: the config points at data/demo's manifests. Small: the first records of each
    split, with their files copied (manifest paths may not leave the manifest's folder).
    """
    common.clean_output(out)
    cfg = yaml.safe_load((ROOT / "configs/demo.yaml").read_text(encoding="utf-8"))
    demo = ROOT / "data/demo"
    keep_in = ("name", "type", "column", "columns", "size", "channels", "max_tokens", "vocab_size",
               "sample_rate", "seconds", "optional")
    config = {"name": "demo",
              "inputs": [{k: v for k, v in i.items() if k in keep_in} for i in cfg["inputs"]],
              "outputs": [{k: v for k, v in o.items() if k in ("name", "type", "column")} for o in cfg["outputs"]]}
    manifests = {"train": demo / "train.jsonl", "val": demo / "val.jsonl", "test": demo / "test.jsonl"}
    if not small:
        data = {"train": str(manifests["train"]), "validation": str(manifests["val"]), "test": str(manifests["test"])}
        common.write_config(out, config, data, {"source": "data/demo (shipped)"})
        return
    splits = {}
    for split, path in manifests.items():
        records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()[: SMALL_DEMO[split]]]
        for rec in records:
            for column in ("image", "audio"):
                (out / rec[column]).parent.mkdir(exist_ok=True)
                shutil.copyfile(demo / rec[column], out / rec[column])
        splits[split] = records
    common.write_set(out, splits, config, {"source": "data/demo (shipped), first records of each split"})


def variant_config(set_path: Path, inputs: list[str] | None, work: Path) -> Path:
    """The set's config restricted to `inputs` (None: all), data paths made absolute."""
    cfg = yaml.safe_load((set_path / "config.yaml").read_text(encoding="utf-8"))
    for key, value in cfg["data"].items():
        if isinstance(value, str) and key in ("train", "validation", "test"):
            cfg["data"][key] = str((set_path / value).resolve())
    if inputs is not None:
        cfg["inputs"] = [i for i in cfg["inputs"] if i["name"] in inputs]
    work.mkdir(parents=True, exist_ok=True)
    path = work / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def variants(set_path: Path, single: bool, full: bool = True) -> list[tuple[str, list[str] | None]]:
    """("all", None) unless not `full` and, with `single`, ("only <input>", [input]) for every
    input of a multi-input set."""
    cfg = yaml.safe_load((set_path / "config.yaml").read_text(encoding="utf-8"))
    names = [i["name"] for i in cfg["inputs"]]
    extra = [(f"only {n}", [n]) for n in names] if single and len(names) > 1 else []
    return [("all", None)][:full] + extra


def expand_overrides(config: Path, overrides: list[str]) -> list[str]:
    """`inputs.{audio}.x=v` → one `inputs.<name>.x=v` per audio input of the config (none if it has none),
    and `outputs.{category}.x=v` likewise per category output, so one candidate default can be tried
    on every set whatever its inputs and outputs are called."""
    cfg = yaml.safe_load(config.read_text(encoding="utf-8"))
    expanded = []
    for assignment in overrides:
        if "{" not in assignment:
            expanded.append(assignment)
            continue
        section = assignment.split(".", 1)[0]
        for entry in cfg.get(section, []):
            placeholder = "{" + entry.get("type", "category") + "}"
            if placeholder in assignment:
                expanded.append(assignment.replace(placeholder, entry["name"]))
    return expanded


def run_mmkeras(config: Path, epochs: int, out_dir: Path, overrides: list[str], timeout_s: float) -> dict:
    """train.py with the set's config and the given --set overrides; test metrics from metrics.json."""
    command = [sys.executable, str(ROOT / "train.py"), "--config", str(config), "--output", str(out_dir / "run"),
               "--overwrite", "--set", f"training.epochs={epochs}"]
    for assignment in expand_overrides(config, overrides):
        command += ["--set", assignment]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = run_measured(command, out_dir / "train.log", env=env, cwd=str(ROOT), timeout_s=timeout_s)
    metrics_path = out_dir / "run" / "metrics.json"
    if result["returncode"] == 0 and metrics_path.exists():
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
        result["metrics"] = {out: {k: v for k, v in m.items() if isinstance(v, float)}
                             for out, m in metrics["test"].items()}
        if "groups" in metrics:  # evaluation.group_by: per question type, say
            result["groups"] = metrics["groups"]["by"]
    return result


def primary_metrics(config: Path) -> list[tuple[str, str, bool]]:
    """[(output, metric, higher_is_better)] of a config, in output order."""
    cfg = yaml.safe_load(config.read_text(encoding="utf-8"))
    return [(o["name"], *PRIMARY[o.get("type", "category")]) for o in cfg["outputs"]]


def run_suite(sets: list[str], *, peer: str, epochs: int, single: bool, overrides: list[str], tag: str,
              out: Path, data_root: Path, small: bool = False, rebuild: bool = False,
              timeout_s: float = 3600, mmkeras: bool = True, full: bool = True,
              seeds: tuple[int, ...] = (0,)) -> list[dict]:
    """Run every (set, variant, seed, tool); append each result to `<out>/results.jsonl` as it finishes.

    `mmkeras=False` runs the peer alone (its numbers do not depend on mmkeras's settings,
    so one peer run serves every mmkeras configuration measured on the same splits).
    Each seed seeds both tools' initialisation and shuffling; the splits stay fixed."""
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.jsonl"
    rows = []
    for name in sets:
        set_path = ensure_built(name, data_root, small, rebuild)
        for label, inputs in variants(set_path, single, full):
            for seed in seeds:
                slug = label.replace(" ", "-") + ("" if seed == 0 else f"-seed{seed}")
                work = out / "work" / tag / name / slug
                config = variant_config(set_path, inputs, work)
                for tool, run in _tools(config, inputs, epochs, work, overrides, seed, timeout_s, peer, mmkeras):
                    print(f"[{datetime.datetime.now():%H:%M:%S}] {name} / {label} / seed {seed} / {tool} ({tag})",
                          flush=True)
                    result = run()
                    row = {"tag": tag, "set": name, "variant": label, "tool": tool, "epochs": epochs, "seed": seed,
                           "overrides": overrides if tool == "mmkeras" else [],
                           "primary": primary_metrics(config), **result,
                           "time": datetime.datetime.now().isoformat(timespec="seconds")}
                    rows.append(row)
                    with open(results_path, "a", encoding="utf-8") as f:
                        f.write(json.dumps(row) + "\n")
                    print("   " + describe(row), flush=True)
    return rows


def _tools(config, inputs, epochs, work, overrides, seed, timeout_s, peer, mmkeras):
    """[(tool, run)] for one variant and seed: mmkeras (unless peer-only), then the peer."""
    tools = []
    if mmkeras:
        seeded = [*overrides, f"training.seed={seed}"]
        tools.append(("mmkeras", lambda: run_mmkeras(config, epochs, work / "mmkeras", seeded, timeout_s)))
    if peer == "ludwig":
        from bench.quality.ludwig_peer import run_ludwig
        tools.append(("ludwig", lambda: run_ludwig(config, inputs, epochs, work / "ludwig", seed=seed,
                                                   timeout_s=timeout_s)))
    return tools


def describe(row: dict) -> str:
    if row.get("returncode") != 0 or "metrics" not in row:
        return f"FAILED (exit {row.get('returncode')}, log {row.get('log')})"
    parts = [f"{o} {m} {row['metrics'][o][m]:.4f}" for o, m, _ in row["primary"] if o in row["metrics"]]
    return ", ".join(parts) + f"; {row['wall_s']:.0f} s, {row['peak_rss_mb']:.0f} MB"


def read_results(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def combine(runs: list[dict]) -> dict:
    """One row for the runs of one (tag, set, variant, tool) over seeds (the newest run of each seed):
    metrics averaged over the runs that finished, with their half-range in "spread"; wall time the
    median; peak RSS the largest. "seeds" counts the runs that finished; "failed" those that did not."""
    by_seed = {}
    for row in runs:
        by_seed[row.get("seed", 0)] = row
    done = [r for r in by_seed.values() if "metrics" in r]
    first = next(iter(by_seed.values()))
    combined = {k: v for k, v in first.items() if k not in ("metrics", "seed")}
    combined.update(seeds=len(done), failed=len(by_seed) - len(done))
    if not done:
        return combined
    combined.update(wall_s=statistics.median(r["wall_s"] for r in done),
                    peak_rss_mb=max(r["peak_rss_mb"] for r in done), metrics={}, spread={})
    for output, metric, _ in first["primary"]:
        values = [r["metrics"][output][metric] for r in done]
        combined["metrics"][output] = {metric: sum(values) / len(values)}
        combined["spread"][output] = (max(values) - min(values)) / 2
    return combined


def _grouped(rows: list[dict], key) -> dict:
    """{key(row): combined row}: the rows of each key combined over seeds."""
    groups = {}
    for row in rows:
        groups.setdefault(key(row), []).append(row)
    return {k: combine(v) for k, v in groups.items()}


def _cell(row: dict | None, output: str, metric: str) -> str:
    if row is None:
        return "—"
    if "metrics" not in row:
        return "failed"
    text = f"{row['metrics'][output][metric]:.3f}"
    if row["seeds"] > 1:
        text += f" ±{row['spread'][output]:.3f}"
    return text + (f" ({row['failed']} failed)" if row["failed"] else "")


def table(rows: list[dict], tag: str | None = None) -> str:
    """Markdown: per set, variant and output, mmkeras vs the peer, each averaged over its seeds
    (± half the range; the newest run of each seed wins)."""
    # A peer's numbers do not depend on the mmkeras tag.
    peers = _grouped([r for r in rows if r["tool"] != "mmkeras"], lambda r: (r["set"], r["variant"], r["tool"]))
    latest = _grouped([r for r in rows if r["tool"] == "mmkeras" and (tag is None or r["tag"] == tag)],
                      lambda r: (r["tag"], r["set"], r["variant"], r["tool"]))
    keys = {k[:3] for k in latest}
    keys |= {("peer", *k[:2]) for k in peers if not any(m[1:] == k[:2] for m in keys)}
    keys = sorted(keys, key=lambda k: (k[0], k[1], k[2] != "all", k[2]))
    lines = ["| tag | set | model | output (metric) | mmkeras | Ludwig | mmkeras − Ludwig | wall s (mm / ld) "
             "| peak RSS MB (mm / ld) | seeds (mm / ld) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for key in keys:
        mm, ld = latest.get((*key, "mmkeras")), peers.get((*key[1:], "ludwig"))
        any_row = mm or ld
        for output, metric, higher in any_row["primary"]:
            delta = "—"
            if mm and ld and "metrics" in mm and "metrics" in ld:
                d = mm["metrics"][output][metric] - ld["metrics"][output][metric]
                delta = f"{d:+.3f}" + ("" if higher else " (lower is better)")
            wall = " / ".join(f"{r['wall_s']:.0f}" if r and "metrics" in r else "—" for r in (mm, ld))
            rss = " / ".join(f"{r['peak_rss_mb']:.0f}" if r and "metrics" in r else "—" for r in (mm, ld))
            seeds = " / ".join(str(r["seeds"]) if r else "—" for r in (mm, ld))
            lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {output} ({metric}) | {_cell(mm, output, metric)} "
                         f"| {_cell(ld, output, metric)} | {delta} | {wall} | {rss} | {seeds} |")
    return "\n".join(lines)


def pivot(rows: list[dict], variant: str = "all") -> str:
    """Markdown: one row per (set, output), one column per mmkeras tag (a candidate default),
    then Ludwig; each averaged over its seeds. For "what did each candidate buy"."""
    rows = [r for r in rows if r["variant"] == variant]
    combined = _grouped(rows, lambda r: ("Ludwig" if r["tool"] != "mmkeras" else r["tag"], r["set"]))
    tags = list(dict.fromkeys(column for column, _ in combined))
    tags = [t for t in tags if t != "Ludwig"] + (["Ludwig"] if "Ludwig" in tags else [])
    cells, outputs = {}, []
    for (column, name), row in combined.items():
        for output, metric, _ in row["primary"]:
            key = (name, output, metric)
            if key not in outputs:
                outputs.append(key)
            cells[(*key, column)] = _cell(row, output, metric)
    lines = ["| set | output (metric) | " + " | ".join(tags) + " |", "|---|---|" + "---|" * len(tags)]
    for key in sorted(outputs):
        lines.append(f"| {key[0]} | {key[1]} ({key[2]}) | " + " | ".join(cells.get((*key, t), "") for t in tags) + " |")
    return "\n".join(lines)


def group_table(rows: list[dict]) -> str:
    """Markdown: for the sets evaluated per group (`evaluation.group_by`), one row per mmkeras tag and
    variant, the first output's primary metric overall and per value of each group column (the
    newest run of each; seeds are not averaged here). Empty when no run has groups."""
    newest = {}
    for row in rows:
        if row["tool"] == "mmkeras" and "groups" in row:
            newest[(row["set"], row["tag"], row["variant"])] = row
    lines = []
    for name in sorted({k[0] for k in newest}):
        runs = {k: r for k, r in newest.items() if k[0] == name}
        output, metric, _ = next(iter(runs.values()))["primary"][0]
        columns = list(dict.fromkeys((c, v) for r in runs.values() for c, values in r["groups"].items() for v in values))
        lines += [f"{name}: {output} {metric}", "",
                  "| tag | model | overall | " + " | ".join(f"{c}={v}" for c, v in columns) + " | wall s | seed |",
                  "|---|---|---|" + "---|" * len(columns) + "---|---|"]
        for (_, tag, variant), r in sorted(runs.items()):
            cells = [f"{r['groups'][c][v][output][metric]:.3f}" if v in r["groups"].get(c, {}) else "—"
                     for c, v in columns]
            lines.append(f"| {tag} | {variant} | {r['metrics'][output][metric]:.3f} | " + " | ".join(cells)
                         + f" | {r['wall_s']:.0f} | {r.get('seed', 0)} |")
        lines.append("")
    return "\n".join(lines)


def machine_line() -> str:
    load = os.getloadavg()[0]
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, {datetime.datetime.now():%Y-%m-%d %H:%M}, load {load:.1f}")
