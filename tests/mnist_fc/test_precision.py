"""The precision probe: decisions forced through an injected timer (no wall-time assertions), cache behaviour."""

from __future__ import annotations

import json

import pytest
import torch

from mnist_fc import precision as P

CPU = torch.device("cpu")
ARTICLE = [(50_000, 784, 100)]


def fixed_timer(fp32: float, bf16: float, calls: list | None = None) -> P.Timer:
    def timer(dtype: str, which: str, rows: int, fan_in: int, fan_out: int) -> float:
        if calls is not None:
            calls.append((dtype, which, rows, fan_in, fan_out))
        return fp32 if dtype == "fp32" else bf16

    return timer


@pytest.mark.parametrize(
    ("fp32", "bf16", "allow", "expected"),
    [
        (3.0, 1.0, True, "bf16"),  # bf16 3x faster (this EPYC, AMX Xeons)
        (1.0, 1.4, True, "fp32"),  # bf16 slower (the Xeon without AMX: 0.71x)
        (1.05, 1.0, True, "fp32"),  # faster but under the 1.1x margin
        (3.0, 1.0, False, "fp32"),  # faster but the parity check forbids it
    ],
)
def test_forced_outcomes(tmp_path, fp32, bf16, allow, expected):
    c = P.choose_precision(CPU, ARTICLE, allow_bf16=allow, cache_dir=tmp_path, timer=fixed_timer(fp32, bf16))
    assert c.precision == expected
    assert c.speedup == pytest.approx(fp32 / bf16)
    assert not c.cache_hit
    assert "auto:" in c.header() and c.precision in c.header()
    json.dumps(c.summary())  # storable with a trial


def test_probe_times_forward_and_weight_gradient_with_capped_rows(tmp_path):
    calls: list = []
    c = P.choose_precision(CPU, ARTICLE, allow_bf16=True, cache_dir=tmp_path, timer=fixed_timer(2, 1, calls))
    one_round = [(d, w, P.MAX_PROBE_ROWS, 784, 100) for d in ("fp32", "bf16") for w in ("forward", "wgrad")]
    assert calls == one_round * P.PROBE_ROUNDS  # fp32 and bf16 alternate round by round
    (s,) = c.shapes
    assert (s.rows, s.probe_rows) == (50_000, P.MAX_PROBE_ROWS)
    assert s.fp32_gflops == pytest.approx(2 * 2 * P.MAX_PROBE_ROWS * 784 * 100 / 4 / 1e9)


def test_cache_hit_skips_the_probe_and_keeps_figures(tmp_path):
    first = P.choose_precision(CPU, ARTICLE, allow_bf16=True, cache_dir=tmp_path, timer=fixed_timer(3, 1))
    calls: list = []
    again = P.choose_precision(CPU, ARTICLE, allow_bf16=True, cache_dir=tmp_path, timer=fixed_timer(1, 3, calls))
    assert calls == [] and again.cache_hit and again.seconds == 0.0
    assert again.precision == first.precision == "bf16"
    assert again.shapes[0].fp32_seconds == first.shapes[0].fp32_seconds
    # the parity flag is applied to cached figures: no re-probe needed to turn bf16 off
    assert (
        P.choose_precision(CPU, ARTICLE, allow_bf16=False, cache_dir=tmp_path, timer=fixed_timer(1, 3, calls)).precision
        == "fp32"
    )
    assert calls == []


def test_cache_miss_for_a_new_shape_or_thread_count(tmp_path):
    P.choose_precision(CPU, ARTICLE, allow_bf16=True, cache_dir=tmp_path, timer=fixed_timer(3, 1))
    calls: list = []
    c = P.choose_precision(CPU, [(1000, 784, 32)], allow_bf16=True, cache_dir=tmp_path, timer=fixed_timer(1, 3, calls))
    assert calls and not c.cache_hit and c.precision == "fp32"
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(threads + 1)
        calls.clear()
        P.choose_precision(CPU, ARTICLE, allow_bf16=True, cache_dir=tmp_path, timer=fixed_timer(3, 1, calls))
        assert calls  # a different thread count is a different machine for the GEMM
    finally:
        torch.set_num_threads(threads)
    entries = json.loads((tmp_path / P.CACHE_FILE).read_text())["entries"]
    assert len(entries) == 3


@pytest.mark.parametrize(
    "content", ["{not json", '{"entries": [1, 2]}', "[]", '{"entries": {"k": {"fp32_seconds": -1}}}']
)
def test_corrupt_cache_is_ignored_and_rewritten(tmp_path, content):
    path = tmp_path / P.CACHE_FILE
    path.write_text(content)
    calls: list = []
    c = P.choose_precision(CPU, ARTICLE, allow_bf16=True, cache_dir=tmp_path, timer=fixed_timer(3, 1, calls))
    assert calls and c.precision == "bf16" and c.cache_path == str(path)
    entries = json.loads(path.read_text())["entries"]
    assert [json.loads(k)["shape"] for k in entries if json.loads(k).get("shape")] == [[50_000, 784, 100]]
    assert not list(tmp_path.glob(".precision_probe.*"))  # no temp file left behind


def test_env_override_and_unwritable_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(P.CACHE_ENV, str(tmp_path / "env"))
    c = P.choose_precision(CPU, ARTICLE, allow_bf16=True, timer=fixed_timer(3, 1))
    assert c.cache_path == str(tmp_path / "env" / P.CACHE_FILE)
    blocker = tmp_path / "file"
    blocker.write_text("")  # a file where the cache folder should be: cannot cache, must still decide
    c = P.choose_precision(CPU, ARTICLE, allow_bf16=True, cache_dir=blocker / "sub", timer=fixed_timer(3, 1))
    assert c.precision == "bf16" and c.cache_path is None


def test_key_names_machine_torch_device_threads_shape():
    key = json.loads(P.machine_key(CPU, (1000, 784, 100)))
    assert key["device_name"] == P.device_name(CPU) and key["device_name"]
    assert key["torch"] == torch.__version__ and key["device_type"] == "cpu"
    assert key["threads"] == torch.get_num_threads() and key["shape"] == [1000, 784, 100]


def test_real_timer_measures_small_shapes(tmp_path):
    """The wall-clock timer on tiny GEMMs: positive figures, cached; which precision wins is not asserted."""
    c = P.choose_precision(CPU, [(256, 784, 16)], allow_bf16=True, cache_dir=tmp_path)
    (s,) = c.shapes
    assert all(t > 0 for t in (s.fp32_seconds, s.bf16_seconds))  # timed, no bound
    assert c.precision in ("fp32", "bf16")
    assert P.choose_precision(CPU, [(256, 784, 16)], allow_bf16=True, cache_dir=tmp_path).cache_hit


def test_no_shapes_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="at least one"):
        P.choose_precision(CPU, [], allow_bf16=True, cache_dir=tmp_path)


def test_parallel_workers_probe_once(tmp_path):
    """Two workers asking at once: the lock makes one probe and the other read its figures."""
    import threading

    calls: list = []
    results: list = []

    def worker() -> None:
        results.append(
            P.choose_precision(CPU, ARTICLE, allow_bf16=True, cache_dir=tmp_path, timer=fixed_timer(3, 1, calls))
        )

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 4 * P.PROBE_ROUNDS  # 2 dtypes x (forward, wgrad) x rounds, by one worker only
    assert sorted(r.cache_hit for r in results) == [False, True]


def test_a_load_burst_in_one_round_does_not_decide(tmp_path):
    """Rounds alternate fp32 and bf16 and each keeps its fastest: a burst that slows one round of bf16
    (load only ever adds time) does not flip the choice."""
    bf16_rounds = iter([10.0, 10.0, 1.0, 1.0])  # forward + wgrad of round 1 hit by load, round 2 clean

    def timer(dtype: str, which: str, rows: int, fan_in: int, fan_out: int) -> float:
        return 3.0 if dtype == "fp32" else next(bf16_rounds)

    c = P.choose_precision(CPU, ARTICLE, allow_bf16=True, cache_dir=tmp_path, timer=timer)
    assert c.precision == "bf16" and c.speedup == pytest.approx(3.0)


def test_the_probe_cache_follows_xdg_cache_home_like_the_csv_cache(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv(P.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert P.cache_dir_default() == tmp_path / "xdg" / "mnist-study"
    monkeypatch.setenv(P.CACHE_ENV, str(tmp_path / "own"))
    assert P.cache_dir_default() == tmp_path / "own"
