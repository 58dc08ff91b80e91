"""Shared by the bench clients (standard library only): one streamed OpenAI chat request, and
the JSON line each bench prints and appends to its --json file."""
import json
import time
import urllib.request


def stream_chat(url, body, timeout=900):
    """POSTs `body` (streamed) to `url`; returns (time to first content, text, last usage)."""
    req = urllib.request.Request(url, json.dumps(body).encode(), {"content-type": "application/json"})
    start = time.perf_counter()
    first, text, usage = None, [], None
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        for raw in resp:
            line = raw.decode().strip()
            if not line.startswith("data:") or line.endswith("[DONE]"):
                continue
            data = json.loads(line[5:])
            usage = data.get("usage") or usage
            for choice in data.get("choices") or []:
                piece = choice.get("delta", {}).get("content")
                if piece:
                    first = first or time.perf_counter()
                    text.append(piece)
    return (first or time.perf_counter()) - start, "".join(text), usage


def pct(values, q):
    """The `q` quantile (0..1) of `values`, nearest rank, rounded to milliseconds."""
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 3)


def emit(report, json_path=None):
    """Prints `report` as one JSON line, and appends it to `json_path` when given."""
    print(json.dumps(report), flush=True)
    if json_path:
        with open(json_path, "a") as f:
            f.write(json.dumps(report) + "\n")
