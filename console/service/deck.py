"""``DeckService``: the one thing the console's screens talk to.

Reads return views (``console.service.views``); actions run whole — record,
deliver or call, and read back what the screen shows — and return one
``ActionResult``. Every method does I/O: call them from worker threads,
never from the UI thread. Each thread gets its own read connection; writes
use this thread's own read-write connection, through ``store.txn.atomic``
(inside the store functions called here, or directly).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections import OrderedDict
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentdeck.console.service import views
from agentdeck.console.service.settings import Settings
from agentdeck.console.service.tail_window import merge_tail
from agentdeck.console.service.text import step_summary
from agentdeck.console.service.views import ActionResult, TaskFilter, TaskKey, TaskPage, Window
from agentdeck.console.service.views import detail_key, redact
from agentdeck.store import queries
from agentdeck.store.db import connect
from agentdeck.store.txn import StoreError

if TYPE_CHECKING:
    from agentdeck.console.service.delivery import DeliverySettings
    from agentdeck.console.service.reach import Reach
    # (The views of what follows the first frame: created when first used, as views.X, views_later.py.)
    from agentdeck.console.service.views import (
        CanaryView, CompensationPrompt, EscalationQueue, EscalationView, ReleaseView, ReplayView, SuiteSummary,
        TaskDetail,
    )
    from agentdeck.replay.http_clients import ClientPool

# store.decisions, store.canary, store.contract and replay.* are imported where
# used: the console's first paint (Tasks) needs none of them.

log = logging.getLogger(__name__)

WINDOW = 200  # rows the Tasks table holds at most
MAX_EVENTS = 2000  # task detail: a task with more shows its first MAX_EVENTS and says so
QUEUE_SHOWN = 500  # pending escalations the queue shows at most (orphaned ones after those whose agent waits)
MAX_STEPS = 80  # escalation detail: steps of the task listed


def _clean_error(exc: BaseException, limit: int = 300) -> str:
    return f"{exc}"[:limit] if isinstance(exc, StoreError) else f"{type(exc).__name__}: {exc}"[:limit]


REPLAYS_KEPT = 4  # reconstructions kept (a 10,000-step task: a few MB)
# A console following traces starts an ingest process whose canary analyst stores every pair's report
# (store/canary_reports.py). Until its first round is in (seconds on a big store, more on a busy machine)
# the release tick leaves a pair without a current stored report for a later tick instead of analysing it
# here: the same analysis twice at start-up, the console's copy holding the UI's interpreter for seconds
# (profiled on 1M events: release ticks of 5-8 s beside the analyst's first round, key presses and live
# rows waiting behind them). Past this, or when the analyst says it failed, the tick analyses here as before.
ANALYST_FIRST_ROUND_S = 120.0


class DeckService:
    """Reads and actions over one store, for one operator, with one clock."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self.db_path = Path(settings.db)
        self._local = threading.local()
        self._contracts: Any = None  # store.contract.ContractCheck, made on the first canary read
        self._local_routes: Any = None  # console.notify.local.LocalRoutes: this process's bell/desktop state
        self._delivery: DeliverySettings | None = None  # made on first use (``delivery``)
        # HTTP clients (callbacks, release hooks, compensations), one per timeout, shared by every call: making one
        # costs 0.1-0.3 s of CPU. Closed by close() (the app calls it on exit). The pool itself is made on first
        # use (``http``): its module imports http.cookiejar, and with it urllib.request, http.client and email,
        # ~15 ms of CPU the console's first frame does not need.
        self._http: ClientPool | None = None
        self._lazy_lock = threading.Lock()  # (delivery and http: made once, by whichever thread asks first)
        # The last few reconstructions, by their change key (see replay): going back to a task
        # that did not change costs no rebuild (10,000 steps: ~80 ms of CPU each time otherwise).
        self._replays: OrderedDict[tuple, ReplayView] = OrderedDict()
        self._replays_lock = threading.Lock()
        self.release_error: str | None = None  # the last release tick failed: why (the console shows it)
        self._release_seen: tuple | None = None  # (tasks' newest change, contracts) at the last release tick
        self._release_timed = False  # a hold then was waiting on escalate_hold_after: the clock alone may change it
        # Until then (monotonic), a pair without a current stored report waits for this console's analyst
        # (expect_analyst: set by the app when it starts its ingest process).
        self.analyst_grace_until = 0.0
        self._started_at = time.time()  # wall clock, as the analyst stamps its rounds
        connect(self.db_path).close()  # create and migrate before any reader opens it

    @property
    def delivery(self) -> DeliverySettings:
        """Where and how decisions are delivered (the outbox, the allowed hosts, attempts); made on first use, with
        its module, after the first frame (``startup`` delivers what a previous run left pending)."""
        with self._lazy_lock:
            if self._delivery is None:
                from agentdeck.console.service.delivery import DeliverySettings

                self._delivery = DeliverySettings(self.settings.outbox, self.settings.allow_hosts)
            return self._delivery

    @property
    def http(self) -> ClientPool:
        """The shared HTTP clients (replay.http_clients), made on first use, from any thread."""
        with self._lazy_lock:
            if self._http is None:
                from agentdeck.replay.http_clients import ClientPool

                self._http = ClientPool()
            return self._http

    def close(self) -> None:
        """The console is exiting: close the shared HTTP clients (their kept-alive connections), if any was made."""
        with self._lazy_lock:
            pool = self._http
        if pool is not None:
            pool.close()

    # -- connections and time ---------------------------------------------------

    def now(self) -> float:
        return self.clock()

    def reader(self) -> sqlite3.Connection:
        """This thread's read-only connection."""
        conn = getattr(self._local, "ro", None)
        if conn is None:
            conn = self._local.ro = connect(self.db_path, readonly=True)
        return conn

    def writer(self) -> sqlite3.Connection:
        """This thread's read-write connection (human decisions, deliveries, audit records)."""
        conn = getattr(self._local, "rw", None)
        if conn is None:
            conn = self._local.rw = connect(self.db_path)
        return conn

    @property
    def operator(self) -> str:
        return self.settings.user

    @property
    def allow_hosts(self) -> frozenset[str]:
        return self.settings.allow_hosts

    @property
    def on_expiry(self) -> str:
        return self.settings.on_expiry

    @property
    def outbox_description(self) -> str:
        if self.delivery.outbox is None:
            return "outbox off (no trace folder; callbacks only)"
        return f"outbox {self.delivery.outbox}"

    # -- Tasks -----------------------------------------------------------------------

    def abandoned_before(self) -> float | None:
        """Tasks silent (no task_end, no event) since before this time show as abandoned; None: never."""
        after = self.settings.abandon_after
        return self.now() - after if after > 0 else None

    def counters(self) -> queries.Counters:
        return queries.counters(self.reader(), self.now())

    def task_page(self, filt: TaskFilter, window: Window, limit: int = WINDOW, *, held: TaskPage | None = None,
                  tail: int = 0) -> TaskPage:
        """One window of the Tasks list (keyset paging over ``store.queries``).

        ``held`` and ``tail`` (following only): read just the newest ``tail`` tasks and keep the older rows of
        ``held``, the window read before for the same filter (``tail_window.merge_tail``).
        """
        conn = self.reader()
        filt = replace(filt, abandoned_before=self.abandoned_before())  # rows carry ``abandoned``; the filter uses it
        if held is not None and window.kind == "follow" and 0 < tail < limit:
            page = merge_tail(held, queries.tasks_newest(conn, filt, tail, listed=True), tail, limit)
            if page is not None:
                return page  # (None: more new tasks than the tail since held was read; read it all)
        anchor: TaskKey | None
        if window.kind == "follow":
            anchor = None
        elif window.kind == "oldest":
            first = queries.tasks_from(conn, filt, None, 1)
            anchor = queries.task_key(first[0]) if first else None
        elif window.kind == "before" and window.key is not None:
            anchor = queries.key_before(conn, filt, window.key, window.steps) or window.key
        else:
            anchor = window.key
        if anchor is None and window.kind == "follow":
            rows = queries.tasks_newest(conn, filt, limit, listed=True)
            newer = 0
        else:
            rows = queries.tasks_from(conn, filt, anchor, limit, listed=True)
            newer = queries.count_after(conn, filt, queries.task_key(rows[-1])) if rows else 0
        older = bool(rows) and queries.key_before(conn, filt, queries.task_key(rows[0]), 1) is not None
        return TaskPage(tuple(rows), older, newer, anchor)

    def task_detail(self, task_id: str) -> TaskDetail:
        """A task and its first events, payloads with secrets masked."""
        conn = self.reader()
        task = queries.task(conn, task_id)
        rows = queries.task_events(conn, task_id, limit=MAX_EVENTS)
        events, payloads, masked = [], [], 0
        for r in rows:
            payload, n = _masked_payload(r["payload"])
            masked += n
            payloads.append(payload)
            events.append({"id": r["id"], "seq": r["seq"], "kind": r["kind"], "ts": r["ts"], "payload": payload})
        abandoned = queries.is_abandoned(task, self.abandoned_before())
        return views.TaskDetail(task_id, task, tuple(events), tuple(payloads), masked, abandoned=abandoned,
                          key=detail_key(task_id, task, abandoned))

    def task_detail_if_changed(self, task_id: str, known: tuple | None) -> TaskDetail | None:
        """``task_detail``, or None when ``known`` (the ``TaskDetail.key`` the caller shows) is still current.

        The open task is re-read on every store change (a busy fleet: ten a second) and mostly has not
        changed: its row (one primary-key lookup) says so without reading and masking its events again.
        """
        if known is not None:
            task = queries.task(self.reader(), task_id)
            if detail_key(task_id, task, queries.is_abandoned(task, self.abandoned_before())) == known:
                return None
        return self.task_detail(task_id)

    def find_tasks(self, prefix: str, limit: int = 8) -> Sequence[views.Row]:
        """Tasks whose id or request id starts with ``prefix`` (the command palette)."""
        return queries.tasks_by_prefix(self.reader(), prefix, limit=limit)

    # -- Escalations -------------------------------------------------------------------

    def escalation_queue(self, history: bool) -> EscalationQueue:
        from agentdeck.store import decisions

        conn = self.reader()
        if history:
            return views.EscalationQueue(tuple(decisions.decided(conn)), history, decisions.count(conn, pending=False))
        # Where each distinct callback URL's decision would go, then one query that lists the orphaned last.
        by_url = self._reach_by_url(conn, decisions.pending_callback_urls(conn))
        orphan_urls = [u for u, r in by_url.items() if u is not None and r.orphaned]
        no_url = by_url.get(None)
        rows = decisions.pending(conn, limit=QUEUE_SHOWN, last_urls=orphan_urls,
                                 no_url_last=no_url is not None and no_url.orphaned)
        reaches = self._reaches(conn, rows, by_url)
        return views.EscalationQueue(tuple(rows), history, decisions.count(conn, pending=True),
                               reach={r["escalation_id"]: reaches[r["escalation_id"]] for r in rows})

    def _reach_by_url(self, conn: sqlite3.Connection, urls: Sequence[str | None]) -> dict[str | None, Reach]:
        """Where a decision goes for each callback URL (None: no URL); console.service.reach."""
        from agentdeck.console.service.reach import reach, unreachable_origins
        from agentdeck.replay.hosts import check_url
        from agentdeck.store import decisions

        gone = unreachable_origins(decisions.callback_deliveries(conn)) if self.delivery.outbox is None else frozenset()
        return {url: reach(url, self.delivery.outbox, check_url(url, self.allow_hosts) if url else None, gone)
                for url in dict.fromkeys(u or None for u in urls)}

    def _reaches(self, conn: sqlite3.Connection, rows: Sequence[views.Row],
                 by_url: dict[str | None, Reach] | None = None) -> dict[str, Reach]:
        """Where a decision on each of these escalations would go."""
        if by_url is None:
            by_url = self._reach_by_url(conn, [r["callback_url"] for r in rows])
        return {r["escalation_id"]: by_url[r["callback_url"] or None] for r in rows}

    def escalation(self, escalation_id: str) -> EscalationView | None:
        from agentdeck.replay.hosts import check_url
        from agentdeck.store import decisions

        conn = self.reader()
        row = decisions.escalation(conn, escalation_id)
        if row is None:
            return None
        task = queries.task(conn, row["task_id"])
        events = queries.task_events(conn, row["task_id"], limit=MAX_STEPS + 1)
        steps = []
        for e in events[:MAX_STEPS]:
            payload, _ = _masked_payload(e["payload"])
            steps.append((e["seq"], e["kind"], step_summary(e["kind"], payload)))
        more = (task["events"] - MAX_STEPS) if task is not None and len(events) > MAX_STEPS else 0
        url = row["callback_url"]
        problem = check_url(url, self.allow_hosts) if url else None
        where = self._reaches(conn, [row])[row["escalation_id"]] if row["status"] == "pending" else None
        release = self._release_view(conn, row) if row["kind"] == "release" else None
        return views.EscalationView(dict(row), dict(task) if task is not None else None, tuple(steps), max(more, 0),
                              callback_problem=problem, reach=where, release=release)

    def _release_view(self, conn: sqlite3.Connection, row: sqlite3.Row) -> ReleaseView | None:
        """The evidence of a promotion or roll back item and what it has done (stage changes, hook answers)."""
        from agentdeck.replay.hosts import check_url
        from agentdeck.store import release

        item = conn.execute("SELECT * FROM release_items WHERE escalation_id = ?", (row["escalation_id"],)).fetchone()
        if item is None:
            return None
        contract = self._book(conn).get(item["agent"])
        try:
            verdict = json.loads(item["verdict"])
        except ValueError:
            verdict = {}
        try:
            suite = json.loads(item["suite"]) if item["suite"] else None
        except ValueError:
            suite = None
        hook = contract.release_hook if contract is not None else None
        return views.ReleaseView(dict(item), verdict if isinstance(verdict, dict) else {},
                           suite if isinstance(suite, dict) else None,
                           release.effective(conn, contract, item["agent"], item["version"]).describe(),
                           tuple(dict(c) for c in release.changes_for(conn, row["escalation_id"])),
                           hook, check_url(hook, self.allow_hosts) if hook else None)

    def _book(self, conn: sqlite3.Connection) -> Any:
        from agentdeck.store.contract import ContractCheck

        if self._contracts is None:
            self._contracts = ContractCheck()
        return self._contracts.book(conn)

    def read_only_refusal(self, what: str) -> ActionResult | None:
        """The answer to an acting key in a read-only console (None: this console may act)."""
        if not self.settings.read_only:
            return None
        return ActionResult(False, f"Read-only console: not {what}. This console was started to watch "
                                   "(--read-only); ask someone who may act, or start it without --read-only.",
                            "warning")

    def approval_refusal(self, escalation_id: str) -> str | None:
        """Why this console's operator may not approve this escalation (approver rules, two-person rule);
        asked before the reason dialog opens, so nobody types a reason for nothing."""
        from agentdeck.store import decisions

        if self.settings.read_only:
            return "this console is read-only (--read-only)"
        try:
            return decisions.approval_refusal(self.reader(), escalation_id, by=self.operator,
                                              rules=self.settings.approvers)
        except sqlite3.Error:
            return None  # decide() checks again when it writes

    def decide(self, escalation_id: str, decision: str, reason: str, history: bool = False) -> ActionResult:
        """Record a decision (first wins, audited), deliver it, and read the queue back: one trip."""
        from agentdeck.store import decisions

        refused = self.read_only_refusal(f"{decision} {escalation_id}")
        if refused is not None:
            return refused
        conn = self.writer()
        try:  # where it can go, read before it is decided (the toast must not promise a delivery nobody gets)
            row = decisions.escalation(conn, escalation_id)
            before = self._reaches(conn, [row])[escalation_id] if row is not None else None
        except sqlite3.Error:
            before = None
        try:
            outcome = decisions.decide(conn, escalation_id, decision, by=self.operator, reason=reason,  # type: ignore[arg-type]
                                       now=self.now(), on_expiry=self.settings.on_expiry,
                                       rules=self.settings.approvers)
        except decisions.DecisionError as exc:
            return ActionResult(False, f"Not recorded: {exc}", "error")
        except sqlite3.Error as exc:  # e.g. the store stayed locked past the busy timeout
            log.exception("deciding %r", escalation_id)
            return ActionResult(False, f"Not recorded ({_clean_error(exc, 200)}); try again.", "error")
        esc = escalation_id
        if outcome.awaiting_second:
            # The two-person rule: this approval is recorded (audited) and waits
            # for a second, different approver; nothing is delivered yet.
            return ActionResult(True, f"{esc}: {outcome.note or 'recorded; waiting for a second approver'}. "
                                      "Nothing is delivered until a second, different approver approves.",
                                "warning", changed=True, detail={"queue": self.escalation_queue(history)})
        if not outcome.applied:
            return ActionResult(False, self.already(outcome.escalation_id, outcome.status, outcome.decided_by,
                                                    outcome.decided_at) + " Nothing changed.", "warning",
                                detail={"queue": self.escalation_queue(history)})
        state = self._deliver(esc)
        # A promotion or roll back item: its own stage change, to autonomy.jsonl and the hook. Only its own:
        # another item's slow or failing hook must not hold up this decision (the release tick publishes those).
        self.publish_stages(esc)
        if outcome.expired:
            message = (f"{esc} had passed its deadline: the expiry policy {outcome.status} it "
                       f"(you asked to {decision}).")
            severity = "warning"
        else:
            message = f"{outcome.status.capitalize()} {esc}."
            severity = "information"
        if before is not None and before.orphaned and state != "delivered":
            message += f" Nobody received it: {before.why}; it is only recorded."
            if state in ("failed", "blocked"):
                message += f" Delivery {state}: R retries (once an outbox is set or the agent is back)."
            severity = "warning"
        else:
            message += " " + _delivery_sentence(state)
        if state in ("failed", "blocked"):
            severity = "warning"
        return ActionResult(True, message, severity, changed=True,
                            detail={"queue": self.escalation_queue(history), "delivery": state})

    def retry_delivery(self, escalation_id: str, history: bool = False) -> ActionResult:
        """Put a failed or blocked delivery back to pending (audited) and deliver it now: one trip."""
        from agentdeck.store import decisions

        refused = self.read_only_refusal(f"retrying the delivery of {escalation_id}")
        if refused is not None:
            return refused
        try:
            ok = decisions.request_retry(self.writer(), escalation_id, by=self.operator, now=self.now())
            hooks = self._retry_release_hook(escalation_id)
        except sqlite3.Error as exc:
            log.exception("retrying %r", escalation_id)
            return ActionResult(False, f"Not retried ({_clean_error(exc, 200)}); try again.", "error")
        if hooks and not ok:
            states = self.publish_stages(escalation_id)
            good = all(s == "delivered" for s in states)
            return ActionResult(good, f"Retried the release hook of {escalation_id}: "
                                      + (", ".join(states) or "nothing to call") + ".",
                                "information" if good else "warning", changed=True,
                                detail={"queue": self.escalation_queue(history)})
        if not ok:
            return ActionResult(False, "Nothing to retry (already delivered or in progress).", "warning",
                                detail={"queue": self.escalation_queue(history)})
        state = self._deliver(escalation_id)
        return ActionResult(state == "delivered", f"Retried {escalation_id}. " + _delivery_sentence(state),
                            "information" if state == "delivered" else "warning", changed=True,
                            detail={"queue": self.escalation_queue(history), "delivery": state})

    def _retry_release_hook(self, escalation_id: str) -> int:
        from agentdeck.store import release

        return release.request_retry(self.writer(), escalation_id, by=self.operator, now=self.now())

    # -- Promotions and roll backs (store/release.py) ------------------------------------

    def release_tick(self) -> int:
        """Raise the promotion and roll back items the live verdicts ask for, then publish stage changes.

        The console's periodic tick runs this off the UI thread, whichever screen
        is open: a verdict must reach the queue (and a roll back demote the canary)
        even when nobody watches the Canary screen. Each item is raised once per
        (agent, version, transition) in the store, so every console on a store may
        tick. Never raises; returns how many items and changes it wrote.
        """
        if self.settings.read_only:
            return 0
        try:
            changed = self._release_tick()
        except Exception as exc:  # the next tick tries again; the console lists it on Problems meanwhile
            log.exception("release tick")
            self.release_error = _clean_error(exc, 300)  # names the type, unless a StoreError says it all
            return 0
        self.release_error = None
        return changed

    def _release_tick(self) -> int:
        from agentdeck.store import canary, release

        conn, rw = self.reader(), self.writer()
        book = self._book(conn)
        # Nothing ingested and no contract edited since the last tick: the verdicts are the same, so skip
        # them (seconds of CPU on a big store, on the console's process) unless a hold is waiting on the clock.
        seen = (tuple(conn.execute("SELECT max(updated_at), max(rowid) FROM tasks").fetchone()), self._contracts.token)
        if seen == self._release_seen and not self._release_timed:
            return len(self._publish(None))
        timed = False
        changed = 0
        now = self.now()
        waiting = False  # a pair's verdict was left for the analyst's first round
        coming: bool | None = None  # asked once a tick, when a pair first has no stored report
        for pair in canary.pairs(conn):
            contract = book.get(pair.agent)
            for version in (pair.baseline, pair.canary):
                changed += release.sync_contract(rw, contract, pair.agent, version, now=now)
            report = self._stored_report(conn, pair, now)
            if report is None and coming is None:
                coming = self._analyst_coming(conn)
            if report is None and coming:
                waiting = True
                continue
            if report is None:
                report = canary.analyse(conn, pair.agent, pair.baseline, pair.canary, window="all", now=now,
                                        contract=contract, sparklines=False, method="sequential")
            timed = timed or (report.verdict == canary.HOLD and contract is not None
                              and contract.canary.escalate_hold_after is not None)
            raised = release.enqueue(rw, report, contract, now=now,
                                     suite=lambda p=pair: release.suite_summary(conn, p.agent, p.canary))
            changed += raised is not None
        # Left for the analyst: the next tick looks again even if nothing is ingested meanwhile.
        self._release_seen, self._release_timed = (None if waiting else seen), timed
        return changed + len(self._publish(None))

    def expect_analyst(self, within: float = ANALYST_FIRST_ROUND_S) -> None:
        """This console has just started an ingest process, whose canary analyst will store every pair's
        report: until its first round is in (``within`` seconds at most) the release tick leaves a pair
        without a current stored report to it instead of analysing it here (see ANALYST_FIRST_ROUND_S)."""
        if not self.settings.read_only:
            self.analyst_grace_until = time.monotonic() + within
            self._started_at = time.time()

    def _analyst_coming(self, conn: sqlite3.Connection) -> bool:
        """This console's ingest process is starting its canary analyst, whose first round has not stored
        reports yet (see ANALYST_FIRST_ROUND_S); False once that is over or the analyst said it failed."""
        from agentdeck.store import canary_reports as cr

        if time.monotonic() >= self.analyst_grace_until:
            return False
        try:
            st = cr.state(conn)
        except sqlite3.Error:
            return False
        if st is not None and (st.error is not None or (st.stamp and st.pairs_at >= self._started_at)):
            # A round since this console started is in (or the analyst failed): stale now means analyse here.
            self.analyst_grace_until = 0.0
            return False
        return True

    def publish_stages(self, escalation_id: str | None = None) -> list[str]:
        """Publish stage changes not yet published (autonomy.jsonl, release hook); only ``escalation_id``'s when
        given. The hook states, one a change; a change that fails is marked failed, and Problems lists it."""
        try:
            return self._publish(escalation_id)
        except sqlite3.Error:  # the store could not list them: a decision already recorded still stands;
            log.exception("listing stage changes")  # the release tick publishes them (and says if it fails)
            return []

    def _publish(self, escalation_id: str | None) -> list[str]:
        """publish_stages without the guard: the release tick's failure is its release_error (Problems)."""
        from agentdeck.console.service.release_delivery import autonomy_path, publish_pending

        return publish_pending(self.writer(), autonomy_path(self.delivery.outbox), self.delivery,
                               escalation_id=escalation_id, clock=self.clock, clients=self.http)

    def _deliver(self, escalation_id: str) -> str | None:
        from agentdeck.console.service.delivery import deliver_one, give_up

        conn = self.writer()
        try:
            return deliver_one(conn, escalation_id, self.delivery, clients=self.http)
        except Exception as exc:  # never take the console down; the stored state says what happened
            log.exception("delivering %r", escalation_id)
            return give_up(conn, escalation_id, _clean_error(exc))

    def startup(self, sweep: bool) -> int:
        """What a console does once it is up: mask compensation plans an older version stored in
        clear, sweep expired escalations (when ticking) and deliver what is still pending.
        Returns how many rows changed."""
        from agentdeck.replay import compensate

        if self.settings.read_only:
            return 0  # a watching console decides nothing, not even by expiry, and delivers nothing
        changed = 0
        try:
            changed += compensate.mask_stored_plans(self.writer())
        except sqlite3.Error:
            log.exception("masking stored compensation plans")  # the console still starts; the log says why
        return changed + (self.sweep_expired() if sweep else self.redeliver())

    def redeliver(self) -> int:
        """Deliver what is still pending (a previous run's, or a lapsed claim). Returns how many changed."""
        from agentdeck.store import decisions

        changed = 0
        for escalation_id in decisions.undelivered(self.writer()):
            changed += self._deliver(escalation_id) is not None
        return changed

    def sweep_expired(self) -> int:
        """Decide escalations past their deadline per the expiry policy; deliver them. Returns how many changed."""
        from agentdeck.store import decisions

        if self.settings.read_only:
            return 0
        outcomes = decisions.expire_due(self.writer(), now=self.now(), policy=self.settings.on_expiry)  # type: ignore[arg-type]
        return len(outcomes) + self.redeliver()

    @staticmethod
    def already(escalation_id: str, status: str, by: str | None, at: float | None) -> str:
        when = f" at {datetime.fromtimestamp(at, UTC).strftime('%H:%M:%S')} UTC" if at is not None else ""
        return f"{escalation_id} was already {status} by {by or 'the agent'}{when}."

    # -- Replay --------------------------------------------------------------------------

    def replay(self, wanted: str, known: tuple | None = None) -> ReplayView | None:
        """The task's reconstruction, or None when ``known`` (the key the screen has) is still current."""
        from agentdeck.replay.reconstruct import reconstruct

        conn = self.reader()
        # Cheap change check first: a big task is only rebuilt when it (or its audit) changed.
        key = self._replay_key(conn, wanted)
        abandoned = key[-1]
        if key == known:
            return None
        with self._replays_lock:
            view = self._replays.get(key)
            if view is not None:
                self._replays.move_to_end(key)
                return view
        rec = reconstruct(conn, wanted)
        if rec is not None:
            rec.policy_versions  # noqa: B018 - parse the policy checks here, not on the UI thread
        view = views.ReplayView(wanted, key, rec, abandoned=abandoned)
        with self._replays_lock:
            self._replays[key] = view
            while len(self._replays) > REPLAYS_KEPT:
                self._replays.popitem(last=False)
        return view

    def _replay_key(self, conn: sqlite3.Connection, wanted: str) -> tuple:
        """What a reconstruction of ``wanted`` depends on: the task's row, the audit's and compensations' last ids,
        whether it is abandoned (its last item)."""
        # violations: a contract recheck rewrites them without a new event (the row's events and updated_at stay).
        # (outcome, ended, last_ts: what is_abandoned reads, in the same read, not the whole row read again)
        row = conn.execute(
            "SELECT task_id, events, updated_at, violations, outcome, ended, last_ts FROM tasks"
            " WHERE task_id = ? OR request_id = ? LIMIT 1",
            (wanted, wanted),
        ).fetchone()
        audit_id, comps = conn.execute(
            "SELECT (SELECT coalesce(max(id), 0) FROM audit), (SELECT coalesce(max(id), 0) FROM compensations)"
        ).fetchone()
        # A decision's delivery (pending -> delivered or failed) is written without an audit record: without it
        # here, Replay kept showing "pending" for a decision the agent had long received.
        deliveries = conn.execute(
            "SELECT group_concat(d, ',') FROM (SELECT coalesce(delivery, '') AS d FROM escalations"
            " WHERE task_id = ? ORDER BY seq, escalation_id)", (row["task_id"] if row else wanted,),
        ).fetchone()[0]
        abandoned = queries.is_abandoned(row, self.abandoned_before())
        return (wanted, tuple(row)[:4] if row else None, audit_id, comps, deliveries, abandoned)

    def replay_current(self, view: ReplayView) -> bool:
        """Whether ``view`` (from ``replay``) is still what the store holds: its change key read again now.

        A rebuild takes a while; when nothing it depends on changed meanwhile, it covers every store change
        committed before this check, and the screen needs no second read for the changes it heard meanwhile.
        """
        return not view.source and self._replay_key(self.reader(), view.wanted) == view.key

    def replay_trace(self, path: str | Path, known: tuple | None = None, wanted: str | None = None) -> ReplayView | None:
        """A task rebuilt from a trace FILE (a suite run's) in a throwaway in-memory store; the live store is
        never touched (suite traces would count in the live canary). None when ``known`` is still current."""
        from agentdeck.replay.reconstruct import reconstruct
        from agentdeck.store import contract as ct
        from agentdeck.store.tailer import Tailer

        path = Path(path)
        wanted = wanted if wanted is not None else str(path)
        try:
            st = path.stat()
        except OSError as exc:
            raise FileNotFoundError(f"the suite run's trace {path} cannot be read ({exc.strerror or exc}); "
                                    "rerun the suite (its --out folder may have been removed)") from None
        key = (wanted, st.st_mtime_ns, st.st_size)
        if key == known:
            return None
        conn = connect(Path(":memory:"))  # the same ingest as live traces (and as the suite's judge)
        try:
            Tailer(conn, [path], post_commit=[ct.ContractCheck()]).poll()
            first = conn.execute("SELECT task_id FROM tasks ORDER BY started, task_id LIMIT 1").fetchone()
            rec = reconstruct(conn, first[0]) if first is not None else None
            if rec is not None:
                rec.policy_versions  # noqa: B018 - parse the policy checks here, not on the UI thread
        finally:
            conn.close()
        return views.ReplayView(wanted, key, rec, source=str(path))

    def compensation_prompt(self, action_id: str) -> CompensationPrompt:
        from agentdeck.replay import compensate

        prepared = compensate.prepare(self.reader(), action_id, self.allow_hosts)
        if isinstance(prepared, compensate.Refusal):
            return views.CompensationPrompt(action_id, None, prepared.reason)
        (headers, body, args), masked = redact([prepared.headers, prepared.body, prepared.args])
        return views.CompensationPrompt(action_id, prepared, None, headers, body, args, masked)

    def compensate(self, prompt: CompensationPrompt, *, retry: bool = False, reason: str = "") -> ActionResult:
        """Record the attempt, call the system, record the result: one trip. A retry re-checks first.

        Undoing a high or critical risk action needs a ``reason``, as approving it did.
        """
        from agentdeck.replay import compensate

        refused = self.read_only_refusal(f"compensating {prompt.action_id}")
        if refused is not None:
            return refused
        conn = self.writer()
        plan: Any = prompt.plan
        try:
            if retry or plan is None:  # someone may have compensated it meanwhile, or the allowlist changed
                plan = compensate.prepare(conn, prompt.action_id, self.allow_hosts)
            if isinstance(plan, compensate.Plan) and plan.reason_required and not reason.strip():
                return ActionResult(False, "A reason is required to undo a high or critical risk action "
                                    "(as it was to approve it); nothing was run.", "error",
                                    detail={"reason_missing": True})
            if isinstance(plan, compensate.Plan):
                result = compensate.commit(conn, plan, operator=self.operator, now=self.now(),
                                           allow_hosts=self.allow_hosts, reason=reason, clients=self.http)
            else:
                result = plan
        except sqlite3.Error as exc:
            log.exception("compensating %r", prompt.action_id)
            return ActionResult(False, f"Not run: {_clean_error(exc, 300)}", "error", detail={"retryable": True})
        if isinstance(result, compensate.Refusal):
            return ActionResult(False, f"Refused: {result.reason}", "error", detail={"refused": True})
        body, _ = redact(result.body)
        if result.ok:
            message = f"Compensated (attempt {result.attempt}): the system answered {result.status}"
            if result.replayed:
                message += " — already done under this idempotency key; nothing was undone twice"
            return ActionResult(True, message, changed=True, detail={"body": body, "attempt": result.attempt})
        return ActionResult(False, f"Failed (attempt {result.attempt}): {result.error or 'unknown error'}", "error",
                            changed=True, detail={"body": body, "attempt": result.attempt, "retryable": True})

    def export_evidence(self, task_id: str) -> ActionResult:
        """Write the task's evidence packet under the evidence folder (never overwriting one) and audit it."""
        from agentdeck.replay.evidence import EvidenceError, export, packet_filename

        now = self.now()
        stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")
        folder = Path(self.settings.evidence_dir)
        # Named after a slug of the (untrusted) task id: "../" in an id cannot leave the evidence folder.
        out = folder / packet_filename(task_id, stamp)
        resolved = folder.resolve()
        if not out.resolve().is_relative_to(resolved):  # belt and braces: resolve() follows any symlink too
            return ActionResult(False, f"Export refused: {out} is outside the evidence folder {resolved}", "error")
        n = 1
        while out.exists():  # two exports in one second: never overwrite a packet already handed out
            n += 1
            out = out.with_name(f"{out.stem.split('~')[0]}~{n}{out.suffix}")
        try:
            _, detail = export(self.writer(), task_id, fmt="md", out=out, operator=self.operator, now=now)
        except (EvidenceError, OSError, sqlite3.Error) as exc:
            if not isinstance(exc, EvidenceError):
                log.exception("exporting %r", task_id)
            return ActionResult(False, f"Export failed: {exc}", "error")
        return ActionResult(True, f"Evidence packet written to {out.resolve()}", changed=True,
                            detail={"path": str(out.resolve()), "digest": detail["digest"],
                                    "redactions": detail["redactions"]})

    # -- Canary --------------------------------------------------------------------------

    def canary(self, agent: str | None, chosen: dict[str, tuple[str, str]], window: str,
               metric_key: str) -> CanaryView:
        """The canary report for ``agent`` (else the first agent with two versions), its differences and the
        tasks behind a metric.

        The report is the one stored by the ingest process's analyst (store/canary_reports.py) when that is
        current: kept current by a live analyst (the default pair), or computed after the newest event. Else
        it is computed here, as ``agentdeck canary`` does, and stored for the next look.
        """
        from agentdeck.store import canary
        from agentdeck.store import canary_reports as cr

        started = time.perf_counter()
        conn = self.reader()
        now = self.now()
        try:
            st, newest = cr.state(conn), cr.stamp(conn)
        except sqlite3.Error:  # the cache unreadable (a damaged table): compute, as without one
            log.exception("canary reports cannot be read")
            st, newest = None, ""
        alive = cr.analyst_alive(st, time.time())
        pairs = st.pairs if st is not None and st.stamp and (alive or st.stamp == newest) else canary.pairs(conn)
        if not any(p.agent == agent for p in pairs):
            agent = pairs[0].agent if pairs else None
        if agent is None:
            return views.CanaryView(tuple(pairs), None, None, ())
        pair = next(p for p in pairs if p.agent == agent)
        baseline, canary_v = versions_for(pair, chosen)
        try:
            stored = cr.load(conn, pair.agent, baseline, canary_v, window) if newest else None
        except sqlite3.Error:
            log.exception("canary report cannot be read")
            stored = None
        default = (baseline, canary_v) == (pair.baseline, pair.canary)
        if stored is not None and not self._current(stored, alive and default, newest, window, now):
            stored = None
        computed_here = stored is None
        if stored is None:
            stored = self._compute_canary(conn, pair, baseline, canary_v, window, now)
        ids = stored.tasks.get(metric_key)
        # The tasks the report saw behind this metric (kept with it: a lookup by id), else found now.
        tasks = canary.tasks_by_id(conn, ids) if ids is not None else canary.tasks_behind(conn, stored.report,
                                                                                          metric_key)
        suites = {v: self.suite_summary(pair.agent, v) for v in (baseline, canary_v)}
        first = self.violations(tasks[0]["task_id"]) if tasks else ()
        return views.CanaryView(tuple(pairs), agent, stored.report, tuple(tasks), time.perf_counter() - started,
                          differences=stored.differences, computed_at=stored.computed_at,
                          computed_here=computed_here, analyst=alive, suites=suites, first_violations=tuple(first),
                          analyst_error=st.error if st is not None else None)

    @staticmethod
    def _current(stored: Any, kept: bool, newest: str, window: str, now: float) -> bool:
        """A stored report still says what a fresh one would (near enough: see docs/canary.md)."""
        from agentdeck.store import canary_reports as cr

        if window != "all" and abs(now - stored.computed_at) > cr.WINDOW_STALE_S:
            return False  # a time window moves with the clock, new data or not
        return kept or stored.stamp == newest

    def _stored_report(self, conn: sqlite3.Connection, pair: views.Pair, now: float) -> Any:
        """The pair's "all" report as the ingest process's analyst stored it, when current (else None): the
        release tick then spends no CPU of this process on an analysis already done (store/canary_reports.py)."""
        from dataclasses import replace as replaced

        from agentdeck.store import canary_reports as cr

        try:
            stored = cr.load(conn, pair.agent, pair.baseline, pair.canary, "all")
            if stored is None or not self._current(stored, cr.analyst_alive(cr.state(conn), time.time()),
                                                   cr.stamp(conn), "all", now):
                return None
        except sqlite3.Error:
            return None
        return replaced(stored.report, sparklines={}, bucket_seconds=None)  # as analyse(sparklines=False)

    def _compute_canary(self, conn: sqlite3.Connection, pair: views.Pair, baseline: str, canary_v: str,
                        window: str, now: float) -> Any:
        from agentdeck.store import canary_reports as cr
        from agentdeck.store.contract import ContractCheck

        if self._contracts is None:
            self._contracts = ContractCheck()
        book = self._contracts.book(conn)
        stored = cr.compute(conn, pair, baseline, canary_v, window, now, book.get(pair.agent))
        try:
            cr.save(self.writer(), [stored])  # the next look (this console's or another's) reads it
        except sqlite3.Error as exc:  # a read-only store: shown all the same, computed again next time
            log.warning("canary report not stored: %s", exc)
        return stored

    def canary_tasks(self, report: views.CanaryReport, metric_key: str) -> Sequence[views.Row]:
        from agentdeck.store import canary

        return canary.tasks_behind(self.reader(), report, metric_key)

    # -- Retention (the console's scheduled prune) ------------------------------------------

    def notify_tick(self) -> Any:
        """Evaluate the notification rules and send what is due (console/notify); never raises.

        Every console on a store may run this: each notification is claimed
        in the store, so it goes out once. Returns the engine's TickResult.
        """
        from agentdeck.console.notify.engine import TickResult, tick
        from agentdeck.console.notify.local import LocalRoutes

        if self._local_routes is None:
            self._local_routes = LocalRoutes()
        try:
            return tick(self.writer(), self.settings.notify, self.now(), allow_hosts=self.allow_hosts,
                        local=self._local_routes)
        except Exception as exc:  # a notification problem must never take the console down: say it
            log.exception("notification tick")
            return TickResult(problems=[f"notifications could not run: {_clean_error(exc, 200)}"])

    def prune(self, stop: threading.Event | None = None) -> ActionResult:
        """Apply the retention policy (``settings.retention``) once, as ``agentdeck prune`` does; never raises.

        Runs on its own connection (a long job must not hold this thread's
        reader or writer); ``stop`` ends it between steps, consistent.
        """
        from agentdeck.store.archive import ArchiveError
        from agentdeck.store.prune import PruneBusy, run_prune

        refused = self.read_only_refusal("pruning")
        if refused is not None:
            return refused

        todo = "see the log; run `agentdeck prune --dry-run` to check the rules"
        try:
            r = run_prune(self.db_path, self.settings.retention, self.now(), stop=stop, actor="retention (console)")
        except PruneBusy as exc:
            return ActionResult(False, f"Prune skipped: {exc}. The next scheduled run tries again.", "warning")
        except (ArchiveError, OSError) as exc:
            log.exception("scheduled prune")
            return ActionResult(False, f"Prune failed: cannot write the archive ({_clean_error(exc)}); nothing was "
                                f"removed that is not archived. Check the archive folder "
                                f"({self.settings.retention.archive_folder(self.db_path)}): free space, "
                                f"permissions; {todo}.", "error")
        except sqlite3.Error as exc:
            log.exception("scheduled prune")
            return ActionResult(False, f"Prune failed: {_clean_error(exc)}; nothing is lost (each step is "
                                f"one transaction); {todo}.", "error")
        kept = sum(r.kept.values())
        if r.removed_tasks:
            where = f" into {', '.join(sorted(Path(a).name for a in r.archives))}" if r.archives else " (no archive)"
            message = (f"Pruned {r.removed_tasks:,} tasks ({r.removed_events:,} events){where}; "
                       f"kept {kept:,} under the rules.")
        else:
            message = f"Prune: nothing due; kept {kept:,} tasks under the rules."
        if r.interrupted:
            message += " Stopped early (the console is closing); the next run goes on."
        severity = "information"
        if r.problems:
            message += " " + "; ".join(r.problems)
            severity = "warning"
        return ActionResult(True, message, severity, changed=bool(r.removed_tasks),
                            detail={"removed_tasks": r.removed_tasks, "removed_events": r.removed_events,
                                    "kept": kept, "archives": sorted(r.archives)})

    def suite_summary(self, agent: str, version: str) -> SuiteSummary | None:
        """The latest recorded suite run of this agent version, with its failing cases (None: never run)."""
        from agentdeck.replay.suite.record import failing_cases, latest_run

        conn = self.reader()
        run = latest_run(conn, agent, version)
        if run is None:
            return None
        try:
            flavours = {str(k): (int(v[0]), int(v[1])) for k, v in json.loads(run["by_flavour"]).items()}
        except (ValueError, TypeError, IndexError, AttributeError):
            flavours = {}
        failing = tuple(views.SuiteCase(r["case_id"], r["flavour"], r["reason"], r["trace"], bool(r["flaky"]),
                                  r["passes"], r["runs"]) for r in failing_cases(conn, run["id"]))
        return views.SuiteSummary(run["id"], agent, version, run["passed"], run["cases"], flavours, run["finished"],
                            run["command"], failing)

    def violations(self, task_id: str) -> Sequence[views.Row]:
        from agentdeck.store.contract import task_violations

        return task_violations(self.reader(), task_id)


def versions_for(pair: views.Pair, chosen: dict[str, tuple[str, str]]) -> tuple[str, str]:
    """The versions compared for this agent: chosen with b/v if still there, else the default pair."""
    mine = chosen.get(pair.agent)
    if mine and all(v in pair.versions for v in mine) and mine[0] != mine[1]:
        return mine
    return pair.baseline, pair.canary


def next_version(pair: views.Pair, current: str, other: str, step: int = 1) -> str:
    from agentdeck.store import canary

    return canary.next_version(pair, current, other, step)


def _masked_payload(raw: str) -> tuple[str, int]:
    """An event's payload as JSON text with secrets masked (unparseable text is masked as text)."""
    try:
        value = json.loads(raw)
    except ValueError:
        from agentdeck.replay.redact import redact_text

        return redact_text(raw)
    masked, n = redact(value)
    return (json.dumps(masked, ensure_ascii=False) if n else raw), n


def _delivery_sentence(state: str | None) -> str:
    return {
        "delivered": "Delivered to the agent.",
        "failed": "Delivery failed: see the escalation (R retries).",
        "blocked": "Callback blocked (host not allowed): see the escalation.",
        None: "Delivery already under way elsewhere.",
    }.get(state, f"Delivery {state}.")
