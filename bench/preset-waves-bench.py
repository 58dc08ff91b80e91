#!/usr/bin/env python3
"""One preset's users in waves, against a running server: CLIENTS chat requests at once, each a
different ~30-token question under one ~1,500-token system prompt, 64 tokens out; a first wave
on the freshly started server, then WAVES - 1 more with new questions. The system prompt is a
preset of the agent (`--preset`, the request names it as its model) or, for llama-server, the
same text as the request's system message. Reports TTFT p50/p95 of the first wave and of the
later ones, and aggregate generated tokens per second over all waves. Standard library only;
one JSON line on stdout (and appended to --json).

  bench/preset-waves-bench.py --print-preset > presets.yaml      # the agent's preset file
  bench/preset-waves-bench.py --url http://127.0.0.1:18482 --label agent --preset archivist
  bench/preset-waves-bench.py --url http://127.0.0.1:18483 --label llama-server
  bench/preset-waves.sh   # both servers, 8 and 16 clients on 8 slots, side by side
"""
import argparse
import json
import statistics
import threading
import time

from sse import emit, pct, stream_chat

PARAGRAPH = (
    "You are the archivist of the lighthouse at Skerryvore. The keeper's log, kept since 1844, "
    "records every evening the weather, the wind and its direction, the ships that passed with "
    "their flags and cargo, the colour of the sea, the birds on the rocks, the oil burned, the "
    "repairs to the lamp and the names of visitors. "
)
SYSTEM = PARAGRAPH * 16 + "Answer in two sentences, citing the year when you can."
TOPICS = ["the storm", "the supply boat", "the gulls", "a Norwegian brig", "the lamp", "a whale",
          "the oil", "the fog bell", "a visitor", "the tide", "the puffins", "ice on the rail"]
MONTHS = ["January", "March", "May", "July", "September", "November"]


def question(i):
    return (f"Question {i}: in the log of {1844 + i % 40}, what did the keeper write about "
            f"{TOPICS[i % len(TOPICS)]} on the evening of {1 + i % 28} {MONTHS[i % len(MONTHS)]}, "
            f"and was anything unusual?")


def wave(url, bodies):
    out = [None] * len(bodies)
    def run(i):
        ttft, _, usage = stream_chat(f"{url}/v1/chat/completions", bodies[i])
        out[i] = (ttft, (usage or {}).get("completion_tokens", 0))
    start = time.perf_counter()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--print-preset", action="store_true")
    ap.add_argument("--url")
    ap.add_argument("--label", default="server")
    ap.add_argument("--preset", help="the agent's preset name (else the system prompt is sent)")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--waves", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--json", metavar="FILE")
    a = ap.parse_args()
    if a.waves < 2 and not a.print_preset:
        ap.error("--waves must be at least 2: a first wave and a later one are reported")
    if a.print_preset:
        print(json.dumps([{"name": "archivist", "system": SYSTEM}]))
        return
    walls, first_wave, later, tokens = [], [], [], 0
    for w in range(a.waves):
        bodies = []
        for c in range(a.clients):
            messages = [{"role": "user", "content": question(w * a.clients + c)}]
            if not a.preset:
                messages.insert(0, {"role": "system", "content": SYSTEM})
            bodies.append({"model": a.preset or "m", "messages": messages,
                           "max_tokens": a.max_tokens, "temperature": 0.7, "seed": c,
                           "ignore_eos": True, "stream": True,
                           "stream_options": {"include_usage": True}})
        wall, out = wave(a.url, bodies)
        walls.append(wall)
        (first_wave if w == 0 else later).extend(t for t, _ in out)
        tokens += sum(n for _, n in out)
    report = {
        "label": a.label, "clients": a.clients, "waves": a.waves, "max_tokens": a.max_tokens,
        "first_wave_ttft_p50_s": round(statistics.median(first_wave), 3),
        "first_wave_ttft_p95_s": pct(first_wave, 0.95),
        "later_waves_ttft_p50_s": round(statistics.median(later), 3),
        "later_waves_ttft_p95_s": pct(later, 0.95),
        "wave_walls_s": [round(w, 2) for w in walls],
        "generated_tokens": tokens, "aggregate_tok_s": round(tokens / sum(walls), 1),
    }
    emit(report, a.json)


if __name__ == "__main__":
    main()
