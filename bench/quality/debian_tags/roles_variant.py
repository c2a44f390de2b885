"""A multi-output variant of a built `debian_tags` set: a category output beside the multilabel
and numeric ones, to measure defaults that touch several outputs (README "Quality", auxiliary
heads by default).

`role` is a package's one `role::` debtag (`role::program`, `role::shared-lib`, ...), or
`other` when it has none or several; those tags leave the multilabel `tags` output, so the
two outputs do not share labels. Inputs, splits and the `size` output are debian_tags'.

Command (from the repository root)::

    .venv/bin/python bench/quality/debian_tags/roles_variant.py [--set DIR] --out OUT
    .venv/bin/python train.py --config OUT/config.yaml --output RUN
"""
import argparse
import json
import sys
from pathlib import Path

import yaml

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from bench.quality import common  # noqa: E402

ROLE = "role::"


def with_role(record):
    roles = [t for t in record["tags"] if t.startswith(ROLE)]
    return {**record, "role": roles[0] if len(roles) == 1 else "other",
            "tags": [t for t in record["tags"] if not t.startswith(ROLE)]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n")[0])
    parser.add_argument("--set", type=Path, default=common.set_dir("debian_tags"), help="a built debian_tags set")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    config = yaml.safe_load((args.set / "config.yaml").read_text(encoding="utf-8"))
    args.out.mkdir(parents=True, exist_ok=True)
    for manifest in config["data"].values():
        lines = (args.set / manifest).read_text(encoding="utf-8").splitlines()
        common.write_jsonl(args.out / manifest, [with_role(json.loads(line)) for line in lines])
    config["name"] = "debian_roles"
    config["outputs"].insert(0, {"name": "role", "type": "category", "column": "role"})
    (args.out / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    print(f"{args.out}: {', '.join(config['data'].values())} and config.yaml (outputs role, tags, size)")


if __name__ == "__main__":
    main()
