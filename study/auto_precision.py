"""`--precision auto` for a whole study: decided once, recorded with the study, the same for every trial.

Why not per trial: the probe times a trial's own first-layer shape, so trials of different widths
could get different precisions, and a probe that runs mid-study (a cache miss on a busy machine)
would let timing noise decide a trial's arithmetic. A study's trials must be trained alike (as its
settings are, see study.safety), so the study decides once, at its first run, for the base config's
first layer (the study's training rows x 784 x the base width, 100 = the article's), stores the
choice and the probe's figures as the study attribute `precision_auto`, and every later run, worker
and resume reuses that stored choice. Each trial's config then names the precision (reproducible
from its row alone) and the trial carries the probe's figures as its `precision_probe` attribute.

A study that already holds trials from before this existed keeps the precision they ran with.
A single `mnist-study train` decides per run instead (mnist_fc.runtime.decide_precision).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from typing import Any

import optuna

from mnist_fc.config import RunConfig
from mnist_fc.device import resolve_device
from mnist_fc.precision import PrecisionChoice
from mnist_fc.runtime import decide_precision
from study.errors import UserError

STUDY_ATTR = "precision_auto"  # the study's decision: PrecisionChoice.summary(), or {"precision", "reason"}


@dataclass(frozen=True)
class StudyPrecision:
    base: RunConfig  # the study's base config with "auto" replaced by the decision
    probe: dict[str, Any] | None  # stored on every trial as `precision_probe`; None = precision was named
    header: str | None  # one line for the run's header; None = precision was named


def _with_precision(base: RunConfig, precision: str) -> RunConfig:
    return dataclasses.replace(base, train=dataclasses.replace(base.train, precision=precision))


def _earlier_precisions(study: optuna.Study) -> Counter[str]:
    """How many of the study's stored trials ran in each precision."""
    return Counter(t.user_attrs["precision"] for t in study.get_trials(deepcopy=False) if t.user_attrs.get("precision"))


def _earlier_precision(study: optuna.Study) -> tuple[str, str] | None:
    """The precision most of the study's stored trials ran with (studies from before auto was measured),
    and the reason to show: how many of how many trials."""
    seen = _earlier_precisions(study)
    if not seen:
        return None
    precision, n = seen.most_common(1)[0]
    total = sum(seen.values())
    reason = (
        f"kept from the study's {n} earlier trials" if n == total else f"kept from {n} of its {total} earlier trials"
    )
    return precision, reason


def _header(decision: dict[str, Any]) -> str:
    if "shapes" in decision:
        return PrecisionChoice.from_summary(decision).header() + " [decided for the whole study]"
    return f"precision {decision['precision']} (auto: {decision['reason']})"


def study_precision(study: optuna.Study, base: RunConfig, *, n_train: int) -> StudyPrecision:
    """Resolve the study's `--precision auto` once (probe + record) or read the recorded decision.

    A named precision passes through, unless the study recorded an auto decision that differs:
    mixing precisions in one study is refused with a one-line UserError.
    """
    stored = study.user_attrs.get(STUDY_ATTR)
    if base.train.precision != "auto":
        named = base.train.precision
        if stored is not None and stored["precision"] != named:
            raise UserError(
                f"study {study.study_name!r} runs in {stored['precision']} (decided at its first run: "
                f"{stored.get('reason', 'auto')}), not {named}; use --precision auto or a new --study-name"
            )
        other = {p: n for p, n in _earlier_precisions(study).items() if p != named}
        if other:  # a study from before the decision was recorded: its trials say what it runs in
            ran = ", ".join(f"{n} in {p}" for p, n in sorted(other.items()))
            raise UserError(
                f"study {study.study_name!r} has trials run in another precision ({ran}), not {named}: one study "
                "runs in one precision; use --precision auto or a new --study-name"
            )
        if stored is None:  # the first run's named precision is the study's, as an auto decision would be
            study.set_user_attr(STUDY_ATTR, {"precision": named, "reason": "named by --precision at its first run"})
        return StudyPrecision(base, None, None)
    if stored is None:
        earlier = _earlier_precision(study)
        if earlier is not None:
            precision, reason = earlier
            stored = {"precision": precision, "reason": reason}
        else:
            device = resolve_device(base.train.device)
            precision, stored = decide_precision(base, device, rows=n_train, widths=[base.model.n_units_l1])
            stored = stored or {"precision": precision, "reason": "decided without a probe (no bf16 here)"}
        study.set_user_attr(STUDY_ATTR, stored)
    return StudyPrecision(_with_precision(base, stored["precision"]), stored, _header(stored))
