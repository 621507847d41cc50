#!/usr/bin/env python3
"""A bitnetd client in a dozen lines of the Python standard library.

bitnetd speaks Varlink: JSON objects, each followed by a NUL byte, over a
Unix socket. Usage as a program:

    python3 python.py [--socket PATH] METHOD [JSON] [--more]
    python3 python.py io.bitnetd.Query.GetStatus

As a module: Client(path).call(method, parameters) returns the reply's
parameters; Client(path).stream(...) yields every reply of a "more" call.
Both raise VarlinkError(name, parameters) when bitnetd answers an error.
"""
import json
import os
import socket
import sys


class VarlinkError(Exception):
    def __init__(self, name, parameters):
        super().__init__(f"{name} {json.dumps(parameters)}")
        self.name, self.parameters = name, parameters


class Client:
    def __init__(self, path=None):
        path = path or os.environ.get("BITNETD_SOCKET", "/run/bitnetd/bitnetd.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = b""

    def stream(self, method, parameters=None, more=True):
        call = {"method": method, "parameters": parameters or {}}
        if more:
            call["more"] = True
        self.sock.sendall(json.dumps(call).encode() + b"\0")
        while True:
            while b"\0" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("bitnetd closed the connection")
                self.buf += chunk
            message, _, self.buf = self.buf.partition(b"\0")
            reply = json.loads(message)
            if "error" in reply:
                raise VarlinkError(reply["error"], reply.get("parameters", {}))
            yield reply.get("parameters", {})
            if not reply.get("continues"):
                return

    def call(self, method, parameters=None):
        return next(self.stream(method, parameters, more=False))

    def close(self):
        self.sock.close()


def main(argv):
    path, more, args = None, False, []
    it = iter(argv)
    for a in it:
        if a == "--socket":
            path = next(it, None)
        elif a == "--more":
            more = True
        else:
            args.append(a)
    if not 1 <= len(args) <= 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    parameters = json.loads(args[1]) if len(args) == 2 else {}
    try:
        client = Client(path)
        for reply in client.stream(args[0], parameters, more):
            print(json.dumps(reply, indent=2))
    except VarlinkError as e:
        print(e, file=sys.stderr)
        return 1
    except OSError as e:
        print(f"cannot reach bitnetd: {e}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
