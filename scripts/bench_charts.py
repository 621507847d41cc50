#!/usr/bin/env python3
"""Draws the benchmark report's charts with gnuplot (`make bench`, through
scripts/bench.sh). Standard library only: this script reads the
tab-separated figures the benchmarks write with --tsv, prepares gnuplot's
data files and scripts, and runs gnuplot (Debian: gnuplot-nox) once per chart.

  bench_charts.py DATA_DIR OUT_DIR [--md FILE] [--link-prefix charts/]

DATA_DIR holds what scripts/bench.sh collected: kernels.tsv (bench-kernels),
e2e-*.tsv (bench-e2e), load-*.tsv (bitnet-load), and beside each NAME.tsv a
NAME.cmd with the command that produced it (quoted in the captions). Charts,
each drawn only when its data is there:

  e2e.png         decode and prefill tokens/s, bitnetd against llama.cpp, per
                  model and thread count
  kernels.png     kernel weight GB/s as a fraction of the measured read
                  bandwidth, per kernel and thread count (batch 1)
  aggregate.png   aggregate decode tokens/s against concurrent sequences
  load.png        time to first text and call latency, p50 and p99, against
                  concurrent generations (bitnet-load)

Every chart carries the machine, the command(s) and the run count in its
footer; --md writes the same as a markdown section that links the PNGs.
Exit status: 0, or 1 when gnuplot failed on a chart or is missing.
"""
import argparse
import csv
import glob
import math
import os
import re
import shutil
import subprocess
import sys


def machine():
    """The CPU's model name and the number of online CPUs."""
    brand = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    brand = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "%s, %d CPUs" % (brand, os.cpu_count() or 0)


def read_tsv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def command_of(tsv_path):
    """The command recorded beside a data file (scripts/bench.sh writes it
    with paths relative to the checkout)."""
    try:
        with open(tsv_path[: -len(".tsv")] + ".cmd") as f:
            return f.read().strip()
    except OSError:
        return "(command not recorded)"


def quote(s):
    """A string as a gnuplot string constant (double quotes)."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def number(s):
    try:
        v = float(s)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def fmt(v):
    return "?" if v is None else "%.6g" % v


class Chart:
    """One PNG: a gnuplot script, its data files and its caption."""

    def __init__(self, out_dir, name, title, width, height):
        self.out_dir = out_dir
        self.name = name
        self.title = title
        self.width, self.height = width, height  # pixels, without the footer
        self.png = name + ".png"  # gnuplot runs in out_dir: its scripts redraw there
        self.lines = []
        self.caption = []

    def data(self, suffix, rows):
        """Writes rows (lists of cells; strings are quoted) to a data file
        beside the PNG and returns its name."""
        name = "%s-%s.dat" % (self.name, suffix)
        with open(os.path.join(self.out_dir, name), "w") as f:
            for r in rows:
                f.write(" ".join(quote(c) if isinstance(c, str) else fmt(c) for c in r) + "\n")
        return name

    def footer_lines(self):
        """The caption as the PNG's footer: without the output options of the
        commands (the markdown caption has them), wrapped to the width."""
        text = re.sub(r" --(out|tsv) [^\s;]+?(?=[.;]?(\s|$))", "", " ".join(self.caption))
        out, line = [], ""
        for w in text.split(" "):
            if line and len(line) + 1 + len(w) > self.width // 7:
                out.append(line)
                line = w
            else:
                line = (line + " " + w).strip()
        if line:
            out.append(line)
        return out

    def footer_px(self):
        return 14 * len(self.footer_lines()) + 14

    def y(self, frac):
        """A height in the plot area (0 its bottom, 1 its top) in screen
        coordinates, the footer being below the plot area."""
        f = self.footer_px()
        return (f + frac * self.height) / (f + self.height)

    def below_top(self, px):
        """Screen coordinate px pixels below the top of the PNG."""
        return 1 - px / (self.footer_px() + self.height)

    def draw(self):
        """Runs gnuplot; returns True when the PNG was written."""
        total = self.height + self.footer_px()
        footer = "\\n".join(s.replace("\\", "\\\\").replace('"', '\\"')
                             for s in self.footer_lines())
        head = [
            'set terminal pngcairo size %d,%d font "sans,10" noenhanced' % (self.width, total),
            "set output %s" % quote(self.png),
            "set datafile missing '?'",
            'set label 1 "%s" at screen 0.01, screen %.4f left front font "sans,8"'
            % (footer, (self.footer_px() - 12) / total),
        ]
        script = self.name + ".gp"
        with open(os.path.join(self.out_dir, script), "w") as f:
            f.write("\n".join(head + self.lines) + "\nunset output\n")
        r = subprocess.run(["gnuplot", script], cwd=self.out_dir, capture_output=True, text=True)
        png = os.path.join(self.out_dir, self.png)
        if r.returncode != 0 or not os.path.isfile(png) or os.path.getsize(png) == 0:
            sys.stderr.write("bench_charts: gnuplot failed on %s:\n%s"
                             % (os.path.join(self.out_dir, script), r.stderr))
            return False
        return True


def model_label(row):
    name = row["model"]
    for ext in (".gguf",):
        if name.endswith(ext):
            name = name[: -len(ext)]
    if row.get("lm_head", "native") != "native":
        name += " (%s head)" % row["lm_head"]
    return name


# ---- (a) decode and prefill, bitnetd against llama.cpp ----


def bar_labels(dat, n_series, fmt_="%.1f"):
    """gnuplot plot items that print each bar's value above it, for a
    clustered histogram of n_series columns (2..) with gap 1."""
    items = []
    for i in range(n_series):
        off = (i - (n_series - 1) / 2.0) / (n_series + 1)
        col = i + 2
        items.append(
            "%s using ($0%+.4f):%d:(sprintf('%s', $%d)) with labels offset 0,0.6 font 'sans,7'"
            " notitle" % (quote(dat), off, col, fmt_, col)
        )
    return ", ".join(items)


def chart_e2e(data_dir, out_dir, where):
    files = sorted(glob.glob(os.path.join(data_dir, "e2e-*.tsv")), key=lambda p: p[:-4])
    if not files:
        return None
    # (model label, threads[, prompt tokens]) -> engine -> tokens/s, in file order.
    decode, prefill, runs, cmds = {}, {}, set(), []
    for path in files:
        rows = read_tsv(path)
        cmds.append(command_of(path))
        for r in rows:
            v = number(r["value"])
            key = (model_label(r), int(r["threads"]))
            if r["metric"] == "tg":
                decode.setdefault(key, {})[r["engine"]] = v
                runs.add(int(r["runs"]))
            elif r["metric"] == "pp":
                pkey = key + (int(r["n"]),)
                prefill.setdefault(pkey, {})[r["engine"]] = v
                runs.add(int(r["runs"]))
    c = Chart(out_dir, "e2e", "Decode and prefill tokens/s, bitnetd and llama.cpp", 1500, 680)
    tg_rows = [
        ["%s, %d thr" % k, e.get("bitnetd"), e.get("llama.cpp")] for k, e in decode.items()
    ]
    pp_rows = [
        ["%s, pp%d, %d thr" % (k[0], k[2], k[1]), e.get("bitnetd"), e.get("llama.cpp")]
        for k, e in prefill.items()
    ]
    tg = c.data("decode", tg_rows)
    pp = c.data("prefill", pp_rows)
    c.caption = [
        "Machine: %s." % where,
        "Commands: %s." % "; ".join(cmds),
        "Medians of %s runs per bar (same files and threads for both engines)."
        % "/".join(str(x) for x in sorted(runs)),
    ]
    c.lines += [
        "set multiplot layout 1,2 title %s" % quote(c.title),
        "set style data histograms",
        "set style histogram clustered gap 1",
        "set style fill solid 0.8 border -1",
        "set boxwidth 0.9",
        "set grid ytics",
        "set yrange [0:*]",
        "set xtics rotate by -35 left font 'sans,8'",
        "set key top right",
        "set bmargin at screen %.4f" % c.y(0.2),
        "set tmargin at screen %.4f" % c.below_top(60),
        "set ylabel 'tokens/s'",
        "set title 'decode (tgN, one sequence)'",
        "set lmargin at screen 0.06",
        "set rmargin at screen 0.47",
        "plot %s using 2:xtic(1) title 'bitnetd' lc rgb '#1f77b4', '' using 3 title 'llama.cpp'"
        " lc rgb '#ff7f0e', %s" % (quote(tg), bar_labels(tg, 2)),
        "set title 'prefill (ppN, one batch)'",
        "set lmargin at screen 0.55",
        "set rmargin at screen 0.98",
        "plot %s using 2:xtic(1) title 'bitnetd' lc rgb '#1f77b4', '' using 3 title 'llama.cpp'"
        " lc rgb '#ff7f0e', %s" % (quote(pp), bar_labels(pp, 2, "%.0f")),
        "unset multiplot",
    ]
    return c if c.draw() else False


# ---- (b) kernel GB/s against the read bandwidth ----


def chart_kernels(data_dir, out_dir, where):
    path = os.path.join(data_dir, "kernels.tsv")
    if not os.path.isfile(path):
        return None
    rows = read_tsv(path)
    # Batch 1 (decode): every shape together, weight bytes over time, as a
    # fraction of the bandwidth at that thread count.
    acc, bw, order, threads, repeats = {}, {}, [], set(), set()
    for r in rows:
        if int(r["batch"]) != 1:
            continue
        name, th = r["kernel"], int(r["threads"])
        us, gbs = number(r["us_per_call"]), number(r["gb_s"])
        if us is None or gbs is None:
            continue
        if name not in order:
            order.append(name)
        threads.add(th)
        repeats.add(int(r["repeats"]))
        bw[th] = number(r["bw_gb_s"])
        a = acc.setdefault((name, th), [0.0, 0.0])
        a[0] += gbs * 1e3 * us  # bytes (GB/s * us = 1e3 bytes)
        a[1] += us
    if not acc:
        return None
    threads = sorted(threads)
    table = []
    for name in order:
        row = [name]
        for th in threads:
            a = acc.get((name, th))
            frac = None
            if a and a[1] > 0 and bw.get(th):
                frac = 100.0 * (a[0] / (a[1] * 1e3)) / bw[th]
            row.append(frac)
        table.append(row)
    c = Chart(out_dir, "kernels",
              "Kernel weight bandwidth as a share of the measured read bandwidth", 1200, 600)
    dat = c.data("frac", table)
    bws = ["%.2f GB/s with %d thread%s" % (bw[t], t, "s" if t > 1 else "") for t in threads]
    c.caption = [
        "Machine: %s." % where,
        "Read bandwidth: %s." % ", ".join(bws),
        "One activation row (decode); weight bytes over time summed over the four 2B4T shapes.",
        "Command: %s. Medians of %s repeats per shape."
        % (command_of(path), "/".join(str(x) for x in sorted(repeats))),
    ]
    plots = []
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"]
    for i, th in enumerate(threads):
        plots.append(
            "%s using %d%s title '%d thread%s' lc rgb '%s'"
            % ("''" if i else quote(dat), i + 2, ":xtic(1)" if i == 0 else "", th,
               "s" if th > 1 else "", colors[i % len(colors)])
        )
    c.lines += [
        "set title %s" % quote(c.title),
        "set style data histograms",
        "set style histogram clustered gap 1",
        "set style fill solid 0.8 border -1",
        "set grid ytics",
        "set yrange [0:*]",
        "set ylabel '% of read bandwidth'",
        "set xtics rotate by -35 left font 'sans,8'",
        "set key top right",
        "set bmargin at screen %.4f" % c.y(0.24),
        "set arrow 1 from graph 0, first 100 to graph 1, first 100 nohead dt 2 lc rgb '#555555'",
        "plot " + ", ".join(plots),
    ]
    return c if c.draw() else False


# ---- (c) aggregate decode against concurrent sequences ----


def chart_aggregate(data_dir, out_dir, where):
    files = sorted(glob.glob(os.path.join(data_dir, "e2e-*.tsv")), key=lambda p: p[:-4])
    series, runs, cmds, xs = {}, set(), [], set()
    for path in files:
        used = False
        for r in read_tsv(path):
            if r["metric"] != "agg":
                continue
            v = number(r["value"])
            key = "%s %s, %s thr" % (r["engine"], model_label(r), r["threads"])
            series.setdefault(key, []).append((int(r["n"]), v))
            runs.add(int(r["runs"]))
            xs.add(int(r["n"]))
            used = True
        if used:
            cmds.append(command_of(path))
    if not series:
        return None
    c = Chart(out_dir, "aggregate", "Aggregate decode throughput against concurrent sequences",
              1100, 600)
    plots = []
    for i, (key, pts) in enumerate(series.items()):
        dat = c.data("s%d" % i, sorted(pts))
        plots.append("%s using 1:2 with linespoints lw 2 pt %d title %s"
                     % (quote(dat), 5 + i, quote(key)))
    c.caption = [
        "Machine: %s." % where,
        "S sequences decode 16 steps together, one engine batch per step (bench-e2e, in-process).",
        "Commands: %s." % "; ".join(cmds),
        "Medians of %s runs per point." % "/".join(str(x) for x in sorted(runs)),
    ]
    c.lines += [
        "set title %s" % quote(c.title),
        "set logscale x 2",
        "set xtics (%s)" % ", ".join("'%d' %d" % (x, x) for x in sorted(xs)),
        "set xrange [%g:%g]" % (min(xs) / 1.3, max(xs) * 1.3),
        "set yrange [0:*]",
        "set grid",
        "set xlabel 'concurrent sequences'",
        "set ylabel 'generated tokens/s, all sequences'",
        "set key top left",
        "set bmargin at screen %.4f" % c.y(0.1),
        "plot " + ", ".join(plots),
    ]
    return c if c.draw() else False


# ---- (d) latency under load ----


def chart_load(data_dir, out_dir, where):
    files = glob.glob(os.path.join(data_dir, "load-*.tsv"))
    if not files:
        return None
    # generations -> call -> metric -> value
    by_g, cmds, secs = {}, [], set()
    for path in files:
        rows = read_tsv(path)
        if not rows:
            continue
        g = int(rows[0]["generations"])
        secs.add(rows[0]["seconds"])
        cmds.append((g, command_of(path)))
        for r in rows:
            by_g.setdefault(g, {}).setdefault(r["call"], {})[r["metric"]] = number(r["value"])
    if not by_g:
        return None
    gs = sorted(by_g)
    c = Chart(out_dir, "load", "Latency under load (bitnet-load against bitnetd)", 1500, 620)

    def series(call, metric):
        return [[g, by_g[g].get(call, {}).get(metric)] for g in gs]

    ttft = [
        ("Generate (all)", "ttft_p50_ms", "first text p50"),
        ("Generate (all)", "ttft_p99_ms", "first text p99"),
    ]
    calls = [
        ("GetCapabilities", "GetCapabilities"),
        ("Tokenize", "Tokenize"),
        ("Generate (short)", "Generate (short)"),
        ("Generate (long)", "Generate (long)"),
    ]
    left, right = [], []
    for i, (call, metric, title) in enumerate(ttft):
        dat = c.data("ttft%d" % i, series(call, metric))
        left.append("%s using 1:2 with linespoints lw 2 pt %d dt %d lc rgb '#1f77b4' title %s"
                    % (quote(dat), 5 + i, 1 + i, quote(title)))
    colors = ["#2ca02c", "#9467bd", "#d62728", "#8c564b"]
    for i, (call, title) in enumerate(calls):
        if not any(call in by_g[g] for g in gs):
            continue
        for j, q in enumerate(("p50", "p99")):
            dat = c.data("lat%d%s" % (i, q), series(call, q + "_ms"))
            right.append("%s using 1:2 with linespoints lw 2 pt %d dt %d lc rgb '%s' title %s"
                         % (quote(dat), 5 + j, 1 + j, colors[i], quote("%s %s" % (title, q))))
    c.caption = [
        "Machine: %s." % where,
        "One run of %s s per point; p50/p99 over every call of that run (a closed loop per"
        " connection); the daemon: %s." % ("/".join(sorted(secs)), daemon_of(data_dir)),
        "Commands: %s." % "; ".join(cmd for _, cmd in sorted(cmds)),
    ]
    xt = ", ".join("'%d' %d" % (g, g) for g in gs)
    common = [
        "set logscale xy",
        "set xtics (%s)" % xt,
        "set xrange [%g:%g]" % (gs[0] / 1.5, gs[-1] * 1.5),
        "set grid",
        "set xlabel 'concurrent generations'",
        "set ylabel 'ms'",
        "set key top left font 'sans,8'",
        "set bmargin at screen %.4f" % c.y(0.1),
        "set tmargin at screen %.4f" % c.below_top(60),
    ]
    c.lines += ["set multiplot layout 1,2 title %s" % quote(c.title)] + common + [
        "set lmargin at screen 0.06",
        "set rmargin at screen 0.47",
        "set title 'time to first text, every generation'",
        "plot " + ", ".join(left),
        "set lmargin at screen 0.56",
        "set rmargin at screen 0.98",
        "set title 'call latency (send to final reply)'",
        "plot " + ", ".join(right) if right else "",
        "unset multiplot",
    ]
    return c if c.draw() else False


def daemon_of(data_dir):
    try:
        with open(os.path.join(data_dir, "load.daemon")) as f:
            return f.read().strip()
    except OSError:
        return "see the load tables"


def main():
    ap = argparse.ArgumentParser(description="Draws bench/REPORT.md's charts with gnuplot.")
    ap.add_argument("data_dir")
    ap.add_argument("out_dir")
    ap.add_argument("--md", help="write a markdown section linking the charts")
    ap.add_argument("--link-prefix", default="charts/", help="the charts' path from the markdown")
    a = ap.parse_args()
    if not shutil.which("gnuplot"):
        sys.stderr.write("bench_charts: gnuplot not found (Debian: apt-get install gnuplot-nox)\n")
        return 1
    os.makedirs(a.out_dir, exist_ok=True)
    where = machine()
    failed, made = False, []
    for fn in (chart_e2e, chart_kernels, chart_aggregate, chart_load):
        try:
            c = fn(a.data_dir, a.out_dir, where)
        except (KeyError, ValueError, IndexError) as e:
            sys.stderr.write("bench_charts: %s: unexpected data in %s (%r)\n"
                             % (fn.__name__, a.data_dir, e))
            c = False
        if c is False:
            failed = True
        elif c is not None:
            made.append(c)
            print("wrote %s" % os.path.join(a.out_dir, c.png))
    if a.md:
        with open(a.md, "w") as f:
            f.write("## Charts\n\n")
            for c in made:
                f.write("### %s\n\n![%s](%s%s.png)\n\n%s\n\n"
                        % (c.title, c.title, a.link_prefix, c.name, " ".join(c.caption)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
