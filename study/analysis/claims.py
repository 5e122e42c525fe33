"""LEGACY: the exploratory claims screen of the random-search `reference` study (issue 3).

Superseded by the designed experiments (study.design_spec, study.analysis.design_claims), whose
table is the project's answer. Kept only so that the report and the README's `reference` table keep
working until they switch. Known problems (issue 10 review), not fixed here: row 5a reads the
article backwards (it predicts a plateau from too LARGE a rate); rows 3a/3b test 1/sqrt(fan_in), not
the article's 1/n rule, and only saturation; rows 2* never test an all-positive init and confound
size with centring; claim 1's headline (hidden size x small lr) has no uncensored row; the verdict
rule below is asymmetric and there is no multiple-comparison correction. Row 5b reads the
`oscillation` stored with each trial: version 1 (detrended std) in `reference`, version 2 (the
up-movement ratio, mnist_fc.measures) in studies made since.

The article's claims, each tested on a study's COMPLETE trials with a rank statistic and a verdict.

Every verdict is computed, never written by hand. The rules (quoted in the report and README):
- a claim predicts the *sign* of an effect (or, for input statistics, any difference);
- "supported": p < ALPHA and the effect has the predicted sign;
- "contradicted": p < ALPHA with the opposite sign, or the whole 95% CI lies within ±NEGLIGIBLE
  (the effect the claim needs is absent, not just unmeasured);
- "not enough data": too few trials (< MIN_N overall or per group), or an effect that is neither
  significant nor excluded.
Rank statistics (Spearman's rho, Cliff's delta from Mann-Whitney U, Kruskal-Wallis) because the
measures are skewed and the plateau is censored at the epochs run (censored values tie at the top).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from study.analysis.frames import complete

ALPHA = 0.05  # per-claim significance level (no multiple-comparison correction: each claim stands alone)
MIN_N = 10  # fewer trials (or fewer per group) than this: not enough data
NEGLIGIBLE = 0.1  # |rho| or |delta| below this is no effect worth the claim
N_BOOT = 2000  # bootstrap resamples for CIs of deltas and rho differences
BOOT_SEED = 0  # fixed, so the table is exactly reproducible
SUPPORTED, CONTRADICTED, NOT_ENOUGH = "supported", "contradicted", "not enough data"


@dataclass(frozen=True)
class TestResult:
    statistic: str  # e.g. "Spearman rho"
    value: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int  # trials used
    min_group: int  # smallest group (n itself for correlations)


def _clean(*cols: pd.Series) -> list[np.ndarray]:
    frame = pd.concat([pd.to_numeric(c, errors="coerce").astype(float) for c in cols], axis=1)
    frame = frame.replace([np.inf, -np.inf], np.nan).dropna()
    return [frame.iloc[:, i].to_numpy() for i in range(len(cols))]


def _nan_result(statistic: str, n: int, min_group: int) -> TestResult:
    nan = float("nan")
    return TestResult(statistic, nan, nan, nan, nan, n, min_group)


def spearman(x: pd.Series, y: pd.Series) -> TestResult:
    """Spearman's rho with a Fisher-z 95% CI (se = sqrt(1.06 / (n - 3)), Fieller et al. 1957)."""
    xs, ys = _clean(x, y)
    n = len(xs)
    if n < 4 or np.ptp(xs) == 0 or np.ptp(ys) == 0:
        return _nan_result("Spearman rho", n, n)
    res = stats.spearmanr(xs, ys)
    rho = float(res.statistic)
    z, half = math.atanh(max(min(rho, 0.999999), -0.999999)), 1.96 * math.sqrt(1.06 / (n - 3))
    return TestResult("Spearman rho", rho, math.tanh(z - half), math.tanh(z + half), float(res.pvalue), n, n)


def _cliffs_delta(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """P(a > b) - P(a < b) along the last axis, via Mann-Whitney U (vectorised over leading axes)."""
    u = stats.mannwhitneyu(a, b, axis=-1, method="asymptotic").statistic
    return 2.0 * u / (a.shape[-1] * b.shape[-1]) - 1.0


def cliffs_delta(a: pd.Series, b: pd.Series) -> TestResult:
    """Cliff's delta of a over b (Mann-Whitney), with a seeded bootstrap percentile 95% CI."""
    (xa,), (xb,) = _clean(a), _clean(b)
    n, small = len(xa) + len(xb), min(len(xa), len(xb))
    if small < 2 or np.ptp(np.concatenate([xa, xb])) == 0:
        return _nan_result("Cliff's delta", n, small)
    p = float(stats.mannwhitneyu(xa, xb, method="asymptotic").pvalue)
    rng = np.random.default_rng(BOOT_SEED)
    ra = xa[rng.integers(0, len(xa), (N_BOOT, len(xa)))]
    rb = xb[rng.integers(0, len(xb), (N_BOOT, len(xb)))]
    boot = _cliffs_delta(ra, rb)
    lo, hi = np.nanpercentile(boot, [2.5, 97.5])
    return TestResult("Cliff's delta", float(_cliffs_delta(xa, xb)), float(lo), float(hi), p, n, small)


def _rho(x: np.ndarray, y: np.ndarray) -> float:
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(stats.spearmanr(x, y).statistic)


def _rows_spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row pair (Pearson of average ranks); NaN for a constant row."""
    rx, ry = stats.rankdata(x, axis=1), stats.rankdata(y, axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    denom = np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rx * ry).sum(axis=1) / denom


def rho_difference(x1: pd.Series, y1: pd.Series, x2: pd.Series, y2: pd.Series) -> TestResult:
    """rho(x1, y1) - rho(x2, y2) for two independent groups: Fisher-z test, bootstrap 95% CI."""
    a1, b1 = _clean(x1, y1)
    a2, b2 = _clean(x2, y2)
    n, small = len(a1) + len(a2), min(len(a1), len(a2))
    r1, r2 = (_rho(a1, b1), _rho(a2, b2)) if small >= 4 else (float("nan"), float("nan"))
    if not (math.isfinite(r1) and math.isfinite(r2)):
        return _nan_result("rho difference", n, small)
    z = (math.atanh(np.clip(r1, -0.999999, 0.999999)) - math.atanh(np.clip(r2, -0.999999, 0.999999))) / math.sqrt(
        1.06 / (len(a1) - 3) + 1.06 / (len(a2) - 3)
    )
    p = float(2 * stats.norm.sf(abs(z)))
    rng = np.random.default_rng(BOOT_SEED)
    i1 = rng.integers(0, len(a1), (N_BOOT, len(a1)))
    i2 = rng.integers(0, len(a2), (N_BOOT, len(a2)))
    boot = _rows_spearman(a1[i1], b1[i1]) - _rows_spearman(a2[i2], b2[i2])
    lo, hi = np.nanpercentile(boot, [2.5, 97.5])
    return TestResult("rho difference", r1 - r2, float(lo), float(hi), p, n, small)


def kruskal(values: pd.Series, groups: pd.Series) -> TestResult:
    """Kruskal-Wallis across groups; effect size epsilon^2 = H / (n - 1) (no CI)."""
    frame = pd.DataFrame({"v": pd.to_numeric(values, errors="coerce"), "g": groups}).dropna()
    parts = [g["v"].to_numpy(dtype=float) for _, g in frame.groupby("g", observed=True)]
    n = len(frame)
    small = min((len(p) for p in parts), default=0)
    if len(parts) < 2 or small < 2 or np.ptp(frame["v"].to_numpy(dtype=float)) == 0:
        return _nan_result("Kruskal-Wallis epsilon²", n, small)
    res = stats.kruskal(*parts)
    nan = float("nan")
    return TestResult("Kruskal-Wallis epsilon²", float(res.statistic) / (n - 1), nan, nan, float(res.pvalue), n, small)


def verdict(result: TestResult, expected_sign: int) -> str:
    """See the module docstring; expected_sign is +1, -1, or 0 for "any difference"."""
    if result.min_group < MIN_N or not math.isfinite(result.value) or not math.isfinite(result.p_value):
        return NOT_ENOUGH
    if result.p_value < ALPHA:
        if expected_sign == 0 or np.sign(result.value) == expected_sign:
            return SUPPORTED
        return CONTRADICTED
    if expected_sign != 0 and -NEGLIGIBLE < result.ci_low and result.ci_high < NEGLIGIBLE:
        return CONTRADICTED
    return NOT_ENOUGH


@dataclass(frozen=True)
class Claim:
    id: str
    claim: str  # the article's statement, paraphrased
    measure: str  # what is compared, on which trials
    expected: str  # the prediction in words
    expected_sign: int
    test: Callable[[pd.DataFrame], TestResult]  # gets the COMPLETE trials


def _no_bn(df: pd.DataFrame) -> pd.DataFrame:
    return df[~df["batchnorm"].astype(bool)]


def _plain(df: pd.DataFrame) -> pd.DataFrame:
    """No BatchNorm and no fan-in scaling: the article's starting network."""
    d = _no_bn(df)
    return d[~d["fan_in_scaling"].astype(bool)]


LR_SPLIT = 0.1  # the article's learning rate: "small" lr is below it
NARROW_STD = 0.01  # init std below this counts as "too narrow"
WIDE = 256  # n_units_l1 from here on counts as a wide first hidden layer
MODERATE_STD = (0.01, 0.3)


def _claim_1c(df: pd.DataFrame) -> TestResult:
    d = _plain(df)
    lo, hi = d[d["lr"] < LR_SPLIT], d[d["lr"] >= LR_SPLIT]
    return rho_difference(lo["n_units_l1"], lo["plateau_epochs"], hi["n_units_l1"], hi["plateau_epochs"])


def _claim_2c(df: pd.DataFrame) -> TestResult:
    d = _no_bn(df)
    d = d[d["init_std"] >= NARROW_STD]
    off = d["init_mean"].abs() > d["init_std"]
    return cliffs_delta(d.loc[off, "value"], d.loc[~off, "value"])


def _claim_2d(df: pd.DataFrame) -> TestResult:
    d = _no_bn(df)
    narrow = d[d["init_std"] < NARROW_STD]
    moderate = d[(d["init_std"] >= MODERATE_STD[0]) & (d["init_std"] <= MODERATE_STD[1])]
    return cliffs_delta(narrow["value"], moderate["value"])


def _claim_3a(df: pd.DataFrame) -> TestResult:
    d = _no_bn(df)
    scaled = d["fan_in_scaling"].astype(bool)
    return cliffs_delta(d.loc[scaled, "saturation_init"], d.loc[~scaled, "saturation_init"])


def _claim_3b(df: pd.DataFrame) -> TestResult:
    # The widest nets are where an unscaled init saturates layer 2 (its fan-in is n_units_l1); "for any
    # hidden size" holds if scaling removes the saturation there too. (A difference of rank correlations
    # is undefined here: with scaling, saturation is often 0 for every size.)
    d = _no_bn(df)
    d = d[d["n_units_l1"] >= WIDE]
    scaled = d["fan_in_scaling"].astype(bool)
    return cliffs_delta(d.loc[scaled, "saturation_init_l2"], d.loc[~scaled, "saturation_init_l2"])


def _claim_6(column: str) -> Callable[[pd.DataFrame], TestResult]:
    def test(df: pd.DataFrame) -> TestResult:
        bn = df["batchnorm"].astype(bool)
        return cliffs_delta(df.loc[bn, column], df.loc[~bn, column])

    return test


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "1a",
        "More hidden units → larger pre-activations wx+b → sigmoid saturation",
        "n_units_l1 vs saturation of layer 2 at init (its fan-in is n_units_l1); no BN, no fan-in scaling",
        "rho > 0",
        +1,
        lambda df: spearman(_plain(df)["n_units_l1"], _plain(df)["saturation_init_l2"]),
    ),
    Claim(
        "1b",
        "Saturation → small early gradients → a long initial plateau",
        "saturation at init vs plateau length; no BN",
        "rho > 0",
        +1,
        lambda df: spearman(_no_bn(df)["saturation_init"], _no_bn(df)["plateau_epochs"]),
    ),
    Claim(
        "1c",
        "The hidden-size plateau is worse when the learning rate is small",
        f"rho(n_units_l1, plateau) for lr < {LR_SPLIT} minus the same for lr ≥ {LR_SPLIT}; no BN, no fan-in scaling",
        "difference > 0",
        +1,
        _claim_1c,
    ),
    Claim(
        "2a",
        "Larger init values → saturation",
        "init std vs saturation at init; no BN, no fan-in scaling",
        "rho > 0",
        +1,
        lambda df: spearman(_plain(df)["init_std"], _plain(df)["saturation_init"]),
    ),
    Claim(
        "2b",
        "Larger init values → slow start",
        "init std vs plateau length; no BN, no fan-in scaling",
        "rho > 0",
        +1,
        lambda df: spearman(_plain(df)["init_std"], _plain(df)["plateau_epochs"]),
    ),
    Claim(
        "2c",
        "An init that is not zero-centred causes trouble",
        f"val accuracy, abs(init mean) > init std (most weights share a sign) vs not; no BN, init std ≥ {NARROW_STD}",
        "delta < 0",
        -1,
        _claim_2c,
    ),
    Claim(
        "2d",
        "Too narrow an init spread (weights nearly equal) causes trouble",
        f"val accuracy, init std < {NARROW_STD} vs {MODERATE_STD[0]}–{MODERATE_STD[1]}; no BN",
        "delta < 0",
        -1,
        _claim_2d,
    ),
    Claim(
        "3a",
        "Scaling the init by the layer width keeps wx+b small",
        "saturation at init, fan-in scaling vs none; no BN",
        "delta < 0",
        -1,
        _claim_3a,
    ),
    Claim(
        "3b",
        "… for any hidden size",
        f"layer-2 saturation at init of wide nets (n_units_l1 ≥ {WIDE}), fan-in scaling vs none; no BN",
        "delta < 0",
        -1,
        _claim_3b,
    ),
    Claim(
        "4",
        "The input's statistics (mean and variance) matter",
        "val accuracy across the 5 input normalisations; no BN",
        "groups differ",
        0,
        lambda df: kruskal(_no_bn(df)["value"], _no_bn(df)["normalization"]),
    ),
    Claim(
        "5a",
        "Too small a learning rate → the loss does not move at first",
        "lr vs plateau length; all trials",
        "rho < 0",
        -1,
        lambda df: spearman(df["lr"], df["plateau_epochs"]),
    ),
    Claim(
        "5b",
        "Too large a learning rate → oscillation late in training",
        "lr vs late-training oscillation; all trials (diverged ones have no curve end and are not COMPLETE)",
        "rho > 0",
        +1,
        lambda df: spearman(df["lr"], df["oscillation"]),
    ),
    Claim(
        "6a",
        "BatchNorm makes training much faster",
        "plateau length, BN vs no BN",
        "delta < 0",
        -1,
        _claim_6("plateau_epochs"),
    ),
    Claim(
        "6b",
        "BatchNorm makes training better",
        "val accuracy, BN vs no BN",
        "delta > 0",
        +1,
        _claim_6("value"),
    ),
)

TABLE_COLUMNS = (
    "id",
    "claim",
    "measure",
    "expected",
    "statistic",
    "value",
    "ci_low",
    "ci_high",
    "p_value",
    "n",
    "min_group",
    "verdict",
)


def evaluate_claims(trials: pd.DataFrame, claims: tuple[Claim, ...] = CLAIMS) -> pd.DataFrame:
    """The claims table for a trials frame (see frames.trials_frame); only COMPLETE trials are used."""
    df = complete(trials)
    rows = []
    for c in claims:
        r = c.test(df) if len(df) else _nan_result("", 0, 0)
        rows.append(
            {
                "id": c.id,
                "claim": c.claim,
                "measure": c.measure,
                "expected": c.expected,
                "statistic": r.statistic,
                "value": r.value,
                "ci_low": r.ci_low,
                "ci_high": r.ci_high,
                "p_value": r.p_value,
                "n": r.n,
                "min_group": r.min_group,
                "verdict": verdict(r, c.expected_sign),
            }
        )
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


def fmt_signed(x: float, digits: int = 2) -> str:
    """A signed number for a claims table cell; an em dash when there is none."""
    return "—" if not math.isfinite(x) else f"{x:+.{digits}f}"


def fmt_p(p: float) -> str:
    """A p-value for a claims table cell: '<0.001' below that, an em dash when there is none."""
    if not math.isfinite(p):
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def claims_markdown(table: pd.DataFrame) -> str:
    """The claims table as Markdown (pasted into the README; a test checks it matches)."""
    lines = [
        "| # | claim | measure (trials) | expected | statistic [95% CI] | p | n | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in table.itertuples(index=False):
        ci = "" if not math.isfinite(r.ci_low) else f" [{fmt_signed(r.ci_low)}, {fmt_signed(r.ci_high)}]"
        stat = f"{r.statistic} {fmt_signed(r.value)}{ci}" if r.statistic else "—"
        lines.append(
            f"| {r.id} | {r.claim} | {r.measure} | {r.expected} | {stat} | {fmt_p(r.p_value)} | {r.n} | "
            f"**{r.verdict}** |"
        )
    return "\n".join(lines) + "\n"
