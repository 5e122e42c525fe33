"""The claim statistics on data whose answer is known: hand-computed examples, planted effects, no effect."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from study.analysis import stats as st
from study.analysis.stats import Sample, StatResult


def _noise(n: int, seed: int, scale: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, scale, n)


def test_kaplan_meier_and_median_by_hand() -> None:
    s = Sample.of([1, 2, 2, 3, 5], [True, True, False, True, False])
    times, surv = st.kaplan_meier(s)
    # t=1: 5 at risk, 1 event -> 0.8; t=2: 4 at risk, 1 event -> 0.6; t=3: 2 at risk (the run censored
    # at 2 has left), 1 event -> 0.3
    assert times.tolist() == [1, 2, 3]
    assert surv == pytest.approx([0.8, 0.6, 0.3])
    assert st.km_median(s) == (3.0, True)
    assert st.km_median(Sample.of([400, 400, 10], [False, False, True])) == (400.0, False)


def test_logrank_by_hand_and_against_scipy() -> None:
    a = Sample.of([1, 3], [True, True])
    b = Sample.of([2, 4], [True, False])
    # t=1: O-E = 1 - 2/4, V = 1/4; t=2: O-E = 0 - 1/3, V = 2/9; t=3: O-E = 1 - 1/2, V = 1/4
    assert st.logrank_z(a, b) == pytest.approx((2 / 3) / math.sqrt(13 / 18))
    pooled = Sample.of([1, 3, 2, 4], [True, True, True, False])
    assert st.logrank_scores(pooled)[:2].sum() == pytest.approx(2 / 3)  # O - E of a as a sum of scores
    rng = np.random.default_rng(3)
    for _ in range(5):
        ta, tb = rng.integers(1, 30, 12), rng.integers(5, 40, 9)
        ea, eb = rng.random(12) < 0.7, rng.random(9) < 0.6
        ours = st.logrank_z(Sample.of(ta, ea), Sample.of(tb, eb))
        ref = sps.logrank(
            sps.CensoredData(uncensored=ta[ea], right=ta[~ea]), sps.CensoredData(uncensored=tb[eb], right=tb[~eb])
        )
        assert ours == pytest.approx(float(ref.statistic))


def test_logrank_test_effect_is_log_median_ratio_with_bounds_for_unreached_medians() -> None:
    long = Sample.of([400, 390, 410, 405, 398], [True] * 5)
    short = Sample.of([40, 42, 38, 41, 45], [True] * 5)
    r = st.logrank_test(long, short)
    assert r.effect == pytest.approx(math.log(400 / 41)) and r.p_value < 0.01
    assert r.ci_low <= r.effect <= r.ci_high and r.ci_low > 0
    stuck = Sample.of([400] * 5, [False] * 5)  # never left the plateau in 400 epochs
    r = st.logrank_test(stuck, short)
    assert r.effect == pytest.approx(math.log(400 / 41)) and "not reached" in r.note
    both = st.logrank_test(stuck, stuck)
    assert math.isnan(both.effect) and st.verdict(both, p_adjusted=1.0, direction=1, min_effect=0.1) == st.NO_DATA


def test_gehan_reduces_to_ranks_cliff_and_mann_whitney_without_censoring() -> None:
    a, b = _noise(15, 1) + 0.8, _noise(12, 2)
    sa, sb = Sample.of(a), Sample.of(b)
    pooled = np.r_[a, b]
    assert st.gehan_scores(Sample.of(pooled)) == pytest.approx(2 * sps.rankdata(pooled) - pooled.size - 1)
    u = sps.mannwhitneyu(a, b, method="asymptotic", use_continuity=False)
    r = st.gehan_test(sa, sb)
    assert r.p_value == pytest.approx(float(u.pvalue))
    assert r.effect == pytest.approx(2 * float(u.statistic) / (15 * 12) - 1)  # Cliff's delta


def test_small_samples_use_the_exact_permutation_distribution() -> None:
    # 3 vs 3, perfectly separated: 1 of the C(6, 3) = 20 splits is as extreme one way, so p = 2/20
    hi, lo = Sample.of([4.0, 5.0, 6.0]), Sample.of([1.0, 2.0, 3.0])
    assert st.gehan_test(hi, lo).p_value == pytest.approx(0.1)
    assert st.cliffs_delta_test(hi, lo).p_value == pytest.approx(0.1)  # scipy's exact Mann-Whitney agrees
    stuck, quick = Sample.of([400] * 3, [False] * 3), Sample.of([10, 20, 30])
    assert st.logrank_test(stuck, quick).p_value == pytest.approx(0.1)
    assert st.permutation_p(np.array([3.0, 2.0, 1.0, 0.0]), 2) == pytest.approx((2 / 6, 1 / 6, 1.0))
    assert st.permutation_p(np.zeros(40), 20) is None  # C(40, 20) splits: normal approximation instead


def test_gehan_counts_only_pairs_whose_order_is_known() -> None:
    a = Sample.of([10, 400], [True, False])  # the second never left (censored at 400)
    b = Sample.of([5, 500], [True, False])
    g = st.gehan_matrix(a, b)
    # 10 > 5 known; 10 < 500+ known; 400+ > 5 known; 400+ vs 500+ unknown
    assert g.tolist() == [[1, -1], [1, 0]]
    assert st.gehan_delta(a, b) == pytest.approx(0.25)


def test_cliffs_delta_test_planted_shift_and_none() -> None:
    r = st.cliffs_delta_test(Sample.of(_noise(20, 1) + 1.5), Sample.of(_noise(20, 2)))
    assert r.effect > 0.5 and r.p_value < 0.001 and r.ci_low < r.effect < r.ci_high
    assert st.cliffs_delta_test(Sample.of([1.0, 2.0]), Sample.of([0.0, 0.5])).effect == 1.0
    same = st.cliffs_delta_test(Sample.of([1.0] * 3), Sample.of([1.0] * 3))
    assert (same.effect, same.p_value) == (0.0, 1.0)
    censored = st.cliffs_delta_test(Sample.of([400] * 4, [False] * 4), Sample.of([10, 20, 30, 40]))
    assert censored.test == "Gehan" and censored.effect == 1.0


def test_trend_planted_absent_and_censored() -> None:
    up = [Sample.of(_noise(5, i, 0.3) + i) for i in range(4)]
    r = st.trend_test(up)
    assert r.test == "Spearman" and r.effect > 0.8 and r.p_value < 1e-4 and r.ci_low > 0.5
    ref = sps.spearmanr(np.repeat(np.arange(4), 5), np.concatenate([g.value for g in up]))
    assert r.effect == pytest.approx(float(ref.statistic)) and r.p_value == pytest.approx(float(ref.pvalue))
    flat = st.trend_test([Sample.of(_noise(5, 100 + i)) for i in range(4)])
    assert abs(flat.effect) < 0.5 and flat.p_value > 0.05
    # plateau falls with the level; the lowest level never leaves it in 400 epochs
    plateaus = [Sample.of([400] * 5, [False] * 5)] + [Sample.of(300 / (i + 1) + _noise(5, i, 5.0)) for i in range(1, 4)]
    c = st.trend_test(plateaus)
    assert c.test == "log-rank trend" and c.effect < -0.8 and c.p_value < 1e-3


def _issue_lr_sweep(seeds: int = 5) -> list[Sample]:
    """The issue's lr sweep at the article baseline: plateau 400+ at lr 0.03, ~400 at 0.1, ~42 at 1,
    ~17 at 3, 400+ at 10 and 30 (400 epochs run)."""
    stuck = Sample.of([400] * seeds, [False] * seeds)
    return [
        stuck,
        Sample.of(np.minimum(395 + _noise(seeds, 1, 3.0), 399)),
        Sample.of(42 + _noise(seeds, 2, 3.0)),
        Sample.of(17 + _noise(seeds, 3, 2.0)),
        stuck,
        stuck,
    ]


def test_u_shape_sees_the_lr_sweep_and_rejects_a_monotone_one() -> None:
    r = st.u_shape_test(_issue_lr_sweep())
    assert r.effect == 1.0 and r.p_value < 0.05 and "#3" in r.note
    assert st.verdict(r, p_adjusted=r.p_value, direction=1, min_effect=0.3) == st.SUPPORTED
    monotone = [Sample.of(_noise(5, i, 0.2) + 10 - 2 * i) for i in range(5)]
    m = st.u_shape_test(monotone)
    assert m.effect < -0.9 and m.p_value < 0.05
    assert st.verdict(m, p_adjusted=m.p_value, direction=1, min_effect=0.3) == st.CONTRADICTED
    cap = [Sample.of(-(s.value) if not s.censored else s.value) for s in monotone]
    assert st.u_shape_test(cap, shape=-1).effect > 0.9  # a rising curve is no cap: effect has the wrong sign


def test_u_shape_bonferroni_over_interior_candidates() -> None:
    groups = [Sample.of(_noise(6, i, 0.5) + v) for i, v in enumerate([3, 1, 1, 1, 3])]
    free = st.u_shape_test(groups)
    fixed = st.u_shape_test(groups, interior=int(free.note.split("#")[1]))
    assert free.p_value == pytest.approx(min(1.0, 3 * fixed.p_value)) or free.p_value == 1.0


def test_interaction_planted_and_absent() -> None:
    strong = [Sample.of(_noise(5, i, 0.3) + i) for i in range(4)]
    flat = [Sample.of(_noise(5, 20 + i)) for i in range(4)]
    r = st.interaction_test(strong, flat)
    assert r.effect > 0.5 and r.p_value < 0.05 and r.ci_low > 0
    same = st.interaction_test(strong, [Sample.of(_noise(5, 40 + i, 0.3) + i) for i in range(4)])
    assert same.p_value > 0.05


def test_holm_known_example_and_nan() -> None:
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> monotone: 0.06
    assert st.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    adj = st.holm([0.01, float("nan"), 0.2])
    assert adj[0] == pytest.approx(0.03) and math.isnan(adj[1]) and adj[2] == pytest.approx(0.4)
    assert st.holm([0.5, 0.9]).max() <= 1.0


def _r(effect: float, lo: float, hi: float, p: float = 0.01) -> StatResult:
    return StatResult("t", "e", effect, lo, hi, p, 10)


@pytest.mark.parametrize(
    ("result", "p_adj", "direction", "expected"),
    [
        (_r(0.6, 0.3, 0.9), 0.01, +1, st.SUPPORTED),
        (_r(-0.6, -0.9, -0.3), 0.01, -1, st.SUPPORTED),
        (_r(0.6, 0.3, 0.9), 0.01, -1, st.CONTRADICTED),  # significant, wrong way
        (_r(0.6, 0.3, 0.9), 0.2, +1, st.INCONCLUSIVE),  # right way, not significant after Holm
        (_r(0.05, 0.01, 0.09), 0.001, +1, st.NO_EFFECT),  # significant but inside the band: no effect
        (_r(0.02, -0.08, 0.09), 0.6, +1, st.NO_EFFECT),  # non-significant, same band: same verdict
        (_r(-0.05, -0.09, -0.01), 0.001, +1, st.NO_EFFECT),  # wrong way but inside the band
        (_r(0.07, 0.02, 0.4), 0.01, +1, st.INCONCLUSIVE),  # significant, below min_effect, CI reaches it
        (_r(0.1, -0.5, 0.7), 0.6, +1, st.INCONCLUSIVE),
        (_r(float("nan"), 0.0, 1.0), 0.01, +1, st.NO_DATA),
        (_r(0.6, 0.3, 0.9), float("nan"), +1, st.NO_DATA),
    ],
)
def test_verdict_rule(result: StatResult, p_adj: float, direction: int, expected: str) -> None:
    assert st.verdict(result, p_adjusted=p_adj, direction=direction, min_effect=0.1) == expected


def test_verdict_is_mirror_symmetric() -> None:
    r, mirrored = _r(0.5, 0.2, 0.8), _r(-0.5, -0.8, -0.2)
    for p in (0.001, 0.3):
        assert st.verdict(r, p_adjusted=p, direction=1, min_effect=0.3) == st.verdict(
            mirrored, p_adjusted=p, direction=-1, min_effect=0.3
        )


def test_bootstrap_is_seeded() -> None:
    a, b = Sample.of(_noise(8, 1) + 1), Sample.of(_noise(8, 2))
    assert st.cliffs_delta_test(a, b) == st.cliffs_delta_test(a, b)
