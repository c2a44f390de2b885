"""Atomic file writes: a crash never leaves a half-written artifact in a run directory."""
import contextlib
import json
import os
import shutil


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary sibling path; on success move it over `path` in one rename.

    Works for files and directories (e.g. a SavedModel). The temporary keeps every
    suffix of the name, because writers pick their format by it (tf_keras: `.keras`,
    `.weights.h5`; matplotlib: `.png`): best.weights.h5 → best.tmp-<pid>.weights.h5.
    """
    folder, name = os.path.split(path)
    stem, dot, suffixes = name.partition(".")
    tmp = os.path.join(folder, f"{stem}.tmp-{os.getpid()}{dot}{suffixes}")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    try:
        yield tmp
        if os.path.isdir(path) and os.path.isdir(tmp):
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        elif os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_text(path, text):
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)


def atomic_write_json(path, obj):
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)
