"""`agentdeck` started as an operator starts it: its first frame shows the Tasks screen (its tab bar and rows
just after), and what the first frame does not need stays unimported until then (issue 9: first paint <= 0.8 s, measured by bench/console.py).

Each test runs the real command line in a fresh process (headless, 80x24), as a person's terminal would,
and looks at the process when its first frame is drawn.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from test_cli_ingest import ROOT

# Imported by the first frame, these cost about a third of the CPU to it (pydantic: its import and the
# settings' models) or are the ingest's stack, which runs in its own process. Console code may import them
# after the first frame (a decision, a prune, the Canary screen), never on the way to it.
NOT_BEFORE_FIRST_FRAME = ("pydantic", "pydantic_core", "httpx", "watchfiles", "importlib.metadata",
                          "agentdeck.store.tailer", "agentdeck.store.ingest", "agentdeck.store.events",
                          "agentdeck.store.otlp", "agentdeck.store.canary", "agentdeck.replay.evidence",
                          "agentdeck.replay.reconstruct",
                          # The console's HTTP clients (callbacks, hooks) and, through http.cookiejar, the
                          # stdlib's urllib.request, http.client and email: ~15 ms, made when first called.
                          "agentdeck.replay.http_clients", "http.cookiejar", "urllib.request", "http.client",
                          # The views of the other screens and the actions (their dataclasses: ~1 ms each).
                          "agentdeck.console.service.views_later",
                          # Delivering decisions (and where each would go): after the first frame, on a worker.
                          "agentdeck.console.service.delivery", "agentdeck.console.service.reach",
                          # The tab bar (Textual's Tabs) is mounted just after the first frame, imported then.
                          "agentdeck.console.widgets.screen_tabs", "textual.widgets._tabs")

FIRST_FRAME = """
import json, sys
import textual.app as ta

seen = {}
draw = ta.App._display

def display(self, screen, renderable):
    draw(self, screen, renderable)
    if renderable is None:
        return
    if "modules" not in seen:
        seen["modules"] = sorted(sys.modules)
        seen["screen"] = type(self.screen).__name__
        seen["table"] = bool(self.screen.query("#tasks"))
        self.set_timer(20, self.exit)  # (a console that never shows its rows: the test fails, it does not hang)
    rows = self.screen.query("#tasks").first().row_count if self.screen.query("#tasks") else 0
    if rows and self.screen.query("Tab.-active") and "tabs" not in seen:
        seen["rows"] = rows
        seen["tabs"] = [str(tab.label) for tab in self.screen.query("Tab")]
        seen["active"] = [tab.id for tab in self.screen.query("Tab.-active")]
        self.call_later(self.exit)

start = ta.App.run

def run(self, *args, **kwargs):
    return start(self, headless=True, size=(80, 24))

ta.App._display, ta.App.run = display, run
from agentdeck.console.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, **seen}))
"""


def clean_env(home: Path) -> dict[str, str]:
    """This machine's environment without AGENTDECK_* settings or a config file of the user running the tests."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTDECK_")}
    return {**env, "XDG_CONFIG_HOME": str(home / "xdg")}


def first_frame(*argv: str, env: dict[str, str]) -> dict:
    out = subprocess.run([sys.executable, "-c", FIRST_FRAME, *argv], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_first_frame_shows_tasks_without_pydantic_or_the_ingest_stack(sample_db, tmp_path):
    seen = first_frame("--db", str(sample_db), "--traces", str(tmp_path / "traces"), "--user", "alice",
                       env=clean_env(tmp_path))
    assert seen["code"] == 0 and seen["screen"] == "TasksScreen" and seen["table"]
    # The tab bar follows the first frame (console/widgets/chrome.py), the rows the first read: both come.
    assert seen["rows"] > 0 and seen["active"] == ["tab-tasks"]
    assert seen["tabs"][:4] == ["1 Tasks", "2 Escalations", "3 Canary", "4 Replay"] and seen["tabs"][4].startswith("5 ")
    loaded = set(seen["modules"])
    assert "agentdeck.console.service.settings" in loaded  # the settings were resolved on the way
    assert sorted(m for m in NOT_BEFORE_FIRST_FRAME if m in loaded) == []


def test_a_config_file_with_tables_is_still_validated_before_the_first_frame(sample_db, tmp_path):
    # A table that is given goes through its pydantic model when the settings are resolved: a bad one is a
    # message before the screen takes over the terminal (exit 2), not a failure later in the console.
    config = tmp_path / "config.toml"
    config.write_text("[approvers]\nmatch = \"nobody\"\n")
    out = subprocess.run([sys.executable, "-m", "agentdeck.console.cli", "--db", str(sample_db), "--config",
                          str(config)], cwd=ROOT, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                         env=clean_env(tmp_path))
    assert out.returncode == 2
    assert "approvers.match" in out.stderr and str(config) in out.stderr
    config.write_text("[approvers]\ntwo_person = [\"critical\"]\n[retention]\nraw_days = 7\n")
    seen = first_frame("--db", str(sample_db), "--config", str(config), "--no-follow", env=clean_env(tmp_path))
    assert seen["code"] == 0 and seen["screen"] == "TasksScreen"
