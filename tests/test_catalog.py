"""The catalog: every entry is well-formed, renders argv its binary's own flag table accepts,
rejects invalid points clearly, and can be extended from the config.

The flag tables below are transcribed independently from the schedulers' ``--help`` output
and the kernel tree's getopt strings, so rendering is checked against the binaries' parsers, not
against the catalog itself.
"""

from __future__ import annotations

import getopt
import re

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from scxd.catalog import (
    BUILTIN,
    FAIR,
    Catalog,
    CatalogError,
    ParamSpec,
    build_catalog,
)
from scxd.config import load_config

CATALOG = build_catalog()

# getopt strings of the kernel tree's loaders (tools/sched_ext/*.c, Linux 6.12).
GETOPT = {"scx_simple": "fvh", "scx_qmap": "s:e:t:T:l:b:PHd:D:Spvh",
          "scx_flatcg": "s:i:dfvh", "scx_central": "s:c:pvh"}

# clap flag tables (scx v1.0.14–1.1.x, flashyspark): flag → value type ("" = switch).
U64, I64, F64, STR = "u64", "i64", "f64", "str"
CLAP = {
    "scx_bpfland": {"--slice-us": U64, "--slice-min-us": U64, "--slice-us-lag": U64,
                    "--throttle-us": U64, "--idle-resume-us": I64, "--local-pcpu": "",
                    "--local-kthreads": "", "--no-wake-sync": "", "--sticky-tasks": "",
                    "--primary-domain": STR, "--preferred-idle-scan": "",
                    "--disable-smt": "", "--disable-numa": "", "--cpufreq": ""},
    "scx_flash": {"--slice-us": U64, "--slice-us-min": U64, "--slice-us-lag": U64,
                  "--slice-lag-scaling": "", "--run-us-lag": U64, "--max-avg-nvcsw": U64,
                  "--cpu-busy-thresh": I64, "--throttle-us": U64, "--idle-resume-us": I64,
                  "--tickless": "", "--rr-sched": "", "--no-builtin-idle": "",
                  "--local-pcpu": "", "--direct-dispatch": "", "--sticky-cpu": "",
                  "--native-priority": "", "--local-kthreads": "", "--no-wake-sync": "",
                  "--primary-domain": STR, "--disable-l2": "", "--disable-l3": "",
                  "--disable-smt": "", "--disable-numa": "", "--cpufreq": ""},
    "scx_rusty": {"--slice-us-underutil": U64, "--slice-us-overutil": U64,
                  "--interval": F64, "--tune-interval": F64, "--load-half-life": F64,
                  "--kthreads-local": "", "--fifo-sched": "", "--partial": "",
                  "--no-load-balance": ""},
    "scx_lavd": {"--autopilot": "", "--autopower": "", "--performance": "",
                 "--powersave": "", "--balanced": "", "--slice-max-us": U64,
                 "--slice-min-us": U64, "--pinned-slice-us": U64, "--preempt-shift": U64,
                 "--lat-load-target-pct": U64, "--no-wake-sync": "", "--per-cpu-dsq": "",
                 "--partial": ""},
}
CLAP["scx_flashyspark"] = {**CLAP["scx_flash"], "--dsq-mode": STR, "--stay-with-kthread": "",
                           "--aggressive-gpu-tasks": "", "--workload-aware-scheduling": "",
                           "--timer-kick": ""}
PRIMARY_DOMAIN = re.compile(r"auto|turbo|performance|powersave|all|none|0x[0-9a-fA-F]+")


def clap_accepts(table: dict[str, str], argv: list[str]) -> None:
    """Parse like clap: known flags only, typed values, no repeats."""
    seen = set()
    i = 0
    while i < len(argv):
        flag = argv[i]
        assert flag in table, f"unknown flag {flag}"
        assert flag not in seen, f"{flag} given twice"
        seen.add(flag)
        kind = table[flag]
        if kind:
            i += 1
            value = argv[i]
            if kind == U64:
                assert value.isdigit() and int(value) < 2**64, f"{flag} {value}: not u64"
            elif kind == I64:
                assert re.fullmatch(r"-?\d+", value), f"{flag} {value}: not i64"
            elif kind == F64:
                float(value)
            elif flag == "--primary-domain":
                assert PRIMARY_DOMAIN.fullmatch(value), value
            elif flag == "--dsq-mode":
                assert value in ("cpu", "shared")
        i += 1


def binary_accepts(name: str, argv: list[str]) -> None:
    if name in GETOPT:
        opts, rest = getopt.getopt(argv, GETOPT[name])
        assert rest == [], f"stray words {rest}"
        for flag, value in opts:
            if value:
                assert re.fullmatch(r"-?[0-9.]+", value), f"{flag} {value}"
    else:
        clap_accepts(CLAP[name], argv)


# -- every entry ------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", BUILTIN, ids=lambda s: s.name)
def test_entry_is_well_formed(spec):
    assert spec.description and (spec.ops_prefix or spec.name == FAIR)
    flags = [w for p in spec.params for w in p.flag_words()]
    assert len(flags) == len(set(flags)), "two parameters share a flag"
    for p in spec.params:
        assert p.doc, f"{p.name} undocumented"
        assert re.fullmatch(r"[a-z][a-z0-9_]*", p.name)
    defaults = CATALOG.action(spec.name)
    assert defaults.argv == (), "defaults render nothing: the binary's own defaults stand"
    for preset in spec.presets:
        action = CATALOG.action(spec.name, preset=preset)
        if spec.name != FAIR:
            binary_accepts(spec.name, list(action.argv))
        # what we render, we can read back (scxctl -a ARGS)
        assert CATALOG.action_from_args(spec.name, list(action.argv)).params == action.params


@pytest.mark.parametrize("spec", [s for s in BUILTIN if s.name != FAIR], ids=lambda s: s.name)
def test_every_flag_is_in_the_binary_table(spec):
    for p in spec.params:
        for flag in p.flag_words():
            if spec.name in GETOPT:
                assert flag.lstrip("-") in GETOPT[spec.name], flag
            else:
                assert flag in CLAP[spec.name], flag


def test_flashyspark_has_the_twenty_booleans():
    spark = CATALOG.get("scx_flashyspark")
    bools = {p.name for p in spark.params if p.kind == "bool"}
    tuner = {"slice_lag_scaling", "tickless", "rr_sched", "no_builtin_idle", "local_pcpu",
             "direct_dispatch", "sticky_cpu", "native_priority", "local_kthreads",
             "no_wake_sync", "stay_with_kthread", "aggressive_gpu_tasks",
             "workload_aware_scheduling", "timer_kick", "disable_l2", "disable_l3",
             "disable_smt", "disable_numa", "cpufreq"}
    assert bools == tuner and "more_dsqs" in spark.aliases  # 19 switches + more_dsqs
    assert CATALOG.action("scx_flashyspark", {"more_dsqs": True}).argv == ("--dsq-mode", "cpu")
    numeric = {p.name for p in spark.params if p.kind != "bool"}
    assert numeric == {"slice_us", "slice_us_min", "slice_us_lag", "run_us_lag",
                       "max_avg_nvcsw", "cpu_busy_thresh", "throttle_us", "idle_resume_us",
                       "primary_domain", "dsq_mode"}


def test_scx_loader_modes_for_bpfland():
    def args(mode):
        return CATALOG.action("scx_bpfland", preset=mode).argv

    assert args("gaming") == ("--primary-domain", "all")
    assert args("lowlatency") == ("--no-wake-sync", "--primary-domain", "performance")
    assert set(args("powersave")) >= {"--slice-us", "20000", "powersave"}


# -- property tests ---------------------------------------------------------------------------
def value_strategy(p: ParamSpec):
    if p.kind == "bool":
        return st.booleans()
    if p.kind == "choice":
        options = st.sampled_from(p.choices)
        if p.pattern:
            mask = st.integers(1, 2**32).map(lambda n: hex(n))
            return st.one_of(options, mask)
        return options
    lo = int(p.min) if p.min is not None else -(2**31)
    hi = int(min(p.max, 2**40)) if p.max is not None else 2**31
    if p.kind == "int":
        return st.integers(lo, hi)
    return st.floats(float(p.min), float(p.max), allow_nan=False)


def point_strategy(spec):
    return st.fixed_dictionaries({p.name: value_strategy(p) for p in spec.params})


SCX_SPECS = [s for s in BUILTIN if s.name != FAIR]


@pytest.mark.parametrize("spec", SCX_SPECS, ids=lambda s: s.name)
@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(data=st.data())
def test_valid_points_render_argv_the_binary_accepts(spec, data):
    point = data.draw(point_strategy(spec))
    assume(all(c.holds(point) for c in spec.constraints))
    action = CATALOG.action(spec.name, point)
    binary_accepts(spec.name, list(action.argv))
    assert CATALOG.action_from_args(spec.name, list(action.argv)).values == action.values


@pytest.mark.parametrize("spec", SCX_SPECS, ids=lambda s: s.name)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_invalid_points_are_rejected_with_a_clear_error(spec, data):
    p = data.draw(st.sampled_from(spec.params))
    if p.kind == "bool":
        bad = data.draw(st.sampled_from([1, "yes", None]))
        expect = "expected true/false"
    elif p.kind == "choice":
        bad = data.draw(st.sampled_from(["turbo-max", "", 3]))
        expect = "expected one of"
    else:
        bad = data.draw(st.sampled_from(
            [p.max + 1 if p.max is not None else "x", p.min - 1 if p.min is not None else "x",
             "fast", True]))
        expect = "above the maximum|below the minimum|expected a number|expected an integer"
    with pytest.raises(CatalogError, match=rf"{p.name} value: .*({expect})"):
        CATALOG.action(spec.name, {p.name: bad})


def test_constraint_violation_names_both_values():
    with pytest.raises(CatalogError, match="slice_us >= slice_min_us violated: slice_us=100 "
                       "slice_min_us=200"):
        CATALOG.action("scx_bpfland", {"slice_us": 100, "slice_min_us": 200})


def test_unknown_names_are_listed():
    with pytest.raises(CatalogError, match=r"unknown scheduler 'scx_nope'.*scx_simple"):
        CATALOG.action("scx_nope")
    with pytest.raises(CatalogError, match=r"has no parameter 'slices'.*slice_us"):
        CATALOG.action("scx_qmap", {"slices": 1})
    with pytest.raises(CatalogError, match=r"has no preset 'turbo'.*gaming"):
        CATALOG.action("scx_bpfland", preset="turbo")
    with pytest.raises(CatalogError, match="unknown argument '--fast'"):
        CATALOG.action_from_args("scx_bpfland", ["--fast"])
    with pytest.raises(CatalogError, match="--slice-us needs a value"):
        CATALOG.action_from_args("scx_bpfland", ["--slice-us"])


def test_bad_spec_definitions_are_refused():
    with pytest.raises(CatalogError, match="switch is a bool defaulting to false"):
        ParamSpec("x", "bool", True, "-x", render="switch")
    with pytest.raises(CatalogError, match="default: 5 is above the maximum 4"):
        ParamSpec("x", "int", 5, "-x", max=4)
    with pytest.raises(CatalogError, match="must contain the fair scheduler"):
        Catalog([BUILTIN[1]])


# -- config overrides -------------------------------------------------------------------------
CUSTOM = """
[schedulers.scx_mysched]
binary = "/opt/scx/bin/scx_mysched"
ops_prefix = "mysched"
constraints = ["slice_us >= slice_min_us"]
[[schedulers.scx_mysched.params]]
name = "slice_us"
kind = "int"
flag = "--slice-us"
default = 5000
min = 100
max = 100000
[[schedulers.scx_mysched.params]]
name = "slice_min_us"
kind = "int"
flag = "--slice-min-us"
default = 500
[[schedulers.scx_mysched.params]]
name = "turbo"
kind = "bool"
flag = "--turbo"
[schedulers.scx_mysched.presets]
short = { slice_us = 1000, turbo = true }

[schedulers.scx_bpfland]
binary = "/usr/local/bin/scx_bpfland"
remove_params = ["cpufreq"]
[[schedulers.scx_bpfland.params]]
name = "slice_us"
max = 20000

[schedulers.scx_central]
enabled = false
"""


def test_config_adds_and_overrides_schedulers(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(CUSTOM)
    cat = build_catalog(load_config(cfg, environ={}).scheduler_overrides())
    mine = cat.action("scx_mysched", preset="short")
    assert mine.argv == ("--slice-us", "1000", "--turbo")
    assert cat.get("scx_mysched").origin == "user"
    with pytest.raises(CatalogError, match="violated"):
        cat.action("scx_mysched", {"slice_us": 200})
    bpfland = cat.get("scx_bpfland")
    assert bpfland.binary == "/usr/local/bin/scx_bpfland"
    assert "cpufreq" not in {p.name for p in bpfland.params}
    assert bpfland.param("slice_us").max == 20000 and bpfland.param("slice_us").flag == \
        "--slice-us"
    with pytest.raises(CatalogError, match="above the maximum 20000"):
        cat.action("scx_bpfland", {"slice_us": 30000})
    assert "scx_central" not in cat


@pytest.mark.parametrize("table,expect", [
    ('[schedulers.x]\nbinary = "/bin/x"\n', "a custom scheduler needs ops_prefix"),
    ('[schedulers.fair]\nenabled = false\n', "the fair scheduler cannot be disabled"),
    ('[schedulers.scx_simple]\nremove_params = ["nope"]\n', "unknown parameter 'nope'"),
    ('[schedulers.y]\nbinary = "/bin/y"\nops_prefix = "y"\n[[schedulers.y.params]]\n'
     'name = "n"\nkind = "int"\nflag = "-n"\n', "needs a default"),
    ('[schedulers.y]\nbinary = "/bin/y"\nops_prefix = "y"\nconstraints = ["a >> b"]\n',
     "expected 'param OP param|number'"),
])
def test_bad_scheduler_tables_are_config_errors(tmp_path, capsys, table, expect):
    from scxd import cli

    cfg = tmp_path / "c.toml"
    cfg.write_text(table)
    assert cli.main(["check-config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert str(cfg) in err and expect in err


def test_unknown_keys_in_scheduler_tables(tmp_path):
    from scxd.config import ConfigError
    cfg = tmp_path / "c.toml"
    cfg.write_text('[schedulers.scx_simple]\nbinnary = "/x"\n')
    with pytest.raises(ConfigError, match=r"schedulers\.scx_simple\.binnary: unknown key"):
        load_config(cfg, environ={})


# -- short flags, text choices, flags that cannot help ---------------------------------------
# Short flags of the Rust loaders (clap `short = '…'` in each main.rs), transcribed apart.
CLAP_SHORT = {
    "scx_bpfland": {"--slice-us": "-s", "--slice-min-us": "-L", "--slice-us-lag": "-l",
                    "--throttle-us": "-t", "--idle-resume-us": "-I", "--local-pcpu": "-p",
                    "--local-kthreads": "-k", "--no-wake-sync": "-w", "--sticky-tasks": "-S",
                    "--primary-domain": "-m", "--preferred-idle-scan": "-P",
                    "--cpufreq": "-f"},
    "scx_flash": {"--slice-us": "-s", "--slice-us-min": "-S", "--slice-us-lag": "-l",
                  "--slice-lag-scaling": "-L", "--run-us-lag": "-r", "--max-avg-nvcsw": "-c",
                  "--cpu-busy-thresh": "-C", "--throttle-us": "-t", "--idle-resume-us": "-I",
                  "--tickless": "-T", "--rr-sched": "-R", "--no-builtin-idle": "-b",
                  "--local-pcpu": "-p", "--direct-dispatch": "-D", "--sticky-cpu": "-y",
                  "--native-priority": "-n", "--local-kthreads": "-k", "--no-wake-sync": "-w",
                  "--primary-domain": "-m", "--cpufreq": "-f"},
}
CLAP_SHORT["scx_flashyspark"] = {**CLAP_SHORT["scx_flash"], "--stay-with-kthread": "-H",
                                 "--aggressive-gpu-tasks": "-G",
                                 "--workload-aware-scheduling": "-W", "--timer-kick": "-K"}


@pytest.mark.parametrize("name", list(CLAP_SHORT))
def test_short_flags_match_the_rust_loaders(name):
    spec = CATALOG.get(name)
    assert {p.flag: p.short for p in spec.params if p.short} == CLAP_SHORT[name]


def test_choices_written_as_text():
    text = CATALOG.action_from_text
    assert text("fair") == CATALOG.fair()
    assert text("scx_bpfland -s 5000 -p").values == {
        **CATALOG.get("scx_bpfland").defaults(), "slice_us": 5000, "local_pcpu": True}
    assert text("scx_bpfland --slice-us=5000 --local-pcpu").argv == (
        "--slice-us", "5000", "--local-pcpu")
    low = text("scx_bpfland:lowlatency")
    assert low.preset == "lowlatency" and low == CATALOG.action("scx_bpfland",
                                                                preset="lowlatency")
    assert text("scx_bpfland:powersave -p").values["local_pcpu"] is True
    spark = text("scx_flashyspark --dsq-mode cpu -K")
    assert spark.values["dsq_mode"] == "cpu" and spark.values["timer_kick"] is True
    assert text("scx_flash -C -1 -I 0").values["cpu_busy_thresh"] == -1


@pytest.mark.parametrize("text,msg", [
    ("", "empty scheduler choice"), ("scx_nope", "unknown scheduler 'scx_nope'"),
    ("scx_bpfland --bogus", "unknown argument '--bogus'"), ("scx_bpfland -s", "-s needs a value"),
    ("scx_bpfland:nomode", "has no preset 'nomode'"),
    ("scx_flash -s 100 -S 200", "constraint slice_us >= slice_us_min violated"),
    ("scx_flashyspark --dsq-mode both", "expected one of ['shared', 'cpu']"),
])
def test_bad_text_choices_say_why(text, msg):
    with pytest.raises(CatalogError, match=re.escape(msg)):
        CATALOG.action_from_text(text)


def test_flags_without_effect_are_never_explored():
    spark = CATALOG.get("scx_flashyspark")
    for name in ("stay_with_kthread", "workload_aware_scheduling"):
        p = spark.param(name)
        assert p.no_effect and p.explore is False
    assert spark.param("aggressive_gpu_tasks").requires == "module:nvidia"
    assert not spark.param("aggressive_gpu_tasks").explore


def test_flash_1_1_0_facts():
    flash = CATALOG.get("scx_flash")
    assert "1.1.0" in flash.version
    for name in ("disable_l2", "disable_l3"):
        assert flash.param(name).families == "1.0.14-1.1.0"
    assert flash.param("tickless").requires == "kfunc:scx_bpf_cpu_curr"
    # the fork's kernel ops name is "flashyspark": its own prefix, not flash's
    assert CATALOG.get("scx_flashyspark").ops_prefix == "flashyspark"


def test_scx_loader_modes_for_flash_and_the_fork():
    """scx_loader's built-in modes for scx_flash (the fork shares every flag they use)."""
    for name in ("scx_flash", "scx_flashyspark"):
        def args(mode, name=name):
            return CATALOG.action(name, preset=mode).argv

        assert args("gaming") == ("--primary-domain", "all")
        assert args("lowlatency") == ("--cpu-busy-thresh", "0", "--no-wake-sync",
                                      "--primary-domain", "performance")
        assert CATALOG.action(name, preset="powersave").values["throttle_us"] == 10000
        server = CATALOG.action(name, preset="server").values
        assert server["idle_resume_us"] == -1 and server["direct_dispatch"] is True
