"""Canary analysis: one agent's baseline version against its canary version.

Every figure comes from SQL aggregates over the ``tasks`` table (one row a
task, kept current by ingestion, with ``tasks.violations`` from the
contract check), never from a pass over events:

* rates — share of tasks with a failed/compensated/contract-breaking action,
  with a contract violation, with an escalation, with a retry or a loop
  (more tool calls than ``loop_tool_calls``), with a policy denial. The
  denominator is every task started in the window (finished or not).
  Compared with a pooled two-proportion z-test; the interval is Newcombe's
  for the difference (canary - baseline).
* distributions — latency, tokens, tool calls and cost per finished task.
  Shown as p50/p95; compared with the Mann-Whitney U test; the effect is the
  relative change of the median.

Two methods decide (``docs/canary.md``):

* ``sequential`` (the default, and what the live Canary screen uses):
  always-valid confidence sequences (mixture SPRT) for the rate differences
  and for the difference of mean log values of the distributions, at
  alpha divided among the gating metrics. The verdict may be recomputed on
  every batch without raising the chance of rolling back an identical
  canary above alpha; a metric is promoted only once the sequence shows it
  within tolerance, and a held metric says how many more canary tasks it
  needs at the current difference.
* ``fixed``: the fixed-horizon tests above, valid for one look (a one-off
  release gate), with the weighted score rule.

Each metric has a direction (lower/higher is better, or none: shown, never
gating), a tolerance (rates: absolute, 0.02 = 2 points; distributions:
relative change of the median, 0.10 = 10 %), a weight and a critical flag,
all overridable in the agent's contract (``[canary.metrics.<key>]``). See
``docs/canary.md`` for how per-metric verdicts make the overall one.
"""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

from agentdeck.store import stats
from agentdeck.store.contract import CanarySettings, Contract, effective_stage

WINDOWS: dict[str, float | None] = {"15m": 15 * 60, "1h": 3600, "24h": 86400, "all": None}
BUCKETS = 24
TASKS_PAGE = 200

PROMOTE, HOLD, ROLLBACK, INFO = "promote", "hold", "roll back", "info"
Direction = Literal["lower", "higher", "none"]
Method = Literal["sequential", "fixed"]
METHODS: tuple[str, ...] = ("sequential", "fixed")
# The mixture's spread, in tolerances: the sequence is tightest when the
# effects it must catch are about this size. Twice the tolerance caught a
# 3% -> 8% error rate in ~530 canary tasks against ~640 for once
# (bench/canary_peeking.py), with no false roll back in either.
TAU_FACTOR = 2.0


@dataclass(frozen=True)
class MetricDef:
    key: str
    label: str
    kind: Literal["rate", "dist"]
    sql: str  # rate: predicate over a tasks row; dist: the column
    direction: Direction = "lower"
    tolerance: float = 0.0
    weight: float = 1.0
    critical: bool = False


ACTION_ERROR = "(actions_failed > 0 OR compensations > 0 OR violations > 0)"

DEFAULT_METRICS: tuple[MetricDef, ...] = (
    MetricDef("action_error_rate", "action errors", "rate", ACTION_ERROR, "lower", 0.02, 3, True),
    MetricDef("violation_rate", "contract violations", "rate", "violations > 0", "lower", 0.005, 3, True),
    MetricDef("escalation_rate", "escalations", "rate", "escalations > 0", "lower", 0.05, 1),
    MetricDef("retry_rate", "loops/retries", "rate", "(retries > 0 OR tool_calls > :loop)", "lower", 0.02, 1),
    MetricDef("policy_denials", "policy denials", "rate", "policy_denials > 0", "none", 0.0, 0),
    MetricDef("latency", "latency", "dist", "latency_ms", "lower", 0.10, 2),
    MetricDef("tokens", "tokens", "dist", "tokens", "lower", 0.10, 1),
    MetricDef("tool_calls", "tool calls", "dist", "tool_calls", "lower", 0.25, 0.5),
    MetricDef("cost", "cost", "dist", "cost_usd", "lower", 0.10, 1),
)
METRICS_BY_KEY = {m.key: m for m in DEFAULT_METRICS}


def metric_defs(settings: CanarySettings) -> list[MetricDef]:
    """The default metrics with the contract's overrides applied."""
    out = []
    for m in DEFAULT_METRICS:
        o = settings.metrics.get(m.key)
        if o is not None:
            m = replace(m, **{k: v for k, v in o.model_dump().items() if v is not None})
        out.append(m)
    return out


@dataclass
class MetricResult:
    key: str
    label: str
    kind: str
    direction: str
    tolerance: float
    weight: float
    critical: bool
    n_baseline: int
    n_canary: int
    baseline: float | None  # rate, or p50
    canary: float | None
    baseline_p95: float | None = None
    canary_p95: float | None = None
    delta: float | None = None  # rate: canary - baseline; dist: relative change of p50
    interval: tuple[float, float] | None = None  # rate: Newcombe interval of the difference
    p: float | None = None
    verdict: str = HOLD
    reason: str = ""
    # sequential only: more canary tasks this metric needs to decide at today's difference (None: unknown or never)
    more_canary: int | None = None


@dataclass
class CanaryReport:
    agent: str
    baseline: str
    canary: str
    window: str
    since: float | None  # the window is since..until by task start; both None for "all"
    until: float | None
    n_baseline: int
    n_canary: int
    split: float | None  # canary share of the tasks
    stage_baseline: str | None
    stage_canary: str | None
    metrics: list[MetricResult]
    verdict: str
    reason: str
    score: float | None
    settings: dict
    sparklines: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)
    bucket_seconds: float | None = None
    method: str = "sequential"
    # Shadow agreement of each version ("v1: people approved 99 of 149 proposals ..."), store.agreement
    agreement: dict[str, str] = field(default_factory=dict)
    # sequential, while holding: canary tasks still needed and how long that takes at the canary's current rate
    more_canary: int | None = None
    eta_seconds: float | None = None
    # Set when promotions or demotions changed a version's stage: "assisted (demoted by verdict)" (store/release.py)
    stage_baseline_why: str = ""
    stage_canary_why: str = ""

    def metric(self, key: str) -> MetricResult:
        return next(m for m in self.metrics if m.key == key)

    def to_json(self) -> dict:
        """A plain dict for JSON (non-finite numbers, e.g. +inf % from a zero baseline, become null)."""
        return _finite(asdict(self))


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


EXIT_CODES = {PROMOTE: 0, HOLD: 1, ROLLBACK: 2}


# -- queries -------------------------------------------------------------------


def window_since(window: str, now: float) -> float | None:
    """Start of the window ending at ``now``; None for "all" (every task, whatever the clock)."""
    if window not in WINDOWS:
        raise ValueError(f"unknown window {window!r} (use one of {', '.join(WINDOWS)})")
    seconds = WINDOWS[window]
    return None if seconds is None else now - seconds


def _where(since: float | None, until: float | None) -> tuple[str, list]:
    if since is None:
        return "agent = ? AND version = ?", []
    return "agent = ? AND version = ? AND started >= ? AND started <= ?", [since, until]


def _cohort_values(conn, agent, version, since, until, defs) -> dict[str, list[float]]:
    """Each distribution metric's values for the cohort's finished tasks, sorted (one scan)."""
    where, extra = _where(since, until)
    dist = [m for m in defs if m.kind == "dist"]
    rows = conn.execute(
        f"SELECT {', '.join(m.sql for m in dist)} FROM tasks WHERE {where} AND ended IS NOT NULL",
        [agent, version, *extra]).fetchall()
    out = {}
    for i, m in enumerate(dist):
        values = [r[i] for r in rows if r[i] is not None]
        values.sort()
        out[m.key] = values
    return out


def _span(conn, agent: str, versions: tuple[str, str]) -> tuple[float, float] | None:
    """First and last task start of both versions (index lookups, for the "all" window's buckets)."""
    lo, hi = [], []
    for v in versions:
        a = conn.execute("SELECT min(started) FROM tasks WHERE agent = ? AND version = ?", (agent, v)).fetchone()[0]
        b = conn.execute("SELECT max(started) FROM tasks WHERE agent = ? AND version = ?", (agent, v)).fetchone()[0]
        if a is not None:
            lo.append(a)
            hi.append(b)
    return (min(lo), max(hi)) if lo else None


@dataclass
class _Cohorts:
    n: tuple[int, int]
    k: tuple[dict[str, int], dict[str, int]]  # rate numerators
    series: dict[str, tuple[list[float], list[float]]]
    width: float | None


def _aggregates(conn, agent, versions, since, until, defs, loop) -> _Cohorts:
    """One GROUP BY over both cohorts' tasks in the window, by bucket of start time.

    Summed over the buckets it gives each rate's numerator and denominator;
    per bucket, the sparklines (rates, and means of the distributions over
    finished tasks).
    """
    series = {m.key: ([0.0] * BUCKETS, [0.0] * BUCKETS) for m in defs}
    span = (since, until) if since is not None else _span(conn, agent, versions)
    if span is None:  # no tasks for either version: zero counts, so callers report "no tasks", not a KeyError
        zero = {m.key: 0 for m in defs if m.kind == "rate"}
        return _Cohorts((0, 0), (dict(zero), dict(zero)), series, None)
    lo, hi = span
    width = max((hi - lo) / BUCKETS, 1e-9)
    cols = []
    for m in defs:
        if m.kind == "rate":
            cols.append(f"sum({m.sql.replace(':loop', str(int(loop)))})")
        else:
            cols.append(f"sum(CASE WHEN ended IS NOT NULL THEN {m.sql} END)")
    rows = conn.execute(
        f"""SELECT version, min(CAST((started - ?) / ? AS INTEGER), {BUCKETS - 1}) AS b,
                   count(*), sum(ended IS NOT NULL), {", ".join(cols)}
            FROM tasks WHERE agent = ? AND version IN (?, ?) AND started >= ? AND started <= ?
            GROUP BY version, b""",
        [lo, width, agent, *versions, lo, hi]).fetchall()
    n = [0, 0]
    k: list[dict[str, int]] = [{m.key: 0 for m in defs if m.kind == "rate"} for _ in versions]
    for row in rows:
        side = 0 if row[0] == versions[0] else 1
        b, count, finished = row[1], row[2], row[3]
        n[side] += count
        for m, total in zip(defs, row[4:]):
            total = total or 0
            if m.kind == "rate":
                k[side][m.key] += int(total)
                value = total / count
            else:
                value = total / finished if finished else 0.0
            if 0 <= b < BUCKETS:
                series[m.key][side][b] = float(value)
    return _Cohorts((n[0], n[1]), (k[0], k[1]), series, width)


def _stage(conn, contract: Contract | None, agent: str, version: str) -> tuple[str | None, str]:
    """The version's effective stage and, when promotions or demotions changed it, why (store/release.py)."""
    from agentdeck.store import release

    changed = release.effective(conn, contract, agent, version)
    if changed.cause not in ("contract", "unknown"):
        return changed.stage, changed.describe()
    row = conn.execute(
        "SELECT stage FROM tasks WHERE agent = ? AND version = ? ORDER BY started DESC LIMIT 1", (agent, version)
    ).fetchone()
    return effective_stage(contract, version, row[0] if row else None), ""


# -- verdicts ------------------------------------------------------------------


def fmt_value(m: MetricDef | MetricResult, value: float | None) -> str:
    """A metric's value as people read it: 17.4%, 2,149ms, $0.0092."""
    if value is None:
        return "—"
    if m.kind == "rate":
        return f"{value * 100:.1f}%"
    if m.key == "cost":
        return f"${value:.4f}"
    if m.key == "latency":
        return f"{value:,.0f}ms"
    return f"{value:,.0f}" if abs(value) >= 10 else f"{value:.3g}"


def fmt_delta(m: MetricResult) -> str:
    if m.delta is None:
        return "—"
    if m.kind == "rate":
        return f"{m.delta * 100:+.1f} pts"
    if math.isinf(m.delta):
        return "+∞%"
    return f"{m.delta * 100:+.0f}%"


def fmt_p(p: float | None) -> str:
    if p is None:
        return "—"
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def _judge(r: MetricResult, settings: CanarySettings, bad_z: float) -> None:
    """Set the metric's verdict and one-line reason. ``bad_z`` > 0 when the test says the canary is worse."""
    if _settled_before_testing(r, settings):
        return
    label, values = r.label, _values(r)
    sign = 1 if r.direction == "lower" else -1
    worse_by = sign * (r.delta or 0.0)
    if worse_by > r.tolerance:
        significant = r.p is not None and r.p < settings.alpha and bad_z > 0
        r.verdict = ROLLBACK if significant else HOLD
        r.reason = (f"{label} worse: {values} ({fmt_delta(r)}, {fmt_p(r.p)}"
                    f"{'' if significant else ', not significant yet'})")
    else:
        r.verdict = PROMOTE
        r.reason = f"{label} within tolerance: {values} ({fmt_delta(r)})"


def _gating(r: MetricResult | MetricDef) -> bool:
    return r.direction != "none" and r.weight != 0


def _values(r: MetricResult) -> str:
    return f"{fmt_value(r, r.canary)} vs {fmt_value(r, r.baseline)}"


def _settled_before_testing(r: MetricResult, settings: CanarySettings) -> bool:
    """Judge what no test is needed for (either test): a metric that does not gate, or too few samples."""
    if not _gating(r):
        r.verdict, r.reason = INFO, f"{r.label}: {_values(r)} (not gating)"
        return True
    if min(r.n_baseline, r.n_canary) < settings.min_samples:
        r.verdict = HOLD
        r.reason = (f"{r.label}: not enough data (n={r.n_canary} canary, {r.n_baseline} baseline; "
                    f"need {settings.min_samples})")
        return True
    return False


def _judge_sequential(r: MetricResult, settings: CanarySettings, est: float, var: float, tol: float,
                      alpha: float, to_display) -> None:
    """Verdict from an always-valid confidence sequence.

    ``est`` and ``var``: the difference (canary - baseline) on the test's
    scale and its variance; ``tol`` the tolerance on that scale; ``alpha``
    this metric's share of the error rate; ``to_display`` maps a difference
    on the test's scale to the one people read (points, relative change).
    """
    if _settled_before_testing(r, settings):
        return
    label, values = r.label, _values(r)
    tau2 = (TAU_FACTOR * max(tol, 1e-3)) ** 2
    # Rolling back needs this metric shown worse at its share of alpha (any
    # one metric can roll back, so the shares add up to alpha). Promoting
    # needs *every* metric shown within tolerance, so a bad canary is promoted
    # only if its bad metric is wrongly confirmed: each metric at the whole
    # alpha keeps that chance <= alpha (an intersection-union test).
    half_rb = stats.mixture_half_width(var, tau2, alpha)
    half = stats.mixture_half_width(var, tau2, settings.alpha)
    r.interval = (to_display(est - half), to_display(est + half))
    r.p = stats.mixture_p(est, var, tau2)
    sign = 1 if r.direction == "lower" else -1
    worse = sign * est
    if worse - half_rb > 0 and worse > tol:
        r.verdict = ROLLBACK
        r.reason = f"{label} worse: {values} ({fmt_delta(r)}, always-valid {fmt_p(r.p)})"
        return
    if worse + half < tol:
        r.verdict = PROMOTE
        r.reason = f"{label} within tolerance: {values} ({fmt_delta(r)}, confirmed)"
        return
    r.verdict = HOLD
    # Heading for a roll back when worse by more than the tolerance, else for a promotion.
    heading_back = worse > tol
    margin = worse if heading_back else tol - worse
    scale = stats.needed_scale(var, tau2, alpha if heading_back else settings.alpha, margin)
    if scale is not None:
        r.more_canary = max(1, math.ceil(r.n_canary * (scale - 1)))
        need = f"needs ~{r.more_canary:,} more canary tasks"
    else:
        need = "too close to the tolerance to decide"
    r.reason = f"{label} {'worse' if worse > tol else 'not yet shown within tolerance'}: {values} ({fmt_delta(r)}; {need})"


def _rate_result(m: MetricDef, nb: int, kb: int, nc: int, kc: int, settings: CanarySettings,
                 method: str = "fixed", alpha: float | None = None) -> MetricResult:
    r = MetricResult(m.key, m.label, m.kind, m.direction, m.tolerance, m.weight, m.critical, nb, nc,
                     kb / nb if nb else None, kc / nc if nc else None)
    if method == "sequential":
        if nb and nc and r.canary is not None and r.baseline is not None:
            r.delta = r.canary - r.baseline
            var = stats.rate_diff_variance(kb, nb, kc, nc)
        else:
            var = 0.0
        _judge_sequential(r, settings, r.delta or 0.0, var, m.tolerance, alpha or settings.alpha, lambda x: x)
        return r
    if nb and nc and r.canary is not None and r.baseline is not None:
        r.delta = r.canary - r.baseline
        r.interval = stats.newcombe(kb, nb, kc, nc, 1 - settings.alpha)
        z = stats.two_proportion_z(kb, nb, kc, nc)
        r.p = z.p
        bad_z = z.z if m.direction == "lower" else -z.z
    else:
        bad_z = 0.0
    _judge(r, settings, bad_z)
    return r


def _dist_result(m: MetricDef, xb: list[float], xc: list[float], settings: CanarySettings,
                 method: str = "fixed", alpha: float | None = None) -> MetricResult:
    p50b, p50c = stats.percentile(xb, 50), stats.percentile(xc, 50)
    r = MetricResult(m.key, m.label, m.kind, m.direction, m.tolerance, m.weight, m.critical, len(xb), len(xc),
                     p50b, p50c, stats.percentile(xb, 95), stats.percentile(xc, 95))
    if xb and xc:
        if p50b:
            r.delta = p50c / p50b - 1
        else:
            r.delta = 0.0 if not p50c else math.inf
    if method == "sequential":
        # Latency, cost and tokens are skewed: compare mean log(1 + x), so the
        # difference is (about) the log of the ratio and the tolerance, a
        # relative change, becomes log(1 + tolerance).
        mb, vb = stats.mean_var([math.log1p(max(x, 0.0)) for x in xb])
        mc, vc = stats.mean_var([math.log1p(max(x, 0.0)) for x in xc])
        var = vb / len(xb) + vc / len(xc) if xb and xc else 0.0
        _judge_sequential(r, settings, mc - mb, var, math.log1p(m.tolerance), alpha or settings.alpha, math.expm1)
        return r
    bad_z = 0.0
    if xb and xc:
        mw = stats.mann_whitney(xb, xc)
        r.p = mw.p
        bad_z = mw.z if m.direction == "lower" else -mw.z
    _judge(r, settings, bad_z)
    return r


def overall(metrics: list[MetricResult], settings: CanarySettings, nb: int, nc: int,
            method: str = "fixed") -> tuple[str, str, float | None]:
    """Promote, hold or roll back, with a one-line reason and the weighted score (0-100)."""
    if min(nb, nc) < settings.min_samples:
        which = "canary" if nc <= nb else "baseline"
        return HOLD, f"not enough data: {which} has {min(nb, nc)} tasks in the window, need {settings.min_samples}", None
    gating = [m for m in metrics if m.verdict != INFO]
    total = sum(m.weight for m in gating)
    score = 100.0 * sum(m.weight for m in gating if m.verdict == PROMOTE) / total if total else 100.0
    rollbacks = [m for m in gating if m.verdict == ROLLBACK]
    rollbacks.sort(key=lambda m: (not m.critical, -m.weight))
    more = f" (+{len(rollbacks) - 1} more)" if len(rollbacks) > 1 else ""
    critical = [m for m in rollbacks if m.critical]
    if method == "sequential":
        # A metric on hold is missing evidence, not evidence against the
        # canary: only metrics shown worse (always-valid, at their share of
        # alpha) count towards rolling back — a critical one alone, others
        # once their weight pushes the score of what is *not* shown worse
        # under the roll back score.
        if critical:
            return ROLLBACK, critical[0].reason + more, score
        not_worse = 100.0 * (1 - sum(m.weight for m in rollbacks) / total) if total else 100.0
        if not_worse < settings.rollback_score:
            return ROLLBACK, f"{not_worse:.0f}% of the weight not shown worse < {settings.rollback_score:g}%: " + rollbacks[0].reason + more, score
        if score >= settings.promote_score and not rollbacks:
            return PROMOTE, f"score {score:.0f}: every gating metric confirmed within tolerance", score
        held = rollbacks or sorted((m for m in gating if m.verdict == HOLD), key=lambda m: -m.weight)
        return HOLD, f"score {score:.0f}: " + (held[0].reason + (f" (+{len(held) - 1} more)" if len(held) > 1 else "") if held else "below the promote score"), score
    if critical:
        return ROLLBACK, critical[0].reason + more, score
    if score < settings.rollback_score:
        return ROLLBACK, f"score {score:.0f} < {settings.rollback_score:g}: " + (rollbacks[0].reason + more if rollbacks else "too many metrics on hold"), score
    if score >= settings.promote_score and not rollbacks:
        return PROMOTE, f"score {score:.0f}: every gating metric within tolerance", score
    held = rollbacks or [m for m in gating if m.verdict == HOLD]
    held.sort(key=lambda m: -m.weight)
    return HOLD, f"score {score:.0f}: " + (held[0].reason + (f" (+{len(held) - 1} more)" if len(held) > 1 else "") if held else "below the promote score"), score


def judge_all(defs: list[MetricDef], settings: CanarySettings, n: tuple[int, int],
              k: tuple[dict[str, int], dict[str, int]], values: tuple[dict[str, list[float]], dict[str, list[float]]],
              method: str = "sequential") -> list[MetricResult]:
    """Every metric's result from the cohorts' counts (rates) and sorted values (distributions)."""
    (nb, nc), (kb, kc), (vb, vc) = n, k, values
    # Sequential: alpha is shared among the gating metrics by weight (a
    # weighted Bonferroni split), so the chance that *any* of them rolls back
    # an identical canary stays <= alpha however often the verdict is read.
    total = sum(m.weight for m in defs if _gating(m)) or 1.0
    out = []
    for m in defs:
        alpha = settings.alpha * m.weight / total
        if m.kind == "rate":
            out.append(_rate_result(m, nb, kb[m.key], nc, kc[m.key], settings, method, alpha))
        else:
            out.append(_dist_result(m, vb[m.key], vc[m.key], settings, method, alpha))
    return out


def _still_needed(results: list[MetricResult], nc: int, since: float | None, until: float | None,
                  bucket: float | None) -> tuple[int | None, float | None]:
    """Canary tasks the verdict still needs, and the time that takes at the canary's rate in the window.

    A metric heading for a roll back decides alone (the soonest counts); a
    promotion needs every held metric (the slowest counts).
    """
    held = [m for m in results if m.verdict == HOLD and _gating(m)]
    if not held or any(m.more_canary is None for m in held if min(m.n_baseline, m.n_canary) > 0):
        return None, None
    worse = [m.more_canary for m in held if m.more_canary is not None and "worse" in m.reason]
    needs = [m.more_canary for m in held if m.more_canary is not None]
    if not needs:
        return None, None
    more = min(worse) if worse else max(needs)
    span = (until - since) if since is not None and until is not None else (bucket * BUCKETS if bucket else None)
    rate = nc / span if span and nc else None
    return more, (more / rate if rate else None)


# -- the whole panel -----------------------------------------------------------


def analyse(
    conn: sqlite3.Connection,
    agent: str,
    baseline: str,
    canary: str,
    *,
    window: str = "all",
    now: float,
    contract: Contract | None = None,
    sparklines: bool = True,
    method: str = "sequential",
) -> CanaryReport:
    """Every canary panel for one agent's baseline and canary versions."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r} (use one of {', '.join(METHODS)})")
    settings = contract.canary if contract is not None else CanarySettings()
    defs = metric_defs(settings)
    since = window_since(window, now)
    until = None if since is None else now
    loop = settings.loop_tool_calls
    agg = _aggregates(conn, agent, (baseline, canary), since, until, defs, loop)
    (nb, nc), (kb, kc) = agg.n, agg.k
    vb = _cohort_values(conn, agent, baseline, since, until, defs)
    vc = _cohort_values(conn, agent, canary, since, until, defs)
    results = judge_all(defs, settings, (nb, nc), (kb, kc), (vb, vc), method)
    verdict, reason, score = overall(results, settings, nb, nc, method)
    stage_b, stage_c = _stage(conn, contract, agent, baseline), _stage(conn, contract, agent, canary)
    report = CanaryReport(
        agent=agent, baseline=baseline, canary=canary, window=window, since=since, until=until,
        n_baseline=nb, n_canary=nc, split=nc / (nb + nc) if nb + nc else None,
        stage_baseline=stage_b[0], stage_canary=stage_c[0], stage_baseline_why=stage_b[1], stage_canary_why=stage_c[1],
        metrics=results, verdict=verdict, reason=reason, score=score,
        settings=settings.model_dump(), method=method,
    )
    if method == "sequential" and verdict == HOLD:
        report.more_canary, report.eta_seconds = _still_needed(results, nc, since, until, agg.width)
    from agentdeck.store.agreement import agreement  # imports store.canary's own module (contract): kept local

    for version in (baseline, canary):
        a = agreement(conn, agent, version, contract=contract, since=since, until=until)
        report.agreement[version] = a.describe()
        if version == canary and report.verdict == PROMOTE and a.rule_met is False:
            # The metrics say promote; the contract also asks people to have agreed with it often enough.
            report.verdict = HOLD
            report.reason = f"metrics confirmed, but shadow agreement rule not met: {a.describe()}"
    if sparklines:
        report.sparklines, report.bucket_seconds = agg.series, agg.width
    return report


# -- what the screen needs besides the panel -----------------------------------


@dataclass(frozen=True)
class Pair:
    agent: str
    baseline: str
    canary: str
    versions: tuple[str, ...] = ()  # all the agent's versions, least recently active first


# Read from the tasks_cohorts index alone (the release tick runs it while a fleet writes).
PAIRS_SQL = """SELECT agent, version, cohort, count(*) AS n, max(started) AS last
               FROM tasks WHERE agent IS NOT NULL AND version IS NOT NULL GROUP BY agent, version, cohort"""


def pairs(conn: sqlite3.Connection) -> list[Pair]:
    """One default (baseline, canary) pair per agent that has two versions.

    The canary is the canary cohort's most recently active version and the
    baseline the baseline cohort's busiest, as the traces declare them;
    without both, the two most recently active versions.
    """
    rows = conn.execute(PAIRS_SQL).fetchall()
    by_agent: dict[str, list] = {}
    for r in rows:
        by_agent.setdefault(r["agent"], []).append(r)
    out = []
    for agent in sorted(by_agent):
        rs = by_agent[agent]
        versions = tuple(sorted({r["version"] for r in rs},
                                key=lambda v: (max(r["last"] or 0 for r in rs if r["version"] == v), v)))
        if len(versions) < 2:
            continue
        canaries = sorted((r for r in rs if r["cohort"] == "canary"), key=lambda r: r["last"] or 0, reverse=True)
        baselines = sorted((r for r in rs if r["cohort"] != "canary"), key=lambda r: r["n"], reverse=True)
        if canaries and baselines and canaries[0]["version"] != baselines[0]["version"]:
            out.append(Pair(agent, baselines[0]["version"], canaries[0]["version"], versions))
        else:
            out.append(Pair(agent, versions[-2], versions[-1], versions))
    return out


def next_version(pair: Pair, current: str, other: str, step: int = 1) -> str:
    """The version after ``current`` among the agent's versions, skipping ``other`` (the opposite side)."""
    choices = [v for v in pair.versions if v != other]
    if not choices:
        return current
    i = choices.index(current) if current in choices else -1
    return choices[(i + step) % len(choices)]


_TASK_ROW = """task_id, version, started, outcome, latency_ms, tokens, tool_calls, cost_usd,
               actions_failed, compensations, violations, escalations, retries"""


def tasks_by_id(conn: sqlite3.Connection, task_ids: list[str]) -> list[sqlite3.Row]:
    """``tasks_behind``'s rows for tasks already chosen, in the order given (primary-key lookups)."""
    rows = {r["task_id"]: r for r in conn.execute(
        f"SELECT {_TASK_ROW} FROM tasks WHERE task_id IN (SELECT value FROM json_each(?))", (json.dumps(task_ids),))}
    return [rows[t] for t in task_ids if t in rows]


def tasks_behind(
    conn: sqlite3.Connection, report: CanaryReport, key: str, *, limit: int = TASKS_PAGE
) -> list[sqlite3.Row]:
    """The tasks that make up one metric: those counted by a rate, or the slowest/costliest first."""
    m = METRICS_BY_KEY[key]
    loop = int(report.settings.get("loop_tool_calls", 8))
    where = "agent = ? AND version IN (?, ?)"
    args: list = [report.agent, report.baseline, report.canary]
    if report.since is not None:
        where += " AND started >= ? AND started <= ?"
        args.extend((report.since, report.until))
    if m.kind == "rate":
        where += f" AND {m.sql.replace(':loop', str(loop))}"
        order = "started DESC"
    else:
        where += f" AND ended IS NOT NULL AND {m.sql} IS NOT NULL"
        order = f"{m.sql} DESC"
    return conn.execute(
        f"""SELECT {_TASK_ROW}
            FROM tasks WHERE {where} ORDER BY (version = ?) DESC, {order}, task_id LIMIT ?""",
        [*args, report.canary, limit],
    ).fetchall()
