"""The unit under a real systemd: Debian 12 with systemd as PID 1 on the sched_ext test-bed
kernel, scxd installed with the README's steps (scxd/testbed/systemd_guest.py).

One boot runs every check (guest/systemd_check.py); each test below asserts one of them.
The root file system is built once and cached (scxd/testbed/rootfs.py).  When it cannot be
built or booted these tests skip with the reason — under CI=true that is a failure.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tests.conftest import skip_or_fail

pytestmark = [pytest.mark.testbed, pytest.mark.timeout(5400)]

GUEST = Path(__file__).resolve().parents[1] / "scxd/testbed/guest/systemd_check.py"


def guest_checks() -> tuple[str, ...]:
    """The checks the guest script declares (it runs in the guest; here it is only read)."""
    spec = importlib.util.spec_from_file_location("systemd_check", GUEST)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CHECKS


@pytest.fixture(scope="session")
def systemd_run(tmp_path_factory):
    from scxd.testbed import build as tb
    from scxd.testbed.rootfs import build_rootfs
    from scxd.testbed.systemd_guest import run_systemd

    try:
        art = tb.build(quiet=True)
        rfs = build_rootfs(quiet=True)
    except (tb.BuildError, OSError) as exc:
        skip_or_fail(f"the systemd test bed cannot be built: {exc}")
    run = run_systemd(art, rfs, tmp_path_factory.mktemp("systemd"))
    if run.problem():
        pytest.fail(run.problem(), pytrace=False)
    checks = {c["check"]: c for c in run.checks}
    assert set(checks) <= set(guest_checks()), "every emitted check is declared"
    return checks


@pytest.mark.parametrize("name", guest_checks())
def test_systemd_check(systemd_run, name):
    assert name in systemd_run, f"the guest never got to {name!r}: {sorted(systemd_run)}"
    c = systemd_run[name]
    assert c["ok"], f"{name}: {json.dumps(c['got'])[:2000]}"
