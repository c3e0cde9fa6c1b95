"""Benchmark output → metrics: llama-bench's four formats (real layouts, tests/data/
llama_bench), perf/hackbench/stress-ng/cyclictest, json: and regex:, and one real run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from scxd import benchparse
from scxd.tune.benchmark import (
    PARSERS,
    Benchmark,
    BenchmarkError,
    flatten_json,
    get_parser,
    guess_parser,
)

LLAMA = Path(__file__).parent / "data" / "llama_bench"


# -- llama-bench --------------------------------------------------------------------------------
def test_llama_bench_markdown_with_depth():
    res = benchparse.llama_bench_md((LLAMA / "depth.md").read_text())
    assert [r.test for r in res] == ["pp512", "tg128", "pp512@d512", "tg128@d512"]
    assert res[0].avg_ts == pytest.approx(7340.20) and res[0].stddev_ts == pytest.approx(23.45)
    assert res[3].avg_ts == pytest.approx(116.71) and res[3].stddev_ts == pytest.approx(0.60)
    assert res[0].model == "qwen2 7B Q4_K - Medium"


def test_llama_bench_markdown_old_layout_names_tests_the_same_way():
    res = benchparse.llama_bench_md((LLAMA / "old.md").read_text())
    assert [(r.test, r.avg_ts, r.n_threads) for r in res] == [("pp64", 32.29, 8),
                                                              ("tg16", 16.71, 8)]


@pytest.mark.parametrize("name,reader", [("out.csv", benchparse.llama_bench_csv),
                                         ("out.json", benchparse.llama_bench_json),
                                         ("out.jsonl", benchparse.llama_bench_jsonl)])
def test_llama_bench_csv_json_jsonl(name, reader):
    res = reader((LLAMA / name).read_text())
    assert [r.test for r in res] == ["pp512", "tg128"]
    assert res[0].model == "qwen2 7B Q4_K - Medium" and res[0].n_threads == 8
    assert res[1].avg_ts > 100 and res[1].stddev_ts < 5
    if name != "out.csv":      # json and jsonl carry each repetition
        assert len(res[0].samples_ts) == 5
        assert sum(res[0].samples_ts) / 5 == pytest.approx(res[0].avg_ts, rel=1e-3)


@pytest.mark.parametrize("name", ["depth.md", "old.md", "out.csv", "out.json", "out.jsonl"])
def test_llama_bench_format_is_detected(name):
    text = (LLAMA / name).read_text()
    assert benchparse.llama_bench(text), name
    # log lines around the result (as with 2>&1) do not confuse detection
    noisy = "llama_model_loader: loaded meta data\nmain: warning: debug build\n" + text + \
        "\nllama_perf_context_print: total time\n"
    assert [r.test for r in benchparse.llama_bench(noisy)] == \
        [r.test for r in benchparse.llama_bench(text)]


def test_llama_test_names_follow_llama_bench():
    assert benchparse.llama_test_name(512, 0) == "pp512"
    assert benchparse.llama_test_name(0, 128) == "tg128"
    assert benchparse.llama_test_name(512, 128) == "pp512+tg128"
    assert benchparse.llama_test_name(512, 0, 4096) == "pp512@d4096"


def test_llama_bench_parser_metrics_and_directions():
    p = PARSERS["llama-bench"]
    m = p.extract((LLAMA / "out.json").read_text(), "")
    assert m["pp512"] == pytest.approx(7100.002165) and m["tg128_stddev"] == \
        pytest.approx(1.041811)
    assert m["pp"] == m["pp512"] and m["tg"] == m["tg128"]
    assert p.direction("tg128") is True and p.direction("tg128_stddev") is False
    with pytest.raises(BenchmarkError, match="give --metric"):
        Benchmark("llama-bench -m model.gguf")          # which test? no default
    b = Benchmark("./llama-bench -m m.gguf -p 0 -n 128", metric="tg128")
    assert b.parser == "llama-bench" and b.higher_is_better


def test_llama_bench_duplicate_tests_are_refused():
    text = (LLAMA / "out.jsonl").read_text()
    with pytest.raises(BenchmarkError, match="more than once"):
        PARSERS["llama-bench"].extract(text + text, "")


# -- the other tools -----------------------------------------------------------------------------
PERF = """# Running 'sched/messaging' benchmark:
# 20 sender and receiver processes per group
# 2 groups == 80 processes run

     Total time: 0.067 [sec]
"""
STRESS = """stress-ng: info:  [20164] dispatching hogs: 1 cpu
stress-ng: metrc: [20164] stressor       bogo ops real time  usr time  sys time   bogo ops/s     bogo ops/s
stress-ng: metrc: [20164]                           (secs)    (secs)    (secs)   (real time) (usr+sys time)
stress-ng: metrc: [20164] cpu                 932      1.00      0.91      0.00       931.56        1015.07
stress-ng: info:  [20164] successful run completed in 1.00s
"""


def test_perf_hackbench_stress_ng_cyclictest():
    assert PARSERS["perf-messaging"].extract(PERF, "") == {"total_time_s": 0.067}
    assert PARSERS["hackbench"].extract("Running in process mode\nTime: 0.448\n", "") == \
        {"time_s": 0.448}
    m = PARSERS["stress-ng"].extract("", STRESS)           # stress-ng reports on stderr
    assert m["cpu_bogo_ops_per_s"] == m["bogo_ops_per_s"] == 931.56
    assert m["bogo_ops_per_cpu_s"] == pytest.approx(932 / 0.91)
    cyc = "T: 0 ( 1234) P: 0 I:2000 C:   4999 Min:  12 Act:  40 Avg:  61 Max:  912\n"
    assert PARSERS["cyclictest"].extract(cyc, "") == {"avg_us": 61.0, "max_us": 912.0}
    pipe = "     Total time: 0.024 [sec]\n\n       4.888700 usecs/op\n         204553 ops/sec\n"
    m = PARSERS["perf-pipe"].extract(pipe, "")
    assert m["usecs_per_op"] == 4.8887 and m["ops_per_sec"] == pytest.approx(1e6 / 4.8887)


def test_guessing_the_parser_from_the_command():
    assert guess_parser("perf bench sched messaging -g 2 -l 50") == "perf-messaging"
    assert guess_parser("taskset -c 0,1 /usr/bin/hackbench -g 4") == "hackbench"
    assert guess_parser("stress-ng --cpu 2 --metrics-brief -t 5") == "stress-ng"
    assert guess_parser("./build/bin/llama-bench -m x.gguf") == "llama-bench"
    assert guess_parser("make -j2") is None
    with pytest.raises(BenchmarkError, match="give --parser"):
        Benchmark("make -j2")


def test_json_and_regex_parsers(tmp_path):
    doc = {"results": [{"tps": 12.5, "ok": True}], "latency": {"p99_ms": 3}}
    assert flatten_json(doc) == {"results.0.tps": 12.5, "latency.p99_ms": 3.0}
    path = tmp_path / "r.json"
    path.write_text(json.dumps(doc))
    assert get_parser(f"json:{path}").extract("", "")["results.0.tps"] == 12.5
    assert get_parser("json:-").extract(json.dumps(doc), "")["latency.p99_ms"] == 3.0
    rx = get_parser(r"regex:fps=(?P<fps>[\d.]+)")
    assert rx.extract("fps=60\nfps=50\n", "") == {"fps": 55.0}      # matches are averaged
    assert get_parser(r"regex:took ([\d.]+) s").extract("", "took 2.5 s") == {"value": 2.5}
    with pytest.raises(BenchmarkError, match="capture group"):
        get_parser("regex:no group")
    with pytest.raises(BenchmarkError, match="maximize or --minimize"):
        Benchmark("game --bench", parser="regex:fps=(?P<fps>[\\d.]+)", metric="fps")
    with pytest.raises(BenchmarkError, match="unknown parser"):
        get_parser("xml")


def test_a_run_reports_failures_with_their_reason(tmp_path):
    ok = Benchmark(f"{sys.executable} -c \"print('Time: 0.25')\"", parser="hackbench")
    r = ok.run()
    assert r.ok and r.value == 0.25 and r.returncode == 0
    bad = Benchmark("echo oops >&2; exit 3", parser="hackbench")
    r = bad.run()
    assert not r.ok and r.state == "failed" and "exit code 3" in r.error
    assert "oops" in r.stderr_tail
    wrong = Benchmark("echo 'Time: 1'", parser="perf-messaging")
    r = wrong.run()
    assert r.state == "parse_failed" and "total_time_s" in r.error and "nothing" in r.error
    slow = Benchmark("sleep 30; echo 'Time: 1'", parser="hackbench", timeout=0.5)
    r = slow.run()
    assert r.state == "timeout" and r.seconds < 5


def test_a_stale_json_result_is_never_read(tmp_path):
    path = tmp_path / "out.json"
    path.write_text('{"score": 99}')
    b = Benchmark("true", parser=f"json:{path}", metric="score", higher_is_better=True)
    r = b.run()     # the benchmark wrote nothing this time
    assert not r.ok and "wrote no readable file" in r.error


def test_real_perf_bench_messaging():
    """The real tool, a small slice: perf's output parses into the metric."""
    b = Benchmark("perf bench sched messaging -g 1 -l 20")
    assert (b.parser, b.metric, b.higher_is_better) == ("perf-messaging", "total_time_s", False)
    r = b.run()
    assert r.ok, r.error + r.stdout_tail + r.stderr_tail
    assert 0 < r.value < 10
