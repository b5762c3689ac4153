"""How canary figures read, shared by the Canary screen and `agentdeck canary`."""

from __future__ import annotations

from rich.text import Text

from agentdeck.console.safe import plain
from agentdeck.console.service.views import (
    HOLD, INFO, PROMOTE, ROLLBACK, CanaryReport, MetricResult, fmt_delta, fmt_p, fmt_value,
)

VERDICT_STYLE = {PROMOTE: "bold green", HOLD: "bold yellow", ROLLBACK: "bold red", INFO: "dim"}
HEADERS = ("metric", "verdict", "baseline", "canary", "delta", "interval|p95", "test")


def interval(m: MetricResult) -> str:
    if m.kind == "rate":
        if m.interval is None:
            return "—"
        lo, hi = m.interval
        return f"[{lo * 100:+.1f}, {hi * 100:+.1f}]"
    if m.baseline_p95 is None and m.canary_p95 is None:
        return "—"
    return f"{fmt_value(m, m.baseline_p95)}→{fmt_value(m, m.canary_p95)}"


def value(m: MetricResult, which: str) -> str:
    v = m.baseline if which == "baseline" else m.canary
    n = m.n_baseline if which == "baseline" else m.n_canary
    return fmt_value(m, v) if n else "—"


def verdict_label(m: MetricResult) -> str:
    if m.verdict == HOLD and "not enough data" in m.reason:
        return "not enough data"
    return m.verdict


def row(m: MetricResult) -> list[Text]:
    """One metric as table cells; the delta and verdict are coloured by the verdict."""
    style = VERDICT_STYLE.get(m.verdict, "")
    return [
        Text(m.label + (" p50" if m.kind == "dist" else "")),
        Text(verdict_label(m), style=style),
        Text(value(m, "baseline")),
        Text(value(m, "canary")),
        Text(fmt_delta(m), style=style if m.verdict in (ROLLBACK, HOLD) else ""),
        Text(interval(m)),
        Text(fmt_p(m.p)),
    ]


DIFF_HEADERS = ("what", "feature", "baseline", "canary", "delta", "test", "examples (baseline | canary)")


def diff_row(d, feature_width: int = 60) -> list[Text]:
    """One difference between the versions (a store.canary_diff.Difference) as table cells."""
    return [
        Text(d.kind),
        plain(d.feature, feature_width, single_line=True),  # tool names and reasons come from traces
        Text(f"{d.baseline_share * 100:.1f}%"),
        Text(f"{d.canary_share * 100:.1f}%"),
        Text(f"{d.delta * 100:+.1f} pts", style="bold" if d.p < 0.05 else ""),
        Text(fmt_p(d.p)),
        plain(f"{d.baseline_example or '—'} | {d.canary_example or '—'}", 60, single_line=True),
    ]


def stage(s: str | None) -> str:
    return s or "stage unknown"


def _stage_why(s: str | None, why: str) -> Text:
    """The effective stage: the contract's as a bare word; changed by a promotion or demotion, with why
    ("assisted (demoted by verdict)", "bounded (promoted by alice)"; store/release.py)."""
    if not why:
        return Text(stage(s))
    return plain(why, 60, style="bold magenta" if "demoted" in why else "bold", single_line=True)


# The headline's words, wide and compact (narrow terminals): the same facts, the compact form in ~70 columns.
#            limit, before baseline, after baseline count, after canary count, no split, before window
_HEADLINE = {
    False: (40, 30, "  baseline ", " tasks)  canary ", " tasks)  traffic ", "—", "  window "),
    True: (30, 20, "  ", ") → ", ")  ", "traffic —", "  "),
}


def headline(r: CanaryReport, *, compact: bool = False) -> Text:
    """agent  baseline v1 (bounded, 317 tasks)  canary v2 (partial, 86 tasks)  traffic 21% canary  window all

    ``compact`` (narrow terminals): ``agent  v1 (bounded, 317) → v2 (partial, 86)  21% canary  all``.
    """
    agent_limit, version_limit, before, after_base, after_canary, no_split, before_window = _HEADLINE[compact]
    t = Text()
    t.append_text(plain(r.agent, agent_limit, style="bold", single_line=True))
    t.append(before)
    t.append_text(plain(r.baseline, version_limit, style="bold", single_line=True))
    t.append(" (").append_text(_stage_why(r.stage_baseline, r.stage_baseline_why))
    t.append(f", {r.n_baseline}{after_base}")
    t.append_text(plain(r.canary, version_limit, style="bold", single_line=True))
    t.append(" (").append_text(_stage_why(r.stage_canary, r.stage_canary_why))
    t.append(f", {r.n_canary}{after_canary}")
    t.append(f"{r.split * 100:.0f}% canary" if r.split is not None else no_split)
    t.append(f"{before_window}{r.window}")
    return t


def verdict_line(r: CanaryReport) -> Text:
    t = Text()
    t.append(f" {r.verdict.upper()} ", style=f"reverse {VERDICT_STYLE[r.verdict]}")
    t.append(" ")
    if r.more_canary:
        # What the operator waits for comes first: a live verdict on hold is missing data.
        t.append(f"needs ~{r.more_canary:,} more canary tasks", style="bold")
        if r.eta_seconds:
            t.append(f" (~{duration(r.eta_seconds)} at this rate)", style="bold")
        t.append(" · ")
    # The reason can quote a version label from a trace: keep it literal.
    t.append_text(plain(r.reason, 300, single_line=True))
    if r.score is not None and not r.reason.startswith("score"):
        t.append(f"  (score {r.score:.0f}/100)", style="dim")
    return t


def duration(seconds: float) -> str:
    """3m, 2.5h, 4d: how long, at a glance."""
    if seconds < 3600:
        return f"{max(1, round(seconds / 60))}m"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"
