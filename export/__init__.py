"""`python -m export RUN_DIR`, from the repository root: a shim for `python -m mmkeras.export`.

The export library lives in the package (`mmkeras.export`), so it installs and imports with
mmkeras; this folder is not installed (a top-level package named `export` would claim a
generic name in site-packages).
"""
