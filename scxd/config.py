"""scxd's settings: built-in defaults < TOML file < ``SCXD_*`` environment < command line.

The models below are the single source of truth: ``config.example.toml`` is generated from
them (``scxd check-config --example``) and a test proves the shipped file equals the output
and parses to exactly the defaults.  Every key carries its unit and range in its metadata.

A bad setting never starts anything: :func:`load_config` raises :class:`ConfigError` whose
message names the source (file, environment variable or flag), the key and the problem.
"""

from __future__ import annotations

import contextvars
import ipaddress
import os
import textwrap
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from scxd.policy import settings as ps
from scxd.policy.registry import POLICY_NAMES

DEFAULT_CONFIG_PATH = Path("/etc/scxd/config.toml")
ENV_PREFIX = "SCXD_"
ENV_NESTED = "__"


def unit(u: str) -> dict[str, str]:
    return {"unit": u}


class Section(BaseModel):
    """A config table: unknown keys are errors, values are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TelemetryConfig(Section):
    """What is sampled, how often, and how samples become windows."""

    sample_interval: float = Field(1.0, ge=0.1, le=60.0, json_schema_extra=unit("s"),
                                   description="time between two samples")
    window: float = Field(5.0, ge=0.1, le=3600.0, json_schema_extra=unit("s"),
                          description="samples are aggregated into windows of this length")
    bpf: Literal["auto", "required", "off"] = Field(
        "auto", description="BPF telemetry: auto = use it when it loads, else fall back to "
        "/proc schedstat loudly; required = refuse to start without it; off = never load it")
    bpf_stats: bool = Field(True, description="enable BPF run-time statistics while the "
                            "collector runs, to report its own cost (adds ≈20 ns/event)")
    bpf_dir: str = Field("", description="directory holding the *.bpf.c programs; empty = "
                         "the one shipped beside the package")
    max_tasks: int = Field(65536, ge=1024, le=4_194_304, json_schema_extra=unit("tasks"),
                           description="slots of the in-kernel per-task table (power of 2; "
                           "48 bytes each; tasks whose pids collide modulo this evict each "
                           "other, counted as lost events)")
    ringbuf_pages: int = Field(256, ge=8, le=65536, json_schema_extra=unit("pages"),
                               description="size of the exited-task ring buffer (power of 2)")
    per_process: bool = Field(True, description="sum voluntary/involuntary context switches "
                              "and thread states over /proc/<pid>/status every sample")

    @field_validator("ringbuf_pages", "max_tasks")
    @classmethod
    def _power_of_two(cls, v: int) -> int:
        if v & (v - 1):
            raise ValueError(f"must be a power of two, got {v}")
        return v

    @model_validator(mode="after")
    def _window_holds_samples(self) -> TelemetryConfig:
        if self.window < self.sample_interval:
            raise ValueError(f"window ({self.window} s) must be ≥ sample_interval "
                             f"({self.sample_interval} s)")
        return self


class PolicyConfig(Section):
    """Which policy decides, and what it optimises (each learner's own table follows)."""

    name: str = Field(
        "asa", description="the deciding policy, one of: " + ", ".join(POLICY_NAMES) +
        " (asa = the classifier shipped trained on the test-bed dataset, with its risk "
        "check; fixed = always the configured scheduler; rule = documented threshold rule; "
        "network = the torch policy-gradient learner).  The default is the winner of the "
        "replay benchmark on the committed dataset and of its held-out-workload sweep "
        "(README \"The replay benchmark\")")
    seed: int = Field(-1, ge=-1, le=2**63 - 1, description="seed of the policy's random "
                      "generator (-1 = drawn from the OS and logged at start)")
    arm_space: Literal["presets", "grid"] = Field(
        "grid", description="arms the policy chooses among: presets = every preset of every "
        "available scheduler; grid = also each explorable parameter along its declared grid")
    model_arms: bool = Field(True, description="also offer every arm the policy's pretrained "
                             "checkpoint was trained on that this machine can run (the "
                             "recorded dataset's tuned combinations are not catalog presets; "
                             "without them a shipped model knows few of the daemon's arms)")
    checkpoint_every: int = Field(60, ge=1, le=10**6, json_schema_extra=unit("windows"),
                                  description="learned state is saved (atomically, in "
                                  "state_dir/policy) every this many windows and at exit")
    pretrained: str = Field("builtin", description="state a learner starts from when "
                            "state_dir has none: builtin = the checkpoint shipped with scxd "
                            "(trained on the test-bed dataset), none = from scratch, or a "
                            "checkpoint path")
    scheduler: str = Field("fair", description="scheduler the fixed policy holds (a catalog "
                           "name)")
    preset: str = Field("default", description="preset of that scheduler (a catalog preset)")
    objective: Literal["balanced", "latency", "throughput"] = Field(
        "balanced", description="what the reward counts as progress lost relative to the "
        "fair scheduler: balanced = time periodic/interactive tasks wait after timer, IRQ "
        "or IO wakeups + work completed per second; latency = that wait + its p99; "
        "throughput = work completed per second (scxd/reward.py; checked against the "
        "workloads' own outcomes by `scxd replay validate-reward`)")
    busy_cpu_pct: float = Field(90.0, ge=1.0, le=100.0, json_schema_extra=unit("%"),
                                description="rule: a window is busy when its busiest-CPU "
                                "mean utilisation is at least this")
    busy_windows: int = Field(1, ge=1, le=1000, json_schema_extra=unit("windows"),
                              description="rule: consecutive busy windows before switching")
    idle_windows: int = Field(6, ge=1, le=1000, json_schema_extra=unit("windows"),
                              description="rule: consecutive quiet windows before returning "
                              "to the fair scheduler")
    busy_schedulers: list[str] = Field(
        ["scx_lavd", "scx_bpfland", "scx_flash", "scx_simple"],
        description="rule: first available of these is used when busy")
    uniform: ps.UniformConfig = ps.UniformConfig()
    best_fixed: ps.BestFixedConfig = ps.BestFixedConfig()
    linucb: ps.LinUCBConfig = ps.LinUCBConfig()
    lints: ps.LinTSConfig = ps.LinTSConfig()
    squarecb: ps.SquareCBConfig = ps.SquareCBConfig()
    swucb: ps.SWUCBConfig = ps.SWUCBConfig()
    asa: ps.ASAConfig = ps.ASAConfig()
    vw: ps.VWConfig = ps.VWConfig()
    network: ps.NetworkConfig = ps.NetworkConfig()

    @field_validator("name")
    @classmethod
    def _registered(cls, v: str) -> str:
        if v not in POLICY_NAMES:
            raise ValueError(f"unknown policy {v!r} (known: {', '.join(map(repr, POLICY_NAMES))})")
        return v


class GuardConfig(Section):
    """Limits between the policy and the actuator."""

    min_dwell: float = Field(30.0, ge=0.0, le=86400.0, json_schema_extra=unit("s"),
                             description="minimum time on a scheduler before another swap")
    warmup_windows: int = Field(1, ge=0, le=100, json_schema_extra=unit("windows"),
                                description="windows after a swap that are not scored")
    swaps_per_hour: int = Field(20, ge=0, le=3600, json_schema_extra=unit("swaps"),
                                description="swap budget per sliding hour (0 = never swap)")
    regression_margin: float = Field(0.5, ge=0.0, le=10.0, json_schema_extra=unit("ratio"),
                                     description="go back to the fair scheduler when the "
                                     "chosen one's cost exceeds the fair reference's by more "
                                     "than this (the cost is the fraction of progress lost: "
                                     "0.5 ≈ half; per-window noise is large, so only gross "
                                     "regressions are caught quickly)")
    regression_windows: int = Field(6, ge=1, le=1000, json_schema_extra=unit("windows"),
                                    description="scored windows whose median the regression "
                                    "guard compares")
    regression_fast_margin: float = Field(
        3.0, ge=0.0, le=100.0, json_schema_extra=unit("ratio"),
        description="the fast path of the regression guard: back to the fair scheduler at "
        "once when each of the last regression_fast_windows windows (the warm-up window after "
        "a swap counts here) costs more than the fair baseline by this (3 ≈ three "
        "quarters of progress lost: a broken pick is not left running for "
        "regression_windows windows)")
    regression_fast_windows: int = Field(2, ge=1, le=100, json_schema_extra=unit("windows"),
                                         description="consecutive scored windows the fast "
                                         "path needs")
    regression_z: float = Field(3.0, ge=0.0, le=100.0, json_schema_extra=unit("z"),
                                description="also go back to fair when the chosen "
                                "scheduler's median cost over its last regression_windows "
                                "windows (from 3 on) is above "
                                "the fair scheduler's recent window costs by more than this "
                                "many standard errors (0 = off): catches the small but real "
                                "losses of quiet workloads that no fixed margin sees")
    regression_min_margin: float = Field(0.01, ge=0.0, le=10.0,
                                         json_schema_extra=unit("ratio"),
                                         description="the smallest difference the test "
                                         "above acts on")
    regression_fresh: float = Field(300.0, ge=0.0, le=86400.0, json_schema_extra=unit("s"),
                                    description="the test above runs only this long after "
                                    "the chosen scheduler replaced fair: later, fair's costs "
                                    "may describe another workload")
    reanchor: bool = Field(True, description="a swap from one non-fair scheduler to "
                           "another goes to the fair scheduler instead; the policy may move "
                           "on after min_dwell.  Fair is safe, and its windows of the present "
                           "workload are what the next pick is judged against (a failing "
                           "window usually means a new workload)")
    quarantine: float = Field(900.0, ge=0.0, le=86400.0, json_schema_extra=unit("s"),
                              description="a scheduler the regression guard removed (that "
                              "scheduler with those parameters) is refused for this long (0 = "
                              "never): the policy cannot put straight back what just failed")
    panic_failures: int = Field(3, ge=1, le=100, json_schema_extra=unit("failures"),
                                description="consecutive actuator failures that force the "
                                "fair scheduler and freeze")


class ActuatorConfig(Section):
    """How schedulers are started, verified and stopped."""

    mode: Literal["auto", "active", "advisory"] = Field(
        "auto", description="auto = active when /sys/kernel/sched_ext exists, else advisory "
        "(decide and record, never spawn)")
    search_path: list[str] = Field(["/usr/bin", "/usr/local/bin", "/usr/sbin"],
                                   description="directories searched for scheduler binaries")
    start_timeout: float = Field(10.0, ge=0.1, le=300.0, json_schema_extra=unit("s"),
                                 description="wait this long for state=enabled and our ops")
    stop_timeout: float = Field(5.0, ge=0.1, le=300.0, json_schema_extra=unit("s"),
                                description="SIGINT grace before SIGKILL")
    disable_timeout: float = Field(5.0, ge=0.1, le=300.0, json_schema_extra=unit("s"),
                                   description="wait this long for state=disabled")
    takeover: Literal["respect", "reclaim"] = Field(
        "respect", description="a scheduler started by someone else: respect = leave it and "
        "report; reclaim = put ours back")
    exit_scheduler: str = Field("fair", description="scheduler restored when scxd stops")
    log_bytes: int = Field(65536, ge=1024, le=64 * 1024**2, json_schema_extra=unit("bytes"),
                           description="bound on each scheduler's captured stdout+stderr")


class MetricsConfig(Section):
    """Prometheus exposition."""

    enabled: bool = Field(True, description="serve /metrics")
    address: str = Field("127.0.0.1:9638", description="HOST:PORT to listen on (loopback by "
                         "default; 0.0.0.0 exposes it to the network)")

    @field_validator("address")
    @classmethod
    def _host_port(cls, v: str) -> str:
        split_host_port(v)
        return v


class ControlConfig(Section):
    """The control socket scxctl talks to."""

    socket: str = Field("/run/scxd/scxd.sock", description="AF_UNIX socket path")
    group: str = Field("", description="group allowed to use the socket besides root "
                       "(empty = root only)")
    group_can_change: bool = Field(True, description="members of that group may freeze, "
                                   "switch, pin; otherwise they may only read status")
    max_request_bytes: int = Field(65536, ge=256, le=16 * 1024**2,
                                   json_schema_extra=unit("bytes"),
                                   description="larger requests are refused")
    max_connections: int = Field(32, ge=4, le=1024, json_schema_extra=unit("connections"),
                                 description="served at once; 2 of them are kept for root")
    connections_per_user: int = Field(8, ge=1, le=1024, json_schema_extra=unit("connections"),
                                      description="at most this many per non-root uid, and "
                                      "per process")
    idle_timeout: float = Field(30.0, ge=0.5, le=3600.0, json_schema_extra=unit("s"),
                                description="a connection idle this long between requests "
                                "is closed")
    request_timeout: float = Field(5.0, ge=0.1, le=600.0, json_schema_extra=unit("s"),
                                   description="a request must arrive whole this soon after "
                                   "its first byte (slow clients are cut off)")


class JournalConfig(Section):
    """The append-only record of windows and decisions."""

    enabled: bool = Field(True, description="write the journal")
    max_file_bytes: int = Field(64 * 1024**2, ge=4096, le=2**40,
                                json_schema_extra=unit("bytes"),
                                description="rotate the current file beyond this size")
    max_files: int = Field(8, ge=1, le=10000, json_schema_extra=unit("files"),
                           description="rotated files kept (oldest deleted)")
    fsync: bool = Field(True, description="fsync after each record (crash-safe)")


Scalar = bool | int | float | str


class ParamConfig(Section):
    """One parameter of a ``[schedulers.NAME]`` entry (same fields as the catalog)."""

    name: str
    kind: Literal["bool", "int", "float", "choice"] | None = None
    default: Scalar | None = None
    flag: str | None = None
    render: Literal["switch", "option", "choice_flag", "debugfs"] | None = None
    doc: str | None = None
    unit: str | None = None
    min: float | None = None
    max: float | None = None
    choices: list[str] | None = None
    pattern: str | None = None
    explore: bool | None = None
    grid: list[Scalar] | None = None


class SchedulerConfig(Section):
    """Add a scheduler, or override a built-in one (see scxd/catalog.py for the fields)."""

    enabled: bool = True
    binary: str = ""
    ops_prefix: str = ""
    description: str = ""
    help_args: list[str] | None = None
    explore: bool | None = None
    params: list[ParamConfig] = []
    remove_params: list[str] = []
    presets: dict[str, dict[str, Scalar]] = {}
    constraints: list[str] = []


class Settings(BaseSettings):
    """Everything scxd can be told."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_NESTED, extra="forbid", frozen=True,
        case_sensitive=False,
    )

    state_dir: str = Field("/var/lib/scxd", description="journal and persisted intent live "
                           "here")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="log verbosity")
    host_root: str = Field("/", description="root under which /proc, /sys and /dev/kmsg are "
                           "read (for containers and tests)")
    telemetry: TelemetryConfig = TelemetryConfig()
    policy: PolicyConfig = PolicyConfig()
    guard: GuardConfig = GuardConfig()
    actuator: ActuatorConfig = ActuatorConfig()
    metrics: MetricsConfig = MetricsConfig()
    control: ControlConfig = ControlConfig()
    journal: JournalConfig = JournalConfig()
    schedulers: dict[str, SchedulerConfig] = Field(
        default_factory=dict, description="catalog additions and overrides, by name")

    def scheduler_overrides(self) -> dict[str, dict[str, Any]]:
        """The [schedulers.*] tables as plain dicts, only the keys actually given."""
        return {name: cfg.model_dump(exclude_unset=True)
                for name, cfg in self.schedulers.items()}

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Highest priority first: command line (init kwargs), environment, TOML file.
        toml = InitSettingsSource(settings_cls, init_kwargs=_TOML_DATA.get() or {})
        return (init_settings, env_settings, toml)


_TOML_DATA: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "_TOML_DATA", default=None)


class ConfigError(Exception):
    """Invalid configuration; ``str()`` is the user-facing message, one problem per line."""


def split_host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    host = host.strip("[]")
    try:
        port_n = int(port)
    except ValueError:
        raise ValueError(f"port must be a number, got {port!r}") from None
    if not 0 <= port_n <= 65535:
        raise ValueError(f"port must be 0–65535, got {port_n}")
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"host must be an IP address or localhost, got {host!r}") from None
    return host, port_n


def read_toml(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot read it: {exc.strerror or exc}") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path}: not UTF-8 text ({exc.reason})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: invalid TOML: {exc}") from None


def _has_path(data: Mapping[str, Any], loc: tuple[str, ...]) -> bool:
    cur: Any = data
    for part in loc:
        if not isinstance(cur, Mapping) or part not in cur:
            return False
        cur = cur[part]
    return True


def _env_name(loc: tuple[str, ...]) -> str:
    return ENV_PREFIX + ENV_NESTED.join(part.upper() for part in loc)


def _describe_source(loc: tuple[str, ...], toml_path: Path | None, toml: dict[str, Any],
                     overrides: Mapping[str, Any], environ: Mapping[str, str]) -> str:
    if _has_path(overrides, loc):
        return "command line"
    for depth in range(len(loc), 0, -1):
        name = _env_name(loc[:depth])
        if any(k.upper() == name for k in environ):
            return f"environment variable {name}"
    if toml_path is not None and (_has_path(toml, loc) or _has_path(toml, loc[:-1])):
        return f"config file {toml_path}"
    return f"config file {toml_path}" if toml_path else "settings"


def format_validation_error(exc: ValidationError, toml_path: Path | None,
                            toml: dict[str, Any], overrides: Mapping[str, Any],
                            environ: Mapping[str, str]) -> str:
    lines = []
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"])
        source = _describe_source(loc, toml_path, toml, overrides, environ)
        key = ".".join(loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            problem = "unknown key"
        else:
            problem = err["msg"]
            if "input" in err and not isinstance(err["input"], dict):
                problem += f" (got {err['input']!r})"
        lines.append(f"{source}: key {key}: {problem}")
    return "\n".join(lines)


def load_config(path: str | os.PathLike[str] | None = None,
                overrides: Mapping[str, Any] | None = None,
                environ: Mapping[str, str] | None = None) -> Settings:
    """Load the effective settings.

    ``path`` None reads :data:`DEFAULT_CONFIG_PATH` when it exists (else embedded defaults);
    an explicit path must exist.  ``overrides`` are command-line values as a nested dict.
    """
    overrides = dict(overrides or {})
    environ = dict(os.environ if environ is None else environ)
    toml_path: Path | None
    if path is None:
        toml_path = DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.exists() else None
    else:
        toml_path = Path(path)
    toml = read_toml(toml_path) if toml_path is not None else {}
    token = _TOML_DATA.set(toml)
    saved_env = _swap_environ(environ)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, toml_path, toml, overrides,
                                                  environ)) from None
    finally:
        _swap_environ(saved_env)
        _TOML_DATA.reset(token)


def _swap_environ(new: Mapping[str, str]) -> dict[str, str]:
    """pydantic-settings reads os.environ; swap in the caller's mapping for one load."""
    old = dict(os.environ)
    if new != old:
        os.environ.clear()
        os.environ.update(new)
    return old


# -- the example file, generated from the models --------------------------------------------
def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def _describe_field(info: FieldInfo) -> str:
    parts = []
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    if "unit" in extra:
        parts.append(f"unit: {extra['unit']}")
    bounds = {type(m).__name__: m for m in info.metadata}
    lo = getattr(bounds.get("Ge"), "ge", None)
    hi = getattr(bounds.get("Le"), "le", None)
    if lo is not None or hi is not None:
        low = "-inf" if lo is None else lo
        high = "inf" if hi is None else hi
        parts.append(f"range: {low}..{high}")
    choices = getattr(info.annotation, "__args__", None)
    if choices and all(isinstance(c, str) for c in choices):
        parts.append("one of: " + ", ".join(choices))
    parts.append(f"default: {_toml_value(info.default)}")
    return "; ".join(parts)


def _emit_fields(model: type[BaseModel], lines: list[str]) -> None:
    for name, info in model.model_fields.items():
        if isinstance(info.default, BaseModel) or name == "schedulers":
            continue
        if info.description is None:
            raise TypeError(f"{model.__name__}.{name} has no description")
        lines += textwrap.wrap(f"{info.description} ({_describe_field(info)})", width=98,
                               initial_indent="# ", subsequent_indent="# ")
        lines.append(f"{name} = {_toml_value(info.default)}")
        lines.append("")


def example_toml() -> str:
    """The documented example config: every key at its default, with unit and range."""
    lines = [
        "# scxd configuration — every key, at its built-in default.",
        f"# Install as {DEFAULT_CONFIG_PATH} (or pass --config PATH).  Precedence:",
        "# built-in defaults < this file < SCXD_* environment (SCXD_SECTION__KEY) < flags.",
        "# Generated by `scxd check-config --example`; a test keeps it equal to the defaults.",
        "",
    ]
    _emit_fields(Settings, lines)
    for name, info in Settings.model_fields.items():
        if isinstance(info.default, BaseModel):
            section = type(info.default)
            lines.append(f"[{name}]")
            lines.append(f"# {section.__doc__.strip()}")
            lines.append("")
            _emit_fields(section, lines)
            for sub, sub_info in section.model_fields.items():
                if isinstance(sub_info.default, BaseModel):
                    table = type(sub_info.default)
                    lines.append(f"[{name}.{sub}]")
                    lines += textwrap.wrap(table.__doc__.strip(), width=98,
                                           initial_indent="# ", subsequent_indent="# ")
                    lines.append("")
                    _emit_fields(table, lines)
    lines += SCHEDULERS_EXAMPLE.splitlines()
    return "\n".join(lines).rstrip() + "\n"


SCHEDULERS_EXAMPLE = """
# [schedulers.NAME] adds a scheduler or overrides a built-in one; `scxd catalog` lists the
# result.  Nothing here is set by default.  A custom scheduler needs binary and ops_prefix:
#
# [schedulers.scx_mysched]
# binary = "/opt/scx/bin/scx_mysched"
# ops_prefix = "mysched"           # matched against /sys/kernel/sched_ext/root/ops
# description = "my experimental scheduler"
# help_args = ["--help"]           # the probe checks every flag against this output
# constraints = ["slice_us >= slice_min_us"]
# [[schedulers.scx_mysched.params]]
# name = "slice_us"
# kind = "int"                     # bool | int | float | choice
# flag = "--slice-us"
# default = 5000
# min = 100
# max = 100000
# [[schedulers.scx_mysched.params]]
# name = "slice_min_us"
# kind = "int"
# flag = "--slice-min-us"
# default = 500
# [schedulers.scx_mysched.presets]
# short = { slice_us = 1000 }
#
# Overriding a built-in: a different binary, one parameter narrowed, one removed.
# [schedulers.scx_bpfland]
# binary = "/usr/local/bin/scx_bpfland"
# remove_params = ["cpufreq"]
# [[schedulers.scx_bpfland.params]]
# name = "slice_us"
# max = 20000
#
# [schedulers.scx_central]
# enabled = false                  # drop an entry
"""


def effective_toml(settings: Settings) -> str:
    """The effective settings rendered as TOML (for check-config)."""
    data = settings.model_dump(exclude={"schedulers"})
    lines = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for k, v in data.items():
        if isinstance(v, dict):
            lines.append(f"\n[{k}]")
            lines += [f"{kk} = {_toml_value(vv)}" for kk, vv in v.items()
                      if not isinstance(vv, dict)]
            for kk, vv in v.items():
                if isinstance(vv, dict):
                    lines.append(f"\n[{k}.{kk}]")
                    lines += [f"{kkk} = {_toml_value(vvv)}" for kkk, vvv in vv.items()]
    for name, table in settings.scheduler_overrides().items():
        lines.append(f"\n[schedulers.{name}]")
        lines += [f"{kk} = {_toml_value(vv)}" for kk, vv in table.items()
                  if kk not in ("params", "presets")]
        for preset, values in table.get("presets", {}).items():
            inner = ", ".join(f"{pk} = {_toml_value(pv)}" for pk, pv in values.items())
            lines.append(f"presets.{preset} = {{ {inner} }}")
        for param in table.get("params", []):
            lines.append(f"\n[[schedulers.{name}.params]]")
            lines += [f"{pk} = {_toml_value(pv)}" for pk, pv in param.items()]
    return "\n".join(lines) + "\n"
