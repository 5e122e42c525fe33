"""Statistics for designed, replicated runs whose durations may be censored, and ONE verdict rule.

Every test returns a `StatResult`: an effect size with a seeded bootstrap 95% CI, a two-sided
p-value and n. Durations (plateau length, epochs to 90%) are `Sample`s with an event flag: a run
that never left the plateau is *censored* at the epochs it ran (its duration is only a lower
bound), so it must not be ranked as if the bound were its value. Hence:
- two groups of durations: the log-rank test (written out below: it is short, and the same sums
  give the trend test), effect = log ratio of Kaplan-Meier medians;
- ranks with censoring: Gehan's generalised Wilcoxon scores (a pair counts only when its order is
  known), which reduce to ordinary ranks, Cliff's delta and Spearman's rho without censoring, so
  `min_effect` means the same in every test;
- a trend over ordered levels: the log-rank trend test (censored) or Spearman's rho;
- a U-shape: an interior level below both ends (intersection-union: p = the larger of the two
  one-sided p's, Bonferroni over the interior candidates);
- an interaction: the difference between the trends at two levels of a second factor.
Multiplicity: Holm across the primary predictions. See docs/claims_method.md and `verdict`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

ALPHA = 0.05
N_BOOT = 2000  # bootstrap resamples for every CI
BOOT_SEED = 0  # fixed: the claims table is exactly reproducible
CI = (2.5, 97.5)  # percentile bootstrap 95% interval (not adjusted for multiplicity; p-values are)
# Two-group tests of censored durations use the EXACT permutation distribution of their (linear rank)
# statistic while the number of splits is at most this: with 3-5 seeds per cell the normal
# approximation is anti-conservative (measured: 8-10% false positives at alpha 0.05 for 3 vs 3).
EXACT_MAX = 20_000

SUPPORTED = "supported"
CONTRADICTED = "contradicted"
NO_EFFECT = "contradicted (no effect)"
INCONCLUSIVE = "inconclusive"
NO_DATA = "no data"
VERDICTS = (SUPPORTED, CONTRADICTED, NO_EFFECT, INCONCLUSIVE, NO_DATA)


@dataclass(frozen=True)
class Sample:
    """Values of one group; `event[i]` False means value i is censored (a lower bound)."""

    value: np.ndarray
    event: np.ndarray

    @classmethod
    def of(cls, value: Sequence[float], event: Sequence[bool] | None = None) -> Sample:
        v = np.asarray(value, dtype=np.float64)
        e = np.ones(v.shape, dtype=bool) if event is None else np.asarray(event, dtype=bool)
        keep = np.isfinite(v)
        return cls(v[keep], e[keep])

    @property
    def n(self) -> int:
        return int(self.value.size)

    @property
    def censored(self) -> bool:
        return bool((~self.event).any())

    def take(self, idx: np.ndarray) -> Sample:
        return Sample(self.value[idx], self.event[idx])


@dataclass(frozen=True)
class StatResult:
    test: str  # e.g. "log-rank"
    effect_name: str  # e.g. "log ratio of KM medians"
    effect: float
    ci_low: float
    ci_high: float
    p_value: float  # two-sided
    n: int
    note: str = ""


def _nan(test: str, effect_name: str, n: int, note: str) -> StatResult:
    nan = float("nan")
    return StatResult(test, effect_name, nan, nan, nan, nan, n, note)


def _bootstrap(groups: Sequence[Sample], statistic: Callable[[list[Sample]], float]) -> tuple[float, float]:
    """Percentile CI of `statistic`, resampling within each group (the design's cells stay balanced)."""
    rng = np.random.default_rng(BOOT_SEED)
    draws = np.empty(N_BOOT)
    for b in range(N_BOOT):
        draws[b] = statistic([g.take(rng.integers(0, g.n, g.n)) for g in groups])
    if np.isnan(draws).mean() > 0.5:  # the statistic is undefined in most resamples: no interval
        return float("nan"), float("nan")
    lo, hi = np.nanpercentile(draws, CI)
    return float(lo), float(hi)


# --- Kaplan-Meier and the log-rank family ----------------------------------------------------------


def kaplan_meier(s: Sample) -> tuple[np.ndarray, np.ndarray]:
    """(event times, survival just after each): the product-limit estimate. Censoring at time t
    counts as after the events at t (the censored run was still on the plateau then)."""
    times = np.unique(s.value[s.event])
    surv = np.empty(times.size)
    level = 1.0
    for i, t in enumerate(times):
        at_risk = int((s.value >= t).sum())
        deaths = int(((s.value == t) & s.event).sum())
        level *= 1.0 - deaths / at_risk
        surv[i] = level
    return times, surv


def km_median(s: Sample) -> tuple[float, bool]:
    """(median, reached): the first time the KM survival is <= 0.5. If it never gets there the
    median is only known to exceed the longest follow-up: (that time, False)."""
    times, surv = kaplan_meier(s)
    hit = np.flatnonzero(surv <= 0.5)
    if hit.size:
        return float(times[hit[0]]), True
    return (float(s.value.max()) if s.n else float("nan")), False


def _logrank_sums(s: Sample, score: np.ndarray) -> tuple[float, float]:
    """U = sum over event times of (score of those who failed - expected under H0), and its
    hypergeometric variance V. Two groups (score 1/0): U = O - E of group 1; ordered levels: the
    log-rank trend statistic."""
    u = v = 0.0
    for t in np.unique(s.value[s.event]):
        risk = s.value >= t
        failed = (s.value == t) & s.event
        n_risk, d = int(risk.sum()), int(failed.sum())
        r = score[risk]
        u += float(score[failed].sum()) - d * float(r.mean())
        if n_risk > 1:
            v += d * (n_risk - d) / (n_risk - 1) * float(r.var())
    return u, v


def logrank_scores(s: Sample) -> np.ndarray:
    """Each run's log-rank score: event indicator minus the pooled Nelson-Aalen hazard up to its time.
    The log-rank O - E of a group is the sum of its members' scores (a linear rank statistic)."""
    times = np.unique(s.value[s.event])
    hazard = np.array([((s.value == t) & s.event).sum() / (s.value >= t).sum() for t in times])
    cumulative = np.r_[0.0, np.cumsum(hazard)]
    return s.event.astype(np.float64) - cumulative[np.searchsorted(times, s.value, side="right")]


def permutation_p(scores: np.ndarray, n_a: int) -> tuple[float, float, float] | None:
    """(two-sided, greater, less) exact permutation p-values of W = sum of the first n_a scores over
    all splits of the pooled runs into groups of n_a and the rest; None when there are too many."""
    big_n = scores.size
    if math.comb(big_n, n_a) > EXACT_MAX:
        return None
    idx = np.array(list(itertools.combinations(range(big_n), n_a)), dtype=np.intp)
    w = scores[idx].sum(axis=1)
    center = n_a * scores.mean()
    obs = float(scores[:n_a].sum())
    tol = 1e-9 * max(1.0, float(np.abs(scores).sum()))
    two = float(np.mean(np.abs(w - center) >= abs(obs - center) - tol))
    return two, float(np.mean(w >= obs - tol)), float(np.mean(w <= obs + tol))


def _pooled_two(a: Sample, b: Sample) -> Sample:
    return Sample(np.r_[a.value, b.value], np.r_[a.event, b.event])


def logrank_z(a: Sample, b: Sample) -> float:
    """(O - E) / sqrt(V) of group a (scipy.stats.logrank's signed statistic): > 0 when a fails
    (leaves the plateau) sooner than expected, i.e. a's durations are SHORTER."""
    pooled = Sample(np.r_[a.value, b.value], np.r_[a.event, b.event])
    u, v = _logrank_sums(pooled, np.r_[np.ones(a.n), np.zeros(b.n)])
    return u / math.sqrt(v) if v > 0 else float("nan")


def _log_median_ratio(a: Sample, b: Sample) -> float:
    (ma, ra), (mb, rb) = km_median(a), km_median(b)
    if not (ra or rb) or ma <= 0 or mb <= 0:  # both only bounded below (or a zero): no ratio
        return float("nan")
    return math.log(ma / mb)


def logrank_test(a: Sample, b: Sample) -> StatResult:
    """Log-rank test of a vs b; effect = log(KM median of a / KM median of b) (> 0: a lasts longer).
    p: exact permutation distribution of O - E while there are <= EXACT_MAX splits, else the usual
    normal approximation with the hypergeometric variance (= scipy.stats.logrank).

    A median that is not reached is replaced by its lower bound, the longest follow-up, so the
    effect is then a bound (said in `note`); with both unreached it is undefined."""
    name = "log ratio of KM medians"
    if a.n < 2 or b.n < 2:
        return _nan("log-rank", name, a.n + b.n, "fewer than 2 runs in a group")
    exact = permutation_p(logrank_scores(_pooled_two(a, b)), a.n)
    if exact is not None:
        p = exact[0]
    else:
        z = logrank_z(a, b)
        p = float(2 * stats.norm.sf(abs(z))) if math.isfinite(z) else float("nan")
    effect = _log_median_ratio(a, b)
    lo, hi = _bootstrap([a, b], lambda g: _log_median_ratio(*g))
    unreached = [k for k, s in (("a", a), ("b", b)) if not km_median(s)[1]]
    note = f"median of {' and '.join(unreached)} not reached (bounded by follow-up)" if unreached else ""
    return StatResult("log-rank", name, effect, lo, hi, p, a.n + b.n, note)


def gehan_matrix(x: Sample, y: Sample) -> np.ndarray:
    """G[i, j] = +1 if x_i is known to last longer than y_j, -1 if known to be shorter, else 0.

    x_i > y_j is known when y_j is an event and x_i is later (or at the same time but censored:
    censoring counts as after events at that time). Without censoring, G = sign(x_i - y_j)."""
    xv, xe = x.value[:, None], x.event[:, None]
    yv, ye = y.value[None, :], y.event[None, :]
    longer = ye & ((xv > yv) | ((xv == yv) & ~xe))
    shorter = xe & ((yv > xv) | ((yv == xv) & ~ye))
    return longer.astype(np.int8) - shorter.astype(np.int8)


def gehan_scores(s: Sample) -> np.ndarray:
    """Each run's number of runs it surely outlasts minus the number surely outlasting it (Gehan,
    Mantel 1967). Without censoring: 2 * rank - n - 1, i.e. ordinary ranks, shifted."""
    return gehan_matrix(s, s).sum(axis=1).astype(np.float64)


def gehan_delta(a: Sample, b: Sample) -> float:
    """P(a surely longer) - P(a surely shorter) over all pairs: Cliff's delta when nothing is censored."""
    if a.n == 0 or b.n == 0:
        return float("nan")
    return float(gehan_matrix(a, b).mean())


def gehan_test(a: Sample, b: Sample) -> StatResult:
    """Gehan's generalised Wilcoxon test; effect = gehan_delta. p: exact permutation distribution
    while there are <= EXACT_MAX splits, else the normal approximation with Mantel's permutation
    variance (without censoring: Mann-Whitney's normal approximation, no continuity correction).
    Two-sided p = 2 x the smaller one-sided p."""
    name = "Gehan delta (censoring-aware Cliff's delta)"
    if a.n < 2 or b.n < 2:
        return _nan("Gehan", name, a.n + b.n, "fewer than 2 runs in a group")
    greater, less = _gehan_one_sided(a, b)
    p = min(1.0, 2.0 * min(greater, less))
    lo, hi = _bootstrap([a, b], lambda g: gehan_delta(*g))
    return StatResult("Gehan", name, gehan_delta(a, b), lo, hi, p, a.n + b.n)


def _gehan_one_sided(a: Sample, b: Sample) -> tuple[float, float]:
    """(p for a longer, p for a shorter): exact permutation when small enough, else the normal
    approximation with Mantel's permutation variance."""
    scores = gehan_scores(_pooled_two(a, b))
    exact = permutation_p(scores, a.n)
    if exact is not None:
        return exact[1], exact[2]
    var = a.n * b.n / (scores.size * (scores.size - 1)) * float((scores**2).sum())
    if var == 0:
        return 1.0, 1.0
    z = float(scores[: a.n].sum()) / math.sqrt(var)
    return float(stats.norm.sf(z)), float(stats.norm.cdf(z))


def cliffs_delta_test(a: Sample, b: Sample) -> StatResult:
    """Mann-Whitney U (two-sided; exact for small samples without ties); effect = Cliff's delta of a
    over b. Censored samples go to `gehan_test`, the same effect with censoring respected."""
    if a.censored or b.censored:
        return gehan_test(a, b)
    name = "Cliff's delta"
    if a.n < 2 or b.n < 2:
        return _nan("Mann-Whitney", name, a.n + b.n, "fewer than 2 runs in a group")
    if np.ptp(np.r_[a.value, b.value]) == 0:
        return StatResult("Mann-Whitney", name, 0.0, 0.0, 0.0, 1.0, a.n + b.n, "all values equal")
    p = float(stats.mannwhitneyu(a.value, b.value, alternative="two-sided").pvalue)
    lo, hi = _bootstrap([a, b], lambda g: gehan_delta(*g))
    return StatResult("Mann-Whitney", name, gehan_delta(a, b), lo, hi, p, a.n + b.n, _tied_note(a, b))


def _tied_note(a: Sample, b: Sample) -> str:
    """With ties scipy's Mann-Whitney p is the normal approximation (the registered method keeps it), which
    claims_method.md measured as too permissive for small samples: the exact permutation p is shown beside it
    (a sensitivity figure; the verdict stays on the registered p)."""
    pooled = np.r_[a.value, b.value]
    if np.unique(pooled).size == pooled.size:
        return ""
    exact = permutation_p(stats.rankdata(pooled), a.n)
    if exact is None:
        return ""
    return f"ties: p is the normal approximation (as registered); exact permutation p {exact[0]:.2g}"


# --- trends over ordered levels ---------------------------------------------------------------------


def _pooled(groups: Sequence[Sample]) -> tuple[np.ndarray, Sample]:
    score = np.concatenate([np.full(g.n, float(i)) for i, g in enumerate(groups)])
    return score, Sample(np.concatenate([g.value for g in groups]), np.concatenate([g.event for g in groups]))


def _rho(groups: Sequence[Sample]) -> float:
    """Spearman's rho of level index vs value (values replaced by Gehan scores when censored)."""
    score, s = _pooled(groups)
    y = gehan_scores(s) if s.censored else s.value
    if s.n < 3 or np.ptp(score) == 0 or np.ptp(y) == 0:
        return float("nan")
    rx, ry = stats.rankdata(score), stats.rankdata(y)  # Spearman = Pearson of average ranks (fast in a loop)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    return float((rx * ry).sum() / math.sqrt((rx * rx).sum() * (ry * ry).sum()))


def trend_test(groups: Sequence[Sample]) -> StatResult:
    """Trend of the value over ordered levels (groups in level order; the score is the level's index).

    Effect = Spearman's rho of level vs value (on Gehan scores when censored: rho > 0 means longer
    durations at higher levels). p: Spearman's test, or with censoring the log-rank trend test."""
    groups = [g for g in groups if g.n]
    name = "Spearman rho"
    n = sum(g.n for g in groups)
    if len(groups) < 2 or n < 4:
        return _nan("trend", name, n, "fewer than 2 levels or 4 runs")
    score, s = _pooled(groups)
    rho = _rho(groups)
    lo, hi = _bootstrap(groups, _rho)
    if s.censored:
        u, v = _logrank_sums(s, score)
        p = float(2 * stats.norm.sf(abs(u) / math.sqrt(v))) if v > 0 else float("nan")
        return StatResult("log-rank trend", f"{name} (Gehan scores)", rho, lo, hi, p, n)
    if not math.isfinite(rho):
        return StatResult("Spearman", name, 0.0, 0.0, 0.0, 1.0, n, "constant values")
    return StatResult("Spearman", name, rho, lo, hi, float(stats.spearmanr(score, s.value).pvalue), n)


def _two_sided_from(p_up: float, p_down: float) -> float:
    return min(1.0, 2.0 * min(p_up, p_down))


def _one_sided(a: Sample, b: Sample) -> tuple[float, float]:
    """(p for a > b, p for a < b), one-sided, by the same test as `cliffs_delta_test`."""
    if a.censored or b.censored:
        return _gehan_one_sided(a, b)
    if np.ptp(np.r_[a.value, b.value]) == 0:
        return 1.0, 1.0
    up = float(stats.mannwhitneyu(a.value, b.value, alternative="greater").pvalue)
    down = float(stats.mannwhitneyu(a.value, b.value, alternative="less").pvalue)
    return up, down


def u_shape_test(
    groups: Sequence[Sample], *, shape: int = +1, interior: int | None = None, labels: Sequence[str] | None = None
) -> StatResult:
    """Is an interior level below both ends (shape +1, a U) or above both (shape -1, an inverted U)?

    For interior level j, delta_L and delta_R are the (Gehan/Cliff) deltas of each END over level j
    (> 0: the end is higher). Effect = shape * min(shape * delta_L, shape * delta_R): the weaker of
    the two sides, > 0 for a U and < 0 for an inverted U. p for the predicted shape: the larger of
    the two one-sided p's (both sides must hold: intersection-union test), times the number of
    interior candidates (Bonferroni; j is chosen as the one with the smallest p unless `interior`
    fixes it in advance; ties go to the lowest interior level,
    by KM median). The p for the opposite sign uses the smaller one-sided p against, doubled
    (either side failing suffices). Reported p = 2 * min of the two (two-sided, like every test).
    The note names the interior level chosen: `labels[j]` when given (e.g. "lr=3.0"), else "#j" (0-based)."""
    name = "min delta of the ends over the interior level"
    n = sum(g.n for g in groups)
    k = len(groups)
    if k < 3 or min(g.n for g in groups) < 2:
        return _nan("U-shape", name, n, "fewer than 3 levels or 2 runs in a level")
    candidates = [interior] if interior is not None else list(range(1, k - 1))
    left, right = groups[0], groups[-1]

    def effect(gs: list[Sample], j: int) -> float:
        dl, dr = gehan_delta(gs[0], gs[j]), gehan_delta(gs[-1], gs[j])
        return shape * min(shape * dl, shape * dr)

    best = None
    for j in candidates:
        (lu, ld), (ru, rd) = _one_sided(left, groups[j]), _one_sided(right, groups[j])
        p_pred = max(lu, ru) if shape > 0 else max(ld, rd)
        p_pred = min(1.0, p_pred * len(candidates))
        p_opp = min(1.0, 2.0 * (min(ld, rd) if shape > 0 else min(lu, ru)))
        rank = (p_pred, shape * km_median(groups[j])[0])  # ties: the lowest (shape -1: highest) interior
        if best is None or rank < best[0]:
            best = (rank, j, p_pred, p_opp)
    _, j, p_pred, p_opp = best  # type: ignore[misc]
    lo, hi = _bootstrap(list(groups), lambda gs: effect(gs, j))
    return StatResult(
        "U-shape", name, effect(list(groups), j), lo, hi, _two_sided_from(p_pred, p_opp), n,
        f"interior level {labels[j] if labels is not None else f'#{j}'}",
    )  # fmt: skip


def interaction_test(first: Sequence[Sample], second: Sequence[Sample]) -> StatResult:
    """Trend at the first level of `by` minus the trend at the second (each as in `trend_test`:
    Spearman's rho, on Gehan scores when censored). p: Fisher-z test of the difference of two
    independent rank correlations (se^2 = 1.06 / (n - 3) each, Fieller et al. 1957)."""
    name = "difference of Spearman rhos"
    n1, n2 = sum(g.n for g in first), sum(g.n for g in second)
    r1, r2 = _rho(first), _rho(second)
    if n1 < 4 or n2 < 4 or not (math.isfinite(r1) and math.isfinite(r2)):
        return _nan("interaction", name, n1 + n2, "a trend is undefined (too few runs or constant values)")
    z1, z2 = (math.atanh(float(np.clip(r, -0.999999, 0.999999))) for r in (r1, r2))
    p = float(2 * stats.norm.sf(abs(z1 - z2) / math.sqrt(1.06 / (n1 - 3) + 1.06 / (n2 - 3))))
    k = len(first)
    lo, hi = _bootstrap([*first, *second], lambda gs: _rho(gs[:k]) - _rho(gs[k:]))
    return StatResult("interaction", name, r1 - r2, lo, hi, p, n1 + n2)


# --- multiplicity and the verdict --------------------------------------------------------------------


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values. A NaN p (a test that could not run) stays NaN but still
    counts in the family as p = 1: the family is every pre-registered primary prediction."""
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    filled = np.where(np.isnan(p), 1.0, p)
    order = np.argsort(filled, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * filled[i]))
        adjusted[i] = running
    adjusted[np.isnan(p)] = np.nan
    return adjusted


def verdict(result: StatResult, *, p_adjusted: float, direction: int, min_effect: float) -> str:
    """The one rule for every test (checked in this order):

    1. "no data": the effect, its CI or p could not be computed.
    2. "contradicted (no effect)": the whole 95% CI lies strictly inside (-min_effect, +min_effect),
       significant or not: the effect the claim needs is excluded.
    3. "contradicted": p_adjusted < ALPHA with the effect's sign opposite to `direction`.
    4. "supported": p_adjusted < ALPHA, the effect's sign is `direction` and |effect| >= min_effect.
    5. "inconclusive": anything else (not significant; or significant but smaller than min_effect
       while the CI still reaches it).
    Symmetric: significance is judged on the same Holm-adjusted p in both directions, and the size
    band ±min_effect is applied the same way whatever p is (a significant effect inside the band is
    never "supported", a CI inside the band is "no effect" even when significant)."""
    values = (result.effect, result.ci_low, result.ci_high, p_adjusted)
    if not all(math.isfinite(v) for v in values):
        return NO_DATA
    if -min_effect < result.ci_low and result.ci_high < min_effect:
        return NO_EFFECT
    if p_adjusted < ALPHA and np.sign(result.effect) == -direction:
        return CONTRADICTED
    if p_adjusted < ALPHA and np.sign(result.effect) == direction and abs(result.effect) >= min_effect:
        return SUPPORTED
    return INCONCLUSIVE
