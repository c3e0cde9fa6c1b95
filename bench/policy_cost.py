#!/usr/bin/env python3
"""What a policy costs the daemon: decision + update latency, and RSS over time.

Part 1 (in process, torch on one thread): every registered policy (or ``--policies``)
decides and learns ``--steps`` times on feature vectors replayed from the dataset, once over
the dataset's arms and once over the daemon's arm set (every catalog scheduler available,
``arm_space = "grid"`` and the arms of the policy's shipped model), each step exactly
what ``scxd run`` does per window: decide on the features with the running arm, then update
with the joined transition.  Prints p50 / p99 of
decide, update and both, per policy, side by side.

Part 2 (``--daemon-minutes`` > 0): ``scxd run`` in advisory mode on this host with
``policy.name = network`` (its shipped pretrained checkpoint, checkpoints every 60 windows)
for that long, RSS sampled every 10 s: start / end / max and the least-squares growth slope;
the journal's per-window decision and update times.  ``--baseline REV`` runs that git
revision's daemon beside this tree's (same instants, same host, same ``--load``), so a change's
effect on memory is a side-by-side difference, not a comparison across hours of a VM whose
speed and load drift.

Targets (issue "the adaptive policy"): decision + update p99 ≤ 2 ms for the network with
one torch thread; daemon RSS with the torch policy ≤ 400 MB and flat over an hour.

    .venv/bin/python bench/policy_cost.py [--steps 2000] [--dataset DIR] [--daemon-minutes 60]
        [--baseline REV] [--load CMD]
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from daemon_cost import slope_per_hour  # noqa: E402  (bench/ is this script's path)

from scxd.catalog import build_catalog  # noqa: E402
from scxd.config import PolicyConfig  # noqa: E402
from scxd.features import FeatureVector  # noqa: E402
from scxd.journal import JournalReader  # noqa: E402
from scxd.policy import registry  # noqa: E402
from scxd.policy.arms import ArmSet  # noqa: E402
from scxd.policy.base import PolicyEnv  # noqa: E402
from scxd.probe import Availability, ProbedCatalog  # noqa: E402
from scxd.record import Transition  # noqa: E402
from scxd.replay.logs import load_logs  # noqa: E402


def pct(values, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def time_policy(name: str, arms: ArmSet, probed: ProbedCatalog, contexts: list[np.ndarray],
                steps: int) -> tuple[np.ndarray, np.ndarray]:
    cfg = PolicyConfig(name=name, pretrained="none")
    pol = registry.make_policy(cfg, PolicyEnv(arms, seed=0, probed=probed,
                                              feature_names=tuple(f"f{i}" for i in
                                                                  range(len(contexts[0])))))
    eligible = arms.actions()
    rng = np.random.default_rng(0)
    current, current_key = eligible[0], arms[0].key
    dec, upd = [], []
    prev_ctx, prev_choice, prev_running = None, None, current_key
    for i in range(steps + 200):
        x = contexts[i % len(contexts)]
        fv = FeatureVector("bench", 1, x, ())
        t0 = time.perf_counter()
        d = pol.decide(fv, eligible, current)
        t1 = time.perf_counter()
        if prev_ctx is not None:
            pol.update(Transition(prev_ctx, "bench", 1, prev_choice.key, prev_choice.propensity,
                                  float(rng.normal(0, 0.3)), 0.0, {}, False,
                                  previous=prev_running))
        t2 = time.perf_counter()
        if i >= 200:   # warm-up: first allocations, torch's lazy init
            dec.append(t1 - t0)
            upd.append(t2 - t1)
        # As in the daemon, a transition's ``previous`` is the arm that ran when its
        # decision was made.
        prev_ctx, prev_choice, prev_running = x, d, current_key
        current, current_key = d.action, d.key
    return np.array(dec), np.array(upd)


def part1(steps: int, policies: list[str], dataset: Path) -> None:
    import torch

    torch.set_num_threads(1)
    log = load_logs(datasets=[str(dataset)])
    contexts = [r.context.array() for r in log.records]
    catalog = build_catalog()
    everything = ProbedCatalog(catalog, {s.name: Availability(s.name, True) for s in catalog})
    present = {a.scheduler for a in log.arms}
    dataset_probed = ProbedCatalog(catalog, {s.name: Availability(s.name, s.name in present)
                                             for s in catalog})
    def sets(name: str):
        # The daemon's arm set: the grid plus the arms of the policy's shipped model.
        daemon = ArmSet.from_catalog(everything, "grid",
                                     registry.model_arm_keys(PolicyConfig(name=name)))
        return (("dataset", log.arms, dataset_probed), ("daemon grid", daemon, everything))

    print(f"decide + update, {steps} steps after 200 warm-up, torch threads "
          f"{torch.get_num_threads()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    print(f"{'policy':14s} {'arms':>5s} {'decide p50':>10s} {'p99':>7s} {'update p50':>10s} "
          f"{'p99':>7s} {'both p50':>9s} {'both p99':>9s}  (ms)")
    for name in policies:
        if registry.entry(name).available():
            print(f"{name:14s} skipped: {registry.entry(name).available()}")
            continue
        for label, arms, probed in sets(name):
            dec, upd = time_policy(name, arms, probed, contexts, steps)
            both = dec + upd
            print(f"{name:14s} {len(arms):5d} {1e3 * pct(dec, 50):10.3f} "
                  f"{1e3 * pct(dec, 99):7.3f} {1e3 * pct(upd, 50):10.3f} "
                  f"{1e3 * pct(upd, 99):7.3f} {1e3 * pct(both, 50):9.3f} "
                  f"{1e3 * pct(both, 99):9.3f}  {label}")


def stop_process(proc: subprocess.Popen, group: bool = False) -> None:
    """SIGTERM (to the process group with ``group``), then SIGKILL after 30 s."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            if group:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(30)
            return
        except subprocess.TimeoutExpired:
            continue


class Daemon:
    """One ``scxd run`` (advisory, network policy) from a source tree, in its own state dir."""

    def __init__(self, label: str, tree: Path, home: Path, port: int):
        self.label, self.home = label, home
        home.mkdir()
        cfg = home / "scxd.toml"
        cfg.write_text(f'state_dir = "{home}/state"\n[control]\nsocket = "{home}/scxd.sock"\n'
                       f'[metrics]\naddress = "127.0.0.1:{port}"\n'
                       '[policy]\nname = "network"\n')
        env = {**os.environ, "PYTHONPATH": str(tree)}
        # The tree's own package, not the installed one (-c and -m put the working
        # directory first on sys.path, hence cwd): say which one was imported.
        self.imported = subprocess.run(
            [sys.executable, "-c", "import scxd; print(scxd.__file__)"], env=env, cwd=tree,
            capture_output=True, text=True, check=True).stdout.strip()
        self.stderr = home / "stderr.log"
        with self.stderr.open("wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "scxd.cli", "run", "--config",
                                          str(cfg)], env=env, cwd=tree,
                                         stdout=subprocess.DEVNULL, stderr=err)
        self.points: list[tuple[float, float]] = []

    def sample(self) -> None:
        try:
            rss = psutil.Process(self.proc.pid).memory_info().rss / 2**20
        except psutil.NoSuchProcess:
            rss = None
        if rss is None or self.proc.poll() is not None:
            tail = self.stderr.read_text(errors="replace").splitlines()[-15:]
            raise RuntimeError(f"{self.label}: scxd run exited ({self.proc.returncode}):\n"
                               + "\n".join(tail))
        self.points.append((time.monotonic(), rss))

    def stop(self) -> None:
        stop_process(self.proc)

    def report(self, minutes: float) -> None:
        windows = list(JournalReader(self.home / "state" / "journal").windows())
        ckpt = (self.home / "state" / "policy" / "network.npz").exists()
        dec = [w["decision_seconds"] for w in windows]
        upd = [w.get("update_seconds", 0.0) for w in windows]
        both = [a + b for a, b in zip(dec, upd, strict=True)]
        rss = [p[1] for p in self.points]
        print(f"{self.label}: scxd run, advisory, policy network, {minutes:.0f} min, "
              f"{len(windows)} windows, checkpoint written: {ckpt}  ({self.imported})")
        print(f"  RSS start / end / max  {rss[0]:.1f} / {rss[-1]:.1f} / {max(rss):.1f} MB   "
              f"(target ≤ 400 MB)")
        print(f"  RSS growth             {slope_per_hour(self.points):+.2f} MB/hour   "
              f"(target: flat)")
        print(f"  window: decision p50/p99 {1e3 * pct(dec, 50):.3f} / {1e3 * pct(dec, 99):.3f}"
              f" ms, update p50/p99 {1e3 * pct(upd, 50):.3f} / {1e3 * pct(upd, 99):.3f} ms, "
              f"both p99 {1e3 * pct(both, 99):.3f} ms")


def part2(minutes: float, baseline: str = "", load: str = "") -> None:
    """The daemon for ``minutes``; with ``baseline`` (a git revision) that revision's daemon
    runs beside it, sampled at the same instants under the same load (``load``: a command
    run for the whole time), so the two are compared side by side, not across hours."""
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        trees = [("this tree", REPO)]
        if baseline:
            base = tmp / "baseline"
            base.mkdir()
            archive = subprocess.run(["git", "-C", str(REPO), "archive", baseline],
                                     capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
            trees.append((f"baseline {baseline}", base))
        daemons: list[Daemon] = []
        loader = None
        try:
            # Every port bound at once, so two daemons never get the same one.
            holders = [socket.socket() for _ in trees]
            for h in holders:
                h.bind(("127.0.0.1", 0))
            ports = [h.getsockname()[1] for h in holders]
            for h in holders:
                h.close()
            for i, ((label, tree), port) in enumerate(zip(trees, ports, strict=True)):
                daemons.append(Daemon(label, tree, tmp / f"daemon{i}", port))
            if load:
                # Its own session: the load's children are stopped with it.
                loader = subprocess.Popen(shlex.split(load), stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, start_new_session=True)
            time.sleep(30)
            t0 = time.monotonic()
            while True:
                for d in daemons:
                    d.sample()
                if time.monotonic() - t0 >= minutes * 60:
                    break
                time.sleep(10)
        finally:
            # Every process is stopped (killed if it will not stop) before the temporary
            # directory it writes to goes.
            if loader is not None:
                stop_process(loader, group=True)
            for d in daemons:
                d.stop()
        if load:
            print(f"load beside the daemons: {load}")
        for d in daemons:
            d.report(minutes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--dataset", type=Path, default=REPO / "data" / "testbed",
                    help="features and arms to decide on (default: the committed dataset)")
    ap.add_argument("--policies", default="", help="comma-separated (default: all)")
    ap.add_argument("--daemon-minutes", type=float, default=0.0)
    ap.add_argument("--baseline", default="", metavar="REV",
                    help="part 2: also run this git revision's daemon beside this tree's")
    ap.add_argument("--load", default="", metavar="CMD",
                    help="part 2: a command run beside the daemons the whole time, e.g. "
                    "'stress-ng --cpu 1 --switch 1'")
    args = ap.parse_args()
    names = [p for p in args.policies.split(",") if p] or [e.name for e in registry.ENTRIES]
    if args.steps:
        part1(args.steps, names, args.dataset)
    if args.daemon_minutes > 0:
        part2(args.daemon_minutes, args.baseline, args.load)


if __name__ == "__main__":
    main()
