"""The quality suite: mmkeras's defaults against Ludwig's on real data sets, side by side.

    python bench/quality.py                          # every set, mmkeras and Ludwig, singles too
    python bench/quality.py --sets digits_av,demo --peer none --no-single
    python bench/quality.py --sets spoken_commands --tag specaug --mm-set inputs.speech.encoder.spec_augment=true
    python bench/quality.py --sets demo --seeds 0,1,2     # each model three times; the table averages
    python bench/quality.py --table                  # print the table of what was measured

Each set is built on first use into $MMKERAS_QUALITY_DATA (default ~/.cache/mmkeras/quality)
by its bench/quality/<set>/build.py. Ludwig runs in its own virtualenv, created on
first use (~/.cache/mmkeras/ludwig-venv); it is never a dependency of mmkeras. Every
run's numbers go to OUT/results.jsonl as soon as it ends; the Markdown table to
OUT/table.md. The sets and their provenance: bench/quality/README.md.
"""
import argparse
import sys
from pathlib import Path

# `python bench/quality.py` puts bench/ on sys.path, not the repository that holds `bench`.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.quality import common, harness  # noqa: E402

# A guard against a hung run, not a budget: sort_of_clevr's epochs took 46 s on one 2-core
# machine and 124 s on another, so a fixed hour killed a 20-epoch run at epoch 19.
TIMEOUT_PER_EPOCH_S = 300
MIN_TIMEOUT_S = 3600


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", help=f"comma-separated (default: all): {', '.join(harness.available_sets())}")
    parser.add_argument("--peer", choices=["ludwig", "none"], default="ludwig", help="default: %(default)s")
    parser.add_argument("--peer-only", action="store_true", help="train the peer alone (no mmkeras runs)")
    parser.add_argument("--epochs", type=int, default=15, help="epoch budget for every tool (default: %(default)s)")
    parser.add_argument("--no-single", dest="single", action="store_false",
                        help="skip the single-modality models")
    parser.add_argument("--single-only", action="store_true", help="only the single-modality models")
    parser.add_argument("--mm-set", action="append", default=[], metavar="KEY=VALUE",
                        help="a train.py --set override for the mmkeras runs (to measure a candidate default)")
    parser.add_argument("--seeds", default="0",
                        help="comma-separated seeds; every model trains once per seed (default: %(default)s)")
    parser.add_argument("--tag", default="defaults", help="names this configuration in the results (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs/quality", help="default: %(default)s")
    parser.add_argument("--data", type=Path, default=common.CACHE_ROOT, help="where sets are built (default: %(default)s)")
    parser.add_argument("--small", action="store_true", help="tiny versions of the sets (a smoke test)")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the sets even if they are built")
    parser.add_argument("--timeout", type=float,
                        help=f"seconds per training run (default: {TIMEOUT_PER_EPOCH_S} per epoch, at least "
                             f"{MIN_TIMEOUT_S})")
    parser.add_argument("--table", action="store_true", help="only print the table of OUT/results.jsonl")
    parser.add_argument("--pivot", action="store_true",
                        help="only print every mmkeras tag side by side (full models), with Ludwig")
    return parser.parse_args(argv)


def main(args):
    results = args.out / "results.jsonl"
    if args.pivot:
        print(harness.pivot(harness.read_results(results)))
        return 0
    if not args.table:
        known = harness.available_sets()
        sets = args.sets.split(",") if args.sets else [s for s in known if s != "demo"]
        unknown = [s for s in sets if s not in known]
        if unknown:
            print(f"error: --sets: unknown set(s) {', '.join(unknown)}; known: {', '.join(known)}", file=sys.stderr)
            return 2
        try:
            seeds = tuple(int(s) for s in args.seeds.split(","))
        except ValueError:
            print(f"error: --seeds: expected comma-separated integers, got {args.seeds!r}", file=sys.stderr)
            return 2
        timeout_s = args.timeout or max(MIN_TIMEOUT_S, TIMEOUT_PER_EPOCH_S * args.epochs)
        harness.run_suite(sets, peer=args.peer, epochs=args.epochs, single=args.single, overrides=args.mm_set,
                          tag=args.tag, out=args.out, data_root=args.data, small=args.small, rebuild=args.rebuild,
                          timeout_s=timeout_s, mmkeras=not args.peer_only, full=not args.single_only, seeds=seeds)
    rows = harness.read_results(results)
    text = f"Machine: {harness.machine_line()}\n\n" + harness.table(rows)
    groups = harness.group_table(rows)
    if groups:
        text += "\n\nPer group (evaluation.group_by):\n\n" + groups
    (args.out / "table.md").write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
