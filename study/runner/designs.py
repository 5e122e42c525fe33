"""Designed experiments as ordinary Optuna studies: enqueue a design's cells x seeds, then train them.

Each design becomes the study f"{prefix}{name}": its cells x seeds are enqueued (idempotently, so a
rerun resumes and never duplicates), then trained by the same objective as `run`, one at a time or
`batch_trials` at once (cells that share data, epochs and seed train as one batched model), in
`jobs` worker processes. A trial whose worker died goes stale (heartbeat) and is re-queued.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import time
from collections.abc import Callable

import optuna
from optuna.trial import TrialState

from mnist_fc.config import RunConfig, TrainConfig
from mnist_fc.data import load_split
from study import interrupt, quiet_threads
from study.auto_precision import study_precision
from study.design_spec import Design
from study.designs import (
    DESIGNS,
    DESIGNS_BY_NAME,
    NotACell,
    design_base,
    design_space,
    expand,
    spec_json,
)
from study.errors import UserError
from study.objective import Objective
from study.runner.loops import optimize_batched
from study.runner.one_trial import optimize_one
from study.runner.optimize import check_config, threads_per_job, worker_threads
from study.runner.recovery import fail_dead_local_trials, fail_stale_trials
from study.storage import (
    MAX_RETRY,
    check_ours,
    check_study_name,
    create_or_load_study,
    curve_store,
    open_storage,
    redact,
)


def selected(names: list[str]) -> list[Design]:
    if not names or names == ["all"]:
        return list(DESIGNS)
    if "all" in names:
        raise UserError("'all' stands alone: give 'all', or design names (see --list)")
    unknown = [n for n in names if n not in DESIGNS_BY_NAME]
    if unknown:
        raise UserError(f"unknown design {', '.join(unknown)} (choose from all, {', '.join(DESIGNS_BY_NAME)})")
    return [DESIGNS_BY_NAME[n] for n in names]


def _cell_key(params: dict) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in params.items()))


def open_design_study(storage: optuna.storages.BaseStorage, design: Design, prefix: str) -> optuna.Study:
    """Create (or load) the design's study and check it was made from this same declaration."""
    name = check_study_name(f"{prefix}{design.name}", flag="--study-prefix")
    study = check_ours(create_or_load_study(storage, name))
    spec = spec_json(design)
    stored = study.user_attrs.get("design_spec")
    if stored is None and (study.user_attrs.get("space") not in (None, "design") or study.get_trials(deepcopy=False)):
        space = study.user_attrs.get("space")
        made = f"`mnist-study run` (space {space!r})" if space else "something other than `mnist-study design`"
        raise UserError(
            f"study {name!r} already holds trials made by {made}, not design {design.name!r}'s cells; "
            "use another --study-prefix (nothing was written)"
        )
    if stored is None:
        study.set_user_attr("design", design.name)
        study.set_user_attr("design_spec", spec)
        study.set_user_attr("data_seed", design.data_seed)
        study.set_user_attr("train_size", design.train_size)
        study.set_user_attr("epochs", design.epochs)
        study.set_user_attr("space", "design")
    elif stored != spec:
        raise UserError(
            f"study {name!r} was run from a different declaration of design {design.name!r}; "
            "use a new --study-prefix (a pre-registered design is not changed under its data)"
        )
    return study


def enqueue(study: optuna.Study, design: Design) -> int:
    """Enqueue every cell x seed not yet in the study (any state but FAIL); return how many were added.

    Cells whose trials only FAILED (a crash) are enqueued again, up to MAX_RETRY failures each."""
    trials = study.get_trials(deepcopy=False)
    live, failed = set(), {}
    for t in trials:
        key = _cell_key(t.system_attrs.get("fixed_params", t.params))
        if t.state == TrialState.FAIL:
            failed[key] = failed.get(key, 0) + 1
        else:
            live.add(key)
    added = 0
    for params in expand(design):
        key = _cell_key(params)
        if key in live or failed.get(key, 0) > MAX_RETRY:
            continue
        study.enqueue_trial(params, user_attrs={"design": design.name})
        live.add(key)
        added += 1
    return added


def _count(study: optuna.Study, *states: TrialState) -> int:
    return len(study.get_trials(deepcopy=False, states=states))


def run_design(design: Design, *, storage_url: str, prefix: str, base: RunConfig, batch_trials: int) -> None:
    """Work on the design's queue until no cell is waiting or running (this process or another)."""
    storage = open_storage(storage_url)
    study = open_design_study(storage, design, prefix)
    split = load_split(dataclasses.replace(base.data, train_size=design.train_size), seed=design.data_seed)
    sp = study_precision(study, design_base(design, base), n_train=len(split.x_train))  # auto: once per study
    objective = Objective(space=design_space(design), base=sp.base, split=split, curves=curve_store(storage))
    objective.precision_probe = sp.probe
    while True:
        fail_dead_local_trials(study)  # a worker of this host that is gone: at once, no heartbeat grace to wait
        fail_stale_trials(study)  # a dead worker's trial elsewhere: FAILED and re-queued once its beat is stale
        enqueue(study, design)
        waiting = _count(study, TrialState.WAITING)
        if not waiting:
            if not _count(study, TrialState.RUNNING):
                return
            time.sleep(2.0)  # another worker's trials: wait, they may go stale and come back
            continue
        # Another worker may pop the last waiting cell between the count and the ask: the extra trial
        # then raises NotACell and ends FAILED (a batched round fails its other trials too, which
        # `enqueue` puts back in the queue at the next turn).
        if batch_trials > 1:
            try:
                optimize_batched(study, objective, n_trials=min(batch_trials, waiting), batch_trials=batch_trials)
            except NotACell:
                pass
        else:
            optimize_one(study, objective, catch=(NotACell,))


def _worker(designs: list[str], storage_url: str, prefix: str, base: RunConfig, batch_trials: int, jobs: int) -> None:
    import torch

    quiet_threads.install()  # a spawned worker: the command's hook is not inherited
    interrupt.exit_with_parent()  # no orphan training on after its command was killed
    if jobs > 1:  # one worker of several: its share of the cores; alone, torch's own (OMP_NUM_THREADS honoured)
        torch.set_num_threads(threads_per_job(jobs))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    start = time.perf_counter()
    for name in designs:
        run_design(DESIGNS_BY_NAME[name], storage_url=storage_url, prefix=prefix, base=base, batch_trials=batch_trials)
        print(f"{prefix}{name}: nothing left to run ({time.perf_counter() - start:.0f} s since start)", flush=True)


def state_summary(study: optuna.Study) -> str:
    states = [t.state for t in study.get_trials(deepcopy=False)]
    parts = [f"{states.count(s)} {s.name.lower()}" for s in TrialState if states.count(s)]
    return ", ".join(parts) or "empty"


def run_designs(
    designs: list[Design],
    *,
    storage: str,
    prefix: str,
    device: str = "auto",
    precision: str = "fp32",  # the registered designs ran in CPU fp32 (docs/claims.md)
    batch_trials: int = 1,
    jobs: int = 1,
    echo: Callable[[str], None] = print,
) -> float:
    """Create, check and enqueue every design's study, then train all cells; return the wall seconds."""
    base = RunConfig(train=TrainConfig(device=device, precision=precision))
    check_config(base)  # --device cuda without a GPU: refused before any study is made or cell enqueued
    for d in designs:  # a bad prefix is refused before the storage file is made
        check_study_name(f"{prefix}{d.name}", flag="--study-prefix")
    opened = open_storage(storage)
    for d in designs:  # create, check and enqueue every study before any training
        study = open_design_study(opened, d, prefix)
        added = enqueue(study, d)
        echo(f"{study.study_name}: {len(expand(d))} cells x seeds, {added} newly enqueued ({state_summary(study)})")
        with worker_threads(jobs):  # the probe's figures depend on threads: measure at the workers' count
            header = study_precision(study, design_base(d, base), n_train=d.train_size or 50_000).header
        if header:
            echo(f"  {header}")
    echo(f"running {len(designs)} designs into {redact(storage)} (jobs {jobs}, batch {batch_trials})")
    start = time.perf_counter()
    names = [d.name for d in designs]
    if jobs == 1:
        _worker(names, storage, prefix, base, batch_trials, 1)
    else:
        ctx = multiprocessing.get_context("spawn")
        procs = [
            ctx.Process(target=_worker, args=(names, storage, prefix, base, batch_trials, jobs)) for _ in range(jobs)
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        failed = [p.exitcode for p in procs if p.exitcode != 0]
        if failed:
            raise UserError(f"{len(failed)} of {len(procs)} worker processes failed (exit codes {failed})")
    for d in designs:
        study = optuna.load_study(study_name=f"{prefix}{d.name}", storage=opened)
        echo(f"{study.study_name}: {state_summary(study)}")
    return time.perf_counter() - start
