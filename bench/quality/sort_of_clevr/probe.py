"""A fast probe of how soon a fusion leaves sort_of_clevr's plateau: scene-batched training.

A full `bench/quality.py` run of this set takes 25–55 minutes on the 2-core CPU, most of it
the image encoder run once per *question*. This probe runs mmkeras's own encoders and
fusion layer (`cnn`, `text_cnn`, `FusionLayer` by name) but batches by scene: each step takes
`--scenes` pictures through the image encoder once and asks all ten of each scene's
questions, so an epoch costs about a tenth of the image work. It is a diagnostic, not the
product's training: plain Adam, no label smoothing, auxiliary heads or weight decay, and
batches of one scene's questions, so its numbers compare readouts with each other, not
with the README's full runs. Validation figures move with the BatchNorm statistics of
8-scene batches; the training loss is the steadier signal.

Command (from the repository root, after build.py)::

    .venv/bin/python bench/quality/sort_of_clevr/probe.py --fusion film --set readout=attention --epochs 8

Prints, each epoch: seconds, mean training loss, validation accuracy overall and per question
type, and how much of the question embedding's variance (what FiLM is conditioned on) the
colour the question names explains, against its type. `--text words` replaces the question
encoder by the paper's question vector (a multi-hot of its words, nothing learned), to tell a
slow question encoder from a slow image side.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import types
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

if __package__ in (None, ""):  # run as a script: make `bench.quality` and `mmkeras` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from bench.quality import common  # noqa: E402
from bench.quality.sort_of_clevr.build import COLOURS, NON_RELATIONAL, RELATIONAL  # noqa: E402

QUESTION_TOKENS = 16


def load(root: Path, split: str, words: dict | None = None, answers: dict | None = None):
    """(images [S, 75, 75, 3] in [0, 1], per question: scene index, token ids, answer index, qtype, colour named)."""
    records = [json.loads(line) for line in (root / f"{split}.jsonl").read_text().splitlines()]
    scenes = sorted({r["scene"] for r in records})
    index = {s: i for i, s in enumerate(scenes)}
    paths = {r["scene"]: r["image"] for r in records}
    images = np.stack([np.asarray(Image.open(root / paths[s]).convert("RGB"), "float32") / 255 for s in scenes])
    split_words = [r["question"].rstrip("?").split() for r in records]
    words = words or {w: i + 1 for i, w in enumerate(sorted({w for ws in split_words for w in ws}))}
    if answers is None:  # every split's: a small set's validation may hold an answer training lacks
        answers = sorted({json.loads(line)["answer"] for name in ("train", "val", "test")
                          for line in (root / f"{name}.jsonl").read_text().splitlines()})
        answers = {a: i for i, a in enumerate(answers)}
    tokens = np.zeros((len(records), QUESTION_TOKENS), "int32")
    for i, ws in enumerate(split_words):
        ids = [words[w] for w in ws][:QUESTION_TOKENS]
        tokens[i, :len(ids)] = ids
    return (images, np.array([index[r["scene"]] for r in records]), tokens,
            np.array([answers[r["answer"]] for r in records]), np.array([r["qtype"] for r in records]),
            np.array([next(w for w in ws if w in COLOURS) for ws in split_words]), words, answers)


def explained(values, labels):
    """Share of the variance of `values` [N, d] that the means per label explain (between-group / total)."""
    centred = values - values.mean(0)
    between = sum((labels == g).sum() * np.square(centred[labels == g].mean(0)).sum() for g in np.unique(labels))
    return between / np.square(centred).sum()


def build(fusion_type: str, settings: dict, vocab: int, classes: int, text: str = "text_cnn"):
    """(image model, question model, fusion + answer model) from mmkeras's registries."""
    from mmkeras.encoders import ENCODER_PARAMS, ENCODERS
    from mmkeras.encoders.cnn import CnnParams
    from mmkeras.fusion import FUSION_PARAMS, FUSIONS
    from mmkeras.layers.tokens import AllTokens
    from mmkeras.lazy import keras

    image = keras.Input((75, 75, 3))
    encoded = ENCODERS.get("cnn")(image, None, "image", CnnParams())
    image_model = keras.Model(image, [encoded.embedding, encoded.tokens])
    question = keras.Input((QUESTION_TOKENS,), dtype="int32")
    if text == "words":  # the paper's question vector: which words it holds (multi-hot), nothing learned
        multi_hot = keras.layers.CategoryEncoding(vocab, output_mode="multi_hot")(question)
        tokens = keras.layers.Embedding(vocab, 64)(question)
        question_model = keras.Model(question, [multi_hot, tokens, keras.layers.Lambda(lambda q: q > 0)(question)])
    else:
        words = ENCODERS.get(text)(question, types.SimpleNamespace(vocab_size=vocab), "question", ENCODER_PARAMS.get(text)())
        question_model = keras.Model(question, [words.embedding, words.tokens, words.mask])

    params = FUSION_PARAMS.get(fusion_type)(type=fusion_type, **settings).params
    inputs = [keras.Input(t.shape[1:]) for t in (*image_model.outputs, *question_model.outputs[:2])]
    word_mask = keras.Input((QUESTION_TOKENS,))
    presence = keras.Input((2,))
    fusion = FUSIONS.get(fusion_type)(grids=[encoded.grid, None], **params)
    fused = fusion({"embeddings": [inputs[0], inputs[2]], "tokens": [inputs[1], inputs[3]],
                    "masks": [AllTokens()(inputs[1]), word_mask]}, presence)
    answer_model = keras.Model([*inputs, word_mask, presence], keras.layers.Dense(classes)(fused))
    return image_model, question_model, answer_model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fusion", default="film")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a fusion setting")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--scenes", type=int, default=8, help="scenes per step (×10 questions)")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--text", default="text_cnn", help="the question's encoder, or `words`: a multi-hot vector of its words")
    parser.add_argument("--data", type=Path, default=common.set_dir("sort_of_clevr"))
    args = parser.parse_args(argv)

    import tensorflow as tf
    from mmkeras.lazy import keras

    tf.keras.utils.set_random_seed(args.seed)
    settings = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}
    timg, tscene, tq, ta, _, _, words, answers = load(args.data, "train")
    vimg, vscene, vq, va, vtype, vcolour, _, _ = load(args.data, "val", words, answers)
    image_model, question_model, answer_model = build(args.fusion, settings, len(words) + 1, len(answers), args.text)
    optimizer = keras.optimizers.Adam(args.learning_rate)
    models = (image_model, question_model, answer_model)

    def forward(images, scene, q, training):
        embedding, cells = image_model(images, training=training)
        q_embedding, q_tokens, q_mask = question_model(q, training=training)
        presence = tf.ones_like(q_embedding[:, :2])
        return answer_model([tf.gather(embedding, scene), tf.gather(cells, scene), q_embedding, q_tokens,
                             tf.cast(q_mask, "float32"), presence], training=training)

    @tf.function
    def step(images, scene, q, a):
        with tf.GradientTape() as tape:
            logits = forward(images, scene, q, True)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(a, logits, from_logits=True))
        variables = [v for m in models for v in m.trainable_variables]
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    @tf.function
    def predict(images, scene, q):
        return tf.argmax(forward(images, scene, q, False), -1)

    by_scene = [np.flatnonzero(tscene == s) for s in range(len(timg))]
    rng = np.random.default_rng(args.seed)
    print(f"{args.fusion} {settings}: {len(ta)} training questions, {len(timg)} scenes, {args.scenes} scenes a step")
    for epoch in range(1, args.epochs + 1):
        start, losses = time.time(), []
        order = rng.permutation(len(timg))
        for i in range(0, len(order), args.scenes):
            scenes = np.sort(order[i:i + args.scenes])
            rows = np.concatenate([by_scene[s] for s in scenes])
            local = np.searchsorted(scenes, tscene[rows])  # each question's picture in this step's batch
            losses.append(float(step(timg[scenes], local, tq[rows], ta[rows])))
        correct = np.zeros(len(va), bool)
        for i in range(0, len(vimg), 50):
            rows = np.flatnonzero((vscene >= i) & (vscene < i + 50))
            correct[rows] = predict(vimg[i:i + 50], vscene[rows] - i, vq[rows]).numpy() == va[rows]
        per_type = " ".join(f"{t} {correct[vtype == t].mean():.2f}" for t in (*NON_RELATIONAL, *RELATIONAL))
        # How much of the question's embedding (what FiLM is conditioned on) tells the colours apart:
        # a stuck full run's had 0.10 of its variance from the colour named, a good one's 0.31.
        condition = question_model(vq, training=False)[0].numpy()
        print(f"epoch {epoch}: {time.time() - start:.0f} s, loss {np.mean(losses):.3f}, "
              f"validation {correct.mean():.3f} ({per_type}); question embedding's variance from the colour "
              f"{explained(condition, vcolour):.2f}, from the type {explained(condition, vtype):.2f}", flush=True)


if __name__ == "__main__":
    main()
