"""The hub path is real code: check what it asks `datasets` for (no network in tests)."""
import datasets
import pytest

from tuneoff.data import DataError, load_eval, load_train
from tuneoff.tasks import get_task


def test_hub_sources_are_requested_as_users_have_them(monkeypatch):
    calls = []

    def fake_load_dataset(path, name=None, split=None):
        calls.append((path, name, split))
        return datasets.Dataset.from_dict({"sentence": ["a b", "b a"], "label": [1, 0], "idx": [0, 1]})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    cola = get_task("cola")
    assert len(load_train(cola, None)) == 2
    load_eval(cola, cola.eval_set("in_domain"), None)
    load_eval(cola, cola.eval_set("out_of_domain"), None)
    assert calls == [("nyu-mll/glue", "cola", "train"), ("nyu-mll/glue", "cola", "validation[:527]"),
                     ("nyu-mll/glue", "cola", "validation[527:]")]


def test_hub_failure_suggests_local_files(monkeypatch):
    def offline(*a, **k):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match="Pass data_dir=FOLDER"):
        load_train(get_task("sst2"), None)
