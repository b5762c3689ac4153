"""Marks left in the store by a process (prune lease, deferred-index note) are judged by whether it still runs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from agentdeck.store import processes


def test_a_running_process_is_alive_and_its_identity_is_not_gone():
    me = processes.identity(os.getpid())
    assert me is not None and me.startswith(f"{socket.gethostname()}:{os.getpid()}:")
    assert processes.alive(os.getpid()) and not processes.gone(me)


def test_an_ended_process_is_gone():
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    owner = processes.identity(child.pid)
    assert owner is not None and not processes.gone(owner)
    child.communicate(b"")
    assert not processes.alive(child.pid) and processes.identity(child.pid) is None
    assert processes.gone(owner)


def test_a_reused_pid_does_not_pass_for_the_process_that_left_the_mark():
    host, pid, start = processes.identity(os.getpid()).rsplit(":", 2)  # type: ignore[union-attr]
    assert processes.gone(f"{host}:{pid}:{start}0"), "same pid, another start time: another process"


def test_a_process_on_another_host_is_taken_as_running():
    assert not processes.gone("some-other-host:1:1")


def test_without_proc_a_running_process_is_known_by_its_pid(monkeypatch):
    """macOS and the BSDs have no /proc: a live importer must not be taken for a dead one."""
    import builtins

    real_open, real_isdir = builtins.open, os.path.isdir

    def no_proc_open(path, *a, **k):
        if str(path).startswith("/proc"):
            raise FileNotFoundError(path)
        return real_open(path, *a, **k)

    monkeypatch.setattr(builtins, "open", no_proc_open)
    monkeypatch.setattr(os.path, "isdir", lambda p: False if str(p) == "/proc" else real_isdir(p))
    me = processes.identity(os.getpid())
    assert me == f"{socket.gethostname()}:{os.getpid()}:?" and not processes.gone(me)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert processes.identity(child.pid) is None


def test_an_index_problem_from_the_tailer_gets_index_advice_not_file_advice():
    from agentdeck.store.health import _source_advice

    severity, todo = _source_advice("(indexes)", "could not defer the tasks' indexes: database is locked")
    assert severity == "warn" and "indexes" in todo and "check the file" not in todo


def test_a_child_is_told_to_stop_once_its_parents_pipe_closes(monkeypatch):
    """What the ingest process and the canary analyst run (--with-parent / always): the parent holds
    the child's stdin open; when it ends (kill -9 too) the pipe closes and the child stops."""
    import threading

    read_end, write_end = os.pipe()
    stdin = os.fdopen(read_end, "r")
    monkeypatch.setattr(sys, "stdin", stdin)
    stop = threading.Event()
    watcher = processes.stop_when_parent_goes(stop)
    os.write(write_end, b"whatever the parent writes is read and ignored\n")
    assert not stop.is_set()
    os.close(write_end)
    assert stop.wait(10), "the closed pipe did not stop the child"
    watcher.join(10)
    stdin.close()
