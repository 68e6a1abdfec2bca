from tuneoff.summary import summarise


def _rec(lr, data_seed, acc, method="finetune", extra=None):
    cfg = {"task": "demo", "model": "m", "method": {"name": method, **(extra or {})}, "shots": 8,
           "data_seed": data_seed, "seed": 0, "train": {"lr": lr}, "output_dir": "x"}
    return {"status": "done", "task": "demo", "model": "m", "method": method, "shots": 8, "config": cfg,
            "main_metric": "accuracy",
            "metrics": {"test": {"domain": "in", "overall": {"accuracy": acc, "mcc": 0.0, "f1": acc},
                                 "majority": {"accuracy": 0.5, "mcc": 0.0, "f1": 0.33}}}}


def test_only_seeds_are_pooled():
    rows = summarise([_rec(1e-4, 0, 0.6), _rec(1e-4, 1, 0.8), _rec(1e-3, 0, 0.9), _rec(1e-3, 1, 0.9)])
    assert [(r["options"], r["score"], r["runs"]) for r in rows] == [
        ("train.lr=0.0001", "0.700 ± 0.141", 2), ("train.lr=0.001", "0.900 ± 0.000", 2)]


def test_method_options_show_only_where_they_exist():
    rows = summarise([_rec(1e-4, 0, 0.6), _rec(1e-4, 0, 0.7, "lora", {"r": 8}), _rec(1e-4, 0, 0.7, "lora", {"r": 4})])
    assert sorted(r["options"] for r in rows) == ["", "r=4", "r=8"]
