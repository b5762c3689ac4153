"""The console's one key map: a key means the same kind of thing on every screen.

Screens take their shared bindings from here instead of spelling them out, so
``r`` cannot come to mean Replay on one screen and Retry on another again
(``tests/test_console_keys.py`` checks every screen's bindings against
``KEY_MAP``). The same table is in ``?`` (each binding's description) and in
docs/console.md ("Keys").
"""

from __future__ import annotations

from textual.binding import Binding

# key -> what it means, wherever it is bound. A screen may leave a key unbound;
# it may not give it another meaning.
KEY_MAP: dict[str, str] = {
    # everywhere
    "1": "Tasks", "2": "Escalations", "3": "Canary", "4": "Replay", "5": "Problems",
    "q": "Quit", "question_mark": "Help", "ctrl+p": "palette",
    # every list
    "j": "Down", "down": "Down", "k": "Up", "up": "Up",
    "g": "Top", "home": "Top", "G": "Bottom", "end": "Bottom",
    "pageup": "Page up", "ctrl+b": "Page up", "pagedown": "Page down", "ctrl+f": "Page down",
    "ctrl+u": "½ page up", "ctrl+d": "½ page down",
    "enter": "Open",
    "right": "Columns right", "left": "Columns left",
    # what to do with the selected row
    "r": "Replay",             # open the task in Replay: Tasks, task detail, Escalations, Canary, Problems
    "R": "Retry",              # do the failed thing again: a decision's delivery, the ingest process
    "a": "Approve", "d": "Deny",  # Escalations only
    "h": "Pending/decided",
    "c": "Compensate", "e": "Export evidence", "o": "Open id",
    "n": "Next", "p": "Prev", "space": "Play/pause",
    "right_square_bracket": "Next decision", "left_square_bracket": "Prev decision",
    "t": "Next agent", "T": "Prev agent",
    "w": "Window", "b": "Baseline ver", "v": "Canary ver", "s": "Suite fails",
    "f": "Follow", "slash": "Filter",
    "escape": "Back",
    "tab": "Next pane",
}

REPLAY = Binding("r", "replay", KEY_MAP["r"])


def retry(tooltip: str, action: str = "retry") -> Binding:
    """``R``: do the failed thing again; ``tooltip`` (shown by ``?``) says what that is here."""
    return Binding("R", action, KEY_MAP["R"], tooltip=tooltip)


# less/vim movement, the same on every list (tables, the Replay timeline, Problems).
# Each list implements cursor_down/cursor_up/first/last/half_page(n).
PAGING_BINDINGS = [
    Binding("g,home", "first", "Top", show=False),
    Binding("G,end", "last", "Bottom", show=False),
    Binding("ctrl+d", "half_page(1)", "½ page down", show=False),
    Binding("ctrl+u", "half_page(-1)", "½ page up", show=False),
    Binding("pagedown,ctrl+f", "half_page(2)", "Page down", show=False),
    Binding("pageup,ctrl+b", "half_page(-2)", "Page up", show=False),
]
LIST_BINDINGS = [
    Binding("j,down", "cursor_down", "Down", show=False),
    Binding("k,up", "cursor_up", "Up", show=False),
    *PAGING_BINDINGS,
]
# Sideways on a table too wide for the terminal: one column at a time (the
# columns that say which row it is stay put). Not h/l: h is Pending/decided.
COLUMN_BINDINGS = [
    Binding("right", "columns(1)", "Columns right", show=False),
    Binding("left", "columns(-1)", "Columns left", show=False),
]
