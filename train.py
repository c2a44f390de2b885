"""Train a multimodal model from one YAML config.

    python train.py                                   # configs/demo.yaml → runs/demo
    python train.py --config CFG.yaml [--output DIR] [--set training.epochs=3 ...]

Reads top to bottom: config → strategy → data → preprocessing → model → fit →
evaluate. Everything it writes lands in the run directory (see README). Several
workers (TF_CONFIG or SLURM) run the same command; only the chief writes the
run directory, and a killed run resumes when the same command is run again.
"""
import argparse
import sys

from mmkeras.cli import run_cli, start_tensorflow


def main(args):
    from mmkeras.config import config_to_dict, load_config

    cfg = load_config(args.config, args.set)  # before TensorFlow loads: config errors answer at once
    tf = start_tensorflow(args.debug)
    import tf_keras as keras

    from mmkeras.data.preprocessing import Preprocessing, load_splits
    from mmkeras.data.records import BadRecordLog
    from mmkeras.model import build_model
    from mmkeras.run_dir import RunDir
    from mmkeras.training.strategy import Worker, make_strategy, set_precision

    # The strategy before any other TensorFlow op: multi-worker collectives are set up at startup.
    strategy = make_strategy(cfg.training.strategy)
    worker = Worker.of(strategy)
    policy = set_precision(cfg.training.mixed_precision)  # before any layer is built
    print(f"strategy: {type(strategy).__name__}, {worker.replicas} replica(s) in {worker.workers} worker(s), "
          f"batch {worker.per_replica_batch(cfg.training.batch_size)} per replica, precision {policy}")
    shared = RunDir(args.output or f"runs/{cfg.name}")
    shared.check(overwrite=args.overwrite, is_chief=worker.is_chief)
    # Every record validated before the run directory is touched: with --overwrite, a data
    # error must not cost the previous run. Bad ones are skipped and listed, or an error.
    log = BadRecordLog(cfg.data.on_bad_record)
    splits = load_splits(cfg, log)
    if args.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(cfg.training.seed)
    # Preprocessing state learned on train only; the model built from it before the run directory
    # is touched too, so a model that cannot be built (too large for memory) costs no previous run.
    prep = Preprocessing.fit(cfg, splits["train"])
    with strategy.scope():
        model = build_or_explain(build_model, cfg, prep)
    if shared.prepare(overwrite=args.overwrite, is_chief=worker.is_chief, config=config_to_dict(cfg)):
        print(f"resuming the interrupted run in {shared.path} from its backup")
    with shared.for_worker(worker) as run:
        if run is not shared:
            print(f"{worker.name}: the chief writes {shared.path}; this worker writes {run.path} (removed at exit)")
        train(cfg, strategy, worker, run, splits, log, prep, model)


def train(cfg, strategy, worker, run, splits, log, prep, model):
    from mmkeras.config import save_config
    from mmkeras.evaluation.report import evaluate_run, summary_lines
    from mmkeras.training.inputs import fit_inputs, remove_disk_caches, steps_per_epoch
    from mmkeras.heads import head_targets
    from mmkeras.training.loop import build_training_state, compile_model, fit, resume_hint, save_model

    log.write(run.bad_records)
    print(", ".join(f"{name}: {len(split)} records" for name, split in splits.items()))
    if log.entries:
        print(f"skipped {len(log.entries)} bad records, listed in {run.bad_records}")

    prep.save(run.path)  # so the run can be evaluated and re-exported without retraining
    save_config(cfg, run.config)

    # Each worker reads its own share of the records; the global batch is split across replicas.
    cache_dir = run.cache_dir(cfg.data.cache_dir)
    inputs = fit_inputs(strategy, worker, splits, cfg, prep, cache_dir)
    with strategy.scope():
        compile_model(model, cfg, steps_per_epoch(len(splits["train"]), cfg.training.batch_size))
        build_training_state(model, head_targets(splits["train"], cfg, prep.labels))
    with resume_hint(run):
        fit(model, inputs, cfg, run)
    remove_disk_caches(cache_dir)  # kept only while an interrupted run could resume from it
    save_model(model, run.model)  # on every worker: saving reads replicated variables collectively

    if "test" in splits:
        result = evaluate_run(run, cfg, prep, model, splits["test"], "test")
        print("\n".join(["test:"] + summary_lines(result)))
    print(f"run directory: {run.chief.path}")


def build_or_explain(build_model, cfg, prep):
    """The model, or one line when the configured sizes do not fit in memory (a fusion `dim` of
    2e9 is a valid int32 and an allocation of terabytes)."""
    import tensorflow as tf

    from mmkeras.errors import ConfigError, op_error_reason

    try:
        return build_model(cfg, prep)
    except (tf.errors.ResourceExhaustedError, MemoryError) as e:
        raise ConfigError(f"the configured model does not fit in memory ({op_error_reason(e, 160)}); reduce the "
                          "layer sizes (encoder and fusion dim, units, filters, vocab_size)") from None


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/demo.yaml", help="YAML config (default: %(default)s)")
    parser.add_argument("--output", help="run directory (default: runs/<config name>)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. training.epochs=3 or inputs.image.size=[32,32]")
    parser.add_argument("--overwrite", action="store_true", help="replace a finished run in --output")
    parser.add_argument("--deterministic", action="store_true",
                        help="bit-identical reruns on the same machine (slower input pipeline and ops)")
    parser.add_argument("--debug", action="store_true",
                        help="show Python tracebacks for user errors and TensorFlow's start-up log")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(run_cli(main, parse_args()))
