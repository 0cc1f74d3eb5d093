"""Turning bench/results/results.json into the tables and PNG plots BENCHMARKS.md shows.

Owns the summary arithmetic (largest passing N, min/median over repetitions,
ratios of livecomments to each peer, nchan and Centrifugo, targets met; the
efficiency of fan-out alone, less the no-viewer baseline; the best ingest rate
per store and worker count; how much of the box's CPU the client side took at
the top of each ladder; for the many-videos scenarios, each server's CPU in
cores with nobody posting, RSS per watched video, latency and CPU per delivery
with the posts spread, and the best ingest rate spread over videos) and the
matplotlib figures, which show the hot-video ladder only. Never runs a server.
Results from before the client side's CPU was recorded show it as n/a; those
from before the baseline step have no fan-out-only figure, and those from
before Centrifugo joined show it as n/a.

    python -m bench.report bench/results/results.json   # rewrite summary.md and the PNGs
"""

import json
import statistics
import sys
from pathlib import Path
from typing import Any

SERVERS = ("livecomments", "nchan", "centrifugo")
PEERS = ("nchan", "centrifugo")  # the summary gives livecomments' ratio to each
STORES = {"sqlite": "SQLite", "mongodb": "MongoDB (FerretDB)"}
MANY_VIDEOS_VIEWED = ("quiet", "spread", "zipf")  # the many-videos scenarios with viewers
EFFICIENCY_KEYS = ("server", "rep", "window_s", "cpu_s", "publisher_cpu_s", "delivered")


def _reps(points: list[dict[str, Any]]) -> list[int]:
    return sorted({int(p["rep"]) for p in points})


def largest_passing(points: list[dict[str, Any]], server: str, rep: int, key: str) -> int:
    passing = [p[key] for p in points if p["server"] == server and p["rep"] == rep and p["pass"]]
    return max(passing, default=0)


def _min_median(values: list[float | None]) -> tuple[float, float]:
    """Over the measured values: a step that measured nothing (None) is left out."""
    measured = [value for value in values if value is not None]
    if not measured:
        return float("nan"), float("nan")
    return min(measured), float(statistics.median(measured))


def _fmt(value: float, digits: int = 0) -> str:
    if value != value:  # NaN
        return "n/a"
    return f"{value:,.{digits}f}"


def _head(header: str) -> list[str]:
    """A Markdown table's header row and the separator row under it."""
    return [header, "|" + " --- |" * (header.count("|") - 1)]


def _per_server(points: list[dict[str, Any]], key: str) -> dict[str, tuple[float, float]]:
    """Each server's (min, median) of `key` over its points."""
    return {s: _min_median([p[key] for p in points if p["server"] == s]) for s in SERVERS}


def _compare_head(first: str) -> list[str]:
    """The header of a summary table whose rows are `_compare_row`s."""
    cells = [f"{server} (min / median)" for server in SERVERS]
    cells += [f"livecomments / {peer} (median)" for peer in PEERS]
    return _head(f"| {first} | {' | '.join(cells)} |")


def _compare_row(
    label: str, by_server: dict[str, tuple[float, float]], digits: int = 0, ratio_suffix: str = ""
) -> str:
    """A summary row: each server's (min, median), and livecomments' median over each
    peer's (n/a for a server the results do not have)."""
    cells = [f"{_fmt(by_server[s][0], digits)} / {_fmt(by_server[s][1], digits)}" for s in SERVERS]
    for peer in PEERS:
        peer_median = by_server[peer][1]
        ratio = by_server["livecomments"][1] / peer_median if peer_median else float("nan")
        cells.append(_fmt(ratio, 2) + (ratio_suffix if ratio == ratio else ""))
    return f"| {label} | {' | '.join(cells)} |"


def _optional(point: dict[str, Any], key: str) -> str:
    """A figure that results of older runs may lack (client CPU, box speed), or n/a;
    a [before, after] pair as "before / after"."""
    value = point.get(key, "n/a")
    return " / ".join(map(str, value)) if isinstance(value, list) else str(value)


def ladders(hot: list[dict[str, Any]]) -> list[tuple[str, int, list[dict[str, Any]]]]:
    """Per server and repetition that ran the hot video, its steps in the order of N."""
    found = []
    for server in SERVERS:
        for rep in _reps(hot):
            steps = [p for p in hot if p["server"] == server and p["rep"] == rep]
            if steps:
                found.append((server, rep, sorted(steps, key=lambda p: p["n"])))
    return found


def ladder_tops(hot: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per server and repetition, the last passing hot-video step and the first failing one."""
    tops = []
    for _, _, steps in ladders(hot):
        passing = [p for p in steps if p["pass"]]
        failing = [p for p in steps if not p["pass"]]
        tops += passing[-1:] + failing[:1]
    return tops


def fan_out_only(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Per server and repetition that has both a no-viewer baseline step and a delivering
    efficiency step: the server CPU of the efficiency step less the baseline's, scaled to
    the efficiency step's window, per million comments delivered."""
    eff_n = results["plan"]["efficiency_n"]
    rows = []
    for base in results.get("baseline", []):
        for hot in results["hot"]:
            same = hot["server"] == base["server"] and hot["rep"] == base["rep"]
            if same and hot["n"] == eff_n and hot["delivered"]:
                scaled = base["cpu_s"] * hot["window_s"] / base["window_s"]
                fan_out = hot["cpu_s"] - scaled
                rows.append(
                    {
                        **{key: hot[key] for key in EFFICIENCY_KEYS},
                        "base_window_s": base["window_s"],
                        "base_cpu_s": base["cpu_s"],
                        "base_publisher_cpu_s": base["publisher_cpu_s"],
                        "base_post_rate": base["post_rate"],
                        "fan_out_cpu_s": round(fan_out, 2),
                        "per_million": fan_out / hot["delivered"] * 1e6,
                    }
                )
    return rows


def ingest_label(store: str, workers: int) -> str:
    """How an ingest configuration reads in the tables: "SQLite, 2 workers + NATS"."""
    label = f"{STORES.get(store, store)}, {workers} worker{'s' if workers > 1 else ''}"
    return label + (" + NATS" if workers > 1 else "")  # bench.servers' bus with workers


def ingest_configurations(
    results: dict[str, Any], scenario: str = "ingest"
) -> dict[str, list[dict[str, Any]]]:
    """The points of an ingest scenario by configuration label, in the order they ran.
    Results from before `workers` was recorded ran every configuration with the plan's
    workers."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for point in results.get(scenario, []):
        workers = point.get("workers", results["plan"]["lc_workers"])
        grouped.setdefault(ingest_label(point["store"], workers), []).append(point)
    return grouped


def box_share(point: dict[str, Any], cores: int | None) -> str:
    """Server + load generators + publisher CPU over the window, as % of all the cores."""
    keys = ("cpu_s", "loadgen_cpu_s", "publisher_cpu_s")
    if cores is None or any(key not in point for key in keys):
        return "n/a"
    return f"{100 * sum(point[key] for key in keys) / (cores * point['window_s']):.0f}%"


def summary(results: dict[str, Any]) -> str:
    lines = [f"Command: `{results.get('command', '?')}`  ", f"Machine: {results.get('machine')}  "]
    lines.append(f"Code: {results.get('code', '?')}  ")
    lines.append(f"Elapsed: {results.get('elapsed_s')} s\n")
    hot, idle, ingest = results["hot"], results["idle"], results["ingest"]
    fan_out_scenarios = ("hot", "idle", *MANY_VIDEOS_VIEWED)
    configs = {p["server"]: p["config"] for s in fan_out_scenarios for p in results.get(s, [])}
    lines.append("Configurations: " + "; ".join(f"{k}: {v}" for k, v in configs.items()) + "\n")
    eff_n = results["plan"]["efficiency_n"]
    fan_out = fan_out_only(results)
    if hot:
        rows = _compare_head("scenario")
        largest = {
            s: _min_median([largest_passing(hot, s, r, "n") for r in _reps(hot)]) for s in SERVERS
        }
        efficiency = {
            s: _min_median(
                [
                    p["cpu_s_per_million"]
                    for p in hot
                    if p["server"] == s and p["n"] == eff_n and p["cpu_s_per_million"]
                ]
            )
            for s in SERVERS
        }
        rows.append(
            _compare_row(
                "1. hot video: largest N with p99 < 200 ms, no loss "
                f"(R={results['plan']['hot_rate']}/s)",
                largest,
                ratio_suffix="x",
            )
        )
        rows.append(
            _compare_row(
                f"2. efficiency: server CPU-s per million deliveries (N={eff_n})",
                efficiency,
                digits=1,
            )
        )
        if fan_out:
            rows.append(
                _compare_row(
                    "2. efficiency, fan-out only: the same, less the server CPU at N=0",
                    _per_server(fan_out, "per_million"),
                    digits=1,
                )
            )
        if idle:
            rows.append(
                _compare_row(
                    f"3. idle: RSS bytes per SSE connection (N={_fmt(idle[0]['n'])})",
                    _per_server(idle, "bytes_per_conn"),
                )
            )
        lines += [*rows, ""]
    if ingest:
        lines += [*_best_ingest(results, "ingest", "4. ingest into one video"), ""]
    lines += many_videos_summary(results)
    if hot:
        lines.append("### Every hot-video step\n")
        lines += _head(
            "| server | rep | N | connected | posts/s | p50 ms | p90 ms | p99 ms | max ms "
            "| delivered/s | missing | holes/dup/reorder | closed "
            "| server CPU s | CPU s per M | loadgen CPU s | publisher CPU s | RSS MB | pass |"
        )
        for p in hot:
            lines.append(
                f"| {p['server']} | {p['rep']} | {p['n']} | {p['connected']} | {p['post_rate']} "
                f"| {p['p50_ms']} "
                f"| {p['p90_ms']} | {p['p99_ms']} | {p['max_ms']} | {_fmt(p['delivered_per_s'])} "
                f"| {p['missing']} | {p['holes']}/{p['duplicates']}/{p['reordered']} "
                f"| {p['closed']} "
                f"| {p['cpu_s']} | {p['cpu_s_per_million']} | {_optional(p, 'loadgen_cpu_s')} "
                f"| {_optional(p, 'publisher_cpu_s')} | {p['rss_mb']} | {p['pass']} |"
            )
        cores = results.get("cores")
        lines.append("\n### CPU at the top of each ladder, server and client side\n")
        lines.append(
            f"The load generators and the publisher share the {cores or '?'} cores with the "
            "server. Per server and repetition, the last passing step and the first failing "
            "one: CPU seconds in the measured window, and all three together as a share of "
            "what the cores could give in that window.\n"
        )
        lines += _head(
            "| server | rep | N | pass | window s | server CPU s | loadgen CPU s "
            "| publisher CPU s | share of the box |"
        )
        for p in ladder_tops(hot):
            lines.append(
                f"| {p['server']} | {p['rep']} | {p['n']} | {p['pass']} | {p['window_s']} "
                f"| {p['cpu_s']} | {_optional(p, 'loadgen_cpu_s')} "
                f"| {_optional(p, 'publisher_cpu_s')} | {box_share(p, cores)} |"
            )
    if fan_out:
        lines.append("\n### Efficiency, fan-out only\n")
        lines.append(
            f"Server CPU in the N={eff_n} step less that of a step with the same publisher "
            f"and no viewers (N=0), scaled to the N={eff_n} step's window, per million "
            "comments delivered in that window.\n"
        )
        lines += _head(
            f"| server | rep | N={eff_n}: window s | server CPU s | publisher CPU s "
            "| N=0: window s | server CPU s | publisher CPU s | posts/s "
            "| fan-out CPU s | delivered | fan-out CPU s per M |"
        )
        for f in fan_out:
            lines.append(
                f"| {f['server']} | {f['rep']} | {f['window_s']} | {f['cpu_s']} "
                f"| {f['publisher_cpu_s']} "
                f"| {f['base_window_s']} | {f['base_cpu_s']} | {f['base_publisher_cpu_s']} "
                f"| {f['base_post_rate']} | {f['fan_out_cpu_s']} | {_fmt(f['delivered'])} "
                f"| {_fmt(f['per_million'], 2)} |"
            )
    if idle:
        lines.append("\n### Idle connections\n")
        lines += _head(
            "| server | rep | N | connected | RSS before MB | RSS after MB | bytes/conn |"
        )
        for p in idle:
            lines.append(
                f"| {p['server']} | {p['rep']} | {p['n']} | {p['connected']} "
                f"| {p['rss_before_mb']} | {p['rss_after_mb']} | {_fmt(p['bytes_per_conn'])} |"
            )
    if ingest:
        lines += ["\n### Every ingest step\n", *_ingest_steps(results, "ingest")]
    lines += many_videos_steps(results)
    return "\n".join(lines) + "\n"


def _best_ingest(results: dict[str, Any], scenario: str, title: str) -> list[str]:
    """Per configuration, the highest rate that passed, min / median over repetitions."""
    rows = _head(f"| {title}, p99 post < 50 ms | highest rate (min / median) |")
    for label, points in ingest_configurations(results, scenario).items():
        best = _min_median(
            [
                max((p["rate"] for p in points if p["rep"] == r and p["pass"]), default=0)
                for r in _reps(points)
            ]
        )
        rows.append(f"| livecomments, {label} | {_fmt(best[0])} / {_fmt(best[1])} /s |")
    return rows


def _ingest_steps(results: dict[str, Any], scenario: str) -> list[str]:
    rows = _head(
        "| configuration | rep | rate/s | posts/s | posted | failed "
        "| p50 ms | p99 ms | max ms | server CPU s | publisher CPU s "
        "| box CPU ms before / after | box fsync ms before / after | pass |"
    )
    for label, points in ingest_configurations(results, scenario).items():
        for p in points:
            rows.append(
                f"| {label} | {p['rep']} | {p['rate']} | {p['post_rate']} | {p['posted']} "
                f"| {p['post_failed']} "
                f"| {p['p50_ms']} | {p['p99_ms']} | {p['max_ms']} | {p['cpu_s']} "
                f"| {_optional(p, 'publisher_cpu_s')} "
                f"| {_optional(p, 'box_cpu_ms')} | {_optional(p, 'box_fsync_ms')} "
                f"| {p['pass']} |"
            )
    return rows


def many_videos_summary(results: dict[str, Any]) -> list[str]:
    """The many-videos scenarios' comparison table, and the best ingest rate over videos."""
    quiet = results.get("quiet", [])
    lines: list[str] = []
    rows = _compare_head("many videos")
    for count in sorted({p["videos"] for p in quiet}):
        points = [p for p in quiet if p["videos"] == count]
        label = f"5. quiet, {_fmt(count)} videos x 1 viewer"
        rows.append(_compare_row(f"{label}: server CPU, cores", _per_server(points, "cores"), 3))
        rows.append(
            _compare_row(
                f"{label}: RSS bytes per watched video", _per_server(points, "bytes_per_conn")
            )
        )
    for scenario, points in _spread_points(results).items():
        shape = f"{_fmt(points[0]['videos'])} videos, {_fmt(points[0]['n'])} viewers"
        label = f"{scenario} ({shape}, {_fmt(points[0]['rate'])} posts/s)"
        for key, what, digits in (
            ("post_rate", "posts/s accepted", 0),
            ("p50_ms", "p50 ms", 1),
            ("p99_ms", "p99 ms", 1),
            ("cpu_s_per_million", "server CPU-s per million deliveries", 0),
        ):
            rows.append(_compare_row(f"{label}: {what}", _per_server(points, key), digits))
    if len(rows) > 2:
        lines += [*rows, ""]
    if results.get("ingest-spread"):
        videos = _fmt(results["ingest-spread"][0]["videos"])
        lines += [*_best_ingest(results, "ingest-spread", f"8. ingest over {videos} videos"), ""]
    return lines


def _spread_points(results: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The points of the scenarios with posts spread over many viewed videos, by label."""
    labels = {"spread": "6. spread", "zipf": "7. zipf"}
    return {label: results[s] for s, label in labels.items() if results.get(s)}


def many_videos_steps(results: dict[str, Any]) -> list[str]:
    """Every step of the many-videos scenarios."""
    lines: list[str] = []
    quiet = results.get("quiet", [])
    if quiet:
        lines.append("\n### Many videos: quiet (one viewer each, nobody posting)\n")
        lines += _head(
            "| server | rep | videos | connected | connect s | window s | server CPU s | cores "
            "| loadgen CPU s | data events | RSS before MB | RSS after MB "
            "| bytes per watched video | pass |"
        )
        for p in quiet:
            lines.append(
                f"| {p['server']} | {p['rep']} | {p['videos']} | {p['connected']} "
                f"| {p['connect_s']} | {p['window_s']} | {p['cpu_s']} | {p['cores']} "
                f"| {p['loadgen_cpu_s']} "
                f"| {p['events']} | {p['rss_before_mb']} | {p['rss_after_mb']} "
                f"| {_fmt(p['bytes_per_conn'])} | {p['pass']} |"
            )
    for label, points in _spread_points(results).items():
        lines.append(f"\n### Many videos: {label}\n")
        lines += _head(
            "| server | rep | videos | viewers | connected | connect s | offered/s | posts/s "
            "| p50 ms | p99 ms | max ms | latency samples | delivered/s | missing | extra "
            "| holes/dup/reorder | closed | server CPU s | CPU s per M | loadgen CPU s "
            "| publisher CPU s | RSS MB | pass |"
        )
        for p in points:
            lines.append(
                f"| {p['server']} | {p['rep']} | {p['videos']} | {p['n']} | {p['connected']} "
                f"| {p['connect_s']} | {p['rate']} | {p['post_rate']} | {p['p50_ms']} "
                f"| {p['p99_ms']} "
                f"| {p['max_ms']} | {p['samples']} | {_fmt(p['delivered_per_s'])} "
                f"| {p['missing']} | {p['extra']} "
                f"| {p['holes']}/{p['duplicates']}/{p['reordered']} | {p['closed']} "
                f"| {p['cpu_s']} | {p['cpu_s_per_million']} | {p['loadgen_cpu_s']} "
                f"| {p['publisher_cpu_s']} | {p['rss_mb']} | {p['pass']} |"
            )
    if results.get("ingest-spread"):
        lines.append("\n### Many videos: every ingest-spread step\n")
        lines += _ingest_steps(results, "ingest-spread")
    return lines


def plots(results: dict[str, Any], folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hot = results["hot"]
    if not hot:
        return
    colours = {"livecomments": "tab:blue", "nchan": "tab:orange", "centrifugo": "tab:green"}
    figure, axes = plt.subplots(figsize=(8, 5))
    for server, rep, points in ladders(hot):
        ns = [p["n"] for p in points]
        for key, style in (("p50_ms", ":"), ("p90_ms", "--"), ("p99_ms", "-")):
            label = f"{server} {key[:-3]}" if rep == 1 else None
            axes.plot(
                ns,
                [p[key] for p in points],
                style,
                marker="o",
                color=colours[server],
                label=label,
                alpha=1.0 if rep == 1 else 0.5,
            )
    axes.axhline(200, color="grey", linewidth=0.8)
    _save(
        figure,
        folder / "latency_vs_n.png",
        xlabel="viewers N (one video, 1,000 comments/s)",
        ylabel="end-to-end latency, ms",
        title="Latency percentiles vs N (every repetition)",
    )
    figure, axes = plt.subplots(figsize=(8, 5))
    for server, rep, points in ladders(hot):
        axes.plot(
            [p["n"] for p in points],
            [p["delivered_per_s"] for p in points],
            marker="o",
            color=colours[server],
            alpha=1.0 if rep == 1 else 0.5,
            label=server if rep == 1 else None,
        )
    ns = sorted({p["n"] for p in hot})
    axes.plot(
        ns,
        [n * results["plan"]["hot_rate"] for n in ns],
        color="grey",
        linewidth=0.8,
        label="offered (N x R)",
    )
    _save(
        figure,
        folder / "delivered_vs_n.png",
        xlabel="viewers N",
        ylabel="delivered comments/s",
        title="Delivered comments/s vs N",
    )


def _save(figure: Any, path: Path, **labels: str) -> None:
    """Log-log axes with `labels`, a legend, written to `path` as PNG."""
    import matplotlib.pyplot as plt

    axes = figure.axes[0]
    axes.set(xscale="log", yscale="log", **labels)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


if __name__ == "__main__":
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results/results.json")
    data = json.loads(path.read_text())
    (path.parent / "summary.md").write_text(summary(data))
    plots(data, path.parent)
    print(summary(data))
