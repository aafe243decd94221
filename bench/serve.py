"""Load-test the chat server: N concurrent clients on loopback for a fixed time.

Starts the server (textrnn.serve) in a subprocess on 127.0.0.1, port 0, then runs
``--clients`` async clients that each send requests back to back for ``--seconds``,
and prints requests/s, p50/p99 latency and the error count. The clients and the
server share the machine's cores, so on a small machine the numbers are a floor.

    python bench/serve.py                          # trains a tiny model first (~10 s)
    python bench/serve.py --checkpoint runs/qa/best.pt --clients 50 --seconds 10
    python bench/serve.py --route session          # chat sessions: statements + questions

``--runtime both`` serves the same model twice, through PyTorch and through ONNX Runtime
(``textrnn export`` first; needs the onnx extra), and prints the onnx/torch requests/s
ratio (issue 24's target: >= 1.5x at an equal or lower p99).

``--route session`` runs twice, sessions in memory (``:memory:``) then in a SQLite file
(what ``textrnn serve`` does by default), and prints the SQLite/memory requests/s ratio.

Every server compared is started first, then each is loaded in turn, ``--rounds`` times
(A, B, A, B: ``--seconds`` in all each), so that a change in the machine's load falls on
all of them alike; the figures are over all rounds, each round's requests/s beside them.

``--hostile`` runs clean rounds and rounds in which 1 request in 10 (at least) is hostile
(:mod:`bench/hostile.py`: chunked and declared oversize bodies, short and slow bodies,
slowloris headers, bad JSON, lone surrogates, NaN, huge fields, 20,000 sentences, deep
nesting, not HTTP at all; each on its own connection, from concurrent clients), in turn
on one server, and prints the good requests' p99 in both (issue 22's target: within 2x),
how each hostile request was answered, and the server's RSS (start, peaks, end).

With ``--client wrk`` (the default for the stateless route when Debian's ``wrk`` is
installed: ``apt-get install wrk``) the load comes from wrk, a C load generator, so
the clients take far less of the shared CPU than Python clients do, and the figures
say more about the server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx2

STORY = ["Mary moved to the bathroom.", "John went to the hallway.", "Mary went to the garden."]

# Runs in the server's process: serve, print the URL, stop when stdin closes.
# argv: checkpoint (or .onnx file), sessions (a SQLite file or :memory:), runtime, limits (JSON).
SERVER = """
import json, sys, torch
torch.set_num_threads(1)
from textrnn.chat import Answerer
from textrnn.serve import background_server, create_app
from textrnn.serve import freeze_startup_heap
if sys.argv[3] == "onnx":
    from textrnn import runtime
    answerer = runtime.load(sys.argv[1], task="qa")
else:
    answerer = Answerer.from_checkpoint(sys.argv[1])
app = create_app(answerer, sessions=sys.argv[2], **json.loads(sys.argv[4]))
freeze_startup_heap()  # as run_server does
with background_server(app, log_level="error") as url:  # hostile requests are expected
    print(url, flush=True)
    sys.stdin.read()
"""


def tiny_checkpoint(root: Path) -> str:
    """Train a small 'where' model (a few seconds) and return its best.pt."""
    import torch

    from textrnn.cli import main
    from textrnn.data.babi_gen import write_generated

    torch.set_num_threads(1)
    write_generated(root / "data", 2000, 100, seed=0, kinds=(1,))
    main(["train", "qa", "--data", str(root / "data"), "--out", str(root / "run"),
          "--epochs", "1", "--threads", "1"])
    return str(root / "run" / "best.pt")


async def client(http: httpx2.AsyncClient, route: str, stop_at: float, latencies: list[float],
                 errors: list[str]) -> None:
    """Send requests back to back until ``stop_at``; record each latency or error."""
    session = None
    if route == "session":
        session = (await http.post("/api/sessions")).json()["id"]
    i = 0
    while time.perf_counter() < stop_at:
        if route == "answer":
            request = ("/api/answer", {"story": STORY, "question": "Where is Mary?"})
        else:  # two statements, then a question, then again
            text = "Where is Mary?" if i % 3 == 2 else STORY[i % len(STORY)]
            request = (f"/api/sessions/{session}/messages", {"text": text})
        start = time.perf_counter()
        try:
            response = await http.post(request[0], json=request[1])
            if response.status_code != 200:
                errors.append(f"HTTP {response.status_code}")
            else:
                latencies.append(time.perf_counter() - start)
        except httpx2.HTTPError as error:
            errors.append(type(error).__name__)
        i += 1


async def load(url: str, clients: int, seconds: float, route: str) -> tuple[list, list, float]:
    latencies: list[float] = []
    errors: list[str] = []
    limits = httpx2.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx2.AsyncClient(base_url=url, limits=limits, timeout=30) as http:
        await http.get("/api/health")  # warm up
        start = time.perf_counter()
        await asyncio.gather(*[client(http, route, start + seconds, latencies, errors)
                               for _ in range(clients)])
        elapsed = time.perf_counter() - start
    return latencies, errors, elapsed


WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
"""


# Sessions: each request goes to the next of the pre-made sessions, cycling through two
# statements and a question, as a person chatting would.
WRK_SESSION_SCRIPT = """
local ids = {{{ids}}}
local texts = {{{texts}}}
local n = 0
request = function()
    n = n + 1
    local path = "/api/sessions/" .. ids[(n % #ids) + 1] .. "/messages"
    local body = '{{"text": "' .. texts[(n % #texts) + 1] .. '"}}'
    return wrk.format("POST", path, {{["Content-Type"] = "application/json"}}, body)
end
"""


def load_wrk(url: str, clients: int, seconds: float, tmp: Path, route: str) -> dict:
    """Run wrk against a route; returns requests/s, p50/p99 ms and the error count."""
    script = tmp / "load.lua"
    if route == "answer":
        body = json.dumps({"story": STORY, "question": "Where is Mary?"})
        script.write_text(WRK_SCRIPT.format(body=body))
        target = f"{url}/api/answer"
    else:
        import httpx2

        ids = [httpx2.post(f"{url}/api/sessions").json()["id"] for _ in range(clients)]
        texts = [STORY[0], STORY[1], "Where is Mary?"]
        script.write_text(WRK_SESSION_SCRIPT.format(
            ids=", ".join(f'"{i}"' for i in ids), texts=", ".join(f'"{t}"' for t in texts)))
        target = url
    out = subprocess.run(
        ["wrk", "-t1", f"-c{clients}", f"-d{seconds:g}s", "--latency", "-s", str(script),
         target], capture_output=True, text=True, check=True).stdout

    def ms(label: str) -> float:
        value, unit = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       out)
    errors = (int(non_2xx.group(1)) if non_2xx else 0) + (
        sum(map(int, socket.groups())) if socket else 0)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    return {"rps": rps, "p50": ms("50%"), "p99": ms("99%"), "errors": errors}


def summarize(latencies: list[float], errors: list[str], elapsed: float) -> dict:
    """The Python clients' figures in :func:`load_wrk`'s form, plus ok, max, mean and kinds."""
    latencies = sorted(latencies)
    p = lambda q: 1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))]  # noqa: E731
    return {"rps": len(latencies) / elapsed, "errors": len(errors), "kinds": sorted(set(errors)),
            "ok": len(latencies), "seconds": elapsed,
            **({"p50": p(0.5), "p99": p(0.99), "max": 1000 * latencies[-1],
                "mean": 1000 * statistics.fmean(latencies)} if latencies else {})}


@contextlib.contextmanager
def server(checkpoint: str, sessions: str, runtime: str = "torch",
           limits: dict | None = None) -> Iterator[tuple[str, int]]:
    """A server keeping its sessions in ``sessions``, in a subprocess; yields its URL and
    process id. ``limits``: :class:`textrnn.serve.Limits` fields."""
    process = subprocess.Popen([sys.executable, "-c", SERVER, checkpoint, sessions, runtime,
                                json.dumps(limits or {})],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        url = process.stdout.readline().strip()
        if not url:
            raise SystemExit("the server did not start")
        yield url, process.pid
    finally:
        process.stdin.close()
        process.wait(timeout=30)


def measure(url: str, seconds: float, args: argparse.Namespace, tmp: Path,
            use_wrk: bool) -> dict:
    """Load the server at ``url`` for ``seconds``; its figures."""
    if use_wrk:
        return {**load_wrk(url, args.clients, seconds, tmp, args.route), "seconds": seconds}
    return summarize(*asyncio.run(load(url, args.clients, seconds, args.route)))


def combine(runs: list[dict]) -> dict:
    """One figure from several rounds: requests/s over all of them, the mean p50 and p99
    (wrk gives percentiles, not latencies to pool), every error, and each round's rate."""
    seconds = sum(r["seconds"] for r in runs)
    out = {"rps": sum(r["rps"] * r["seconds"] for r in runs) / seconds, "seconds": seconds,
           "errors": sum(r["errors"] for r in runs),
           "rounds": [round(r["rps"]) for r in runs]}
    if all("p50" in r for r in runs):
        out |= {q: statistics.fmean(r[q] for r in runs) for q in ("p50", "p99")}
    if all("ok" in r for r in runs):
        out |= {"ok": sum(r["ok"] for r in runs),
                "kinds": sorted({k for r in runs for k in r["kinds"]}),
                "max": max(r["max"] for r in runs),
                "mean": statistics.fmean(r["mean"] for r in runs)}
    return out


def report(r: dict, route: str, sessions: str, clients: int, client: str) -> None:
    print(f"route={route} sessions={sessions} clients={clients} seconds={r['seconds']:.1f} "
          f"client={client}")
    ok = f"  ok {r['ok']}" if "ok" in r else ""
    kinds = f" {r['kinds']}" if r.get("kinds") else ""
    rounds = f"  (rounds: {', '.join(map(str, r['rounds']))})" if len(r["rounds"]) > 1 else ""
    print(f"requests/s {r['rps']:.0f}{ok}  errors {r['errors']}{kinds}{rounds}")
    if "p50" in r:
        more = f"  max {r['max']:.1f}  mean {r['mean']:.1f}" if "max" in r else ""
        print(f"latency ms: p50 {r['p50']:.1f}  p99 {r['p99']:.1f}{more}")


HOSTILE_TIMEOUT_S = 2.0  # the server's body and header timeouts under --hostile


def rss_mb(pid: int) -> float:
    """The resident memory of process ``pid``, in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1)) / 1024


@contextlib.contextmanager
def peak_rss(pid: int, every_s: float = 0.1) -> Iterator[list[float]]:
    """Samples ``pid``'s RSS while the block runs; yields a list whose one item is the peak."""
    import threading

    peak, done = [rss_mb(pid)], threading.Event()

    def watch() -> None:
        while not done.wait(every_s):
            peak[0] = max(peak[0], rss_mb(pid))

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        done.set()
        thread.join()
        peak[0] = max(peak[0], rss_mb(pid))


def hostile_mix(url: str, pid: int, args: argparse.Namespace, tmp: Path,
                use_wrk: bool) -> int:
    """Clean rounds and rounds with 1 hostile request in 10, in turn, on one server."""
    import hostile  # bench/hostile.py, beside this script

    host, port = url.removeprefix("http://").rsplit(":", 1)
    requests = hostile.build()
    seconds = args.seconds / args.rounds
    clean, mixed, outcomes, peaks = [], [], Counter(), {"clean": 0.0, "hostile": 0.0}
    start_rss = rss_mb(pid)

    async def pelted(rate: float) -> tuple[dict, Counter]:
        return await asyncio.gather(
            asyncio.to_thread(measure, url, seconds, args, tmp, use_wrk),
            hostile.pelt(host, int(port), requests, rate, seconds, HOSTILE_TIMEOUT_S + 3))

    for _ in range(args.rounds):
        with peak_rss(pid) as peak:
            clean.append(measure(url, seconds, args, tmp, use_wrk))
        peaks["clean"] = max(peaks["clean"], peak[0])
        # 1 request in 10 hostile: 1 for 9 good ones at the rate the last round with
        # hostile requests served them (the first: at the clean rate, so at least 1 in 10).
        rate = (mixed[-1] if mixed else clean[-1])["rps"] / 9
        with peak_rss(pid) as peak:
            good, got = asyncio.run(pelted(rate))
        peaks["hostile"] = max(peaks["hostile"], peak[0])
        mixed.append(good)
        outcomes += got
    clean_run, mixed_run = combine(clean), combine(mixed)
    report(clean_run, args.route, "memory (clean)", args.clients, "wrk" if use_wrk else "python")
    report(mixed_run, args.route, "memory (good requests among the hostile)", args.clients,
           "wrk" if use_wrk else "python")
    sent = sum(outcomes.values())
    print(f"hostile requests: {sent} ({sent / (sent + mixed_run['rps'] * mixed_run['seconds']):.0%}"
          f" of all), each on its own connection; server timeouts {HOSTILE_TIMEOUT_S:g} s")
    for name in dict.fromkeys(r.name for r in requests):
        got = {outcome: n for (kind, outcome), n in sorted(outcomes.items()) if kind == name}
        print(f"  {name:18} {', '.join(f'{o} x{n}' for o, n in got.items())}")
    ratio = mixed_run.get("p99", float("nan")) / clean_run.get("p99", float("nan"))
    print(f"p99 of the good requests: {mixed_run.get('p99', float('nan')):.1f} ms among the "
          f"hostile vs {clean_run.get('p99', float('nan')):.1f} ms clean = {ratio:.2f}x "
          "(target <= 2x)")
    end_rss = rss_mb(pid)
    print(f"server RSS MB: start {start_rss:.0f}, peak clean {peaks['clean']:.0f}, peak hostile "
          f"{peaks['hostile']:.0f}, end {end_rss:.0f}")
    bad = hostile.verdict(outcomes, requests)
    if bad:
        print("not held:", "; ".join(bad))
    return 1 if bad or clean_run["errors"] or mixed_run["errors"] else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="QA checkpoint (default: train a tiny one)")
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients (50)")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to run (10)")
    parser.add_argument("--route", choices=["answer", "session"], default="answer",
                        help="stateless /api/answer, or chat sessions, in memory and in "
                             "SQLite (default: answer)")
    parser.add_argument("--runtime", choices=["torch", "onnx", "both"], default="torch",
                        help="serve through PyTorch, ONNX Runtime, or both one after the "
                             "other (default: torch)")
    parser.add_argument("--client", choices=["auto", "wrk", "python"], default="auto",
                        help="load generator: wrk or async Python clients; "
                             "auto = wrk when installed (default: auto)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="each server is loaded this many times, in turn with the "
                             "others (A, B, A, B), for --seconds in all, so that a change in "
                             "the machine's load falls on both alike (default: 2)")
    parser.add_argument("--hostile", action="store_true",
                        help="rounds with 1 hostile request in 10 (bench/hostile.py), in turn "
                             "with clean rounds: the good requests' p99 and the server's RSS")
    args = parser.parse_args(argv)
    use_wrk = bool(args.client == "wrk" or (args.client == "auto" and shutil.which("wrk")))
    client = "wrk" if use_wrk else "python"
    if args.hostile:
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = args.checkpoint or tiny_checkpoint(Path(tmp))
            limits = {"body_timeout_s": HOSTILE_TIMEOUT_S, "header_timeout_s": HOSTILE_TIMEOUT_S}
            with server(checkpoint, ":memory:", "torch", limits) as (url, pid):
                return hostile_mix(url, pid, args, Path(tmp), use_wrk)
    results = {}
    runtimes = ["torch", "onnx"] if args.runtime == "both" else [args.runtime]
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint or tiny_checkpoint(Path(tmp))
        files = {"torch": checkpoint}
        if "onnx" in runtimes:  # exported in a process of its own, as the tests do
            files["onnx"] = str(Path(tmp) / "model.onnx")
            subprocess.run([sys.executable, "-m", "textrnn", "export", "--checkpoint",
                            checkpoint, "--out", files["onnx"]], check=True)
        stores = {"memory": ":memory:"}
        if args.route == "session":
            stores["sqlite"] = str(Path(tmp) / "sessions.sqlite")
        with contextlib.ExitStack() as stack:  # every server up at once, loaded in turn
            urls = {(runtime, name): stack.enter_context(server(files[runtime], sessions,
                                                                runtime))[0]
                    for runtime in runtimes for name, sessions in stores.items()}
            runs: dict[tuple[str, str], list[dict]] = {key: [] for key in urls}
            for _ in range(args.rounds):
                for key, url in urls.items():
                    runs[key].append(measure(url, args.seconds / args.rounds, args,
                                             Path(tmp), use_wrk))
        for (runtime, name), key_runs in runs.items():
            key = name if len(runtimes) == 1 else f"{runtime}/{name}"
            results[key] = combine(key_runs)
            report(results[key], args.route, f"{name} runtime={runtime}", args.clients, client)
    for name in stores:
        torch_run, onnx_run = results.get(f"torch/{name}"), results.get(f"onnx/{name}")
        if torch_run and onnx_run:
            print(f"onnx/torch ({name} sessions): requests/s "
                  f"{onnx_run['rps'] / max(torch_run['rps'], 1e-9):.2f}x (target >= 1.5x), "
                  f"p99 {onnx_run.get('p99', float('nan')):.1f} vs "
                  f"{torch_run.get('p99', float('nan')):.1f} ms")
    if "sqlite" in results:
        ratio = results["sqlite"]["rps"] / max(results["memory"]["rps"], 1e-9)
        print(f"sqlite/memory requests/s {ratio:.2f}x (target >= 0.8x); errors: memory "
              f"{results['memory']['errors']}, sqlite {results['sqlite']['errors']}")
    return 1 if any(r["errors"] for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
