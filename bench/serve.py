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

With ``--client wrk`` (the default for the stateless route when Debian's ``wrk`` is
installed: ``apt-get install wrk``) the load comes from wrk, a C load generator, so
the clients take far less of the shared CPU than Python clients do, and the figures
say more about the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2

STORY = ["Mary moved to the bathroom.", "John went to the hallway.", "Mary went to the garden."]

# Runs in the server's process: serve, print the URL, stop when stdin closes.
# argv: checkpoint (or .onnx file), sessions (a SQLite file or :memory:), runtime.
SERVER = """
import sys, torch
torch.set_num_threads(1)
from textrnn.chat import Answerer
from textrnn.serve import background_server, create_app
from textrnn.serve import freeze_startup_heap
if sys.argv[3] == "onnx":
    from textrnn import runtime
    answerer = runtime.load(sys.argv[1], task="qa")
else:
    answerer = Answerer.from_checkpoint(sys.argv[1])
app = create_app(answerer, sessions=sys.argv[2])
freeze_startup_heap()  # as run_server does
with background_server(app) as url:
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


def measure(checkpoint: str, sessions: str, args: argparse.Namespace, tmp: Path,
            use_wrk: bool, runtime: str = "torch") -> dict:
    """Start a server keeping its sessions in ``sessions``, load it, stop it; its figures."""
    server = subprocess.Popen([sys.executable, "-c", SERVER, checkpoint, sessions, runtime],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().strip()
        if not url:
            raise SystemExit("the server did not start")
        if use_wrk:
            return {**load_wrk(url, args.clients, args.seconds, tmp, args.route),
                    "seconds": args.seconds}
        return summarize(*asyncio.run(load(url, args.clients, args.seconds, args.route)))
    finally:
        server.stdin.close()
        server.wait(timeout=30)


def report(r: dict, route: str, sessions: str, clients: int, client: str) -> None:
    print(f"route={route} sessions={sessions} clients={clients} seconds={r['seconds']:.1f} "
          f"client={client}")
    ok = f"  ok {r['ok']}" if "ok" in r else ""
    kinds = f" {r['kinds']}" if r.get("kinds") else ""
    print(f"requests/s {r['rps']:.0f}{ok}  errors {r['errors']}{kinds}")
    if "p50" in r:
        more = f"  max {r['max']:.1f}  mean {r['mean']:.1f}" if "max" in r else ""
        print(f"latency ms: p50 {r['p50']:.1f}  p99 {r['p99']:.1f}{more}")


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
    args = parser.parse_args(argv)
    use_wrk = bool(args.client == "wrk" or (args.client == "auto" and shutil.which("wrk")))
    client = "wrk" if use_wrk else "python"
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
        for runtime in runtimes:
            for name, sessions in stores.items():
                key = name if len(runtimes) == 1 else f"{runtime}/{name}"
                results[key] = measure(files[runtime], sessions, args, Path(tmp), use_wrk,
                                       runtime)
                report(results[key], args.route, f"{name} runtime={runtime}", args.clients,
                       client)
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
