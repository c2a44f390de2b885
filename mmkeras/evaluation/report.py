"""Evaluate a run on one split and write metrics.json and the plots into RUN_DIR."""
import os

from mmkeras.data.pipeline import make_dataset
from mmkeras.evaluation.evaluate import evaluate
from mmkeras.evaluation.plots import plot_ablation, plot_confusion_matrix, plot_history
from mmkeras.heads import head_targets
from mmkeras.io import atomic_write_json, read_json
from mmkeras.outputs import output_type


def evaluate_run(run, cfg, prep, model, split, split_name="test"):
    """Score `model` on `split`, merge into RUN_DIR/metrics.json, draw the plots; returns the result."""
    all_targets = head_targets(split, cfg, prep.labels)
    targets = {o.name: all_targets[o.name] for o in cfg.outputs}  # auxiliary heads are not scored
    dataset = make_dataset(split, prep.handlers, cfg.data, cfg.training.batch_size, training=False, targets=targets)
    result = evaluate(model, dataset, cfg, prep.labels, groups=split.groups)
    metrics = read_json(run.metrics) if os.path.exists(run.metrics) else {}
    metrics[split_name] = result["metrics"]
    metrics["ablation"] = {"split": split_name, **result["ablation"]}
    if "groups" in result:
        metrics["groups"] = {"split": split_name, "by": result["groups"]}
    atomic_write_json(run.metrics, metrics)

    for out in cfg.outputs:
        if output_type(out).confusion_matrix:
            m = result["metrics"][out.name]
            plot_confusion_matrix(m["confusion_matrix"], m["labels"],
                                  os.path.join(run.path, f"confusion_{out.name}.png"),
                                  title=f"{out.name} ({split_name}): accuracy {m['accuracy']:.3f}")
    if len(cfg.inputs) > 1:
        plot_ablation(result["ablation"], os.path.join(run.path, "ablation.png"),
                      metric_names=result["ablation"]["metric"])
    if os.path.exists(run.history):
        plot_history(run.history, os.path.join(run.path, "history.png"))
    return result


def metrics_line(name, metrics):
    """`label: accuracy 0.8889, macro_f1 0.8857, ...`: an output's single-number float metrics."""
    return f"{name}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float))


def summary_lines(result):
    """Human-readable lines: each output's headline metrics, the ablation and the groups' primary metric."""
    lines = [metrics_line(name, m) for name, m in result["metrics"].items()]
    ablation = result["ablation"]
    for column, values in result.get("groups", {}).items():
        for value, outputs in values.items():
            count = next(iter(outputs.values()))["n"]
            lines.append(f"  {column}={value} (n={count}): " + ", ".join(
                f"{n} {ablation['metric'][n]} {m[ablation['metric'][n]]:.4f}" for n, m in outputs.items()))
    for group in ("without", "only"):
        for modality, values in ablation.get(group, {}).items():
            lines.append(f"  {group} {modality}: " + ", ".join(
                f"{n} {ablation['metric'][n]} {v:.4f}" for n, v in values.items()))
    return lines
