"""The REST API under hostile load (issue 21): a real uvicorn server (``python -m core serve``) on a free localhost
port, three scenarios, each bounded in requests and seconds.

- **health under compute load**: after one small LIME (the model's one-time ONNX export), two long LIME calls
  (20,000 samples) hold both compute threads, then sixty cheap synchronous Grad-CAM calls queue behind them,
  while ``GET /health`` is probed every 0.2 s: its latency (median and worst), and what the compute calls got
  (200, 503 busy, 504 past the synchronous time limit).
- **large uploads**: sixteen concurrent ``POST /predict`` of one small PNG of 39.7 Mpixel (6300 x 6300, under the
  library's 40 Mpixel limit): the server's RSS before, at its peak (sampled every 50 ms) and 3 s after.
- **jobs kept**: up to 300 ``async=true`` Grad-CAM explanations with ``npy=true``, submitted as fast as the server
  answers: how many were accepted (202) and refused (429), and once they are done, the server's RSS and the bytes
  its job store holds on disk.

    python -m benchmarks --api-hostile
"""
from __future__ import annotations

import asyncio
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.common import env, rss_mib


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m core serve`` on a free port, with its jobs in a temporary folder."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.jobs_dir = Path(tempfile.mkdtemp(prefix="xai-bench-jobs-"))
        full = {k: v for k, v in os.environ.items() if k != "XAI_API_TOKEN"}
        full.update({"XAI_JOBS_DIR": str(self.jobs_dir), **(env or {})})
        self.proc = subprocess.Popen([sys.executable, "-m", "core", "serve", "--port", str(self.port)], env=full,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def __enter__(self) -> "Server":
        import httpx2

        deadline = time.time() + 90
        while True:
            try:
                if httpx2.get(f"{self.base}/health", timeout=2).status_code == 200:
                    return self
            except httpx2.HTTPError:
                pass
            if time.time() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the API server did not start")
            time.sleep(0.3)

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    @property
    def rss(self) -> float:
        return rss_mib(self.proc.pid)

    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.jobs_dir.rglob("*") if p.is_file())


def _png(model_id: str) -> bytes:
    from PIL import Image

    from core import load_dataset, load_model

    _, card = load_model(model_id)
    buf = io.BytesIO()
    Image.fromarray(load_dataset(card.dataset, split="test", size=card.input_size).image(0)).save(buf, format="PNG")
    return buf.getvalue()


def _big_png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    img = Image.new("RGB", (6300, 6300), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 16, 16))  # not one flat value
    img.save(buf, format="PNG", optimize=True, compress_level=9)
    return buf.getvalue()


async def _health_under_load(srv: Server, model_id: str, png: bytes, seconds: float = 60.0) -> dict:
    import httpx2

    codes: dict[str, int] = {}
    health: list[float] = []
    files = {"image": ("x.png", png, "image/png")}
    async with httpx2.AsyncClient(base_url=srv.base, timeout=seconds + 30,
                                  limits=httpx2.Limits(max_connections=64)) as c:
        async def call(method: str, params: str) -> None:
            try:
                r = await c.post("/explain", data={"model": model_id, "methods": method, "params": params},
                                 files=files)
                key = str(r.status_code)
            except httpx2.HTTPError as exc:
                key = type(exc).__name__
            codes[key] = codes.get(key, 0) + 1

        # warm: the first LIME on a model exports it for ONNX Runtime (once per model and size), and that export
        # holds the interpreter for about a second; the load below measures the server after it
        await call("lime", '{"lime": {"num_samples": 50}}')
        codes.clear()
        tasks = [asyncio.create_task(call("lime", '{"lime": {"num_samples": 20000}}')) for _ in range(2)]
        await asyncio.sleep(1.0)  # the long calls hold both compute threads; then the cheap ones queue behind them
        tasks += [asyncio.create_task(call("grad_cam", "{}")) for _ in range(60)]
        await asyncio.sleep(0.5)
        stop = time.perf_counter() + seconds
        async with httpx2.AsyncClient(base_url=srv.base, timeout=seconds) as probe:
            while time.perf_counter() < stop and not all(t.done() for t in tasks):
                t0 = time.perf_counter()
                try:
                    await probe.get("/health")
                    health.append(time.perf_counter() - t0)
                except httpx2.HTTPError:
                    health.append(float("inf"))
                await asyncio.sleep(0.2)
        done, pending = await asyncio.wait(tasks, timeout=seconds)
        for t in pending:
            t.cancel()
    return {"health_p50_ms": statistics.median(health) * 1000, "health_max_ms": max(health) * 1000,
            "probes": len(health), "compute": codes}


def _large_uploads(srv: Server, model_id: str, big: bytes, n: int = 16) -> dict:
    import httpx2

    before = srv.rss
    peak = [before]
    running = threading.Event()
    running.set()

    def sample() -> None:
        while running.is_set():
            peak.append(srv.rss)
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()

    async def go() -> dict[str, int]:
        codes: dict[str, int] = {}
        async with httpx2.AsyncClient(base_url=srv.base, timeout=180, limits=httpx2.Limits(max_connections=n)) as c:
            async def one() -> None:
                try:
                    r = await c.post("/predict", data={"model": model_id},
                                     files={"image": ("big.png", big, "image/png")})
                    key = str(r.status_code)
                except httpx2.HTTPError as exc:
                    key = type(exc).__name__
                codes[key] = codes.get(key, 0) + 1

            await asyncio.gather(*(one() for _ in range(n)))
        return codes

    t0 = time.perf_counter()
    codes = asyncio.run(go())
    secs = time.perf_counter() - t0
    time.sleep(3)
    running.clear()
    sampler.join()
    return {"before": before, "peak": max(peak), "after": srv.rss, "codes": codes, "seconds": secs}


def _jobs_kept(srv: Server, model_id: str, png: bytes, n: int = 300, seconds: float = 90.0) -> dict:
    import httpx2

    before = srv.rss
    accepted, codes = [], {}
    stop = time.perf_counter() + seconds
    with httpx2.Client(base_url=srv.base, timeout=60) as c:
        for _ in range(n):
            if time.perf_counter() > stop:
                break
            r = c.post("/explain", data={"model": model_id, "methods": "grad_cam", "npy": "true", "async": "true"},
                       files={"image": ("x.png", png, "image/png")})
            codes[str(r.status_code)] = codes.get(str(r.status_code), 0) + 1
            if r.status_code == 202:
                accepted.append(r.json()["id"])
        kept = 0
        for job_id in accepted:
            while time.perf_counter() < stop:
                r = c.get(f"/jobs/{job_id}")
                if r.status_code != 200 or r.json()["state"] not in ("queued", "running"):
                    break
                time.sleep(0.1)
            kept += len(r.content) if r.status_code == 200 and r.json()["state"] == "done" else 0
    return {"before": before, "after": srv.rss, "codes": codes, "answer_bytes": kept, "disk": srv.disk_bytes()}


SCENARIOS = ("health", "uploads", "jobs")


def run(model_id: str, scenarios: tuple[str, ...] = SCENARIOS) -> str:
    png = _png(model_id)
    lines = []
    if "health" in scenarios:
        with Server() as srv:
            h = asyncio.run(_health_under_load(srv, model_id, png))
        worst = "no answer within 60 s" if h["health_max_ms"] == float("inf") else f"{h['health_max_ms']:.0f} ms"
        median = "no answer" if h["health_p50_ms"] == float("inf") else f"{h['health_p50_ms']:.0f} ms"
        lines.append(f"- `/health` while 2 LIME (20,000 samples) hold the compute threads and 60 Grad-CAM synchronous "
                     f"calls wait behind them: median {median}, worst {worst}, over {h['probes']} probes; the compute "
                     f"calls got {h['compute']}")
    if "uploads" in scenarios:
        big = _big_png()
        with Server() as srv:
            u = _large_uploads(srv, model_id, big)
        lines.append(f"- 16 concurrent `POST /predict` of a {len(big) / 1024:.0f} KiB PNG of 39.7 Mpixel: server RSS "
                     f"{u['before']:.0f} → peak {u['peak']:.0f} → {u['after']:.0f} MiB 3 s after "
                     f"({u['seconds']:.1f} s; answers {u['codes']})")
    if "jobs" in scenarios:
        with Server() as srv:
            j = _jobs_kept(srv, model_id, png)
        lines.append(f"- up to 300 `async=true` Grad-CAM jobs with `npy=true`: answers {j['codes']}; server RSS "
                     f"{j['before']:.0f} → {j['after']:.0f} MiB; {j['answer_bytes'] / 2**20:.1f} MiB of results "
                     f"answered, {j['disk'] / 2**20:.1f} MiB in the job store on disk")
    return f"**REST API under hostile load** ({model_id}); {env()}\n\n" + "\n".join(lines)


if __name__ == "__main__":
    print(run(sys.argv[1] if len(sys.argv) > 1 else "shapes-small_cnn",
              tuple(sys.argv[2].split(",")) if len(sys.argv) > 2 else SCENARIOS))
