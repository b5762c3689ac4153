"""The Tasks filter: a small query language, its presets, and the bar that edits it.

``agent:NAME version:V cohort:canary stage:shadow outcome:failed session:ID violations``
and any other words as free text (all must match). ``outcome:running`` means
not finished yet. Values with spaces can be quoted.
"""

from __future__ import annotations

import shlex

from textual.binding import Binding
from textual.message import Message

from agentdeck.console.safe import clean
from agentdeck.console.service.views import OUTCOMES, TaskFilter
from agentdeck.console.widgets.prompt_input import PromptInput

KEYS = {"agent": "agent", "version": "version", "ver": "version", "cohort": "cohort", "stage": "stage", "outcome": "outcome",
        "session": "session"}
COHORTS = ("baseline", "canary")
STAGES = ("shadow", "assisted", "partial", "bounded")

# Named filters for the command palette.
PRESETS: dict[str, str] = {
    "failed tasks": "outcome:failed",
    "running tasks": "outcome:running",
    "escalated tasks": "outcome:escalated",
    "canary only": "cohort:canary",
    "baseline only": "cohort:baseline",
    "contract violations": "violations",
}


class FilterError(ValueError):
    """The filter text cannot be understood; the message says why."""


def parse_filter(text: str) -> TaskFilter:
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()  # an unbalanced quote: take the words as typed
    fields: dict[str, object] = {}
    free: list[str] = []
    for word in words:
        key, sep, value = word.partition(":")
        if word.lower() in ("violations", "has:violations", "violations:yes"):
            fields["violations"] = True
        elif sep and key.lower() in KEYS:
            name = KEYS[key.lower()]
            if not value:
                raise FilterError(f"{key}: needs a value, e.g. {key}:{_example(name)}")
            fields[name] = _checked(name, value)
        elif sep and key and key.isalpha() and key.islower() and not value.startswith("/"):
            known = ", ".join(sorted(set(KEYS) - {"ver"}) + ["violations"])
            raise FilterError(f"unknown filter '{key}:' (known: {known}; other words are free text)")
        else:
            free.append(word)
    return TaskFilter(text=tuple(free), **fields)  # type: ignore[arg-type]


def _checked(name: str, value: str) -> str:
    allowed = {"outcome": OUTCOMES, "cohort": COHORTS, "stage": STAGES}.get(name)
    if allowed is not None and value.lower() not in allowed:
        raise FilterError(f"{name} is one of {', '.join(allowed)} (not '{value}')")
    return value.lower() if allowed is not None else value


def _example(name: str) -> str:
    return {"outcome": "failed", "cohort": "canary", "stage": "shadow", "version": "v2"}.get(name, "NAME")


def describe(filt: TaskFilter) -> str:
    """The filter as text that parses back to it."""
    parts = []
    for name in ("agent", "version", "cohort", "stage", "outcome", "session"):
        value = getattr(filt, name)
        if value is not None:
            parts.append(f"{name}:{shlex.quote(value)}")
    if filt.violations:
        parts.append("violations")
    parts.extend(shlex.quote(w) for w in filt.text)
    return " ".join(parts)


class FilterInput(PromptInput):
    """Where the filter is typed (opened with /). Enter applies, Escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", show=True)]
    # Esc closes it: run by the app as its key comes in (AgentDeck.on_event), it hands the focus back at once, so
    # the keys read with it (Esc then 2, or j) go to the table, not into this hidden box. (Not Enter: it reads the
    # value, and characters typed just before it are still in this box's queue when the app reads the Enter;
    # PromptInput applies it in this box's own queue.)
    FOCUSING_ACTIONS = frozenset({"cancel"})

    class Applied(Message):
        def __init__(self, filt: TaskFilter) -> None:
            super().__init__()
            self.filt = filt

    class Cancelled(Message):
        pass

    def __init__(self, *, leave_to: str | None = None, **kw) -> None:
        super().__init__(
            leave_to=leave_to,
            placeholder="agent:NAME version:V cohort:canary outcome:failed violations  words…  (enter applies, esc cancels)",
            **kw,
        )

    async def submit_now(self) -> bool:
        try:
            filt = parse_filter(self.value)
        except FilterError as exc:
            self.app.bell()
            # The message quotes what was typed (maybe pasted trace text): never parse it as markup.
            self.notify(clean(str(exc), 300, single_line=True), title="Filter", severity="error", markup=False)
            return False
        self.post_message(self.Applied(filt))
        return True

    def action_cancel(self) -> None:
        # Nothing else to do: leave() hides the box and gives the table the focus now, and the filter is unchanged.
        self.post_message(self.Cancelled())
        self.leave()
