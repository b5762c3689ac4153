"""The detail of a promotion or roll back item (store/release.py) on the Escalations screen."""

from __future__ import annotations

from rich.text import Text

from agentdeck.console.safe import clean, plain
from agentdeck.console.service.views import EscalationView
from agentdeck.console.widgets.escalation_format import (
    DELIVERY_STYLE, append_decision, label, RISK_STYLE, duration, stamp, time_left,
)


VERDICT_STYLE = {"promote": "bold green", "hold": "bold yellow", "roll back": "bold red", "info": "dim"}
HOOK_STYLE = {"delivered": "green", "pending": "yellow", "failed": "bold red", "blocked": "magenta"}


def render_release_parts(view: EscalationView, now: float) -> tuple[Text, Text, Text]:
    """A promotion or roll back item (store/release.py): what it asks, the verdict table and suite result it was
    raised on, the version's stage now, and what deciding it did (stage changes, the release hook's answers).

    In three, joined by newlines (escalation_detail.render): the lines above the clock's, the lines that move with
    the clock (raised ... ago, time to the deadline), and the rest. The pane sets each again only when it would
    draw differently: a second passing redraws two lines, not the verdict table, suite and stage changes.

    Agent, version, metric reasons and case ids come from traces: every one passes through plain().
    """
    r, rel = view.row, view.release
    assert rel is not None
    item, verdict = rel.item, rel.verdict
    t = Text()
    t.append_text(plain(r["escalation_id"], 80, style="bold", single_line=True))
    t.append("  ")
    t.append_text(plain(f"{r['risk']} risk".upper(), 30, style=RISK_STYLE.get(r["risk"], ""), single_line=True))
    t.append("  release decision\n", "dim")
    label(t, "Asks")
    t.append_text(plain(r["reason"] or "", 200, style="bold", single_line=True))
    t.append("\n")
    label(t, "Approve")
    if item["action"] == "roll back":
        t.append("the version goes to shadow (acts on nothing)\n")
        label(t, "Deny")
        t.append("the automatic demotion is lifted; the version keeps its stage\n")
    else:
        t.append_text(plain(f"the version acts at {item['to_stage']}", 80, single_line=True))
        t.append("\n")
        label(t, "Deny")
        t.append_text(plain(f"the version stays at {item['from_stage']}", 80, single_line=True))
        t.append("\n")
    label(t, "Stage now")
    t.append_text(plain(rel.stage_now, 120, style="bold magenta" if "demoted" in rel.stage_now else "bold",
                        single_line=True))
    top, t = t, Text()
    label(t, "Raised")
    t.append(f"{stamp(r['ts'])}  ({duration(now - r['ts'])} ago) by ")
    t.append_text(plain(item["trigger"], 120, single_line=True))
    t.append("\n")
    left, expired = time_left(r["deadline"], now)
    label(t, "Deadline")
    t.append(stamp(r["deadline"]))
    t.append(f"  ({left})", "bold magenta" if expired else "")
    if expired and r["status"] == "pending":
        t.append("\n  past its deadline: it waits for a person (never decided by the expiry policy)", "magenta")
    clock, t = t, Text()
    t.append("\n")

    t.append("Verdict ", "bold")
    t.append_text(plain(str(verdict.get("verdict", "?")).upper(), 20,
                        style=VERDICT_STYLE.get(str(verdict.get("verdict")), ""), single_line=True))
    score = verdict.get("score")
    t.append(f"  score {score:.0f}" if isinstance(score, (int, float)) else "")
    t.append_text(plain(f"  {verdict.get('baseline', '?')} ({verdict.get('n_baseline', '?')} tasks) vs "
                        f"{verdict.get('canary', '?')} ({verdict.get('n_canary', '?')} tasks)  "
                        f"{verdict.get('method', '')}", 160, style="dim", single_line=True))
    t.append("\n  ")
    t.append_text(plain(str(verdict.get("reason", "")), 600))
    t.append("\n")
    metrics = verdict.get("metrics") if isinstance(verdict.get("metrics"), list) else []
    # Narrow columns: the table fits the detail pane beside the list at 160 columns (and under it at 80).
    t.append(f"  {'metric':<19}{'verdict':<10}{'baseline':>8}{'canary':>8} delta\n", "bold")
    for m in metrics[:20]:
        if not isinstance(m, dict):
            continue
        t.append("  ")
        t.append_text(plain(f"{str(m.get('label', '?')):<18.18} ", 19, single_line=True))
        t.append_text(plain(f"{str(m.get('verdict', '')):<10.10}", 10,
                            style=VERDICT_STYLE.get(str(m.get("verdict")), ""), single_line=True))
        t.append_text(plain(f"{str(m.get('baseline', '')):>8.8}{str(m.get('canary', '')):>8.8} "
                            f"{str(m.get('delta', ''))}", 60, single_line=True))
        t.append("\n")
    reasons = [m for m in metrics if isinstance(m, dict) and m.get("verdict") in ("roll back", "hold") and m.get("reason")]
    for m in reasons[:8]:
        t.append("  · ", "dim")
        t.append_text(plain(f"{m.get('label')}: {m.get('reason')}", 300, style="dim"))
        t.append("\n")
    t.append("\n")
    label(t, "Suite")
    suite = rel.suite
    if suite is None:
        t.append_text(plain(f"no suite run recorded for {item['version']} (agentdeck suite run)", 120,
                            style="magenta", single_line=True))
        t.append("\n")
    else:
        passed, cases = suite.get("passed"), suite.get("cases")
        good = passed == cases
        t.append(f"{passed}/{cases} cases passed", "green" if good else "bold red")
        t.append(f"  run {suite.get('run')}", "dim")
        if isinstance(suite.get("finished"), (int, float)):
            t.append(f" at {stamp(suite['finished'])}", "dim")
        t.append("\n")
        failing = suite.get("failing") if isinstance(suite.get("failing"), list) else []
        if failing:
            t.append("  failing: ", "dim")
            t.append_text(plain(", ".join(str(c) for c in failing), 400))
            if suite.get("more_failing"):
                t.append(f" (+{suite['more_failing']} more)", "dim")
            t.append("\n")
    label(t, "Release hook")
    if not rel.release_hook:
        t.append("none in the contract (autonomy.jsonl only)", "dim")
    else:
        t.append_text(plain(rel.release_hook, 200, single_line=True))
        t.append("  ")
        why = rel.hook_problem
        t.append("allowed" if why is None else f"blocked: {clean(why, 120, single_line=True)}",
                 "green" if why is None else "magenta")
    t.append("\n")
    if r["status"] == "pending" and view.reach is not None:
        label(t, "Decision goes")
        t.append_text(plain(view.reach.sentence, 600, style="magenta" if view.reach.orphaned else ""))
        t.append("\n")
    if r.get("first_approved_by") and r["status"] == "pending":
        label(t, "1st approval")
        t.append_text(plain(r["first_approved_by"], 60, style="bold", single_line=True))
        t.append("; a second, different approver is needed\n", "yellow")
    if r["status"] != "pending":
        append_decision(t, r)
        label(t, "Outbox")
        delivery = r.get("delivery")
        t.append(delivery or "—", DELIVERY_STYLE.get(delivery or "", ""))
        if r.get("delivery_error"):
            t.append("  ")
            t.append_text(plain(r["delivery_error"], 300))
        t.append("\n")
    if rel.changes:
        t.append("\nStage changes\n", "bold")
        for c in rel.changes:
            t.append(f"  {stamp(c['at'])}  ", "dim")
            t.append_text(plain(f"{c['previous'] or '?'} → {c['stage']}", 40, style="bold", single_line=True))
            t.append("  ")
            t.append_text(plain(f"{c['cause']} by {c['by']}", 80, single_line=True))
            t.append("\n    autonomy.jsonl ", "dim")
            if c.get("publish_error"):
                t.append_text(plain(c["publish_error"], 200, style="magenta"))
            else:
                t.append("written" if c.get("published_at") else "pending", "green" if c.get("published_at") else "yellow")
            if c.get("hook_state"):
                t.append("  · hook ", "dim")
                t.append(c["hook_state"], HOOK_STYLE.get(c["hook_state"], ""))
                if c.get("hook_status") is not None:
                    t.append(f" HTTP {c['hook_status']}")
                if c.get("hook_attempts"):
                    t.append(f" ({c['hook_attempts']} attempt{'s' if c['hook_attempts'] != 1 else ''})", "dim")
                if c.get("hook_error"):
                    t.append("\n    ")
                    t.append_text(plain(c["hook_error"], 300, style="magenta"))
                if c["hook_state"] in ("failed", "blocked"):
                    t.append("\n    R retries the hook (h: decided list)", "dim")
                if c.get("hook_answer"):
                    t.append("\n    answer: ", "dim")
                    t.append_text(plain(c["hook_answer"], 300, single_line=True))
            t.append("\n")
    return top, clock, t
