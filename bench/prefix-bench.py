#!/usr/bin/env python3
"""Traffic that repeats itself, against a running `llamafleet-agent serve`: USERS chat requests
at once with one long system prompt (a preset's) and different questions, then one request
for N choices of a long prompt. Reports wall time, TTFT p50/max, and the prompt tokens the
server computed versus took from a cache (its /metrics before and after). Standard library
only; one JSON line per scenario on stdout (and appended to --json).

  bench/prefix-bench.py --url http://127.0.0.1:8080 --label sharing --users 8 --n 4
  bench/prefix.sh   # the agent with and without prefix sharing, side by side
"""
import argparse
import json
import re
import statistics
import threading
import time
import urllib.request

SYSTEM = (
    "You are the archivist of the lighthouse at Skerryvore. The keeper's log, kept since 1844, "
    "records every evening the weather, the wind and its direction, the ships that passed with "
    "their flags and cargo, the colour of the sea, the birds on the rocks, the oil burned, the "
    "repairs to the lamp and the names of visitors. You answer questions about the log in two "
    "sentences, citing the year when you can, and you say so when the log does not tell. "
) * 4
QUESTIONS = [
    "Which birds did the keeper see most often?",
    "How often did storms stop the supply boat?",
    "Who visited in the summer of 1850?",
    "What cargo did the Norwegian ships carry?",
    "When was the lamp last repaired?",
    "Did the keeper ever see a whale?",
    "How much oil burned in the winter of 1847?",
    "What colour was the sea before the great storm?",
]


def post(url, body):
    req = urllib.request.Request(url, json.dumps(body).encode(), {"content-type": "application/json"})
    start = time.perf_counter()
    first = None
    usage = None
    with urllib.request.urlopen(req, timeout=600) as resp:
        for raw in resp:
            line = raw.decode().strip()
            if not line.startswith("data:") or line.endswith("[DONE]"):
                continue
            data = json.loads(line[5:])
            if first is None and any(c.get("delta", {}).get("content") for c in data.get("choices") or []):
                first = time.perf_counter()
            usage = data.get("usage") or usage
    return {"ttft": (first or time.perf_counter()) - start, "end": time.perf_counter(), "usage": usage}


def cached_and_prompt(url):
    text = urllib.request.urlopen(f"{url}/metrics", timeout=30).read().decode()
    def total(name, labels=""):
        pattern = rf"^{name}{{?{labels}[^\n]*}}? ([0-9.e+]+)$"
        return sum(float(v) for v in re.findall(pattern, text, re.M))
    return (total("llamafleet_agent_prompt_tokens_cached_total"),
            total("llamafleet_agent_prompt_tokens_total"))


def scenario(url, label, name, bodies, json_path):
    cached0, prompt0 = cached_and_prompt(url)
    out = [None] * len(bodies)
    start = time.perf_counter()
    def run(i):
        out[i] = post(f"{url}/v1/chat/completions", bodies[i])
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = max(o["end"] for o in out) - start
    cached1, prompt1 = cached_and_prompt(url)
    ttfts = [o["ttft"] for o in out]
    report = {
        "label": label, "scenario": name, "requests": len(bodies), "wall_s": round(wall, 3),
        "ttft_p50_s": round(statistics.median(ttfts), 3), "ttft_max_s": round(max(ttfts), 3),
        "prompt_tokens": int(prompt1 - prompt0), "cached_tokens": int(cached1 - cached0),
        "computed_tokens": int((prompt1 - prompt0) - (cached1 - cached0)),
    }
    print(json.dumps(report), flush=True)
    if json_path:
        with open(json_path, "a") as f:
            f.write(json.dumps(report) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--label", default="agent")
    ap.add_argument("--users", type=int, default=8)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--json", metavar="FILE")
    a = ap.parse_args()
    common = {"max_tokens": a.max_tokens, "temperature": 0.7, "seed": 1, "stream": True,
              "ignore_eos": True, "stream_options": {"include_usage": True}}
    users = [dict(common, messages=[{"role": "system", "content": SYSTEM},
                                    {"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}])
             for i in range(a.users)]
    scenario(a.url, a.label, f"preset-{a.users}-users", users, a.json)
    # Another document each round, so no slot holds it yet.
    document = SYSTEM.replace("Skerryvore", "Bell Rock")
    choices = dict(common, n=a.n, messages=[{"role": "user", "content": document + " Summarise."}])
    scenario(a.url, a.label, f"n-{a.n}", [choices], a.json)


if __name__ == "__main__":
    main()
