"""Replay: one task's decision path, step by step, with undo and evidence export.

Shows ``app.replay_task`` (a task id or request id, set by ``app.open_replay``
from Tasks, Escalations, Canary or here with ``o``). The reconstruction
(``DeckService.replay``) is read in a thread worker; the timeline draws only
visible lines, so a 10,000-step task opens as fast as its SELECT.
Compensation and export each run whole in one worker (``DeckService``).
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Input, Static

from agentdeck.console.safe import plain
from agentdeck.console.screens.base import DeckScreen
from agentdeck.console.service.views import ActionResult, CompensationPrompt, Reconstruction, ReplayView
from agentdeck.console.widgets.compensation_dialog import CompensationDialog
from agentdeck.console.widgets.prompt_input import PromptInput
from agentdeck.console.widgets.replay_detail import ReplayDetail
from agentdeck.console.widgets.replay_timeline import ReplayTimeline

PLAY_INTERVAL = 0.6


class ReplayScreen(DeckScreen):
    MODE = "replay"
    READ_AHEAD = True  # a switch here reads first and shows the screen once (SwitchAhead)
    CSS_PATH = "replay.tcss"
    AUTO_FOCUS = "#replay-timeline"  # not the id input: it would swallow the 1-4 screen keys
    # Footer order: at 80 columns the footer cuts the last keys it shows, so the way to an
    # action (]) and to undo it (c) come before play/pause, export and open.
    FOCUSING_ACTIONS = frozenset({"open", "close_open"})
    BINDINGS = [
        Binding("n", "step(1)", "Next"),
        Binding("p", "step(-1)", "Prev"),
        Binding("right_square_bracket", "decision(1)", "Next decision", key_display="]"),
        Binding("left_square_bracket", "decision(-1)", "Prev decision", key_display="[", show=False),
        Binding("c", "compensate", "Compensate"),
        Binding("space", "play", "Play/pause"),
        Binding("e", "export", "Export evidence"),
        Binding("o", "open", "Open id"),
        Binding("escape", "close_open", "Close input", show=False),
    ]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.rec: Reconstruction | None = None
        self.view: ReplayView | None = None
        self._loaded_key: tuple | None = None
        self._loading: str | None = None
        self._again = False
        self._player = None
        self._choosing = False  # showing "no task chosen" (nothing to read, nothing to redraw)
        self._loading_heard = 0  # store changes heard when the load in flight began
        # Store changes are numbered as they become known (AgentDeck.next_change_seq): the highest number
        # heard, and the highest the data shown was checked current after (each change up to it committed
        # before the check).
        self._heard_seq = 0
        self._checked_seq = 0
        # The next answer is the first for an id just asked for (o id Enter, open_replay): an id not found then
        # focuses the box for another; a re-read of the same id (each store change) leaves the focus alone.
        self._asked = False

    def compose_body(self) -> ComposeResult:
        yield Static("", id="replay-info")
        # Enter closes it and focuses the timeline at once: o task-0002 Enter j in one read moves on the timeline
        # of the task opened, instead of typing j into the box (PromptInput).
        yield PromptInput(placeholder="task id or request id, then Enter", id="replay-open", max_length=200,
                          leave_to="#replay-timeline")
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
        self._checked_seq = 0  # (checked for the task shown until now, not for the one asked for)
        self._asked = True
        self.reload()

    def reload(self) -> None:
        wanted = self.app.replay_task
        if not wanted:
            if not self._choosing:  # (shown already: redrawing the same widgets made each switch here redraw them)
                self._show_empty("No task chosen: press o and type a task id or request id "
                                 "(or press r on a task in Tasks or on an escalation).")
                self._choosing = True
            return
        self._choosing = False
        if self._loading == wanted:
            # Already on its way (mount, resume, the reactive and a switch's read-ahead can all ask at once):
            # read once more after it only if the store changed since it began (that read does not cover it).
            self._again = self._again or self._changes_heard > self._loading_heard
            return
        self._loading = wanted
        self._again = False
        self._load(wanted)

    def _load(self, wanted: str) -> None:
        self._loading_heard = self._changes_heard
        deck, known = self.deck, self._loaded_key
        trace = getattr(self.app, "replay_files", {}).get(wanted)  # a suite run's trace file, not the store

        app = self.app

        def rebuild() -> tuple[ReplayView | None, tuple[int, int] | None]:
            view = deck.replay(wanted, known)
            if view is None or view.rec is None:
                return view, None
            # A rebuild takes a while and a busy fleet commits many times meanwhile: if the task's change key
            # is the same after it, it covers every change heard by now, and every change numbered by now
            # (heard later), and needs no second read for them (that read was a worker round trip more before
            # the screen settled: issue 9). Both are read before the check: each was committed before it.
            heard, known_seq = self._changes_heard, getattr(app, "change_known", 0)
            return view, (heard, known_seq) if deck.replay_current(view) else None

        job = (lambda: (deck.replay_trace(trace, known, wanted), None)) if trace else rebuild
        self.read("replay-load", job, lambda answer: self._loaded(wanted, *answer),
                  on_error=lambda message: self._load_failed(wanted, message))

    def _load_failed(self, wanted: str, message: str) -> None:
        if self._loading == wanted:
            self._loading = None
        self.notify(message, title="Replay", severity="error", timeout=10, markup=False)

    def _loaded(self, wanted: str, view: ReplayView | None, checked: tuple[int, int] | None = None) -> None:
        if view is not None:
            self._show(view)
        if checked is not None and view is not None and self.view is view:
            # What is shown was checked current after the first ``heard`` changes and those numbered to ``seq``.
            heard, seq = checked
            self._checked_seq = max(self._checked_seq, seq)
            if seq and self._heard_seq <= seq:  # every change heard so far was numbered before the check
                heard = self._changes_heard
            self.covered_up_to(heard)
            if self._changes_heard <= heard:
                self._again = False
        if self._loading == wanted:
            self._loading = None
            if self._again:  # something changed while we were reading: read once more (cheap if nothing did)
                self._again = False
                self.reload()

    def _data_changed(self, version: int) -> None:
        seq = getattr(self.app, "change_heard", 0)
        self._heard_seq = max(self._heard_seq, seq)
        if seq and seq <= self._checked_seq and self._changes_covered >= self._changes_heard:
            # Committed before what is shown was checked current (heard only now): nothing new to read.
            self._changes_heard += 1
            self.covered_up_to(self._changes_heard)
            return
        super()._data_changed(version)

    def _show_empty(self, message: str) -> None:
        self.rec = None
        self.view = None
        self.query_one("#replay-info", Static).update(Text(message, style="dim"))
        self.query_one(ReplayTimeline).set_steps([])
        self.query_one(ReplayDetail).show(None, None)
        self._open_input(True)

    def _show(self, view: ReplayView) -> None:
        wanted, key, rec = view.wanted, view.key, view.rec
        if wanted != self.app.replay_task:
            return  # a newer request is on its way
        asked, self._asked = self._asked, False
        if rec is None:
            self._loaded_key = None
            self._show_empty("")
            missing = (f"The trace file {view.source} holds no task the store could read (see its rejected lines "
                       "with `agentdeck check`)." if view.source else
                       f"No task or request {wanted!r} in the store.")
            self.query_one("#replay-info", Static).update(
                plain(f"{missing} Press o to type another id.", style="bold red"))
            # Ready for another id at once (Enter closed the box and focused the empty timeline). Only for the
            # answer to the id just asked for: the re-reads each store change brings (a live fleet: several a
            # second) pulled the focus back into the box after Esc, and the next screen key was typed into it.
            self._open_input(True, focus=asked)
            return
        same_task = self.rec is not None and self.rec.task_id == rec.task_id
        cursor = self.query_one(ReplayTimeline).cursor if same_task else 0
        self.rec = rec
        self.view = view
        self._loaded_key = key
        self.query_one("#replay-info", Static).update(self._info(rec, abandoned=view.abandoned))
        # The box has the focus: opened with o since this was asked for (a re-read of a running task, the answer to
        # an id typed just before), and an id is being typed. It stays open and focused: closed under the typing,
        # the keys after it went to the screen's bindings (1 switched screen, e exported evidence).
        typing = self.focused is self.query_one("#replay-open", Input)
        self._open_input(typing)
        if view.source:
            self._status(plain(f"suite run trace {view.source} (read into a throwaway store; not in the live store)",
                               300, single_line=True, style="dim"))
        timeline = self.query_one(ReplayTimeline)
        timeline.set_steps(rec.steps, cursor)
        if not same_task and not typing:
            timeline.focus()

    def _info(self, rec: Reconstruction, *, abandoned: bool = False) -> Text:
        v = rec.agent_version
        t = Text()
        # How it ended and how many steps first: at 80 columns the line is cut at its end.
        t.append_text(plain(rec.task_id, 60, single_line=True, style="bold"))
        t.append("  outcome ")
        if rec.outcome is None and abandoned:  # silent past --abandon-after (computed when read)
            t.append("abandoned", "dim")
        else:
            t.append_text(plain(rec.outcome or "running", 20, style="bold"))
        undone = sum(1 for a in rec.actions if a.compensated_at is not None and a.compensation_status == "ok")
        if undone:  # "success" alone would hide that a human undid what the agent did
            t.append(f" (undone: {undone} action{'s' if undone != 1 else ''} compensated)", "bold red")
        t.append(f"  {len(rec.steps)} steps")
        if rec.gaps:
            t.append(f"  {sum(b - a + 1 for a, b in rec.gaps)} missing", "bold red")
        t.append("  ")
        t.append_text(plain(f"{rec.agent or '?'} {v.get('id', '?')} · {rec.cohort or '?'}/{rec.stage or '?'}", 80,
                            single_line=True))
        t.append("  request ")
        t.append_text(plain(rec.request_id or "— (task_start missing)", 60, single_line=True, style="bold"))
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
            unusable = c.get("unusable_files") or 0
            if unusable:  # (its agent's may be the one that could not be read: Problems names the files)
                return (f"contract: none for {c.get('agent')}, and {unusable} contract file"
                        f"{'s' if unusable != 1 else ''} cannot be used (see Problems, 5)")
            return f"contract: none for {c.get('agent')}"
        return (f"contract: {Path(c['path']).name} (stage {c.get('stage_of_version') or '—'}, "
                f"{len(c.get('actions') or {})} actions, {violations} violation{'s' if violations != 1 else ''})")

    # ---- navigation -----------------------------------------------------------------------

    def on_replay_timeline_moved(self, message: ReplayTimeline.Moved) -> None:
        rec = self.rec
        step = rec.steps[message.index] if rec and 0 <= message.index < len(rec.steps) else None
        self.query_one(ReplayDetail).show(step, rec, self.view)

    def _timeline(self) -> ReplayTimeline:
        return self.query_one(ReplayTimeline)

    def action_step(self, delta: int) -> None:
        self._timeline().cursor += delta

    def action_decision(self, direction: int = 1) -> None:
        """Jump to the next (``]``) or previous (``[``) decision point (escalation, decision, action), wrapping."""
        if self.rec is None:
            return
        points = self.rec.decision_points
        if not points:
            self._status("This task has no escalation, decision or action.")
            return
        cursor = self._timeline().cursor
        if direction < 0:
            self._timeline().cursor = next((i for i in reversed(points) if i < cursor), points[-1])
        else:
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
        box = self.query_one("#replay-open", PromptInput)
        editing = box.display and self.focused is box  # (an id being typed: the keys queued on the box are its)
        box.display = show
        if show and focus:
            self.set_focus(box)  # now, not queued behind the keys read with o (FOCUSING_ACTIONS)
            if not editing:
                box.opened()

    def action_open(self) -> None:
        self._open_input(True, focus=True)

    def action_close_open(self) -> None:
        self._open_input(self.rec is None)
        self.set_focus(self._timeline())  # now: the keys read with Esc are the timeline's (FOCUSING_ACTIONS)

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

    def _from_file(self) -> bool:
        if self.view is not None and self.view.source:
            self._status("A suite run's trace: nothing in it happened in a real system (no undo, no evidence).")
            return True
        return False

    def action_compensate(self) -> None:
        if self._from_file():
            return
        action_id = self._current_action_id()
        if action_id is None:
            if self.rec is not None and self.rec.actions:
                self._status("Move to an action step (] jumps to decision points) to compensate it.")
            else:
                self._status("This task took no action: nothing to compensate.")
            return
        self._prepare(action_id)

    def _prepare(self, action_id: str) -> None:
        deck = self.deck
        self.read("replay-prepare", lambda: deck.compensation_prompt(action_id), self._confirm, covers=False)

    def _confirm(self, prompt: CompensationPrompt) -> None:
        def done(attempted: bool | None) -> None:
            if attempted:
                self._loaded_key = None
                self.reload()

        self.open_dialog(CompensationDialog(prompt), done, what="Compensation", key="c")

    def action_export(self) -> None:
        if self._from_file():
            return
        if self.rec is None:
            self._status("Open a task first.")
            return
        task_id, deck = self.rec.task_id, self.deck
        self._status(plain(f"writing the evidence packet for {task_id}…", 200, single_line=True))
        self.act("replay-export", lambda: deck.export_evidence(task_id), self._exported)

    def _exported(self, result: ActionResult) -> None:
        if not result.ok:
            self._status(plain(result.message, style="bold red"))
            return
        d = result.detail
        msg = Text("Evidence packet written to ", style="bold green")
        msg.append_text(plain(d["path"], 200))
        msg.append(f"  (sha256 {d['digest'][:12]}…, {d['redactions']} secrets redacted, audit record added)")
        self._status(msg)
        self.app.store_written()  # type: ignore[attr-defined]
