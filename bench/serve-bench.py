#!/usr/bin/env python3
"""Streams N concurrent /v1/completions requests against an OpenAI-compatible server (the
agent's `serve` or llama-server) and reports generation tok/s per stream, aggregate tok/s,
TTFT p50 and the server's RSS. Standard library only.

  bench/serve-bench.py --url http://127.0.0.1:8080 --streams 1 --requests 4 --pid PID
  bench/serve-bench.py ... --json results.jsonl   # also append the report as one JSON line
  bench/serve.sh   # both servers side by side, same GGUF / threads / ctx / slots
"""
import argparse
import json
import os
import statistics
import threading
import time
import urllib.request

PROMPT = "Write a long story about a dragon who learns to read. Chapter 1:"


def one(url, max_tokens, out):
    body = json.dumps({"prompt": PROMPT, "max_tokens": max_tokens, "temperature": 0.8,
                       "seed": 1, "stream": True, "ignore_eos": True}).encode()
    req = urllib.request.Request(f"{url}/v1/completions", body, {"content-type": "application/json"})
    start = time.perf_counter()
    first = last = None
    chunks = 0
    with urllib.request.urlopen(req, timeout=600) as resp:
        for raw in resp:
            line = raw.decode().strip()
            if not line.startswith("data:") or line.endswith("[DONE]"):
                continue
            data = json.loads(line[5:])
            choices = data.get("choices") or []
            if choices and choices[0].get("text"):
                now = time.perf_counter()
                first = first or now
                last = now
                chunks += 1
    out.append({"ttft": first - start, "tokens": chunks, "gen_time": last - first, "end": last})


def rss_mb(pid):
    if not pid:
        return None
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--streams", type=int, default=1)
    ap.add_argument("--requests", type=int, default=3, help="rounds of --streams requests")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--pid", type=int)
    ap.add_argument("--label", default="server")
    ap.add_argument("--round", type=int, default=1, help="recorded as is: which side-by-side round")
    ap.add_argument("--json", metavar="FILE", help="append the report to FILE as one JSON line")
    args = ap.parse_args()
    load_before = os.getloadavg()[0]
    one(args.url, 8, [])  # warm-up
    results, walls, peak = [], [], 0.0
    for _ in range(args.requests):
        out = []
        threads = [threading.Thread(target=one, args=(args.url, args.max_tokens, out))
                   for _ in range(args.streams)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        walls.append((time.perf_counter() - t0, sum(r["tokens"] for r in out)))
        results += out
        peak = max(peak, rss_mb(args.pid) or 0.0)
    per_stream = [(r["tokens"] - 1) / r["gen_time"] for r in results if r["gen_time"] > 0]
    report = {
        "label": args.label,
        "streams": args.streams,
        "requests": len(results),
        "tokens_per_request": statistics.mean(r["tokens"] for r in results),
        "gen_tok_s_per_stream_p50": round(statistics.median(per_stream), 1),
        "aggregate_tok_s": round(sum(n for _, n in walls) / sum(w for w, _ in walls), 1),
        "ttft_p50_ms": round(statistics.median(r["ttft"] for r in results) * 1000, 1),
        "rss_mb": round(peak, 1) if args.pid else None,
        "max_tokens": args.max_tokens,
        "round": args.round,
        # The box may be shared: the 1-minute load average before and after this run.
        "loadavg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    print(json.dumps(report))
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps(report) + "\n")


if __name__ == "__main__":
    main()
