"""The guard's settings: definitions, validation and precedence (defaults < config file < environment).

Every setting has an environment variable GPU_GUARD_<NAME>. A bad value never stops ComfyUI: it is
logged with the variable (or file key), the allowed range and the fix, and the setting keeps its
default. Runtime changes (the HTTP route) are validated as a whole, refused for settings pinned by
the environment, and persisted with an atomic write.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

from . import priority
from . import setting_values as values
from .operator_token import read_token
from .ops import webhook_settings

log = logging.getLogger("gpu_guard.config")

ENV_PREFIX = "GPU_GUARD_"
TOKEN_ENV = ENV_PREFIX + "TOKEN"
@dataclass(frozen=True)
class Setting:
    name: str
    parse: Callable[[Any, bool], Any]
    runtime: bool  # may be changed over HTTP while ComfyUI runs
    help: str
    over_http: Optional[Callable[[Any, bool], Any]] = None  # stricter parse for HTTP (e.g. no secrets)
    shown: Optional[Callable[[Any], Any]] = None  # what routes and logs show (secrets hidden)

    @property
    def default(self) -> Any:
        return getattr(GuardConfig, self.name)

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def allowed(self) -> str:
        return self.parse.allowed


SETTINGS = (
    Setting("enabled", values.boolean, True, "guard prompts at all; false lets every prompt run"),
    Setting("probe", values.probe_spec, False, "memory sensor; read at start-up only"),
    Setting("pause_at", values.number(0, 1, lo_open=True), True, "pause when the used ratio is >= this"),
    Setting("resume_at", values.number(0, 1, lo_open=True), True, "resume when the used ratio is < this"),
    # 0.05 s: a reading costs microseconds, but a faster poll only spins the thread; memory moves slower
    Setting("poll_s", values.number(0.05, 60), True, "seconds between readings (at least 0.05)"),
    Setting("max_held", values.number(0, 1_000_000, integer=True), True,
            "prompts held while paused before /prompt answers 429; 0 = unbounded"),
    Setting("retry_after_s", values.number(1, 3600, integer=True), True, "Retry-After of a 429"),
    Setting("hold_timeout_s", values.number(0, 7 * 86400), True, "seconds a prompt may be held; 0 = forever"),
    Setting("hold_timeout_action", values.choice("keep", "fail"), True,
            "after the hold timeout: keep holding (with an alert) or fail the prompt"),
    Setting("fast_lane", values.boolean, True, "while paused, run prompts whose estimate fits in free memory"),
    Setting("fast_lane_margin", values.number(0, 10), True,
            "headroom added to a prompt's estimate, as a fraction of it"),
    Setting("fast_lane_max_overtake_s", values.number(0, 7 * 86400), True,
            "once the first held prompt has waited this long, the fast lane lets nothing overtake it; "
            "0 = no limit"),
    Setting("sensor_failures", values.number(1, 1000, integer=True), True,
            "consecutive failed readings before the sensor policy applies"),
    Setting("sensor_policy", values.choice("open", "closed"), True,
            "with a failing sensor: open = admit (loud warning), closed = hold"),
    Setting("free_on_hold", values.boolean, True,
            "when held and idle, ask ComfyUI to release its idle models (again after a prompt ran)"),
    Setting("idle_unload_s", values.number(0, 7 * 86400), True,
            "release this ComfyUI's idle models after this many seconds without a prompt; 0 = never "
            "(for GPUs shared by several servers)"),
    Setting("neighbours", values.boolean, True,
            "find the guards of other ComfyUI servers on the same GPU, publish this one's idle memory, and "
            "ask an idle neighbour to release its idle models when they keep prompts held here"),
    Setting("neighbours_dir", values.folder, False,
            "the registry folder shared by the guards of one machine; empty = $XDG_RUNTIME_DIR or /dev/shm"),
    Setting("live_max_run_s", values.number(0, 7 * 86400), True,
            "/gpu_guard/live fails once one prompt has run longer than this (the worker is stuck); "
            "0 = never by time; size it above the longest job"),
    Setting("drain_on_sigterm_s", values.number(0, 7 * 86400), False,
            "SIGTERM starts a drain and the process exits once drained or after this many seconds; "
            "0 = SIGTERM stops ComfyUI at once, as without the pack"),
    Setting("priority_classes", priority.parse_classes, True,
            "priority classes, highest first: [{name, token | token_sha256, max_held}]; a /prompt with a "
            "class token (Authorization: Bearer) runs ahead of lower classes and has its own max_held",
            over_http=lambda value, from_text: priority.parse_classes(value, from_text, over_http=True),
            shown=priority.shown_classes),
    Setting("priority_max_wait_s", values.number(0, 7 * 86400), True,
            "aging: a normal prompt that waited this long is not overtaken by class prompts any more; 0 = never"),
    Setting("priority_enforce", priority.parse_enforce, True,
            "clients without a class token cannot set front or number on /prompt (ComfyUI lets anyone jump "
            "the queue with them); auto = on whenever priority classes are configured"),
    Setting("ready_strict", values.boolean, True,
            "/gpu_guard/ready answers 503 while paused (the server leaves rotation); false = 503 only when it "
            "cannot take a prompt (draining, hold queue full, failing closed), so a pause is never an outage"),
    Setting("lb_agent_port", values.number(0, 65535, integer=True), False,
            "TCP port of the load-balancer agent (HAProxy agent-check: weight 100% running, 1% paused, 0% "
            "when not ready), on ComfyUI's listen address; 0 = off"),
    Setting("alert_held_s", values.number(0, 7 * 86400), True,
            "warn when a prompt is held longer than this; 0 = never"),
    Setting("event_log_max_bytes", values.number(0, 1 << 30, integer=True), True,
            "cap of the event log in ComfyUI's user directory, all its files together; 0 = no log"),
    Setting("event_log_files", values.number(1, 100, integer=True), True,
            "files the event log rotates through (the oldest is dropped)"),
    Setting("alert_pauses_per_day", values.number(0, 1_000_000, integer=True), True,
            "webhook alert when more pauses than this started in the last 24 h; 0 = off"),
    Setting("alert_hold_episode_s", values.number(0, 7 * 86400), True,
            "webhook alert when prompts have been held longer than this without a break; 0 = off"),
    Setting("alert_held_fraction", values.number(0, 1), True,
            "webhook alert when more prompts than this fraction of max_held are held; 0 = off"),
    Setting("alert_rejected_burst", values.number(0, 1_000_000, integer=True), True,
            "webhook alert when this many 429 answers fall within alert_rejected_window_s; 0 = off"),
    Setting("alert_rejected_window_s", values.number(1, 86400), True, "window of the 429 burst alert"),
    Setting("alert_cooldown_s", values.number(0, 7 * 86400), True,
            "after an alert fired, the same rule stays quiet this long"),
    Setting("webhooks", webhook_settings.parse_targets, True,
            "alert targets: json (Standard Webhooks signed), dingtalk, feishu, slack",
            over_http=lambda value, from_text: webhook_settings.parse_targets(value, from_text, over_http=True),
            shown=webhook_settings.shown),
    Setting("webhook_retries", values.number(0, 20, integer=True), True,
            "retries of a failed webhook delivery (backoff 1 s, 2 s, 4 s ... 60 s) before a dead letter"),
    Setting("webhook_timeout_s", values.number(0.1, 60), True, "seconds one webhook attempt may take"),
    Setting("oom_rescue", values.boolean, True,
            "a prompt that runs out of GPU memory is put back at the head of its lane and runs again once "
            "its learned peak is free, instead of ending as an error"),
    Setting("oom_retries", values.number(0, 20, integer=True), True,
            "times one prompt is rescued from out-of-memory before it ends as an error"),
    Setting("learned_peaks_max", values.number(0, 100_000, integer=True), True,
            "workflows whose measured peak is remembered (least recently used out); 0 = learn nothing"),
    Setting("alert_ooms_per_hour", values.number(0, 1_000_000, integer=True), True,
            "webhook alert when more prompts than this ran out of GPU memory in the last hour; 0 = off"),
    # start-up only: a writer of the config over HTTP must not widen where alerts (and secrets) may go
    Setting("webhook_allow_hosts", webhook_settings.parse_allow_hosts, False,
            "the only hosts webhook targets may use (empty = any, except link-local and metadata addresses, "
            "which must be listed here to be used); read at start-up only"),
    Setting("persist", values.boolean, False,
            "journal the queued and held prompts in ComfyUI's user directory and restore them at start"),
    Setting("persist_running", values.choice("rerun", "fail"), True,
            "at start, the prompt that was running when ComfyUI stopped: run it again (at-least-once) or "
            "record it in /history as failed by the restart; read at the next start"),
)
SETTINGS_BY_NAME = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class GuardConfig:
    enabled: bool = True
    probe: str = "auto"
    pause_at: float = 0.85
    resume_at: float = 0.75
    poll_s: float = 1.0
    max_held: int = 0
    retry_after_s: int = 10
    hold_timeout_s: float = 0.0
    hold_timeout_action: str = "keep"
    fast_lane: bool = True
    fast_lane_margin: float = 0.25
    fast_lane_max_overtake_s: float = 60.0
    sensor_failures: int = 3
    sensor_policy: str = "open"
    free_on_hold: bool = True
    idle_unload_s: float = 0.0
    neighbours: bool = True
    neighbours_dir: str = ""
    live_max_run_s: float = 3600.0
    drain_on_sigterm_s: float = 0.0
    priority_classes: tuple = ()
    priority_max_wait_s: float = 300.0
    priority_enforce: Any = "auto"  # True | False | "auto" (priority.enforced)
    ready_strict: bool = False
    lb_agent_port: int = 0
    alert_held_s: float = 300.0
    event_log_max_bytes: int = 8 * 1024 * 1024
    event_log_files: int = 4
    alert_pauses_per_day: int = 10
    alert_hold_episode_s: float = 600.0
    alert_held_fraction: float = 0.8
    alert_rejected_burst: int = 10
    alert_rejected_window_s: float = 60.0
    alert_cooldown_s: float = 1800.0
    webhooks: tuple = ()
    webhook_retries: int = 5
    webhook_timeout_s: float = 5.0
    oom_rescue: bool = True
    oom_retries: int = 2
    learned_peaks_max: int = 2000
    alert_ooms_per_hour: int = 0
    webhook_allow_hosts: tuple = ()
    persist: bool = True
    persist_running: str = "rerun"

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def shown_value(name: str, value: Any) -> Any:
    """A setting's value as routes and logs may show it (webhook secrets and URL paths hidden)."""
    setting = SETTINGS_BY_NAME.get(name)
    return setting.shown(value) if setting is not None and setting.shown is not None else value


def public_view(config: "GuardConfig") -> dict:
    """Every setting, as routes may show it."""
    return {name: shown_value(name, value) for name, value in config.as_dict().items()}


def cross_check(values: Mapping[str, Any]) -> list:
    """Errors that involve several settings together."""
    if values["resume_at"] >= values["pause_at"]:
        return [f"resume_at ({values['resume_at']:g}) must be below pause_at ({values['pause_at']:g}); "
                "the guard needs a gap between the two to avoid flapping"]
    return []


class ConfigSource:
    """Where the settings came from: which are pinned by the environment, which file persists changes."""

    def __init__(self, config: GuardConfig, pinned: frozenset, path: Optional[str], token: Optional[str],
                 problems: list):
        self.config = config
        self.pinned = pinned
        self.path = path
        self.token = token
        self.problems = problems  # messages of the bad values that fell back to defaults


def _read_file(path: Optional[str], problems: list) -> dict:
    if not path or not os.path.exists(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        problems.append(f"config file {path} is not readable JSON ({e}); using defaults for all of it - "
                        "fix or delete the file")
        return {}
    if not isinstance(data, dict):
        problems.append(f"config file {path} must hold a JSON object, got {type(data).__name__}; ignored")
        return {}
    return data


def load(config_file: Optional[str] = None, environ: Optional[Mapping[str, str]] = None) -> ConfigSource:
    """Settings from defaults < config_file < environment; never raises for bad values."""
    environ = os.environ if environ is None else environ
    problems: list = []
    values = GuardConfig().as_dict()
    for key, raw in _read_file(config_file, problems).items():
        setting = SETTINGS_BY_NAME.get(key)
        if setting is None:
            problems.append(f"config file {config_file}: unknown setting {key!r} ignored "
                            f"(known: {', '.join(SETTINGS_BY_NAME)})")
            continue
        try:
            values[key] = setting.parse(raw, False)
        except ValueError as e:
            problems.append(f"config file {config_file}: {key} {e}; using the default {setting.default!r}")
    pinned = set()
    for setting in SETTINGS:
        raw = environ.get(setting.env)
        if raw is None or raw.strip() == "":
            continue
        try:
            values[setting.name] = setting.parse(raw, True)
            pinned.add(setting.name)
        except ValueError as e:
            values[setting.name] = setting.default
            problems.append(f"{setting.env} {e}; using the default {setting.default!r} - "
                            f"set it to {setting.allowed} or unset it")
    for message in cross_check(values):
        problems.append(f"{message}; using the defaults pause_at={GuardConfig.pause_at} "
                        f"resume_at={GuardConfig.resume_at}")
        values["pause_at"], values["resume_at"] = GuardConfig.pause_at, GuardConfig.resume_at
    host_problems = webhook_settings.targets_host_problems(values["webhooks"], values["webhook_allow_hosts"])
    if host_problems:
        problems.extend(f"webhooks {message}; no webhook target is used" for message in host_problems)
        values["webhooks"] = ()
    for message in problems:
        log.error("VRAM guard setting: %s", message)
    token, token_problem = read_token(environ.get(TOKEN_ENV))
    if token_problem:
        problems.append(token_problem)
        log.error("VRAM guard setting: %s", token_problem)
    return ConfigSource(GuardConfig(**values), frozenset(pinned), config_file, token, problems)


def validate_update(current: GuardConfig, partial: Any, pinned: frozenset) -> tuple:
    """(new config, errors) for a runtime change; with errors the new config is None."""
    if not isinstance(partial, Mapping):
        return None, [f"the body must be a JSON object of settings, got {type(partial).__name__}"]
    errors = []
    values = current.as_dict()
    for key, raw in partial.items():
        setting = SETTINGS_BY_NAME.get(key)
        if setting is None:
            errors.append(f"unknown setting {key!r}; known: {', '.join(SETTINGS_BY_NAME)}")
        elif key in pinned:
            errors.append(f"{key} is pinned by the environment variable {setting.env}; "
                          "unset it and restart ComfyUI to change it here")
        elif not setting.runtime:
            errors.append(f"{key} is read at start-up only; set it in the config file or {setting.env} "
                          "and restart ComfyUI")
        else:
            try:
                values[key] = (setting.over_http or setting.parse)(raw, False)
            except ValueError as e:
                errors.append(f"{key} {e}")
    if not errors:
        errors = cross_check(values) + [
            f"webhooks {message}" for message in
            webhook_settings.targets_host_problems(values["webhooks"], values["webhook_allow_hosts"])]
    return (None, errors) if errors else (GuardConfig(**values), [])


def persist(path: str, partial: Mapping[str, Any]) -> None:
    """Merge partial into the JSON file at path with an atomic replace (a crash never leaves half a file)."""
    data = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            loaded = json.load(f)
        data = loaded if isinstance(loaded, dict) else {}
    data.update(partial)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".gpu_guard.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
