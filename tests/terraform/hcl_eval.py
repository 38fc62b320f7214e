"""Evaluate the small HCL expressions our variable validations and add-on settings are written in.

No Terraform binary or provider can run here, so a `validation` block would otherwise never be run before
an operator's `terraform plan`. This evaluates the subset of the expression language those blocks use:
literals, lists, objects, `var.NAME`, list `for` expressions, parentheses, `! - || && == != < > <= >=`
and the functions in FUNCTIONS, with Terraform's semantics for them. Anything else (conditionals, other
functions, templates) is an `Unsupported` error, never a guess.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable
from typing import Any


class Unsupported(ValueError):
    """The expression uses syntax or a function this evaluator does not implement."""


class EvalError(ValueError):
    """Terraform would fail evaluating the expression (e.g. regex() without a match)."""


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<number>\d+(?:\.\d+)?)
      | (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<op>\|\||&&|==|!=|<=|>=|[-!<>(),\[\]{}=:.*/%+?])
      | (?P<name>[A-Za-z_][A-Za-z0-9_-]*)
    )""",
    re.X,
)

# Binary operators by binding power (HCL's precedence, lowest first).
_BINARY: dict[str, int] = {"||": 1, "&&": 2, "==": 3, "!=": 3, "<": 4, ">": 4, "<=": 4, ">=": 4}


def _regex(pattern: str, text: str) -> Any:
    # Terraform's regex() fails when nothing matches; with no capture groups it returns the match.
    match = re.search(pattern, text)
    if match is None:
        raise EvalError(f"regex {pattern!r} does not match {text!r}")
    return match.group(0) if not match.groups() else list(match.groups())


def _contains(collection: list, value: Any) -> bool:
    if not isinstance(collection, list):
        raise EvalError(f"contains() needs a list, got {collection!r}")
    return value in collection


def _cidrhost(prefix: str, host: int) -> str:
    try:
        network = ipaddress.ip_network(prefix, strict=False)
    except ValueError as exc:
        raise EvalError(f"cidrhost: invalid CIDR {prefix!r}") from exc
    if "/" not in prefix or host >= network.num_addresses:
        raise EvalError(f"cidrhost: invalid CIDR {prefix!r} or host number {host}")
    return str(network[host])


def _length(value: Any) -> int:
    if not isinstance(value, list | dict | str):
        raise EvalError(f"length() of {value!r}")
    return len(value)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "length": _length,
    "contains": _contains,
    "regex": _regex,
    "cidrhost": _cidrhost,
    "startswith": lambda text, prefix: text.startswith(prefix),
    "alltrue": lambda values: all(v is True for v in values),
    "jsonencode": lambda value: json.dumps(value, separators=(",", ":")),
}


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    return "number" if isinstance(value, int | float) else type(value).__name__


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise Unsupported(f"cannot read {text[pos:]!r}")
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


class _Parser:
    def __init__(self, text: str, variables: dict[str, Any]) -> None:
        self.tokens = _tokens(text)
        self.pos = 0
        self.variables = variables
        self.scope: dict[str, Any] = {}  # the names a for expression binds

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ("end", "")

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if value is not None and token[1] != value:
            raise Unsupported(f"expected {value!r}, found {token[1]!r}")
        self.pos += 1
        return token

    def expression(self, min_power: int = 0) -> Any:
        left = self.unary()
        while True:
            kind, op = self.peek()
            if op == "?":
                raise Unsupported("conditional expressions")
            power = _BINARY.get(op) if kind == "op" else None
            if power is None or power <= min_power:
                return left
            self.take()
            right = self.expression(power)
            left = self.binary(op, left, right)

    @staticmethod
    def binary(op: str, left: Any, right: Any) -> Any:
        if op in ("||", "&&"):
            if not isinstance(left, bool) or not isinstance(right, bool):
                raise EvalError(f"{op} needs booleans: {left!r} {op} {right!r}")
            return (left or right) if op == "||" else (left and right)
        if op in ("==", "!="):
            equal = left == right and _kind(left) == _kind(right)  # no conversion: "1" != 1
            return equal if op == "==" else not equal
        return {"<": left < right, ">": left > right, "<=": left <= right, ">=": left >= right}[op]

    def unary(self) -> Any:
        kind, value = self.peek()
        if value == "!":
            self.take()
            operand = self.unary()
            if not isinstance(operand, bool):
                raise EvalError(f"! needs a boolean: {operand!r}")
            return not operand
        if value == "-" and kind == "op":
            self.take()
            return -self.unary()
        return self.primary()

    def primary(self) -> Any:
        kind, value = self.take()
        if kind == "number":
            return float(value) if "." in value else int(value)
        if kind == "string":
            if "${" in value or "%{" in value:
                raise Unsupported("string templates")
            return json.loads(value)
        if value == "(":
            inner = self.expression()
            self.take(")")
            return inner
        if value == "[":
            if self.peek()[1] == "for":
                return self.for_list()
            return self.sequence("]", self.expression)
        if value == "{":
            return dict(self.sequence("}", self.pair))
        if kind == "name":
            if value in ("true", "false"):
                return value == "true"
            if value == "null":
                return None
            if value == "var":
                self.take(".")
                name = self.take()[1]
                if name not in self.variables:
                    raise EvalError(f"var.{name} is not given")
                return self.variables[name]
            if self.peek()[1] == "(":
                return self.call(value)
            if value in self.scope:
                return self.scope[value]
        raise Unsupported(f"unexpected {value!r}")

    def for_list(self) -> list:
        """`[for NAME in LIST : EXPR]`: the body is parsed again for each item, with NAME bound."""
        self.take("for")
        name = self.take()[1]
        self.take("in")
        items = self.expression()
        self.take(":")
        body = self.pos
        out = []
        for item in items:
            self.pos = body
            self.scope[name] = item
            out.append(self.expression())
        self.scope.pop(name, None)
        self.pos = body
        self.skip_balanced()
        self.take("]")
        return out

    def pair(self) -> tuple[str, Any]:
        kind, key = self.take()
        key = json.loads(key) if kind == "string" else key
        if self.peek()[1] not in ("=", ":"):
            raise Unsupported(f"object key {key!r} without = or :")
        self.take()
        return key, self.expression()

    def sequence(self, close: str, item: Callable[[], Any]) -> list:
        items: list = []
        while self.peek()[1] != close:
            items.append(item())
            if self.peek()[1] == ",":
                self.take()
        self.take(close)
        return items

    def call(self, name: str) -> Any:
        self.take("(")
        if name == "can":
            # can() is lazy: its argument failing is the answer, not an error.
            start = self.pos
            try:
                self.expression()
                ok = True
            except EvalError:
                ok = False
                self.pos = start
                self.skip_balanced()
            self.take(")")
            return ok
        if name not in FUNCTIONS:
            raise Unsupported(f"function {name}()")
        args = self.sequence(")", self.expression)
        return FUNCTIONS[name](*args)

    def skip_balanced(self) -> None:
        depth = 0
        while True:
            value = self.peek()[1]
            if value in ("(", "[", "{"):
                depth += 1
            elif value in (")", "]", "}"):
                if depth == 0:
                    return
                depth -= 1
            self.take()


def evaluate(expression: str, variables: dict[str, Any] | None = None) -> Any:
    """The value of one HCL expression; `${...}` as python-hcl2 wraps expressions is accepted."""
    text = expression.strip()
    if text.startswith("${") and text.endswith("}"):
        text = text[2:-1]
    parser = _Parser(text, variables or {})
    value = parser.expression()
    if parser.peek()[0] != "end":
        raise Unsupported(f"trailing {parser.peek()[1]!r} in {expression!r}")
    return value


def failed_validations(variable: dict, name: str, variables: dict[str, Any]) -> list[str]:
    """Error messages of the `validation` blocks of `variable` (parsed) that reject these values, as
    `terraform plan` would print them. Blocks this evaluator cannot run are an `Unsupported` error."""
    failed = []
    for block in variable.get("validation", []):
        try:
            holds = evaluate(block["condition"], variables)
        except EvalError:
            holds = False  # Terraform reports an error evaluating a condition as a failed validation
        if holds is not True:
            failed.append(f"var.{name}: {block['error_message']}")
    return failed
