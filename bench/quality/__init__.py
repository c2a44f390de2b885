"""The quality suite: real data sets built from the package registries, trained by
mmkeras and by a peer (Ludwig) side by side. `python bench/quality.py --help`."""
