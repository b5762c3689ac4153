"""The live verdict: always-valid (sequential) tests that may be read after every batch."""

from __future__ import annotations

import math
import random

from agentdeck.store import canary, stats
from agentdeck.store.contract import CanarySettings
from agentdeck.store.db import connect

from test_canary_verdicts import NOW, gate, synthetic_store


def _cohort(rng: random.Random, n: int, fail: float = 0.04) -> tuple[dict[str, int], dict[str, list[float]], list]:
    flags = {"action_error_rate": [rng.random() < fail for _ in range(n)],
             "violation_rate": [rng.random() < 0.01 for _ in range(n)],
             "escalation_rate": [rng.random() < 0.3 for _ in range(n)],
             "retry_rate": [rng.random() < 0.05 for _ in range(n)],
             "policy_denials": [rng.random() < 0.1 for _ in range(n)]}
    values = {"latency": [rng.lognormvariate(7.6, 0.4) for _ in range(n)],
              "tokens": [rng.lognormvariate(7.2, 0.3) for _ in range(n)],
              "tool_calls": [float(rng.randint(1, 3)) for _ in range(n)],
              "cost": [rng.uniform(0.005, 0.012) for _ in range(n)]}
    return flags, values, []


def _verdict_after(b, c, n: int, method: str) -> str:
    settings = CanarySettings()
    defs = canary.metric_defs(settings)
    k = tuple({key: sum(side[0][key][:n]) for key in side[0]} for side in (b, c))
    v = tuple({key: sorted(side[1][key][:n]) for key in side[1]} for side in (b, c))
    results = canary.judge_all(defs, settings, (n, n), k, v, method)  # type: ignore[arg-type]
    return canary.overall(results, settings, n, n, method)[0]


def test_watching_an_identical_canary_after_every_batch_does_not_roll_it_back():
    # 30 runs, the verdict read every 20 tasks up to 600: the fixed-horizon
    # tests roll back identical versions on noise; the sequential ones don't.
    rng = random.Random(7)
    rolled = {"sequential": 0, "fixed": 0}
    for _ in range(30):
        b, c = _cohort(rng, 600), _cohort(rng, 600)
        for method in rolled:
            if any(_verdict_after(b, c, n, method) == canary.ROLLBACK for n in range(20, 601, 20)):
                rolled[method] += 1
    assert rolled["sequential"] == 0
    assert rolled["fixed"] >= 5  # what the issue measured: about half of all runs


def test_a_real_regression_is_still_rolled_back():
    rng = random.Random(3)
    b, c = _cohort(rng, 1500), _cohort(rng, 1500, fail=0.15)
    looks = [n for n in range(20, 1501, 20) if _verdict_after(b, c, n, "sequential") == canary.ROLLBACK]
    assert looks and looks[0] <= 600


def test_identical_versions_hold_until_confirmed_and_say_how_much_more_they_need(tmp_path):
    db = synthetic_store(tmp_path / "s.db", {"v1": {}, "v2": {}})
    report = canary.analyse(connect(db), "synth", "v1", "v2", window="1h", now=NOW)
    assert report.method == "sequential"
    assert report.verdict == canary.HOLD
    assert canary.ROLLBACK not in {m.verdict for m in report.metrics}
    assert report.more_canary and report.more_canary > 0
    # 600 canary tasks arrived within the hour: the wait is the missing tasks at that rate.
    assert report.eta_seconds is not None and report.eta_seconds > 0
    held = [m for m in report.metrics if m.verdict == canary.HOLD]
    assert all("more canary tasks" in m.reason for m in held)


def test_identical_versions_are_promoted_once_there_is_enough_evidence(tmp_path):
    db = synthetic_store(tmp_path / "s.db", {"v1": {"n": 4000}, "v2": {"n": 4000}})
    report = canary.analyse(connect(db), "synth", "v1", "v2", window="1h", now=NOW)
    assert report.verdict == canary.PROMOTE, report.reason
    assert report.more_canary is None


def test_sample_canary_is_not_promoted_and_latency_is_shown_worse(sample_db, fixed_clock):
    report = canary.analyse(connect(sample_db), "approval-agent", "v1", "v2", window="all", now=fixed_clock())
    assert report.metric("latency").verdict == canary.ROLLBACK
    assert report.verdict in (canary.ROLLBACK, canary.HOLD)
    errors = report.metric("action_error_rate")
    assert errors.verdict in (canary.ROLLBACK, canary.HOLD)


def test_the_gate_defaults_to_sequential_and_fixed_stays_available(tmp_path, capsys):
    equal = synthetic_store(tmp_path / "eq.db", {"v1": {}, "v2": {}})
    assert gate(equal, "synth", method="sequential") == 1  # hold: not yet confirmed
    assert "more canary tasks" in capsys.readouterr().out
    assert gate(equal, "synth", method="fixed") == 0


def test_mixture_sequence_covers_like_its_definition():
    # The half-width solves Lambda = 1/alpha: at that distance the always-valid p-value is alpha.
    v, tau2, alpha = 1e-4, 4e-4, 0.05
    h = stats.mixture_half_width(v, tau2, alpha)
    assert math.isclose(stats.mixture_p(h, v, tau2), alpha, rel_tol=1e-9)
    assert stats.mixture_p(0.0, v, tau2) == 1.0
    # More data (smaller variance) narrows it; needed_scale finds the factor.
    f = stats.needed_scale(v, tau2, alpha, h / 2)
    assert f is not None and stats.mixture_half_width(v / f, tau2, alpha) < h / 2
    assert stats.mixture_half_width(v / (f / 1.1), tau2, alpha) >= h / 2
