"""A checker for the Varlink interface definition language (varlink.org).

parse(text) returns {"name": ..., "types": {...}, "methods": {...},
"errors": {...}} or raises SyntaxError naming the line. It follows the
grammar of the Varlink specification: an interface line, then type, method
and error members; types are bool, int, float, string, object, a type name,
an anonymous struct or enum, each optionally ?nullable, []array or [string]map.
"""
import re

INTERFACE_NAME = re.compile(r"^[A-Za-z]([-]*[A-Za-z0-9])*(\.[A-Za-z0-9]([-]*[A-Za-z0-9])*)+$")
MEMBER_NAME = re.compile(r"^[A-Z][A-Za-z0-9]*$")
FIELD_NAME = re.compile(r"^[A-Za-z](_?[A-Za-z0-9])*$")
TOKEN = re.compile(r"\s*(->|\[string\]|\[\]|[(),:?]|[A-Za-z0-9_.\-]+)")


def tokenize(text):
    tokens = []
    for lineno, line in enumerate(text.split("\n"), 1):
        code = line.strip()
        if code.startswith("#"):
            continue
        pos = 0
        while pos < len(line):
            if line[pos:].strip() == "":
                break
            m = TOKEN.match(line, pos)
            if not m:
                raise SyntaxError(f"line {lineno}: unexpected {line[pos:].strip()!r}")
            tokens.append((m.group(1), lineno))
            pos = m.end()
    return tokens


class Parser:
    def __init__(self, text):
        self.tokens = tokenize(text)
        self.i = 0

    def peek(self):
        return self.tokens[self.i][0] if self.i < len(self.tokens) else None

    def take(self, expected=None):
        if self.i >= len(self.tokens):
            raise SyntaxError(f"unexpected end, expected {expected}")
        tok, line = self.tokens[self.i]
        if expected is not None and tok != expected:
            raise SyntaxError(f"line {line}: expected {expected!r}, got {tok!r}")
        self.i += 1
        return tok

    def name(self, pattern, what):
        tok = self.take()
        if not pattern.match(tok):
            raise SyntaxError(f"line {self.tokens[self.i - 1][1]}: bad {what} {tok!r}")
        return tok

    def type_(self):
        if self.peek() == "?":
            self.take()
            if self.peek() == "?":
                raise SyntaxError("double ?")
        while self.peek() in ("[]", "[string]"):
            self.take()
            if self.peek() == "?":
                self.take()
        tok = self.peek()
        if tok == "(":
            return self.struct_or_enum()
        if tok in ("bool", "int", "float", "string", "object"):
            return self.take()
        return self.name(MEMBER_NAME, "type name")

    def struct_or_enum(self):
        self.take("(")
        fields = []
        if self.peek() == ")":
            self.take()
            return ("struct", fields)
        kind = None
        while True:
            fields.append(self.name(FIELD_NAME, "field name"))
            if self.peek() == ":":
                if kind == "enum":
                    raise SyntaxError("enum mixed with struct")
                kind = "struct"
                self.take()
                self.type_()
            else:
                if kind == "struct":
                    raise SyntaxError("struct field without a type")
                kind = "enum"
            if self.peek() == ",":
                self.take()
                continue
            self.take(")")
            return (kind, fields)

    def parse(self):
        self.take("interface")
        result = {"name": self.name(INTERFACE_NAME, "interface name"), "types": {},
                  "methods": {}, "errors": {}}
        seen = set()
        while self.peek() is not None:
            kw = self.take()
            if kw not in ("type", "method", "error"):
                raise SyntaxError(f"expected type, method or error, got {kw!r}")
            member = self.name(MEMBER_NAME, f"{kw} name")
            if member in seen:
                raise SyntaxError(f"{member} defined twice")
            seen.add(member)
            if kw == "type":
                result["types"][member] = self.struct_or_enum()
            elif kw == "error":
                kind, fields = self.struct_or_enum()
                if kind == "enum" and fields:
                    raise SyntaxError(f"error {member} must be a struct")
                result["errors"][member] = fields
            else:
                inp = self.struct_or_enum()
                self.take("->")
                out = self.struct_or_enum()
                if inp[0] == "enum" and inp[1] or out[0] == "enum" and out[1]:
                    raise SyntaxError(f"method {member} takes and returns structs")
                result["methods"][member] = (inp[1], out[1])
        if not seen:
            raise SyntaxError("an interface needs at least one member")
        return result


def parse(text):
    return Parser(text).parse()
