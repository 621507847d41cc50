#!/usr/bin/env python3
"""bitnetd's life under systemd: socket activation, READY/STOPPING/RELOADING,
SIGTERM, SIGHUP and configuration reloads, the socket file.

Usage: test_lifecycle.py BITNETD
"""
import os
import signal
import socket
import subprocess
import sys
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture import GUARD_SECONDS, Conn, Daemon  # noqa: E402

BITNETD = None

# Sets LISTEN_PID to its own pid (which exec keeps) and becomes bitnetd, as
# systemd does for a socket-activated service.
ACTIVATE = "import os, sys; os.environ['LISTEN_PID'] = str(os.getpid()); " \
           "os.execvp(sys.argv[1], sys.argv[1:])"


def limits(d):
    c = Conn(d.connect())
    try:
        return c.call("io.bitnetd.Query.GetStatus")["parameters"]["limits"]
    finally:
        c.close()


class Lifecycle(unittest.TestCase):
    def daemon(self, **kw):
        d = Daemon(BITNETD, **kw)
        self.addCleanup(d.close)
        return d

    def test_sigterm_sends_stopping_and_exits_zero(self):
        d = self.daemon()
        self.assertTrue(os.path.exists(d.socket))
        c = Conn(d.connect())
        self.assertIn("parameters", c.call("io.bitnetd.Query.GetStatus"))
        self.assertEqual(d.stop(), 0)
        # An idle client is let go; the socket file bitnetd bound is removed.
        self.assertTrue(c.at_eof())
        self.assertFalse(os.path.exists(d.socket))
        self.assertIn("event=stopped", d.log_text())

    def test_sigterm_lets_a_call_finish_and_bounds_a_stuck_client(self):
        d = self.daemon()
        stuck = Conn(d.connect())
        # Send calls until bitnetd stops reading this client (its unread
        # replies passed max_output_buffer) and the socket buffers are full.
        stuck.sock.settimeout(1)
        try:
            for _ in range(1000000):
                stuck.sock.send(b'{"method":"io.bitnetd.Query.GetCapabilities"}\0')
        except TimeoutError:
            pass
        polite = Conn(d.connect())
        polite.sock.sendall(b'{"method":"io.bitnetd.Query.GetCapabilities"}\0')
        d.proc.send_signal(signal.SIGTERM)
        # The polite client's call in progress is answered before it is let go.
        self.assertIn("best_kernel", polite.recv()["parameters"])
        self.assertTrue(polite.at_eof())
        # The stuck client cannot hold the daemon: it exits 0 after the drain bound.
        d.expect("STOPPING=1")
        self.assertEqual(d.proc.wait(timeout=GUARD_SECONDS), 0)
        d.proc = None
        d.logfile.close()
        self.assertIn("event=drain-timeout", d.log_text())
        stuck.close()
        polite.close()

    def test_ready_carries_status_line_and_getstatus_repeats_it(self):
        d = self.daemon(start=False)
        d.logfile = open(d.log, "ab")
        d.proc = subprocess.Popen(d.command(), env=d.environment(), stdout=d.logfile,
                                  stderr=d.logfile)
        seen = "\n".join(d.expect("READY=1"))
        status = [line[len("STATUS="):] for line in seen.split("\n")
                  if line.startswith("STATUS=")]
        self.assertTrue(status, seen)
        c = Conn(d.connect())
        st = c.call("io.bitnetd.Query.GetStatus")["parameters"]
        c.close()
        self.assertEqual(st["status"], status[-1])
        self.assertEqual(st["pid"], d.proc.pid)
        self.assertIn(f"MAINPID={d.proc.pid}", seen)
        self.assertEqual(d.stop(), 0)

    def test_sighup_reloads_a_good_config(self):
        d = self.daemon(config="max_connections = 100\n")
        self.assertEqual(limits(d)["max_connections"], 100)
        d.write_config("max_connections = 50\nidle_timeout = 30\n")
        d.proc.send_signal(signal.SIGHUP)
        seen = d.expect("READY=1")
        self.assertTrue(any(m.startswith("RELOADING=1") for m in seen), seen)
        self.assertIn("MONOTONIC_USEC=", "".join(seen))
        self.assertEqual(limits(d)["max_connections"], 50)
        self.assertEqual(limits(d)["idle_timeout"], 30)
        self.assertEqual(d.stop(), 0)

    def test_sighup_with_broken_config_keeps_old_and_serves(self):
        d = self.daemon(config="max_connections = 100\n")
        c = Conn(d.connect())  # a connection open across the reload
        d.write_config("max_connections = 50\nthis is not a config line\n")
        d.proc.send_signal(signal.SIGHUP)
        d.expect("READY=1")
        self.assertEqual(limits(d)["max_connections"], 100)
        self.assertIn("event=reload-failed", d.log_text())
        self.assertIn("bitnetd.conf:2", d.log_text())
        self.assertIn("parameters", c.call("io.bitnetd.Query.GetStatus"))
        c.close()
        self.assertEqual(d.stop(), 0)

    def test_admin_reload_reports_a_broken_config(self):
        d = self.daemon(config="max_connections = 100\n")
        c = Conn(d.connect())
        d.write_config("max_connections = -3\n")
        r = c.call("io.bitnetd.Admin.ReloadConfiguration")
        self.assertEqual(r["error"], "io.bitnetd.Admin.ConfigurationInvalid")
        self.assertIn("max_connections", r["parameters"]["reason"])
        d.write_config("max_connections = 70\n")
        self.assertEqual(c.call("io.bitnetd.Admin.ReloadConfiguration"), {"parameters": {}})
        self.assertEqual(limits(d)["max_connections"], 70)
        c.close()
        self.assertEqual(d.stop(), 0)

    def test_stale_socket_is_replaced_and_live_one_refused(self):
        d = self.daemon(start=False)
        os.makedirs(os.path.dirname(d.socket))
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(d.socket)
        stale.close()  # the file stays, nobody listens: a crashed daemon's leftover
        d.start()
        first = Conn(d.connect())
        self.assertIn("parameters", first.call("org.varlink.service.GetInfo"))
        first.close()
        # A second daemon on the same path must not steal the live socket.
        second = subprocess.run(d.command(), env=d.environment(), capture_output=True,
                                timeout=GUARD_SECONDS)
        self.assertNotEqual(second.returncode, 0)
        self.assertIn(b"another daemon is listening", second.stderr)
        again = Conn(d.connect())
        self.assertIn("parameters", again.call("org.varlink.service.GetInfo"))
        again.close()
        self.assertEqual(d.stop(), 0)

    def test_socket_activation(self):
        d = self.daemon(start=False)
        activated_path = os.path.join(d.dir, "activated.sock")
        lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        lsock.bind(activated_path)
        lsock.listen(16)
        env = d.environment()
        env["LISTEN_FDS"] = "1"
        env["LISTEN_FDNAMES"] = "bitnetd.socket"
        fd = lsock.fileno()

        def as_fd_3():
            os.dup2(fd, 3)  # dup2 leaves the copy open across exec

        # subprocess closes every descriptor not in pass_fds after
        # preexec_fn, so 3 itself must be kept.

        d.logfile = open(d.log, "ab")
        d.proc = subprocess.Popen([sys.executable, "-c", ACTIVATE] + d.command(), env=env,
                                  stdout=d.logfile, stderr=d.logfile, preexec_fn=as_fd_3,
                                  pass_fds=(3,))
        lsock.close()
        d.expect("READY=1")
        self.assertIn("activated=yes", d.log_text())
        # It serves the passed socket and did not bind its own --socket path.
        self.assertFalse(os.path.exists(d.socket))
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(GUARD_SECONDS)
        s.connect(activated_path)
        c = Conn(s)
        self.assertEqual(c.call("org.varlink.service.GetInfo")["parameters"]["vendor"],
                         "bitnetd")
        c.close()
        self.assertEqual(d.stop(), 0)
        # systemd owns the socket file: bitnetd leaves it alone.
        self.assertTrue(os.path.exists(activated_path))

    def test_bad_command_line_exits_2_with_the_reason(self):
        r = subprocess.run([BITNETD, "--threads", "many"], capture_output=True,
                           timeout=GUARD_SECONDS)
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"--threads", r.stderr)
        r = subprocess.run([BITNETD, "--help"], capture_output=True, timeout=GUARD_SECONDS)
        self.assertEqual(r.returncode, 0)
        for word in (b"--socket", b"BITNETD_MAX_MESSAGE_SIZE", b"16M", b"max-connections-per-uid",
                     b"--user", b"--foreground", b"--threads"):
            self.assertIn(word, r.stdout)

    def test_journal_stream_gets_syslog_prefixes(self):
        d = self.daemon(start=False)
        open(d.log, "ab").close()
        st = os.stat(d.log)
        d.extra_env = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        d.start()
        self.assertEqual(d.stop(), 0)
        lines = d.log_text().splitlines()
        self.assertTrue(lines)
        self.assertTrue(all(line.startswith("<") for line in lines), lines)
        self.assertTrue(any(line.startswith("<6>event=listening ") for line in lines), lines)


if __name__ == "__main__":
    BITNETD = sys.argv.pop(1)
    unittest.main(verbosity=2)
