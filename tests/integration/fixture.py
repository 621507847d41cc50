"""Starts a real bitnetd on a temporary socket and talks to it.

Used by the integration tests. The daemon runs with a datagram
NOTIFY_SOCKET of the test's own, so the test knows when it is READY=1
instead of guessing. $BITNETD_TEST_WRAPPER (e.g. "valgrind
--error-exitcode=99 --leak-check=full") runs the daemon under a tool.
"""
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile

# Long enough for a daemon under valgrind on a busy machine; a healthy run
# never waits for it (these are guards against hangs, not timing checks).
GUARD_SECONDS = 60


def tiny_model_dir(mkmodel, prefix, seed, *extra):
    """A new temporary directory holding tiny.gguf, a tiny bitnet-b1.58 I2_S
    model written by bitnet-mkmodel with this seed (and extra flags).
    Returns (directory, model path); the directory is world-readable, for
    the tests that connect as another user. The caller removes it."""
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o755)
    model = os.path.join(d, "tiny.gguf")
    subprocess.run([mkmodel, "--arch", "bitnet-b1.58", "--preset", "tiny", "--type", "i2s",
                    "--seed", str(seed), *extra, "-o", model], check=True, capture_output=True)
    return d, model


class Daemon:
    def __init__(self, bitnetd, config="", args=(), env=None, start=True):
        self.bitnetd = bitnetd
        self.dir = tempfile.mkdtemp(prefix="bitnetd-it-")
        os.chmod(self.dir, 0o755)
        self.socket = os.path.join(self.dir, "run", "bitnetd.sock")
        self.config = os.path.join(self.dir, "bitnetd.conf")
        self.log = os.path.join(self.dir, "bitnetd.log")
        self.write_config(config)
        self.notify_path = os.path.join(self.dir, "notify")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)
        self.notify.settimeout(GUARD_SECONDS)
        self.args = list(args)
        self.extra_env = env or {}
        self.proc = None
        if start:
            self.start()

    def write_config(self, text):
        with open(self.config, "w") as f:
            f.write(text)

    def environment(self):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("BITNETD_", "LISTEN_", "NOTIFY_", "JOURNAL_"))}
        env["NOTIFY_SOCKET"] = self.notify_path
        env.update(self.extra_env)
        return env

    def command(self):
        wrapper = shlex.split(os.environ.get("BITNETD_TEST_WRAPPER", ""))
        return wrapper + [self.bitnetd, "--socket", self.socket, "--config", self.config,
                          "--log-level", "debug"] + self.args

    def start(self, **popen):
        self.logfile = open(self.log, "ab")
        self.proc = subprocess.Popen(self.command(), env=self.environment(),
                                     stdout=self.logfile, stderr=self.logfile, **popen)
        self.expect("READY=1")

    def expect(self, state):
        """Waits for a notification containing state; returns the messages seen."""
        seen = []
        while True:
            msg = self.notify.recv(4096).decode()
            seen.append(msg)
            if state in msg.split("\n"):
                return seen

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(GUARD_SECONDS)
        s.connect(self.socket)
        return s

    def log_text(self):
        with open(self.log, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        """SIGTERM, then waits for STOPPING=1 and the exit; returns the exit status."""
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        self.expect("STOPPING=1")
        rc = self.proc.wait(timeout=GUARD_SECONDS)
        self.proc = None
        self.logfile.close()
        return rc

    def close(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.logfile.close()
        self.notify.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Conn:
    """A raw Varlink connection: bytes in, messages out."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def send(self, obj):
        self.sock.sendall(json.dumps(obj).encode() + b"\0")

    def recv_raw(self):
        """Returns the next message as bytes without its NUL, or None at EOF."""
        while b"\0" not in self.buf:
            try:
                chunk = self.sock.recv(1 << 16)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return None
            self.buf += chunk
        msg, _, self.buf = self.buf.partition(b"\0")
        return msg

    def recv(self):
        raw = self.recv_raw()
        return None if raw is None else json.loads(raw)

    def call(self, method, parameters=None, **flags):
        msg = {"method": method}
        if parameters is not None:
            msg["parameters"] = parameters
        msg.update(flags)
        self.send(msg)
        return self.recv()

    def at_eof(self):
        """True when the peer closed (after any queued messages were read)."""
        while True:
            try:
                chunk = self.sock.recv(1 << 16)
            except ConnectionResetError:
                return True
            if not chunk:
                return True
            self.buf += chunk

    def close(self):
        self.sock.close()
