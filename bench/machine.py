"""Facts about the machine a result came from; the load average says whether it was idle."""
import datetime
import os
import platform


def cpu_model(cpuinfo_text):
    """The first `model name` of /proc/cpuinfo text ("unknown" if none)."""
    for line in cpuinfo_text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            return value.strip()
    return "unknown"


def ram_bytes(meminfo_text):
    """MemTotal of /proc/meminfo text, in bytes (0 if absent)."""
    for line in meminfo_text.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024  # the kernel reports kB
    return 0


def _read(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return ""


def load_average():
    return os.getloadavg()[0]


def usable_cores():
    """Cores this process may run on (a container or taskset may allow fewer than the machine has)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def machine_info():
    import tensorflow as tf

    return {
        "cpu_model": cpu_model(_read("/proc/cpuinfo")) if os.path.exists("/proc/cpuinfo") else platform.processor(),
        "cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "ram_gb": ram_bytes(_read("/proc/meminfo")) / 2**30,
        "tensorflow": tf.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
