"""Build the scx schedulers users name — scx_bpfland, scx_flash, scx_flashyspark — for the test bed.

Their upstream loaders are Rust and crates.io is unreachable here, so the test bed builds the
*BPF side* from an upstream source tree it is given (never copied into this repository) and
links it to the project's own C loaders (``loaders/``, libbpf skeletons, faithful to each
``main.rs``).  The optional C schedulers scx_nest, scx_prev and scx_pair come with their
own upstream C loaders and are built as they are.

Everything is compiled with the kernel tree's tools, as ``tools/sched_ext`` does: clang-19
for the BPF object, the tree's ``bpftool`` for the skeleton, the tree's ``vmlinux.h`` and
``libbpf.a`` (the host's libbpf 1.1 and bpftool 7.1 are too old).  Results — dynamically
linked ``bin/`` (full mode: the guest sees the host's libraries) and ``static/`` (busybox
fast mode) — live in ``<kernel artifacts>/scx/<key>/``.  The key hashes the upstream files
used, the loader sources, this recipe's version and the kernel artifacts' key: changing a
loader rebuilds only these (≈1–2 min), never the kernel (``build.RECIPE_VERSION`` is not
involved).

The source tree (``--scx-src DIR`` / ``SCXD_SCX_SRC``; by default ``../shared/third_party/scx``
beside the repository when it exists) holds one directory per upstream origin, laid out like
``../shared/third_party/scx``.  Without it the kernel-tree schedulers are still built and
the manifest says which scx schedulers were skipped and why.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

#: Bump when the steps below change in a way that changes the artifacts.
SCX_RECIPE_VERSION = 1
LOADERS = Path(__file__).with_name("loaders")
LOADER_COMMON = ("loader.c", "loader.h")
REPO = Path(__file__).resolve().parents[2]
DEFAULT_SOURCE = REPO.parent / "shared" / "third_party" / "scx"
V110 = "sched-ext-scx-v1.1.0"
V1020 = "sched-ext-scx-v1.0.20"
FORK = "esot0-scx-1bd93fe9"


@dataclass(frozen=True)
class ScxScheduler:
    """One scheduler to build: where its BPF source is, and which loader drives it."""

    name: str                      # binary and skeleton name
    origin: str                    # source tree directory (see the module docstring)
    bpf: str                       # BPF program, relative to the origin
    loader: str                    # C loader: "loaders/X.c" (ours) or a path in the origin
    version: str                   # upstream version of the BPF side
    defines: tuple[str, ...] = ()
    include_origin: str = V110     # whose scheds/include the BPF and loader compile with
    required: bool = True          # a build failure fails the test bed (else: skipped)

    @property
    def ours(self) -> bool:
        return self.loader.startswith("loaders/")


SCHEDULERS: tuple[ScxScheduler, ...] = (
    ScxScheduler("scx_bpfland", V110, "scheds/rust/scx_bpfland/src/bpf/main.bpf.c",
                 "loaders/scx_bpfland.c", "1.1.0"),
    ScxScheduler("scx_flash", V110, "scheds/rust/scx_flash/src/bpf/main.bpf.c",
                 "loaders/scx_flash.c", "1.1.0"),
    # The fork's scheds/include equals v1.0.14's; its BPF compiles with v1.1.0's headers.
    ScxScheduler("scx_flashyspark", FORK, "scheds/rust/scx_flashyspark/src/bpf/main.bpf.c",
                 "loaders/scx_flash.c", "1.0.11 (fork of scx_flash 1.0.14)",
                 defines=("-DSCX_FLASHYSPARK",)),
    ScxScheduler("scx_nest", V1020, "scheds/c/scx_nest.bpf.c", "scheds/c/scx_nest.c",
                 "1.0.20", required=False),
    ScxScheduler("scx_prev", V1020, "scheds/c/scx_prev.bpf.c", "scheds/c/scx_prev.c",
                 "1.0.20", required=False),
    ScxScheduler("scx_pair", V1020, "scheds/c/scx_pair.bpf.c", "scheds/c/scx_pair.c",
                 "1.0.20", required=False),
)
NAMES = tuple(s.name for s in SCHEDULERS)


class ScxBuildError(RuntimeError):
    """A required scheduler failed to build; the message names the step and the log."""


def resolve_source(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The scx source tree: the argument, else $SCXD_SCX_SRC, else the default beside the
    repository when it exists; None when there is none."""
    if explicit:
        return Path(explicit).resolve()
    env = os.environ.get("SCXD_SCX_SRC")
    if env:
        return Path(env).resolve()
    return DEFAULT_SOURCE.resolve() if DEFAULT_SOURCE.is_dir() else None


def missing_sources(sched: ScxScheduler, src: Path) -> list[str]:
    """Upstream files this scheduler needs that the tree lacks."""
    needed = [src / sched.origin / sched.bpf,
              src / sched.include_origin / "scheds/include/scx/common.bpf.h"]
    if not sched.ours:
        needed.append(src / sched.origin / sched.loader)
    return [str(p) for p in needed if not p.is_file()]


def source_files(sched: ScxScheduler, src: Path) -> dict[str, Path]:
    """Every file whose content goes into the build of ``sched`` (for the cache key), by a
    name that does not depend on where the trees are."""
    bpf_dir = (src / sched.origin / sched.bpf).parent
    files = [p for p in bpf_dir.iterdir() if p.is_file() and p.suffix in (".c", ".h")]
    if not sched.ours:
        loader_dir = (src / sched.origin / sched.loader).parent
        files += [p for p in loader_dir.iterdir() if p.is_file() and p.suffix in (".c", ".h")]
    inc = src / sched.include_origin / "scheds/include"
    files += [p for p in inc.rglob("*") if p.is_file()]
    named = {f"src/{f.relative_to(src)}": f for f in files}
    if sched.ours:
        for name in (Path(sched.loader).name, *LOADER_COMMON):
            named[f"loaders/{name}"] = LOADERS / name
    return dict(sorted(named.items()))


def scx_key(src: Path | None, kernel_key: str) -> tuple[str, dict[str, str]]:
    """(key, skipped): the hash of everything that makes the scx artifacts, and the
    schedulers that cannot be built from this tree with the reason."""
    digest = hashlib.sha256()
    digest.update(f"scx-recipe-{SCX_RECIPE_VERSION}\nkernel-{kernel_key}\n".encode())
    skipped: dict[str, str] = {}
    for sched in SCHEDULERS:
        if src is None:
            skipped[sched.name] = ("no scx source tree (pass --scx-src DIR or set "
                                   "SCXD_SCX_SRC)")
            continue
        missing = missing_sources(sched, src)
        if missing:
            skipped[sched.name] = f"source missing: {', '.join(missing)}"
            continue
        digest.update(f"{sched!r}\n".encode())
        for name, f in source_files(sched, src).items():
            digest.update(f"{name}\n".encode())
            digest.update(hashlib.sha256(f.read_bytes()).digest())
    return digest.hexdigest()[:16], skipped


@dataclass(frozen=True)
class BuiltDir:
    """A cache directory of one key: ``bin/`` (dynamic), ``static/``, ``manifest.json``."""

    root: Path
    key: str

    @property
    def bin_dir(self) -> Path:
        return self.root / "bin"

    @property
    def static_dir(self) -> Path:
        return self.root / "static"

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    def manifest(self) -> dict:
        return json.loads(self.manifest_path.read_text())


@dataclass(frozen=True)
class ScxArtifacts(BuiltDir):
    """Where the built scx schedulers of one key live."""

    def complete(self) -> bool:
        return self.manifest_path.exists()

    def built(self) -> list[str]:
        return list(self.manifest().get("built", {})) if self.complete() else []

    def skipped(self) -> dict[str, str]:
        return dict(self.manifest().get("skipped", {})) if self.complete() else {}


def artifacts_for(kernel_root: Path, kernel_key: str, src: Path | None) -> ScxArtifacts:
    key, _ = scx_key(src, kernel_key)
    return ScxArtifacts(kernel_root / "scx" / key, key)


@dataclass(frozen=True)
class Toolchain:
    """The kernel tree's tools that every step uses."""

    tree: Path

    @property
    def build(self) -> Path:
        return self.tree / "tools/sched_ext/build"

    @property
    def bpftool(self) -> Path:
        return self.build / "sbin/bpftool"

    @property
    def libbpf(self) -> Path:
        return self.build / "obj/libbpf/libbpf.a"

    @property
    def include(self) -> Path:
        """vmlinux.h and the installed libbpf headers (bpf/*.h)."""
        return self.build / "include"

    def missing(self) -> list[str]:
        return [str(p) for p in (self.bpftool, self.libbpf, self.include / "vmlinux.h")
                if not p.exists()]


def system_includes(clang: str = "clang-19") -> list[str]:
    """clang's host include directories as -idirafter flags (what tools/sched_ext does for
    '-target bpf', so <limits.h> and friends resolve)."""
    res = subprocess.run([clang, "-v", "-E", "-"], input="", capture_output=True, text=True)
    out, inside = [], False
    for line in res.stderr.splitlines():
        if line.startswith("#include <...> search starts here:"):
            inside = True
        elif line.startswith("End of search list."):
            inside = False
        elif inside and line.strip().startswith("/"):
            out += ["-idirafter", line.strip()]
    return out


def _run(cmd: Sequence[str], log: Path, cwd: Path, stdout: Path | None = None) -> None:
    with log.open("ab") as sink:
        sink.write(f"\n$ {' '.join(map(str, cmd))}\n".encode())
        sink.flush()
        out = stdout.open("wb") if stdout else sink
        try:
            rc = subprocess.run(list(map(str, cmd)), cwd=cwd, stdout=out,
                                stderr=sink, stdin=subprocess.DEVNULL).returncode
        finally:
            if stdout:
                out.close()
    if rc != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise ScxBuildError(f"command failed with exit code {rc}: {' '.join(map(str, cmd))}; "
                            f"log {log}:\n{tail}")


def build_one(sched: ScxScheduler, src: Path, tools: Toolchain, work: Path, out: Path,
              log: Path, sys_inc: list[str]) -> dict:
    """Compile the BPF object, generate its skeleton, build the loader dynamic + static."""
    obj = work / sched.name
    obj.mkdir(parents=True, exist_ok=True)
    bpf_src = src / sched.origin / sched.bpf
    scx_inc = src / sched.include_origin / "scheds/include"
    bpf_o = obj / f"{sched.name}.bpf.o"
    _run(["clang-19", "-g", "-O2", "-mcpu=v3", "-target", "bpf", "-D__TARGET_ARCH_x86",
          "-mlittle-endian", "-Wall", "-Wno-compare-distinct-pointer-types",
          f"-I{scx_inc}", f"-I{scx_inc / 'bpf-compat'}", f"-I{tools.include}",
          f"-I{tools.tree / 'tools/include/uapi'}", f"-I{bpf_src.parent}", *sys_inc,
          "-c", bpf_src, "-o", bpf_o], log, obj)
    linked = obj / f"{sched.name}.linked.o"
    _run([tools.bpftool, "gen", "object", linked, bpf_o], log, obj)
    _run([tools.bpftool, "gen", "skeleton", linked, "name", sched.name], log, obj,
         stdout=obj / f"{sched.name}.bpf.skel.h")
    if sched.ours:
        sources = [LOADERS / Path(sched.loader).name, LOADERS / "loader.c"]
        warn = ["-Wall", "-Werror"]
        loader_dirs = [LOADERS]
    else:
        sources = [src / sched.origin / sched.loader]
        warn = ["-Wall"]
        loader_dirs = [(src / sched.origin / sched.loader).parent]
    cflags = ["-g", "-O2", *warn, *sched.defines, f"-I{obj}",
              *(f"-I{d}" for d in loader_dirs), f"-I{bpf_src.parent}", f"-I{scx_inc}",
              f"-I{tools.include}", f"-I{tools.tree / 'tools/include'}",
              f"-I{tools.tree / 'tools/include/uapi'}"]
    objects = []
    for s in sources:
        o = obj / (s.stem + ".o")
        _run(["gcc", *cflags, "-c", s, "-o", o], log, obj)
        objects.append(o)
    # dynamic for full mode (the guest sees the host's libraries), static for busybox
    for kind, flags, libs in (("bin", [], ["-lelf", "-lz", "-lpthread"]),
                              ("static", ["-static"], ["-lelf", "-lz", "-lzstd", "-lpthread"])):
        dest = out / kind / sched.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        _run(["gcc", *flags, "-o", dest, *objects, tools.libbpf, *libs], log, obj)
    version = ""
    if sched.ours:
        res = subprocess.run([str(out / "bin" / sched.name), "--version"], capture_output=True,
                             text=True, timeout=10)
        if res.returncode != 0 or sched.name not in res.stdout:
            raise ScxBuildError(f"{sched.name} --version failed ({res.returncode}): "
                                f"{res.stdout}{res.stderr}")
        version = res.stdout.strip()
    return {"version": sched.version, "origin": sched.origin, "loader": sched.loader,
            "loader_version": version}


def build(kernel_root: Path, kernel_key: str, tree: Path, src: Path | None, say=print
          ) -> ScxArtifacts:
    """Build (or find cached) scx schedulers for the kernel artifacts at ``kernel_root``."""
    key, skipped = scx_key(src, kernel_key)
    art = ScxArtifacts(kernel_root / "scx" / key, key)
    if art.complete():
        say(f"[testbed] scx schedulers cached: {art.root} (key {key})")
        return art
    tools = Toolchain(tree)
    missing = tools.missing()
    if missing:
        raise ScxBuildError("the kernel tree's sched_ext tools are not built (missing "
                            f"{', '.join(missing)}): run the kernel build first")
    tmp = art.root.with_name(art.root.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    log = tmp / "build.log"
    sys_inc = system_includes()
    built: dict[str, dict] = {}
    timings: dict[str, float] = {}
    for sched in SCHEDULERS:
        if sched.name in skipped:
            say(f"[testbed] {sched.name}: skipped ({skipped[sched.name]})")
            continue
        start = time.monotonic()
        say(f"[testbed] build {sched.name} ...")
        try:
            built[sched.name] = build_one(sched, src, tools, tmp / "obj", tmp, log, sys_inc)
        except (ScxBuildError, OSError, subprocess.SubprocessError) as exc:
            if sched.required:
                raise ScxBuildError(f"building {sched.name} failed: {exc}") from exc
            skipped[sched.name] = f"build failed: {str(exc).splitlines()[0][:300]}"
            say(f"[testbed] {sched.name}: skipped ({skipped[sched.name]})")
            continue
        timings[sched.name] = round(time.monotonic() - start, 1)
        say(f"[testbed] build {sched.name}: done in {timings[sched.name]:.1f} s")
    manifest = {"key": key, "kernel_key": kernel_key, "recipe_version": SCX_RECIPE_VERSION,
                "source": str(src) if src else None, "built": built, "skipped": skipped,
                "timings_s": timings,
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    shutil.rmtree(art.root, ignore_errors=True)
    tmp.rename(art.root)
    return art


def describe(art: ScxArtifacts | None) -> dict:
    if art is None or not art.complete():
        return {"built": False, **({"root": str(art.root), "key": art.key} if art else {})}
    m = art.manifest()
    return {"built": True, "root": str(art.root), "key": art.key,
            "schedulers": {n: v.get("loader_version") or v.get("version")
                           for n, v in m["built"].items()},
            "skipped": m["skipped"], "timings_s": m.get("timings_s", {})}


__all__ = ["NAMES", "SCHEDULERS", "ScxArtifacts", "ScxBuildError", "artifacts_for", "build",
           "describe", "resolve_source", "scx_key"]
