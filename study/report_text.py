"""Plain-text and JSON summaries of a study's best trial."""

from __future__ import annotations

from typing import Any

import optuna

from study.errors import UserError


def best_record(study: optuna.Study, *, trial: int | None = None) -> dict[str, Any]:
    """The best complete trial by validation accuracy (or complete trial number `trial`), with its params and
    stored attributes. `trial` is for a choice made otherwise on validation, e.g. the best mean over seeds."""
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        raise UserError(f"study {study.study_name!r} has no complete trial yet")
    if trial is None:
        best = study.best_trial
    else:
        chosen = [t for t in complete if t.number == trial]
        if not chosen:
            numbers = ", ".join(str(t.number) for t in complete[:20]) + (", ..." if len(complete) > 20 else "")
            raise UserError(f"study {study.study_name!r} has no complete trial #{trial} (complete trials: {numbers})")
        best = chosen[0]
    if "val_accuracy" not in best.user_attrs:  # final checks the config it needs itself
        raise UserError(
            f"trial #{best.number} of study {study.study_name!r} stores no validation accuracy "
            "(not made by mnist-study run?)"
        )
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
    attrs = {k: v for k, v in best.user_attrs.items() if k != "config"}
    return {
        "study_name": study.study_name,
        "trial_number": best.number,
        "value": best.value,
        "params": best.params,
        "attrs": attrs,
        "config": best.user_attrs.get("config"),
        "trials": counts,
    }


def best_summary(study: optuna.Study) -> str:
    try:
        r = best_record(study)
    except UserError as e:
        return str(e)
    a = r["attrs"]
    params = "\n".join(f"  {k} = {v}" for k, v in r["params"].items())
    counts = ", ".join(f"{n} {s}" for s, n in sorted(r["trials"].items()))
    test = a.get("test_accuracy")
    test_line = (
        f"{test:.4f}  (reported only; not used to choose)"
        if isinstance(test, (int, float))
        else "not recorded (a validation-only trial: the test set was never scored)"
    )
    run = ", ".join(
        part
        for part in (
            f"epochs {a['epochs']}" if a.get("epochs") is not None else None,
            f"{a['seconds']:.1f} s" if isinstance(a.get("seconds"), (int, float)) else None,
        )
        if part
    ) + (f" on {a['device']}" if a.get("device") else "")
    return (
        f"best trial #{r['trial_number']} of {r['study_name']!r} ({counts}):\n"
        f"  val accuracy  {a.get('val_accuracy', float('nan')):.4f}\n"
        f"  test accuracy {test_line}\n" + (f"  {run}\n" if run else "") + f"params:\n{params}"
    )
