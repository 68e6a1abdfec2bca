"""One run, top to bottom: config -> task -> split -> model -> method -> train -> evaluate -> record.

`run_record` never lets one run's failure take down its caller: a bad input or a NaN loss becomes a
`failed` record with the reason, and everything already recorded stays. `execute` runs one config
through the driver of `tuneoff run` and `tuneoff sweep` (`tuneoff.plan`: skipped when done).
"""
from __future__ import annotations

import datetime as _dt
import json
import traceback
from pathlib import Path

import torch

from tuneoff import data as data_mod
from tuneoff import forgetting, models
from tuneoff.config import RunConfig
from tuneoff.describe import task_metric
from tuneoff.environment import environment, warm_up
from tuneoff.evaluate import eval_metrics, predict
from tuneoff.methods import Context, Method
from tuneoff.resources import PeakMemory, Timer, approx_flops, count_parameters, train_cost
from tuneoff.plan import execute  # noqa: F401 - one config, as `tuneoff run` runs it
from tuneoff.tasks import Task, get_task
from tuneoff.train import check_precision, train

_DATA_CACHE: dict[tuple, object] = {}


def _cached(key: tuple, fn):
    """Data loaded once per process. A DataError is remembered too: the next run of the same job
    fails at once with the same message instead of waiting out the hub's retries again."""
    if key not in _DATA_CACHE:
        try:
            _DATA_CACHE[key] = fn()
        except data_mod.DataError as e:
            _DATA_CACHE[key] = e
    got = _DATA_CACHE[key]
    if isinstance(got, data_mod.DataError):
        raise data_mod.DataError(str(got))
    return got


def pick_device(name: str) -> torch.device:
    """The torch device of a config's `device` (the one place it is derived); ValueError for
    device=cuda without a visible GPU."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device=cuda but no CUDA GPU is visible to torch (torch.cuda.is_available() is False); "
                         "use device=auto or device=cpu, or a torch build with CUDA")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


_ACCELERATORS: dict = {}


def release(accelerator) -> None:
    """Drop the shared accelerator's references to what it prepared, so a finished model can be
    freed (accelerate's own free_memory runs a full garbage collection, about a second, each time)."""
    for attr in ("_models", "_optimizers", "_schedulers", "_dataloaders"):
        getattr(accelerator, attr, []).clear()


def accelerator_for(device: torch.device):
    from accelerate import Accelerator

    key = device.type
    if key not in _ACCELERATORS:
        _ACCELERATORS[key] = Accelerator(cpu=device.type == "cpu")
    return _ACCELERATORS[key]


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
    check_precision(cfg.train.precision, pick_device(cfg.device))
    if cfg.forgetting.enabled and cfg.forgetting.text is not None:
        forgetting.read_text(cfg.forgetting.text)  # TextError (a ValueError) naming the key
    out = Path(cfg.output_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output_dir {cfg.output_dir!r} is a file; give a folder (it is created if missing)")


class Prepared:
    """Everything a run needs before training: data, split, model and method."""

    def __init__(self, cfg: RunConfig, task: Task, pool: list[dict], few: list[dict],
                 evals: dict[str, list[dict]], method: Method, device: torch.device, notes: list[str]):
        self.cfg, self.task, self.pool, self.few, self.evals = cfg, task, pool, few, evals
        self.method, self.device, self.notes = method, device, notes
        self.lm_chunks: list[list[int]] = []
        self.lm_before: dict = {}
        self.timers: dict[str, Timer] = {}  # "load" (the model) and "setup" (the method's set-up)


def load_split(cfg: RunConfig, data_seed: int | None = None) -> tuple[Task, list[dict], list[dict]]:
    """The task, its train pool and the few-shot split of `data_seed` (default: the run's)."""
    task = get_task(cfg.task)
    pool = _cached((cfg.task, cfg.data_dir, "train"), lambda: data_mod.load_train(task, cfg.data_dir))
    few = data_mod.sample_few_shot(pool, cfg.shots, cfg.data_seed if data_seed is None else data_seed, task)
    return task, pool, few


def load_data(cfg: RunConfig) -> tuple[Task, list[dict], list[dict], dict[str, list[dict]], list[str]]:
    """(task, training pool, few-shot split, eval sets, notes); the files are read once per process."""
    task, pool, few = load_split(cfg)
    key = (cfg.task, cfg.data_dir)
    notes: list[str] = []
    evals: dict[str, list[dict]] = {}
    wanted = cfg.eval.sets or [es.name for es in task.eval_sets]
    for name in wanted:
        es = task.eval_set(name)
        exs = _cached(key + ("eval", name), lambda es=es: data_mod.load_eval(task, es, cfg.data_dir))
        if exs is None:
            notes.append(f"optional eval set {name!r} not found under data_dir; skipped")
            continue
        evals[name] = data_mod.cap_eval(exs, cfg.eval.max_examples, es.subset_fields)
    return task, pool, few, evals, notes


def _phase(progress, name: str) -> None:
    if progress:
        progress(name, 0, None)


def method_context(cfg: RunConfig, task: Task, loaded: models.Loaded, device: torch.device) -> Context:
    """What a method is given of its run: the task, the loaded model, the device and the few settings
    methods read (nothing else of the config)."""
    return Context(task=task, loaded=loaded, device=device, seed=cfg.seed, data_seed=cfg.data_seed,
                   max_length=cfg.max_length, eval_batch_size=cfg.eval.batch_size, pattern=cfg.pattern)


def build_method(cfg: RunConfig, task: Task, pool: list[dict], train_set: list[dict],
                 eval_texts: list[str] = (), progress=None, timers: dict | None = None, on_load=None,
                 device: torch.device | None = None) -> Method:
    """Load the model and build the method on `train_set` (its `setup` done). `eval_texts` only
    widen the word-level vocabulary of the tiny test models; selection passes none. `timers`, if
    given, gets the "load" (model) and "setup" (the method's set-up) timers. `on_load` is called
    with the loaded model before the method touches it (outside both timers). `device`: the run's,
    if the caller has derived it already."""
    method_cls, options = cfg.method_class, cfg.method_options
    vocab = [" ".join(ex[f] for f in task.text_fields) for ex in pool] + list(eval_texts)
    vocab += [p.template + " " + " ".join(p.verbalizer.values()) for p in task.patterns.values()]
    vocab += [task.instruction, " ".join(task.label_names)]
    device = pick_device(cfg.device) if device is None else device
    with Timer() as t_load:
        _phase(progress, f"load model {cfg.model}")
        loaded = models.load(cfg.model, method_cls.head_for(options), task.num_labels, vocab_texts=vocab,
                             seed=cfg.seed, trust_remote_code=cfg.trust_remote_code)
        loaded.model.to(device)
    if on_load is not None:
        on_load(loaded)
    with Timer() as t_setup:
        _phase(progress, f"set up {cfg.method.name}")
        method = method_cls(options, method_context(cfg, task, loaded, device))
        method.progress = progress
        method.setup(train_set, pool)
    if timers is not None:
        timers.update(load=t_load, setup=t_setup)
    return method


def prepare(cfg: RunConfig, progress=None, data=None, measure_lm: bool = False,
            device: torch.device | None = None) -> Prepared:
    """Data (`load_data`'s result, or loaded here), model and method, set up and timed; with
    `measure_lm` (and forgetting enabled) also the LM loss on the general-text sample of the model
    as loaded, before the method touches it. `device`: the run's, if already derived."""
    task, pool, few, evals, notes = data or load_data(cfg)
    notes = list(notes)
    eval_texts = [" ".join(ex[f] for f in task.text_fields) for exs in evals.values() for ex in exs]
    lm: dict = {}

    def measure_before(loaded) -> None:
        from tuneoff.methods.pattern import window_of

        text = forgetting.read_text(cfg.forgetting.text)
        lm["chunks"] = forgetting.token_chunks(loaded.tokenizer, text, cfg.forgetting.max_tokens,
                                               window_of(loaded.model))
        lm["before"] = forgetting.measure(loaded.model, loaded, lm["chunks"])

    timers: dict[str, Timer] = {}
    method = build_method(cfg, task, pool, few, eval_texts, progress, timers,
                          on_load=measure_before if measure_lm and cfg.forgetting.enabled else None, device=device)
    if method.ctx.loaded.info.get("warning"):
        notes.append(method.ctx.loaded.info["warning"])
    notes += method.notes
    prep = Prepared(cfg, task, pool, few, evals, method, method.ctx.device, notes)
    prep.timers = timers
    prep.lm_chunks, prep.lm_before = lm.get("chunks", []), lm.get("before", {})
    return prep


def evaluate_all(prep: Prepared, progress=None) -> tuple[dict, int]:
    """Metrics for every eval set, and the tokens scored (the caller times it)."""
    metrics, tokens = {}, 0
    for name, exs in prep.evals.items():
        es = prep.task.eval_set(name)
        cb = (lambda done, total, name=name: progress(f"eval {name}", done, total)) if progress else None
        probs, tok = predict(prep.method, exs, prep.cfg.eval.batch_size, prep.device, cb)
        tokens += tok
        m = eval_metrics(exs, probs, prep.task.label_names, es.subset_fields)
        metrics[name] = {"domain": es.domain, "n": len(exs), **m}
    return metrics, tokens


def shown_example(prep: Prepared) -> tuple[dict, str]:
    """The example whose prompt a run records: the first of its first eval set (a training example
    can be one of icl's own demonstrations, which would read as leakage), else a training one."""
    for name, exs in prep.evals.items():
        if exs:
            return exs[0], name
    return prep.few[0], "train"


def _run(cfg: RunConfig, run_dir: Path, progress=None) -> dict:
    device = pick_device(cfg.device)
    forgetting_s = 0.0
    _phase(progress, f"load data {_task_name(cfg.task)}")
    # data shared by every run of the task (read once per process) stays outside the run's own memory;
    # with selection the eval sets are read only after the choice, inside it
    load_data(cfg) if cfg.select is None else load_split(cfg)
    warm_up()
    if models.needs_dequantising(cfg.model):  # once per machine, and no part of any run's memory
        _phase(progress, f"dequantise {cfg.model} (first use; cached under {models.cache_dir()})")
        models.resolve(cfg.model)
    with PeakMemory(device) as mem:
        sel, chosen_cfg = None, cfg
        if cfg.select is not None:  # chosen from the few-shot labels before any eval set is read
            from tuneoff.selection.cache import FitCache
            from tuneoff.selection.search import select

            sel = select(cfg, FitCache(cfg.output_dir), progress)  # records its fits' wall and CPU time
            chosen_cfg = cfg.candidate(sel.chosen)
        prep = prepare(chosen_cfg, progress, measure_lm=True, device=device)
        method = prep.method
        out: dict = {"notes": prep.notes, "model_info": {k: v for k, v in method.ctx.loaded.info.items()
                                                         if k != "newly_initialised"}}
        out["model_info"]["newly_initialised"] = len(method.ctx.loaded.info.get("newly_initialised", []))
        out["split"] = {"ids": [ex["id"] for ex in prep.few], "checksum": data_mod.checksum([ex["id"] for ex in prep.few]),
                        "n": len(prep.few), "train_pool": len(prep.pool)}
        shown, where = shown_example(prep)
        out["prompt"] = method.prompt_example(shown)
        out["prompt_example"] = {"id": shown["id"], "from": where}
        if hasattr(method, "teacher_prompt"):  # context distillation: what its teacher saw, for audit
            out["teacher_prompt"] = method.teacher_prompt(prep.few[0])
            out["teacher_prompt_example"] = {"id": prep.few[0]["id"], "from": "train"}
        if not method.trains:  # nothing may receive gradients, and none is counted as trainable
            method.model.requires_grad_(False)
        params = count_parameters(method.model)
        train_stats = None
        with Timer() as t_train:
            if method.trains:
                cb = (lambda s, total, loss: progress("train", s, total, loss)) if progress else None
                train_stats = train(method, method.train_examples(prep.few), chosen_cfg.train, cfg.seed,
                                    accelerator_for(prep.device), cb)
                release(accelerator_for(prep.device))  # a sweep would keep every run's model alive
        with Timer() as t_eval:  # wall and CPU time
            metrics, eval_tokens = evaluate_all(prep, progress)
        if prep.lm_before:
            after = forgetting.measure(method.model, method.ctx.loaded, prep.lm_chunks)
            out["forgetting"], forgetting_s = forgetting.result(prep.lm_before, after, cfg.forgetting.text)
        if sel is not None:
            out["selection"] = {**sel.record,
                                "labels_used_total": len(set(out["split"]["ids"]) | sel.labelled)}
        if cfg.save:
            method.save(run_dir / "weights")
    ntok, train_flops = train_cost(params, train_stats)
    out["metrics"] = metrics
    out["train"] = {"losses": train_stats.losses if train_stats else []}
    timers = {**prep.timers, "train": t_train, "eval": t_eval}
    out["resources"] = {
        **params, **mem.result(),
        **{f"{k}_time_s": round(t.seconds, 3) for k, t in timers.items()},
        **{f"{k}_cpu_s": round(t.cpu_seconds, 3) for k, t in timers.items()},
        "forgetting_time_s": forgetting_s,
        "train_steps": train_stats.steps if train_stats else 0,
        "train_examples": train_stats.examples if train_stats else 0, "train_tokens": ntok,
        "eval_examples": sum(len(v) for v in prep.evals.values()), "eval_tokens": eval_tokens,
        "train_flops_approx": train_flops,
        "eval_flops_approx": approx_flops(params["params_total"], 0, eval_tokens, False),
    }
    if sel is not None:  # selection is part of the method's cost: shown alone, and added in the totals
        res = out["resources"]
        res.update(selection_time_s=sel.cost["time_s"], selection_cpu_s=sel.cost["cpu_s"],
                   selection_fits=sel.cost["fits"],
                   selection_tokens=sel.cost["train_tokens"] + sel.cost["eval_tokens"],
                   selection_flops_approx=sel.cost["flops_approx"])
        res["adapt_time_s"] = round(res["train_time_s"] + res["selection_time_s"], 3)
        res["adapt_flops_approx"] = res["train_flops_approx"] + res["selection_flops_approx"]
        res["adapt_tokens"] = res["train_tokens"] + res["selection_tokens"]
        if cfg.select.oracle:  # a diagnostic that peeks at the eval sets: after the choice, outside its cost
            from tuneoff.selection.oracle import oracle

            out["oracle"] = oracle(cfg, sel, metrics, progress)
    out["env"] = environment(prep.device)
    return out


def _task_name(spec: str) -> str:
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


def base_record(cfg: RunConfig) -> dict:
    return {
        "run_id": cfg.run_id(), "status": "running", "error": None,
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "config": cfg.resolved(), "task": _task_name(cfg.task), "model": cfg.model, "method": cfg.method.name,
        "method_version": cfg.method_version,
        "method_options": dict(cfg.method.model_extra or {}), "shots": cfg.shots,
        "main_metric": task_metric(cfg.task),
        "data_seed": cfg.data_seed, "seed": cfg.seed, **_pattern(cfg),
    }


def run_record(cfg: RunConfig, run_dir: Path, progress=None) -> dict:
    """Run one config and return its record (`done` or `failed`, never raises); writes nothing
    but the weights (under `run_dir`, when cfg.save). The sweep's executors call this, then the
    driver stores the record."""
    record = base_record(cfg)
    try:
        record.update(_run(cfg, Path(run_dir), progress))
        record["status"] = "done"
    except Exception as e:  # noqa: BLE001 - a failed run is recorded, not raised
        record["status"] = "failed"
        record["error"] = f"{type(e).__name__}: {e}"
        record["traceback"] = traceback.format_exc(limit=6)
    return record


def evaluate_saved(run_dir: str | Path, progress=None) -> tuple[dict, dict]:
    """Re-evaluate a run saved with save=true: (recorded metrics, new metrics)."""
    from tuneoff.config import config_from_dict

    run_dir = Path(run_dir)
    manifest = run_dir / "manifest.json"
    if not manifest.is_file():
        raise FileNotFoundError(f"{str(run_dir)!r} is not a run folder (no manifest.json)")
    record = json.loads(manifest.read_text())
    if not (run_dir / "weights").is_dir():
        raise FileNotFoundError(f"{str(run_dir)!r} has no saved weights: run it again with save=true")
    cfg = config_from_dict(record["config"])
    if (record.get("selection") or {}).get("chosen") is not None:  # the run trained with the chosen values
        cfg = cfg.candidate(record["selection"]["chosen"])
    prep = prepare(cfg)
    prep.method.load(run_dir / "weights")
    metrics, _ = evaluate_all(prep, progress)
    return record.get("metrics", {}), metrics
