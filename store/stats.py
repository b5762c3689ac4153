"""The statistics behind the canary verdicts, in plain Python.

* Rates: Wilson score interval for one proportion; Newcombe's hybrid score
  interval (his method 10) for the difference of two; a pooled two-proportion
  z-test.
* Distributions (latency, cost): the Mann-Whitney U test with the normal
  approximation, tie correction and continuity correction — what Kayenta's
  classifier uses, and what ``scipy.stats.mannwhitneyu(method="asymptotic")``
  computes. The tests check these against scipy and hand-worked cases.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from collections import Counter
from statistics import NormalDist
from collections.abc import Sequence

_NORMAL = NormalDist()


def z_for(confidence: float) -> float:
    """Two-sided critical value, e.g. 1.96 for 0.95."""
    return _NORMAL.inv_cdf(0.5 + confidence / 2)


def two_sided_p(z: float) -> float:
    return min(1.0, math.erfc(abs(z) / math.sqrt(2)))


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for k successes out of n. (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    z = z_for(confidence)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(k1: int, n1: int, k2: int, n2: int, confidence: float = 0.95) -> tuple[float, float]:
    """Interval for p2 - p1 (second minus first) by Newcombe's hybrid score method."""
    p1 = k1 / n1 if n1 else 0.0
    p2 = k2 / n2 if n2 else 0.0
    l1, u1 = wilson(k1, n1, confidence)
    l2, u2 = wilson(k2, n2, confidence)
    d = p2 - p1
    lower = d - math.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2)
    upper = d + math.sqrt((u2 - p2) ** 2 + (p1 - l1) ** 2)
    return max(-1.0, lower), min(1.0, upper)


@dataclass(frozen=True)
class ZTest:
    z: float
    p: float


def two_proportion_z(k1: int, n1: int, k2: int, n2: int) -> ZTest:
    """Pooled two-proportion z-test of p2 vs p1; z > 0 when the second is higher."""
    if n1 <= 0 or n2 <= 0:
        return ZTest(0.0, 1.0)
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return ZTest(0.0, 1.0)  # both all-0 or all-1: no evidence of a difference
    z = (k2 / n2 - k1 / n1) / se
    return ZTest(z, two_sided_p(z))


@dataclass(frozen=True)
class MannWhitney:
    u1: float  # U statistic of the first sample
    u2: float
    z: float  # > 0 when the second sample tends to be larger
    p: float  # two-sided


def mann_whitney(x: Sequence[float], y: Sequence[float], *, continuity: bool = True) -> MannWhitney:
    """Two-sided Mann-Whitney U test, normal approximation with tie correction.

    Matches ``scipy.stats.mannwhitneyu(x, y, method="asymptotic",
    use_continuity=continuity)`` (its statistic is our ``u1``). One sort
    of the pooled values; ties get their average rank.
    """
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        return MannWhitney(0.0, 0.0, 0.0, 1.0)
    n = n1 + n2
    # One pass over the distinct values in order: each gets the average of
    # the ranks its t copies occupy; r1 adds that rank once per copy in x.
    cx, cy = Counter(x), Counter(y)
    r1 = 0.0
    tie_term = 0.0
    pos = 0
    for value in sorted(cx.keys() | cy.keys()):
        a = cx.get(value, 0)
        t = a + cy.get(value, 0)
        if a:
            r1 += a * (pos + (t + 1) / 2)
        if t > 1:
            tie_term += t * t * t - t
        pos += t
    u1 = r1 - n1 * (n1 + 1) / 2
    u2 = n1 * n2 - u1
    mu = n1 * n2 / 2
    var = n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1)))
    if var <= 0:
        return MannWhitney(u1, u2, 0.0, 1.0)  # all values equal
    sd = math.sqrt(var)
    big = max(u1, u2)
    z_abs = (big - mu - (0.5 if continuity else 0.0)) / sd
    p = min(1.0, 2 * _NORMAL.cdf(-z_abs)) if z_abs > 0 else 1.0
    # Sign: the second sample is larger when its U (pairs where y > x) is bigger.
    z = z_abs if u2 > u1 else -z_abs if u1 > u2 else 0.0
    return MannWhitney(u1, u2, z, p)


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) of already sorted values, linear interpolation (numpy's default)."""
    n = len(sorted_values)
    if n == 0:
        return None
    pos = (n - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    frac = pos - lo
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac


# -- always-valid inference (for a verdict that is watched live) ---------------
#
# A fixed-horizon test (the z-test, Mann-Whitney U) keeps its error rate only
# when it is looked at once. The Canary screen recomputes its verdict on every
# batch; with fixed-horizon tests an identical canary is rolled back in about
# half of all runs (bench/canary_peeking.py). The mixture sequential
# probability ratio test (mSPRT; Robbins 1970, Johari et al. 2017, "Always
# Valid Inference") has a type I error of at most alpha however often and
# whenever it is looked at, and its inversion is a confidence *sequence*: an
# interval that holds at every moment at once.
#
# For an estimate ``d`` of a difference with (estimated) variance ``v`` and a
# normal mixing distribution N(0, tau2) over the alternative:
#
#   Lambda = sqrt(v / (v + tau2)) * exp(tau2 * d^2 / (2 v (v + tau2)))
#
# H0 (no difference) is rejected once Lambda >= 1/alpha; the always-valid
# p-value is min(1, 1/Lambda), and the confidence sequence is
# d +- mixture_half_width(v, tau2, alpha). With a plug-in variance this is
# asymptotically valid (Waudby-Smith et al. 2021, time-uniform CLT).
# ``tau2`` tunes where the sequence is tightest: the square of the smallest
# effect that matters (the metric's tolerance) is a sound default.


def mixture_half_width(v: float, tau2: float, alpha: float) -> float:
    """Half-width of the normal-mixture confidence sequence for an estimate of variance ``v``."""
    if v <= 0:
        return 0.0
    return math.sqrt(v * (v + tau2) / tau2 * (2 * math.log(1 / alpha) + math.log((v + tau2) / v)))


def mixture_p(d: float, v: float, tau2: float) -> float:
    """Always-valid p-value of H0: difference 0, for estimate ``d`` with variance ``v``."""
    if v <= 0:
        return 0.0 if d else 1.0
    log_lambda = 0.5 * math.log(v / (v + tau2)) + tau2 * d * d / (2 * v * (v + tau2))
    return 1.0 if log_lambda <= 0 else math.exp(-min(log_lambda, 700.0))


def rate_diff_variance(k1: int, n1: int, k2: int, n2: int) -> float:
    """Variance of p2 - p1, each rate shrunk half a success towards 1/2 so that 0/n is not certainty."""
    p1 = (k1 + 0.5) / (n1 + 1)
    p2 = (k2 + 0.5) / (n2 + 1)
    return p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2


def mean_var(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample variance (0 for fewer than two values)."""
    n = len(values)
    if not n:
        return 0.0, 0.0
    mean = math.fsum(values) / n
    if n < 2:
        return mean, 0.0
    return mean, math.fsum((x - mean) ** 2 for x in values) / (n - 1)


def needed_scale(v: float, tau2: float, alpha: float, margin: float, *, limit: float = 1e6) -> float | None:
    """How many times today's data (``v`` shrinking as 1/f) the sequence needs to be narrower than ``margin``.

    None when even ``limit`` times the data would not do (the estimate sits on the boundary).
    """
    if margin <= 0:
        return None
    if mixture_half_width(v, tau2, alpha) < margin:
        return 1.0
    if mixture_half_width(v / limit, tau2, alpha) >= margin:
        return None
    lo, hi = 1.0, limit
    while hi / lo > 1.01:
        mid = math.sqrt(lo * hi)
        if mixture_half_width(v / mid, tau2, alpha) < margin:
            hi = mid
        else:
            lo = mid
    return hi
