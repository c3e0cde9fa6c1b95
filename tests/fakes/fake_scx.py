#!/usr/bin/env python3
"""A fake sched_ext loader that drives a fake /sys/kernel/sched_ext the way the kernel would.

Attaching takes an exclusive lock file (the kernel allows one BPF scheduler: a second attach
gets EBUSY).  While attached it writes ``state``, ``enable_seq``, ``switch_all`` and
``root/ops`` as the kernel does, and appends sched_ext lines to ``dev/kmsg``.  What happens
when the process *dies* (crash, SIGKILL) is the kernel's side: :class:`tests.fakes.FakeKernel`
watches the lock owner and disables.

Behaviour is chosen with --mode:
  normal          enable after --enable-delay, run until SIGINT/SIGTERM, unregister
  refuse          fail during load (exit 1, libbpf-style error) before enabling
  bad_args        reject the command line like clap does (exit 2)
  crash_after     enable, then die by SIGSEGV after --after seconds
  hang_enabling   stay in "enabling" forever
  ignore_sigint   enable, then ignore SIGINT/SIGTERM (needs SIGKILL)
  eject_alive     enable, then after --after s the kernel ejects it (stall); stays alive
  eject_exit      same, but the loader prints EXIT and exits 0 (as real loaders do)
  eject_at_start  the watchdog ejects it while still enabling; EXIT, exit 0
  eject_unseen    enabled and ejected before anyone polls (enable_seq moves, the state is
                  disabled again); the loader was the stalled task and stays silent for
                  --after s, then EXIT, exit 0 (scx_qmap -t under emulation)
  restart_after   after --after s the kernel unregisters it asking for a restart (CPU
                  hotplug); the loader re-attaches itself (a new enable_seq), same process
--refuse-with FLAG: refuse (as in refuse mode) only when the command line has FLAG.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import signal
import sys
import time
from pathlib import Path


def kmsg(root: Path, message: str) -> None:
    path = root / "dev" / "kmsg"
    with open(path, "a+", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        seq = sum(1 for _ in fh)
        fh.write(f"6,{seq},{int(time.monotonic() * 1e6)},-;{message}\n")


def write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(text + "\n")
    os.replace(tmp, path)


def main() -> int:
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--fake-root", required=True)
    ap.add_argument("--ops", required=True)
    ap.add_argument("--mode", default="normal")
    ap.add_argument("--enable-delay", type=float, default=0.05)
    ap.add_argument("--after", type=float, default=0.3)
    ap.add_argument("--supports", default="", help="flags shown by -h/--help")
    ap.add_argument("--partial-flag", default="-p")
    ap.add_argument("--name", default="scx_fake")
    ap.add_argument("--refuse-with", default="")
    ap.add_argument("-h", "--help", action="store_true")
    ap.add_argument("-V", "--version", action="store_true")
    args, rest = ap.parse_known_args()
    root = Path(args.fake_root)
    sx = root / "sys/kernel/sched_ext"
    name = args.name
    # Look like the real loader in /proc/<pid>/comm (reclaim finds loaders by name).
    import ctypes
    ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME

    if args.help:
        print(f"Usage: {name} [OPTIONS]\n\nOptions:")
        for flag in args.supports.split():
            print(f"  {flag}  (fake)")
        return 0
    if args.version:  # as the Rust loaders: print and exit, never attach (scxd probes it)
        print(f"{name} 1.1.0 (fake loader)")
        return 0
    if args.mode == "bad_args":
        print(f"error: unexpected argument '{rest[0] if rest else '--x'}' found", flush=True)
        return 2
    if not sx.exists():
        print("[SCX_BUG] sched_ext_ops.dump() missing, kernel too old?", flush=True)
        return 1

    stop = {"now": False}

    def on_signal(*_):
        stop["now"] = True

    if args.mode == "ignore_sigint":
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)

    print(f"{name}: loading BPF skeleton", flush=True)
    if args.mode == "refuse" or (args.refuse_with and args.refuse_with in rest):
        print("libbpf: prog 'enqueue': BPF program load failed: Invalid argument", flush=True)
        print("[SCX_ERR] scx_fake.c:88: Failed to load skeleton", flush=True)
        return 1
    try:
        lock = os.open(sx / ".attached", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        print("libbpf: map 'fake_ops': failed to attach struct_ops: -16", flush=True)
        print("Failed to attach struct_ops (Device or resource busy)", flush=True)
        return 1
    os.write(lock, str(os.getpid()).encode())
    os.close(lock)
    write(sx / "state", "enabling")
    if args.mode == "eject_at_start":
        time.sleep(args.enable_delay)
        kmsg(root, f"sched_ext: {args.ops}: kworker/u4:2[77] failed to run for 5.012s")
        kmsg(root, f'sched_ext: BPF scheduler "{args.ops}" disabled (runnable task stall)')
        write(sx / "state", "disabled")
        (sx / ".attached").unlink(missing_ok=True)
        print("EXIT: runnable task stall (watchdog failed to check in for 5.012s)", flush=True)
        return 0
    if args.mode == "eject_unseen":
        time.sleep(args.enable_delay)
        seq = int((sx / "enable_seq").read_text().strip() or 0) + 1
        write(sx / "enable_seq", str(seq))
        kmsg(root, f'sched_ext: BPF scheduler "{args.ops}" enabled')
        kmsg(root, f"sched_ext: {args.ops}: {name}[{os.getpid()}] failed to run for 5.064s")
        kmsg(root, f'sched_ext: BPF scheduler "{args.ops}" disabled (runnable task stall)')
        write(sx / "state", "disabled")
        (sx / ".attached").unlink(missing_ok=True)
        time.sleep(args.after)
        print(f"EXIT: runnable task stall ({name}[{os.getpid()}] failed to run for 5.064s)",
              flush=True)
        return 0
    if args.mode == "hang_enabling":
        while True:
            time.sleep(0.05)
    time.sleep(args.enable_delay)
    partial = args.partial_flag in rest
    (sx / "root").mkdir(exist_ok=True)
    write(sx / "root" / "ops", args.ops)
    seq = int((sx / "enable_seq").read_text().strip() or 0) + 1
    write(sx / "enable_seq", str(seq))
    write(sx / "switch_all", "0" if partial else "1")
    write(sx / "state", "enabled")
    kmsg(root, f'sched_ext: BPF scheduler "{args.ops}" enabled' + (" (partial)" if partial
                                                                  else ""))
    started = time.monotonic()
    ejected = restarted = False
    while not stop["now"]:
        time.sleep(0.01)
        elapsed = time.monotonic() - started
        if args.mode == "restart_after" and not restarted and elapsed >= args.after:
            restarted = True
            write(sx / "state", "disabling")
            kmsg(root, f'sched_ext: BPF scheduler "{args.ops}" disabled (unregistered from '
                 'the main kernel)')
            (sx / "root" / "ops").unlink(missing_ok=True)
            write(sx / "state", "disabled")
            print("EXIT: unregistered from the main kernel (cpu 1 going offline, exiting "
                  "scheduler)", flush=True)
            time.sleep(args.enable_delay)
            write(sx / "state", "enabling")
            write(sx / "root" / "ops", args.ops)
            write(sx / "enable_seq", str(int((sx / "enable_seq").read_text()) + 1))
            write(sx / "state", "enabled")
            kmsg(root, f'sched_ext: BPF scheduler "{args.ops}" enabled')
        if args.mode == "crash_after" and elapsed >= args.after:
            os.kill(os.getpid(), signal.SIGSEGV)
        if args.mode in ("eject_alive", "eject_exit") and not ejected and elapsed >= args.after:
            ejected = True
            write(sx / "state", "disabling")
            kmsg(root, f"sched_ext: {args.ops}: sleep[4242] failed to run for 5.068s")
            kmsg(root, f'sched_ext: BPF scheduler "{args.ops}" disabled (runnable task stall)')
            (sx / "root" / "ops").unlink(missing_ok=True)
            write(sx / "state", "disabled")
            (sx / ".attached").unlink(missing_ok=True)
            print("EXIT: runnable task stall", flush=True)
            if args.mode == "eject_exit":
                return 0
    # Unregister (SIGINT): what the kernel does when the struct_ops link is released.
    if not ejected:
        write(sx / "state", "disabling")
        (sx / "root" / "ops").unlink(missing_ok=True)
        write(sx / "state", "disabled")
        (sx / ".attached").unlink(missing_ok=True)
        kmsg(root, f'sched_ext: BPF scheduler "{args.ops}" disabled (unregistered from user '
             'space)')
    print("EXIT: unregistered from user space", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
