"""User-facing errors: one line, exit code 2, no traceback unless --debug."""
import difflib


class UserError(Exception):
    """A problem the user can fix (config, data, paths). Printed as one line."""

    exit_code = 2


class ConfigError(UserError):
    """The YAML config or a command-line override is invalid."""


class DataError(UserError):
    """A manifest or a file it points to is missing, malformed or undecodable."""


class TrainingDiverged(UserError):
    """The loss became NaN or infinite: the run stops instead of finishing with NaN weights."""


def did_you_mean(word, choices):
    """Return ' (did you mean 'x'?)' for the closest choice, or ''."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def op_error_reason(error, limit=200):
    """A TensorFlow op error's message as a reason: its first line without the
    "{{function_node ...}}" prefix and the " [Op:...]" suffix, at most `limit` characters."""
    import re

    message = str(getattr(error, "message", error)).strip()
    first = message.splitlines()[0] if message else type(error).__name__
    return re.sub(r"^(\{\{.*?\}\}\s*)+|\s*\[Op:.*$", "", first)[:limit]
