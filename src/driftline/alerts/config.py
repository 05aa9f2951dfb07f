"""The alerting configuration file: notifiers, routes, grouping, thresholds and retries.

The file is YAML (``.yml``/``.yaml``) or JSON (``.json``); its path comes from the
``DRIFTLINE_ALERTS_CONFIG`` setting. Every section is optional: an empty file (or no file at
all, :class:`AlertsConfig` ``()``) evaluates the built-in rules and records alerts, sending
nothing. Mistakes are reported with the path of the bad key, e.g.
``alerts.yml: notifiers.oncall.routing_key: required``.

Example file (``deploy/alerts.example.yml`` is a commented copy)::

    manager:
      group_by: [alertname]      # labels that form a group
      group_wait: 0s             # how long a new group gathers alerts
      repeat_interval: 4h        # re-send alerts still firing this often
    thresholds:                  # AlertThresholds fields
      missing_rate: 0.2
      report_stale_seconds: 1h
      latency_p99_seconds: 0.5
      latency_p99_resolve_seconds: 0.4   # hysteresis: a firing alert resolves below this
    rules:                       # per built-in rule: Prometheus's for and keep_firing_for
      DriftlineHighLatencyP99: {for: 10m, keep_firing_for: 10m}
      DriftlineFeatureDriftCritical: {for: 0s}
    delivery:                    # RetryPolicy fields
      retries: 3
      backoff: 0.5
      max_backoff: 8
      max_retry_after: 60
    notifiers:
      team-slack:
        type: slack
        url_env: SLACK_WEBHOOK_URL        # read the secret from this environment variable
      oncall:
        type: pagerduty
        routing_key_env: PAGERDUTY_ROUTING_KEY
        dedup_by: alert                   # or group
      ops-hook:
        type: webhook
        url: https://ops.example.com/driftline
        headers: {Authorization: Bearer s3cret}
      ml-team:
        type: email
        host: smtp.example.com
        port: 587
        starttls: true
        username: alerts@example.com
        password_env: SMTP_PASSWORD
        sender: alerts@example.com
        recipients: [ml-team@example.com]
    routes:                               # every matching route adds its notifiers
      - severity: critical
        notifiers: [oncall, team-slack]
      - severity: warning
        notifiers: [team-slack]
      - match: {alertname: DriftlineRollback}
        notifiers: [ml-team]
        stop: true                        # ignore the routes after this one when it matches
    default: [team-slack]                 # when no route matches

Keys of each notifier ``type`` (besides ``type``):

* ``webhook``: ``url``, ``headers``, ``timeout``;
* ``slack``: ``url``, ``timeout``;
* ``pagerduty``: ``routing_key``, ``url`` (default the Events API v2 endpoint), ``dedup_by``,
  ``source``, ``timeout``;
* ``email``: ``host``, ``port``, ``sender``, ``recipients``, ``starttls``, ``username``,
  ``password``, ``ca_file``, ``timeout``, ``subject_prefix``.

A secret (``url``, ``routing_key``, ``password``) may instead be given as ``<key>_env``: the
name of an environment variable holding it. Durations are seconds, or a number with a unit
``s``, ``m``, ``h`` or ``d`` (``90s``, ``5m``, ``4h``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from driftline import durations
from driftline.alerts.manager import AlertManager
from driftline.alerts.model import RuleSpec
from driftline.alerts.notifiers import (
    PAGERDUTY_EVENTS_URL,
    EmailNotifier,
    Notifier,
    PagerDutyNotifier,
    RetryPolicy,
    Route,
    Router,
    SlackNotifier,
    WebhookNotifier,
)
from driftline.alerts.rules import DEFAULT_DURATIONS, AlertThresholds, builtin_rules
from driftline.errors import ConfigurationError

__all__ = ["AlertsConfig", "load_alerts_config", "parse_alerts_config", "parse_duration"]

_SECRETS = ("url", "routing_key", "password")
DURATION_THRESHOLDS = frozenset(
    {"report_stale_seconds", "traffic_window_seconds", "rate_window_seconds"}
)


def parse_duration(value: Any, where: str = "duration") -> float:
    """Seconds from a number or a string with a unit, zero allowed (the one grammar of
    :func:`driftline.durations.parse_duration`).

    >>> parse_duration(90), parse_duration("90s"), parse_duration("5m"), parse_duration(0)
    (90.0, 90.0, 300.0, 0.0)
    """
    return durations.parse_duration(value, where, allow_zero=True)


@dataclass(frozen=True)
class AlertsConfig:
    """A parsed configuration: what the monitor needs to run the built-in alerting.

    ``AlertsConfig()`` is the configuration of no file: default grouping and thresholds, no
    notifiers.
    """

    notifiers: Mapping[str, Notifier] = field(default_factory=dict)
    router: Router = field(default_factory=lambda: Router([]))
    thresholds: AlertThresholds = field(default_factory=AlertThresholds)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    group_by: tuple[str, ...] = ("alertname",)
    group_wait: float = 0.0
    repeat_interval: float = 4 * 3600.0
    durations: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    """``(for, keep_firing_for)`` seconds per rule name, replacing :data:`DEFAULT_DURATIONS`."""

    def manager(self) -> AlertManager:
        """A fresh manager with this grouping (use ``AlertManager.from_dict(state,
        group_by=..., ...)`` to carry state over a restart)."""
        return AlertManager(
            group_by=self.group_by, group_wait=self.group_wait, repeat_interval=self.repeat_interval
        )

    def rules(self) -> tuple[RuleSpec, ...]:
        """The built-in rules with these thresholds and durations."""
        return builtin_rules(self.thresholds, self.durations)


# --- small typed readers ------------------------------------------------------------------------


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{where}: must be a mapping, got {type(value).__name__}")
    bad = [k for k in value if not isinstance(k, str)]
    if bad:
        raise ConfigurationError(f"{where}: keys must be strings, got {bad[0]!r}")
    return dict(value)


def _known(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigurationError(
            f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})"
        )


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{where}: must be a non-empty string, got {value!r}")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"{where}: must be a number, got {value!r}")
    return float(value)


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"{where}: must be an integer, got {value!r}")
    return value


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigurationError(f"{where}: must be true or false, got {value!r}")
    return value


def _str_list(value: Any, where: str) -> list[str]:
    if isinstance(value, str) or not isinstance(value, list):
        raise ConfigurationError(f"{where}: must be a list of strings, got {value!r}")
    return [_str(v, f"{where}[{i}]") for i, v in enumerate(value)]


def _str_map(value: Any, where: str) -> dict[str, str]:
    data = _mapping(value, where)
    return {k: _str(v, f"{where}.{k}") for k, v in data.items()}


def _built(where: str, make: Callable[[], Any]) -> Any:
    try:
        return make()
    except ConfigurationError as exc:
        raise ConfigurationError(f"{where}: {exc}") from None


# --- sections -----------------------------------------------------------------------------------


def _secrets(spec: dict[str, Any], where: str, environ: Mapping[str, str]) -> dict[str, Any]:
    """Replace ``<key>_env`` by the environment variable's value under ``<key>``."""
    out = dict(spec)
    for key in _SECRETS:
        env_key = f"{key}_env"
        if env_key not in out:
            continue
        if key in out:
            raise ConfigurationError(f"{where}: give {key} or {env_key}, not both")
        variable = _str(out.pop(env_key), f"{where}.{env_key}")
        if variable not in environ:
            raise ConfigurationError(
                f"{where}.{env_key}: environment variable {variable} is not set"
            )
        out[key] = environ[variable]
    return out


def _notifier(name: str, raw: Any, environ: Mapping[str, str]) -> Notifier:
    where = f"notifiers.{name}"
    spec = _mapping(raw, where)
    kind = spec.pop("type", None)
    kinds = ("webhook", "slack", "pagerduty", "email")
    if kind not in kinds:
        raise ConfigurationError(f"{where}.type: must be one of {kinds}, got {kind!r}")
    allowed = {
        "webhook": {"url", "headers", "timeout"},
        "slack": {"url", "timeout"},
        "pagerduty": {"routing_key", "url", "dedup_by", "source", "timeout"},
        "email": {
            "host",
            "port",
            "sender",
            "recipients",
            "starttls",
            "username",
            "password",
            "ca_file",
            "timeout",
            "subject_prefix",
        },
    }[kind]
    _known(spec, allowed | {f"{k}_env" for k in _SECRETS if k in allowed}, where)
    spec = _secrets(spec, where, environ)
    required = {
        "webhook": ("url",),
        "slack": ("url",),
        "pagerduty": ("routing_key",),
        "email": ("host", "sender", "recipients"),
    }[kind]
    for key in required:
        if key not in spec:
            raise ConfigurationError(f"{where}.{key}: required")
    timeout = _number(spec.get("timeout", 10.0), f"{where}.timeout")
    if kind == "webhook":
        url = _str(spec["url"], f"{where}.url")
        headers = _str_map(spec.get("headers"), f"{where}.headers")
        return _built(  # type: ignore[no-any-return]
            where, lambda: WebhookNotifier(url, name=name, timeout=timeout, headers=headers)
        )
    if kind == "slack":
        url = _str(spec["url"], f"{where}.url")
        return _built(  # type: ignore[no-any-return]
            where, lambda: SlackNotifier(url, name=name, timeout=timeout)
        )
    if kind == "pagerduty":
        key = _str(spec["routing_key"], f"{where}.routing_key")
        url = _str(spec.get("url", PAGERDUTY_EVENTS_URL), f"{where}.url")
        dedup_by = _str(spec.get("dedup_by", "alert"), f"{where}.dedup_by")
        source = _str(spec.get("source", "driftline"), f"{where}.source")
        return _built(  # type: ignore[no-any-return]
            where,
            lambda: PagerDutyNotifier(
                key, url=url, dedup_by=dedup_by, source=source, name=name, timeout=timeout
            ),
        )
    username = spec.get("username")
    username = None if username is None else _str(username, f"{where}.username")
    password = spec.get("password")
    password = None if password is None else _str(password, f"{where}.password")
    ca_file = spec.get("ca_file")
    ca_file = None if ca_file is None else _str(ca_file, f"{where}.ca_file")
    host = _str(spec["host"], f"{where}.host")
    port = _int(spec.get("port", 25), f"{where}.port")
    sender = _str(spec["sender"], f"{where}.sender")
    recipients = _str_list(spec["recipients"], f"{where}.recipients")
    starttls = _bool(spec.get("starttls", False), f"{where}.starttls")
    prefix = spec.get("subject_prefix", "[driftline]")
    if not isinstance(prefix, str):
        raise ConfigurationError(f"{where}.subject_prefix: must be a string, got {prefix!r}")
    return _built(  # type: ignore[no-any-return]
        where,
        lambda: EmailNotifier(
            host=host,
            port=port,
            sender=sender,
            recipients=recipients,
            starttls=starttls,
            username=username,
            password=password,
            ca_file=ca_file,
            timeout=timeout,
            subject_prefix=prefix,
            name=name,
        ),
    )


def _route(index: int, raw: Any) -> Route:
    where = f"routes[{index}]"
    spec = _mapping(raw, where)
    _known(spec, {"notifiers", "severity", "match", "stop"}, where)
    if "notifiers" not in spec:
        raise ConfigurationError(f"{where}.notifiers: required")
    notifiers = tuple(_str_list(spec["notifiers"], f"{where}.notifiers"))
    severity = spec.get("severity")
    match = _str_map(spec.get("match"), f"{where}.match")
    stop = _bool(spec.get("stop", False), f"{where}.stop")
    return _built(  # type: ignore[no-any-return]
        where, lambda: Route(notifiers, severity=severity, match=match, stop=stop)
    )


def _thresholds(raw: Any) -> AlertThresholds:
    where = "thresholds"
    spec = _mapping(raw, where)
    fields = AlertThresholds.__dataclass_fields__
    _known(spec, set(fields), where)
    values: dict[str, Any] = {}
    for key, value in spec.items():
        if key in DURATION_THRESHOLDS:
            values[key] = parse_duration(value, f"{where}.{key}")
        elif key in ("min_requests", "min_predictions", "min_labels"):
            values[key] = _int(value, f"{where}.{key}")
        else:
            values[key] = _number(value, f"{where}.{key}")
    return _built(where, lambda: AlertThresholds(**values))  # type: ignore[no-any-return]


def _durations(raw: Any) -> dict[str, tuple[float, float]]:
    where = "rules"
    spec = _mapping(raw, where)
    _known(spec, set(DEFAULT_DURATIONS), where)
    out: dict[str, tuple[float, float]] = {}
    for name, item in spec.items():
        entry = _mapping(item, f"{where}.{name}")
        _known(entry, {"for", "keep_firing_for"}, f"{where}.{name}")
        default_for, default_keep = DEFAULT_DURATIONS[name]
        values = []
        for key, default in (("for", default_for), ("keep_firing_for", default_keep)):
            seconds = parse_duration(entry.get(key, default), f"{where}.{name}.{key}")
            if not (seconds >= 0 and math.isfinite(seconds)):
                raise ConfigurationError(
                    f"{where}.{name}.{key}: must be in [0, inf), got {entry.get(key)!r}"
                )
            values.append(seconds)
        out[name] = (values[0], values[1])
    return out


def _retry(raw: Any) -> RetryPolicy:
    where = "delivery"
    spec = _mapping(raw, where)
    _known(spec, {"retries", "backoff", "max_backoff", "max_retry_after"}, where)
    values: dict[str, Any] = {}
    for key, value in spec.items():
        if key == "retries":
            values[key] = _int(value, f"{where}.{key}")
        else:
            values[key] = parse_duration(value, f"{where}.{key}")
    return _built(where, lambda: RetryPolicy(**values))  # type: ignore[no-any-return]


def parse_alerts_config(data: Any, *, environ: Mapping[str, str] | None = None) -> AlertsConfig:
    """Build an :class:`AlertsConfig` from parsed YAML/JSON (``None`` means an empty file).

    ``environ`` (default ``os.environ``) resolves ``<key>_env`` secrets.

    Example
    -------
    >>> cfg = parse_alerts_config({
    ...     "notifiers": {"hook": {"type": "webhook", "url": "http://127.0.0.1:9/x"}},
    ...     "routes": [{"severity": "critical", "notifiers": ["hook"]}],
    ...     "manager": {"repeat_interval": "1h"},
    ... })
    >>> sorted(cfg.notifiers), cfg.repeat_interval
    (['hook'], 3600.0)
    >>> parse_alerts_config({"routes": [{"notifiers": ["pager"]}]})
    Traceback (most recent call last):
    ...
    driftline.errors.ConfigurationError: routes[0].notifiers: unknown notifier 'pager' \
(defined: none)
    """
    env = os.environ if environ is None else environ
    spec = _mapping(data, "the file")
    _known(
        spec,
        {"manager", "thresholds", "rules", "delivery", "notifiers", "routes", "default"},
        "top level",
    )

    manager = _mapping(spec.get("manager"), "manager")
    _known(manager, {"group_by", "group_wait", "repeat_interval"}, "manager")
    group_by = tuple(_str_list(manager.get("group_by", ["alertname"]), "manager.group_by"))
    group_wait = parse_duration(manager.get("group_wait", 0), "manager.group_wait")
    repeat = parse_duration(manager.get("repeat_interval", "4h"), "manager.repeat_interval")
    _built(
        "manager",
        lambda: AlertManager(group_by=group_by, group_wait=group_wait, repeat_interval=repeat),
    )

    notifiers = {
        name: _notifier(name, raw, env)
        for name, raw in _mapping(spec.get("notifiers"), "notifiers").items()
    }
    raw_routes = spec.get("routes") or []
    if not isinstance(raw_routes, list):
        raise ConfigurationError(f"routes: must be a list, got {type(raw_routes).__name__}")
    routes = [_route(i, r) for i, r in enumerate(raw_routes)]
    default = tuple(_str_list(spec.get("default") or [], "default"))
    defined = ", ".join(sorted(notifiers)) or "none"
    for i, route in enumerate(routes):
        for name in route.notifiers:
            if name not in notifiers:
                raise ConfigurationError(
                    f"routes[{i}].notifiers: unknown notifier {name!r} (defined: {defined})"
                )
    for name in default:
        if name not in notifiers:
            raise ConfigurationError(f"default: unknown notifier {name!r} (defined: {defined})")

    return AlertsConfig(
        notifiers=notifiers,
        router=Router(routes, default=default),
        thresholds=_thresholds(spec.get("thresholds")),
        durations=_durations(spec.get("rules")),
        retry=_retry(spec.get("delivery")),
        group_by=group_by,
        group_wait=group_wait,
        repeat_interval=repeat,
    )


def load_alerts_config(
    path: str | Path, *, environ: Mapping[str, str] | None = None
) -> AlertsConfig:
    """Read and parse an alerting configuration file (YAML, or JSON by its ``.json`` suffix).

    Errors are :class:`~driftline.errors.ConfigurationError` starting with the file name.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot read the alerting configuration: {exc}") from exc
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"{path}: not valid {_syntax(path)}: {exc}") from None
    try:
        return parse_alerts_config(data, environ=environ)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{path.name}: {exc}") from None


def _syntax(path: Path) -> str:
    return "JSON" if path.suffix == ".json" else "YAML"
