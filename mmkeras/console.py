"""Progress bars for the long steps (validating records, evaluating ablations, verifying exports).

A bar draws only on a terminal (tqdm's `disable=None`): logs, CI and redirected output stay
free of carriage-return redraws. It goes to stderr and is cleared when its step ends, so
stdout keeps only the summary lines a script may parse.
"""
from tqdm import tqdm


def progress(iterable, desc, total=None, unit="record"):
    return tqdm(iterable, desc=desc, total=total, unit=unit, disable=None, leave=False, dynamic_ncols=True)
