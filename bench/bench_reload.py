#!/usr/bin/env python3
"""Reload benchmark: how long io.bitnetd.Admin.ReloadLibrary takes for the
llama shim (validate, load the model in the new library, self-check, switch)
and how long a streaming client waits while it happens.

Starts a real bitnetd with the shim as backend `llama` and a bitnet-mkmodel
model (default: the `large` preset, TQ2_0, SentencePiece vocabulary), then
  1. streams generations for --seconds and records the gaps between text
     replies (the client's view of inter-token time), without reloads;
  2. does the same while reloading the library --reloads times, one after
     the other, and records each reload's timings from its reply.
Prints medians and p99s; --out FILE writes the table as markdown.

Usage: bench_reload.py --bitnetd B --mkmodel M --shim LIB --vocab VOCAB.gguf
                       [--preset large] [--threads 2] [--seconds 20] [--reloads 10]
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time


class Conn:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = b""

    def send(self, obj):
        self.sock.sendall(json.dumps(obj).encode() + b"\0")

    def recv(self):
        while b"\0" not in self.buf:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise RuntimeError("bitnetd closed the connection")
            self.buf += chunk
        msg, _, self.buf = self.buf.partition(b"\0")
        return json.loads(msg)

    def call(self, method, params):
        self.send({"method": method, "parameters": params})
        return self.recv()


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def stream(sock, stop, gaps, tokens):
    """Streams generations until stop is set; appends reply gaps (ms)."""
    c = Conn(sock)
    while not stop.is_set():
        c.send({"method": "io.bitnetd.Inference.Generate", "more": True,
                "parameters": {"prompt": "Once upon a time", "max_tokens": 64}})
        last = None
        while True:
            r = c.recv()
            if "error" in r:
                raise RuntimeError("generation failed: %s" % r)
            now = time.monotonic()
            p = r.get("parameters", {})
            if "text" in p and r.get("continues"):
                if last is not None:
                    gaps.append((now - last) * 1e3)
                last = now
            if not r.get("continues"):
                if p.get("finish_reason") not in ("length", "stop"):
                    raise RuntimeError("stream ended with %s" % p)
                tokens.append(p["usage"]["generated_tokens"])
                break


def phase(sock, seconds, reloads):
    stop = threading.Event()
    gaps, tokens, timings = [], [], []
    errors = []

    def run():
        try:
            stream(sock, stop, gaps, tokens)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    t = threading.Thread(target=run)
    t.start()
    start = time.monotonic()
    admin = Conn(sock)
    done = 0
    while time.monotonic() - start < seconds or done < reloads:
        if done < reloads:
            r = admin.call("io.bitnetd.Admin.ReloadLibrary", {"backend": "llama"})
            if "error" in r:
                errors.append(r)
                break
            p = r["parameters"]
            m = p["models"][0]
            timings.append({"validate": p["timings"]["validate_ms"],
                            "load": m["timings"]["load_ms"],
                            "self_check": m["timings"]["self_check_ms"],
                            "total": p["timings"]["total_ms"],
                            "match": m["self_check"]["match"]})
            done += 1
        else:
            time.sleep(0.1)
    stop.set()
    t.join()
    if errors:
        raise RuntimeError(errors[0])
    return gaps, tokens, timings, time.monotonic() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bitnetd", required=True)
    ap.add_argument("--mkmodel", required=True)
    ap.add_argument("--shim", required=True)
    ap.add_argument("--vocab", required=True)
    ap.add_argument("--preset", default="large")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--reloads", type=int, default=10)
    ap.add_argument("--out")
    a = ap.parse_args()

    d = tempfile.mkdtemp(prefix="bitnetd-bench-reload-")
    os.chmod(d, 0o755)
    libs = os.path.join(d, "libs")
    os.mkdir(libs, 0o755)
    lib = os.path.join(libs, "libbitnet-llama.so")
    shutil.copyfile(a.shim, lib)
    model = os.path.join(d, "model.gguf")
    subprocess.run([a.mkmodel, "--arch", "bitnet", "--preset", a.preset, "--type", "tq2_0",
                    "--seed", "3", "--vocab", a.vocab, "-o", model], check=True,
                   capture_output=True)
    sock = os.path.join(d, "sock")
    log = open(os.path.join(d, "bitnetd.log"), "wb")
    proc = subprocess.Popen([a.bitnetd, "--socket", sock, "--config", "/dev/null",
                             "--threads", str(a.threads), "--n-seq-max", "2",
                             "--backends", "llama=" + lib, "--backend-dirs", libs,
                             "--preference", "llama", "--model", model],
                            stdout=log, stderr=log)
    try:
        for _ in range(600):
            if os.path.exists(sock):
                try:
                    r = Conn(sock).call("io.bitnetd.Query.ListModels", {})
                    if r["parameters"]["models"][0]["state"] == "ready":
                        break
                except (OSError, RuntimeError, KeyError, IndexError):
                    pass
            time.sleep(0.2)
        base_gaps, base_tok, _, base_s = phase(sock, a.seconds, 0)
        rl_gaps, rl_tok, timings, rl_s = phase(sock, a.seconds, a.reloads)
    finally:
        proc.terminate()
        proc.wait()
        log.close()
        shutil.rmtree(d, ignore_errors=True)

    def med(k):
        return pct([t[k] for t in timings], 50)

    rows = [
        ("reloads", "%d (%d self-checks matched)" % (len(timings),
                                                     sum(t["match"] for t in timings))),
        ("validate + dlopen, median ms", "%.1f" % med("validate")),
        ("load the model in the new library, median ms", "%.1f" % med("load")),
        ("self-check, median ms", "%.1f" % med("self_check")),
        ("whole call, median / max ms", "%.1f / %.1f" % (med("total"),
                                                         max(t["total"] for t in timings))),
        ("stream gap without reloads, p50 / p99 / max ms",
         "%.1f / %.1f / %.1f" % (pct(base_gaps, 50), pct(base_gaps, 99), max(base_gaps))),
        ("stream gap during reloads, p50 / p99 / max ms",
         "%.1f / %.1f / %.1f" % (pct(rl_gaps, 50), pct(rl_gaps, 99), max(rl_gaps))),
        ("tokens/s without / during reloads",
         "%.1f / %.1f" % (sum(base_tok) / base_s, sum(rl_tok) / rl_s)),
    ]
    head = "Reload benchmark: llama shim, %s TQ2_0 model, %d threads" % (a.preset, a.threads)
    print(head)
    for k, v in rows:
        print("  %-50s %s" % (k, v))
    if a.out:
        with open(a.out, "w") as f:
            f.write("### %s\n\n| figure | value |\n| --- | --- |\n" % head)
            for k, v in rows:
                f.write("| %s | %s |\n" % (k, v))


if __name__ == "__main__":
    main()
