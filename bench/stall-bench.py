#!/usr/bin/env python3
"""Do running streams stall when heavy work arrives? Against a running `llamafleet-agent
serve`: STREAMS generations stream (ignore_eos); their inter-token latency (ITL) is measured
alone for ALONE seconds, then a 256-input embedding request and a long prompt (PROMPT_TOKENS
words) arrive together and ITL is measured until both are answered. Reports ITL p50/p99 of
each phase and their ratio. Standard library only; one JSON line on stdout (and --json).

  bench/stall-bench.py --url http://127.0.0.1:8080 --label agent
  bench/stall.sh   # starts the agent, then runs this
"""
import argparse
import json
import statistics
import threading
import time
import urllib.request


def stream(url, max_tokens, stamps, stop):
    body = json.dumps({"prompt": "Write a long story about a dragon who learns to read. Chapter 1:",
                       "max_tokens": max_tokens, "temperature": 0.8, "seed": 1, "stream": True,
                       "ignore_eos": True}).encode()
    req = urllib.request.Request(f"{url}/v1/completions", body, {"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as resp:
        for raw in resp:
            line = raw.decode().strip()
            if line.startswith("data:") and '"text"' in line:
                stamps.append(time.perf_counter())
            if stop.is_set():
                return


def post(url, path, body):
    req = urllib.request.Request(f"{url}{path}", json.dumps(body).encode(),
                                 {"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as resp:
        resp.read()
    return time.perf_counter()


def gaps(all_stamps, start, end):
    out = []
    for stamps in all_stamps:
        inside = [t for t in stamps if start <= t <= end]
        out += [b - a for a, b in zip(inside, inside[1:])]
    return out


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--label", default="agent")
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--alone", type=float, default=5.0, help="seconds of ITL before the load")
    ap.add_argument("--prompt-words", type=int, default=2400, help="~3,000 tokens for Gemma")
    ap.add_argument("--inputs", type=int, default=256)
    ap.add_argument("--json", metavar="FILE")
    a = ap.parse_args()
    stop = threading.Event()
    stamps = [[] for _ in range(a.streams)]
    threads = [threading.Thread(target=stream, args=(a.url, 4000, stamps[i], stop), daemon=True)
               for i in range(a.streams)]
    for t in threads:
        t.start()
    while min(len(s) for s in stamps) < 3:
        time.sleep(0.05)
    t0 = time.perf_counter()
    time.sleep(a.alone)
    t1 = time.perf_counter()
    ends = {}
    inputs = [f"Document {i}: the keeper's log for day {i} mentions gulls, fog and a brig."
              for i in range(a.inputs)]
    long_prompt = " ".join(["The lighthouse keeper wrote about the weather."] * (a.prompt_words // 7))
    def embed():
        ends["embed"] = post(a.url, "/v1/embeddings", {"input": inputs})
    def prompt():
        ends["prompt"] = post(a.url, "/v1/completions", {"prompt": long_prompt, "max_tokens": 4})
    load = [threading.Thread(target=embed), threading.Thread(target=prompt)]
    for t in load:
        t.start()
    for t in load:
        t.join()
    t2 = time.perf_counter()
    stop.set()
    alone, loaded = gaps(stamps, t0, t1), gaps(stamps, t1, t2)
    report = {
        "label": a.label, "streams": a.streams,
        "alone_itl_p50_ms": round(statistics.median(alone) * 1000, 1),
        "alone_itl_p99_ms": round(pct(alone, 0.99) * 1000, 1),
        "loaded_itl_p50_ms": round(statistics.median(loaded) * 1000, 1),
        "loaded_itl_p99_ms": round(pct(loaded, 0.99) * 1000, 1),
        "loaded_itl_max_ms": round(max(loaded) * 1000, 1),
        "p99_loaded_over_p50_alone": round(pct(loaded, 0.99) / statistics.median(alone), 2),
        "embed_s": round(ends["embed"] - t1, 2), "prompt_s": round(ends["prompt"] - t1, 2),
    }
    print(json.dumps(report), flush=True)
    if a.json:
        with open(a.json, "a") as f:
            f.write(json.dumps(report) + "\n")


if __name__ == "__main__":
    main()
