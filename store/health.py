"""Is anything wrong? One read of the store, for the console's health indicator and Problems view.

``check`` looks at what can fail without a word elsewhere — ingest processes
(stopped, failed, stalled, or unable to read a path), rejected trace lines,
decisions that could not be delivered, compensations that failed or never
finished, contract files that cannot be used — and returns each as a ``Problem`` with since-when and what to do.
Plain functions over a connection (no textual): the console calls it from a
worker thread, tests call it directly.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from typing import TYPE_CHECKING

from agentdeck.store import ingest_status, receiver_status

if TYPE_CHECKING:
    from agentdeck.store.contract import ContractCheck

LEVELS = ("ok", "warn", "error")

STALL_AFTER_S = 30.0  # no heartbeat for this long: the ingester is stalled (6 missed beats)
FORGET_AFTER_S = 3600.0  # ingesters not heard from for this long are history, not problems
REJECTS_WINDOW_S = 24 * 3600.0  # rejected lines this recent are listed
RESTART_SHOWN_S = 600.0  # a restarted ingest process is mentioned for this long
STUCK_COMPENSATION_S = 300.0  # a compensation 'running' this long was cut off (a console died mid-call)
LIST_LIMIT = 20  # per kind; the count says how many more


@dataclass(frozen=True)
class Problem:
    key: str  # stable across checks (the Problems view keeps its cursor on it)
    level: str  # warn | error
    what: str  # one line
    detail: str  # may hold several lines; untrusted text (paths, errors from traces): never markup
    since: float | None
    todo: str
    goto: str = ""  # where the console can take the operator: "escalations", "replay:<task id>"


@dataclass(frozen=True)
class ChildState:
    """The console's own ingest process, as its supervisor sees it."""

    running: bool
    ingester: str | None = None  # its id in the ingesters table (host:pid)
    exit_code: int | None = None  # of the last run that ended
    stderr_tail: tuple[str, ...] = ()
    restarts: int = 0
    stopped_at: float | None = None  # when the last run ended
    restart_at: float | None = None  # when the next start is due (None: none planned)
    command: str = ""


@dataclass(frozen=True)
class Health:
    level: str = "ok"
    problems: tuple[Problem, ...] = ()
    # Newest sign of life from any ingester (heartbeat or commit), for "ingest Ns ago".
    last_seen_at: float | None = None
    ingesters: int = 0  # live ones
    behind_bytes: int = 0  # written to followed files, not yet in the store (live ingesters)
    checked_at: float = 0.0  # the wall time the check ran (ages on screen count from it)

    @property
    def counts(self) -> dict[str, int]:
        return {level: sum(p.level == level for p in self.problems) for level in ("warn", "error")}


def check(conn: sqlite3.Connection, now: float, *, child: ChildState | None = None, db: str = "DB",
          stall_after: float = STALL_AFTER_S, contracts: ContractCheck | None = None) -> Health:
    """``contracts``: the contract files in force for this store (re-read when they change), whose unusable
    files are problems too."""
    problems: list[Problem] = []
    live, last_seen, behind = _ingest(conn, now, child, stall_after, problems)
    _rejects(conn, now, db, problems)
    _deliveries(conn, problems)
    _release_hooks(conn, problems)
    _compensations(conn, now, problems)
    _deferred_indexes(conn, problems)
    if contracts is not None:
        _contracts(conn, contracts, problems)
    # Two ingesters may report one path (a restart's overlap): once, the oldest.
    unique: dict[str, Problem] = {}
    for p in problems:
        if p.key not in unique or (p.since or 0.0) < (unique[p.key].since or 0.0):
            unique[p.key] = p
    problems = list(unique.values())
    level = max((p.level for p in problems), key=LEVELS.index, default="ok")
    problems.sort(key=lambda p: (-LEVELS.index(p.level), -(p.since or 0.0), p.key))
    return Health(level, tuple(problems), last_seen, live, behind, now)


def exit_description(code: int | None) -> str:
    if code is None:
        return "ended"
    if code < 0:
        return f"killed by signal {-code}"
    return {0: "exited", 1: "failed (exit 1)", 2: "could not open the store (exit 2)"}.get(code, f"exit {code}")


def _ingest(conn, now, child: ChildState | None, stall_after: float,
            problems: list[Problem]) -> tuple[int, float | None, int]:
    rows = ingest_status.ingesters(conn, since=now - FORGET_AFTER_S)
    own = child.ingester if child else None
    if child is not None and not child.running:
        when = f"restarting in {max(0.0, child.restart_at - now):.0f} s; " if child.restart_at else ""
        problems.append(Problem(
            "ingest:child", "error", f"ingest stopped: {exit_description(child.exit_code)}",
            "\n".join(child.stderr_tail) or "(it wrote nothing on stderr)", child.stopped_at,
            f"{when}press R here to restart it now. Nothing new is read meanwhile; what was committed stays. "
            f"To see why, run it by hand: {child.command}".strip()))
    elif child is not None and child.restarts and child.stopped_at and now - child.stopped_at < RESTART_SHOWN_S:
        problems.append(Problem(
            "ingest:restarted", "warn",
            f"ingest restarted {child.restarts}x (last stop: {exit_description(child.exit_code)})",
            "\n".join(child.stderr_tail), child.stopped_at,
            "it is running again; if it keeps stopping, run it by hand to see why: " + child.command))
    live, last_seen, behind = 0, None, 0
    fresh = [r for r in rows if r.state == "running" and now - r.heartbeat_at <= stall_after]
    for r in rows:
        seen = max(r.heartbeat_at, r.last_commit_at or 0.0)
        last_seen = seen if last_seen is None else max(last_seen, seen)
        if r.ingester == own and child is not None and not child.running:
            continue  # said above, with its stderr
        superseded = any(o.started_at > r.started_at and set(o.paths) >= set(r.paths) for o in fresh)
        if r.state == "running" and now - r.heartbeat_at > stall_after:
            if superseded:
                continue
            problems.append(Problem(
                f"ingest:stalled:{r.ingester}", "error",
                f"ingest stalled: no heartbeat from {r.ingester} for {now - r.heartbeat_at:.0f} s",
                "following " + ", ".join(r.paths), r.heartbeat_at,
                "the process is hung or was killed without a word: "
                + ("this console restarts it if it exits; kill it (R here restarts it)" if r.ingester == own
                   else f"check process {r.pid} on {r.host}; restart it")))
        elif r.state == "failed" and not superseded:
            problems.append(Problem(f"ingest:failed:{r.ingester}", "error", f"ingest failed on {r.ingester}",
                                    r.detail or "", r.heartbeat_at, "restart it; if it fails again, run it by hand to see why"))
        elif r.state == "running":
            live += 1
            # Each live ingester reports the whole store's backlog (ingest_status.behind_bytes: every followed
            # file's size past its committed offset, whoever follows it): the same bytes, not a share to add up.
            behind = max(behind, r.behind_bytes)
    for sp in ingest_status.problems(conn, [r.ingester for r in fresh]):
        level, todo = _source_advice(sp.source, sp.detail)
        # What is wrong first (paths are long): "permission denied", "dangling symlink", "store error".
        head = sp.detail.split(":", 1)[0].split(" to ", 1)[0]
        problems.append(Problem(f"source:{sp.source}", level, f"{head}: {sp.source}", sp.detail, sp.since, todo))
    return live, last_seen, behind


def _source_advice(source: str, detail: str) -> tuple[str, str]:
    text = detail.lower()
    if "dangling symlink" in text:
        return "warn", "point the link at an existing file, or remove it; it is read as soon as its target exists"
    if "waiting for it" in text or "no such file" in text:
        return "warn", "check the path given to the console (--traces); it is read as soon as it appears"
    if "permission denied" in text:
        return "error", "let the console's user read it (chmod/chown); nothing from it is ingested until then"
    if "store error" in text or "(status)" in source:
        return "error", "the store cannot be written (see the message: disk full, read-only, locked); fix that, ingest resumes by itself"
    if source.startswith("(post-commit"):
        return "error", "events are ingested, but the derived check failed; report it with this message"
    if source == "(checkpoints)":
        return "warn", ("ingest goes on, but the WAL file beside the store grows: check the disk and the store's "
                        "permissions; restarting the console's ingest (R) starts checkpoints again")
    if source == "(indexes)":
        return "warn", ("task lists are slower until the tasks' indexes are built: they are built when the store is "
                        "next opened for writing (restart the console's ingest with R, or run agentdeck ingest)")
    refusals = receiver_status.refusal_kind(source, detail)
    if refusals == "lost":
        return "error", ("the senders drop these spans (OTLP exporters do not retry 401, 404, 405 or 411): give each sender "
                         "a token from the receiver's --token-file (OTEL_EXPORTER_OTLP_HEADERS=\"Authorization=Bearer "
                         "<token>\") and point it at /v1/traces (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)")
    if refusals == "unkept":
        return "error", ("spans the receiver refused (each already told to its sender) could not be kept in the rejects "
                         "table, the store being busy: their text is only in the receiver's log; check what holds the "
                         "store (another writer, the disk)")
    if refusals == "retried":
        return "warn", ("the senders retry these, so nothing is lost yet, but spans wait in their queues and are dropped "
                        "when those fill: if it lasts, look at the receiver's log and the store's disk; a sender over its "
                        "budget needs a larger one in the token file")
    if source == "(watcher)":
        return "warn", "new lines are still read, by polling once a second (slower)"
    return "error", "check the file or folder; ingest retries it on every pass"


def _rejects(conn, now: float, db: str, problems: list[Problem]) -> None:
    row = conn.execute("SELECT count(*), min(ts), max(id) FROM rejects WHERE ts >= ?", (now - REJECTS_WINDOW_S,)).fetchone()
    count, first, newest = row[0], row[1], row[2]
    if not count:
        return
    r = conn.execute("SELECT path, offset, error FROM rejects WHERE id = ?", (newest,)).fetchone()
    problems.append(Problem(
        "rejects", "warn", f"{count} trace line{'s' if count != 1 else ''} rejected in the last 24 h",
        f"newest: {r[0]} at byte {r[1]}: {r[2]}", first,
        "each is kept whole in the store's rejects table (nothing is lost): "
        f"sqlite-utils {db} 'select path, offset, error from rejects order by id desc'; fix the writer, then re-send"))


def _deliveries(conn, problems: list[Problem]) -> None:
    rows = conn.execute(
        """SELECT escalation_id, task_id, status, delivery, delivery_error, decided_at FROM escalations
           WHERE delivery IN ('failed', 'blocked') ORDER BY decided_at DESC LIMIT ?""", (LIST_LIMIT,)).fetchall()
    for r in rows:
        blocked = r[3] == "blocked"
        problems.append(Problem(
            f"delivery:{r[0]}", "error", f"decision not delivered: {r[2]} on {r[0]} ({r[3]})",
            f"task {r[1]}: {r[4] or 'no detail'}", r[5],
            ("allow the callback host (--allow-host), then " if blocked else "")
            + "on Escalations (2) press h for decided ones, select it and press R to retry; the agent waits until then",
            "escalations"))


def _release_hooks(conn, problems: list[Problem]) -> None:
    """Stage changes (store/release.py) the release hook did not take, or that autonomy.jsonl could not hold."""
    try:
        rows = conn.execute(
            """SELECT id, agent, version, stage, cause, escalation_id, hook_state, hook_error, publish_error, at
               FROM stage_changes WHERE hook_state IN ('failed', 'blocked')
               OR (publish_error IS NOT NULL AND published_at IS NULL) ORDER BY id DESC LIMIT ?""",
            (LIST_LIMIT,)).fetchall()
    except sqlite3.OperationalError:
        return  # a store from before the release tables (read-only console): nothing to say
    for r in rows:
        blocked = r[6] == "blocked"
        if r[6] in ("failed", "blocked"):
            what = f"release hook {r[6]}: {r[1]} {r[2]} {r[4]} to {r[3]}"
            detail = r[7] or "no detail"
            todo = (("allow the hook's host (--allow-host), then " if blocked else "")
                    + "on Escalations (2) press h, select the release item and press R to call the hook again "
                    "(same Idempotency-Key); until then the agent's deployment has not heard of this stage")
        else:
            what = f"stage not published: {r[1]} {r[2]} {r[4]} to {r[3]}"
            detail = r[8]
            todo = "fix the outbox folder (space, permissions); the console publishes it again on its next tick"
        problems.append(Problem(f"release:{r[0]}", "error", what, detail, r[9], todo,
                                "escalations" if r[5] else ""))


def _compensations(conn, now: float, problems: list[Problem]) -> None:
    rows = conn.execute(
        """SELECT c.action_id, c.task_id, c.status, c.error, c.requested_at, c.finished_at, c.target
           FROM compensations c
           WHERE c.attempt = (SELECT max(attempt) FROM compensations WHERE action_id = c.action_id)
             AND (c.status = 'failed' OR (c.status = 'running' AND c.requested_at < ?))
           ORDER BY c.requested_at DESC LIMIT ?""", (now - STUCK_COMPENSATION_S, LIST_LIMIT)).fetchall()
    for r in rows:
        failed = r[2] == "failed"
        problems.append(Problem(
            f"compensation:{r[0]}", "error" if failed else "warn",
            f"compensation {'failed' if failed else 'never finished'}: action {r[0]}",
            f"task {r[1]}, {r[6]}: {r[3] or ('no answer recorded (the console stopped mid-call?)' if not failed else 'no detail')}",
            r[5] or r[4],
            "open the task on Replay (4, or enter here), select the action and press c to retry "
            "(same idempotency key: nothing is undone twice)", f"replay:{r[1]}"))


def _deferred_indexes(conn, problems: list[Problem]) -> None:
    """The tasks' indexes a large import left out (store/deferred_indexes.py): task lists scan meanwhile."""
    from agentdeck.store import deferred_indexes

    deferred = deferred_indexes.state(conn)
    if deferred is None:
        return
    names, at = ", ".join(deferred.names), deferred.at
    if deferred.abandoned:
        problems.append(Problem(
            "deferred-indexes", "warn", "task indexes missing: the import that deferred them was cut off",
            f"not built yet: {names}", at,
            "this console's ingest builds them on its next pass; otherwise restart the console or run "
            "agentdeck ingest (opening the store for writing builds them); task lists are slower until then"))
    else:
        problems.append(Problem(
            "deferred-indexes", "warn", "a bulk import is running with the task indexes deferred",
            f"built when its backlog is read: {names}", at,
            "task lists are slower until then; nothing to do (opening the store for writing builds them at once)"))


def _contracts(conn, contracts: ContractCheck, problems: list[Problem]) -> None:
    """Contract files that cannot be used (bad TOML, a wrong field, unreadable).

    Before, only the ingest process's log said so: the agent's actions were checked against no contract and
    no violation was ever flagged for them, while every screen looked fine.
    """
    try:
        unusable = contracts.book(conn).problems
    except Exception as exc:  # (a store without its sources table, a folder that vanished mid-listing)
        problems.append(Problem("contracts", "error", "the contract files cannot be read",
                                f"{type(exc).__name__}: {exc}", None,
                                "violations are not checked until they can; see the message"))
        return
    todo = ("fix the file (it is read again as soon as it changes; `agentdeck check` names the same problem); "
            "until then its agent's actions are checked against no contract and no violation is flagged")
    for text in unusable[:LIST_LIMIT]:
        # Keyed by the whole text (path and reason): a path may itself hold ": ", and two keys alike are one problem.
        problems.append(Problem(f"contract:{text}", "error", "a contract file cannot be used", text, None, todo))
    if len(unusable) > LIST_LIMIT:
        more = len(unusable) - LIST_LIMIT
        problems.append(Problem("contract:more", "error", f"{more} more contract files cannot be used",
                                "\n".join(unusable[LIST_LIMIT:LIST_LIMIT * 5]), None,
                                todo + "; `agentdeck check` lists every one"))
