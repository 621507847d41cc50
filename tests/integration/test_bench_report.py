#!/usr/bin/env python3
"""The benchmark report's machine-readable side: the tab-separated figures
that bench-kernels, bench-e2e, bench-protocol and bitnet-load write with
--tsv, checked against the markdown tables the same runs wrote, and the
charts scripts/bench_charts.py draws from them with gnuplot.

Every benchmark runs for real, on a tiny bitnet-mkmodel model with one run
and short timings (figures meaningless, a second or two each); bitnet-load
drives a real bitnetd. The figures themselves are never checked, only that
both outputs of one run say the same and that the charts come out.

Usage: test_bench_report.py BITNETD MKMODEL BENCH_KERNELS BENCH_E2E BENCH_PROTOCOL
                            BITNET_LOAD BENCH_CHARTS_PY
"""
import csv
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture import GUARD_SECONDS, Daemon  # noqa: E402

BITNETD = MKMODEL = KERNELS = E2E = PROTOCOL = LOAD = CHARTS = None
D = {}  # the data directory, the model and the commands run


def run(name, argv):
    """Runs one benchmark, keeping its command line as NAME.cmd beside its
    data the way scripts/bench.sh does."""
    with open(os.path.join(D["dir"], name + ".cmd"), "w") as f:
        f.write(" ".join(argv) + "\n")
    D[name] = " ".join(argv)
    r = subprocess.run(argv, capture_output=True, timeout=GUARD_SECONDS * 4)
    if r.returncode != 0:
        raise RuntimeError("%s failed (%d):\n%s%s" % (argv[0], r.returncode,
                                                       r.stdout.decode(), r.stderr.decode()))


def setUpModule():
    D["dir"] = tempfile.mkdtemp(prefix="bitnetd-bench-report-")
    os.chmod(D["dir"], 0o755)
    data = D["dir"]
    model = os.path.join(data, "tiny.gguf")
    subprocess.run([MKMODEL, "--arch", "bitnet-b1.58", "--preset", "tiny", "--type", "i2s",
                    "--seed", "1", "-o", model], check=True, capture_output=True)
    p = lambda name: os.path.join(data, name)  # noqa: E731
    run("kernels", [KERNELS, "--quick", "--only", "tq2_0.scalar", "--out", p("kernels.md"),
                    "--tsv", p("kernels.tsv")])
    run("e2e-tiny", [E2E, "--model", model, "--runs", "1", "--agg-runs", "1", "--pp", "16",
                     "--tg", "8", "--seqs", "1,2", "--threads", "1", "--bw-mib", "16",
                     "--out", p("e2e-tiny.md"), "--tsv", p("e2e-tiny.tsv")])
    run("protocol", [PROTOCOL, "--bitnetd", BITNETD, "--model", model, "--conns", "1,2",
                     "--calls", "50", "--tokens", "8", "--runs", "1", "--out", p("protocol.md"),
                     "--tsv", p("protocol.tsv")])
    d = Daemon(BITNETD, config="n_seq_max = 2\nmax_queued_jobs = 4\n",
               args=["--model", model, "--threads", "1"])
    try:
        for g in (1, 2):
            run("load-%d" % g, [LOAD, "--socket", d.socket, "--generations", str(g),
                                "--seconds", "2", "--out", p("load-%d.md" % g),
                                "--tsv", p("load-%d.tsv" % g)])
        if d.stop() != 0:
            raise RuntimeError("bitnetd did not exit cleanly:\n" + d.log_text())
    finally:
        d.close()


def tearDownModule():
    shutil.rmtree(D["dir"], ignore_errors=True)


def tsv(name):
    with open(os.path.join(D["dir"], name), newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def md_rows(name, first_cell=None):
    """The body rows of the markdown tables in a file, as lists of cells."""
    rows = []
    with open(os.path.join(D["dir"], name)) as f:
        for line in f:
            if not line.startswith("|") or set(line.strip()) <= set("|-: "):
                continue
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if first_cell is None or cells[0] == first_cell:
                rows.append(cells)
    return rows


class BenchReport(unittest.TestCase):
    def assertSameFigure(self, tsv_value, md_text):
        """The markdown printed the same number to fewer decimals."""
        decimals = len(md_text.split(".")[1]) if "." in md_text else 0
        self.assertLessEqual(abs(float(tsv_value) - float(md_text)),
                             0.5 * 10 ** -decimals + 1e-4, (tsv_value, md_text))

    def test_kernels_tsv_has_every_markdown_row(self):
        md = [r for r in md_rows("kernels.md") if r[0] != "kernel"]
        rows = tsv("kernels.tsv")
        self.assertEqual(len(md), len(rows))
        self.assertGreater(len(rows), 0)
        for m, t in zip(md, rows):
            self.assertEqual(m[0], t["kernel"])
            self.assertEqual(m[1], "%sx%s" % (t["rows"], t["k"]))
            self.assertEqual((m[2], m[3]), (t["threads"], t["batch"]))
            self.assertSameFigure(t["us_per_call"], m[4])
            self.assertSameFigure(t["gb_s"], m[5])
            self.assertSameFigure(100 * float(t["bw_frac"]), m[6].rstrip("%"))
            self.assertEqual(t["repeats"], "2")  # --quick

    def test_e2e_tsv_matches_the_markdown_row(self):
        (m,) = md_rows("e2e-tiny.md", "bitnetd")
        fig = {(r["metric"], r["n"]): r for r in tsv("e2e-tiny.tsv")}
        self.assertEqual(fig[("tg", "8")]["engine"], "bitnetd")
        self.assertEqual(fig[("tg", "8")]["threads"], "1")
        self.assertEqual(fig[("tg", "8")]["model"], "tiny.gguf")
        # | engine | threads | load ms | pp16 | tg8 | of ceiling | 1 seq | 2 seq | RSS |
        self.assertSameFigure(fig[("pp", "16")]["value"], m[3])
        self.assertSameFigure(fig[("tg", "8")]["value"], m[4])
        self.assertSameFigure(fig[("agg", "1")]["value"], m[6])
        self.assertSameFigure(fig[("agg", "2")]["value"], m[7])
        self.assertEqual(fig[("tg", "8")]["runs"], "1")
        self.assertEqual(fig[("agg", "2")]["runs"], "1")
        ceiling = float(fig[("ceiling", "8")]["value"])
        self.assertSameFigure(100 * float(fig[("tg", "8")]["value"]) / ceiling, m[5].rstrip("%"))

    def test_protocol_tsv_matches_the_markdown(self):
        fig = {(r["section"], r["n"], r["metric"]): r["value"] for r in tsv("protocol.tsv")}
        for conns in ("1", "2"):
            (m,) = md_rows("protocol.md", conns)
            self.assertSameFigure(fig[("roundtrip", conns, "calls_s")], m[2])
            self.assertSameFigure(fig[("roundtrip", conns, "p50_ms")], m[3])
            self.assertSameFigure(fig[("roundtrip", conns, "p99_ms")], m[4])
            self.assertEqual(float(fig[("roundtrip", conns, "errors")]), 0)
        (m,) = md_rows("protocol.md", "bitnetd, streamed over Varlink")
        tokens = [n for (s, n, _) in fig if s == "daemon"][0]
        self.assertSameFigure(fig[("daemon", tokens, "ms_token")], m[1])
        self.assertSameFigure(fig[("daemon", tokens, "first_text_ms")], m[4])

    def test_load_tsv_matches_the_markdown(self):
        for g in (1, 2):
            fig = {(r["call"], r["metric"]): r for r in tsv("load-%d.tsv" % g)}
            self.assertEqual(fig[("run", "lost")]["generations"], str(g))
            self.assertEqual(float(fig[("run", "lost")]["value"]), 0)
            with open(os.path.join(D["dir"], "load-%d.md" % g)) as f:
                text = f.read()
            self.assertIn("%.1f calls/s" % float(fig[("run", "calls_s")]["value"]), text)
            generated = 0
            for m in md_rows("load-%d.md" % g):
                if (m[0], "ok") not in fig:
                    continue
                self.assertEqual(float(fig[(m[0], "ok")]["value"]), float(m[1]), m[0])
                self.assertEqual(float(fig[(m[0], "lost")]["value"]), float(m[3]), m[0])
                if (m[0], "p50_ms") in fig:
                    self.assertSameFigure(fig[(m[0], "p50_ms")]["value"], m[5])
                else:  # no call of this kind ended without an error
                    self.assertEqual(float(m[5]), 0, m[0])
                if m[8]:
                    self.assertSameFigure(fig[(m[0], "ttft_p50_ms")]["value"], m[8])
                    generated += 1
            self.assertGreater(generated, 0)
            # Every generation's first text together lies within the kinds' own.
            lo = min(float(fig[(k, "ttft_p50_ms")]["value"]) for (k, mt) in fig
                     if mt == "ttft_p50_ms" and k != "Generate (all)")
            self.assertGreaterEqual(float(fig[("Generate (all)", "ttft_max_ms")]["value"]), lo)

    @unittest.skipUnless(shutil.which("gnuplot"), "gnuplot missing (scripts/deps.sh)")
    def test_charts_drawn_from_the_figures(self):
        out = os.path.join(D["dir"], "charts")
        md = os.path.join(D["dir"], "charts.md")
        r = subprocess.run([sys.executable, CHARTS, D["dir"], out, "--md", md],
                           capture_output=True, timeout=GUARD_SECONDS)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(md) as f:
            text = f.read()
        for name in ("e2e", "kernels", "aggregate", "load"):
            with open(os.path.join(out, name + ".png"), "rb") as f:
                head = f.read(24)
            self.assertEqual(head[:8], b"\x89PNG\r\n\x1a\n", name)
            width, height = struct.unpack(">II", head[16:24])
            self.assertGreater(width, 0)
            self.assertGreater(height, 0)
            self.assertIn("(charts/%s.png)" % name, text)
            # gnuplot redraws a chart from what was left beside it.
            r = subprocess.run(["gnuplot", name + ".gp"], cwd=out, capture_output=True)
            self.assertEqual(r.returncode, 0, r.stderr)
        # Each caption quotes its command, the machine and the run count.
        self.assertIn(D["e2e-tiny"], text)
        self.assertIn(D["kernels"], text)
        self.assertIn(D["load-2"], text)
        self.assertEqual(text.count("Machine: "), 4)
        self.assertIn("Medians of 1 runs per bar", text)
        self.assertIn("Medians of 2 repeats per shape", text)

    @unittest.skipUnless(shutil.which("gnuplot"), "gnuplot missing (scripts/deps.sh)")
    def test_charts_without_figures_draws_nothing(self):
        empty = tempfile.mkdtemp(dir=D["dir"])
        out = os.path.join(empty, "charts")
        r = subprocess.run([sys.executable, CHARTS, empty, out, "--md", os.path.join(empty, "md")],
                           capture_output=True, timeout=GUARD_SECONDS)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([f for f in os.listdir(out) if f.endswith(".png")], [])


if __name__ == "__main__":
    BITNETD, MKMODEL, KERNELS, E2E, PROTOCOL, LOAD, CHARTS = sys.argv[1:8]
    del sys.argv[1:8]
    unittest.main(verbosity=2)
