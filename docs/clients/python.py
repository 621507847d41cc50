#!/usr/bin/env python3
"""A bitnetd client in a dozen lines of the Python standard library.

bitnetd speaks Varlink: JSON objects, each followed by a NUL byte, over a
Unix socket. Usage as a program:

    python3 python.py [--socket PATH] METHOD [JSON] [--more]
    python3 python.py [--socket PATH] generate [-n N] [--temp T] [--seed S] PROMPT
    python3 python.py io.bitnetd.Query.GetStatus

"generate" streams a generation: the text goes to stdout piece by piece as
bitnetd sends it, and the last reply (job, finish_reason, usage, kernel) goes
to stderr as one line of JSON.

As a module: Client(path).call(method, parameters) returns the reply's
parameters; Client(path).stream(...) yields every reply of a "more" call.
Both raise VarlinkError(name, parameters) when bitnetd answers an error.
Streaming a generation is a "more" call to io.bitnetd.Inference.Generate:

    client = Client()
    for reply in client.stream("io.bitnetd.Inference.Generate",
                               {"prompt": "Hello", "max_tokens": 32}):
        print(reply.get("text", ""), end="", flush=True)  # the text, piece by piece
        if "finish_reason" in reply:                       # the last reply
            print()
            print(reply["finish_reason"], reply["usage"]["generated_tokens"])

The first reply carries the job id (for Cancel), then come text pieces, and
the last reply has the finish reason and usage (and, for a client that read
too slowly, the text still held back).
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


def generate(client, prompt, **options):
    """Streams a generation: writes each text piece to stdout as it arrives
    and returns the last reply's parameters."""
    parameters = dict(options, prompt=prompt)
    for reply in client.stream("io.bitnetd.Inference.Generate", parameters):
        sys.stdout.write(reply.get("text", ""))
        sys.stdout.flush()
        if "finish_reason" in reply:
            return reply
    raise ConnectionError("the stream ended without a final reply")


GENERATE_OPTIONS = {"-n": ("max_tokens", int), "--temp": ("temperature", float),
                    "--seed": ("seed", int)}


def main(argv):
    path, more, args, options = None, False, [], {}
    it = iter(argv)
    for a in it:
        if a == "--socket":
            path = next(it, None)
        elif a == "--more":
            more = True
        elif a in GENERATE_OPTIONS and args[:1] == ["generate"]:
            key, kind = GENERATE_OPTIONS[a]
            try:
                options[key] = kind(next(it, ""))
            except ValueError:
                args = []  # a bad number: print the usage
                break
        else:
            args.append(a)
    if not 1 <= len(args) <= 2 or (args[0] == "generate" and len(args) != 2):
        print("\n\n".join(__doc__.split("\n\n")[1:3]), file=sys.stderr)
        return 2
    try:
        client = Client(path)
        if args[0] == "generate":
            final = generate(client, args[1], **options)
            final.pop("text", None)
            print(json.dumps(final), file=sys.stderr)
            return 0
        parameters = json.loads(args[1]) if len(args) == 2 else {}
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
