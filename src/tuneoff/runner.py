"""One run, as a recipe over the toolbox of `tuneoff.pipeline`: set up (device, data), select the
hyperparameters from the few-shot labels, fit and score the method, measure what the run cost,
and record it all.

`run_record` never lets one run's failure take down its caller: a bad input or a NaN loss becomes a
`failed` record with the reason, and everything already recorded stays. The driver that decides
which runs to run and stores their records is `tuneoff.plan`.
"""
from __future__ import annotations

import traceback
from pathlib import Path

from tuneoff import data as data_mod
from tuneoff import forgetting, models, precision, threads
from tuneoff.config import RunConfig, config_from_dict
from tuneoff.describe import config_of, task_metric
from tuneoff.environment import environment, warm_up
from tuneoff.identity import data_key
from tuneoff.pipeline import (Fit, RunData, Toolbox, build_method, eval_targets, fit_and_score, phase,
                              pick_device, score)
from tuneoff.record import Record, read
from tuneoff.resources import PeakMemory
from tuneoff.resume import ResumePoint, point_under
from tuneoff.selection.cache import FitCache
from tuneoff.selection.oracle import oracle
from tuneoff.selection.search import Selection, select
from tuneoff.tasks import get_task
from tuneoff.train import check_precision


def preflight(cfg: RunConfig, read_model_config: bool = True) -> None:
    """Check, before any run starts, what would make every run of `cfg` fail the same way: an
    unknown task, eval set or pattern, a data_dir that is not a folder, a model that cannot be
    found. Loads no data and no weights; raises ValueError naming the problem. Without
    `read_model_config` (a dry run) a hub id is not looked up, so planning needs no network."""
    task = get_task(cfg.task)
    for name in cfg.eval.sets or []:
        task.eval_set(name)  # KeyError naming the task's eval sets
    if cfg.pattern is not None:
        task.pattern(cfg.pattern)  # KeyError naming the task's patterns
    if cfg.data_dir is not None and not Path(cfg.data_dir).is_dir():
        raise data_mod.DataError(f"data_dir {cfg.data_dir!r} is not a folder")
    models.check_spec(cfg.model, cfg.trust_remote_code, read_config=read_model_config)
    device = pick_device(cfg.device)
    check_precision(cfg.train.precision, device)
    precision.check(cfg, device)  # model_dtype, quantization, attn_implementation on this device
    if cfg.quantization is not None and cfg.model in models.TINY:
        raise ValueError(f"quantization={cfg.quantization} quantizes pretrained weights as they load; {cfg.model!r} "
                         "is a random test model built in memory: save it (save_pretrained) and give its folder")
    if cfg.forgetting.enabled and cfg.forgetting.text is not None:
        forgetting.read_text(cfg.forgetting.text)  # TextError (a ValueError) naming the key
    out = Path(cfg.output_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output_dir {cfg.output_dir!r} is a file; give a folder (it is created if missing)")


class Recipe:
    """One run: `setup` -> `choose` -> `fit` -> `record`, in that order (`run` calls them)."""

    def __init__(self, cfg: RunConfig, run_dir: Path, progress=None, toolbox: Toolbox | None = None):
        self.cfg, self.run_dir, self.progress = cfg, Path(run_dir), progress
        self.toolbox = toolbox or Toolbox.shared()
        self.device = pick_device(cfg.device)
        self.sel: Selection | None = None
        self.chosen = cfg  # the config the run trains with: with selection, the chosen candidate's
        self.resume: ResumePoint | None = None  # where its training keeps its state (`fit`)
        self.probe = forgetting.Probe(cfg.forgetting.text, cfg.forgetting.max_tokens) if cfg.forgetting.enabled else None

    def setup(self) -> None:
        """Data shared by every run of the task (read once per toolbox) stays outside the run's own
        memory; with selection the eval sets are read only after the choice, inside it."""
        phase(self.progress, f"load data {task_name(self.cfg.task)}")
        if self.cfg.select is None:
            self.toolbox.data(self.cfg)
        else:
            self.toolbox.split(self.cfg)
        warm_up()
        if models.needs_dequantising(self.cfg.model):  # once per machine, and no part of any run's memory
            phase(self.progress, f"dequantise {self.cfg.model} (first use; cached under {models.cache_dir()})")
            models.resolve(self.cfg.model)

    def choose(self) -> None:
        """The hyperparameters, chosen from the few-shot labels before any eval set is read."""
        if self.cfg.select is not None:
            self.sel = select(self.cfg, FitCache(self.cfg.output_dir), self.progress, self.toolbox)
            self.chosen = self.cfg.candidate(self.sel.chosen)

    def fit(self) -> tuple[RunData, Fit]:
        """The chosen config trained on the split and scored on the eval sets; forgetting measured
        around it; the weights saved if asked."""
        data = self.toolbox.data(self.chosen)
        on_load = self.probe.before if self.probe else None
        self.resume = resume_point(self.cfg, self.chosen)
        fit = fit_and_score(self.toolbox, self.chosen, data, data.few, eval_targets(data), progress=self.progress,
                            on_load=on_load, resume=self.resume)
        if fit.diverged is not None:
            self.clear_resume()  # it would diverge again from its state: the run is recorded as failed
            raise fit.diverged
        if self.probe:
            with precision.autocast(fit.method.ctx.dtype, self.device):  # 16-bit frozen, float32 trained weights
                self.probe.after(fit.method.model, fit.method.ctx.loaded)
        if self.cfg.save:
            fit.method.save(self.run_dir / "weights")
        return data, fit

    def run(self) -> dict:
        with threads.applied(self.cfg.threads) as chosen:
            self.setup()
            with PeakMemory(self.device) as mem:
                self.choose()
                data, fit = self.fit()
            out = self.record(data, fit, mem.result())
        out["env"]["threads"] = chosen.record()
        self.clear_resume()  # the record is made: its training's state is done with
        return out

    def clear_resume(self) -> None:
        if self.resume is not None:
            self.resume.clear()

    def record(self, data: RunData, fit: Fit, memory: dict) -> dict:
        """What the run recorded, beside its config (`base_record`)."""
        out = {"notes": [*data.notes, *_load_notes(fit)], "model_info": _model_info(fit),
               "split": _split(data), **_prompts(data, fit)}
        forgetting_s = 0.0
        if self.probe:
            out["forgetting"], forgetting_s = self.probe.result()
        if self.sel is not None:
            out["selection"] = {**self.sel.record,
                                "labels_used_total": len(set(out["split"]["ids"]) | self.sel.labelled)}
        out["labels_seen"] = _labels_seen(out)
        out.update(metrics=fit.metrics, train={"losses": fit.stats.losses if fit.stats else []},
                   resources=resources(fit, memory, forgetting_s))
        if self.sel is not None:
            out["resources"].update(selection_resources(self.sel, out["resources"]))
            if self.cfg.select.oracle:  # a diagnostic that peeks at the eval sets: after the choice, outside its cost
                out["oracle"] = oracle(self.cfg, self.sel, fit.metrics, self.progress, self.toolbox)
        out["env"] = environment(self.device)
        return out


def resume_point(cfg: RunConfig, chosen: RunConfig) -> ResumePoint | None:
    """Where the run's training keeps its state (`tuneoff.resume`): under the run's id, for the
    config it trains (`chosen`: with selection, the chosen candidate); none with `resume_every` 0."""
    return point_under(cfg.output_dir, cfg.run_id(), chosen.train.resume_every, chosen.run_id())


# -- the record's parts --------------------------------------------------------------------------

def _load_notes(fit: Fit) -> list[str]:
    warning = fit.method.ctx.loaded.info.get("warning")
    return ([warning] if warning else []) + fit.method.notes


def _model_info(fit: Fit) -> dict:
    info = {k: v for k, v in fit.method.ctx.loaded.info.items() if k != "newly_initialised"}
    info["newly_initialised"] = len(fit.method.ctx.loaded.info.get("newly_initialised", []))
    return info


def _split(data: RunData) -> dict:
    ids = [ex["id"] for ex in data.few]
    return {"ids": ids, "checksum": data_mod.checksum(ids), "n": len(data.few), "train_pool": len(data.pool)}


def _prompts(data: RunData, fit: Fit) -> dict:
    """The exact input the model saw (`Method.prompt_example`: a rendered prompt, or a classification
    head's input decoded, separator or pair format included) for the first example of the first eval
    set (a training example can be one of icl's own demonstrations, which would read as leakage), else
    a training one; for the first training example too (`train_prompt`); and whatever else the
    method keeps for audit (`Method.audit`: distill's teacher prompt)."""
    method, first = fit.method, data.few[0]
    shown, where = next(((exs[0], name) for name, exs in data.evals.items() if exs), (first, "train"))
    return {"prompt": method.prompt_example(shown), "prompt_example": {"id": shown["id"], "from": where},
            "train_prompt": method.prompt_example(first), "train_prompt_example": {"id": first["id"], "from": "train"},
            **method.audit(data.few)}


def _labels_seen(out: dict) -> int:
    """Labelled examples the run's result depended on: its few-shot split, and with selection every
    label the choice used besides (a dev split; under the frugal budget the reference split's)."""
    selection = out.get("selection")
    if selection is not None:
        return selection["labels_used_total"]
    return len(set(out["split"]["ids"]))


def resources(fit: Fit, memory: dict, forgetting_s: float) -> dict:
    """The run's parameters, memory, time (wall and CPU) of each part, tokens and compute."""
    timers = fit.timers
    return {
        **fit.params, **memory,
        **{f"{k}_time_s": round(t.seconds, 3) for k, t in timers.items()},
        **{f"{k}_cpu_s": round(t.cpu_seconds, 3) for k, t in timers.items()},
        "forgetting_time_s": forgetting_s,
        "train_steps": fit.stats.steps if fit.stats else 0,
        "train_examples": fit.stats.examples if fit.stats else 0, "train_tokens": fit.train_tokens,
        "eval_examples": fit.eval_examples, "eval_tokens": fit.eval_tokens, "eval_batch_size": fit.eval_batch_size,
        "train_flops_approx": fit.train_flops, "eval_flops_approx": fit.eval_flops,
    }


def selection_resources(sel: Selection, res: dict) -> dict:
    """Selection is part of the method's cost: shown alone, and added in the totals (adapt_*)."""
    cost = sel.cost
    out = {"selection_time_s": cost["time_s"], "selection_cpu_s": cost["cpu_s"], "selection_fits": cost["fits"],
           "selection_tokens": cost["train_tokens"] + cost["eval_tokens"],
           "selection_flops_approx": cost["flops_approx"]}
    out["adapt_time_s"] = round(res["train_time_s"] + out["selection_time_s"], 3)
    out["adapt_flops_approx"] = res["train_flops_approx"] + out["selection_flops_approx"]
    out["adapt_tokens"] = res["train_tokens"] + out["selection_tokens"]
    return out


def task_name(spec: str) -> str:
    try:
        return get_task(spec).name  # a custom task's name, not the path of its YAML file
    except ValueError:
        return spec


def _pattern(cfg: RunConfig) -> dict:
    """The pattern an LM-scored run renders, resolved (the task's default when `pattern` is unset):
    its name, template and answer words; for a classification head, none."""
    try:
        if not cfg.uses_pattern:
            return {"pattern": None}
        p = get_task(cfg.task).pattern(cfg.pattern)
    except (ValueError, KeyError):  # the run fails on it and records why
        return {"pattern": cfg.pattern}
    return {"pattern": p.name, "pattern_template": p.template, "verbalizer": dict(p.verbalizer)}


def base_record(cfg: RunConfig) -> Record:
    """What a record says of its run before it runs (a failed run's record is this and the error)."""
    data = data_key(cfg)
    return Record.create(
        run_id=cfg.run_id(), error=None, config=cfg.resolved(), task=task_name(cfg.task), model=cfg.model,
        method=cfg.method.name, method_version=cfg.method_version,
        method_options=dict(cfg.method.model_extra or {}), shots=cfg.shots, main_metric=task_metric(cfg.task),
        data_seed=cfg.data_seed, seed=cfg.seed, **_pattern(cfg),
        **({"data": data} if data is not None else {}))  # the data by content, as the run id holds it


def run_record(cfg: RunConfig, run_dir: Path, progress=None, toolbox: Toolbox | None = None) -> Record:
    """Run one config and return its record (`done` or `failed`, never raises); writes nothing
    but the weights (under `run_dir`, when cfg.save). The executors call this, then the driver
    stores the record."""
    record = base_record(cfg)
    try:
        record.update(Recipe(cfg, Path(run_dir), progress, toolbox).run())
        record.status = "done"
    except Exception as e:  # noqa: BLE001 - a failed run is recorded, not raised
        record.update(status="failed", error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc(limit=6))
    return record


def evaluate_saved(run_dir: str | Path, progress=None) -> tuple[dict, dict]:
    """Re-evaluate a run saved with save=true: (recorded metrics, new metrics)."""
    run_dir = Path(run_dir)
    manifest = run_dir / "manifest.json"
    if not manifest.is_file():
        raise FileNotFoundError(f"{str(run_dir)!r} is not a run folder (no manifest.json)")
    record = read(manifest)
    if not (run_dir / "weights").is_dir():
        raise FileNotFoundError(f"{str(run_dir)!r} has no saved weights: run it again with save=true")
    cfg = config_from_dict(config_of(record))  # keys added since it ran, at the default it ran with
    if record.selection is not None and record.selection.chosen is not None:  # it trained with the chosen values
        cfg = cfg.candidate(record.selection.chosen)
    data = Toolbox.shared().data(cfg)
    method, _ = build_method(cfg, data, data.few, pick_device(cfg.device))
    method.load(run_dir / "weights")
    metrics, _, _ = score(method, eval_targets(data), cfg.eval.batch_size, progress)
    return {k: v.to_dict() for k, v in (record.metrics or {}).items()}, metrics
