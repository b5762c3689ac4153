"""What to notify about and where: the config file's ``[notify]`` table and ``--notify`` specs.

A route is written as a URL with an optional type prefix::

    https://hooks.example.com/agentdeck           generic JSON webhook
    slack+https://hooks.slack.com/services/T/B/X  Slack incoming webhook
    pagerduty+https://events.pagerduty.com/v2/enqueue?routing_key=KEY
                                                  PagerDuty Events API v2
    bell                                          the console's terminal bell
    desktop                                       notify-send, where installed

or, in the config file, as a table (``{url = "...", type = "pagerduty",
routing_key = "...", rules = [...]}``). See ``docs/notify.md``.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from agentdeck.console.service.host_list import host_set

HostList = Annotated[frozenset[str], BeforeValidator(host_set)]  # the allowlist rule, as a field of a model

RouteType = Literal["webhook", "slack", "pagerduty", "bell", "desktop"]
RuleName = Literal["escalation", "deadline", "canary", "ingest", "failure"]
RULE_NAMES: tuple[RuleName, ...] = ("escalation", "deadline", "canary", "ingest", "failure")
Risk = Literal["low", "medium", "high", "critical"]
PREFIXES = {"slack+": "slack", "pagerduty+": "pagerduty", "webhook+": "webhook"}
LOCAL: tuple[str, ...] = ("bell", "desktop")


class RouteSettings(BaseModel):
    """One place notifications go."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: RouteType = "webhook"
    # Secrets (a Slack webhook's path, a PagerDuty routing key): kept out of
    # repr() so a log line or `agentdeck config` never prints them; show `label`.
    url: str | None = Field(default=None, repr=False)  # the URL that is POSTed (for pagerduty: without ?routing_key=)
    routing_key: str | None = Field(default=None, repr=False)  # pagerduty only
    name: str | None = None  # shown instead of the host, e.g. "payments on-call"
    rules: list[RuleName] = Field(default_factory=lambda: list(RULE_NAMES))

    @model_validator(mode="before")
    @classmethod
    def _from_spec(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_route(value)
        if isinstance(value, dict) and isinstance(value.get("url"), str) and "type" not in value:
            parsed = parse_route(value["url"])
            return {**value, **{k: v for k, v in parsed.items() if k not in value or k == "url"}}
        return value

    @model_validator(mode="after")
    def _complete(self) -> RouteSettings:
        if self.type in LOCAL:
            if self.url:
                raise ValueError(f"a {self.type} route has no URL")
            return self
        if not self.url:
            raise ValueError(f"a {self.type} route needs a URL")
        try:
            import httpx  # only when a route is given: the console's start-up does not pay for it
            parsed = httpx.URL(self.url)
        except Exception as exc:
            raise ValueError(f"not a URL: {self.url!r}") from exc
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(f"not an http(s) URL with a host: {self.label}")
        if self.type == "pagerduty" and not self.routing_key:
            raise ValueError(f"the PagerDuty route {self.label} needs a routing key "
                             "(?routing_key=KEY in the URL, or routing_key in the config file)")
        return self

    @property
    def id(self) -> str:
        """Stable across restarts and consoles: the notification rows of a route carry it."""
        text = f"{self.type}\x00{self.url or ''}\x00{self.routing_key or ''}"
        return f"{self.type}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"

    @property
    def host(self) -> str:
        if not self.url:
            return ""
        try:
            import httpx  # only when a route is given: the console's start-up does not pay for it
            url = httpx.URL(self.url)
        except Exception:
            return "?"
        return f"{url.host}:{url.port}" if url.port else url.host

    @property
    def label(self) -> str:
        """What the console shows: never the URL's path or the routing key (Slack's path is its secret)."""
        if self.name:
            return f"{self.type} {self.name}"
        return self.type if self.type in LOCAL else f"{self.type} {self.host}"

    @property
    def local(self) -> bool:
        return self.type in LOCAL


def parse_route(spec: str) -> dict[str, Any]:
    """``[slack+|pagerduty+]URL``, ``bell`` or ``desktop`` → RouteSettings fields."""
    spec = spec.strip()
    if spec in LOCAL:
        return {"type": spec}
    kind = "webhook"
    for prefix, name in PREFIXES.items():
        if spec.lower().startswith(prefix):
            kind, spec = name, spec[len(prefix):]
            break
    out: dict[str, Any] = {"type": kind, "url": spec}
    if kind == "pagerduty":
        try:
            import httpx  # only when a route is given: the console's start-up does not pay for it
            url = httpx.URL(spec)
        except Exception:
            return out
        key = url.params.get("routing_key")
        if key:
            out["routing_key"] = key
            out["url"] = str(url.copy_remove_param("routing_key"))
    return out


class RuleSettings(BaseModel):
    """``[notify.rules]``: when to notify."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # A new escalation at or above this risk ("off": never).
    escalation: Risk | Literal["off"] = "low"
    # An undecided escalation this many minutes before its deadline (0: off).
    deadline_minutes: float = Field(default=5.0, ge=0)
    # A canary verdict that changes to hold or roll back ("rollback": only roll back; "off").
    canary: Literal["hold", "rollback", "off"] = "hold"
    canary_window: Literal["15m", "1h", "24h", "all"] = "1h"  # tasks started within this long (store.canary)
    # Ingest: rejected lines growing, or nothing committed this long while
    # trace files hold bytes not yet ingested (0: off).
    ingest_stall_minutes: float = Field(default=10.0, ge=0)
    ingest_rejects: bool = True
    # A decision that could not be delivered, or a compensation that failed.
    failures: bool = True


class NotifySettings(BaseModel):
    """The ``[notify]`` table: routes, rules and the hosts routes may call."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    routes: list[RouteSettings] = Field(default_factory=list)
    rules: RuleSettings = Field(default_factory=RuleSettings)
    # Added to the console's allow_hosts for notification routes only.
    allow_hosts: HostList = frozenset()
    attempts: int = Field(default=5, ge=1)  # per notification, spread over ticks
    backoff: float = Field(default=2.0, ge=0)  # seconds before the 2nd attempt; doubles each time
    timeout: float = Field(default=5.0, gt=0)
    source: str = "agentdeck"  # PagerDuty's payload.source, e.g. the console's host name

    @field_validator("routes")
    @classmethod
    def _distinct(cls, routes: list[RouteSettings]) -> list[RouteSettings]:
        seen: set[str] = set()
        out = []
        for route in routes:  # the same route twice would send everything twice
            if route.id not in seen:
                seen.add(route.id)
                out.append(route)
        return out

    def describe(self) -> str:
        """One line for ``agentdeck config``: route labels and rules, never a URL path or routing key."""
        routes = ", ".join(r.label for r in self.routes) or "none"
        r = self.rules
        return (f"routes: {routes}; escalation >= {r.escalation}, deadline {r.deadline_minutes:g} min before, "
                f"canary {r.canary}, ingest stall {r.ingest_stall_minutes:g} min, failures {'on' if r.failures else 'off'}")

    def with_routes(self, specs: list[str], allow_hosts: frozenset[str] | set[str] = frozenset()) -> NotifySettings:
        """These settings plus routes from ``--notify`` and hosts from ``--allow-host``."""
        routes = [*self.routes, *(RouteSettings.model_validate(s) for s in specs)]
        return self.model_copy(update={"routes": self._distinct(routes),
                                       "allow_hosts": self.allow_hosts | host_set(allow_hosts)})
