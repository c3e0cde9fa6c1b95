"""Package a test-bed recording as the committed dataset, and read it back.

``package(raw, dest, artifacts)`` turns the recorder's output (a scxd journal + runs.jsonl)
into ``dest/``:

* ``windows.jsonl.xz`` — every window record in journal format (CRC-checked lines, a header
  first), xz-compressed;
* ``runs.jsonl.xz`` — one record per (workload, arm, repeat): command lines, the workload's
  own outcome, the swap result;
* ``manifest.json`` — kernel and tool versions, recorder settings, counts per cell;
* ``README.md`` — how it was made, what is in it, and its caveats.

:func:`load_windows` is the reader the learning code uses.
"""

from __future__ import annotations

import collections
import json
import lzma
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from scxd.features import (
    FEATURE_NAMES,
    SCHEMA_NAME,
    SCHEMA_VERSION,
    featurize_metrics,
    schema_header,
)
from scxd.journal import JournalError, JournalReader, decode, encode
from scxd.testbed.build import Artifacts
from scxd.workloads import Headline, recorded_headlines, trusted_outcome


class PackagedDatasetError(ValueError):
    """A directory that is not the packaged dataset it was given as."""


def load_windows(dataset: Path, skipped: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """Window records of a packaged dataset (bad lines are skipped and listed)."""
    with lzma.open(dataset / "windows.jsonl.xz", "rb") as fh:
        for n, line in enumerate(fh, 1):
            try:
                rec = decode(line, f"windows.jsonl.xz:{n}")
            except JournalError as exc:
                if skipped is not None:
                    skipped.append(str(exc))
                continue
            if rec["kind"] == "window":
                yield rec


def refeature_header(header: dict[str, Any]) -> dict[str, Any]:
    """A journal header naming this build's feature schema."""
    return {**header, **schema_header()}


#: Rates an older recording lacks, derived from its per-window totals: rate metric →
#: (total metric, divide by CPUs too).
BACKFILL_RATES = {
    "voluntary_switches_per_s_per_core": ("voluntary_switches_total_delta", True),
    "involuntary_switches_per_s_per_core": ("involuntary_switches_total_delta", True),
    "swap_out_bytes_per_s": ("swap_out_bytes_total_delta", False),
    "wakeups_per_s_per_core": ("wakeups_total_delta", True),
    "voluntary_per_s_per_core": ("voluntary_total_delta", True),
}


def backfill_rates(metrics: dict[str, Any]) -> dict[str, Any]:
    """``metrics`` plus the rates this build's windower computes that an older recording
    did not, from its totals over ``window_s`` (and ``ncpus``).  A change of the context
    switch rate is the change of the per-window total there: the recorder's windows are of
    equal length.  What cannot be derived (the wakeup/preemption split) stays missing."""
    out = dict(metrics)
    seconds, ncpus = out.get("window_s") or 0.0, out.get("ncpus") or 0.0
    if seconds > 0 and ncpus > 0:
        for rate, (total, per_cpu) in BACKFILL_RATES.items():
            if rate not in out and total in out:
                out[rate] = out[total] / seconds / (ncpus if per_cpu else 1.0)
    if ("ctx_switches_per_s_per_core_pct_change" not in out
            and "ctx_switches_total_delta_pct_change" in out):
        out["ctx_switches_per_s_per_core_pct_change"] = out["ctx_switches_total_delta_pct_change"]
    return out


def refeature_window(rec: dict[str, Any]) -> dict[str, Any]:
    """A window record with its features recomputed from its stored metrics under this
    build's schema (rates derived from totals where an older recording lacks them; a
    metric it cannot give is listed as missing, never invented)."""
    return {**rec, "features": featurize_metrics(backfill_rates(rec.get("metrics") or {}))
            .as_record()}


def refeature(dataset: Path) -> dict[str, Any]:
    """Rewrite a packaged dataset's window features under this build's schema, from the
    metrics every window keeps.  The new file replaces the old one only when complete; a
    bad line is an error (nothing is dropped silently)."""
    src, tmp = dataset / "windows.jsonl.xz", dataset / "windows.jsonl.xz.tmp"
    if not src.is_file():
        raise PackagedDatasetError(f"{dataset}: no windows.jsonl.xz here (not a packaged dataset)")
    versions: collections.Counter = collections.Counter()
    windows = 0
    try:
        with lzma.open(src, "rb") as fh, lzma.open(tmp, "wb", preset=9) as out:
            for n, line in enumerate(fh, 1):
                rec = decode(line, f"{src}:{n}")
                if rec["kind"] == "header":
                    rec = refeature_header(rec)
                elif rec["kind"] == "window":
                    versions[(rec.get("features") or {}).get("version")] += 1
                    rec = refeature_window(rec)
                    windows += 1
                out.write(encode(rec))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(src)
    before = sorted(str(v) for v in versions)
    manifest_path = dataset / "manifest.json"
    if manifest_path.exists():
        m = json.loads(manifest_path.read_text())
        m.update({"feature_schema": SCHEMA_NAME, "feature_version": SCHEMA_VERSION,
                  "feature_names": list(FEATURE_NAMES)})
        m.setdefault("features_recomputed", []).append(
            {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "from": before,
             "to": SCHEMA_VERSION})
        manifest_path.write_text(json.dumps(m, indent=2) + "\n")
    return {"windows": windows, "from_versions": before, "to_version": SCHEMA_VERSION}


def load_runs(dataset: Path) -> list[dict[str, Any]]:
    """The dataset's runs, each with only the figures its tools vouched for
    (:func:`scxd.workloads.trusted_outcome`)."""
    with lzma.open(dataset / "runs.jsonl.xz", "rt", encoding="utf-8") as fh:
        return [trusted_outcome(json.loads(line)) for line in fh if line.strip()]


def package(raw: Path, dest: Path, art: Artifacts) -> dict[str, Any]:
    dest.mkdir(parents=True, exist_ok=True)
    reader = JournalReader(raw / "journal")
    runs = [json.loads(line) for line in (raw / "runs.jsonl").read_text().splitlines()
            if line.strip()] if (raw / "runs.jsonl").exists() else []
    # A cell's windows count only from its completed attempt: an interrupted attempt (the
    # recorder killed mid-cell, then resumed) left windows before that attempt started, or
    # under a run_id that never completed.
    started = {r["run_id"]: r.get("started") for r in runs if r.get("ok")}
    header: dict[str, Any] = {}
    windows = interrupted = 0
    per_cell: collections.Counter = collections.Counter()
    with lzma.open(dest / "windows.jsonl.xz", "wb", preset=9) as out:
        for rec in reader.records():
            if rec["kind"] == "header":
                if not header:
                    header = refeature_header(rec)
                    out.write(encode(header))
                continue
            if rec["kind"] != "window":
                continue
            run_id = rec.get("run_id")
            begun = started.get(run_id)
            if run_id not in started or (begun is not None and rec.get("at", 0.0) < begun):
                interrupted += 1
                continue
            # Features under the packaging build's schema, from the stored metrics.
            out.write(encode(refeature_window(rec)))
            windows += 1
            if not rec.get("warmup"):
                per_cell[(rec["workload"], rec["arm"])] += 1
    with lzma.open(dest / "runs.jsonl.xz", "wt", encoding="utf-8", preset=9) as fh:
        fh.writelines(json.dumps(r, sort_keys=True) + "\n" for r in runs)
    (dest / "runs.jsonl").unlink(missing_ok=True)
    rec_args = header.get("recorder", {})
    # A resumed recording keeps its first header: a run resumed with more repeats than it
    # started with extends the design, and the runs say by how much.
    repeats = max(rec_args.get("repeats", 0),
                  len({r["repeat"] for r in runs if isinstance(r.get("repeat"), int)}))
    arms, workloads = header.get("arms", []), list(header.get("workloads", {}))
    failed = [r["run_id"] for r in runs if not r.get("ok")]
    ok_cells = collections.Counter((r["workload"], r["arm"]) for r in runs if r.get("ok"))
    complete = bool(arms and workloads) and all(
        ok_cells[(w, a)] >= repeats for w in workloads for a in arms)
    manifest = {
        "made": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "testbed": art.manifest() if art.manifest_path.exists() else {},
        "versions": header.get("versions", {}), "recorder": rec_args,
        "feature_schema": header.get("feature_schema"),
        "feature_version": header.get("feature_version"),
        "feature_names": header.get("feature_names"),
        "arms": arms, "workloads": header.get("workloads", {}),
        "headlines": header.get("headlines", {}), "design": header.get("design", {}),
        "repeats": repeats, "recording_s": recording_seconds(runs),
        "cell_seconds": cell_seconds(runs),
        "windows": windows, "runs": len(runs), "failed_runs": failed,
        "interrupted_windows_dropped": interrupted,
        "skipped_lines": reader.skipped, "complete": complete,
        "scored_windows_per_cell": {f"{w} | {a}": per_cell[(w, a)]
                                    for w in workloads for a in arms},
    }
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    (dest / "README.md").write_text(readme(manifest, runs, reward_table(dest)))
    return {k: manifest[k] for k in ("windows", "runs", "failed_runs", "complete")}


def recording_seconds(runs: list[dict[str, Any]]) -> float:
    """Wall time from the first cell's start to the last cell's end (resumed recordings
    include the gaps between attempts)."""
    spans = [(r["started"], r["started"] + r.get("seconds", 0.0)) for r in runs
             if "started" in r]
    return round(max(e for _, e in spans) - min(b for b, _ in spans), 1) if spans else 0.0


#: A gap between two cells' starts longer than this is a pause between attempts (the
#: recording was stopped and resumed), not a cell.
RESUME_GAP_S = 120.0


def cell_seconds(runs: list[dict[str, Any]]) -> float:
    """Wall time the cells themselves took: from each cell's start to the next one's (swap,
    workload, teardown), or to its own end across a pause between attempts."""
    cells = sorted((r["started"], r.get("seconds", 0.0)) for r in runs if "started" in r)
    total = 0.0
    for (start, seconds), nxt in zip(cells, [*cells[1:], None], strict=True):
        gap = nxt[0] - start if nxt is not None else seconds
        total += gap if gap <= RESUME_GAP_S else seconds
    return round(total, 1)


def reward_table(dest: Path) -> list[str]:
    """``scxd replay validate-reward`` on the packaged dataset, as README lines."""
    from scxd.config import PolicyConfig
    from scxd.replay.data import DatasetError, load_dataset
    from scxd.replay.validate_reward import markdown_table, report
    from scxd.reward import LEGACY_OBJECTIVE_TERMS, OBJECTIVES

    try:
        ds = load_dataset(dest)
    except DatasetError as exc:
        return [f"(validate-reward could not read the dataset: {exc})"]
    rep = report(ds, [*OBJECTIVES, *LEGACY_OBJECTIVE_TERMS], "none", PolicyConfig().objective)
    held = report(ds, list(OBJECTIVES), "repeats", PolicyConfig().objective)
    return ["## Do the objectives agree with the workloads?", "",
            "`scxd replay validate-reward --dataset DIR --legacy`: per workload, arms ranked by "
            "the objective's mean cost and by the workload's own headline figure (Kendall τ; "
            "τ over *separable* workloads, whose best and worst arms differ by more than 3 "
            "standard errors), and the outcome lost by the objective's pick (v1_*: the "
            "objectives of dataset v1, for comparison).", "",
            *markdown_table(rep).splitlines(), "",
            "Held out (`--split repeats`: pick on even repeats, judge on odd ones and vice "
            "versa):", "", *markdown_table(held).splitlines(), ""]


def readme(m: dict[str, Any], runs: list[dict[str, Any]],
           reward_lines: list[str] | None = None) -> str:
    r = m["recorder"]
    tb = m.get("testbed", {})
    lines = [
        "# Test-bed dataset: workloads × sched_ext schedulers, measured by scxd",
        "",
        "**Timings come from an emulated machine**: a 2-vCPU qemu guest under software",
        "emulation (TCG, single-threaded) on a 2-core host, running the sched_ext kernel",
        f"{tb.get('kernel_release', '?')} built from Debian's {tb.get('source_package', '?')} "
        f"{tb.get('source_version', '')}.",
        "Absolute latencies and throughputs are those of that emulated machine (roughly 10–50×",
        "slower than hardware); use the data for *relative* comparisons between schedulers on",
        "the same workload, and for training/evaluating the policy's plumbing.",
        "",
        "## How it was made",
        "",
        "`scxd-testbed record` (scxd/testbed/record.py) booted the guest and, for each of "
        f"{m.get('repeats', r.get('repeats'))} repeats,",
        "ran every (workload, arm) cell in an order shuffled with seed "
        f"`{r.get('seed')} + repeat`:",
        "the actuator applied the arm and the kernel confirmed it; the workload started",
        f"(stress-ng `--seed {r.get('seed')}*1000+repeat`); scxd's own sampler "
        f"({r.get('interval')} s samples) and windower",
        f"({r.get('window')} s windows) measured {r.get('warmup')} warm-up + "
        f"{r.get('windows')} scored windows; the workload's own",
        "outcome was parsed. Command lines are in `runs.jsonl.xz`; tool versions below.",
        f"Recording time: {m.get('cell_seconds', 0) / 3600:.2f} h of cells; "
        f"{m.get('recording_s', 0) / 3600:.2f} h from the first cell's start to the last "
        "cell's end (a resumed recording includes the pauses between attempts).",
        "",
        *design_lines(m.get("design") or {}),
        "## Files",
        "",
        "* `windows.jsonl.xz` — scxd journal format (one CRC-checked JSON record per line,",
        "  header first; read with `scxd.testbed.dataset.load_windows`). Each window carries",
        "  `run_id`, `arm`, `workload`, `repeat`, `index`, `warmup`, the feature vector",
        f"  (schema `{m.get('feature_schema')}` v{m.get('feature_version')}), raw reward terms,",
        "  every window metric, the BPF log2 histograms, per-task figures (`tasks`: on-CPU µs,",
        "  wait µs, wakeup-wait µs, wakeups, external-wakeup-wait µs, external wakeups,",
        "  kernel thread) and the logging propensity (`decision.propensity`, with the arm's",
        "  `origin` and, for parameter draws, `draw_probability`; see the design above).",
        "* `runs.jsonl.xz` — per cell: commands, seed, swap result, the workload's own",
        "  outcome (stress-ng bogo ops/s, perf/hackbench iteration times, cyclictest wakeup µs);",
        "  read with `scxd.testbed.dataset.load_runs`.",
        "* `manifest.json` — versions, recorder settings, counts.",
        "",
        "## Contents",
        "",
        f"{m['windows']} windows from {m['runs']} runs; failed runs: "
        f"{len(m['failed_runs'])} {m['failed_runs'][:10]}; complete: {m['complete']}.",
        "",
        "Arms: " + ", ".join(f"`{a}`" for a in m["arms"]) + ".",
        "",
        "| workload | description |",
        "|---|---|",
        *[f"| {w} | {d} |" for w, d in m["workloads"].items()],
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + "; test bed "
        f"recipe {tb.get('recipe_version')}, {tb.get('clang', '')}.",
        "",
        *outcome_table(runs, m["arms"],
                       recorded_headlines(list(m["workloads"]), m.get("headlines") or {})),
        *(reward_lines or []),
    ]
    return "\n".join(lines)


def design_lines(design: dict[str, Any]) -> list[str]:
    """The recording design and each arm's probability under it."""
    if not design:
        return []
    out = ["## Recording design", "",
           f"A complete block design over {len(design['arms'])} arms: every (workload, "
           "repeat) block runs each arm once, in shuffled order, so a cell drawn at random "
           f"from a block runs a given arm with probability 1/{len(design['arms'])} = "
           f"{design['propensity']:.4f} — each window's logged propensity.  The arms are the "
           "recorded schedulers' defaults and scx_loader modes, plus "
           f"{design['draws']} parameter draws (seed {design['seed']}): the scheduler "
           "uniformly among the tunable ones available, then each parameter independently "
           "from the declared values (switches on with probability "
           f"{design['p_switch_on']}); `draw_probability` is the exact probability of "
           "one draw producing that configuration (product of the choices' probabilities).",
           "", "| arm | origin | draw probability |", "|---|---|---|"]
    for a in design["arms"]:
        p = a.get("draw_probability")
        out.append(f"| `{a['label']}` | {a['origin']} | {'—' if p is None else f'{p:.3g}'} |")
    if design.get("skipped"):
        out += ["", "Not recorded (not available in the test bed): "
                + "; ".join(design["skipped"]) + "."]
    return [*out, ""]


def outcome_table(runs: list[dict[str, Any]], arms: list[str],
                  headlines: dict[str, Headline]) -> list[str]:
    """Each workload's own headline figure per arm: mean ± sd over repeats (n)."""
    cells: dict[tuple[str, str], list[float]] = collections.defaultdict(list)
    for r in map(trusted_outcome, runs):
        h = headlines.get(r["workload"])
        value = h.value(r.get("outcome")) if h else None
        if value is not None:
            cells[(r["workload"], r["arm"])].append(value)
    workloads = [(n, h) for n, h in headlines.items() if any(k[0] == n for k in cells)]
    if not workloads:
        return []
    out = ["## What the workloads themselves measured", "",
           "Mean ± standard deviation over repeats (n < repeats: the figure was missing, e.g."
           " the workload was starved after an ejection, or stress-ng disowned the run). "
           + ", ".join(
               f"{n}: {h.metric} ({h.direction} is better)" for n, h in workloads) + ".", "",
           "| arm | " + " | ".join(n for n, _ in workloads) + " |",
           "|---|" + "---|" * len(workloads)]
    for arm in arms:
        row = []
        for n, _ in workloads:
            v = cells.get((n, arm), [])
            sd = statistics.stdev(v) if len(v) > 1 else 0.0
            row.append(f"{statistics.mean(v):.3g} ± {sd:.2g} ({len(v)})" if v else "—")
        out.append(f"| `{arm}` | " + " | ".join(row) + " |")
    return [*out, ""]
