#!/usr/bin/env python3
"""bitnetd over raw bytes: framing, errors, ordering, limits, slow and rude clients.

Usage: test_raw_protocol.py BITNETD
"""
import json
import os
import socket
import sys
import time
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture import Conn, Daemon  # noqa: E402

BITNETD = None


class RawProtocol(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(BITNETD, config="max_connections_per_uid = 256\n")

    @classmethod
    def tearDownClass(cls):
        rc = cls.d.stop()
        log = cls.d.log_text()
        cls.d.close()
        assert rc == 0, f"bitnetd exited {rc}; log:\n{log}"

    def conn(self):
        c = Conn(self.d.connect())
        self.addCleanup(c.close)
        return c

    def assert_serving(self):
        """A fresh connection still gets answers."""
        c = self.conn()
        reply = c.call("org.varlink.service.GetInfo")
        self.assertEqual(reply["parameters"]["vendor"], "bitnetd")

    def test_replies_are_byte_exact_varlink(self):
        c = self.conn()
        c.sock.sendall(b'{"method":"io.bitnetd.Query.Nope"}\0')
        self.assertEqual(c.recv_raw(), b'{"error":"org.varlink.service.MethodNotFound",'
                                       b'"parameters":{"method":"io.bitnetd.Query.Nope"}}')
        c.sock.sendall(b'{"method":"org.varlink.service.GetInfo"}\0')
        raw = c.recv_raw()
        self.assertTrue(raw.startswith(b'{"parameters":{"vendor":"bitnetd",'), raw)
        self.assertEqual(json.dumps(json.loads(raw), separators=(",", ":")).encode(), raw)
        info = json.loads(raw)["parameters"]
        self.assertEqual(info["interfaces"][0], "org.varlink.service")
        self.assertIn("io.bitnetd.Query", info["interfaces"])
        for key in ("product", "version", "url"):
            self.assertIsInstance(info[key], str)

    def test_malformed_json_gets_an_error_then_close(self):
        for junk in (b'{"method": "org.varlink', b"\xff\xfe", b"[1,2]", b'"text"', b"{}",
                     b'{"method": 5}', b'{"method":"a.B","parameters":[]}',
                     b'{"method":"a.B","more":"yes"}'):
            c = self.conn()
            c.sock.sendall(junk + b"\0")
            reply = c.recv()
            self.assertEqual(reply["error"], "io.bitnetd.Query.ProtocolError", junk)
            self.assertIsInstance(reply["parameters"]["reason"], str)
            self.assertTrue(c.at_eof(), junk)
        self.assert_serving()

    def test_oversized_message_is_refused_and_daemon_keeps_serving(self):
        c = self.conn()
        big = b'{"method":"org.varlink.service.GetInfo","parameters":{"x":"' + \
            b"a" * (20 << 20) + b'"}}\0'
        try:
            c.sock.sendall(big)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the daemon stopped reading and closed: expected
        reply = c.recv()
        self.assertEqual(reply["error"], "io.bitnetd.Query.ProtocolError")
        self.assertIn("max_message_size", reply["parameters"]["reason"])
        self.assertTrue(c.at_eof())
        self.assert_serving()

    def test_message_without_nul_at_eof_is_dropped(self):
        c = self.conn()
        c.sock.sendall(b'{"method":"org.varlink.service.GetInfo"}')
        c.sock.shutdown(socket.SHUT_WR)
        self.assertIsNone(c.recv())
        self.assert_serving()

    def test_calls_before_half_close_are_answered(self):
        c = self.conn()
        c.sock.sendall(b'{"method":"org.varlink.service.GetInfo"}\0')
        c.sock.shutdown(socket.SHUT_WR)
        self.assertEqual(c.recv()["parameters"]["vendor"], "bitnetd")
        self.assertTrue(c.at_eof())

    def test_unknown_method_and_interface(self):
        c = self.conn()
        r = c.call("io.bitnetd.Query.Explode")
        self.assertEqual(r, {"error": "org.varlink.service.MethodNotFound",
                             "parameters": {"method": "io.bitnetd.Query.Explode"}})
        r = c.call("com.example.Nope.Method")
        self.assertEqual(r, {"error": "org.varlink.service.InterfaceNotFound",
                             "parameters": {"interface": "com.example.Nope"}})
        r = c.call("NoDotAtAll")
        self.assertEqual(r["error"], "org.varlink.service.MethodNotFound")
        r = c.call("org.varlink.service.GetInterfaceDescription", {"interface": "com.example.X"})
        self.assertEqual(r, {"error": "org.varlink.service.InterfaceNotFound",
                             "parameters": {"interface": "com.example.X"}})
        # The connection survives method errors.
        self.assertIn("parameters", c.call("io.bitnetd.Query.GetStatus"))

    def test_wrong_unknown_and_missing_parameters(self):
        c = self.conn()
        gid = "org.varlink.service.GetInterfaceDescription"
        for params, name in (({"interface": 5}, "interface"), ({}, "interface"),
                             ({"interface": None}, "interface"),
                             ({"interface": "io.bitnetd.Query", "extra": 1}, "extra")):
            r = c.call(gid, params)
            self.assertEqual(r, {"error": "org.varlink.service.InvalidParameter",
                                 "parameters": {"parameter": name}}, params)
        r = c.call("io.bitnetd.Query.GetStatus", {"verbose": True})
        self.assertEqual(r["parameters"], {"parameter": "verbose"})
        r = c.call("io.bitnetd.Inference.Cancel", {"job": "7"})
        self.assertEqual(r["parameters"], {"parameter": "job"})
        r = c.call("io.bitnetd.Inference.Cancel", {"job": 7})
        self.assertEqual(r, {"error": "io.bitnetd.Inference.JobNotFound",
                             "parameters": {"job": 7}})

    def test_oneway_call_gets_no_reply(self):
        c = self.conn()
        c.send({"method": "io.bitnetd.Query.GetCapabilities", "oneway": True})
        c.send({"method": "io.bitnetd.Query.Nope", "oneway": True})
        c.send({"method": "org.varlink.service.GetInfo"})
        first = c.recv()
        self.assertEqual(first["parameters"]["vendor"], "bitnetd")

    def test_pipelined_calls_are_answered_in_order(self):
        c = self.conn()
        # GetCapabilities is built off the loop; GetStatus answers at once.
        # Order must still be the order of the calls.
        calls = b"".join(json.dumps(m).encode() + b"\0" for m in (
            {"method": "io.bitnetd.Query.GetCapabilities"},
            {"method": "io.bitnetd.Query.GetStatus", "more": True},
            {"method": "io.bitnetd.Query.ListKernels"},
            {"method": "io.bitnetd.Query.Nope"},
            {"method": "org.varlink.service.GetInfo"}))
        c.sock.sendall(calls)
        r = [c.recv() for _ in range(5)]
        self.assertIn("best_kernel", r[0]["parameters"])
        self.assertIn("uptime_seconds", r[1]["parameters"])
        self.assertNotIn("continues", r[1])  # "more" call, single reply, no continues
        self.assertIn("kernels", r[2]["parameters"])
        self.assertEqual(r[3]["error"], "org.varlink.service.MethodNotFound")
        self.assertEqual(r[4]["parameters"]["vendor"], "bitnetd")

    def test_client_disconnecting_mid_reply(self):
        for _ in range(5):
            c = Conn(self.d.connect())
            c.sock.sendall(b'{"method":"io.bitnetd.Query.GetCapabilities"}\0' * 50)
            c.sock.recv(100)  # part of the first reply
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
            c.close()
        self.assert_serving()

    def test_200_concurrent_connections(self):
        conns = [self.conn() for _ in range(200)]
        for c in conns:
            c.send({"method": "io.bitnetd.Query.GetStatus"})
        counts = [c.recv()["parameters"]["connections"] for c in conns]
        self.assertGreaterEqual(max(counts), 200)
        for c in conns:
            self.assertEqual(c.call("org.varlink.service.GetInfo")["parameters"]["vendor"],
                             "bitnetd")

    def test_client_that_never_reads_does_not_block_others(self):
        stuck = self.conn()
        call = b'{"method":"io.bitnetd.Query.GetCapabilities"}\0'
        sent = 0
        # Send calls until they no longer go through: bitnetd has stopped
        # reading this client (its unread replies passed max_output_buffer)
        # and the socket buffers are full. It must not queue more for it.
        stuck.sock.settimeout(1)
        try:
            for _ in range(1000000):
                stuck.sock.send(call)
                sent += 1
        except TimeoutError:
            pass
        self.assertGreater(sent, 1000)
        for _ in range(20):
            self.assert_serving()
        st = self.conn().call("io.bitnetd.Query.GetStatus")["parameters"]
        self.assertGreaterEqual(st["connections"], 2)
        # The stuck client still gets its replies, in order, when it reads.
        stuck.sock.setblocking(True)
        first = stuck.recv()
        self.assertIn("best_kernel", first["parameters"])


class Limits(unittest.TestCase):
    def test_per_uid_connection_limit(self):
        d = Daemon(BITNETD, config="max_connections_per_uid = 3\n")
        try:
            keep = [Conn(d.connect()) for _ in range(3)]
            for c in keep:
                self.assertIn("parameters", c.call("io.bitnetd.Query.GetStatus"))
            extra = Conn(d.connect())
            try:
                extra.send({"method": "io.bitnetd.Query.GetStatus"})
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.assertIsNone(extra.recv())
            extra.close()
            self.assertIn("max_connections_per_uid", d.log_text())
            keep[0].close()
            # The freed slot is usable again once the daemon has seen the close;
            # under sanitizers that can take a while, so poll against a deadline.
            r = None
            deadline = time.monotonic() + 30
            while r is None and time.monotonic() < deadline:
                again = Conn(d.connect())
                try:
                    r = again.call("io.bitnetd.Query.GetStatus")
                except (BrokenPipeError, ConnectionResetError):
                    r = None
                again.close()
                if r is None:
                    time.sleep(0.05)
            self.assertIn("parameters", r)
            for c in keep[1:]:
                c.close()
            self.assertEqual(d.stop(), 0)
        finally:
            d.close()

    def test_total_connection_limit(self):
        d = Daemon(BITNETD, config="max_connections = 3\n")
        try:
            keep = [Conn(d.connect()) for _ in range(3)]
            for c in keep:
                self.assertIn("parameters", c.call("io.bitnetd.Query.GetStatus"))
            extra = Conn(d.connect())
            try:
                extra.send({"method": "io.bitnetd.Query.GetStatus"})
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.assertIsNone(extra.recv())
            extra.close()
            self.assertIn("reason=max_connections ", d.log_text())
            for c in keep:
                self.assertIn("parameters", c.call("io.bitnetd.Query.GetStatus"))
                c.close()
            self.assertEqual(d.stop(), 0)
        finally:
            d.close()

    def test_idle_connection_is_closed(self):
        d = Daemon(BITNETD, config="idle_timeout = 1\n")
        try:
            c = Conn(d.connect())
            self.assertIn("parameters", c.call("io.bitnetd.Query.GetStatus"))
            self.assertTrue(c.at_eof())  # returns once the daemon closes it
            c.close()
            self.assertIn('reason="idle timeout"', d.log_text())
            self.assertEqual(d.stop(), 0)
        finally:
            d.close()


if __name__ == "__main__":
    BITNETD = sys.argv.pop(1)
    unittest.main(verbosity=2)
