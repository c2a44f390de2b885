"""Train a multimodal model from one YAML config.

    python train.py                                   # configs/demo.yaml → runs/demo
    python train.py --config CFG.yaml [--output DIR] [--set training.epochs=3 ...]

Reads top to bottom: config → data → preprocessing → strategy → model → fit →
evaluate. Everything it writes lands in the run directory (see README).
"""
import argparse
import sys

from mmkeras.cli import quiet_tensorflow, run_cli


def main(args):
    from mmkeras.config import load_config, save_config

    cfg = load_config(args.config, args.set)  # before TensorFlow loads: config errors answer at once
    import tf_keras as keras

    from mmkeras.data.pipeline import make_dataset
    from mmkeras.data.preprocessing import Preprocessing, load_splits
    from mmkeras.data.records import BadRecordLog
    from mmkeras.evaluation.report import evaluate_run, summary_lines
    from mmkeras.heads import head_targets
    from mmkeras.model import build_model
    from mmkeras.run_dir import RunDir
    from mmkeras.training.loop import compile_model, fit, save_model
    from mmkeras.training.strategy import make_strategy

    run = RunDir(args.output or f"runs/{cfg.name}")
    if run.prepare(overwrite=args.overwrite):
        print(f"resuming the interrupted run in {run.path} from its backup")
    keras.utils.set_random_seed(cfg.training.seed)

    # Data: every record validated up front; bad ones skipped and listed, or an error.
    log = BadRecordLog(cfg.data.on_bad_record)
    splits = load_splits(cfg, log)
    log.write(run.bad_records)
    print(", ".join(f"{name}: {len(split)} records" for name, split in splits.items()))
    if log.entries:
        print(f"skipped {len(log.entries)} bad records, listed in {run.bad_records}")

    # Preprocessing state learned on train only, saved so the run can be re-exported.
    prep = Preprocessing.fit(cfg, splits["train"])
    prep.save(run.path)
    save_config(cfg, run.config)

    def dataset(name, training):
        targets = head_targets(splits[name], cfg, prep.labels)
        return make_dataset(splits[name], prep.handlers, cfg.data, cfg.training.batch_size,
                            training=training, targets=targets, seed=cfg.training.seed)

    train_ds, val_ds = dataset("train", True), dataset("validation", False)
    steps = -(-len(splits["train"]) // cfg.training.batch_size)

    strategy = make_strategy(cfg.training.strategy)
    with strategy.scope():
        model = build_model(cfg, prep)
        compile_model(model, cfg, steps)
    fit(model, train_ds, val_ds, cfg, run)
    save_model(model, run.model)

    if "test" in splits:
        result = evaluate_run(run, cfg, prep, model, splits["test"], "test")
        print("\n".join(["test:"] + summary_lines(result)))
    print(f"run directory: {run.path}")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/demo.yaml", help="YAML config (default: %(default)s)")
    parser.add_argument("--output", help="run directory (default: runs/<config name>)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. training.epochs=3 or inputs.image.size=[32,32]")
    parser.add_argument("--overwrite", action="store_true", help="replace a finished run in --output")
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks for user errors")
    return parser.parse_args(argv)


if __name__ == "__main__":
    quiet_tensorflow()
    sys.exit(run_cli(main, parse_args()))
