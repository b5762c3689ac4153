"""store.stats against scipy/numpy and against published, hand-worked values."""

from __future__ import annotations

import random

import numpy as np
import pytest
from scipy import stats as sp

from agentdeck.store import stats


@pytest.mark.parametrize("k,n", [(0, 1), (1, 1), (0, 10), (5, 10), (3, 7), (17, 86), (7, 317), (999, 1000)])
def test_wilson_matches_scipy(k, n):
    ref = sp.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert stats.wilson(k, n) == pytest.approx((ref.low, ref.high), abs=1e-12)


def test_wilson_hand_worked():
    # 0/10: upper = z^2/(n+z^2) = 3.8415/13.8415
    assert stats.wilson(0, 10) == pytest.approx((0.0, 0.27753), abs=1e-5)
    assert stats.wilson(5, 10) == pytest.approx((0.23659, 0.76341), abs=1e-5)
    assert stats.wilson(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize("first,second,expected", [
    # Newcombe (1998), Statistics in Medicine 17:873-890, Table II, method 10.
    ((48, 80), (56, 70), (0.0524, 0.3339)),
    ((3, 10), (9, 10), (0.1705, 0.8090)),
])
def test_newcombe_matches_the_paper(first, second, expected):
    assert stats.newcombe(*first, *second) == pytest.approx(expected, abs=5e-4)


def test_newcombe_is_antisymmetric_and_contains_the_difference():
    lo, hi = stats.newcombe(7, 317, 15, 86)
    assert lo < 15 / 86 - 7 / 317 < hi
    assert stats.newcombe(15, 86, 7, 317) == pytest.approx((-hi, -lo))


@pytest.mark.parametrize("k1,n1,k2,n2", [(7, 317, 15, 86), (10, 100, 10, 100), (0, 5, 3, 5), (40, 50, 10, 60)])
def test_two_proportion_z_matches_scipy_chi2(k1, n1, k2, n2):
    table = np.array([[k1, n1 - k1], [k2, n2 - k2]])
    chi2, p, _, _ = sp.chi2_contingency(table, correction=False)
    result = stats.two_proportion_z(k1, n1, k2, n2)
    assert result.z ** 2 == pytest.approx(chi2)
    assert result.p == pytest.approx(p)
    assert (result.z > 0) == (k2 / n2 > k1 / n1)


def test_two_proportion_z_degenerate():
    assert stats.two_proportion_z(0, 10, 0, 12).p == 1.0
    assert stats.two_proportion_z(3, 0, 1, 5).p == 1.0


def _cases():
    rng = random.Random(7)
    yield [1.0], [2.0]
    yield [1.0, 2.0], [3.0]
    yield [3.0, 1.0, 2.0], [2.0, 2.0, 5.0]  # ties across samples
    yield [1, 1, 1, 2], [1, 2, 2, 2, 2]  # heavy ties
    yield [rng.gauss(0, 1) for _ in range(40)], [rng.gauss(0.5, 1) for _ in range(25)]
    yield [rng.randint(0, 5) for _ in range(300)], [rng.randint(1, 6) for _ in range(80)]  # integers: many ties
    yield [round(rng.expovariate(1 / 2000), -1) for _ in range(500)], [round(rng.expovariate(1 / 2100), -1) for _ in range(500)]


@pytest.mark.parametrize("x,y", list(_cases()))
@pytest.mark.parametrize("continuity", [True, False])
def test_mann_whitney_matches_scipy(x, y, continuity):
    ref = sp.mannwhitneyu(x, y, alternative="two-sided", method="asymptotic", use_continuity=continuity)
    got = stats.mann_whitney(x, y, continuity=continuity)
    assert got.u1 == pytest.approx(ref.statistic)
    assert got.u1 + got.u2 == len(x) * len(y)
    assert got.p == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-12)


def test_mann_whitney_hand_worked_with_ties():
    # x = [1, 2, 2], y = [2, 3]: pooled ranks 1, 3, 3, 3, 5 (the three 2s share rank 3).
    # R1 = 1 + 3 + 3 = 7, U1 = 7 - 6 = 1, U2 = 5; mu = 3;
    # var = 3*2/12 * (6 - (27 - 3)/(5*4)) = 0.5 * 4.8 = 2.4; z = (5 - 3 - 0.5)/sqrt(2.4).
    got = stats.mann_whitney([1, 2, 2], [2, 3])
    assert (got.u1, got.u2) == (1, 5)
    z = 1.5 / 2.4 ** 0.5
    assert got.z == pytest.approx(z)  # y tends to be larger: positive
    assert got.p == pytest.approx(2 * sp.norm.sf(z))


def test_mann_whitney_degenerate_samples():
    assert stats.mann_whitney([], [1.0]).p == 1.0
    same = stats.mann_whitney([5, 5, 5], [5, 5])
    assert same.p == 1.0 and same.z == 0.0


def test_mann_whitney_direction():
    assert stats.mann_whitney([1, 2, 3, 4, 5], [10, 11, 12, 13, 14]).z > 0
    assert stats.mann_whitney([10, 11, 12, 13, 14], [1, 2, 3, 4, 5]).z < 0


@pytest.mark.parametrize("q", [0, 5, 50, 95, 99, 100])
def test_percentile_matches_numpy(q):
    values = sorted(random.Random(3).expovariate(1) for _ in range(101))
    assert stats.percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    assert stats.percentile([4.0], q) == 4.0
    assert stats.percentile([], q) is None
