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
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from agentdeck.console.service.host_list import HostList, host_set

from agentdeck.console.notify.settings import NotifySettings
from agentdeck.console.service.ingest_settings import IngestSettings
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


class SettingsError(ValueError):
    """A setting has a value the console cannot use (the message names it and its source)."""


class Settings(BaseModel):
    """Everything the console needs to know before it starts."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    db: Path = DEFAULT_HOME / "agentdeck.db"
    traces: tuple[Path, ...] = ()
    follow: bool = True
    user: str = "operator"
    allow_hosts: HostList = frozenset()
    on_expiry: ExpiryPolicy = "deny"
    outbox: Path | None = None  # None: off
    tick: float = 1.0  # seconds between counter refreshes and clock-driven redraws (0: none)
    evidence_dir: Path = Path("evidence")
    log_file: Path | None = None  # None: beside the store (var/agentdeck.log)
    config_path: Path | None = None
    # Seconds between the console's own prune runs (docs/retention.md); None: off (the default, as is 0).
    prune_every: float | None = None
    retention: RetentionPolicy = RetentionPolicy()
    # On-call (docs/notify.md): where notifications go and on what; who may approve what.
    notify: NotifySettings = NotifySettings()
    approvers: ApproverRules = ApproverRules()
    # The console's ingest process, store watcher and refresh pace (console/service/ingest_settings.py).
    ingest: IngestSettings = IngestSettings()
    # Watch, never act: every acting key and palette command is refused with a message.
    read_only: bool = False
    # Seconds of silence (no event, no task_end) after which a task shows as abandoned, not running; 0: never.
    abandon_after: float = 1800.0
    # Compose the other screens just after start-up, so the first visit to each is as quick as the next.
    prewarm: bool = True
    sources: dict[str, Source] = {}

    @field_validator("abandon_after", mode="before")
    @classmethod
    def _abandon(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower()
            value = 0 if value in ("off", "never") else value
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"abandon_after must be a number of seconds (0: never), not {value!r}") from None
        if not 0 <= seconds < float("inf"):  # also refuses NaN
            raise ValueError(f"abandon_after must be a number of seconds, 0 or more (0: never), not {value!r}")
        return seconds

    @field_validator("prune_every", mode="before")
    @classmethod
    def _every(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower()
            if value in ("", "off", "0"):
                return None
        if value is None or value == 0:
            return None
        seconds = float(value)
        if not 0 < seconds < float("inf"):  # also refuses NaN
            raise ValueError(f"prune_every must be a number of seconds above 0, or 0/off (not {value!r})")
        return seconds

    @field_validator("on_expiry", mode="before")
    @classmethod
    def _policy(cls, value: Any) -> Any:
        value = value.strip().lower() if isinstance(value, str) else value
        if value not in ("deny", "approve", "keep"):
            raise ValueError(f"on-expiry policy must be one of deny, approve, keep (not {value!r})")
        return value

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
        for name in type(self).model_fields:
            if name == "sources":
                continue
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
    known = set(Settings.model_fields) - {"sources", "config_path"} | {"operator"}
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
        data["traces"] = [_relative_to(folder, str(t)) for t in items]
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
                hosts = host_set(value)
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
        traces = [Path(t) for t in values["traces"]]
        values["outbox"] = _default_outbox(traces)
        sources["outbox"] = "default (first trace folder)" if values["outbox"] else "default (off: no trace folder)"
    elif str(values["outbox"]).lower() == "off":
        values["outbox"] = None
    values["config_path"] = path
    sources["config_path"] = config_source or ("default ($XDG_CONFIG_HOME/agentdeck/config.toml)" if path
                                               else "none (no config file)")
    if notify_routes:
        try:
            base = NotifySettings.model_validate(values.get("notify") or {})
            values["notify"] = base.with_routes(notify_routes)
        except (ValidationError, ValueError) as exc:
            raise SettingsError(f"notify (flag --notify): {exc}") from None
        sources["notify"] = f"flag --notify + {sources['notify']}" if "notify" in sources else "flag --notify"
    try:
        return Settings(**values, sources=sources)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = str(err["loc"][0]) if err["loc"] else "?"
            where = ".".join(str(part) for part in err["loc"]) or "?"  # e.g. ingest.poll
            message = str(err["msg"]).removeprefix("Value error, ")
            problems.append(f"{where} ({sources.get(name, 'default')}): {message}")
        raise SettingsError("; ".join(problems)) from None


def _source(source: Source, name: str) -> Source:
    return f"env {ENV[name]}" if source == "env" else source


def _default_outbox(traces: list[Path]) -> Path | None:
    """``<first trace folder>/outbox/decisions.jsonl``; None when no trace folder is known."""
    from agentdeck.store import outbox

    return outbox.resolve(None, traces)


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
    return Settings(db=Path(db), traces=tuple(traces), **overrides)
