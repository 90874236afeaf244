"""expr-lang as Argo Rollouts v1.8.3 runs successCondition and failureCondition: expr v1.15.5
with Argo's env (utils/evaluate/evaluate.go: `result`, asInt, asFloat, isNaN, isInf, isNil,
default), compiled then run.

    len(result) > 0 && !isNaN(result[0]) && result[0] <= 0.99
    all(result, # < 2.5) || default(result, 0) < 0.05

Compiling type-checks the whole expression against the types of the env, as expr's checker
does (checker/checker.go, checker/types.go), so a mismatch is an error even in a branch that
never runs: `result == 0` on a vector ([]float64 vs int) or `result[0] == true`. A Prometheus
vector is `[]float64`, a scalar `float64`. Running follows Go's and expr's runtime: `/` is
float division (x/0 is ±Inf or NaN), `%` wants integers (x%0 is an error), `len` of a string
counts bytes, indexes may be negative, `&&`/`||` short-circuit.

Modelled: literals (ints with `0x`/`0o`/`0b`/`_`, floats, strings, true/false/nil, arrays),
names, `a[i]`, `a[i:j]`, unary `!`/`not`/`-`/`+`, `**`/`^`, `* / %`, `+ -`, `..`, comparisons,
`==`/`!=`, `in`/`not in`, `matches`/`contains`/`startsWith`/`endsWith`, `&&`/`and`,
`||`/`or`, `??`, `? :`, and the builtins below. Anything else of expr's (maps, member access,
`let`, time functions, ...) raises Unsupported: an analysis cannot predict it, which is never
a pass. ExprError is what Argo reports as a measurement Error (compile or run time).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeGuard


class ExprError(ValueError):
    """expr's compile or runtime error: the measurement is an Error in Argo."""


class Unsupported(Exception):
    """A construct this model does not implement: the outcome cannot be predicted."""


# --- types (reflect.Type's kinds, as expr's checker sees them) --------------------------------


@dataclass(frozen=True)
class T:
    kind: str  # int float bool string nil any array func
    elem: T | None = None  # array element
    name: str = ""  # func name

    def __str__(self) -> str:
        if self.kind == "array":
            return f"[]{self.elem}"
        return {
            "int": "int",
            "float": "float64",
            "bool": "bool",
            "string": "string",
            "nil": "<nil>",
            "any": "interface {}",
            "func": "func",
        }[self.kind]


INT, FLOAT, BOOL, STRING, NIL, ANY = (
    T(k) for k in ("int", "float", "bool", "string", "nil", "any")
)
ANY_ARRAY = T("array", ANY)


def is_number(t: T) -> bool:
    return t.kind in ("int", "float")


def is_any(t: T) -> bool:
    return t.kind == "any"


def either(l: T, r: T, *tests: Callable[[T], bool]) -> bool:  # noqa: E741 - expr's `or`
    """expr's `or(l, r, fns...)`: one side interface{}, the other passing a test."""
    if is_any(l) and is_any(r):
        return True
    return (is_any(l) and any(t(r) for t in tests)) or (is_any(r) and any(t(l) for t in tests))


def comparable(l: T, r: T) -> bool:  # noqa: E741
    if l.kind == "nil" or r.kind == "nil":
        return True
    return l.kind == r.kind or (is_number(l) and is_number(r)) or is_any(l) or is_any(r)


def combined(a: T, b: T) -> T:
    if a.kind == b.kind:
        return a
    return FLOAT if FLOAT in (a, b) else INT


def type_of(value: Any) -> T:
    """The reflect type of a value Argo puts in the env."""
    if value is None:
        return NIL
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int):
        return INT
    if isinstance(value, float):
        return FLOAT
    if isinstance(value, str):
        return STRING
    if isinstance(value, list | tuple):
        kinds = {type_of(v) for v in value}
        return T("array", FLOAT if not value or kinds == {FLOAT} else ANY)
    raise Unsupported(f"a result of type {type(value).__name__}")


# --- tokens and the tree ----------------------------------------------------------------------

TOKEN = re.compile(
    r"\s*(?:(?P<num>0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+"
    r"|(?:\d[\d_]*)?\.\d[\d_]*(?:[eE][-+]?\d+)?|\d[\d_]*(?:[eE][-+]?\d+)?)"
    r"|(?P<str>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`[^`]*`)"
    r"|(?P<name>[A-Za-z_$][A-Za-z_0-9]*)"
    r"|(?P<op>\*\*|\?\?|\?\.|\.\.|&&|\|\||==|!=|<=|>=|[-+*/%^<>!()\[\],{}#?:.;|=]))"
)
ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "0": "\0"}
# expr's parser/operator/operator.go: precedence and associativity
BINARY = {
    "or": 10,
    "||": 10,
    "and": 15,
    "&&": 15,
    "==": 20,
    "!=": 20,
    "<": 20,
    ">": 20,
    ">=": 20,
    "<=": 20,
    "in": 20,
    "matches": 20,
    "contains": 20,
    "startsWith": 20,
    "endsWith": 20,
    "..": 25,
    "+": 30,
    "-": 30,
    "*": 60,
    "/": 60,
    "%": 60,
    "**": 100,
    "^": 100,
    "??": 500,
}
RIGHT_ASSOC = {"**", "^"}
UNARY = {"not": 50, "!": 50, "-": 90, "+": 90}
NEGATABLE = {"in", "matches", "contains", "startsWith", "endsWith"}
UNSUPPORTED_WORDS = {"let", "$env"}


def tokenize(text: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(text):
        if not text[pos:].strip():
            break
        m = TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ExprError(f"unexpected token {text[pos : pos + 10]!r} (1:{pos + 1})")
        pos = m.end()
        if m["num"] is not None:
            out.append(("num", number(m["num"])))
        elif m["str"] is not None:
            out.append(("str", string_literal(m["str"])))
        elif m["name"] is not None:
            out.append(("name", m["name"]))
        else:
            out.append(("op", m["op"]))
    out.append(("end", None))
    return out


def number(raw: str) -> int | float:
    text = raw.replace("_", "")
    try:
        if text[:2].lower() in ("0x", "0o", "0b"):
            return int(text, 0)
        if any(c in text for c in ".eE"):
            return float(text)
        return int(text)
    except ValueError:
        raise ExprError(f"invalid number {raw!r}") from None


def string_literal(raw: str) -> str:
    if raw[0] == "`":
        return raw[1:-1]
    body, out, i = raw[1:-1], [], 0
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            if body[i + 1] in ESCAPES:
                out.append(ESCAPES[body[i + 1]])
                i += 2
                continue
            raise Unsupported(f"the string escape \\{body[i + 1]}")
        out.append(body[i])
        i += 1
    return "".join(out)


class Parser:
    """A Pratt parser for the modelled part of expr's grammar; the tree is nested tuples."""

    def __init__(self, text: str):
        self.tokens, self.i = tokenize(text), 0

    def peek(self, ahead: int = 0) -> tuple[str, Any]:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def take(self, op: str | None = None) -> tuple[str, Any]:
        tok = self.tokens[self.i]
        if op is not None and tok != ("op", op):
            raise ExprError(f"unexpected token {tok[1]!r} (expected {op!r})")
        self.i += 1
        return tok

    def parse(self) -> tuple:
        tree = self.expression(0)
        if self.peek()[0] != "end":
            raise ExprError(f"unexpected token {self.peek()[1]!r}")
        return tree

    def operator(self) -> tuple[str, bool] | None:
        """The binary operator at the cursor and whether `not` negates it (`not in`)."""
        kind, value = self.peek()
        if kind == "name" and value == "not":
            nxt = self.peek(1)
            if nxt[0] in ("name", "op") and nxt[1] in NEGATABLE:
                return nxt[1], True
            return None
        if kind in ("op", "name") and value in BINARY:
            return value, False
        return None

    def expression(self, precedence: int) -> tuple:
        """parseExpression: operators of at least `precedence`; `?:` only at the top."""
        if precedence == 0 and self.peek() == ("name", "let"):
            raise Unsupported("`let`")
        left = self.unary()
        previous = ""
        while (found := self.operator()) is not None or self.peek() == ("op", "|"):
            if found is None:
                raise Unsupported("the pipe operator `|`")
            op, negate = found
            power = BINARY[op]
            if power < precedence:
                break
            if previous == "??" and op != "??":
                raise ExprError(
                    f"Operator ({op}) and coalesce expressions (??) cannot be mixed."
                    " Wrap either by parentheses."
                )
            self.take()
            if negate:
                self.take()
            right = self.expression(power if op in RIGHT_ASSOC else power + 1)
            op = {"and": "&&", "or": "||"}.get(op, op)
            left = ("bin", op, left, right)
            if negate:
                left = ("un", "!", left)
            previous = op
        if precedence == 0:
            left = self.conditional(left)
        return left

    def conditional(self, node: tuple) -> tuple:
        while self.peek() == ("op", "?"):
            self.take()
            if self.peek() == ("op", ":"):  # `a ?: b`
                self.take()
                node = ("cond", node, node, self.expression(0))
                continue
            yes = self.expression(0)
            self.take(":")
            node = ("cond", node, yes, self.expression(0))
        return node

    def unary(self) -> tuple:
        kind, value = self.peek()
        if kind in ("op", "name") and value in UNARY:
            self.take()
            operand = self.expression(UNARY[value])
            return self.postfix(("un", "!" if value in ("!", "not") else value, operand))
        return self.postfix(self.atom())

    def postfix(self, node: tuple) -> tuple:
        while True:
            if self.peek() == ("op", "["):
                self.take()
                if self.peek() == ("op", ":"):
                    self.take()
                    end = None if self.peek() == ("op", "]") else self.expression(0)
                    self.take("]")
                    node = ("slice", node, None, end)
                    continue
                index = self.expression(0)
                if self.peek() == ("op", ":"):
                    self.take()
                    end = None if self.peek() == ("op", "]") else self.expression(0)
                    self.take("]")
                    node = ("slice", node, index, end)
                    continue
                self.take("]")
                node = ("index", node, index)
            elif self.peek() == ("op", "?."):
                raise Unsupported("optional chaining (`?.`)")
            elif self.peek() == ("op", "."):
                self.take()
                kind, name = self.take()
                if kind != "name":
                    raise ExprError(f"expected name after `.`, got {name!r}")
                node = ("member", node, name)
                if self.peek() == ("op", "("):  # a method call: the member must exist first
                    self.take()
                    while self.peek() != ("op", ")"):
                        self.expression(0)
                        if self.peek() != ("op", ")"):
                            self.take(",")
                    self.take(")")
                    node = ("method", node)
            else:
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
            if self.peek()[0] == "name":
                raise Unsupported("named pointer `#name`")
            return ("elem",)
        if (kind, value) == ("op", "["):
            items = []
            while self.peek() != ("op", "]"):
                items.append(self.expression(0))
                if self.peek() != ("op", "]"):
                    self.take(",")
            self.take("]")
            return ("array", items)
        if (kind, value) == ("op", "{"):
            raise Unsupported("map literals")
        if kind == "name":
            if value in ("true", "false"):
                return ("lit", value == "true")
            if value == "nil":
                return ("lit", None)
            if value in UNSUPPORTED_WORDS:
                raise Unsupported(f"`{value}`")
            if self.peek() == ("op", "("):
                self.take()
                args: list[tuple] = []
                while self.peek() != ("op", ")"):
                    if value in PREDICATES and len(args) == 1:
                        args.append(self.closure())
                    else:
                        args.append(self.expression(0))
                    if self.peek() != ("op", ")"):
                        self.take(",")
                self.take(")")
                return ("call", value, args)
            return ("name", value)
        raise ExprError(f"unexpected token {value!r}")

    def closure(self) -> tuple:
        """A predicate: `{# > 1}` or `# > 1`."""
        if self.peek() == ("op", "{"):
            self.take()
            node = self.expression(0)
            self.take("}")
            return ("closure", node)
        return ("closure", self.expression(0))


# --- the env and builtins ---------------------------------------------------------------------

PREDICATES = ("all", "none", "any", "one", "filter", "map", "count")
ENV_FUNCS = ("asInt", "asFloat", "isNaN", "isInf", "isNil", "default")
BUILTINS = (
    *("len", "abs", "ceil", "floor", "round", "int", "float", "string", "upper", "lower"),
    *("trim", "max", "min", "sum", "mean", "median", "first", "last", *PREDICATES),
)
# expr v1.15.5's other builtins (builtin/builtin.go): real, but not modelled here
KNOWN_UNSUPPORTED = (
    *("type", "trimPrefix", "trimSuffix", "split", "splitAfter", "replace", "repeat", "join"),
    *("indexOf", "lastIndexOf", "hasPrefix", "hasSuffix", "find", "findIndex", "findLast"),
    *("findLastIndex", "groupBy", "reduce", "toJSON", "fromJSON", "toBase64", "fromBase64"),
    *("now", "duration", "date", "get", "take", "keys", "values", "toPairs", "fromPairs"),
    *("sort", "sortBy"),
)


def mismatch(op: str, l: T, r: T) -> ExprError:  # noqa: E741
    return ExprError(f"invalid operation: {op} (mismatched types {l} and {r})")


class Checker:
    """expr's checker for the modelled nodes: the type of each, or ExprError."""

    def __init__(self, env: dict[str, T]):
        self.env: dict[str, T] = env
        self.elems: list[T] = []

    def check(self, node: tuple) -> T:
        return getattr(self, f"t_{node[0]}")(node)

    def t_lit(self, node: tuple) -> T:
        return type_of(node[1])

    def t_elem(self, node: tuple) -> T:
        if not self.elems:
            raise ExprError("cannot use pointer accessor outside closure")
        return self.elems[-1]

    def t_name(self, node: tuple) -> T:
        name = node[1]
        if name in self.env:
            return self.env[name]
        if name in BUILTINS or name in ENV_FUNCS:
            return T("func", name=name)
        raise ExprError(f"unknown name {name}")

    def t_array(self, node: tuple) -> T:
        kinds = {self.check(n) for n in node[1]}
        return T("array", kinds.pop() if len(kinds) == 1 else ANY)

    def t_index(self, node: tuple) -> T:
        base, index = self.check(node[1]), self.check(node[2])
        if is_any(base):
            return ANY
        if base.kind == "array":
            if not ((is_number(index) and index.kind == "int") or is_any(index)):
                raise ExprError(
                    f"array elements can only be selected using an integer (got {index})"
                )
            return base.elem or ANY
        raise ExprError(f"type {base}[{index}] is undefined")

    def t_member(self, node: tuple) -> T:
        """MemberNode with a name: what exists on the types a result can have."""
        base, name = self.check(node[1]), node[2]
        if base.kind == "nil":
            raise ExprError(f"type <nil> has no field {name}")
        if is_any(base):
            raise Unsupported("member access on an interface{} value")
        if base.kind == "array":
            raise ExprError("array elements can only be selected using an integer (got string)")
        raise ExprError(f"type {base}[string] is undefined")

    def t_method(self, node: tuple) -> T:
        self.check(node[1])
        raise Unsupported("method calls")  # pragma: no cover - t_member raised first

    def t_slice(self, node: tuple) -> T:
        base = self.check(node[1])
        for bound in node[2:]:
            if bound is not None and self.check(bound).kind not in ("int", "any"):
                raise ExprError(f"non-integer slice index {self.check(bound)}")
        if base.kind in ("array", "string", "any"):
            return base
        raise ExprError(f"cannot slice {base}")

    def t_un(self, node: tuple) -> T:
        op, t = node[1], self.check(node[2])
        if op == "!" and (t == BOOL or is_any(t)):
            return BOOL
        if op in ("-", "+") and (is_number(t) or is_any(t)):
            return t
        raise ExprError(f"invalid operation: {op} (mismatched type {t})")

    def t_cond(self, node: tuple) -> T:
        test = self.check(node[1])
        if test != BOOL and not is_any(test):
            raise ExprError(f"non-bool expression (type {test}) used as condition")
        yes, no = self.check(node[2]), self.check(node[3])
        return yes if yes == no else ANY

    def t_bin(self, node: tuple) -> T:
        op, l, r = node[1], self.check(node[2]), self.check(node[3])  # noqa: E741
        if op in ("==", "!="):
            if comparable(l, r):
                return BOOL
        elif op in ("&&", "||"):
            if (l == BOOL and r == BOOL) or either(l, r, lambda t: t == BOOL):
                return BOOL
        elif op in ("<", ">", "<=", ">="):
            if (is_number(l) and is_number(r)) or (l == STRING and r == STRING):
                return BOOL
            if either(l, r, is_number, lambda t: t == STRING):
                return BOOL
        elif op in ("-", "*"):
            if is_number(l) and is_number(r):
                return combined(l, r)
            if either(l, r, is_number):
                return ANY
        elif op in ("/", "**", "^"):
            if (is_number(l) and is_number(r)) or either(l, r, is_number):
                return FLOAT
        elif op == "%":
            if l == INT and r == INT:
                return INT
            if either(l, r, lambda t: t == INT):
                return ANY
        elif op == "+":
            if is_number(l) and is_number(r):
                return combined(l, r)
            if l == STRING and r == STRING:
                return STRING
            if either(l, r, is_number, lambda t: t == STRING):
                return ANY
        elif op in ("in", "not in"):
            if r.kind == "array":
                if l.kind == "nil":
                    return BOOL
                if not comparable(l, r.elem or ANY):
                    raise ExprError(f"cannot use {l} as type {r.elem} in array")
                return BOOL
            if (is_any(l) and r.kind in ("string", "array")) or is_any(r):
                return BOOL
        elif op in ("matches", "contains", "startsWith", "endsWith"):
            if op == "matches" and node[3][0] == "lit" and isinstance(node[3][1], str):
                regex(node[3][1])
            if (l == STRING and r == STRING) or either(l, r, lambda t: t == STRING):
                return BOOL
        elif op == "..":
            if (l == INT and r == INT) or either(l, r, lambda t: t == INT):
                return T("array", INT)
        elif op == "??":
            if l.kind == "nil":
                return r
            if r.kind == "nil":
                return l
            return l if l == r else ANY
        raise mismatch(op, l, r)

    def t_closure(self, node: tuple) -> T:
        return self.check(node[1])

    def t_call(self, node: tuple) -> T:
        name, args = node[1], node[2]
        if name in self.env:
            raise ExprError(f"{self.env[name]} is not callable")
        if name in KNOWN_UNSUPPORTED:
            raise Unsupported(f"the builtin {name}()")
        if name not in BUILTINS and name not in ENV_FUNCS:
            raise ExprError(f"unknown func {name}")
        if name in PREDICATES:
            return self.predicate(name, args)
        types = [self.check(a) for a in args]
        arity = {"asInt": 1, "asFloat": 1, "isNaN": 1, "isInf": 1, "isNil": 1, "default": 2}
        if name in arity:  # Argo's env functions: Go funcs checked by assignability
            if len(types) != arity[name]:
                raise ExprError(
                    f"invalid number of arguments for {name} (expected {arity[name]},"
                    f" got {len(types)})"
                )
            if name in ("isNaN", "isInf") and not (is_number(types[0]) or is_any(types[0])):
                raise ExprError(f"cannot use {types[0]} as argument (type float64) to call {name}")
            if name in ("isNaN", "isInf") and types[0] == INT and args[0][0] != "lit":
                raise ExprError(f"cannot use int as argument (type float64) to call {name}")
            return {"asInt": INT, "asFloat": FLOAT, "default": ANY}.get(name, BOOL)
        if name in ("max", "min"):
            if not types:
                raise ExprError(f"not enough arguments to call {name}")
            for t in types:
                if is_any(t):
                    return ANY
                if not is_number(t):
                    raise ExprError(f"invalid argument for {name} (type {t})")
            return types[0]
        if len(types) != 1:
            raise ExprError(f"invalid number of arguments (expected 1, got {len(types)})")
        (t,) = types
        if name == "len":
            if t.kind in ("array", "string", "any"):
                return INT
            raise ExprError(f"invalid argument for len (type {t})")
        if name in ("abs", "ceil", "floor", "round"):
            if is_number(t) or is_any(t):
                return t if name == "abs" else FLOAT
            raise ExprError(f"invalid argument for {name} (type {t})")
        if name in ("int", "float"):
            if is_number(t) or t.kind in ("string", "any"):
                return INT if name == "int" else FLOAT
            raise ExprError(f"invalid argument for {name} (type {t})")
        if name == "string":
            return STRING
        if name in ("upper", "lower", "trim"):
            if t.kind in ("string", "any"):
                return STRING
            raise ExprError(f"cannot use {t} as argument (type string) to call {name}")
        if name in ("sum", "mean", "median"):
            if t.kind in ("array", "any"):
                return ANY if name == "sum" else FLOAT
            raise ExprError(f"cannot {name} {t}")
        if name in ("first", "last"):
            if t.kind == "array":
                return t.elem or ANY
            if is_any(t):
                return ANY
            raise ExprError(f"cannot get {name} from {t}")
        raise Unsupported(f"the builtin {name}()")  # pragma: no cover

    def predicate(self, name: str, args: list[tuple]) -> T:
        if len(args) != 2:
            raise ExprError(f"invalid number of arguments (expected 2, got {len(args)})")
        base = self.check(args[0])
        if base.kind not in ("array", "any"):
            raise ExprError(f"builtin {name} takes only array (got {base})")
        self.elems.append(base.elem or ANY if base.kind == "array" else ANY)
        try:
            out = self.check(args[1])
        finally:
            self.elems.pop()
        if name in ("map",):
            return T("array", out)
        if out != BOOL and not is_any(out):
            raise ExprError(f"predicate should return boolean (got {out})")
        return {
            "filter": T("array", base.elem or ANY) if base.kind == "array" else ANY_ARRAY,
            "count": INT,
        }.get(name, BOOL)


def regex(pattern: str) -> re.Pattern:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ExprError(f"error parsing regexp: {exc}") from None


# --- running (expr's vm and runtime, for the modelled nodes) ----------------------------------

MIN_INT64 = -(2**63)


def go_int(x: Any) -> int:
    """Go's int64(x) for a float: truncation; NaN, ±Inf and out-of-range give MinInt64, as
    amd64 does (the architecture Argo's images are built for)."""
    if isinstance(x, bool):
        raise ExprError(f"asInt() not supported on bool {x}")
    if isinstance(x, int):
        return x
    if math.isnan(x) or math.isinf(x) or not -(2**63) <= x < 2**63:
        return MIN_INT64
    return int(x)


def as_int(x: Any) -> int:
    """Argo's asInt: numbers truncate, strings parse as base-10 integers."""
    if isinstance(x, str):
        if re.fullmatch(r"[-+]?\d+", x.strip()) and x == x.strip():
            return int(x)
        raise ExprError(f'strconv.ParseInt: parsing "{x}": invalid syntax')
    if isinstance(x, int | float):
        return go_int(x)
    raise ExprError(f"asInt() not supported on {type(x).__name__} {x}")


def as_float(x: Any) -> float:
    if isinstance(x, str):
        try:
            return float(x)
        except ValueError:
            raise ExprError(f'strconv.ParseFloat: parsing "{x}": invalid syntax') from None
    if isinstance(x, int | float) and not isinstance(x, bool):
        return float(x)
    raise ExprError(f"asFloat() not supported on {type(x).__name__} {x}")


def go_format(x: Any) -> str:
    """fmt.Sprintf("%v", x) for the values a condition sees (floats as strconv's 'g' with
    the shortest precision: exponent form below 1e-4 and from 1e21)."""
    if x is None:
        return "<nil>"
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, float):
        if math.isnan(x):
            return "NaN"
        if math.isinf(x):
            return "+Inf" if x > 0 else "-Inf"
        if x == 0:
            return "-0" if math.copysign(1, x) < 0 else "0"
        sign, digits, exponent = Decimal(repr(x)).normalize().as_tuple()
        text = "".join(map(str, digits))
        exp10 = len(text) + int(exponent) - 1
        if exp10 < -4 or exp10 >= 21:
            mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
            return f"{'-' if sign else ''}{mantissa}e{exp10:+03d}"
        return format(Decimal(repr(x)).normalize(), "f")
    if isinstance(x, list):
        return "[" + " ".join(go_format(v) for v in x) + "]"
    return str(x)


def truthy(v: Any, what: str) -> bool:
    if not isinstance(v, bool):
        raise ExprError(f"{what}: expected bool, got {type_of(v)}")
    return v


def numeric(v: Any) -> TypeGuard[int | float]:
    return isinstance(v, int | float) and not isinstance(v, bool)


class Runner:
    def __init__(self, env: dict[str, Any]):
        self.env: dict[str, Any] = env
        self.elems: list[Any] = []

    def run(self, node: tuple) -> Any:
        return getattr(self, f"r_{node[0]}")(node)

    def r_lit(self, node: tuple) -> Any:
        return node[1]

    def r_elem(self, node: tuple) -> Any:
        return self.elems[-1]

    def r_name(self, node: tuple) -> Any:
        if node[1] not in self.env:  # a builtin named, not called: expr yields the function
            raise Unsupported(f"the function {node[1]} used as a value")
        return self.env[node[1]]

    def r_array(self, node: tuple) -> list:
        return [self.run(n) for n in node[1]]

    def r_index(self, node: tuple) -> Any:
        base, i = self.run(node[1]), self.run(node[2])
        if not isinstance(base, list):
            raise ExprError(f"cannot fetch {go_format(i)} from {type_of(base)}")
        if not isinstance(i, int) or isinstance(i, bool):
            raise ExprError(f"cannot use {type_of(i)} as index to {type_of(base)}")
        j = i + len(base) if i < 0 else i
        if not 0 <= j < len(base):
            raise ExprError(f"index out of range: {i} (array length is {len(base)})")
        return base[j]

    def r_slice(self, node: tuple) -> Any:
        base = self.run(node[1])
        n = len(base)
        lo = 0 if node[2] is None else self.run(node[2])
        hi = n if node[3] is None else self.run(node[3])
        lo, hi = (lo + n if lo < 0 else lo), (hi + n if hi < 0 else hi)
        if not 0 <= lo <= hi <= n:
            raise ExprError(f"slice bounds out of range [{lo}:{hi}] with capacity {n}")
        return base[lo:hi]

    def r_un(self, node: tuple) -> Any:
        v = self.run(node[2])
        if node[1] == "!":
            return not truthy(v, "!")
        if not numeric(v):
            raise ExprError(f"invalid operation: {node[1]} {type_of(v)}")
        return -v if node[1] == "-" else v

    def r_cond(self, node: tuple) -> Any:
        return self.run(node[2]) if truthy(self.run(node[1]), "?:") else self.run(node[3])

    def r_closure(self, node: tuple) -> Any:
        return self.run(node[1])

    def r_bin(self, node: tuple) -> Any:
        op = node[1]
        a = self.run(node[2])
        if op in ("&&", "||"):
            if truthy(a, op) == (op == "||"):
                return a
            return truthy(self.run(node[3]), op)
        if op == "??":
            return self.run(node[3]) if a is None else a
        b = self.run(node[3])
        if op in ("==", "!="):
            same = equal(a, b)
            return same if op == "==" else not same
        if op in ("in", "not in"):
            if isinstance(b, list):
                found = any(equal(a, x) for x in b)
            elif isinstance(b, str) and isinstance(a, str):
                raise ExprError(f"operator in not defined on {type_of(b)}")
            else:
                raise ExprError(f"operator in not defined on {type_of(b)}")
            return found if op == "in" else not found
        if op in ("matches", "contains", "startsWith", "endsWith"):
            if not (isinstance(a, str) and isinstance(b, str)):
                raise ExprError(f"invalid operation: {op} ({type_of(a)} and {type_of(b)})")
            if op == "matches":
                return regex(b).search(a) is not None
            return {"contains": b in a, "startsWith": a.startswith(b), "endsWith": a.endswith(b)}[
                op
            ]
        if op == "..":
            return list(range(a, b + 1))
        if op == "+" and isinstance(a, str) and isinstance(b, str):
            return a + b
        if op in ("<", ">", "<=", ">=") and isinstance(a, str) and isinstance(b, str):
            return {"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]
        if not (numeric(a) and numeric(b)):
            raise ExprError(f"invalid operation: {type_of(a)} {op} {type_of(b)}")
        if op in ("<", ">", "<=", ">="):
            return {"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]
        if op == "/":
            return divide(float(a), float(b))
        if op in ("**", "^"):
            return power(float(a), float(b))
        if op == "%":
            if not (isinstance(a, int) and isinstance(b, int)):
                raise ExprError(f"invalid operation: {type_of(a)} % {type_of(b)}")
            if b == 0:
                raise ExprError("runtime error: integer divide by zero")
            return int(math.fmod(a, b))  # Go's %: the sign of the dividend
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        return a * b

    def r_call(self, node: tuple) -> Any:
        name, args = node[1], node[2]
        if name in PREDICATES:
            items = self.run(args[0])
            if not isinstance(items, list):
                raise ExprError(f"cannot iterate over {type_of(items)}")
            out = []
            for item in items:
                self.elems.append(item)
                try:
                    out.append(self.run(args[1]))
                finally:
                    self.elems.pop()
            if name == "map":
                return out
            flags = [truthy(v, name) for v in out]
            if name == "filter":
                return [x for x, f in zip(items, flags, strict=True) if f]
            return {
                "all": all(flags),
                "none": not any(flags),
                "any": any(flags),
                "one": sum(flags) == 1,
                "count": sum(flags),
            }[name]
        values = [self.run(a) for a in args]
        result = self.env["result"]
        if name == "isNil":
            return result is None
        if name == "default":
            return values[1] if result is None else result
        if name == "asInt":
            return as_int(values[0])
        if name == "asFloat":
            return as_float(values[0])
        x = values[0] if values else None
        if name in ("isNaN", "isInf"):
            if not numeric(x):
                raise ExprError(f"cannot use {type_of(x)} as float64 in {name}")
            return math.isnan(x) if name == "isNaN" else math.isinf(x)
        if name == "len":
            if isinstance(x, str):
                return len(x.encode())  # Go: bytes
            if isinstance(x, list):
                return len(x)
            raise ExprError(f"invalid argument for len (type {type_of(x)})")
        if name in ("max", "min"):
            if not all(numeric(v) for v in values):
                raise ExprError(f"invalid argument for {name}")
            pick = max if name == "max" else min
            return pick(values)
        if name in ("sum", "mean", "median"):
            if not isinstance(x, list) or not all(numeric(v) for v in x):
                raise ExprError(f"cannot {name} {type_of(x)}")
            if name == "sum":
                return sum(x)
            if not x:
                return 0.0
            if name == "mean":
                return float(sum(x)) / len(x)
            s = sorted(x)
            mid = len(s) // 2
            return float(s[mid]) if len(s) % 2 else (s[mid - 1] + s[mid]) / 2
        if name in ("first", "last"):
            if not isinstance(x, list):
                raise ExprError(f"cannot get {name} from {type_of(x)}")
            return (x[0] if name == "first" else x[-1]) if x else None
        if name == "abs":
            if not numeric(x):
                raise ExprError(f"invalid argument for abs (type {type_of(x)})")
            return abs(x)
        if name in ("ceil", "floor", "round"):
            if not numeric(x):
                raise ExprError(f"invalid argument for {name} (type {type_of(x)})")
            f = float(x)
            if math.isnan(f) or math.isinf(f):
                return f
            if name == "round":  # Go's math.Round: half away from zero
                return float(math.floor(abs(f) + 0.5)) * (1 if f >= 0 else -1)
            return float(math.ceil(f) if name == "ceil" else math.floor(f))
        if name == "int":
            return as_int(x) if isinstance(x, str) else go_int(x)
        if name == "float":
            return as_float(x)
        if name == "string":
            return go_format(x)
        if name in ("upper", "lower", "trim"):
            if not isinstance(x, str):
                raise ExprError(f"cannot use {type_of(x)} as string in {name}")
            return {"upper": x.upper(), "lower": x.lower(), "trim": x.strip()}[name]
        raise Unsupported(f"the builtin {name}()")  # pragma: no cover


def equal(a: Any, b: Any) -> bool:
    """expr's runtime.Equal: numbers by value across int and float, else deep equality."""
    if numeric(a) and numeric(b):
        return a == b
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def divide(a: float, b: float) -> float:
    if b == 0:
        if a == 0 or math.isnan(a):
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1, b)
    return a / b


def power(a: float, b: float) -> float:
    try:
        return math.pow(a, b)
    except (OverflowError, ValueError):
        if a < 0 and not b.is_integer():
            return math.nan
        return math.inf if abs(a) > 1 or b < 0 else 0.0


GO_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
GO_DURATION = re.compile(r"(\d*\.?\d*)([^\d.]*)")


def go_duration(text: str) -> float:
    """time.ParseDuration in seconds; ValueError worded as Go's."""
    body = text.lstrip("+-")
    sign = -1.0 if text.startswith("-") else 1.0
    if body == "0":
        return 0.0
    if not body:
        raise ValueError(f'time: invalid duration "{text}"')
    total, pos = 0.0, 0
    while pos < len(body):
        m = GO_DURATION.match(body, pos)
        if m is None:  # the pattern matches any text; kept for the type checker
            raise ValueError(f'time: invalid duration "{text}"')
        number, unit = m[1], m[2]
        if not number or number == ".":
            raise ValueError(f'time: invalid duration "{text}"')
        if not unit:
            raise ValueError(f'time: missing unit in duration "{text}"')
        if unit not in GO_UNITS:
            raise ValueError(f'time: unknown unit "{unit}" in duration "{text}"')
        total += float(number) * GO_UNITS[unit]
        pos = m.end()
    return sign * total


DATE_LAYOUTS = {  # expr's date() layouts this model parses (Go layout -> strptime)
    "2006-01-02": "%Y-%m-%d",
    "2006-01-02 15:04:05": "%Y-%m-%d %H:%M:%S",
    "2006-01-02T15:04:05Z07:00": "%Y-%m-%dT%H:%M:%S%z",
}


def eval_time(text: str, time_scale: float = 1.0) -> float:
    """Argo's EvalTime (a rangeQuery's start or end) as Unix seconds: expr's now(),
    date(), duration() and time +/- duration; durations divided by `time_scale` (rehearsals).
    Other expressions are Unsupported."""
    import datetime as dt
    import time as clock

    def run(node: tuple) -> tuple[str, float]:
        if node[0] == "call" and node[1] == "now" and not node[2]:
            return "time", clock.time()
        if node[0] == "call" and node[1] == "duration" and len(node[2]) == 1:
            arg = node[2][0]
            if arg[0] != "lit" or not isinstance(arg[1], str):
                raise Unsupported("duration() of an expression")
            try:
                return "duration", go_duration(arg[1]) / time_scale
            except ValueError as exc:
                raise ExprError(str(exc)) from None
        if node[0] == "call" and node[1] == "date" and 1 <= len(node[2]) <= 3:
            args = [a[1] for a in node[2] if a[0] == "lit" and isinstance(a[1], str)]
            if len(args) != len(node[2]):
                raise Unsupported("date() of an expression")
            layouts = [args[1]] if len(args) > 1 else list(DATE_LAYOUTS)
            zone: dt.tzinfo = dt.UTC
            if len(args) == 3 and args[2] != "UTC":
                from zoneinfo import ZoneInfo

                zone = ZoneInfo(args[2])
            for layout in layouts:
                if layout not in DATE_LAYOUTS:
                    raise Unsupported(f"the date layout {layout!r}")
                try:
                    when = dt.datetime.strptime(args[0], DATE_LAYOUTS[layout])
                except ValueError:
                    continue
                return "time", (when if when.tzinfo else when.replace(tzinfo=zone)).timestamp()
            raise ExprError(f"invalid date {args[0]}")
        if node[0] == "bin" and node[1] in ("+", "-"):
            (lk, lv), (rk, rv) = run(node[2]), run(node[3])
            if lk == "time" and rk == "duration":
                return "time", lv + rv if node[1] == "+" else lv - rv
            if (lk, rk) == ("duration", "time") and node[1] == "+":
                return "time", lv + rv
            if (lk, rk) == ("time", "time") and node[1] == "-":
                return "duration", lv - rv
            raise ExprError(f"invalid operation: {node[1]} ({lk} and {rk})")
        raise Unsupported("this time expression")

    kind, value = run(Parser(text).parse())
    if kind != "time":
        raise ExprError(f"expected time.Time, but got {kind}")
    return value


def compile_condition(text: str) -> Callable[[Any], bool]:
    """A condition over `result`: called with a result, it compiles against that result's
    type (as Argo compiles per measurement, with the value in the env), runs, and gives a
    bool; ExprError for what Argo reports as an Error, Unsupported for what is not modelled."""
    tree = Parser(text).parse()

    def condition(result: Any) -> bool:
        env = {"result": type_of(result)}
        Checker(env).check(tree)
        value = Runner({"result": result}).run(tree)
        if not isinstance(value, bool):
            raise ExprError(f"expected bool, but got {type_of(value)}")
        return value

    return condition
