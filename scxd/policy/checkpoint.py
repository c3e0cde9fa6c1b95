"""Atomic policy checkpoints: learned state that survives SIGHUP, restarts and upgrades.

A checkpoint is one ``.npz`` file (no pickle: ``allow_pickle=False`` both ways) holding
``__meta__`` — JSON with the format version, the policy name and version, the feature schema
and version, the arm-set hash and its arm keys, when it was made, and the learner's scalar
state — plus the learner's arrays.  Written to a temporary file in the same directory,
fsynced, renamed over the old one and the directory fsynced: a crash leaves the old or the
new checkpoint, never a torn one.

:func:`check` says whether a checkpoint fits a policy: a different feature schema is a
mismatch (the inputs mean something else); a different arm set is a partial fit — learners
carry per-arm state over by arm key (:meth:`scxd.policy.base.Learner.load_state`).
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "scxd-policy-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit; the message says which and why."""


@dataclass(frozen=True)
class Checkpoint:
    meta: dict[str, Any]
    arrays: dict[str, np.ndarray]

    @property
    def age_s(self) -> float:
        return max(0.0, time.time() - float(self.meta.get("saved_at", 0.0)))


def save(path: str | os.PathLike[str], meta: dict[str, Any],
         arrays: dict[str, np.ndarray]) -> None:
    """Write atomically (temp file + fsync + rename + directory fsync)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    full = {"format": FORMAT, "format_version": FORMAT_VERSION, "saved_at": time.time(), **meta}
    buf = io.BytesIO()
    np.savez(buf, __meta__=np.frombuffer(json.dumps(full).encode(), dtype=np.uint8),
             **{k: np.asarray(v) for k, v in arrays.items()})
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(buf.getvalue())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def load(path: str | os.PathLike[str]) -> Checkpoint:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "__meta__" not in npz.files:
                raise CheckpointError(f"{path}: not a scxd checkpoint (no metadata)")
            meta = json.loads(npz["__meta__"].tobytes().decode())
            arrays = {k: npz[k] for k in npz.files if k != "__meta__"}
    except CheckpointError:
        raise
    except (OSError, ValueError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable checkpoint ({exc})") from None
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: format {meta.get('format')!r} v"
                              f"{meta.get('format_version')}, expected {FORMAT} "
                              f"v{FORMAT_VERSION}")
    return Checkpoint(meta, arrays)


def check(ckpt: Checkpoint, policy: str, schema: str, schema_version: int,
          policy_version: str | None = None) -> str:
    """'' when the checkpoint fits, else the reason it cannot be used: another policy,
    other features, or (when ``policy_version`` is given) another version of the policy."""
    m = ckpt.meta
    if m.get("policy") != policy:
        return f"it belongs to policy {m.get('policy')!r}, not {policy!r}"
    if (m.get("feature_schema"), m.get("feature_version")) != (schema, schema_version):
        return (f"its features are {m.get('feature_schema')} v{m.get('feature_version')}, "
                f"this scxd's are {schema} v{schema_version}")
    made_by = m.get("policy_version", policy_version)
    if policy_version is not None and made_by != policy_version:
        return f"made by {made_by}, this is {policy_version}"
    return ""
