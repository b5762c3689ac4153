"""The regression suite's line beside the canary verdict: how each version did in its latest suite run."""

from __future__ import annotations

from rich.text import Text

from agentdeck.console.safe import plain
from agentdeck.console.service.views import SuiteSummary


def ago(seconds: float) -> str:
    """12m ago, 3h ago, 2d ago (a run finished in the future — another host's clock — is "just now")."""
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60:.0f}m ago"
    if seconds < 172800:
        return f"{seconds // 3600:.0f}h ago"
    return f"{seconds // 86400:.0f}d ago"


def suite_line(version: str, summary: SuiteSummary | None, now: float, *, hint: str = "") -> Text:
    """``suite v2: 24/30 passed (adversarial 4/10), 12m ago — 6 failing`` or ``suite v2: never run``.

    The version label came from a trace: shown literally.
    """
    t = Text("suite ")
    t.append_text(plain(version, 24, single_line=True, style="bold"))
    t.append(": ")
    if summary is None:
        t.append("never run", style="dim")
        return t
    ok = summary.passed == summary.cases
    t.append(f"{summary.passed}/{summary.cases} passed", style="bold green" if ok else "bold red")
    short = [f"{f} {p}/{n}" for f, (p, n) in summary.by_flavour.items() if p < n]
    if short:
        t.append_text(plain(f" ({', '.join(short)})", 120, single_line=True))
    t.append(f", {ago(now - summary.finished)}", style="dim")
    failing = len(summary.failing)
    if failing:
        flaky = sum(c.flaky for c in summary.failing)
        t.append(f" — {failing} failing" + (f" ({flaky} flaky)" if flaky else ""), style="red")
        if hint:
            t.append(f"  {hint}", style="dim")
    return t
