"""Loading a task's splits (local JSONL/CSV or the hub) and drawing balanced few-shot sets.

An example is a plain dict: ``id`` (str, unique within its split), the task's text fields,
``label`` (int, the task's label id) and any other columns of the source (e.g. HANS ``heuristic``).
"""
from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from tuneoff.tasks import EvalSet, Source, Task


class DataError(ValueError):
    """Missing files, missing columns, unknown labels, too few examples."""


EXTENSIONS = (".jsonl", ".json", ".csv")
PARQUET_EXPORT = "refs/convert/parquet"  # the hub's Parquet export branch of a dataset


def _read_file(path: Path) -> pd.DataFrame:
    if path.stat().st_size == 0:
        raise DataError(f"{str(path)!r} is empty: it holds no rows (one example per line or row)")
    try:
        if path.suffix == ".csv":
            return pd.read_csv(path, keep_default_na=False)
        return pd.read_json(path, lines=path.suffix == ".jsonl", dtype=False)
    except ValueError as e:
        raise DataError(f"could not read {str(path)!r}: {_bad_line(path) or e}") from None


def _bad_line(path: Path) -> str | None:
    """Where a JSONL file stops being JSON: "line N is not a JSON object (...)", or None."""
    if path.suffix != ".jsonl":
        return None
    with path.open(encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                if isinstance(json.loads(line), dict):
                    continue
                why = "not an object"
            except ValueError as e:
                why = str(e)
            return f"line {n} is not a JSON object ({why}); each line must hold one example, e.g. " \
                   '{"text": "...", "label": 0}'
    return None


def _label_of(raw, where: str, rid: str):
    """A row's raw label as a label name (str) or a label id (int); DataError for none or a fraction."""
    if raw is None or (isinstance(raw, float) and math.isnan(raw)) or (isinstance(raw, str) and not raw.strip()):
        raise DataError(f"{where}: row {rid} has no label (empty or null); give every row a label name or id")
    if isinstance(raw, str) and raw.strip().lstrip("-").isdigit():
        return int(raw)
    if isinstance(raw, float):
        if not raw.is_integer():
            raise DataError(f"{where}: row {rid} has label {raw}, not a whole number; give a label name or id")
        return int(raw)
    return raw


def _find_local(data_dir: str | Path, local: str) -> Path | None:
    for ext in EXTENSIONS:
        p = Path(data_dir) / f"{local}{ext}"
        if p.is_file():
            return p
    return None


def local_file(source: Source, data_dir: str | Path) -> Path | None:
    """The file of a split under `data_dir` (`<data_dir>/<local>.jsonl|json|csv`), None where it
    names no local file or none is there."""
    if source.path or source.local is None or not Path(data_dir).is_dir():
        return None
    return _find_local(data_dir, source.local)


def _load_hub(hub: tuple[str, str | None, str]) -> pd.DataFrame:
    import datasets  # imported lazily: slow to import and only needed for the hub

    path, name, split = hub
    try:
        try:
            ds = datasets.load_dataset(path, name, split=split)
        except RuntimeError as e:
            if "scripts are no longer supported" not in str(e):
                raise
            # datasets >= 4 runs no loading scripts (HANS on the hub still has one); the hub keeps an
            # automatic Parquet export of such datasets, one folder per config, that loads without code
            ds = datasets.load_dataset(path, split=split, revision=PARQUET_EXPORT,
                                       data_dir=name or None)
    except Exception as e:  # noqa: BLE001 - any hub failure gets the same advice
        raise DataError(
            f"could not load {path}{'/' + name if name else ''} split {split!r} from the hub ({type(e).__name__}: "
            f"{str(e)[:200]}). Offline? Pass data_dir=FOLDER with local JSONL/CSV copies."
        ) from None
    return ds.to_pandas()


def load_frame(source: Source, data_dir: str | None) -> tuple[pd.DataFrame, str] | None:
    """Read one split; returns (frame, where it came from), or None if a local file is missing."""
    if source.path:
        p = Path(source.path)
        if not p.is_file():
            raise DataError(f"data file {str(p)!r} does not exist")
        return _read_file(p), str(p)
    if data_dir is not None:
        if not Path(data_dir).is_dir():
            raise DataError(f"data_dir {str(data_dir)!r} is not a folder")
        if source.local is None:
            raise DataError("this split has no local file name; remove data_dir to load it from the hub")
        p = _find_local(data_dir, source.local)
        if p is None:
            return None
        return _read_file(p), str(p)
    if source.hub is None:
        raise DataError("this split has no hub source; pass data_dir=FOLDER with local files")
    return _load_hub(source.hub), "hub:" + "/".join(x for x in source.hub if x)


def _expected_name(source: Source, data_dir: str | None) -> str:
    if source.path:
        return source.path
    if data_dir is not None and source.local:
        return str(Path(data_dir) / source.local) + "{" + ",".join(EXTENSIONS) + "}"
    return str(source.hub)


def to_examples(frame: pd.DataFrame, task: Task, where: str,
                label_map: dict[int, int | None] | None) -> list[dict]:
    needed = [*task.text_fields, "label"]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DataError(f"{where}: missing column(s) {missing}; expected columns {needed} "
                        f"(has {list(frame.columns)})")
    ids = frame["idx"].astype(str) if "idx" in frame.columns else pd.Series(range(len(frame))).astype(str)
    if ids.duplicated().any():
        raise DataError(f"{where}: column 'idx' has duplicate values; ids must be unique per file")
    names = {n: i for i, n in enumerate(task.label_names)}
    out = []
    for rid, row in zip(ids, frame.to_dict("records")):
        raw = _label_of(row["label"], where, rid)
        if isinstance(raw, str):
            if raw not in names:
                raise DataError(f"{where}: row {rid} has label {raw!r}, which is not one of the task's "
                                f"labels {list(task.label_names)}")
            label = names[raw]
        else:
            raw = int(raw)
            if label_map is not None:
                if raw not in label_map:
                    raise DataError(f"{where}: row {rid} has label {raw}, not one of {sorted(label_map)}")
                label = label_map[raw]
                if label is None:
                    continue
            else:
                label = raw
            if not 0 <= label < task.num_labels:
                raise DataError(f"{where}: row {rid} has label {raw}; the task's labels are 0..{task.num_labels - 1} "
                                f"= {list(task.label_names)}")
        ex = {k: v for k, v in row.items() if k not in ("label", "idx")}
        for f in task.text_fields:  # a null text is empty text (pandas reads JSON null as NaN)
            ex[f] = "" if ex[f] is None or (isinstance(ex[f], float) and math.isnan(ex[f])) else str(ex[f])
        ex["id"], ex["label"] = rid, label
        out.append(ex)
    if not out:
        raise DataError(f"{where}: no examples left after label mapping")
    return out


def load_train(task: Task, data_dir: str | None) -> list[dict]:
    got = load_frame(task.train, data_dir)
    if got is None:
        raise DataError(f"training file for task {task.name!r} not found: expected "
                        f"{_expected_name(task.train, data_dir)}")
    frame, where = got
    return to_examples(frame, task, where, task.label_map)


def load_eval(task: Task, es: EvalSet, data_dir: str | None) -> list[dict] | None:
    """The examples of one eval set; None for an optional set whose local file is absent."""
    got = load_frame(es.source, data_dir)
    if got is None:
        if es.optional:
            return None
        raise DataError(f"eval set {es.name!r} of task {task.name!r} not found: expected "
                        f"{_expected_name(es.source, data_dir)}")
    frame, where = got
    for f in es.subset_fields:
        if f not in frame.columns:
            raise DataError(f"{where}: missing column {f!r} needed for per-{f} results")
    return to_examples(frame, task, where, es.label_map if es.label_map is not None else task.label_map)


# -- sampling ----------------------------------------------------------------------------------


def checksum(ids: list[str]) -> str:
    return hashlib.sha256(json.dumps(list(ids)).encode()).hexdigest()[:16]


def sample_few_shot(examples: list[dict], n_per_class: int, seed: int, task: Task) -> list[dict]:
    """Balanced n per class, drawn with a local generator (never the global random state),
    then shuffled. The same (data, n, seed) gives the same set in any process."""
    by_label: dict[int, list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        by_label[ex["label"]].append(i)
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for label in range(task.num_labels):
        pool = by_label.get(label, [])
        if n_per_class > len(pool):
            raise DataError(f"shots={n_per_class} per class, but label {task.label_names[label]!r} has only "
                            f"{len(pool)} training examples; use shots <= {len(pool)}")
        chosen.extend(pool[j] for j in rng.choice(len(pool), size=n_per_class, replace=False))
    order = rng.permutation(len(chosen))
    return [examples[chosen[j]] for j in order]


def cap_eval(examples: list[dict], max_examples: int | None, strata: tuple[str, ...] = ()) -> list[dict]:
    """A stratified (label x subset fields) subsample with a fixed seed, the same for every run."""
    if max_examples is None or len(examples) <= max_examples:
        return examples
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        groups[(ex["label"], *(ex.get(f) for f in strata))].append(i)
    rng = np.random.default_rng(0)
    keep: list[int] = []
    for key in sorted(groups, key=str):
        idx = groups[key]
        k = max(1, round(max_examples * len(idx) / len(examples)))
        keep.extend(sorted(rng.choice(idx, size=min(k, len(idx)), replace=False).tolist()))
    return [examples[i] for i in sorted(keep)]
