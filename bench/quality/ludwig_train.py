"""Train and test one Ludwig model for the quality suite; run by Ludwig's own venv python.

`ludwig_peer.py` (in mmkeras's venv) has already put the mmkeras set in Ludwig's terms: a
Ludwig config and train/validation/test JSONL files with absolute media paths and null
for missing values. This script does only what needs Ludwig and torch: train with
Ludwig's defaults, predict the test split, and write the predictions as JSON, which
`ludwig_peer.py` scores with mmkeras's own metric definitions (not Ludwig's stats, so
both columns of the comparison mean the same thing).

    python ludwig_train.py --config ludwig.yaml --train t.jsonl --validation v.jsonl \
        --test s.jsonl --output DIR --predictions predictions.json --seed 0
"""
from __future__ import annotations

import argparse
import json
import logging
import time

STARTED = time.monotonic()  # before the imports below: torch and Ludwig take tens of seconds to load

import pandas as pd  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

import ludwig  # noqa: E402
from ludwig.api import LudwigModel  # noqa: E402


def read_split(path: str) -> pd.DataFrame:
    """A JSONL file as a DataFrame with the JSON types kept as they are.

    `pd.read_json` would infer dtypes and parse date-like columns; a label such as "007"
    must stay the string mmkeras sees, and null must stay a missing value for Ludwig's
    missing-value strategies.
    """
    with open(path, encoding="utf-8") as f:
        return pd.DataFrame.from_records([json.loads(line) for line in f if line.strip()])


def feature_predictions(feature: dict, predictions: pd.DataFrame, metadata: dict) -> dict:
    """One output feature's test predictions in the form ludwig_peer.py scores."""
    name = feature["name"]
    if feature["type"] == "category":
        # Probabilities are in the order of Ludwig's vocabulary (most frequent label first);
        # the peer maps them onto mmkeras's (sorted) label order.
        return {"vocabulary": list(metadata[name]["idx2str"]),
                "probabilities": [list(map(float, p)) for p in predictions[f"{name}_probabilities"]]}
    if feature["type"] == "set":
        # Ludwig's postprocessing keeps only the probabilities above its threshold, without
        # saying whose they are: the predicted sets are what it exposes.
        return {"predicted": [list(p) for p in predictions[f"{name}_predictions"]]}
    return {"predictions": predictions[f"{name}_predictions"].astype(float).tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="Ludwig config (YAML)")
    for split in ("train", "validation", "test"):
        parser.add_argument(f"--{split}", required=True, help=f"{split} split (JSONL)")
    parser.add_argument("--output", required=True, help="Ludwig's results folder")
    parser.add_argument("--predictions", required=True, help="JSON file to write the test predictions to")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with open(args.config, encoding="utf-8") as f:
        config = yaml.safe_load(f)
    imported = time.monotonic()
    model = LudwigModel(config, logging_level=logging.INFO)
    # The test split is not handed to train(): Ludwig would evaluate it after every epoch
    # (time charged to the peer that mmkeras does not spend) and build its vocabularies
    # over it too. Early stopping and the kept weights follow the validation split.
    train_stats, _, output_dir = model.train(
        training_set=read_split(args.train), validation_set=read_split(args.validation),
        output_directory=args.output, random_seed=args.seed)
    trained = time.monotonic()
    test = read_split(args.test)
    predictions, _ = model.predict(test, output_directory=output_dir)
    predicted = time.monotonic()
    if len(predictions) != len(test):
        raise SystemExit(f"Ludwig returned {len(predictions)} predictions for {len(test)} test rows")

    trainer = model.config_obj.trainer
    result = {
        "outputs": {feature["name"]: feature_predictions(feature, predictions, model.training_set_metadata)
                    for feature in config["output_features"]},
        "info": {
            "ludwig": ludwig.__version__,
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            # Ludwig's "auto" batch size is tuned by throughput on this machine, so it is recorded.
            "batch_size": trainer.batch_size,
            "eval_batch_size": trainer.eval_batch_size,
            "epochs_run": len(train_stats.validation["combined"]["loss"]),
            "results_dir": output_dir,
            # Where the wall time goes: loading torch and Ludwig, train() (Ludwig's preprocessing
            # included), predicting the test split.
            "seconds": {"import": round(imported - STARTED, 1), "train": round(trained - imported, 1),
                        "predict": round(predicted - trained, 1)},
        },
    }
    with open(args.predictions, "w", encoding="utf-8") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
