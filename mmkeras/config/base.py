"""The pieces every config section is made of: sections, field types, and errors as one line.

A section is a pydantic dataclass that rejects unknown keys. A plugin's parameters (an
encoder's, a fusion's) are a section with a `type: Literal[...]` field, registered under
that name; a field that takes one of several plugins is a union discriminated by `type`
(`one_of`). `validate` checks a plain dict against any of these and turns pydantic's
ValidationError into a one-line ConfigError: the key path, the value received and, for an
unknown key or type name, a did-you-mean.

Example:
    @registered(ENCODER_PARAMS)
    class BowParams(EncoderParams):
        type: Literal["bow"] = "bow"
        dim: PositiveInt = 64

    validate(BowParams, {"type": "bow", "dimm": 8}, "inputs.text.encoder")
    # ConfigError: inputs.text.encoder.dimm: unknown key (did you mean 'dim'?)
"""
import dataclasses
import functools
import typing
from typing import Annotated, Literal, Union

import pydantic
from annotated_types import Ge, Gt, Le, Lt, MinLen
from pydantic.dataclasses import dataclass

from mmkeras.errors import ConfigError, did_you_mean
from mmkeras.registry import Registry

# YAML gives `name: 2024` or a column called `1` as numbers: they are still names.
# No setting is meaningful at infinity or NaN (`learning_rate: .inf` would train NaN weights).
_SETTINGS = pydantic.ConfigDict(extra="forbid", coerce_numbers_to_str=True, allow_inf_nan=False)


def section(cls):
    """A config section: a pydantic dataclass with keyword-only fields that rejects unknown keys."""
    return dataclass(cls, config=_SETTINGS, kw_only=True)


def tag(cls):
    """The `type` a plugin section is chosen by: the value of its `type: Literal[...]` field."""
    return typing.get_args(typing.get_type_hints(cls)["type"])[0]


def registered(registry):
    """Class decorator: make `cls` a section and register it under its `tag`."""

    def decorator(cls):
        cls = section(cls)
        registry.register(tag(cls))(cls)
        return cls

    return decorator


def one_of(members, registry=None):
    """The type of a field holding one of the sections `members`, chosen by its `type` key.

    Args:
        registry: where `members` come from, when they are some of its entries: an error can
            then tell a registered type that is not allowed here from an unknown one.
    """
    metadata = (pydantic.Field(discriminator="type"),) + ((registry,) if registry is not None else ())
    return Annotated[(Union[tuple(members)], *metadata)]


def with_default_type(data, key, name):
    """`data` (raw YAML) with `data[key]` given `type: name` when it is a mapping without one."""
    value = data.get(key) if isinstance(data, dict) else None
    if isinstance(value, dict) and "type" not in value:
        return {**data, key: {"type": name, **value}}
    return data


# === Field types ===


def _not_a_bool(value):
    # Python would read YAML's `true` as 1.0 in a number field.
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    return value


# YAML reads `true`, `1.0` and `3.0` as what they are: none of them is an integer.
Int = Annotated[int, pydantic.Strict(), Ge(-2**31), Le(2**31 - 1)]  # int32: what TensorFlow takes
PositiveInt = Annotated[Int, Gt(0)]
NonNegativeInt = Annotated[Int, Ge(0)]
# YAML 1.1 reads 1e-3 (no dot) as a string: numeric strings are numbers.
Number = Annotated[float, pydantic.BeforeValidator(_not_a_bool)]
Rate = Annotated[Number, Ge(0), Lt(1)]
Bool = Annotated[bool, pydantic.Strict()]
NonEmpty = MinLen(1)  # for lists: Annotated[list[X], NonEmpty]

def heads_divide_dim(params):
    """An "after" model validator for attention parameters: `dim` splits evenly over `heads`."""
    if params.dim % params.heads:
        raise ValueError(f"dim={params.dim} must be divisible by heads={params.heads}")
    return params


# === Errors ===


@functools.lru_cache(maxsize=None)
def _adapter(hint):
    return pydantic.TypeAdapter(hint)


def validate(hint, raw, where=""):
    """`raw` checked against `hint` (a section or field type) → the typed value, or a one-line ConfigError.

    Args:
        where: the key path of `raw` in the config, prefixed to the error's own path.
    """
    try:
        return _adapter(hint).validate_python(raw)
    except pydantic.ValidationError as err:
        raise ConfigError(_message(hint, err.errors(), where)) from None


_EXPECTED = {
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "float_parsing": "a number", "finite_number": "a finite number", "bool_type": "true or false",
    "bool_parsing": "true or false", "string_type": "a string", "list_type": "a list",
    "dict_type": "a mapping", "dataclass_type": "a mapping", "dataclass_args_type": "a mapping",
    "model_attributes_type": "a mapping",
}


def _message(root, errors, where):
    """pydantic's errors → `path: what is wrong, got value` for the first."""
    error = errors[0]
    steps = _follow(root, error["loc"])
    path = _path([where] + [piece for piece, _ in steps])
    hint, parent = steps[-1][1], steps[-2][1] if len(steps) > 1 else None
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    if _is_value_union(hint):
        return f"{path}: expected {_accepted(hint)}, got {value!r}"
    if kind in ("unexpected_keyword_argument", "extra_forbidden"):
        fields = [f.name for f in dataclasses.fields(parent)] if _is_section(parent) else []
        return f"{path}: unknown key{did_you_mean(error['loc'][-1], fields)}"
    if kind in ("missing", "missing_keyword_argument"):
        return f"{path}: missing required key"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        return _tag_message(path, hint, parent, ctx.get("tag"))
    if kind == "literal_error":
        choices = typing.get_args(_strip(hint))
        return f"{path}: expected one of {', '.join(map(str, choices))}, got {value!r}{did_you_mean(value, choices)}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return f"{path}: expected a value {_interval(hint)}, got {value!r}"
    if kind == "too_short":
        return f"{path}: must be a non-empty list"
    if kind in ("value_error", "assertion_error"):
        return f"{path}: {ctx['error']}" if path else str(ctx["error"])
    if kind in _EXPECTED:
        return f"{path}: expected {_EXPECTED[kind]}, got {value!r}"
    return f"{path}: {error['msg']}, got {value!r}"


def _tag_message(path, union, parent, name):
    members = typing.get_args(_strip(union))
    tags = [tag(m) for m in members]
    where = f"{path}.type" if path else "type"
    if name is None:
        return f"{where}: missing required key (one of {', '.join(tags)})"
    registry = next((m for m in typing.get_args(union)[1:] if isinstance(m, Registry)), None)
    if registry is not None and name in registry and _is_section(parent):
        return (f"{where}: {registry.kind} '{name}' does not take {tag(parent)} inputs; "
                f"choose one of {', '.join(tags)}")
    return f"{where}: expected one of {', '.join(tags)}, got {name!r}{did_you_mean(name, tags)}"


def _is_value_union(hint):
    """Whether `hint` is a value of several forms (`number | Literal["auto"]`), not a choice of sections."""
    hint = _strip(hint)
    return typing.get_origin(hint) is Union and not any(_is_section(m) for m in typing.get_args(hint))


def _accepted(hint):
    """'auto or a number >= 0': every form a value union takes, for its error message."""
    forms = []
    for member in typing.get_args(_strip(hint)):
        if typing.get_origin(member) is Literal:
            forms += map(str, typing.get_args(member))
        else:
            forms.append(f"a number {_interval(member)}".rstrip())
    return " or ".join(forms)


def _follow(root, loc):
    """A pydantic error location → [(path piece, the type there)], from the root to the error.

    Locations name the tag of each discriminated union they pass through ('inputs', 0,
    'image', 'size'); a tag picks the member and is not part of the user's key path. The
    member of a value union (`_is_value_union`) is not part of it either.
    """
    steps = [("", root)]
    for key in loc:
        hint = _strip(steps[-1][1])
        if _is_value_union(hint):
            continue
        if typing.get_origin(hint) is Union:
            member = next((m for m in typing.get_args(hint) if _is_section(m) and tag(m) == key), None)
            steps[-1] = (steps[-1][0], member)
        elif typing.get_origin(hint) is list:
            steps.append((f"[{key}]", typing.get_args(hint)[0]))
        elif _is_section(hint):
            steps.append((key, typing.get_type_hints(hint, include_extras=True).get(key)))
        else:
            steps.append((str(key), None))
    return steps


def _path(pieces):
    path = ""
    for piece in pieces:
        if piece:
            path += piece if piece.startswith("[") or not path else f".{piece}"
    return path


def _strip(hint):
    """`hint` without Annotated metadata and Optional."""
    while True:
        if typing.get_origin(hint) is Annotated:
            hint = typing.get_args(hint)[0]
        elif typing.get_origin(hint) is Union and type(None) in typing.get_args(hint):
            hint = next(a for a in typing.get_args(hint) if a is not type(None))
        else:
            return hint


def _interval(hint):
    """'in [0, 1)', '> 0', ... from the bounds annotated on `hint`; '' when it has none."""
    low = high = None
    while typing.get_origin(hint) in (Annotated, Union):
        args = typing.get_args(hint)
        if typing.get_origin(hint) is Union:  # Optional[X]
            hint = next(a for a in args if a is not type(None))
            continue
        for bound in args[1:]:
            if isinstance(bound, (Gt, Ge)):
                low = ("(", bound.gt) if isinstance(bound, Gt) else ("[", bound.ge)
            elif isinstance(bound, (Lt, Le)):
                high = (")", bound.lt) if isinstance(bound, Lt) else ("]", bound.le)
        hint = args[0]
    if low and high:
        return f"in {low[0]}{low[1]}, {high[1]}{high[0]}"
    if low:
        return f"{'>' if low[0] == '(' else '>='} {low[1]}"
    if high:
        return f"{'<' if high[0] == ')' else '<='} {high[1]}"
    return ""


def _is_section(hint):
    return isinstance(hint, type) and dataclasses.is_dataclass(hint)

