"""A TPE sampler whose randomness depends on (seed, trial number), not on the process's history.

Why: `TPESampler(seed=s)` draws from one RNG stream per process. A study resumed after a
crash, or three workers started with the same --seed, would each replay that stream from
the start and sample the SAME parameters as trials already run. Re-seeding before every
trial from (seed, trial.number) keeps a sequential study exactly reproducible and gives
every trial of a resumed or parallel study its own draw.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial


def trial_seed(seed: int, number: int) -> int:
    """A 32-bit seed for trial `number` of a study run with `seed`."""
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


class TrialSeededTPESampler(optuna.samplers.TPESampler):
    """TPESampler(seed=seed), re-seeded from (seed, trial.number) when it starts sampling a trial.

    Re-seeding at the first sample of a trial (not in before_trial) also covers ask-and-tell
    loops that ask several trials before sampling any (study.batched_run).
    """

    def __init__(self, *, seed: int) -> None:
        super().__init__(seed=seed)
        self._base_seed = seed
        self._seeded_for: int | None = None

    def _reseed_for(self, trial: FrozenTrial) -> None:
        if trial.number == self._seeded_for:
            return
        s = trial_seed(self._base_seed, trial.number)
        # Optuna keeps its RNGs in LazyRandomState._rng (no public setter): TPE's own and its
        # random sampler's, used for the first n_startup_trials.
        self._rng.rng.seed(s)
        self._random_sampler._rng.rng.seed((s + 1) % 2**32)
        self._seeded_for = trial.number

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: dict) -> dict:
        self._reseed_for(trial)
        return super().sample_relative(study, trial, search_space)

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        self._reseed_for(trial)
        return super().sample_independent(study, trial, param_name, param_distribution)


class TrialSeededRandomSampler(optuna.samplers.RandomSampler):
    """RandomSampler(seed=seed), re-seeded from (seed, trial.number) when it starts sampling a trial.

    A process-wide stream seeded by (seed + trials already stored) replayed itself whenever two workers'
    sums met (worker i loading one trial later than worker i+1): whole trials were drawn twice.
    """

    def __init__(self, *, seed: int) -> None:
        super().__init__(seed=seed)
        self._base_seed = seed
        self._seeded_for: int | None = None

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        if trial.number != self._seeded_for:
            self._rng.rng.seed(trial_seed(self._base_seed, trial.number))
            self._seeded_for = trial.number
        return super().sample_independent(study, trial, param_name, param_distribution)


def make_sampler(seed: int) -> optuna.samplers.BaseSampler:
    return TrialSeededTPESampler(seed=seed)
