"""The failing cases of a version's latest suite run; Enter picks one (its run opens on Replay).

Dismisses with the chosen ``SuiteCase`` or ``None`` (Esc). Case ids and
reasons come from the case files and the agent's trace: shown literally.
"""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label, Static

from agentdeck.console.safe import plain
from agentdeck.console.service.views import SuiteCase, SuiteSummary


class SuiteFailures(ModalScreen[SuiteCase | None]):
    DEFAULT_CSS = """
    SuiteFailures { align: center middle; }
    SuiteFailures > Vertical {
        width: 90%; max-width: 140; height: 80%; padding: 0 1;
        border: thick $accent; background: $surface;
    }
    SuiteFailures #suite-failures-title { text-style: bold; height: auto; }
    SuiteFailures DataTable { height: 1fr; }
    SuiteFailures #suite-failures-reason { height: auto; max-height: 6; color: $text-muted; }
    SuiteFailures #suite-failures-hint { color: $text-muted; height: 1; }
    """
    BINDINGS = [
        Binding("escape", "dismiss(None)", "Close"),
        Binding("j", "cursor(1)", "Down", show=False),
        Binding("k", "cursor(-1)", "Up", show=False),
    ]

    def __init__(self, summary: SuiteSummary) -> None:
        super().__init__()
        self.summary = summary

    def compose(self) -> ComposeResult:
        s = self.summary
        title = Text("Failing cases of suite run ")
        title.append(str(s.run_id))
        title.append(" · ")
        title.append_text(plain(f"{s.agent} {s.version}: {s.passed}/{s.cases} passed", 100, single_line=True))
        with Vertical():
            yield Label(title, id="suite-failures-title")
            table: DataTable = DataTable(id="suite-failures", cursor_type="row", zebra_stripes=True)
            table.add_columns("case", "flavour", "runs", "reason")
            for c in s.failing:
                table.add_row(plain(c.case_id, 30, single_line=True), plain(c.flavour, 12, single_line=True),
                              f"{c.passes}/{c.runs}" + (" flaky" if c.flaky else ""),
                              plain(c.reason, 200, single_line=True), key=c.case_id)
            yield table
            yield Static("", id="suite-failures-reason")
            yield Static("Enter opens the run on Replay · Esc closes", id="suite-failures-hint")

    def on_mount(self) -> None:
        self.query_one(DataTable).focus()

    def action_cursor(self, step: int) -> None:
        table = self.query_one(DataTable)
        table.move_cursor(row=max(0, min(table.row_count - 1, table.cursor_row + step)))

    def _case(self, key: str | None) -> SuiteCase | None:
        return next((c for c in self.summary.failing if c.case_id == key), None)

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        case = self._case(event.row_key.value if event.row_key is not None else None)
        text = Text()
        if case is not None:
            text.append_text(plain(case.reason, 600))
            text.append("\n")
            # Wrapped, not cut: the operator may want to copy the whole path.
            text.append_text(plain(f"trace: {case.trace or '(none recorded)'}", 400, style="dim"))
        self.query_one("#suite-failures-reason", Static).update(text)

    @on(DataTable.RowSelected)
    def _selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.dismiss(self._case(event.row_key.value if event.row_key is not None else None))
