#!/usr/bin/env python3
"""Draw a `fawkes-bench soak` CSV as a PNG: server RSS, open files and
tasks over time (top), connections and presences (bottom), with the quiet
windows (no clients) shaded.

    python3 bench/scripts/soak_chart.py soak.csv docs/soak.png

Needs matplotlib (Debian: apt-get install python3-matplotlib).
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def number(text):
    try:
        return float(text)
    except ValueError:
        return float("nan")


def main(source, target):
    with open(source, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        sys.exit(f"{source}: no samples")
    minutes = [number(r["t_s"]) / 60 for r in rows]
    column = lambda name: [number(r[name]) for r in rows]  # noqa: E731
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    # Shade the quiet windows.
    start = None
    for i, r in enumerate(rows):
        quiet = r["phase"] == "quiet"
        if quiet and start is None:
            start = minutes[i - 1] if i > 0 else minutes[i]
        if start is not None and (not quiet or i == len(rows) - 1):
            for ax in (top, bottom):
                ax.axvspan(start, minutes[i], color="0.9", zorder=0)
            start = None
    top.plot(minutes, [v / 1024 for v in column("rss_kib")], label="RSS (MiB)", color="tab:red")
    top.set_ylabel("server RSS (MiB)")
    top.set_ylim(bottom=0)
    right = top.twinx()
    right.plot(minutes, column("open_fds"), label="open files", color="tab:blue")
    right.plot(minutes, column("tasks_alive"), label="tasks alive", color="tab:green")
    right.set_ylabel("open files, tasks")
    right.set_ylim(bottom=0)
    lines = top.get_lines() + right.get_lines()
    top.legend(lines, [l.get_label() for l in lines], loc="upper left")
    top.set_title("fawkes soak: server resources (grey: quiet windows, no clients)")
    bottom.plot(minutes, column("ws_connections"), label="websocket sessions")
    bottom.plot(minutes, column("longpoll_connections"), label="longpoll sessions")
    bottom.plot(minutes, column("channels_joined"), label="channels joined")
    bottom.plot(minutes, column("presence_entries"), label="presence entries")
    bottom.set_xlabel("minutes")
    bottom.set_ylim(bottom=0)
    bottom.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(target, dpi=90)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
