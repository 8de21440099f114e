#!/usr/bin/env python3
"""Time from starting a server to the first streamed token of its first request, with the model
file in the page cache (warm) and evicted from it (cold, posix_fadvise DONTNEED, which needs no
privileges). owl serve, and llama-server beside it when LLAMA_SERVER names its binary; rounds
alternate between them. Prints figures, asserts nothing.

  OWL=build/apps/cli/owl MODEL=model.gguf [LLAMA_SERVER=.../llama-server] [ROUNDS=3] [THREADS=2] \
      python3 bench/cold_start.py
"""
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def evict(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def warm(path):
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


def first_token(command, port, model_id):
    """Seconds from starting `command` to /health 200, and to the first streamed token."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ready = None
        while ready is None:
            if proc.poll() is not None:
                raise RuntimeError(f"{command[0]} exited {proc.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                    if r.status == 200:
                        ready = time.perf_counter() - start
            except OSError:
                time.sleep(0.005)
        body = json.dumps({"model": model_id, "prompt": "Once upon a time", "max_tokens": 8, "stream": True}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as r:
            for line in r:
                if line.startswith(b"data: {") and b'"text"' in line:
                    return ready, time.perf_counter() - start
        raise RuntimeError("no token streamed")
    finally:
        proc.kill()
        proc.wait()


def main():
    owl, model = os.environ.get("OWL"), os.environ.get("MODEL")
    if not owl or not model or not os.path.isfile(owl) or not os.path.isfile(model):
        sys.exit("cold_start.py: set OWL (the owl binary) and MODEL (a GGUF file) to existing files")
    llama = os.environ.get("LLAMA_SERVER")
    if llama and not os.path.isfile(llama):
        sys.exit(f"cold_start.py: LLAMA_SERVER {llama}: no such file")
    rounds, threads = int(os.environ.get("ROUNDS", "3")), os.environ.get("THREADS", "2")
    servers = {"owl": lambda p: [owl, "serve", "-m", model, "--port", str(p), "-t", threads, "--parallel", "4", "-c", "2048",
                                 "--alias", "m"]}
    if llama:
        servers["llama.cpp"] = lambda p: [llama, "-m", model, "--port", str(p), "-t", threads, "-np", "4", "-c", "8192",
                                          "--alias", "m"]
    results = {(name, cache): [] for name in servers for cache in ("warm", "cold")}
    for _ in range(rounds):
        for cache in ("warm", "cold"):
            for name, command in servers.items():
                evict(model) if cache == "cold" else warm(model)
                port = free_port()
                results[(name, cache)].append(first_token(command(port), port, "m"))
    print(f"{os.path.basename(model)}, {rounds} rounds, medians: start to ready / start to first token, s")
    print("| server | warm page cache | cold page cache |")
    print("|---|---:|---:|")
    for name in servers:
        cells = []
        for cache in ("warm", "cold"):
            ready = statistics.median(r for r, _ in results[(name, cache)])
            token = statistics.median(t for _, t in results[(name, cache)])
            cells.append(f"{ready:.2f} / {token:.2f}")
        print(f"| {name} | {cells[0]} | {cells[1]} |")
    if llama:
        for cache in ("warm", "cold"):
            o = statistics.median(t for _, t in results[("owl", cache)])
            l = statistics.median(t for _, t in results[("llama.cpp", cache)])
            print(f"owl / llama.cpp, start to first token, {cache}: {o / l:.2f}")


if __name__ == "__main__":
    main()
