"""`--precision auto` by measurement: time the trial's own first-layer GEMMs in fp32 and bf16, once per machine.

Why measure: which precision is faster is a property of the machine, not of the instruction set.
bf16 ran 0.71x fp32 on a Xeon without AMX, 2.4x on a Xeon with AMX and ~3x on this project's
AMD EPYC (Zen 4, avx512_bf16) for the article's 50,000x784 @ 784x100 product. The first layer
(forward x @ W^T and the weight gradient g^T @ x) is almost all of a full-batch epoch's work,
so timing exactly those two products, laid out as nn.Linear lays them out, answers the question.

The figures are cached in a JSON file (one entry per machine key and shape), so the probe runs
once per machine; the decision itself (margin, parity flag) is re-derived from the cached figures
on every call, so changing `allow_bf16` or `margin` never needs a re-probe.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

CACHE_ENV = "MNIST_STUDY_CACHE_DIR"  # overrides the cache folder (tests, read-only homes)
CACHE_FILE = "precision_probe.json"
CACHE_VERSION = (
    3  # bump when what is measured changes: old entries are then ignored (2: interleaved, min; 3: TF32 on CUDA)
)
MARGIN = 1.1  # bf16 must be at least this much faster: a tie is not worth bf16's rounding
MAX_PROBE_ROWS = 8_192  # GEMM rates stop depending on the row count well before this; keeps the probe short
PROBE_REPS = 3  # timed repetitions per GEMM after one warm-up call; the fastest is kept
# fp32 and bf16 are timed in alternation this many times and each keeps its fastest round: on a shared
# machine load only ever adds time, and a burst of it must not hit one precision only (measured here
# under load average ~6 on 2 cores: one uninterleaved median-of-3 probe said bf16 0.87x fp32, where
# the idle machine measures 2-3x).
PROBE_ROUNDS = 2

# A first-layer application: (rows, in_features, out_features), e.g. (50_000, 784, 100) for the article.
LayerShape = tuple[int, int, int]
# timer(dtype_name, which, rows, in_features, out_features) -> seconds for one GEMM; which = "forward" | "wgrad".
Timer = Callable[[str, str, int, int, int], float]


@dataclass(frozen=True)
class ShapeFigures:
    """Measured rates for one first-layer shape (forward + weight-gradient GEMM together)."""

    rows: int  # the trial's rows
    in_features: int
    out_features: int
    probe_rows: int  # rows actually timed (capped at MAX_PROBE_ROWS)
    fp32_seconds: float  # forward + wgrad at probe_rows
    bf16_seconds: float
    cache_hit: bool

    @property
    def flop(self) -> float:
        return 2 * 2.0 * self.probe_rows * self.in_features * self.out_features

    @property
    def fp32_gflops(self) -> float:
        return self.flop / self.fp32_seconds / 1e9

    @property
    def bf16_gflops(self) -> float:
        return self.flop / self.bf16_seconds / 1e9


@dataclass(frozen=True)
class PrecisionChoice:
    """What auto picked, why, and the probe's figures (stored with each trial, printed in the header)."""

    precision: str  # "fp32" or "bf16"
    reason: str
    speedup: float  # bf16 over fp32, summed over the probed shapes (> 1: bf16 faster)
    margin: float
    allow_bf16: bool
    device: str  # the machine key's device name (CPU model or GPU name)
    shapes: tuple[ShapeFigures, ...]
    seconds: float  # spent probing in this call (0 when every shape came from the cache)
    cache_hit: bool  # True when no shape needed probing
    cache_path: str | None  # None when the cache could not be used

    def summary(self) -> dict[str, Any]:
        """JSON-ready, flat enough for a trial's user attrs."""
        d = asdict(self)
        d["shapes"] = [{**asdict(s), "fp32_gflops": s.fp32_gflops, "bf16_gflops": s.bf16_gflops} for s in self.shapes]
        return d

    @classmethod
    def from_summary(cls, d: dict[str, Any]) -> PrecisionChoice:
        """The choice back from `summary()` (e.g. a trial's or a study's stored attribute)."""
        keep = {f.name for f in fields(ShapeFigures)}
        shapes = tuple(ShapeFigures(**{k: v for k, v in s.items() if k in keep}) for s in d.get("shapes", ()))
        return cls(**{**{k: d[k] for k in (f.name for f in fields(cls)) if k != "shapes"}, "shapes": shapes})

    def header(self) -> str:
        """One line for the run's header: 'precision bf16 (auto: bf16 3.1x fp32 ..., cached)'."""
        rates = ", ".join(
            f"{s.rows}x{s.in_features}x{s.out_features}: fp32 {s.fp32_gflops:.0f} / bf16 {s.bf16_gflops:.0f} GFLOP/s"
            for s in self.shapes
        )
        how = "cached" if self.cache_hit else f"probed in {self.seconds:.2f} s"
        return f"precision {self.precision} (auto: {self.reason}; {rates}; {how})"


def device_name(device: torch.device) -> str:
    """CPU model string from /proc/cpuinfo, or the CUDA device's name."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    import platform

    return platform.processor() or platform.machine() or "unknown cpu"


def cpu_flags() -> set[str]:
    """The CPU's feature flags (empty off Linux): the bench prints whether AMX / avx512_bf16 are there."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


def cache_dir_default() -> Path:
    """$MNIST_STUDY_CACHE_DIR, else the CSV cache's folder: $XDG_CACHE_HOME (or ~/.cache) / mnist-study."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mnist-study"


def machine_key(device: torch.device, shape: LayerShape) -> str:
    """Cache key: what makes the figures valid (machine, torch, device kind, threads, shape)."""
    threads = torch.get_num_threads() if device.type == "cpu" else None  # CPU threads don't drive a GPU GEMM
    parts = {
        "v": CACHE_VERSION,
        "device_name": device_name(device),
        "torch": torch.__version__,
        "device_type": device.type,
        "threads": threads,
        "shape": list(shape),
    }
    return json.dumps(parts, sort_keys=True)


def _read_cache(path: Path) -> dict[str, Any]:
    """The cache's entries; a missing, unreadable or corrupt file reads as empty (and is rewritten)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or not isinstance(data.get("entries"), dict):
        return {}
    return {k: e for k, e in data["entries"].items() if _valid_entry(e)}  # bad entries are dropped on rewrite


def _valid_entry(e: Any) -> bool:
    return (
        isinstance(e, dict)
        and all(isinstance(e.get(k), (int, float)) and e[k] > 0 for k in ("fp32_seconds", "bf16_seconds"))
        and isinstance(e.get("probe_rows"), int)
    )


def _write_cache(path: Path, entries: dict[str, Any]) -> bool:
    """Atomic write (temp file + rename in the same folder): readers never see half a file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".precision_probe.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"version": CACHE_VERSION, "entries": entries}, f, indent=1, sort_keys=True)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError:
        return False  # a read-only home must not stop a training run: the probe just isn't cached
    return True


@contextlib.contextmanager
def _probe_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock next to the cache file, so two workers never probe (and contend) at once.

    Best effort: without fcntl (Windows) or a writable folder, no lock.
    """
    try:
        import fcntl

        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(path.with_name(path.name + ".lock"), "a")
    except (ImportError, OSError):
        yield
        return
    with f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def _tf32_as_trained(device: torch.device) -> Iterator[None]:
    """fp32 timed as the loops run it: on CUDA with TF32 tensor cores (mnist_fc.runtime.run_settings turns
    them on for every run), so the probe compares bf16 with the fp32 that training would really get."""
    before = torch.backends.cuda.matmul.allow_tf32
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


def gemm_timer(device: torch.device, *, reps: int = PROBE_REPS) -> Timer:
    """The real timer: fastest of `reps` timings of one GEMM, operands laid out as nn.Linear's forward and
    backward use them."""
    cache: dict[tuple[str, int, int, int], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
    base: dict[tuple[int, int, int], tuple[torch.Tensor, ...]] = {}  # fp32 operands, drawn once, cast for bf16

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def timer(dtype_name: str, which: str, rows: int, fan_in: int, fan_out: int) -> float:
        dtype = torch.bfloat16 if dtype_name == "bf16" else torch.float32
        key = (dtype_name, rows, fan_in, fan_out)
        if key not in cache:
            shape = (rows, fan_in, fan_out)
            if shape not in base:
                base.clear()  # one shape's operands at a time
                cache.clear()
                g = torch.Generator(device=device).manual_seed(0)
                base[shape] = tuple(
                    torch.rand(*s, generator=g, device=device) - 0.5
                    for s in ((rows, fan_in), (fan_out, fan_in), (rows, fan_out))
                )
            cache[key] = tuple(t.to(dtype) for t in base[shape])  # type: ignore[assignment]
        x, w, grad = cache[key]
        op = (lambda: x @ w.t()) if which == "forward" else (lambda: grad.t() @ x)  # y = x W^T;  dW = g^T x
        with torch.no_grad(), _tf32_as_trained(device):
            op()  # warm-up: thread pool, packing buffers, kernel selection
            sync()
            times = []
            for _ in range(reps):
                t = time.perf_counter()
                op()
                sync()
                times.append(time.perf_counter() - t)
        return min(times)

    return timer


def first_layer_shapes(rows: int, in_features: int, *widths: int) -> list[LayerShape]:
    """The shapes a trial (or a batch of trials, widths concatenated) sends through the probe."""
    return [(rows, in_features, sum(widths))]


def choose_precision(
    device: torch.device,
    shapes: Sequence[LayerShape],
    *,
    allow_bf16: bool,
    cache_dir: Path | None = None,
    margin: float = MARGIN,
    timer: Timer | None = None,
    max_rows: int = MAX_PROBE_ROWS,
) -> PrecisionChoice:
    """Pick fp32 or bf16 for `shapes` on `device` by timing them (or reading earlier timings).

    bf16 only when it is at least `margin` times faster over all shapes together AND `allow_bf16`
    (the caller's parity verdict for its study). On CUDA without bf16 support: fp32, no probe.
    `timer` replaces the wall-clock GEMM timer (tests force outcomes with it).
    """
    if not shapes:
        raise ValueError("choose_precision needs at least one layer shape")
    name = device_name(device)
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return PrecisionChoice("fp32", "GPU has no bf16", 1.0, margin, allow_bf16, name, (), 0.0, True, None)
    path = (cache_dir if cache_dir is not None else cache_dir_default()) / CACHE_FILE
    with _probe_lock(path):  # parallel workers: one probes, the others then read its figures
        return _choose(device, shapes, path, name, allow_bf16, margin, timer, max_rows)


def _choose(
    device: torch.device,
    shapes: Sequence[LayerShape],
    path: Path,
    name: str,
    allow_bf16: bool,
    margin: float,
    timer: Timer | None,
    max_rows: int,
) -> PrecisionChoice:
    entries = _read_cache(path)
    time_one = timer or gemm_timer(device)
    figures: list[ShapeFigures] = []
    spent = 0.0
    dirty = False
    for shape in shapes:
        rows, fan_in, fan_out = (int(v) for v in shape)
        key = machine_key(device, (rows, fan_in, fan_out))
        entry = entries.get(key)
        hit = _valid_entry(entry)
        if not hit:
            probe_rows = min(rows, max_rows)
            t0 = time.perf_counter()
            best: dict[tuple[str, str], float] = {}
            for _ in range(PROBE_ROUNDS):  # interleaved: fp32, bf16, fp32, bf16, ...
                for p in ("fp32", "bf16"):
                    for which in ("forward", "wgrad"):
                        t = time_one(p, which, probe_rows, fan_in, fan_out)
                        best[p, which] = min(t, best.get((p, which), t))
            sec = {p: best[p, "forward"] + best[p, "wgrad"] for p in ("fp32", "bf16")}
            spent += time.perf_counter() - t0
            entry = {"probe_rows": probe_rows, "fp32_seconds": sec["fp32"], "bf16_seconds": sec["bf16"]}
            entries[key] = entry
            dirty = True
        assert entry is not None
        figures.append(
            ShapeFigures(rows, fan_in, fan_out, entry["probe_rows"], entry["fp32_seconds"], entry["bf16_seconds"], hit)
        )
    cached = _write_cache(path, entries) if dirty else True
    speedup = sum(f.fp32_seconds for f in figures) / sum(f.bf16_seconds for f in figures)
    if not allow_bf16:
        precision, reason = "fp32", f"bf16 {speedup:.2f}x fp32 but not allowed by the parity check"
    elif speedup >= margin:
        precision, reason = "bf16", f"bf16 {speedup:.2f}x fp32 >= {margin:g}x"
    else:
        precision, reason = "fp32", f"bf16 {speedup:.2f}x fp32 < {margin:g}x"
    return PrecisionChoice(
        precision=precision,
        reason=reason,
        speedup=speedup,
        margin=margin,
        allow_bf16=allow_bf16,
        device=name,
        shapes=tuple(figures),
        seconds=spent,
        cache_hit=not dirty,
        cache_path=str(path) if cached else None,
    )
