#!/usr/bin/env python3
"""Turns the output of the benches into one results.json and plots (driven by bench/report.sh).

  report.py route LOG            # route-bench text -> JSON on stdout
  report.py download LOG         # bench/download.sh text -> JSON on stdout
  report.py operator LOG         # bench/operator-scale.sh text -> JSON on stdout
  report.py plot RESULTS OUTDIR  # SVG bar charts from results.json (needs matplotlib)
  report.py table RESULTS        # Markdown tables of results.json (medians over rounds)
  report.py serve-table JSONL    # the serve table of bench/serve.sh's JSON lines (bench/gpu.sh)

The benches print text for people; the parsers read exactly the lines they print and fail
loudly when a line is missing, so a changed bench cannot turn into an empty chart.
"""
import json
import re
import statistics
import sys


def need(pattern, text, what):
    found = re.search(pattern, text, re.M)
    if not found:
        sys.exit(f"report.py: no {what} line in the bench output (pattern {pattern!r})")
    return found


def parse_route(text):
    head = need(r"^route bench: (\d+) req/s to each target for (\d+) s", text, "route header")
    out = {"rate_per_s": int(head[1]), "seconds": int(head[2])}
    for name in ("direct", "routed"):
        m = need(rf"^\s*{name}: n=(\d+) p50=([\d.]+) ms p99=([\d.]+) ms max=([\d.]+) ms",
                 text, name)
        out[name] = {"n": int(m[1]), "p50_ms": float(m[2]), "p99_ms": float(m[3]),
                     "max_ms": float(m[4])}
    m = need(r"added: p50=\+?(-?[\d.]+) ms p99=\+?(-?[\d.]+) ms", text, "added")
    out["added_p50_ms"], out["added_p99_ms"] = float(m[1]), float(m[2])
    m = need(r"mean ([\d.]+) us", text, "router work")
    out["router_work_mean_us"] = float(m[1])
    return out


def parse_download(text):
    head = need(r"^file: (.*), (\d+) bytes", text, "file")
    runs = [{"curl_sha256sum_mb_s": float(m[1]), "agent_pull_mb_s": float(m[2]),
             "curl_devnull_mb_s": float(m[3])}
            for m in re.finditer(r"^run \d+: curl\|sha256sum ([\d.]+) MB/s\s+llamafleet-agent "
                                 r"pull ([\d.]+) MB/s\s+\(reference: curl >/dev/null ([\d.]+) MB/s",
                                 text, re.M)]
    if not runs:
        sys.exit("report.py: no download runs in the bench output")
    best = {k: max(r[k] for r in runs) for k in runs[0]}
    return {"file": head[1], "bytes": int(head[2]), "runs": runs, "best": best,
            "ratio_best_agent_over_curl": round(best["agent_pull_mb_s"]
                                                / best["curl_sha256sum_mb_s"], 2)}


def parse_operator(text):
    rounds = [{"round": int(m[1]), "count": int(m[2]), "elapsed": m[3], "requests": int(m[4]),
               "writes": int(m[5])}
              for m in re.finditer(r"^round (\d+): (\d+) LlmDeployments reconciled in (\S+); "
                                   r"(\d+) requests, (\d+) writes", text, re.M)]
    if len(rounds) != 2:
        sys.exit("report.py: expected two operator rounds in the bench output")
    rss = need(r"Maximum resident set size \(kbytes\): (\d+)", text, "peak RSS")
    user = need(r"User time \(seconds\): ([\d.]+)", text, "user time")
    system = need(r"System time \(seconds\): ([\d.]+)", text, "system time")
    return {"rounds": rounds, "peak_rss_mb": round(int(rss[1]) / 1024, 1),
            "cpu_s": round(float(user[1]) + float(system[1]), 2)}


def serve_table(rows):
    """Median over rounds of each metric, keyed by (label, streams)."""
    keys = ("gen_tok_s_per_stream_p50", "aggregate_tok_s", "ttft_p50_ms", "rss_mb")
    grouped = {}
    for row in rows:
        grouped.setdefault((row["label"], row["streams"]), []).append(row)
    return {k: {m: statistics.median(r[m] for r in v) for m in keys} for k, v in grouped.items()}


def bars(ax, groups, series, values, ylabel, title, fmt="%.1f"):
    width = 0.8 / max(len(series), 1)
    for i, name in enumerate(series):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        ys = [values.get((name, group)) or 0 for group in groups]
        drawn = ax.bar(xs, ys, width, label=name)
        ax.bar_label(drawn, fmt=fmt, fontsize=8)
    ax.set_xticks(range(len(groups)), [str(g) for g in groups])
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()


def plot(results_path, outdir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.rcParams["svg.hashsalt"] = "llamafleet"  # stable SVG ids: re-runs diff cleanly
    results = json.load(open(results_path))
    meta = {"Date": None}
    written = []

    def save(fig, name):
        fig.tight_layout()
        fig.savefig(f"{outdir}/{name}", metadata=meta)
        plt.close(fig)
        written.append(name)

    if results.get("serve"):
        table = serve_table(results["serve"])
        labels = sorted({label for label, _ in table}, key=lambda n: n != "agent")
        streams = sorted({s for _, s in table})
        for metric, ylabel, title, name in [
            ("gen_tok_s_per_stream_p50", "tok/s", "Generation tok/s per stream (p50)",
             "serve-tok-s-per-stream.svg"),
            ("aggregate_tok_s", "tok/s", "Aggregate tok/s", "serve-aggregate-tok-s.svg"),
            ("ttft_p50_ms", "ms", "Time to first token (p50)", "serve-ttft.svg"),
            ("rss_mb", "MB", "Server RSS (peak sampled)", "serve-rss.svg"),
        ]:
            fig, ax = plt.subplots(figsize=(6, 3.5))
            values = {(label, s): v[metric] for (label, s), v in table.items()}
            bars(ax, streams, labels, values, ylabel, title)
            ax.set_xlabel("concurrent streams")
            save(fig, name)
    if results.get("route"):
        r = results["route"]
        fig, ax = plt.subplots(figsize=(5, 3.5))
        values = {(n, q): r[n][f"{q}_ms"] for n in ("direct", "routed") for q in ("p50", "p99")}
        bars(ax, ["p50", "p99"], ["direct", "routed"], values, "ms",
             f"Latency at {r['rate_per_s']} req/s: direct vs through route", fmt="%.3f")
        save(fig, "route-latency.svg")
    if results.get("download"):
        best = results["download"]["best"]
        fig, ax = plt.subplots(figsize=(5, 3.5))
        names = ["agent_pull_mb_s", "curl_sha256sum_mb_s", "curl_devnull_mb_s"]
        shown = ["agent pull", "curl | sha256sum", "curl > /dev/null"]
        drawn = ax.bar(shown, [best[n] for n in names], color=["C0", "C1", "C7"])
        ax.bar_label(drawn, fmt="%.0f", fontsize=8)
        ax.set_ylabel("MB/s (best run)")
        ax.set_title("Download + verify over loopback")
        save(fig, "download.svg")
    print("\n".join(written))


def print_serve_table(rows):
    t = serve_table(rows)
    rounds = len({r["round"] for r in rows})
    print(f"Serve, median of {rounds} round(s); ratio = agent / llama-server.\n")
    print("| streams | metric | agent | llama-server | ratio |\n| --- | --- | --- | --- | --- |")
    for s in sorted({s for _, s in t}):
        for m, name in [("gen_tok_s_per_stream_p50", "tok/s per stream (p50)"),
                        ("aggregate_tok_s", "aggregate tok/s"),
                        ("ttft_p50_ms", "TTFT p50 (ms)"), ("rss_mb", "RSS (MB)")]:
            a = t.get(("agent", s), {}).get(m)
            b = t.get(("llama-server", s), {}).get(m)
            ratio = f"{a / b:.2f}x" if a is not None and b else "-"
            fmt = lambda v: "-" if v is None else f"{v:.1f}"
            print(f"| {s} | {name} | {fmt(a)} | {fmt(b)} | {ratio} |")
    print()


def table(results_path):
    results = json.load(open(results_path))
    if results.get("serve"):
        print_serve_table(results["serve"])
    if results.get("route"):
        r = results["route"]
        print(f"Route, {r['rate_per_s']} req/s for {r['seconds']} s.\n")
        print("| | n | p50 (ms) | p99 (ms) | max (ms) |\n| --- | --- | --- | --- | --- |")
        for n in ("direct", "routed"):
            print(f"| {n} | {r[n]['n']} | {r[n]['p50_ms']:.3f} | {r[n]['p99_ms']:.3f} "
                  f"| {r[n]['max_ms']:.3f} |")
        print(f"| added | | {r['added_p50_ms']:+.3f} | {r['added_p99_ms']:+.3f} | |\n")
    if results.get("download"):
        d = results["download"]
        print(f"Download of {d['bytes']} bytes ({d['file']}).\n")
        print("| run | agent pull (MB/s) | curl \\| sha256sum (MB/s) | curl > /dev/null (MB/s) |")
        print("| --- | --- | --- | --- |")
        for i, r in enumerate(d["runs"] + [d["best"]], 1):
            name = "best" if i > len(d["runs"]) else str(i)
            print(f"| {name} | {r['agent_pull_mb_s']} | {r['curl_sha256sum_mb_s']} "
                  f"| {r['curl_devnull_mb_s']} |")
        print(f"\nRatio of best runs, agent / curl|sha256sum: {d['ratio_best_agent_over_curl']}x\n")
    if results.get("operator"):
        o = results["operator"]
        for r in o["rounds"]:
            print(f"- round {r['round']}: {r['count']} LlmDeployments in {r['elapsed']}, "
                  f"{r['requests']} requests, {r['writes']} writes")
        print(f"- CPU {o['cpu_s']} s, peak RSS {o['peak_rss_mb']} MB")


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    cmd = sys.argv[1]
    if cmd == "plot":
        plot(sys.argv[2], sys.argv[3])
        return
    if cmd == "table":
        table(sys.argv[2])
        return
    if cmd == "serve-table":
        print_serve_table([json.loads(line) for line in open(sys.argv[2]) if line.strip()])
        return
    parsers = {"route": parse_route, "download": parse_download, "operator": parse_operator}
    if cmd not in parsers:
        sys.exit(__doc__)
    print(json.dumps(parsers[cmd](open(sys.argv[2]).read()), indent=2))


if __name__ == "__main__":
    main()
