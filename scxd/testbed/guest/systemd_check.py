#!/usr/bin/python3
"""Runs inside the systemd test-bed guest (systemd is PID 1): install scxd with the README's
steps, then check the service as systemd runs it.  Standard library only — it tests the
installed scxd, it does not import it.

Every check is one JSON line in ``$RESULTS/systemd.jsonl``: ``{"check", "ok", "got",
"seconds"}``; the last line is ``{"done": true}``.  The guest powers off at the end.
Arguments: the repository copy to install from, the results directory, the test-bed
artifacts directory (kernel headers, schedulers).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
import traceback
from pathlib import Path

REPO = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/opt/scxd")
RESULTS = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("/results")
OUT = RESULTS / "systemd.jsonl"
SX = Path("/sys/kernel/sched_ext")
T0 = time.monotonic()
README_STEPS = (
    "./setup.sh install",
    "install -m 644 systemd/scxd.service /etc/systemd/system/",
    "install -d /etc/scxd && install -m 644 config.example.toml /etc/scxd/config.toml",
    "systemctl daemon-reload && systemctl enable --now scxd",
)
#: Every check this script emits, in order (the host's tests are parametrized over it).
CHECKS = (
    "booted with systemd as PID 1",
    *(f"README: {step}" for step in README_STEPS),
    "active, Type=notify, READY=1 received",
    "watchdog armed (WatchdogSec=30s)",
    "sd_notify STATUS shown by systemctl",
    "scxctl status answers (socket in RuntimeDirectory)",
    "the sandbox lets bcc load (telemetry mode bpf)",
    "active mode: sched_ext seen through the sandbox",
    "watchdog pings keep it alive past WatchdogSec",
    "scxctl switch -s scx_simple: the loader attaches",
    "status: running scx_simple, started by scxd",
    "systemctl reload: re-read, same process",
    "after SIGKILL the loader dies with scxd: kernel back to fair",
    "Restart=on-failure after SIGKILL",
    "the restart says the previous run ended uncleanly",
    "after the restart status matches the kernel",
    "systemctl stop: fair scheduler back, no loader left",
    "journalctl -u scxd is readable",
    "systemd-analyze security (as installed)",
)


def emit(check: str, ok: bool, got: object = None) -> bool:
    rec = {"check": check, "ok": bool(ok), "got": got,
           "seconds": round(time.monotonic() - T0, 1)}
    with OUT.open("a") as fh:
        fh.write(json.dumps(rec, default=str) + "\n")
    print(f"@@CHECK {'ok ' if ok else 'BAD'} {check}", flush=True)
    return bool(ok)


def sh(cmd: str, timeout: float = 600, env: dict | None = None) -> tuple[int, str]:
    res = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=timeout,
                         cwd=REPO, env={**os.environ, **(env or {})})
    return res.returncode, res.stdout + res.stderr


def show(*props: str) -> dict[str, str]:
    _, out = sh(f"systemctl show scxd -p {','.join(props)}")
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def wait(pred, timeout: float, every: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if pred():
                return True
        except (OSError, ValueError, subprocess.SubprocessError):
            pass
        time.sleep(every)
    return False


def state() -> str:
    return (SX / "state").read_text().strip()


def ops() -> str | None:
    p = SX / "root" / "ops"
    return p.read_text().strip() if p.exists() else None


def scheduler_processes() -> list[str]:
    """User processes named scx_* (a loader left behind); kernel threads such as the
    kernel's own scx_ops_enable_helper have an empty command line and are not loaders."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            comm = (proc / "comm").read_text().strip()
            if comm.startswith("scx_") and (proc / "cmdline").read_bytes():
                found.append(f"{proc.name} {comm}")
        except OSError:  # not a process, or gone meanwhile
            continue
    return found


def scxctl(*args: str) -> tuple[int, str]:
    return sh("scxctl " + " ".join(shlex.quote(a) for a in args), timeout=180)


def status() -> dict:
    rc, out = scxctl("--json", "status")
    return json.loads(out) if rc == 0 else {}


def journal(since: str = "") -> str:
    return sh(f"journalctl -u scxd --no-pager -o cat {since}")[1]


def install() -> bool:
    """The README's "Run as a service" steps, verbatim (the guest has no network: pip reads
    the wheelhouse the test bed put in the root file system)."""
    offline = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "/var/cache/scxd-wheels"}
    for step in README_STEPS:
        t = time.monotonic()
        rc, out = sh(step, timeout=1800, env=offline)
        if not emit(f"README: {step}", rc == 0, {"rc": rc, "s": round(time.monotonic() - t, 1),
                                                  "tail": out[-1500:]}):
            return False
    return True


def checks() -> None:
    p = show("ActiveState", "SubState", "Type", "MainPID", "NRestarts", "WatchdogUSec",
             "Result", "StatusText")
    emit("active, Type=notify, READY=1 received", p.get("ActiveState") == "active"
         and p.get("Type") == "notify", p)
    emit("watchdog armed (WatchdogSec=30s)", p.get("WatchdogUSec") in ("30s", "30000000"), p)
    emit("sd_notify STATUS shown by systemctl", bool(p.get("StatusText")), p.get("StatusText"))
    first_pid = p.get("MainPID")
    st = status()
    emit("scxctl status answers (socket in RuntimeDirectory)", bool(st), st.get("kernel"))
    tel = st.get("telemetry", {})
    emit("the sandbox lets bcc load (telemetry mode bpf)", tel.get("mode") == "bpf", tel)
    emit("active mode: sched_ext seen through the sandbox", st.get("mode") == "active",
         {"mode": st.get("mode"), "why": st.get("advisory_reason")})
    # Watchdog pings: the service outlives two watchdog periods with no restart.
    ping0 = show("WatchdogTimestampMonotonic").get("WatchdogTimestampMonotonic")
    time.sleep(35)
    p = show("ActiveState", "MainPID", "NRestarts", "WatchdogTimestampMonotonic")
    emit("watchdog pings keep it alive past WatchdogSec", p.get("ActiveState") == "active"
         and p.get("MainPID") == first_pid and p.get("NRestarts") == "0"
         and p.get("WatchdogTimestampMonotonic") != ping0, {"before": ping0, "after": p})
    # A loader attaches from inside the sandbox.
    rc, out = scxctl("switch", "-s", "scx_simple")
    emit("scxctl switch -s scx_simple: the loader attaches", rc == 0 and state() == "enabled"
         and (ops() or "").startswith("simple"), {"rc": rc, "out": out[-800:],
                                                   "state": state(), "ops": ops()})
    st = status()
    emit("status: running scx_simple, started by scxd", st.get("running", {}).get("source")
         == "started by scxd", st.get("running"))
    # Reload: SIGHUP via systemctl, same process, configuration re-read.
    rc, out = sh("systemctl reload scxd")
    ok = wait(lambda: "configuration reloaded" in journal(), 30)
    p = show("ActiveState", "MainPID")
    emit("systemctl reload: re-read, same process", rc == 0 and ok and p.get("MainPID")
         == first_pid and p.get("ActiveState") == "active", {"rc": rc, "out": out, **p})
    # SIGKILL of the daemon alone: its loader dies with it (PR_SET_PDEATHSIG), the kernel
    # falls back to the fair scheduler, and Restart=on-failure brings scxd back.
    sh("systemctl kill --kill-whom=main -s SIGKILL scxd")
    fell_back = wait(lambda: state() == "disabled", 20, every=0.05)
    emit("after SIGKILL the loader dies with scxd: kernel back to fair", fell_back,
         {"state": state(), "ops": ops()})
    restarted = wait(lambda: show("MainPID")["MainPID"] not in ("0", first_pid)
                     and show("ActiveState")["ActiveState"] == "active", 420)
    p = show("ActiveState", "MainPID", "NRestarts", "Result")
    emit("Restart=on-failure after SIGKILL", restarted and p.get("NRestarts") == "1", p)
    log = journal()
    emit("the restart says the previous run ended uncleanly", "ended uncleanly" in log,
         [line for line in log.splitlines() if "uncleanly" in line][-2:])
    st = status()
    emit("after the restart status matches the kernel", bool(st) and (
        st["kernel"]["state"] == state()), {"status": st.get("running"), "state": state()})
    # Stop restores the fair scheduler.
    scxctl("switch", "-s", "scx_simple")
    t = time.monotonic()
    rc, out = sh("systemctl stop scxd")
    took = time.monotonic() - t
    left = " ".join(scheduler_processes())
    emit("systemctl stop: fair scheduler back, no loader left", rc == 0 and state()
         == "disabled" and not left, {"rc": rc, "state": state(), "left": left,
                                      "stop_s": round(took, 2)})
    log = journal()
    emit("journalctl -u scxd is readable", "running: mode active" in log
         and "scxd stopped" in log, log[-1500:])
    rc, out = sh("systemd-analyze security scxd --no-pager | tail -n 1")
    emit("systemd-analyze security (as installed)", rc == 0, out.strip())


def main() -> int:
    RESULTS.mkdir(parents=True, exist_ok=True)
    try:
        emit("booted with systemd as PID 1", Path("/proc/1/comm").read_text().strip()
             == "systemd", {"uptime_s": Path("/proc/uptime").read_text().split()[0],
                            "kernel": os.uname().release})
        if install():
            checks()
    except Exception:  # the record says what broke; the guest still powers off
        emit("guest check script crashed", False, traceback.format_exc())
    finally:
        (RESULTS / "journal-scxd.txt").write_text(journal())
        (RESULTS / "journal-boot.txt").write_text(sh("journalctl -b --no-pager")[1])
        with OUT.open("a") as fh:
            fh.write(json.dumps({"done": True, "seconds": round(time.monotonic() - T0, 1)})
                     + "\n")
        os.sync()
        subprocess.run(["systemctl", "poweroff", "--no-block"], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
