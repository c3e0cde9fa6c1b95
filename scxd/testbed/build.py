"""Build the sched_ext test bed: a 6.12 kernel and the kernel tree's example schedulers.

The host kernel here has no sched_ext, so scxd's central act (swap a scheduler, verify it in
/sys/kernel/sched_ext) is proven in a guest.  This module turns Debian's ``linux-source-6.12``
plus the fragment ``kernel.config`` (kept beside this file) into:

* ``bzImage`` — the guest kernel;
* ``bin/`` — scx_simple, scx_qmap, scx_flatcg, scx_central, dynamically linked (virtme-ng mode,
  where the guest sees the host's libraries);
* ``static/`` — the same schedulers linked statically (busybox initramfs mode);
* ``tree/`` — the configured source tree, kept so the guest has kernel headers for bcc;
* ``scx/<scx key>/`` — scx_bpfland, scx_flash, scx_flashyspark (+ optional C schedulers)
  built by :mod:`scxd.testbed.scx` from an upstream source tree, under their own key.

Results are cached under ``<cache>/<key>/`` where the key hashes the fragment, the source
package version and this recipe's version: a second run only verifies the cache (seconds).
The scx schedulers have their own key, so adding or changing a loader never rebuilds the
kernel.
Every step prints its duration; a missing piece (disk space, package, compiler) fails with a
message that names it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from scxd.testbed import scx

#: Bump when the steps below change in a way that changes the artifacts.
RECIPE_VERSION = 3
SOURCE_PACKAGE = "linux-source-6.12"
SOURCE_TARBALL = Path("/usr/src/linux-source-6.12.tar.xz")
FRAGMENT = Path(__file__).with_name("kernel.config")
DEFAULT_CACHE = Path(os.environ.get("SCXD_TESTBED_CACHE", "/var/cache/scxd-testbed"))
SCHEDULERS = ("scx_simple", "scx_qmap", "scx_flatcg", "scx_central")
#: Debian packages the build and the qemu runs need.
PACKAGES = (
    SOURCE_PACKAGE, "build-essential", "flex", "bison", "bc", "libelf-dev", "libssl-dev",
    "dwarves", "cpio", "rsync", "kmod", "clang-19", "llvm-19", "lld-19", "qemu-system-x86",
    "busybox-static", "xz-utils", "zstd", "libzstd-dev", "zlib1g-dev", "pkg-config",
)
#: Free space a cold build needs: ≈1.5 GB tarball unpack growing to ≈4 GB tree, plus slack.
COLD_BUILD_FREE_BYTES = 8 * 1024**3


class BuildError(RuntimeError):
    """A build step failed; the message names the missing piece or the failing command."""


@dataclass(frozen=True)
class Artifacts(scx.BuiltDir):
    """Where a finished test bed lives."""

    scx: scx.ScxArtifacts | None = None   # None: no scx source tree given

    @property
    def search_path(self) -> list[str]:
        """Directories holding the dynamically linked schedulers (full mode), kernel-tree
        ones first."""
        dirs = [self.bin_dir]
        if self.scx is not None and self.scx.complete():
            dirs.append(self.scx.bin_dir)
        return [str(d) for d in dirs]

    @property
    def static_dirs(self) -> list[Path]:
        dirs = [self.static_dir]
        if self.scx is not None and self.scx.complete():
            dirs.append(self.scx.static_dir)
        return dirs

    def scx_built(self) -> list[str]:
        return self.scx.built() if self.scx is not None else []

    @property
    def bzimage(self) -> Path:
        return self.root / "bzImage"

    @property
    def tree(self) -> Path:
        return self.root / "tree"

    def complete(self) -> bool:
        """True when every artifact the runs need exists (the manifest is written last)."""
        needed = [self.bzimage, self.manifest_path, self.tree / "Makefile"]
        needed += [self.bin_dir / name for name in SCHEDULERS]
        needed += [self.static_dir / name for name in SCHEDULERS]
        return all(p.exists() for p in needed)


@dataclass
class StepTimer:
    """Prints each step with its duration and keeps them for the manifest."""

    quiet: bool = False
    timings: dict[str, float] = field(default_factory=dict)

    def run(self, name: str, fn, *args, **kwargs):
        start = time.monotonic()
        self.say(f"[testbed] {name} ...")
        result = fn(*args, **kwargs)
        took = time.monotonic() - start
        self.timings[name] = round(took, 1)
        self.say(f"[testbed] {name}: done in {took:.1f} s")
        return result

    def say(self, line: str) -> None:
        if not self.quiet:
            print(line, flush=True)


def source_version() -> str:
    """Version of the installed linux-source package (part of the cache key)."""
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", SOURCE_PACKAGE],
            capture_output=True, text=True, check=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        raise BuildError(f"package {SOURCE_PACKAGE} is not installed ({exc})") from exc
    return out.stdout.strip()


def cache_key(fragment: bytes, version: str) -> str:
    digest = hashlib.sha256()
    digest.update(fragment)
    digest.update(version.encode())
    digest.update(str(RECIPE_VERSION).encode())
    return digest.hexdigest()[:16]


def artifacts_for(cache: Path = DEFAULT_CACHE, scx_src: str | os.PathLike[str] | None = None
                  ) -> Artifacts:
    """The artifact location for the current fragment and source version, and the scx
    schedulers for ``scx_src`` (see :func:`scx.resolve_source`), built or not."""
    key = cache_key(FRAGMENT.read_bytes(), source_version())
    root = cache / key
    return Artifacts(root, key, scx.artifacts_for(root, key, scx.resolve_source(scx_src)))


def missing_packages(packages: Sequence[str] = PACKAGES) -> list[str]:
    missing = []
    for pkg in packages:
        res = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True
        )
        if res.returncode != 0 or "install ok installed" not in res.stdout:
            missing.append(pkg)
    return missing


def install_packages(packages: Sequence[str], timer: StepTimer) -> None:
    if not packages:
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        tail = "\n".join(res.stderr.strip().splitlines()[-5:])
        raise BuildError(
            f"could not install Debian packages {' '.join(packages)}: apt-get exited "
            f"{res.returncode}:\n{tail}"
        )
    timer.say(f"[testbed] installed {len(packages)} packages")


def require_tools() -> None:
    for tool, pkg in (("clang-19", "clang-19"), ("llvm-strip-19", "llvm-19"),
                      ("qemu-system-x86_64", "qemu-system-x86"), ("pahole", "dwarves")):
        if shutil.which(tool) is None:
            raise BuildError(f"compiler/tool {tool!r} not found on PATH (Debian package {pkg})")
    if shutil.which("virtme-configkernel", path=tool_path()) is None:
        raise BuildError(
            "virtme-configkernel not found: install the project's testbed extra "
            "(pip install 'virtme-ng') into the venv"
        )


def tool_path() -> str:
    """PATH with this interpreter's bin directory first, so the venv's vng tools are found."""
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


def require_space(where: Path, needed: int) -> None:
    where.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(where).free
    if free < needed:
        raise BuildError(
            f"not enough disk space in {where}: {free / 1024**3:.1f} GiB free, a cold build "
            f"needs {needed / 1024**3:.1f} GiB (set SCXD_TESTBED_CACHE to another disk)"
        )


def run_logged(cmd: Sequence[str], log: Path, cwd: Path, timer: StepTimer,
               env: dict[str, str] | None = None) -> None:
    """Run a long command with output to ``log``; print its last line every 30 s."""
    full_env = dict(os.environ, PATH=tool_path(), **(env or {}))
    with log.open("ab") as sink:
        sink.write(f"\n$ {' '.join(cmd)}\n".encode())
        sink.flush()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=sink, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=full_env)
        start = time.monotonic()
        while True:
            try:
                rc = proc.wait(timeout=30)
                break
            except subprocess.TimeoutExpired:
                timer.say(f"[testbed]   ... {time.monotonic() - start:.0f} s: {last_line(log)}")
    if rc != 0:
        raise BuildError(
            f"command failed with exit code {rc}: {' '.join(cmd)} (in {cwd}); "
            f"log {log}:\n{tail_text(log, 15)}"
        )


def last_line(log: Path) -> str:
    lines = tail_text(log, 1).splitlines()
    return lines[-1][:120] if lines else ""


def tail_text(path: Path, n: int) -> str:
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        fh.seek(max(0, fh.tell() - 8192))
        return "\n".join(fh.read().decode(errors="replace").splitlines()[-n:])


def unpack_source(tarball: Path, dest: Path) -> Path:
    """Unpack the Debian source tarball into ``dest``; returns the tree's directory."""
    if not tarball.exists():
        raise BuildError(f"{tarball} missing: install Debian package {SOURCE_PACKAGE}")
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    # GNU tar: several times faster than tarfile on this 140 MB .xz, and 3.11.2 has no filter=.
    res = subprocess.run(["tar", "-xf", str(tarball), "-C", str(tmp)], capture_output=True,
                         text=True)
    if res.returncode != 0:
        raise BuildError(f"unpacking {tarball} failed: {res.stderr.strip()[-500:]}")
    (top,) = list(tmp.iterdir())
    shutil.rmtree(dest, ignore_errors=True)
    top.rename(dest)
    tmp.rmdir()
    return dest


def parse_config(text: str) -> dict[str, str]:
    """``CONFIG_X=v`` and ``# CONFIG_X is not set`` lines → {name: value}, "n" for not set."""
    options: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("# CONFIG_") and line.endswith(" is not set"):
            options[line[2:-len(" is not set")]] = "n"
        elif line.startswith("CONFIG_") and "=" in line:
            name, value = line.split("=", 1)
            options[name] = value
    return options


def unmet_options(fragment: str, config: str) -> list[str]:
    """Fragment options that did not survive olddefconfig (dependency not met)."""
    want = parse_config(fragment)
    have = parse_config(config)
    return [
        f"{name}={value} (got {have.get(name, 'absent')})"
        for name, value in want.items()
        if have.get(name, "n") != value
    ]


def configure(tree: Path, fragment: Path, log: Path, timer: StepTimer) -> None:
    run_logged(["virtme-configkernel", "--defconfig", "--custom", str(fragment)], log, tree,
               timer)
    bad = unmet_options(fragment.read_text(), (tree / ".config").read_text())
    if bad:
        raise BuildError("kernel config lost options from the fragment: " + ", ".join(bad))


def build_kernel(tree: Path, log: Path, jobs: int, timer: StepTimer) -> None:
    run_logged(["make", f"-j{jobs}", "bzImage"], log, tree, timer)


def build_schedulers(tree: Path, log: Path, jobs: int, timer: StepTimer) -> Path:
    run_logged(
        ["make", "-C", "tools/sched_ext", "CLANG=clang-19", "LLVM_STRIP=llvm-strip-19",
         f"-j{jobs}"],
        log, tree, timer,
    )
    bin_dir = tree / "tools/sched_ext/build/bin"
    missing = [s for s in SCHEDULERS if not (bin_dir / s).exists()]
    if missing:
        raise BuildError(f"tools/sched_ext built without {', '.join(missing)}; see {log}")
    return bin_dir


def link_static(tree: Path, out: Path, log: Path, timer: StepTimer) -> None:
    """Relink each scheduler's object statically against the tree's libbpf.a."""
    build = tree / "tools/sched_ext/build"
    libbpf = next(build.rglob("libbpf.a"), None)
    if libbpf is None:
        raise BuildError(f"libbpf.a not found under {build}")
    out.mkdir(parents=True, exist_ok=True)
    for name in SCHEDULERS:
        obj = next((p for p in build.rglob(f"{name}.o") if "bpf" not in p.suffixes), None)
        if obj is None:
            raise BuildError(f"object {name}.o not found under {build}")
        run_logged(
            ["gcc", "-static", "-o", str(out / name), str(obj), str(libbpf),
             "-lelf", "-lz", "-lzstd", "-lpthread"],
            log, tree, timer,
        )


def build(cache: Path = DEFAULT_CACHE, jobs: int | None = None, install: bool = True,
          quiet: bool = False, scx_src: str | os.PathLike[str] | None = None) -> Artifacts:
    """Build (or verify the cached) test bed and return where it lives: the kernel and its
    tree's schedulers, then the scx schedulers from ``scx_src`` when there is a source."""
    timer = StepTimer(quiet=quiet)
    if install:
        missing = missing_packages()
        if missing:
            timer.run(f"install {len(missing)} Debian packages", install_packages, missing,
                      timer)
    elif missing := missing_packages():
        raise BuildError(f"missing Debian packages: {' '.join(missing)}")
    art = artifacts_for(cache, scx_src)
    if art.complete():
        timer.say(f"[testbed] cached: {art.root} (key {art.key})")
    else:
        build_kernel_artifacts(art, jobs, timer)
    src = scx.resolve_source(scx_src)
    if src is None:
        timer.say(f"[testbed] scx schedulers skipped ({', '.join(scx.NAMES)}): no scx source "
                  "tree (pass --scx-src DIR or set SCXD_SCX_SRC)")
    try:
        scx_art = timer.run("scx schedulers", scx.build, art.root, art.key, art.tree, src,
                            timer.say)
    except scx.ScxBuildError as exc:
        raise BuildError(str(exc)) from exc
    for name, why in scx_art.skipped().items():
        if src is not None:
            timer.say(f"[testbed] {name} skipped: {why}")
    return replace(art, scx=scx_art)


def build_kernel_artifacts(art: Artifacts, jobs: int | None, timer: StepTimer) -> None:
    """The kernel, its tree's schedulers (dynamic and static) and the manifest."""
    require_tools()
    require_space(art.root.parent, COLD_BUILD_FREE_BYTES)
    jobs = jobs or os.cpu_count() or 2
    art.root.mkdir(parents=True, exist_ok=True)
    log = art.root / "build.log"
    tree = art.tree
    if not (tree / "Makefile").exists():
        timer.run("unpack linux source", unpack_source, SOURCE_TARBALL, tree)
    timer.run("configure kernel", configure, tree, FRAGMENT, log, timer)
    timer.run("build bzImage", build_kernel, tree, log, jobs, timer)
    shutil.copy2(tree / "arch/x86/boot/bzImage", art.bzimage)
    bin_dir = timer.run("build tools/sched_ext schedulers", build_schedulers, tree, log, jobs,
                        timer)
    art.bin_dir.mkdir(exist_ok=True)
    for name in SCHEDULERS:
        shutil.copy2(bin_dir / name, art.bin_dir / name)
    timer.run("link static schedulers", link_static, tree, art.static_dir, log, timer)
    release = subprocess.run(["make", "-s", "kernelrelease"], cwd=tree, capture_output=True,
                             text=True, check=True).stdout.strip()
    manifest = {
        "key": art.key,
        "kernel_release": release,
        "source_package": SOURCE_PACKAGE,
        "source_version": source_version(),
        "recipe_version": RECIPE_VERSION,
        "clang": subprocess.run(["clang-19", "--version"], capture_output=True,
                                text=True).stdout.splitlines()[0],
        "schedulers": list(SCHEDULERS),
        "timings_s": timer.timings,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    art.manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    timer.say(f"[testbed] built {art.root} in {sum(timer.timings.values()):.0f} s")


def describe(art: Artifacts) -> dict:
    return {"root": str(art.root), "key": art.key, "complete": art.complete(),
            **(art.manifest() if art.manifest_path.exists() else {}),
            "scx": scx.describe(art.scx)}


__all__ = ["Artifacts", "BuildError", "artifacts_for", "asdict", "build", "describe"]
