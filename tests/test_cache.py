"""`data.cache: disk`: decoded samples written in the first pass, read back after it, never stale."""
import glob
import os

import numpy as np
import pytest
import tensorflow as tf

from conftest import make_dataset_dir, tiny_config_dict
from mmkeras.config import config_from_dict
from mmkeras.data.pipeline import fingerprint, make_dataset
from mmkeras.data.preprocessing import Preprocessing, load_splits
from mmkeras.data.records import BadRecordLog
from mmkeras.heads import head_targets
from mmkeras.training.inputs import fit_inputs, remove_disk_caches
from mmkeras.training.strategy import Worker


@pytest.fixture
def data(tmp_path):
    """A small data set of its own (tests delete and touch its files), its config, splits and state."""
    folder = make_dataset_dir(str(tmp_path / "data"), n_train=12, n_eval=6)
    raw = tiny_config_dict(folder)
    raw["data"]["cache"] = "disk"
    cfg = config_from_dict(raw)
    splits = load_splits(cfg, BadRecordLog("error"))
    return cfg, splits, Preprocessing.fit(cfg, splits["train"]), folder


def dataset(data, cache_path, split="validation"):
    cfg, splits, prep, _ = data
    targets = head_targets(splits[split], cfg, prep.labels)
    return make_dataset(splits[split], prep.handlers, cfg.data, 4, training=False, targets=targets,
                        cache_path=cache_path)


def as_arrays(ds):
    """Every batch of a finite (inputs, targets) dataset, as one flat list of numpy arrays."""
    return [v for x, y in ds.as_numpy_iterator() for d in (x, y) for _, v in sorted(d.items())]


def cache_files(tmp_path):
    return sorted(os.path.basename(p) for p in glob.glob(str(tmp_path / "cache" / "*")))


def test_first_pass_writes_the_cache_and_later_passes_read_it_without_the_files(data, tmp_path):
    ds = dataset(data, str(tmp_path / "cache" / "validation"))
    first = as_arrays(ds)
    files = cache_files(tmp_path)
    assert len(files) == 2 and files[0].startswith("validation-") and files[0].endswith(".data-00000-of-00001")
    assert files[1].endswith(".index")
    for path in glob.glob(os.path.join(data[3], "*", "*")):  # every image and audio file
        os.remove(path)
    again = as_arrays(ds)  # would fail if anything were decoded again
    assert len(again) == len(first) and all(np.array_equal(a, b) for a, b in zip(first, again))


def test_disk_cache_equals_decoding(data, tmp_path):
    cfg, splits, prep, _ = data
    cached = as_arrays(dataset(data, str(tmp_path / "cache" / "validation")))
    assert all(np.array_equal(a, b) for a, b in zip(cached, as_arrays(dataset(data, None))))


def test_leftovers_of_a_killed_first_pass_are_cleared(data, tmp_path):
    cfg, splits, prep, _ = data
    prefix = str(tmp_path / "cache" / "validation")
    digest = fingerprint(splits["validation"], prep.handlers, head_targets(splits["validation"], cfg, prep.labels))
    # What a process killed during its first epoch leaves (measured on TF 2.21); tf.data refuses to
    # write the cache again while the lock file exists ("concurrent caching iterator running").
    os.makedirs(tmp_path / "cache")
    for leftover in ("_0.lockfile", "_0.data-00000-of-00001.tempstate1234"):
        (tmp_path / "cache" / f"validation-{digest}{leftover}").write_text("partial")
    complete = as_arrays(dataset(data, prefix))
    assert all(np.array_equal(a, b) for a, b in zip(complete, as_arrays(dataset(data, None))))
    assert cache_files(tmp_path) == [f"validation-{digest}.data-00000-of-00001", f"validation-{digest}.index"]


def test_changed_file_gets_a_new_cache_and_the_old_one_goes(data, tmp_path):
    prefix = str(tmp_path / "cache" / "validation")
    as_arrays(dataset(data, prefix))
    before = cache_files(tmp_path)
    image = data[1]["validation"].values["image"][0]
    os.utime(image, ns=(0, 0))  # same path, different file: the decoded pixels could differ
    as_arrays(dataset(data, prefix))
    after = cache_files(tmp_path)
    assert len(after) == 2 and not set(before) & set(after)


def test_without_a_cache_path_disk_mode_streams(data, tmp_path):
    as_arrays(dataset(data, None))
    assert not os.path.exists(tmp_path / "cache")


def test_fit_inputs_cache_train_and_validation_and_remove_them(data, tmp_path):
    cfg, splits, prep, _ = data
    cache_dir = str(tmp_path / "cache")
    worker = Worker(name="", workers=1, replicas=1, is_chief=True)
    inputs = fit_inputs(tf.distribute.get_strategy(), worker, splits, cfg, prep, cache_dir)
    for ds in (inputs["x"], inputs["validation_data"]):
        for _ in ds:
            pass
    assert [f.split("-")[0] for f in cache_files(tmp_path)] == ["train", "train", "validation", "validation"]
    (tmp_path / "cache" / "notes.txt").write_text("not ours")
    remove_disk_caches(cache_dir)
    assert cache_files(tmp_path) == ["notes.txt"]  # a user's own file in data.cache_dir stays


def test_each_run_caches_in_its_own_folder_under_a_shared_cache_dir(tmp_path):
    from mmkeras.run_dir import RunDir

    shared = str(tmp_path / "fast_disk")
    first, other = RunDir(str(tmp_path / "a" / "run")), RunDir(str(tmp_path / "b" / "run"))
    assert first.cache_dir() == str(tmp_path / "a" / "run" / "cache")
    assert os.path.dirname(first.cache_dir(shared)) == shared
    assert os.path.basename(first.cache_dir(shared)).startswith("run-")
    assert first.cache_dir(shared) != other.cache_dir(shared)  # same run name, different runs
    assert RunDir(str(tmp_path / "a" / "run")).cache_dir(shared) == first.cache_dir(shared)  # a resume finds it


@pytest.mark.parametrize("cache", ["memory", "disk"])
def test_a_cache_holds_records_in_random_order_not_the_manifests(data, tmp_path, cache):
    """A manifest sorted by label must not become label-sorted batches once cached."""
    import dataclasses

    cfg, splits, prep, _ = data
    data_cfg = dataclasses.replace(cfg.data, cache=cache, shuffle_buffer=1)  # no mixing after the cache
    split = splits["train"]
    ds = make_dataset(split, prep.handlers, data_cfg, 4, training=True, cache_path=str(tmp_path / "c" / "train"))
    manifest = [float(np.float32(v[0])) for v in split.values["stats"]]
    for _ in range(2):
        order = [float(v) for (x,) in ds.as_numpy_iterator() for v in x["stats"][:, 0]]
        assert sorted(order) == sorted(manifest)
        assert abs(np.corrcoef(np.argsort(order), np.argsort(manifest))[0, 1]) < 0.6


def test_disk_cache_shuffle_buffer_stays_within_the_memory_budget(data):
    import dataclasses

    from mmkeras.data.pipeline import shuffle_buffer

    cfg, _, _, _ = data
    per_sample = 4 * (16 * 16 * 3 + 6 + 4000 + 2)
    small = dataclasses.replace(cfg.data, cache_limit_mb=1, shuffle_buffer=10000)
    def size(n):
        return lambda: n * per_sample  # a split of n samples' decoded bytes

    assert shuffle_buffer(small, 100000, "disk", size(100000)) == 2**20 // per_sample
    assert shuffle_buffer(small, 100000, "memory", size(100000)) == 10000
    assert shuffle_buffer(small, 30, "disk", size(30)) == 30


def test_memory_cache_is_sized_from_whole_waveforms_not_the_crop(data, tmp_path):
    """Audio is cached before the per-epoch crop: a split of 50 s clips for a 0.5 s input holds
    100× what the crop length says, and `auto` must see that."""
    import dataclasses

    import soundfile

    from mmkeras.data.pipeline import cache_mode, decoded_bytes
    from mmkeras.data.records import Split

    cfg, _, prep, _ = data
    speech = next(h for h in prep.handlers if h.name == "speech")  # 0.5 s at 8 kHz
    paths = []
    for i in range(3):
        paths.append(str(tmp_path / f"{i}.wav"))
        soundfile.write(paths[-1], np.zeros(50 * 8000, np.float32), 8000)
    split = Split("m", {"speech": paths + [""]}, {"speech": np.array([1, 1, 1, 0], np.float32)}, {}, [1, 2, 3, 4])
    assert decoded_bytes([speech], split) == 3 * 50 * 8000 * 4  # the absent record decodes to no samples
    assert 4 * speech.cfg.num_samples * 4 < 2**20 < 3 * 50 * 8000 * 4  # 1 MB: the crops fit, the clips do not
    auto = dataclasses.replace(cfg.data, cache="auto", cache_limit_mb=1)
    assert cache_mode(auto, lambda: decoded_bytes([speech], split)) == "none"
