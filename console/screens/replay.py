"""Replay: one task's decision path, step by step, with undo and evidence export.

Shows ``app.replay_task`` (a task id or request id, set by ``app.open_replay``
from Tasks, Escalations or here with ``o``). The reconstruction
(``replay.reconstruct``) is read in a thread worker; the timeline draws only
visible lines, so a 10,000-step task opens as fast as its SELECT.
"""

from __future__ import annotations

from datetime import datetime, UTC
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Input, Static

from agentdeck.console.safe import plain
from agentdeck.console.screens.base import DeckScreen
from agentdeck.console.widgets.compensation_dialog import CompensationDialog
from agentdeck.console.widgets.replay_detail import ReplayDetail
from agentdeck.console.widgets.replay_timeline import ReplayTimeline
from agentdeck.replay import compensate
from agentdeck.replay.evidence import EvidenceError, evidence_dir, export, packet_filename
from agentdeck.replay.reconstruct import Reconstruction, reconstruct

PLAY_INTERVAL = 0.6


class ReplayScreen(DeckScreen):
    MODE = "replay"
    CSS_PATH = "replay.tcss"
    AUTO_FOCUS = "#replay-timeline"  # not the id input: it would swallow the 1-4 screen keys
    BINDINGS = [
        Binding("n", "step(1)", "Next"),
        Binding("p", "step(-1)", "Prev"),
        Binding("g", "first", "First", show=False),
        Binding("G", "last", "Last", show=False),
        Binding("space", "play", "Play/pause"),
        Binding("d", "decision", "Decision point"),
        Binding("c", "compensate", "Compensate"),
        Binding("e", "export", "Export evidence"),
        Binding("o", "open", "Open id"),
        Binding("escape", "close_open", "Close input", show=False),
    ]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.rec: Reconstruction | None = None
        self._loaded_key: tuple | None = None
        self._loading: str | None = None
        self._again = False
        self._player = None

    def compose_body(self) -> ComposeResult:
        yield Static("", id="replay-info")
        yield Input(placeholder="task id or request id, then Enter", id="replay-open", max_length=200)
        with Horizontal(id="replay-main"):
            yield ReplayTimeline(id="replay-timeline")
            yield ReplayDetail(id="replay-detail")
        yield Static("", id="replay-status")

    def on_mount(self) -> None:
        self.watch(self.app, "replay_task", self._task_changed, init=False)
        super().on_mount()

    # ---- loading ------------------------------------------------------------------------

    def _task_changed(self, _value: str | None) -> None:
        self._loaded_key = None
        self.reload()

    def reload(self) -> None:
        wanted = self.app.replay_task
        if not wanted:
            self._show_empty("No task chosen: press o and type a task id or request id "
                             "(or press r on a task in Tasks, o on an escalation).")
            return
        if self._loading == wanted:
            self._again = True  # already on its way (mount, resume and the reactive can all ask at once)
            return
        self._loading = wanted
        self._again = False
        self._load(wanted)

    @work(thread=True, exclusive=True, group="replay-load")
    def _load(self, wanted: str) -> None:
        try:
            self._load_in_thread(wanted)
        finally:
            self.app.call_from_thread(self._loaded, wanted)

    def _loaded(self, wanted: str) -> None:
        if self._loading == wanted:
            self._loading = None
            if self._again:  # something changed while we were reading: read once more (cheap if nothing did)
                self._again = False
                self.reload()

    def _load_in_thread(self, wanted: str) -> None:
        conn = self.app.store.reader()
        # Cheap change check first: a big task is only rebuilt when it (or its audit) changed.
        row = conn.execute(
            "SELECT task_id, events, updated_at FROM tasks WHERE task_id = ? OR request_id = ? LIMIT 1", (wanted, wanted)
        ).fetchone()
        audit_id = conn.execute("SELECT coalesce(max(id), 0) FROM audit").fetchone()[0]
        comps = conn.execute("SELECT coalesce(max(id), 0) FROM compensations").fetchone()[0]
        key = (wanted, tuple(row) if row else None, audit_id, comps)
        if key == self._loaded_key:
            return
        rec = reconstruct(conn, wanted)
        info = self._info(rec) if rec is not None else None  # built here: it parses the policy checks
        self.app.call_from_thread(self._show, wanted, key, rec, info)

    def _show_empty(self, message: str) -> None:
        self.rec = None
        self.query_one("#replay-info", Static).update(Text(message, style="dim"))
        self.query_one(ReplayTimeline).set_steps([])
        self.query_one(ReplayDetail).show(None, None)
        self._open_input(True)

    def _show(self, wanted: str, key: tuple, rec: Reconstruction | None, info: Text | None) -> None:
        if wanted != self.app.replay_task:
            return  # a newer request is on its way
        if rec is None:
            self._loaded_key = None
            self._show_empty("")
            self.query_one("#replay-info", Static).update(
                plain(f"No task or request {wanted!r} in the store. Press o to type another id.", style="bold red"))
            return
        same_task = self.rec is not None and self.rec.task_id == rec.task_id
        cursor = self.query_one(ReplayTimeline).cursor if same_task else 0
        self.rec = rec
        self._loaded_key = key
        self.query_one("#replay-info", Static).update(info or self._info(rec))
        self._open_input(False)
        timeline = self.query_one(ReplayTimeline)
        timeline.set_steps(rec.steps, cursor)
        if not same_task:
            timeline.focus()

    def _info(self, rec: Reconstruction) -> Text:
        v = rec.agent_version
        t = Text()
        t.append_text(plain(rec.task_id, 60, single_line=True, style="bold"))
        t.append("  request ")
        t.append_text(plain(rec.request_id or "— (task_start missing)", 60, single_line=True, style="bold"))
        t.append("  ")
        t.append_text(plain(f"{rec.agent or '?'} {v.get('id', '?')} · {rec.cohort or '?'}/{rec.stage or '?'}", 80,
                            single_line=True))
        t.append("  outcome ")
        t.append_text(plain(rec.outcome or "running", 20, style="bold"))
        t.append(f"  {len(rec.steps)} steps")
        if rec.gaps:
            t.append(f"  {sum(b - a + 1 for a, b in rec.gaps)} missing", "bold red")
        t.append("\n")
        parts = " · ".join(f"{k} {v[k]}" for k in ("prompt", "model", "policy", "tool_schema") if v.get(k))
        t.append_text(plain(f"version: {parts or '— (no version parts recorded)'}", 200, single_line=True, style="dim"))
        t.append("\n")
        t.append_text(plain("policies: " + (", ".join(rec.policy_versions) or "none checked"), 200, single_line=True,
                            style="dim"))
        t.append("  ")
        t.append_text(plain(self._contract_line(rec), 200, single_line=True, style="dim"))
        t.append("\n")
        t.append_text(plain(rec.request, 300, single_line=True))
        return t

    @staticmethod
    def _contract_line(rec: Reconstruction) -> str:
        c = rec.contract
        if c is None:
            return "contract: not available"
        if "error" in c:
            return f"contract: {c['error']}"
        violations = len(c.get("violations") or [])
        if not c.get("path"):
            return f"contract: none for {c.get('agent')}"
        return (f"contract: {Path(c['path']).name} (stage {c.get('stage_of_version') or '—'}, "
                f"{len(c.get('actions') or {})} actions, {violations} violation{'s' if violations != 1 else ''})")

    # ---- navigation -----------------------------------------------------------------------

    def on_replay_timeline_moved(self, message: ReplayTimeline.Moved) -> None:
        rec = self.rec
        step = rec.steps[message.index] if rec and 0 <= message.index < len(rec.steps) else None
        self.query_one(ReplayDetail).show(step, rec)

    def _timeline(self) -> ReplayTimeline:
        return self.query_one(ReplayTimeline)

    def action_step(self, delta: int) -> None:
        self._timeline().cursor += delta

    def action_first(self) -> None:
        self._timeline().cursor = 0

    def action_last(self) -> None:
        self._timeline().cursor = len(self._timeline().steps) - 1

    def action_decision(self) -> None:
        """Jump to the next decision point (escalation, decision, action), wrapping around."""
        if self.rec is None:
            return
        points = self.rec.decision_points
        if not points:
            self._status("This task has no escalation, decision or action.")
            return
        cursor = self._timeline().cursor
        self._timeline().cursor = next((i for i in points if i > cursor), points[0])

    def action_play(self) -> None:
        if self._player is not None:
            self._stop_playing("paused")
            return
        if self.rec is None:
            return
        timeline = self._timeline()
        if timeline.cursor >= len(timeline.steps) - 1:
            timeline.cursor = 0
        self._player = self.set_interval(PLAY_INTERVAL, self._tick)
        self._status("playing — space pauses")

    def _tick(self) -> None:
        timeline = self._timeline()
        if timeline.cursor >= len(timeline.steps) - 1:
            self._stop_playing("end of the task")
            return
        timeline.cursor += 1

    def _stop_playing(self, why: str) -> None:
        if self._player is not None:
            self._player.stop()
            self._player = None
        self._status(why)

    def on_screen_suspend(self) -> None:
        if self._player is not None:
            self._stop_playing("paused")

    # ---- opening by id ----------------------------------------------------------------------

    def _open_input(self, show: bool, *, focus: bool = False) -> None:
        # Shown but not focused unless asked (o): a focused input would swallow the 1-4 screen keys.
        box = self.query_one("#replay-open", Input)
        box.display = show
        if show and focus:
            box.focus()

    def action_open(self) -> None:
        self._open_input(True, focus=True)

    def action_close_open(self) -> None:
        self._open_input(self.rec is None)
        self._timeline().focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        wanted = event.value.strip()
        if not wanted:
            return
        event.input.value = ""
        self.app.replay_task = wanted

    # ---- compensation and evidence ------------------------------------------------------------

    def _status(self, message: str | Text) -> None:
        self.query_one("#replay-status", Static).update(message if isinstance(message, Text) else Text(message))

    def _current_action_id(self) -> str | None:
        if self.rec is None or not self.rec.steps:
            return None
        step = self.rec.steps[self._timeline().cursor]
        if step.kind in ("action", "compensation") and isinstance(step.data, dict):
            return step.data.get("action_id")
        return None

    def action_compensate(self) -> None:
        action_id = self._current_action_id()
        if action_id is None:
            if self.rec is not None and self.rec.actions:
                self._status("Move to an action step (d jumps to decision points) to compensate it.")
            else:
                self._status("This task took no action: nothing to compensate.")
            return
        self._prepare(action_id)

    @work(thread=True, exclusive=True, group="replay-prepare")
    def _prepare(self, action_id: str) -> None:
        prepared = compensate.prepare(self.app.store.reader(), action_id, self.app.allow_hosts)
        self.app.call_from_thread(self._confirm, prepared, action_id)

    def _confirm(self, prepared, action_id: str) -> None:
        def done(attempted: bool | None) -> None:
            if attempted:
                self._loaded_key = None
                self.reload()

        self.app.push_screen(CompensationDialog(prepared, action_id), done)

    def action_export(self) -> None:
        if self.rec is None:
            self._status("Open a task first.")
            return
        stamp = datetime.fromtimestamp(self.app.now(), UTC).strftime("%Y%m%dT%H%M%SZ")
        # Named after a slug of the (untrusted) task id: "../" in an id cannot leave the evidence folder.
        out = evidence_dir() / packet_filename(self.rec.task_id, stamp)
        self._status(plain(f"writing the evidence packet for {self.rec.task_id}…", 200, single_line=True))
        self._export(self.rec.task_id, out)

    @work(thread=True, exclusive=True, group="replay-export")
    def _export(self, task_id: str, out: Path) -> None:
        folder = evidence_dir().resolve()
        if not out.resolve().is_relative_to(folder):  # belt and braces: resolve() follows any symlink too
            self.app.call_from_thread(
                self._status, plain(f"Export refused: {out} is outside the evidence folder {folder}", style="bold red"))
            return
        n = 1
        while out.exists():  # two exports in one second: never overwrite a packet already handed out
            n += 1
            out = out.with_name(f"{out.stem.split('~')[0]}~{n}{out.suffix}")
        try:
            _, detail = export(self.app.store.writer(), task_id, fmt="md", out=out, operator=self.app.operator,
                               now=self.app.now())
        except (EvidenceError, OSError) as exc:
            self.app.call_from_thread(self._status, plain(f"Export failed: {exc}", style="bold red"))
            return
        msg = Text("Evidence packet written to ", style="bold green")
        msg.append_text(plain(str(out.resolve()), 200))
        msg.append(f"  (sha256 {detail['digest'][:12]}…, {detail['redactions']} secrets redacted, audit record added)")
        self.app.call_from_thread(self._status, msg)
