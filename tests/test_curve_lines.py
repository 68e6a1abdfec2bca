"""Learning curves draw each method from its smallest shot count to its largest, even where an
option (icl's k) is set per shot count and so makes a variant of its own at each size."""
import pandas as pd

from tuneoff.report.plots import curve_lines


def _main(rows):
    return pd.DataFrame([{"variant": v, "shots": s, "mean": 0.5, "std": 0.0} for v, s in rows])


def test_variants_set_per_shot_count_are_one_line():
    main = _main([("finetune", 4), ("finetune", 128), ("icl(k=4)", 4), ("icl(k=64, select=cv)", 128)])
    lines = curve_lines(main, ["finetune", "icl(k=64, select=cv)", "icl(k=4)"])
    assert lines == [("finetune", ["finetune"]),
                     ("icl (4: k=4; 128: k=64, select=cv)", ["icl(k=4)", "icl(k=64, select=cv)"])]


def test_variants_sharing_a_shot_count_stay_apart():
    main = _main([("icl(k=4)", 4), ("icl(k=4)", 16), ("icl(k=16)", 16)])
    lines = curve_lines(main, ["icl(k=4)", "icl(k=16)"])
    assert lines == [("icl(k=4)", ["icl(k=4)"]), ("icl(k=16)", ["icl(k=16)"])]


def test_a_pattern_keeps_its_own_line():
    main = _main([("icl(k=4) [short]", 4), ("icl(k=16) [short]", 16), ("icl(k=16) [long]", 128)])
    lines = curve_lines(main, ["icl(k=4) [short]", "icl(k=16) [short]", "icl(k=16) [long]"])
    assert lines == [("icl (4: k=4; 16: k=16) [short]", ["icl(k=4) [short]", "icl(k=16) [short]"]),
                     ("icl(k=16) [long]", ["icl(k=16) [long]"])]
