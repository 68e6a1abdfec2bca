"""A run's identity follows its data's content, not where the data sits: the same files at another
path are the same run, other files are another run, and a store whose ids hashed the path (before
ids held the data by content) still has its runs found, not computed again."""
from __future__ import annotations

import json
import shutil

from tuneoff.config import load_config
from tuneoff.identity import data_files, fit_ids, legacy_run_id
from tuneoff.pipeline import Toolbox
from tuneoff.plan import run_one, plan_store
from tuneoff.store import Store

ROWS = [("the cat sat on the mat", 1), ("cat the on sat mat the", 0), ("a dog barked at night", 1),
        ("dog a night at barked", 0), ("she reads a book", 1), ("book a she reads", 0),
        ("we walked home late", 1), ("home late we walked", 0), ("birds sing in spring", 1),
        ("spring in sing birds", 0)]


def _write_cola(folder, rows=ROWS):
    (folder / "cola").mkdir(parents=True)
    for split in ("train", "validation", "ood"):
        text = "".join(json.dumps({"sentence": s, "label": y, "idx": i}) + "\n" for i, (s, y) in enumerate(rows))
        (folder / "cola" / f"{split}.jsonl").write_text(text)
    return folder


def _cfg(data_dir, out, *extra):
    return load_config(None, ["task=cola", f"data_dir={data_dir}", "model=tiny-bert", "shots=2", "data_seed=0",
                              "train.max_steps=1", "eval.max_examples=4", f"output_dir={out}", *extra])


def test_the_same_data_at_another_path_is_the_same_run_and_other_data_another(tmp_path):
    a = _write_cola(tmp_path / "a")
    b = shutil.copytree(a, tmp_path / "elsewhere" / "b")
    c = _write_cola(tmp_path / "c", ROWS[:-2] + [("fish swim fast", 1), ("fast swim fish", 0)])
    assert _cfg(a, "r").run_id() == _cfg(b, "r").run_id()
    assert _cfg(a, "r").run_id() != _cfg(c, "r").run_id()
    assert data_files("cola", str(a)) == data_files("cola", str(b))
    assert sorted(data_files("cola", str(a))) == ["cola/ood.jsonl", "cola/train.jsonl", "cola/validation.jsonl"]
    assert fit_ids(_cfg(a, "r"), ["0"], ["1"])[0] == fit_ids(_cfg(b, "r"), ["0"], ["1"])[0]
    # built-in data names no folder: those ids are what they always were (tests/data/run_ids.json)
    assert load_config(None, ["shots=8", "data_seed=0"]).run_id() == "145e08d36c74052b"


def _as_legacy(store: Store, rec: dict, path: str) -> str:
    """Rewrite a stored run as a store written before ids held the data by content would hold it:
    keyed by the id that hashed `path`, with no `data`."""
    cfg = _cfg(path, store.folder)
    old = legacy_run_id(cfg, path)
    shutil.move(store.run_dir(rec["run_id"]), store.run_dir(old))
    legacy = {k: v for k, v in rec.to_dict().items() if k != "data"}
    legacy.update(run_id=old, config={**rec["config"], "data_dir": path})
    store.replace(rec["run_id"], legacy)
    return old


def test_a_store_keyed_by_path_is_found_from_a_copy_of_the_data_elsewhere(tmp_path):
    first = _write_cola(tmp_path / "data")
    store = Store(tmp_path / "res")
    rec = run_one(_cfg(first, store.folder), store)
    assert rec["status"] == "done", rec.get("error")
    assert rec["data"]["files"] == data_files("cola", str(first))
    old = _as_legacy(store, rec, str(first))
    assert set(store.statuses()) == {old}

    moved = shutil.copytree(first, tmp_path / "other" / "place")
    shutil.rmtree(first)
    Toolbox.shared().forget_data()
    runs = [_cfg(moved, store.folder)]
    looking = plan_store(runs, store, looking=True)  # a dry run: found as done, nothing written
    assert looking.done == [rec["run_id"]] and not looking.todo
    assert set(store.statuses()) == {old}

    again = run_one(runs[0], store)  # a real plan moves it to its id now, and computes nothing
    assert again["skipped"] == "done"
    assert set(store.statuses()) == {rec["run_id"]}
    now = store.get(rec["run_id"])
    assert now["moved_from"] == {"run_id": old, "data_dir": str(first)}
    assert now["config"]["data_dir"] == str(moved) and now["metrics"] == rec["metrics"]
    assert (store.run_dir(rec["run_id"]) / "manifest.json").is_file() and not store.run_dir(old).exists()


def test_a_stored_run_of_other_data_is_not_taken_for_this_one(tmp_path):
    first = _write_cola(tmp_path / "data")
    store = Store(tmp_path / "res")
    rec = run_one(_cfg(first, store.folder), store)
    old = _as_legacy(store, rec, str(first))
    # other examples under the same names: the split drawn now is not the one recorded
    other = _write_cola(tmp_path / "other", [(s + " again", y) for s, y in reversed(ROWS)])
    other_ids = tmp_path / "other" / "cola" / "train.jsonl"
    other_ids.write_text(other_ids.read_text().replace('"idx": ', '"idx": 100'))
    Toolbox.shared().forget_data()
    plan = plan_store([_cfg(other, store.folder)], store, looking=True)
    assert plan.done == [] and len(plan.todo) == 1
    assert set(store.statuses()) == {old}
