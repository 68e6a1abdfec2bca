"""Reading a YAML file that must hold a mapping (a run or sweep config, a task file): safe YAML
only, and one wording for what can be wrong with it, naming the file and what kind it is."""
from __future__ import annotations

from pathlib import Path

import yaml

# libyaml's safe loader where PyYAML was built with it (several times faster), else the Python one
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_text(path: Path, what: str, error: type[Exception]) -> str:
    """The file's text; `error` ("<what> 'path' does not exist") if it is not a file."""
    if not path.is_file():
        raise error(f"{what} {str(path)!r} does not exist")
    return path.read_text()


def mapping(text: str, path: Path, what: str, error: type[Exception]) -> dict:
    """The mapping the YAML `text` of `path` holds (empty text: {}); `error` naming the file otherwise."""
    try:
        data = yaml.load(text, Loader=LOADER) or {}
    except yaml.YAMLError as e:
        raise error(f"{what} {str(path)!r} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise error(f"{what} {str(path)!r} must hold a mapping of keys, got {type(data).__name__}")
    return data
