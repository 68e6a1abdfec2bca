"""Reading YAML (a run or sweep config, a task file, a command-line value): safe YAML only, and one
wording for what can be wrong with it, naming the file and what kind it is. A key given twice in a
mapping is an error, and so is a document whose aliases (`*name` of an anchor `&name`) expand to
more values than any config holds (the "billion laughs": a few lines that fill the memory)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

# libyaml's safe loader where PyYAML was built with it (several times faster), else the Python one
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_VALUES = 100_000  # values of a document with every alias expanded: far above any real config
YAMLError = yaml.YAMLError
_MERGE = "tag:yaml.org,2002:merge"


class DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, line: int, first: int):
        super().__init__(f"the key {key!r} is given twice (first on line {first}, again on line {line}): give "
                         "each key once (YAML would keep only the last value)")


class _Loader(LOADER):
    """The safe loader, refusing a key given twice in one mapping (a `<<` merge may still be overridden)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            lines: dict = {}
            for key_node, _ in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != _MERGE:
                    key = self.construct_object(key_node)
                    if key in lines:
                        raise DuplicateKey(key, key_node.start_mark.line + 1, lines[key])
                    lines[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def read_text(path: Path, what: str, error: type[Exception], missing: str = "") -> str:
    """The file's text; `error` naming the file if it is missing (with the hint `missing`), a folder,
    unreadable or not UTF-8."""
    name = f"{what} {str(path)!r}"
    try:
        if path.is_dir():
            raise error(f"{name} is a folder, not a file: give the path of a YAML file")
        if not path.is_file():
            raise error(f"{name} does not exist{missing}")
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{name} is not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start}): "
                    "save it as UTF-8") from None
    except OSError as e:
        raise error(f"{name} cannot be read: {e.strerror or e}") from None


def parse(text: str) -> Any:
    """The value the YAML `text` holds (safe YAML; a key given twice is a `DuplicateKey`)."""
    return yaml.load(text, Loader=_Loader)


def bounded(data: Any, name: str, error: type[Exception]) -> Any:
    """`data`, or `error` naming `name` when it holds more than MAX_VALUES values with every alias
    expanded: counted once per reference, so a shared list counts as often as it is used (as a JSON
    copy or a validation would), stopping as soon as the count is past the limit."""
    count, stack, seen, shared = 0, [data], set(), False
    while stack:
        node = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise error(_too_many(name, shared))
        if isinstance(node, (dict, list)):
            shared = shared or id(node) in seen
            seen.add(id(node))
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return data


def _too_many(name: str, aliases: bool) -> str:
    if aliases:
        return (f"{name} uses YAML aliases (*name of an anchor &name) that expand to more than {MAX_VALUES:,} "
                "values: write the values out, or use fewer aliases")
    return f"{name} holds more than {MAX_VALUES:,} values: settings belong here, data in a JSONL or CSV file"


def shown(data: Any, width: int = 60) -> str:
    """A value as YAML or JSON would spell it (`false`, `[]`, `"text"`), cut to `width` characters."""
    text = json.dumps(data, default=str)
    return text if len(text) <= width else text[:width - 3] + "..."


def mapping(text: str, path: Path, what: str, error: type[Exception], holds: str) -> dict:
    """The mapping the YAML `text` of `path` holds; `error` naming the file and what it must hold
    (`holds`, e.g. "the run's settings such as task:, model:") otherwise, an empty file included."""
    name = f"{what} {str(path)!r}"
    try:
        data = bounded(parse(text), name, error)
    except DuplicateKey as e:
        raise error(f"{name}: {e}") from None
    except yaml.YAMLError as e:  # its marks name the text, not the file: the message names the file
        where = str(e).replace('in "<unicode string>", line', "at line")
        raise error(f"{name} is not valid YAML: {where}") from None
    if data is None or data == {}:
        empty = "is empty" if data is None else "holds an empty mapping"
        raise error(f"{name} {empty}: it must hold a mapping of keys ({holds})")
    if not isinstance(data, dict):
        raise error(f"{name} must hold a mapping of keys ({holds}), got {shown(data)}")
    return data
