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


def test_hans_falls_back_to_the_parquet_export_when_the_hub_copy_is_a_loading_script(monkeypatch):
    """datasets >= 4 refuses loading scripts; HANS on the hub is one. The hub's Parquet export of
    the same data loads without code: that is what tuneoff asks for then."""
    calls = []

    def fake_load_dataset(path, name=None, split=None, revision=None, data_dir=None):
        calls.append((path, name, split, revision, data_dir))
        if revision is None:
            raise RuntimeError("Dataset scripts are no longer supported, but found hans.py")
        return datasets.Dataset.from_dict({
            "premise": ["the doctor saw the cat", "the cat slept"], "hypothesis": ["the cat saw", "the cat slept"],
            "label": [1, 0], "heuristic": ["lexical_overlap", "subsequence"], "subcase": ["a", "b"]})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    mnli = get_task("mnli")
    exs = load_eval(mnli, mnli.eval_set("hans"), None)
    assert [(e["heuristic"], e["label"]) for e in exs] == [("lexical_overlap", 1), ("subsequence", 0)]
    assert calls == [("jhu-cogsci/hans", "plain_text", "validation", None, None),
                     ("jhu-cogsci/hans", None, "validation", "refs/convert/parquet", "plain_text")]


def test_other_runtime_errors_are_not_retried(monkeypatch):
    calls = []

    def broken(path, name=None, split=None, **kw):
        calls.append(kw)
        raise RuntimeError("disk full")

    monkeypatch.setattr(datasets, "load_dataset", broken)
    with pytest.raises(DataError, match="disk full"):
        load_train(get_task("rte"), None)
    assert calls == [{}]
