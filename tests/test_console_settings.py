"""Settings are resolved once: flags > environment > config file > defaults, each with its source (no Pilot)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentdeck.console.service.settings import SettingsError, resolve


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_with_no_flags_environment_or_file(tmp_path):
    s = resolve({}, env={"HOME": str(tmp_path)})
    assert s.db == Path("var/agentdeck.db") and s.source("db") == "default"
    assert s.traces == (Path("var/traces"),)
    assert s.on_expiry == "deny" and s.allow_hosts == frozenset()
    assert s.outbox == Path("var/traces/outbox/decisions.jsonl")
    assert s.config_path is None


def test_flag_beats_environment_beats_config_file(tmp_path):
    cfg = write(tmp_path / "xdg" / "agentdeck" / "config.toml",
                'db = "from-file.db"\nuser = "file-user"\non_expiry = "keep"\ntraces = ["t"]\n')
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "AGENTDECK_USER": "env-user", "AGENTDECK_DB": "env.db"}
    s = resolve({"db": "flag.db"}, env=env)
    assert s.db == Path("flag.db") and s.source("db") == "flag"
    assert s.user == "env-user" and s.source("user") == "env AGENTDECK_USER"
    assert s.on_expiry == "keep" and s.source("on_expiry") == f"config {cfg}"
    # Relative paths in the file are relative to the file's folder.
    assert s.traces == (cfg.parent / "t",)
    assert ("user", "env-user", "env AGENTDECK_USER") in s.describe()


def test_allowed_hosts_add_up_from_every_source(tmp_path):
    cfg = write(tmp_path / "c.toml", 'allow_hosts = ["Sor.Internal:8443"]\n')
    s = resolve({"allow_hosts": ["a.example"]}, env={"AGENTDECK_ALLOW_HOSTS": "b.example, c.example"}, config=cfg)
    assert s.allow_hosts == {"a.example", "b.example", "c.example", "sor.internal:8443"}
    assert s.source("allow_hosts").startswith("flag + env")


def test_outbox_off_and_explicit(tmp_path):
    assert resolve({"outbox": "off"}, env={"HOME": str(tmp_path)}).outbox is None
    assert resolve({"outbox": "x/box.jsonl"}, env={"HOME": str(tmp_path)}).outbox == Path("x/box.jsonl")


@pytest.mark.parametrize("text, says", [
    ("db = [", "not valid TOML"),
    ('colour = "blue"\n', "unknown setting(s) colour"),
    ('on_expiry = "sometimes"\n', "on-expiry policy must be one of deny, approve, keep"),
    ("traces = true\n", "traces (config"),  # not a folder named "True"
    ("traces = [1]\n", "must be a path, not 1"),
])
def test_a_bad_config_file_is_a_clear_error_naming_the_file(tmp_path, text, says):
    cfg = write(tmp_path / "c.toml", text)
    with pytest.raises(SettingsError) as err:
        resolve({}, env={}, config=cfg)
    assert says in str(err.value)
    assert "c.toml" in str(err.value) or "config" in str(err.value)


def test_a_missing_config_file_given_explicitly_is_an_error(tmp_path):
    with pytest.raises(SettingsError, match="does not exist"):
        resolve({}, env={}, config=tmp_path / "nope.toml")


def test_console_command_reports_a_bad_config_and_does_not_start(tmp_path, capsys):
    from agentdeck.console.cli import main

    cfg = write(tmp_path / "c.toml", 'tick = "often"\n')
    assert main(["console", "--config", str(cfg), "--db", str(tmp_path / "s.db")]) == 2
    assert "tick" in capsys.readouterr().err


def test_console_log_goes_to_a_file_beside_the_store(tmp_path):
    import logging

    from agentdeck.console.commands.console import setup_logging
    from agentdeck.console.service.settings import for_tests

    settings = for_tests(tmp_path / "store" / "s.db")
    root = logging.getLogger()
    before = list(root.handlers)
    try:
        setup_logging(settings)
        try:
            raise RuntimeError("worker fell over")
        except RuntimeError:
            logging.getLogger("agentdeck.console.screens.base").exception("tasks-page failed")
        for handler in root.handlers:
            handler.flush()
    finally:
        for handler in [h for h in root.handlers if h not in before]:
            root.removeHandler(handler)
            handler.close()
    text = (tmp_path / "store" / "agentdeck.log").read_text()
    assert "tasks-page failed" in text and "RuntimeError: worker fell over" in text


def test_ingest_tuning_comes_from_the_config_files_ingest_table_and_reaches_the_console(tmp_path):
    from agentdeck.console.app import AgentDeck

    cfg = write(tmp_path / "c.toml", "[ingest]\nstall_after = 90\nbackoff = [0.5, 3]\npoll = 0.02\n"
                                     "refresh_every = 0.2\nbatch_wait = 0.035\n")
    s = resolve({"db": str(tmp_path / "s.db"), "traces": [str(tmp_path / "t")]}, env={}, config=cfg)
    assert (s.ingest.stall_after, s.ingest.backoff, s.ingest.poll) == (90.0, (0.5, 3.0), 0.02)
    assert s.ingest.heartbeat == 5.0  # not in the file: its default
    name, value, source = next(row for row in s.describe() if row[0] == "ingest")
    assert "stall_after=90.0" in value and "backoff=[0.5, 3.0]" in value and source == f"config {cfg}"
    app = AgentDeck(s)
    assert app.ingest.watcher.stall_after == 90.0 and app.ingest.watcher.poll_s == 0.02
    assert app.ingest.supervisor is not None and app.ingest.supervisor.backoff == (0.5, 3.0)
    # The ingest process is told how long to gather appends before a commit.
    command = app.ingest.supervisor.command()
    assert command[command.index("--batch-wait") + 1] == "0.035"


@pytest.mark.parametrize("text, says", [
    ("[ingest]\npoll = 0\n", "must be a number of seconds above 0"),
    ("[ingest]\nbatch_wait = -1\n", "must be a number of seconds above 0"),
    ("[ingest]\nbackoff = []\n", "needs at least one wait"),
    ("[ingest]\nstall_afterr = 3\n", "stall_afterr"),
    ("[ingest]\nbatch_wait = 1e9\n", "at most 5 seconds"),  # appends would never be committed
    ("[ingest]\nbackoff = [1, 1e9]\n", "at most 3600 seconds"),
    ("[ingest]\nrefresh_every = inf\n", "must be a number of seconds"),
])
def test_a_bad_ingest_setting_is_a_clear_error_naming_it(tmp_path, text, says):
    cfg = write(tmp_path / "c.toml", text)
    with pytest.raises(SettingsError) as err:
        resolve({}, env={}, config=cfg)
    assert says in str(err.value) and "ingest" in str(err.value) and str(cfg) in str(err.value)


def test_tables_not_given_read_as_their_defaults_and_given_ones_are_checked_when_resolved(tmp_path):
    from agentdeck.store.approvers import ApproverRules
    from agentdeck.store.retention import RetentionPolicy

    s = resolve({}, env={"HOME": str(tmp_path)})
    assert s.retention == RetentionPolicy() and s.approvers == ApproverRules()
    assert s.notify.routes == [] and not s.notifies and s.ingest.poll == 0.005
    cfg = write(tmp_path / "c.toml", '[approvers]\nmatch = "nobody"\n[notify]\nroutes = ["bell"]\n')
    with pytest.raises(SettingsError, match=r"approvers\.match \(config .*c\.toml\): Input should be 'user' or"):
        resolve({}, env={}, config=cfg)
    cfg.write_text('[approvers]\ntwo_person = ["critical"]\n[notify]\nroutes = ["bell"]\n')
    s = resolve({}, env={}, config=cfg)
    assert s.approvers.two_person == ["critical"] and s.notifies and s.source("approvers") == f"config {cfg}"


@pytest.mark.parametrize("text, read_only", [("1", True), ("true", True), ("Yes", True), ("on", True),
                                             ("0", False), ("false", False), ("No", False), ("OFF", False)])
def test_read_only_from_the_environment_takes_the_usual_spellings(tmp_path, text, read_only):
    assert resolve({}, env={"HOME": str(tmp_path), "AGENTDECK_READ_ONLY": text}).read_only is read_only


def test_every_unusable_setting_is_named_in_one_message_with_its_source(tmp_path):
    cfg = write(tmp_path / "c.toml", 'tick = -1\nuser = 5\n[ingest]\npol = 3\npoll = 0\n')
    with pytest.raises(SettingsError) as err:
        resolve({"abandon_after": "soon"}, env={"AGENTDECK_READ_ONLY": "maybe"}, config=cfg)
    message = str(err.value)
    for part in ("abandon_after (flag)", "read_only (env AGENTDECK_READ_ONLY)", f"tick (config {cfg})",
                 f"user (config {cfg})", f"ingest.pol (config {cfg}): unknown setting",
                 f"ingest.poll (config {cfg}): must be a number of seconds above 0"):
        assert part in message


SCALARS = ("db", "traces", "follow", "user", "allow_hosts", "on_expiry", "outbox", "tick", "evidence_dir", "log_file",
           "prune_every", "read_only", "abandon_after")
VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12),
                   st.lists(st.one_of(st.text(max_size=8), st.integers()), max_size=3))


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(SCALARS), VALUES, max_size=5))
def test_any_values_give_usable_settings_or_an_error_naming_each_bad_one(given_values):
    """Hostile values (what TOML, the environment or a flag may carry): typed settings, or a SettingsError."""
    try:
        s = resolve(dict(given_values), env={"HOME": "/nonexistent"})
    except SettingsError as exc:
        assert any(f"{name} (flag)" in str(exc) for name in given_values), str(exc)
        return
    assert isinstance(s.db, Path) and all(isinstance(t, Path) for t in s.traces)
    assert isinstance(s.follow, bool) and isinstance(s.read_only, bool) and isinstance(s.user, str)
    assert isinstance(s.tick, float) and s.tick >= 0 and isinstance(s.abandon_after, float) and s.abandon_after >= 0
    assert s.prune_every is None or (isinstance(s.prune_every, float) and s.prune_every > 0)
    assert s.on_expiry in ("deny", "approve", "keep") and all(h == h.strip().lower() and h for h in s.allow_hosts)
