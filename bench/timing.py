"""Repeat-and-median timing: every figure is a ratio of two medians taken in the same run.

Tasks are interleaved (A, B, A, B, ...) rather than run in blocks (A, A, ..., B, B, ...),
so a change in machine load during the run shifts both sides of a ratio alike. A
task runs one repeat and returns its own `Sample`: some time a whole call, others
(a Keras epoch) only the part between callbacks.

Example:
    timings = interleave({"tfdata": timed(epoch_a), "python": timed(epoch_b)}, repeats=5)
    speedup = ratio(rate(n, timings["tfdata"].median), rate(n, timings["python"].median))
"""
import dataclasses
import os
import statistics
import time

MIN_REPEATS = 5  # the harness's contract: no figure rests on fewer timed repeats


@dataclasses.dataclass
class Sample:
    """One timed repeat: wall-clock seconds and process CPU seconds (all threads)."""

    wall: float
    cpu: float


class Stopwatch:
    """Wall and process CPU time between `start()` and `stop()` (CPU / wall = cores kept busy)."""

    def start(self):
        self._wall, self._cpu = time.perf_counter(), _cpu_seconds()

    def stop(self):
        return Sample(time.perf_counter() - self._wall, _cpu_seconds() - self._cpu)


def _cpu_seconds():
    t = os.times()
    return t.user + t.system


def timed(fn):
    """A task that times a whole call of `fn()`."""
    def task():
        watch = Stopwatch()
        watch.start()
        fn()
        return watch.stop()

    return task


def cycling(fn, inputs):
    """A task that times one call of `fn` on the next of `inputs` (round robin): a latency repeat."""
    state = {"next": 0}

    def call():
        fn(inputs[state["next"] % len(inputs)])
        state["next"] += 1

    return timed(call)


@dataclasses.dataclass
class Timing:
    """The repeats of one task: warm-up samples (excluded) and timed samples."""

    warmup: list = dataclasses.field(default_factory=list)
    samples: list = dataclasses.field(default_factory=list)

    @property
    def median(self):
        return median([s.wall for s in self.samples])

    @property
    def cpu_median(self):
        """Median process CPU seconds of one repeat (all threads)."""
        return median([s.cpu for s in self.samples])

    @property
    def cpu_utilisation(self):
        """Process CPU seconds per wall second over the timed repeats (2.0 = both of 2 cores busy)."""
        wall = sum(s.wall for s in self.samples)
        return sum(s.cpu for s in self.samples) / wall if wall else None

    def to_json(self):
        return {"median_s": self.median, "wall_s": [s.wall for s in self.samples],
                "cpu_s": [s.cpu for s in self.samples], "warmup_wall_s": [s.wall for s in self.warmup],
                "cpu_utilisation": self.cpu_utilisation}


def interleave(tasks, repeats, warmup=1):
    """Run every task `warmup` times untimed, then `repeats` rounds of one repeat each.

    Args:
        tasks: name → callable returning a `Sample` (see `timed`).
        repeats: timed repeats per task, at least MIN_REPEATS.
        warmup: repeats per task whose time is kept apart (tracing, cache fill, first allocation).

    Returns:
        name → Timing.
    """
    if repeats < MIN_REPEATS:
        raise ValueError(f"Received repeats={repeats}; every figure needs at least {MIN_REPEATS}")
    timings = {name: Timing() for name in tasks}
    for name, task in tasks.items():
        timings[name].warmup.extend(task() for _ in range(warmup))
    for _ in range(repeats):
        for name, task in tasks.items():
            timings[name].samples.append(task())
    return timings


def median(values):
    if not values:
        raise ValueError("median of no values")
    return statistics.median(values)


def rate(count, seconds):
    """Items per second."""
    return count / seconds


def ratio(numerator, denominator):
    """numerator / denominator, or None when either is missing or the denominator is 0."""
    if numerator is None or not denominator:
        return None
    return numerator / denominator
