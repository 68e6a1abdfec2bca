"""What every config section shares: the error a bad config raises, strict validation, a number
read from text, setting a dotted key, and pydantic's errors said in plain words."""
from __future__ import annotations

import difflib
import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from tuneoff.identity import current_key, current_layout
from tuneoff.yamlfile import shown


class ConfigError(ValueError):
    """A config that cannot be used; the message names the key and what to do."""


# a number as text: YAML 1.1 (PyYAML) reads '1e-4' as a string
FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def as_number(value: Any) -> Any:
    """`value`, or the float it spells when it is text such as '1e-4'."""
    return float(value) if isinstance(value, str) and FLOAT.match(value) else value


def as_list(v) -> list:
    """A list field's value as a list (`shots: 8` is `[8]`)."""
    return v if isinstance(v, list) else [v]


class Strict(BaseModel):
    """Unknown keys are errors; so are inf/nan for a number and a boolean for a non-boolean key
    (`shots=true` would otherwise become 1)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, v: Any, info: ValidationInfo) -> Any:
        if cls.model_fields[info.field_name].annotation is not bool:
            if any(isinstance(x, bool) for x in as_list(v)):
                raise ValueError(f"got {json.dumps(v)}: a boolean where a value of another type is expected "
                                 f"(true/false are not numbers)")
        return v


def with_current_keys(data: dict) -> dict:
    """`identity.current_layout`, with a key given under both names as a config error."""
    try:
        return current_layout(data)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def set_key(data: dict, path: list[str], value: Any, what: str = "") -> None:
    """Set `data[path[0]][path[1]]... = value` in place, creating sections; `what` names the
    setting in errors (e.g. "override 'train.lr=1'"). A key's old name sets it under its current one."""
    path = current_key(".".join(path)).split(".")
    node = data
    for p in path[:-1]:
        nxt = node.get(p)
        if isinstance(nxt, str) and p == "method":
            nxt = {"name": nxt}
        if nxt is None:
            nxt = {}
        if isinstance(nxt, list) and p == "method":
            raise ConfigError(f"{what or '.'.join(path)}: method lists several methods; give a method's options "
                              "beside its name in the list, e.g. method=[finetune, {name: lora, r: 8}]")
        if not isinstance(nxt, dict):
            raise ConfigError(f"{what or '.'.join(path)}: {p!r} is not a section")
        node[p] = nxt
        node = nxt
    if path == ["method"] and isinstance(node.get("method"), dict) and isinstance(value, str):
        value = {"name": value}  # switching method drops the old method's options
    node[path[-1]] = value


def _allowed(model: type[BaseModel], loc: tuple) -> list[str]:
    node: Any = model
    for part in loc[:-1]:
        field = getattr(node, "model_fields", {}).get(part)
        if field is None:
            return []
        node = field.annotation
    return sorted(getattr(node, "model_fields", {}).keys())


def did_you_mean(key: str, allowed: list[str], prefix: str = "") -> str:
    """" (did you mean 'train.lr'?)" for the allowed key closest to `key`, or ""."""
    close = difflib.get_close_matches(key, allowed, 1)
    return f" (did you mean {prefix + close[0]!r}?)" if close else ""


def _union_branch(part: str) -> bool:
    """A loc element that names a branch of a union type (pydantic: 'int', 'list[int]', ...)."""
    return part.startswith(("int", "list[", "float", "str", "function-"))


def format_errors(e: ValidationError, prefix: str = "", model: type[BaseModel] | None = None) -> str:
    """Pydantic's errors as one line each, naming the config key and what is allowed."""
    lines = []
    for err in e.errors():
        raw = [str(x) for x in err["loc"]]
        if any(_union_branch(x) for x in raw) and err["type"] in ("int_parsing", "int_type", "list_type",
                                                                  "int_from_float"):
            # `shots=abc` fails both branches of `int | list[int]`: say it once, in plain words
            key = prefix + ".".join(raw[:next(i for i, x in enumerate(raw) if _union_branch(x))])
            lines.append(f"config key {key!r}: expected an integer or a list of integers")
            continue
        loc = tuple(x for x in raw if not _union_branch(x))
        if err["type"] == "extra_forbidden":
            lines.append(_unknown(loc, prefix, model))
        else:
            key = prefix + ".".join(loc)
            msg = _problem(err, key)
            lines.append(f"config key {key!r}: {msg}" if key else msg)
    return "\n".join(dict.fromkeys(lines))


def _unknown(loc: tuple, prefix: str, model: type[BaseModel] | None) -> str:
    allowed = _allowed(model, loc) if model else []
    hint = did_you_mean(loc[-1], allowed, prefix + "".join(f"{x}." for x in loc[:-1]))
    hint += f"; allowed: {', '.join(allowed)}" if allowed else ""
    if not allowed and prefix == "method." and len(loc) == 1:
        hint = "; this method takes no options (`tuneoff ls methods` lists each method's options)"
    return f"unknown config key {prefix + '.'.join(loc)!r}{hint}"


def _problem(err: dict, key: str) -> str:
    """What is wrong with a value, in words, with the value given (pydantic's message otherwise)."""
    if err["type"] == "value_error":  # a validator's own message: it names the value
        return err["msg"].removeprefix("Value error, ")
    value = err.get("input")
    if err["type"] == "missing":
        return f"is required and missing, in {shown(value)}"
    if value is None:
        return "has no value (an empty `key=` or `key:`); give one, or leave the key out for its default"
    if err["type"] in ("model_type", "model_attributes_type", "dict_type"):
        return f"is a section: give its keys ({key}.KEY=VALUE, or `{key}:` with keys under it), got {shown(value)}"
    msg = err["msg"] + (" (e.g. [a, b])" if err["type"] == "list_type" else "")
    return f"{msg}, got {shown(value)}"
