"""The README's Python tuning example runs as written — against the fake sched_ext kernel.

The example uses scxd's default settings, so the test points them at the fake kernel and a
fake scx_bpfland through the environment (``SCXD_HOST_ROOT``, ``SCXD_ACTUATOR__…``) — the
same way a user on a real sched_ext machine changes nothing at all.  The benchmark is the
real ``perf bench sched messaging`` (the fake scheduler cannot change its result; the
test checks the machinery, not the figure).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.fakes import FakeKernel, fake_processes, install_fake, wait_for

REPO = Path(__file__).resolve().parents[1]
BPFLAND_HELP = ("--slice-us --slice-min-us --slice-us-lag --throttle-us --idle-resume-us "
                "--local-pcpu --local-kthreads --no-wake-sync --sticky-tasks --primary-domain "
                "--preferred-idle-scan --disable-smt --disable-numa --cpufreq --help")


def readme_example() -> str:
    text = (REPO / "README.md").read_text()
    block = text.split("<!-- tune-example:begin -->", 1)[1].split(
        "<!-- tune-example:end -->", 1)[0]
    return block.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_example_runs_against_the_fake_kernel(tmp_path):
    code = readme_example()
    assert "optimize_scheduler(" in code
    with FakeKernel(tmp_path / "host") as kernel:
        install_fake(tmp_path / "bin", "scx_bpfland", kernel.root, "bpfland",
                     supports=BPFLAND_HELP)
        env = {**os.environ, "PYTHONPATH": str(REPO), "SCXD_HOST_ROOT": str(kernel.root),
               "SCXD_ACTUATOR__SEARCH_PATH": json.dumps([str(tmp_path / "bin")]),
               "SCXD_ACTUATOR__STOP_TIMEOUT": "0.5",
               "SCXD_CONTROL__SOCKET": str(tmp_path / "no-daemon.sock")}
        res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
        assert res.stdout.startswith("complete {"), res.stdout
        assert "vs fair:" in res.stdout and "vs defaults:" in res.stdout
        out = tmp_path / "tune-bpfland"
        best = json.loads((out / "best_parameters.json").read_text())
        assert best["scheduler"] == "scx_bpfland"
        assert 500 <= best["parameters"]["slice_us"] <= 20_000
        assert kernel.state == "disabled"
        assert wait_for(lambda: not fake_processes(kernel.root), 5.0)
