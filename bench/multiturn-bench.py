#!/usr/bin/env python3
"""Multi-turn chats through `llamafleet-agent route` in front of several `serve` replicas:
CONVERSATIONS chats at once, TURNS turns each (every turn resends the whole history, as chat
clients do), each with its own system prompt. Reports TTFT p50/p95 over all turns and over
turns 2.., and the prompt tokens the replicas computed versus took from a cache (their
/metrics before and after). Standard library only; one JSON line on stdout (and appended to
--json).

  bench/multiturn-bench.py --router http://127.0.0.1:18490 \
      --replica http://127.0.0.1:18491 --replica http://127.0.0.1:18492 --label prefix
  bench/multiturn.sh   # prefix-aware vs random replica choice, side by side
"""
import argparse
import json
import re
import statistics
import threading
import time
import urllib.request

from sse import emit, pct, stream_chat

TOPICS = ["lighthouse keeping", "bee keeping", "bridge building", "cheese making",
          "glass blowing", "clock repair", "sail making", "bookbinding", "tea blending",
          "violin making", "map drawing", "rope making", "stone carving", "wine making",
          "kite flying", "candle making"]
QUESTIONS = ["Where do I start?", "What tools do I need first?", "What mistake do beginners make?",
             "How long until I am good at it?", "What does it cost?", "Who can teach me?",
             "What should I read?", "How do I practise at home?"]


def system_prompt(topic):
    return (f"You are a patient master of {topic} who has taught apprentices for forty years. "
            f"You answer in two sentences, plainly, with one concrete example from your own "
            f"workshop, and you say so when you do not know. ") * 3


def prompt_tokens(replicas):
    computed = cached = 0.0
    for url in replicas:
        text = urllib.request.urlopen(f"{url}/metrics", timeout=30).read().decode()
        def total(name):
            return sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+]+)$", text, re.M))
        prompt = total("llamafleet_agent_prompt_tokens_total")
        hit = total("llamafleet_agent_prompt_tokens_cached_total")
        computed += prompt - hit
        cached += hit
    return computed, cached


def choices(router):
    text = urllib.request.urlopen(f"{router}/metrics", timeout=30).read().decode()
    out = {}
    for choice, value in re.findall(r'^llamafleet_router_replica_choices_total{choice="(\w+)"[^}]*} ([0-9.e+]+)$', text, re.M):
        out[choice] = out.get(choice, 0) + int(float(value))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--router", required=True)
    ap.add_argument("--replica", action="append", required=True)
    ap.add_argument("--label", default="router")
    ap.add_argument("--conversations", type=int, default=16)
    ap.add_argument("--turns", type=int, default=6)
    ap.add_argument("--max-tokens", type=int, default=24)
    ap.add_argument("--json", metavar="FILE")
    a = ap.parse_args()
    computed0, cached0 = prompt_tokens(a.replica)
    ttfts = []  # (turn, seconds)
    lock = threading.Lock()

    def converse(i):
        messages = [{"role": "system", "content": system_prompt(TOPICS[i % len(TOPICS)])}]
        for turn in range(a.turns):
            messages.append({"role": "user", "content": QUESTIONS[(i + turn) % len(QUESTIONS)]})
            body = {"model": "m", "messages": messages, "max_tokens": a.max_tokens,
                    "temperature": 0.7, "seed": i, "stream": True, "ignore_eos": True}
            ttft, answer, _ = stream_chat(f"{a.router}/v1/chat/completions", body)
            with lock:
                ttfts.append((turn, ttft))
            messages.append({"role": "assistant", "content": answer})

    start = time.perf_counter()
    threads = [threading.Thread(target=converse, args=(i,)) for i in range(a.conversations)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    computed1, cached1 = prompt_tokens(a.replica)
    every = sorted(t for _, t in ttfts)
    later = sorted(t for turn, t in ttfts if turn > 0)
    report = {
        "label": a.label, "conversations": a.conversations, "turns": a.turns,
        "replicas": len(a.replica), "requests": len(ttfts), "wall_s": round(wall, 2),
        "ttft_p50_s": round(statistics.median(every), 3), "ttft_p95_s": pct(every, 0.95),
        "later_turns_ttft_p50_s": round(statistics.median(later), 3),
        "later_turns_ttft_p95_s": pct(later, 0.95),
        "prefill_tokens": int(computed1 - computed0), "cached_tokens": int(cached1 - cached0),
        "router_choices": choices(a.router),
    }
    emit(report, a.json)


if __name__ == "__main__":
    main()
