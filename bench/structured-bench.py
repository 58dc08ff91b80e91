#!/usr/bin/env python3
"""Constrained decoding's cost: decode tokens/s of `/api/generate` without a format, with
`format: "json"` and with a JSON schema, interleaved request by request on one server so all
three see the same machine. Tokens/s is the server's own eval_count / eval_duration (decode
only, sampling included). Standard library only.

  bench/structured-bench.py --url http://127.0.0.1:18481 --rounds 5
  bench/structured.sh   # starts the release agent and runs this
"""
import argparse
import json
import statistics
import urllib.request

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 24},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "colour": {"enum": ["red", "green", "blue"]},
        "pets": {"type": "array", "items": {"type": "string", "maxLength": 12}, "maxItems": 4},
        "alive": {"type": "boolean"},
    },
    "required": ["name", "age", "colour", "pets", "alive"],
    "additionalProperties": False,
}
CASES = {"free": None, "json": "json", "schema": SCHEMA}
# One example first, so free text and "json" write people too (and more than "{}").
PROMPT = ('Person: {"name": "Ann Lee", "age": 31, "colour": "red", "pets": ["cat", "fish"], '
          '"alive": true}\nPerson:')


def one(url, fmt, seed, max_tokens):
    body = {"prompt": PROMPT, "stream": False,
            "options": {"temperature": 0.8, "seed": seed, "num_predict": max_tokens}}
    if fmt is not None:
        body["format"] = fmt
    req = urllib.request.Request(f"{url}/api/generate", json.dumps(body).encode(),
                                 {"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as resp:
        v = json.load(resp)
    if fmt is not None and v["done_reason"] == "stop":
        json.loads(v["response"])  # constrained output parses
    return v["eval_count"], v["eval_duration"] / 1e9


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--max-tokens", type=int, default=96)
    args = ap.parse_args()
    rates = {name: [] for name in CASES}
    tokens = {name: 0 for name in CASES}
    for r in range(args.rounds):
        for name, fmt in CASES.items():
            count, seconds = one(args.url, fmt, r + 1, args.max_tokens)
            if count > 1 and seconds > 0:
                rates[name].append(count / seconds)
            tokens[name] += count
    base = statistics.median(rates["free"])
    print(f"{'case':<8} {'requests':>8} {'tokens':>7} {'tok/s p50':>10} {'vs free':>8}")
    for name in CASES:
        p50 = statistics.median(rates[name])
        print(f"{name:<8} {len(rates[name]):>8} {tokens[name]:>7} {p50:>10.1f} {p50 / base:>8.3f}")


if __name__ == "__main__":
    main()
