"""Bad input that must stop before any run, with a message naming the problem and what to do; text
from data and configs shown literally in the summary, the report and the terminal."""
from __future__ import annotations

import pytest

from test_faults import TINY, _cli, _flat  # noqa: F401  (the same CLI helpers)
from tuneoff.store import Store

# -- bad input, before any run ---------------------------------------------------------------------

def test_a_label_given_twice_is_an_error(toy_task):
    text = toy_task.read_text().replace("label_names: [negative, positive]", "label_names: [positive, positive]")
    toy_task.write_text(text)
    res = _cli("validate", f"task={toy_task}")
    assert res.exit_code == 2 and "'label_names' lists 'positive' more than once" in _flat(res.output), res.output


@pytest.mark.parametrize("override, message", [
    ("train.lr=inf", "config key 'train.lr': Input should be a finite number"),
    ("train.lr=nan", "config key 'train.lr': Input should be a finite number"),
    ("shots=true", "config key 'shots': got true: a boolean"),
    ("data_seed=[0,false]", "config key 'data_seed': got [0, false]: a boolean"),
])
def test_numbers_that_would_fail_every_run_are_errors(override, message):
    res = _cli("validate", "model=tiny-bert", override)
    assert res.exit_code == 2 and message in _flat(res.output), res.output


def test_a_malformed_lease_is_an_error_before_any_run(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEOFF_LEASE_S", "soon")
    res = _cli("run", *TINY, "data_seed=0", f"output_dir={tmp_path / 'res'}")
    assert res.exit_code == 2 and "TUNEOFF_LEASE_S='soon'" in _flat(res.output) and "run(s)" not in res.output


def test_device_cuda_without_a_gpu_stops_before_the_first_run(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    res = _cli("run", *TINY, "data_seed=0", "device=cuda", f"output_dir={tmp_path / 'res'}")
    assert res.exit_code == 2 and "device=cuda but no CUDA GPU is visible" in _flat(res.output), res.output
    assert not (tmp_path / "res").exists()


def test_a_model_with_its_own_code_names_tuneofs_key(monkeypatch):
    from tuneoff import models

    def refuse(*a, **k):
        raise ValueError("The repository owner/name contains custom code which must be executed to correctly "
                         "load the model. You can inspect the repository content at https://hf.co/owner/name "
                         "first.\nPlease pass the argument `trust_remote_code=True` to allow custom code to be run.")

    monkeypatch.setattr(models.AutoConfig, "from_pretrained", refuse)
    with pytest.raises(models.ModelError) as e:
        models.check_spec("owner/name")
    assert "set trust_remote_code=true (the config key)" in str(e.value)


# -- escaping ------------------------------------------------------------------------------------

NASTY = ["[x](javascript:alert(1))", "<img src=x onerror=alert(1)>", "a|b", "[bold]loud"]


def test_text_from_data_is_inert_in_summary_report_and_terminal(tmp_path):
    from rich.console import Console

    from test_report import make_record
    from tuneoff.report import write_report
    from tuneoff.summary import print_summary, write_folder_summary

    store = Store(tmp_path)
    store.put(make_record(task=NASTY[0], method="finetune", labels=tuple(NASTY[1:3])))
    store.put(make_record(task=NASTY[0], method="head", status="failed",
                          error="RuntimeError: ![t](http://evil.example/x.png) <script>alert(1)</script> [bold]x"))
    md, _ = write_folder_summary(store)
    write_report(tmp_path, html_path=tmp_path / "r.html", md_path=tmp_path / "r.md", n_boot=50)
    for text in (md.read_text(), (tmp_path / "r.md").read_text()):
        assert "<script>" not in text and "<img" not in text
        assert "[x](javascript" not in text and "![t](http" not in text  # no live link, no remote image
        assert "\\[x\\](javascript:alert(1))" in text
        for line in text.splitlines():  # every table row keeps its number of cells
            if line.startswith("|") and "a\\|b" in line:
                assert "a|b" not in line.replace("a\\|b", "")
    html = (tmp_path / "r.html").read_text()
    assert "<script>alert" not in html and "&lt;script&gt;" in html
    console = Console(record=True, width=300)
    print_summary(console, store.records())
    shown = console.export_text()
    assert NASTY[0] in _flat(shown) and "[bold]x" in shown
