"""The command line as a newcomer meets it (issue 13): --version, errors that name
the real problem, the documented exit codes, and --help that imports nothing heavy (issue 9)."""

from __future__ import annotations

import functools
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from test_cli_ingest import ROOT, agentdeck

HEAVY = ("pydantic", "textual", "httpx", "rich", "agentdeck.store.tailer", "agentdeck.store.events")


@pytest.mark.parametrize("argv", [["--help"], ["ingest", "--help"], ["canary", "--help"], ["sor", "--help"]])
def test_help_imports_no_heavy_module(argv):
    code = ("import sys\n"
            "from agentdeck.console.cli import main\n"
            "try:\n"
            f"    main({argv!r})\n"
            "except SystemExit:\n"
            "    pass\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r} or m in {HEAVY!r}))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_version():
    from importlib.metadata import version

    out = agentdeck("--version")
    assert out.returncode == 0
    assert out.stdout.strip() == f"agentdeck {version('agentdeck')}"


def test_an_unknown_flag_is_named_even_when_a_required_argument_is_missing():
    out = agentdeck("ingest", "--bogus")
    assert out.returncode == 2
    assert "unrecognized arguments: --bogus" in out.stderr
    assert "required" not in out.stderr
    out = agentdeck("evidence", "--frobnicate=1")
    assert out.returncode == 2 and "unrecognized arguments: --frobnicate=1" in out.stderr


def test_canary_usage_errors_keep_exit_3_because_2_means_roll_back():
    out = agentdeck("canary", "--bogus")
    assert out.returncode == 3 and "unrecognized arguments: --bogus" in out.stderr
    out = agentdeck("canary", "--agent", "a", "--baseline", "v1", "--canary", "v2", "--window", "2h")
    assert out.returncode == 3 and "invalid choice: '2h'" in out.stderr


def test_spelled_out_defaults_match_their_source():
    # (Kept in the command modules so that --help does not import the modules that own them.)
    from agentdeck.console.commands import canary as canary_cmd
    from agentdeck.console.commands import sor as sor_cmd
    from agentdeck.replay.sor import DEFAULT_PORT
    from agentdeck.store.canary import WINDOWS

    assert list(canary_cmd.WINDOWS) == list(WINDOWS)
    assert sor_cmd.DEFAULT_PORT == DEFAULT_PORT


def test_check_of_a_file_that_is_not_traces_says_so_and_exits_2():
    out = agentdeck("check", "README.md")
    assert out.returncode == 2
    assert "README.md: not a trace file: none of its" in out.stderr
    assert "no violations" not in out.stdout
    assert "rejected line" not in out.stdout  # said once, not once per line


def test_check_of_an_empty_folder_checks_nothing_and_says_so(tmp_path):
    out = agentdeck("check", str(tmp_path))
    assert out.returncode == 2
    assert "no trace files" in out.stderr and "no violations" not in out.stdout


def test_ingest_of_a_file_that_is_not_traces_says_so(tmp_path):
    out = agentdeck("ingest", "--db", str(tmp_path / "s.db"), str(ROOT / "README.md"))
    assert out.returncode == 2
    assert "README.md: not a trace file" in out.stderr


@pytest.mark.parametrize("argv,message", [
    (["demo", "--rate", "-1"], "argument --rate: must be a number above 0 (got -1)"),
    (["demo", "--rate", "0"], "argument --rate: must be a number above 0"),
    (["demo", "--agents", "0"], "argument --agents: must be 1 or more"),
    (["demo", "--wait", "nan"], "argument --wait: must be a number above 0"),
    (["sor", "--port", "70000"], "argument --port: must be 0-65535"),
])
def test_nonsense_values_are_refused(argv, message):
    out = agentdeck(*argv)
    assert out.returncode == 2
    assert message in out.stderr


def test_sor_help_lists_its_endpoints():
    out = agentdeck("sor", "--help")
    for endpoint in ("POST /actions", "POST /compensate", "GET  /actions/<id>", "GET  /health", "POST /_faults"):
        assert endpoint in out.stdout


def test_sor_on_a_busy_port_exits_2():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = agentdeck("sor", "--port", str(port), "--no-seed")
    assert out.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in out.stderr


def test_an_unwritable_output_is_a_message_not_a_traceback(tmp_path):
    target = tmp_path / "no-such-folder" / "schema.json"
    out = agentdeck("schema", "-o", str(target))
    assert out.returncode == 2
    assert "No such file or directory" in out.stderr and "Traceback" not in out.stderr


def test_exit_codes_are_documented_in_one_table():
    text = (ROOT / "docs" / "cli.md").read_text()
    table = text.split("## Exit status", 1)[1]
    for code in ("| 0 |", "| 1 |", "| 2 |", "| 130 |"):
        assert code in table
    assert "canary" in table




@functools.cache
def _whole_parser():
    from agentdeck.console.cli import build_parser

    return build_parser()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=12).filter(lambda t: not t.startswith("-")), max_size=5),
       st.from_regex(r"--[a-z]{3,10}", fullmatch=True))
def test_any_unknown_flag_is_named_whatever_else_is_typed(tokens, flag):
    """Any paths (or none) and an unknown flag: a usage error naming the flag, never "PATH is required"."""
    import contextlib
    import io

    parser, parsers = _whole_parser()  # (parsing does not change it: built once, not per example)
    known = set(parsers["ingest"]._option_string_actions)
    assume(not any(k.startswith(flag) for k in known))
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as info:
        args, extras = parser.parse_known_args(["ingest", *tokens, flag])
        if extras:
            parsers["ingest"].error(f"unrecognized arguments: {' '.join(extras)}")
    assert info.value.code == 2
    assert flag in err.getvalue() and "Traceback" not in err.getvalue()


def test_top_level_help_lists_every_command_with_its_docstring_line(capsys):
    """`agentdeck --help` reads each command's summary from its source (not importing it): the same line."""
    import importlib

    from agentdeck.console.cli import COMMANDS, main

    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    shown = " ".join(capsys.readouterr().out.split())  # argparse wraps long help lines
    for name in COMMANDS:
        doc = importlib.import_module(f"agentdeck.console.commands.{name}").__doc__.strip().splitlines()[0]
        assert f"{name} {' '.join(doc.split())}" in shown


def test_a_mistyped_command_is_refused_with_the_list_of_commands(capsys):
    """A known command's run builds only its own parser; a mistyped one still gets every command named."""
    from agentdeck.console.cli import COMMANDS, main

    with pytest.raises(SystemExit) as info:
        main(["consol", "--db", "x.db"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'consol'" in err and all(f"'{name}'" in err for name in COMMANDS)
