"""The part of expr-lang that Argo Rollouts' successCondition/failureCondition use, parsed safely.

    len(result) > 0 && !isNaN(result[0]) && result[0] <= 0.99
    all(result, # < 2.5) || any(result, {# > 1})

Literals (numbers, 'strings', "strings", true, false, nil), names from the environment
(`result`), `a[i]`, calls of len, isNaN, isInf, asInt, asFloat, all, any, filter, map, count,
min, max, sum, abs; unary `!`/`not`/`-`; `* / %`, `+ -`, comparisons, `in`, `&&`/`and`,
`||`/`or`, parentheses. A predicate's element is `#`. Parsed into a tree by a small Pratt
parser and evaluated over it: no Python `eval`, no attribute access, nothing else reachable.
An error (unknown name, index out of range, wrong types) raises ExprError, which an analysis
records as a measurement Error, as Argo does.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any


class ExprError(ValueError):
    pass


TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+\.\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|\d+(?:[eE][-+]?\d+)?)"
    r"|(?P<str>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")"
    r"|(?P<name>[A-Za-z_][A-Za-z_0-9]*)"
    r"|(?P<op>&&|\|\||==|!=|<=|>=|[-+*/%<>!()\[\],{}#]))"
)
ESCAPE = re.compile(r"\\(.)")
ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}
# binding power of infix operators; names are normalised first (`and` -> `&&`)
INFIX = {"||": 1, "&&": 2, "==": 3, "!=": 3, "<": 4, "<=": 4, ">": 4, ">=": 4, "in": 4,
         "+": 5, "-": 5, "*": 6, "/": 6, "%": 6}  # fmt: skip
WORDS = {"and": "&&", "or": "||", "not": "!"}


def tokenize(text: str) -> list[tuple[str, Any]]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ExprError(f"unexpected character at {pos}: {text[pos : pos + 10]!r}")
        pos = m.end()
        if m["num"] is not None:
            raw = m["num"]
            out.append(("num", float(raw) if any(c in raw for c in ".eE") else int(raw)))
        elif m["str"] is not None:
            out.append(("str", ESCAPE.sub(lambda e: ESCAPES.get(e[1], e[1]), m["str"][1:-1])))
        elif m["name"] is not None:
            word = m["name"]
            out.append(("op", WORDS[word]) if word in WORDS else ("name", word))
        else:
            out.append(("op", m["op"]))
    out.append(("end", None))
    return out


class Parser:
    def __init__(self, text: str):
        self.tokens, self.i = tokenize(text), 0

    def peek(self) -> tuple[str, Any]:
        return self.tokens[self.i]

    def take(self, op: str | None = None) -> tuple[str, Any]:
        tok = self.tokens[self.i]
        if op is not None and tok != ("op", op):
            raise ExprError(f"expected {op!r}, got {tok[1]!r}")
        self.i += 1
        return tok

    def parse(self) -> tuple:
        tree = self.expression(0)
        if self.peek()[0] != "end":
            raise ExprError(f"unexpected {self.peek()[1]!r}")
        return tree

    def expression(self, min_power: int) -> tuple:
        left = self.unary()
        while True:
            kind, value = self.peek()
            op = value if kind == "op" else ("in" if (kind, value) == ("name", "in") else None)
            if op not in INFIX or INFIX[op] <= min_power:
                return left
            self.take()
            left = ("bin", op, left, self.expression(INFIX[op]))

    def unary(self) -> tuple:
        kind, value = self.peek()
        if (kind, value) in (("op", "!"), ("op", "-"), ("op", "+")):
            self.take()
            return ("un", value, self.unary())
        return self.postfix(self.atom())

    def postfix(self, node: tuple) -> tuple:
        while self.peek() == ("op", "["):
            self.take()
            node = ("index", node, self.expression(0))
            self.take("]")
        return node

    def atom(self) -> tuple:
        kind, value = self.take()
        if kind in ("num", "str"):
            return ("lit", value)
        if (kind, value) == ("op", "("):
            node = self.expression(0)
            self.take(")")
            return node
        if (kind, value) == ("op", "#"):
            return ("elem",)
        if (kind, value) == ("op", "{"):  # a predicate in braces: {# > 1}
            node = self.expression(0)
            self.take("}")
            return node
        if kind == "name":
            if value in ("true", "false"):
                return ("lit", value == "true")
            if value == "nil":
                return ("lit", None)
            if self.peek() == ("op", "("):
                self.take()
                args = []
                while self.peek() != ("op", ")"):
                    args.append(self.expression(0))
                    if self.peek() == ("op", ","):
                        self.take()
                self.take(")")
                return ("call", value, args)
            return ("name", value)
        raise ExprError(f"unexpected {value!r}")


def _num(x: Any, what: str) -> float:
    if isinstance(x, bool) or not isinstance(x, int | float):
        raise ExprError(f"{what}: expected a number, got {type(x).__name__}")
    return x


def _list(x: Any, what: str) -> list:
    if not isinstance(x, list | tuple):
        raise ExprError(f"{what}: expected an array, got {type(x).__name__}")
    return list(x)


def _as_int(x: Any) -> int:
    try:
        return int(float(x))
    except (TypeError, ValueError):
        raise ExprError(f"asInt: cannot convert {x!r}") from None


def _as_float(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        raise ExprError(f"asFloat: cannot convert {x!r}") from None


SIMPLE: dict[str, Callable[..., Any]] = {
    "len": lambda x: len(x) if isinstance(x, list | tuple | str | dict) else _list(x, "len"),
    "isNaN": lambda x: math.isnan(_num(x, "isNaN")),
    "isInf": lambda x, sign=0: (
        math.isinf(_num(x, "isInf")) and (sign == 0 or (x > 0) == (sign > 0))
    ),
    "asInt": _as_int,
    "asFloat": _as_float,
    "abs": lambda x: abs(_num(x, "abs")),
    "min": lambda *xs: min(_list(xs[0], "min") if len(xs) == 1 else xs),
    "max": lambda *xs: max(_list(xs[0], "max") if len(xs) == 1 else xs),
    "sum": lambda xs: sum(_num(x, "sum") for x in _list(xs, "sum")),
}
PREDICATES = ("all", "any", "none", "one", "filter", "map", "count")


def evaluate(tree: tuple, env: dict[str, Any], elem: Any = None) -> Any:
    kind = tree[0]
    if kind == "lit":
        return tree[1]
    if kind == "elem":
        return elem
    if kind == "name":
        if tree[1] not in env:
            raise ExprError(f"unknown name {tree[1]!r}")
        return env[tree[1]]
    if kind == "index":
        seq, i = evaluate(tree[1], env, elem), evaluate(tree[2], env, elem)
        seq = _list(seq, "index") if not isinstance(seq, dict) else seq
        if isinstance(seq, dict):
            return seq.get(i)
        if isinstance(i, bool) or not isinstance(i, int):
            raise ExprError("an index must be an integer")
        if not -len(seq) <= i < len(seq):
            raise ExprError(f"index out of range: {i} (len {len(seq)})")
        return seq[i]
    if kind == "un":
        value = evaluate(tree[2], env, elem)
        if tree[1] == "!":
            if not isinstance(value, bool):
                raise ExprError("`!` needs a bool")
            return not value
        return -_num(value, "-") if tree[1] == "-" else _num(value, "+")
    if kind == "bin":
        return _binary(tree[1], tree[2], tree[3], env, elem)
    if kind == "call":
        name, args = tree[1], tree[2]
        if name in PREDICATES:
            if len(args) != 2:
                raise ExprError(f"{name}(array, predicate) takes 2 arguments")
            items = _list(evaluate(args[0], env, elem), name)
            values = [evaluate(args[1], env, x) for x in items]
            if name == "map":
                return values
            if name == "filter":
                return [x for x, v in zip(items, values, strict=True) if _bool(v, name)]
            flags = [_bool(v, name) for v in values]
            return {"all": all(flags), "any": any(flags), "none": not any(flags),
                    "one": sum(flags) == 1, "count": sum(flags)}[name]  # fmt: skip
        if name not in SIMPLE:
            raise ExprError(f"unknown function {name!r}")
        try:
            return SIMPLE[name](*(evaluate(a, env, elem) for a in args))
        except TypeError as exc:
            raise ExprError(f"{name}: {exc}") from None
    raise ExprError(f"cannot evaluate {kind}")  # pragma: no cover - the parser makes no others


def _bool(v: Any, what: str) -> bool:
    if not isinstance(v, bool):
        raise ExprError(f"{what}: the predicate must give a bool, got {type(v).__name__}")
    return v


def _binary(op: str, left: tuple, right: tuple, env: dict, elem: Any) -> Any:
    a = evaluate(left, env, elem)
    if op in ("&&", "||"):  # short-circuit, as `len(result) > 0 && result[0] ...` needs
        if _bool(a, op) == (op == "||"):
            return a
        return _bool(evaluate(right, env, elem), op)
    b = evaluate(right, env, elem)
    if op == "==":
        return a == b
    if op == "!=":
        return a != b
    if op == "in":
        return a in (b if isinstance(b, list | tuple | dict | str) else _list(b, "in"))
    if op in ("<", "<=", ">", ">="):
        if isinstance(a, str) and isinstance(b, str):
            pass
        else:
            a, b = _num(a, op), _num(b, op)
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
    if op == "+" and isinstance(a, str) and isinstance(b, str):
        return a + b
    a, b = _num(a, op), _num(b, op)
    if op in ("/", "%") and b == 0:
        if op == "%":
            raise ExprError("integer divide by zero")
        return math.copysign(math.inf, a) if a else math.nan
    return {"+": a + b, "-": a - b, "*": a * b, "/": a / b, "%": a % b}[op]


def compile_condition(text: str) -> Callable[[Any], bool]:
    """A condition over `result`, parsed once; calling it gives a bool or raises ExprError."""
    tree = Parser(text).parse()

    def condition(result: Any) -> bool:
        value = evaluate(tree, {"result": result})
        if not isinstance(value, bool):
            raise ExprError(f"expected bool, but got {type(value).__name__}")
        return value

    return condition
