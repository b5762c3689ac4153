"""The console's settings, resolved once, each value remembering where it came from.

Precedence: command-line flags > environment (``AGENTDECK_*``) > config file >
defaults. The config file is ``--config FILE`` when given (it must exist), else
``$XDG_CONFIG_HOME/agentdeck/config.toml`` (``~/.config/...``) when present.
It is TOML with the same names as the fields below, e.g.::

    db = "/srv/agentdeck/agentdeck.db"
    traces = ["/srv/agentdeck/traces"]
    user = "alice"
    allow_hosts = ["sor.internal:8443"]
    on_expiry = "deny"
    prune_every = 3600          # run `prune` from the console every hour (default: off)

    read_only = false           # true: watch, never act (every acting key is refused)
    abandon_after = 1800        # a task silent this many seconds without a task_end shows as abandoned (0: never)

    [retention]                 # what prune keeps (docs/retention.md)
    raw_days = 30

    [notify]                    # notifications (docs/notify.md)
    routes = ["slack+https://hooks.slack.com/services/T000/B000/XXXX"]

    [approvers]                 # who may approve what; two-person rule (docs/notify.md)
    two_person = ["critical"]

    [ingest]                    # the console's ingest process and watcher (docs/console.md)
    stall_after = 30

Relative paths in the file are relative to the file's folder; on the command
line and in the environment, to the working directory. This module is the
only place the console reads its environment.

``Settings`` is a frozen dataclass whose values are checked and converted by
hand (``__post_init__``), not a pydantic model: the console builds it before
its first frame, and importing pydantic and building the settings' models
was about a third of the CPU up to that frame (``bench/console.py``, first
paint). The config file's tables keep their pydantic models
(``[retention]``, ``[notify]``, ``[approvers]``; ``[ingest]`` is a plain
dataclass too): a table that is given is validated with its model when
the settings are built, so a bad one is still an error before the console
starts; a table that is not given is its model's default, built the first
time it is asked for (a prune, a decision, a notification: after the first
frame, on a worker).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from agentdeck.console.service.host_list import host_set
from agentdeck.console.service.ingest_settings import IngestSettings, TableError, seconds

if TYPE_CHECKING:
    from agentdeck.console.notify.settings import NotifySettings
    from agentdeck.store.approvers import ApproverRules
    from agentdeck.store.retention import RetentionPolicy

ExpiryPolicy = Literal["deny", "approve", "keep"]
Source = str  # "flag", "env AGENTDECK_X", "config FILE", "default"

ENV = {
    "db": "AGENTDECK_DB",
    "traces": "AGENTDECK_TRACES",
    "user": "AGENTDECK_USER",
    "allow_hosts": "AGENTDECK_ALLOW_HOSTS",
    "on_expiry": "AGENTDECK_ON_EXPIRY",
    "evidence_dir": "AGENTDECK_EVIDENCE_DIR",
    "outbox": "AGENTDECK_OUTBOX",
    "config": "AGENTDECK_CONFIG",
    "prune_every": "AGENTDECK_PRUNE_EVERY",
    "read_only": "AGENTDECK_READ_ONLY",
    "abandon_after": "AGENTDECK_ABANDON_AFTER",
}
DEFAULT_HOME = Path("var")

# The config file's tables: each is validated by its own model (module, class) when given.
TABLES = {
    "retention": ("agentdeck.store.retention", "RetentionPolicy"),
    "notify": ("agentdeck.console.notify.settings", "NotifySettings"),
    "approvers": ("agentdeck.store.approvers", "ApproverRules"),
    "ingest": ("agentdeck.console.service.ingest_settings", "IngestSettings"),
}


class SettingsError(ValueError):
    """A setting has a value the console cannot use (the message names it and its source)."""


@dataclass(frozen=True)
class Settings:
    """Everything the console needs to know before it starts."""

    db: Path = DEFAULT_HOME / "agentdeck.db"
    traces: tuple[Path, ...] = ()
    follow: bool = True
    user: str = "operator"
    allow_hosts: frozenset[str] = frozenset()
    on_expiry: ExpiryPolicy = "deny"
    outbox: Path | None = None  # None: off
    tick: float = 1.0  # seconds between counter refreshes and clock-driven redraws (0: none)
    evidence_dir: Path = Path("evidence")
    log_file: Path | None = None  # None: beside the store (var/agentdeck.log)
    config_path: Path | None = None
    # Seconds between the console's own prune runs (docs/retention.md); None: off (the default, as is 0).
    prune_every: float | None = None
    # Watch, never act: every acting key and palette command is refused with a message.
    read_only: bool = False
    # Seconds of silence (no event, no task_end) after which a task shows as abandoned, not running; 0: never.
    abandon_after: float = 1800.0
    # Compose the other screens just after start-up, so the first visit to each is as quick as the next.
    prewarm: bool = True
    sources: Mapping[str, Source] = field(default_factory=dict)
    # The config file's tables that were given (TABLES), validated: read them as .retention, .notify,
    # .approvers, .ingest (a table not given reads as its default).
    tables: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems: list[tuple[str, str]] = []  # (where, what is wrong)
        for name, check in CHECKS.items():
            try:
                object.__setattr__(self, name, check(getattr(self, name)))
            except ValueError as exc:
                problems.append((name, str(exc)))
        tables: dict[str, Any] = {}
        for name, value in dict(self.tables).items():
            try:
                tables[name] = _table(name, value)
            except TableError as exc:
                problems += [(f"{name}.{key}" if key else name, message) for key, message in exc.problems]
        object.__setattr__(self, "sources", dict(self.sources))
        object.__setattr__(self, "tables", tables)
        if problems:
            raise SettingsError("; ".join(f"{where} ({self.source(where.split('.')[0])}): {message}"
                                          for where, message in problems))

    # The tables (a default, shared and immutable, when not given).

    @property
    def retention(self) -> RetentionPolicy:
        return self._table("retention")

    @property
    def notify(self) -> NotifySettings:
        """On-call (docs/notify.md): where notifications go and on what."""
        return self._table("notify")

    @property
    def approvers(self) -> ApproverRules:
        """Who may approve what (docs/notify.md)."""
        return self._table("approvers")

    @property
    def ingest(self) -> IngestSettings:
        """The console's ingest process, store watcher and refresh pace (console/service/ingest_settings.py)."""
        return self._table("ingest")

    @property
    def notifies(self) -> bool:
        """Some notification route is set (answered without building the default ``[notify]`` settings)."""
        notify = self.tables.get("notify")
        return notify is not None and bool(notify.routes)

    def _table(self, name: str) -> Any:
        value = self.tables.get(name)
        return value if value is not None else _default(name)

    @property
    def operator(self) -> str:
        return self.user

    def source(self, name: str) -> Source:
        return self.sources.get(name, "default")

    def log_path(self) -> Path:
        return self.log_file or self.db.parent / "agentdeck.log"

    def describe(self) -> list[tuple[str, str, Source]]:
        """(name, value, source) for every setting: what ``agentdeck config`` prints."""
        out = []
        for name in NAMES:
            value = getattr(self, name)
            if isinstance(value, (tuple, frozenset)):
                value = ", ".join(sorted(str(v) for v in value)) if isinstance(value, frozenset) else \
                    ", ".join(str(v) for v in value)
            off = value is None and name in ("outbox", "prune_every")
            if name == "notify":
                value = self.notify.describe()  # route labels only: a webhook URL is a secret
            elif name == "approvers":
                value = self.approvers.model_dump_json()
            elif name == "ingest":
                value = self.ingest.describe()
            out.append((name, "off" if off else str(value), self.source(name)))
        return out


# Every setting, in the order ``agentdeck config`` lists them (and the names a config file may use).
NAMES = ("db", "traces", "follow", "user", "allow_hosts", "on_expiry", "outbox", "tick", "evidence_dir", "log_file",
         "config_path", "prune_every", "retention", "notify", "approvers", "ingest", "read_only", "abandon_after",
         "prewarm")

_DEFAULTS: dict[str, Any] = {}  # each table's default, built once when first read


def _default(name: str) -> Any:
    made = _DEFAULTS.get(name)
    if made is None:
        made = _DEFAULTS[name] = _table_class(name)()
    return made


def _table_class(name: str) -> Any:
    import importlib

    module, cls = TABLES[name]
    return getattr(importlib.import_module(module), cls)


def _table(name: str, value: Any) -> Any:
    """Table ``name`` validated: a model made in code is taken as it is, a mapping (TOML) goes through its model."""
    if name not in TABLES:
        raise TableError([("", "not a table of the settings")])
    if name == "ingest":
        return value if isinstance(value, IngestSettings) else IngestSettings.from_table(value)
    cls = _table_class(name)  # (pydantic: imported only for a table that is given)
    if isinstance(value, cls):
        return value
    try:
        return cls.model_validate(value)
    except ValueError as exc:  # pydantic's ValidationError: each problem, where it is in the table
        errors = getattr(exc, "errors", None)
        if errors is None:
            raise TableError([("", str(exc))]) from None
        raise TableError([(".".join(str(part) for part in err["loc"]), str(err["msg"]).removeprefix("Value error, "))
                          for err in errors()]) from None


# Each plain setting's check: its value as given (flag, environment, TOML or code) -> its value, or ValueError.

def _path(value: Any) -> Path:
    if isinstance(value, (str, os.PathLike)):
        return Path(value)
    raise ValueError(f"must be a path, not {value!r}")


def _optional_path(value: Any) -> Path | None:
    return None if value is None else _path(value)


def _paths(value: Any) -> tuple[Path, ...]:
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"must be a list of paths, not {value!r}")
    return tuple(_path(v) for v in value)


_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})


def _bool(value: Any) -> bool:
    """As pydantic read it: true/false, 1/0, and (any case) true/false, yes/no, on/off, t/f, y/n, 1/0 as text."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
    raise ValueError(f"must be true or false (or yes/no, on/off, 1/0), not {value!r}")


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise ValueError(f"must be text, not {value!r}")


def _policy(value: Any) -> str:
    value = value.strip().lower() if isinstance(value, str) else value
    if value not in ("deny", "approve", "keep"):
        raise ValueError(f"on-expiry policy must be one of deny, approve, keep (not {value!r})")
    return value


def _tick(value: Any) -> float:
    number = seconds(value)
    if not 0 <= number < float("inf"):  # also refuses NaN
        raise ValueError(f"must be a number of seconds, 0 or more (0: none), not {value!r}")
    return number


def _every(value: Any) -> float | None:
    if isinstance(value, str):
        value = value.strip().lower()
        if value in ("", "off", "0"):
            return None
    if value is None or value == 0:
        return None
    try:
        number = seconds(value)
    except ValueError:
        number = float("nan")
    if not 0 < number < float("inf"):  # also refuses NaN
        raise ValueError(f"prune_every must be a number of seconds above 0, or 0/off (not {value!r})")
    return number


def _abandon(value: Any) -> float:
    if isinstance(value, str):
        value = value.strip().lower()
        value = 0 if value in ("off", "never") else value
    try:
        number = seconds(value)
    except ValueError:
        raise ValueError(f"abandon_after must be a number of seconds (0: never), not {value!r}") from None
    if not 0 <= number < float("inf"):  # also refuses NaN
        raise ValueError(f"abandon_after must be a number of seconds, 0 or more (0: never), not {value!r}")
    return number


CHECKS = {
    "db": _path, "traces": _paths, "follow": _bool, "user": _text, "allow_hosts": host_set, "on_expiry": _policy,
    "outbox": _optional_path, "tick": _tick, "evidence_dir": _path, "log_file": _optional_path,
    "config_path": _optional_path, "prune_every": _every, "read_only": _bool, "abandon_after": _abandon,
    "prewarm": _bool,
}


def default_config_path(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base) / "agentdeck" / "config.toml"


def _read_config(path: Path) -> dict[str, Any]:
    import tomllib  # only when there is a file to read (most consoles start without one)

    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise SettingsError(f"config file {path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path} is not valid TOML: {exc}") from exc
    known = set(NAMES) - {"config_path"} | {"operator"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SettingsError(f"config file {path}: unknown setting(s) {', '.join(unknown)} "
                            f"(known: {', '.join(sorted(known))})")
    if "operator" in data:
        data.setdefault("user", data.pop("operator"))
    folder = path.parent
    for name in ("db", "outbox", "evidence_dir", "log_file"):
        if isinstance(data.get(name), str) and data[name] != "off":
            data[name] = _relative_to(folder, data[name])
    retention = data.get("retention")
    if isinstance(retention, dict) and isinstance(retention.get("archive_dir"), str):
        retention["archive_dir"] = _relative_to(folder, retention["archive_dir"])
    if "traces" in data:
        items = data["traces"] if isinstance(data["traces"], list) else [data["traces"]]
        # Only text is a path: `traces = true` or a number is refused by _paths, not read as a folder "True".
        data["traces"] = [_relative_to(folder, t) if isinstance(t, str) else t for t in items]
    return data


def _relative_to(folder: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else folder / p


def _env_values(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("db", "user", "on_expiry", "evidence_dir", "outbox", "prune_every", "read_only", "abandon_after"):
        if env.get(ENV[name]):
            out[name] = env[ENV[name]]
    if env.get(ENV["traces"]):
        out["traces"] = [p for p in env[ENV["traces"]].split(os.pathsep) if p]
    if env.get(ENV["allow_hosts"]):
        out["allow_hosts"] = env[ENV["allow_hosts"]]
    return out


def resolve(flags: Mapping[str, Any] | None = None, *, env: Mapping[str, str] | None = None,
            config: str | Path | None = None) -> Settings:
    """Settings from flags (None: not given), then ``env``, then the config file, then defaults.

    ``allow_hosts`` is the one setting that adds up: hosts from every source
    are allowed (the environment's list has always extended the flags').
    """
    env = os.environ if env is None else env
    flags = {k: v for k, v in (flags or {}).items() if v is not None and v != [] and v != ()}
    # --notify routes add to the config file's [notify] routes (and --allow-host to its hosts).
    notify_routes = list(flags.pop("notify_routes", None) or [])
    config_source = "flag --config" if config else f"env {ENV['config']}" if env.get(ENV["config"]) else None
    config = config or env.get(ENV["config"])
    path: Path | None
    if config:
        path = Path(config)
        if not path.is_file():
            raise SettingsError(f"config file {path} does not exist")
    else:
        path = default_config_path(env)
        path = path if path.is_file() else None
    layers: list[tuple[Source, dict[str, Any]]] = [
        ("flag", flags),
        ("env", _env_values(env)),
        (f"config {path}", _read_config(path) if path else {}),
    ]
    values: dict[str, Any] = {}
    sources: dict[str, Source] = {}
    for source, layer in layers:
        for name, value in layer.items():
            if name == "allow_hosts":
                try:
                    hosts = host_set(value)
                except ValueError as exc:
                    raise SettingsError(f"allow_hosts ({_source(source, name)}): {exc}") from None
                if hosts:
                    values[name] = values.get(name, frozenset()) | hosts
                    sources[name] = f"{sources[name]} + {source}" if name in sources else _source(source, name)
                continue
            if name not in values:
                values[name] = value
                sources[name] = _source(source, name)
    if "user" not in values:
        values["user"] = _os_user()
        sources["user"] = "default (OS user)"
    if "traces" not in values:
        values["traces"] = [DEFAULT_HOME / "traces"]
    if "outbox" not in values:
        given = values["traces"] if isinstance(values["traces"], (list, tuple)) else ()  # (else: Settings says why)
        values["outbox"] = _default_outbox([Path(t) for t in given if isinstance(t, (str, os.PathLike))])
        sources["outbox"] = "default (first trace folder)" if values["outbox"] else "default (off: no trace folder)"
    elif str(values["outbox"]).lower() == "off":
        values["outbox"] = None
    values["config_path"] = path
    sources["config_path"] = config_source or ("default ($XDG_CONFIG_HOME/agentdeck/config.toml)" if path
                                               else "none (no config file)")
    if notify_routes:
        from agentdeck.console.notify.settings import NotifySettings

        try:
            base = NotifySettings.model_validate(values.get("notify") or {})
            values["notify"] = base.with_routes(notify_routes)
        except ValueError as exc:  # (pydantic's ValidationError is one)
            raise SettingsError(f"notify (flag --notify): {exc}") from None
        sources["notify"] = f"flag --notify + {sources['notify']}" if "notify" in sources else "flag --notify"
    return _settings(values, sources)


def _settings(values: dict[str, Any], sources: Mapping[str, Source] | None = None) -> Settings:
    """``Settings`` from setting names to values, the config file's tables among them."""
    tables = {name: values.pop(name) for name in TABLES if name in values}
    return Settings(**values, sources=sources or {}, tables=tables)


def _source(source: Source, name: str) -> Source:
    return f"env {ENV[name]}" if source == "env" else source


def _default_outbox(traces: list[Path]) -> Path | None:
    """``<first trace folder>/outbox/decisions.jsonl``; None when no trace folder is known."""
    from agentdeck.store import outbox_path  # (not store.outbox: it imports pydantic)

    return outbox_path.resolve(None, traces)


def _os_user() -> str:
    import getpass  # (imports termios: only when no user is given)

    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def for_tests(db: Path, traces: list[Path] | None = None, **overrides: Any) -> Settings:
    """Settings built in code (tests, benchmarks): no environment or config file consulted."""
    traces = list(traces or [])
    overrides.setdefault("outbox", None)
    overrides.setdefault("prewarm", False)  # tests compose only the screens they show (and stay fast)
    if "operator" in overrides:
        overrides["user"] = overrides.pop("operator")
    return _settings({"db": Path(db), "traces": tuple(traces), **overrides})
