import pytest

from tuneoff.config import ConfigError, load_config, parse_override


def test_defaults_are_an_experiment_of_several_runs():
    cfg = load_config()
    runs = cfg.expand()
    assert cfg.task == "demo" and cfg.method.name == "finetune"
    assert len(runs) == 4
    assert {(r.shots, r.data_seed) for r in runs} == {(8, 0), (8, 1), (32, 0), (32, 1)}
    assert len({r.run_id() for r in runs}) == 4


def test_overrides_parse_types():
    assert parse_override("train.lr=1e-4") == (["train", "lr"], 1e-4)
    assert parse_override("shots=[2, 4]") == (["shots"], [2, 4])
    assert parse_override("save=true") == (["save"], True)
    cfg = load_config(None, ["train.lr=3e-4", "shots=16", "data_seed=3", "seed=2"])
    assert cfg.train.lr == pytest.approx(3e-4) and cfg.is_single


def test_unknown_key_names_key_and_allowed_values():
    with pytest.raises(ConfigError) as e:
        load_config(None, ["train.lrr=1"])
    msg = str(e.value)
    assert "train.lrr" in msg and "lr" in msg and "batch_size" in msg
    with pytest.raises(ConfigError, match="'bogus'"):
        load_config(None, ["bogus=1"])


def test_wrong_type_names_key():
    with pytest.raises(ConfigError, match="train.batch_size"):
        load_config(None, ["train.batch_size=many"])
    with pytest.raises(ConfigError, match="shots"):
        load_config(None, ["shots=0"])


def test_unknown_method_and_method_option():
    with pytest.raises(ConfigError, match="unknown method 'nope'.*finetune"):
        load_config(None, ["method=nope"])
    with pytest.raises(ConfigError, match="method.rank"):
        load_config(None, ["method.rank=8"])  # finetune has no options


def test_override_without_equals_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["shots"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(lst)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_yaml_then_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("task: demo\nshots: 4\ntrain:\n  lr: 0.001\n  epochs: 2\n")
    cfg = load_config(f, ["train.lr=0.01"])
    assert cfg.shots == 4 and cfg.train.lr == 0.01 and cfg.train.epochs == 2


def test_run_id_depends_on_result_relevant_fields_only():
    a = load_config(None, ["shots=8", "data_seed=0"])
    b = load_config(None, ["shots=8", "data_seed=0", "output_dir=/elsewhere", "eval.batch_size=4"])
    c = load_config(None, ["shots=8", "data_seed=1"])
    d = load_config(None, ["shots=8", "data_seed=0", "train.lr=1e-3"])
    assert a.run_id() == b.run_id()
    assert len({a.run_id(), c.run_id(), d.run_id()}) == 3
    with pytest.raises(ConfigError):
        load_config().run_id()  # an experiment of several runs has no single id


def test_training_settings_do_not_change_the_id_of_a_method_that_does_not_train():
    a = load_config(None, ["method=icl", "shots=8", "data_seed=0", "train.lr=1e-4"])
    b = load_config(None, ["method=icl", "shots=8", "data_seed=0", "train.lr=1e-3"])
    c = load_config(None, ["method=icl", "shots=8", "data_seed=0", "train.max_length=64"])
    assert a.run_id() == b.run_id() != c.run_id()


def test_union_type_errors_are_said_once_in_plain_words():
    for bad in ("shots=abc", "shots=[2,abc]", "data_seed=1.5"):
        with pytest.raises(ConfigError) as e:
            load_config(None, [bad])
        key = bad.split("=")[0]
        assert str(e.value) == f"config key {key!r}: expected an integer or a list of integers"


def test_seeds_are_non_negative_and_lists_non_empty():
    with pytest.raises(ConfigError, match="'data_seed': seeds must be >= 0, got -1"):
        load_config(None, ["data_seed=-1"])
    with pytest.raises(ConfigError, match="'seed': an empty list gives no runs"):
        load_config(None, ["seed=[]"])


def test_an_option_for_a_method_without_options_says_so():
    with pytest.raises(ConfigError, match="'method.r'; this method takes no options"):
        load_config(None, ["method.r=8"])
    with pytest.raises(ConfigError, match="allowed: alpha, dropout, r, scoring, target_modules"):
        load_config(None, ["method=lora", "method.rank=8"])


def test_a_pattern_changes_the_id_only_of_methods_that_render_it():
    def rid(*extra):
        return load_config(None, ["shots=8", "data_seed=0", *extra]).run_id()

    assert rid("pattern=gpt3") == rid()  # finetune: a classification head never sees the pattern
    assert rid("method=pattern", "pattern=gpt3") != rid("method=pattern", "pattern=minimal")
    assert rid("method=lora", "method.scoring=pattern", "pattern=gpt3") != rid("method=lora", "method.scoring=pattern")
    assert rid("method=lora", "pattern=gpt3") == rid("method=lora")


def test_max_length_is_a_top_level_key_and_train_max_length_its_old_name(tmp_path):
    new = load_config(None, ["method=pattern", "shots=8", "data_seed=0", "max_length=100"])
    old = load_config(None, ["method=pattern", "shots=8", "data_seed=0", "train.max_length=100"])
    assert new.max_length == old.max_length == 100 and "max_length" not in new.resolved()["train"]
    # the id from before the key moved (pattern's version has not changed since; icl's has)
    assert new.run_id() == old.run_id() == "e338da920871c710"
    f = tmp_path / "c.yaml"
    f.write_text("shots: 8\ndata_seed: 0\ntrain:\n  lr: 0.001\n  max_length: 100\n")
    in_file = load_config(f)
    assert in_file.max_length == 100 and in_file.train.lr == 0.001
    same = load_config(None, ["shots=8", "data_seed=0", "train.lr=0.001", "max_length=100"])
    assert in_file.run_id() == same.run_id()
    assert load_config(f, ["max_length=64"]).max_length == 64  # an override replaces the file's old name
    f.write_text("max_length: 64\ntrain:\n  max_length: 100\n")
    with pytest.raises(ConfigError, match="'train.max_length' is the old name of 'max_length': give it once"):
        load_config(f)


def test_a_record_with_max_length_under_train_reads_as_it_was_written():
    from tuneoff.config import config_from_dict

    for method in ("finetune", "icl"):
        cfg = load_config(None, [f"method={method}", "shots=8", "data_seed=0", "max_length=48"])
        record_config = cfg.resolved()
        record_config["train"]["max_length"] = record_config.pop("max_length")  # as records were written before
        again = config_from_dict(record_config)
        assert again.max_length == 48 and again.run_id() == cfg.run_id(), method


def test_selection_may_search_max_length_under_either_name_with_the_id_it_had():
    def rid(key):
        return load_config(None, ["shots=8", "data_seed=0", "select.protocol=cv", "select.search=grid", f"select.{key}=[32, 64]"]).run_id()

    assert rid("max_length") == rid("train.max_length") == "768553ea90e4572c"  # as before the move
    cand = load_config(None, ["shots=8", "data_seed=0", "select.protocol=cv", "select.search=grid", "select.train.max_length=[32, 64]"])
    assert cand.search_space()["max_length"] == [32, 64] and cand.candidate({"max_length": 32}).max_length == 32


def test_a_key_given_twice_is_an_error_but_a_merged_key_may_be_overridden(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("shots: 8\ntrain: {lr: 0.5, epochs: 2}\nforgetting: {enabled: false}\n"
                 "select:\n  <<: {protocol: cv, folds: 2}\n  folds: 3\n")
    cfg = load_config(f)  # `<<` merges keys that the mapping may then set again: no duplicate
    assert cfg.select.folds == 3 and cfg.train.epochs == 2
    with pytest.raises(ConfigError, match="override 'train={lr: 1, lr: 2}': the key 'lr' is given twice"):
        load_config(None, ["train={lr: 1, lr: 2}"])


def test_an_unknown_key_names_the_closest_allowed_one():
    for override, hint in [("train.lrr=1", "'train.lr'"), ("shot=8", "'shots'"),
                           ("eval.batchsize=1", "'eval.batch_size'"), ("select.protocl=cv", "'protocol'"),
                           ("method=lora method.alpah=8", "'method.alpha'")]:
        with pytest.raises(ConfigError, match=f"did you mean {hint}"):
            load_config(None, override.split())
    with pytest.raises(ConfigError) as e:
        load_config(None, ["bogus=1"])
    assert "did you mean" not in str(e.value)  # nothing close: no guess


def test_a_sweep_config_given_as_a_run_config_names_the_command(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("defaults: {task: demo}\nmethods: [finetune]\n")
    with pytest.raises(ConfigError, match=f"it has 'defaults', 'methods'\\), not a run config: run it with "
                                          f"`tuneoff sweep {f}`"):
        load_config(f)


def test_a_file_of_more_values_than_a_config_holds_is_refused_without_aliases(tmp_path):
    f = tmp_path / "big.yaml"
    f.write_text("x: [" + ", ".join(["0"] * 100_001) + "]\n")
    with pytest.raises(ConfigError, match="holds more than 100,000 values: settings belong here, data in a JSONL"):
        load_config(f)
