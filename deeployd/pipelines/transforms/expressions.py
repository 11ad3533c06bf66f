"""The `map` expression language: tokenizer, recursive-descent parser, AST, closure compiler.

Grammar (whitespace between tokens is ignored):

    expression := literal | path | call
    call       := NAME "(" [ expression ("," expression)* ] ")"
    literal    := STRING | NUMBER | "true" | "false" | "null"
    path       := NAME ("." (NAME | DIGITS))*          e.g. user.name, items.0.id
    STRING     := '"' ... '"' | "'" ... "'"           backslash escapes: \\" \\' \\\\ \\/ \\n \\t \\r \\b \\f \\uXXXX
    NUMBER     := -?DIGITS(.DIGITS)?([eE][+-]?DIGITS)?
    NAME       := [A-Za-z_$][A-Za-z0-9_$]*

The text is parsed ONCE into an AST (`parse`), checked (known functions, arity), and compiled
into nested Python closures (`compile_expression`) that are evaluated per item. Nothing is ever
passed to `eval`. Evaluation errors raise `StepError` (the item becomes a dead letter); a null
argument generally yields null (see docs/pipelines-transforms.md for every function).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from .errors import StepError
from .paths import make_getter

MAX_EXPRESSION_LENGTH = 4096
MAX_DEPTH = 32


class ExpressionError(ValueError):
    """A syntax/semantic error in an expression (turned into a ConfigError by the caller)."""

    def __init__(self, msg: str) -> None:
        self.msg = msg
        super().__init__(msg)


# --------------------------------------------------------------------------- tokens


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "name" | "path" | "string" | "number" | "(" | ")" | "," | "eof"
    text: str  # source text (for error messages)
    value: Any  # decoded literal / path segments
    column: int  # 1-based column of the first character


_NAME_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_$")
_NAME_CHARS = _NAME_START | frozenset("0123456789")
_DIGITS = frozenset("0123456789")
_ESCAPES = {
    '"': '"',
    "'": "'",
    "\\": "\\",
    "/": "/",
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "b": "\b",
    "f": "\f",
}


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        col = i + 1
        if c in " \t\r\n":
            i += 1
        elif c in "(),":
            tokens.append(Token(c, c, None, col))
            i += 1
        elif c == '"' or c == "'":
            i = _read_string(text, i, tokens)
        elif c in _DIGITS or (c == "-" and i + 1 < n and text[i + 1] in _DIGITS):
            i = _read_number(text, i, tokens)
        elif c in _NAME_START:
            i = _read_name_or_path(text, i, tokens)
        else:
            raise ExpressionError(f"unexpected character {c!r} at column {col}")
    tokens.append(Token("eof", "end of expression", None, n + 1))
    return tokens


def _read_string(text: str, start: int, out: list[Token]) -> int:
    quote = text[start]
    i, n = start + 1, len(text)
    chars: list[str] = []
    while i < n:
        c = text[i]
        if c == quote:
            out.append(Token("string", text[start : i + 1], "".join(chars), start + 1))
            return i + 1
        if c == "\\":
            if i + 1 >= n:
                break
            e = text[i + 1]
            if e in _ESCAPES:
                chars.append(_ESCAPES[e])
                i += 2
                continue
            if e == "u":
                hexdigits = text[i + 2 : i + 6]
                if len(hexdigits) == 4 and all(h in "0123456789abcdefABCDEF" for h in hexdigits):
                    chars.append(chr(int(hexdigits, 16)))
                    i += 6
                    continue
            raise ExpressionError(f"invalid escape '\\{e}' at column {i + 1}")
        chars.append(c)
        i += 1
    raise ExpressionError(f"unterminated string starting at column {start + 1}")


def _read_number(text: str, start: int, out: list[Token]) -> int:
    i, n = start, len(text)
    if text[i] == "-":
        i += 1
    while i < n and text[i] in _DIGITS:
        i += 1
    is_float = False
    if i < n and text[i] == "." and i + 1 < n and text[i + 1] in _DIGITS:
        is_float = True
        i += 1
        while i < n and text[i] in _DIGITS:
            i += 1
    if i < n and text[i] in "eE":
        j = i + 1
        if j < n and text[j] in "+-":
            j += 1
        if j < n and text[j] in _DIGITS:
            is_float = True
            i = j
            while i < n and text[i] in _DIGITS:
                i += 1
    if i < n and (text[i] in _NAME_CHARS or text[i] == "."):
        raise ExpressionError(f"invalid number at column {start + 1}")
    raw = text[start:i]
    out.append(Token("number", raw, float(raw) if is_float else int(raw), start + 1))
    return i


def _read_name_or_path(text: str, start: int, out: list[Token]) -> int:
    i, n = start, len(text)
    segments: list[str] = []
    seg_start = i
    while True:
        while i < n and text[i] in _NAME_CHARS:
            i += 1
        segments.append(text[seg_start:i])
        if i < n and text[i] == ".":
            if i + 1 < n and text[i + 1] in _NAME_CHARS:
                i += 1
                seg_start = i
                continue
            raise ExpressionError(f"expected a field name after '.' at column {i + 1}")
        break
    raw = text[start:i]
    kind = "name" if len(segments) == 1 else "path"
    out.append(Token(kind, raw, tuple(segments), start + 1))
    return i


# --------------------------------------------------------------------------- AST


@dataclass(frozen=True, slots=True)
class Literal:
    value: Any


@dataclass(frozen=True, slots=True)
class Path:
    segments: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    args: tuple[Node, ...]
    column: int


Node = Literal | Path | Call

_KEYWORDS = {"true": True, "false": False, "null": None}


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> Token:
        return self.tokens[self.pos]

    def take(self) -> Token:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    @staticmethod
    def unexpected(tok: Token) -> ExpressionError:
        if tok.kind == "eof":
            return ExpressionError(f"unexpected end of expression at column {tok.column}")
        text = tok.text if len(tok.text) <= 20 else tok.text[:17] + "..."
        return ExpressionError(f"unexpected '{text}' at column {tok.column}")

    def expression(self, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise ExpressionError(f"expression nested deeper than {MAX_DEPTH} calls")
        tok = self.take()
        if tok.kind in ("string", "number"):
            return Literal(tok.value)
        if tok.kind == "name":
            if self.peek().kind == "(":
                return self.call(tok, depth)
            if tok.text in _KEYWORDS:
                return Literal(_KEYWORDS[tok.text])
            return Path(tok.value)
        if tok.kind == "path":
            if self.peek().kind == "(":
                raise ExpressionError(f"unknown function '{tok.text}'")
            return Path(tok.value)
        raise self.unexpected(tok)

    def call(self, name_tok: Token, depth: int) -> Call:
        name = name_tok.text
        spec = FUNCTIONS.get(name)
        if spec is None:
            raise ExpressionError(f"unknown function '{name}'")
        self.take()  # "("
        args: list[Node] = []
        if self.peek().kind == ")":
            self.take()
        else:
            while True:
                args.append(self.expression(depth + 1))
                tok = self.take()
                if tok.kind == ")":
                    break
                if tok.kind != ",":
                    raise self.unexpected(tok)
        _check_arity(spec, len(args), name_tok.column)
        return Call(name, tuple(args), name_tok.column)


def parse(text: str) -> Node:
    """Parse an expression into its AST; raises ExpressionError with a column on bad input."""
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(f"expression longer than {MAX_EXPRESSION_LENGTH} characters")
    tokens = tokenize(text)
    if tokens[0].kind == "eof":
        raise ExpressionError("empty expression")
    parser = _Parser(tokens)
    node = parser.expression(0)
    tail = parser.peek()
    if tail.kind != "eof":
        raise parser.unexpected(tail)
    return node


# --------------------------------------------------------------------------- evaluation


class EvalEnv:
    """Per-call evaluation context: `now()` is the batch's `now_ms`, never the wall clock."""

    __slots__ = ("_now_iso", "now_ms")

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms
        self._now_iso: str | None = None

    @property
    def now_iso(self) -> str:
        if self._now_iso is None:
            self._now_iso = iso_ms(self.now_ms)
        return self._now_iso


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MS = timedelta(milliseconds=1)


def iso_ms(ms: int | float) -> str:
    """Epoch ms -> '2026-11-24T09:51:00.000Z' (UTC, millisecond precision; integer arithmetic)."""
    dt = EPOCH + timedelta(milliseconds=int(ms))
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{dt.microsecond // 1000:03d}Z"


def datetime_ms(dt: datetime) -> int:
    """Aware/naive (= UTC) datetime -> epoch ms, exactly (no float rounding)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - EPOCH) // ONE_MS


Compiled = Callable[[Any, EvalEnv], Any]


def compile_expression(node: Node) -> Compiled:
    """Turn an AST into a closure `f(item_value, env) -> value`."""
    if isinstance(node, Literal):
        const = node.value

        def literal(v: Any, env: EvalEnv) -> Any:
            return const

        return literal
    if isinstance(node, Path):
        segs = node.segments
        if len(segs) == 1 and not segs[0].isdigit():  # the most common case, one call less
            (k,) = segs

            def path1(v: Any, env: EvalEnv) -> Any:
                try:
                    return v.get(k)
                except AttributeError:
                    return None

            return path1
        if len(segs) == 2 and not (segs[0].isdigit() or segs[1].isdigit()):
            k1, k2 = segs

            def path2(v: Any, env: EvalEnv) -> Any:
                try:
                    return v.get(k1).get(k2)
                except AttributeError:
                    return None

            return path2
        getter = make_getter(segs)

        def path(v: Any, env: EvalEnv) -> Any:
            return getter(v)

        return path
    spec = FUNCTIONS[node.name]
    args = [compile_expression(a) for a in node.args]
    fn = spec.impl
    if spec.kind == "lazy":  # gets the argument closures, evaluates only what it needs

        def lazy(v: Any, env: EvalEnv) -> Any:
            return fn(v, env, args)

        return lazy
    if spec.kind == "env":

        def with_env(v: Any, env: EvalEnv) -> Any:
            return fn(env, *[a(v, env) for a in args])

        return with_env
    if len(args) == 1:
        (a0,) = args

        def call1(v: Any, env: EvalEnv) -> Any:
            return fn(a0(v, env))

        return call1
    if len(args) == 2:
        a0, a1 = args

        def call2(v: Any, env: EvalEnv) -> Any:
            return fn(a0(v, env), a1(v, env))

        return call2

    def calln(v: Any, env: EvalEnv) -> Any:
        return fn(*[a(v, env) for a in args])

    return calln


def compile_text(text: str) -> Compiled:
    return compile_expression(parse(text))


# --------------------------------------------------------------------------- functions


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    impl: Callable[..., Any]
    min_args: int
    max_args: int | None  # None: variadic
    kind: str = "eager"  # "eager" | "lazy" | "env"
    doc: str = ""


def _check_arity(spec: FunctionSpec, got: int, column: int) -> None:
    lo, hi = spec.min_args, spec.max_args
    if lo <= got and (hi is None or got <= hi):
        return
    name = next(k for k, v in FUNCTIONS.items() if v is spec)

    def plural(k: int) -> str:
        return f"{k} argument" + ("" if k == 1 else "s")

    if hi is None:
        want = f"at least {plural(lo)}"
    elif lo == hi:
        want = plural(lo)
    else:
        want = f"{lo} to {hi} arguments"
    raise ExpressionError(f"function '{name}' expects {want}, got {got} at column {column}")


def type_name(x: Any) -> str:
    if x is None:
        return "null"
    if isinstance(x, bool):
        return "boolean"
    if isinstance(x, int | float):
        return "number"
    if isinstance(x, str):
        return "string"
    if isinstance(x, list):
        return "array"
    return "object"


def _show(x: Any) -> str:
    text = json.dumps(x, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def is_number(x: Any) -> bool:
    return (type(x) is int or type(x) is float) and x == x  # bool is not a number; NaN excluded


def to_str(x: Any) -> str:
    """JSON-like rendering: true/false, 2.0 -> "2", objects as compact JSON."""
    t = type(x)
    if t is str:
        return x
    if t is bool:
        return "true" if x else "false"
    if t is int:
        return str(x)
    if t is float:
        if x.is_integer() and abs(x) < 1e21:
            return str(int(x))
        return repr(x)
    if x is None:
        return "null"
    return json.dumps(x, separators=(",", ":"), ensure_ascii=False)


def truthy(x: Any) -> bool:
    return not (
        x is None or x is False or (x == 0 and is_number(x)) or x == "" or x == [] or x == {}
    )


def values_equal(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0, but true != 1 (booleans are not numbers)."""
    if type(a) is bool or type(b) is bool:
        return a is b
    return bool(a == b)


def _string_arg(fname: str, x: Any) -> str:
    if isinstance(x, dict | list):
        raise StepError(f"{fname}: expected a string, got {type_name(x)}")
    return to_str(x)


def _number_arg(fname: str, x: Any) -> int | float:
    if not is_number(x):
        raise StepError(f"{fname}: expected a number, got {type_name(x)} {_show(x)}")
    return x


def _int_arg(fname: str, x: Any) -> int:
    if is_number(x) and float(x).is_integer():
        return int(x)
    raise StepError(f"{fname}: expected an integer, got {type_name(x)} {_show(x)}")


def _upper(x: Any) -> Any:
    return None if x is None else _string_arg("upper", x).upper()


def _lower(x: Any) -> Any:
    return None if x is None else _string_arg("lower", x).lower()


def _trim(x: Any) -> Any:
    return None if x is None else _string_arg("trim", x).strip()


def _concat(*xs: Any) -> str:
    return "".join([x if type(x) is str else ("" if x is None else to_str(x)) for x in xs])


def _coalesce(v: Any, env: EvalEnv, args: list[Compiled]) -> Any:
    for a in args:
        x = a(v, env)
        if x is not None:
            return x
    return None


def _if(v: Any, env: EvalEnv, args: list[Compiled]) -> Any:
    if truthy(args[0](v, env)):
        return args[1](v, env)
    return args[2](v, env) if len(args) > 2 else None


def parse_number(s: str) -> int | float | None:
    text = s.strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        f = float(text)
    except ValueError:
        return None
    return f if math.isfinite(f) else None


def _to_number(x: Any, *fallback: Any) -> Any:
    if x is None:
        return fallback[0] if fallback else None
    if is_number(x):
        return x
    if type(x) is bool:
        return 1 if x else 0
    if type(x) is str:
        n = parse_number(x)
        if n is not None:
            return n
    if fallback:
        return fallback[0]
    raise StepError(f"toNumber: cannot convert {type_name(x)} {_show(x)} to a number")


def _to_string(x: Any) -> Any:
    return None if x is None else to_str(x)


_BOOL_WORDS = {"true": True, "false": False, "yes": True, "no": False, "1": True, "0": False}
_BOOL_WORDS |= {"on": True, "off": False}


def _to_boolean(x: Any) -> Any:
    if x is None or type(x) is bool:
        return x
    if is_number(x):
        return x != 0
    if type(x) is str:
        word = _BOOL_WORDS.get(x.strip().lower())
        if word is not None:
            return word
    raise StepError(f"toBoolean: cannot convert {type_name(x)} {_show(x)} to a boolean")


def _round(x: Any, digits: Any = 0) -> Any:
    if x is None:
        return None
    x = _number_arg("round", x)
    d = _int_arg("round", digits)
    if not -15 <= d <= 15:
        raise StepError("round: digits must be between -15 and 15")
    try:  # half away from zero (2.5 -> 3), on the decimal text of the number
        q = Decimal(repr(x)).quantize(Decimal(1).scaleb(-d), rounding=ROUND_HALF_UP)
    except InvalidOperation as exc:
        raise StepError(f"round: cannot round {_show(x)}") from exc
    return int(q) if d <= 0 else float(q)


def _floor(x: Any) -> Any:
    return None if x is None else math.floor(_number_arg("floor", x))


def _ceil(x: Any) -> Any:
    return None if x is None else math.ceil(_number_arg("ceil", x))


def _abs(x: Any) -> Any:
    return None if x is None else abs(_number_arg("abs", x))


def _len(x: Any) -> Any:
    if x is None:
        return None
    if isinstance(x, str | list | dict):
        return len(x)
    raise StepError(f"len: expected a string, array or object, got {type_name(x)}")


def _extreme(fname: str, pick: Callable[..., Any]) -> Callable[..., Any]:
    def impl(*xs: Any) -> Any:
        vals = [x for x in xs if x is not None]
        if not vals:
            return None
        if all(is_number(x) for x in vals) or all(type(x) is str for x in vals):
            return pick(vals)
        raise StepError(f"{fname}: arguments must be all numbers or all strings")

    return impl


def _substring(s: Any, start: Any, end: Any = None) -> Any:
    if s is None:
        return None
    text = _string_arg("substring", s)
    a = _int_arg("substring", start)
    b = None if end is None else _int_arg("substring", end)
    return text[a:b]


def _replace(s: Any, old: Any, new: Any) -> Any:
    if s is None:
        return None
    return _string_arg("replace", s).replace(
        _string_arg("replace", old), "" if new is None else _string_arg("replace", new)
    )


def _arith(fname: str, op: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def impl(a: Any, b: Any) -> Any:
        if a is None or b is None:
            return None
        return op(_number_arg(fname, a), _number_arg(fname, b))

    return impl


def _div(a: Any, b: Any) -> Any:
    if b == 0 and is_number(b):
        raise StepError("div: division by zero")
    return a / b


def _now(env: EvalEnv) -> str:
    return env.now_iso


def _now_ms(env: EvalEnv) -> int:
    return env.now_ms


FUNCTIONS: dict[str, FunctionSpec] = {
    "upper": FunctionSpec(_upper, 1, 1, doc="upper-case a string"),
    "lower": FunctionSpec(_lower, 1, 1, doc="lower-case a string"),
    "trim": FunctionSpec(_trim, 1, 1, doc="strip leading/trailing whitespace"),
    "concat": FunctionSpec(_concat, 1, None, doc="join values as text; null counts as ''"),
    "coalesce": FunctionSpec(_coalesce, 1, None, "lazy", "first non-null argument"),
    "default": FunctionSpec(_coalesce, 2, 2, "lazy", "value, or the fallback when null"),
    "if": FunctionSpec(_if, 2, 3, "lazy", "if(cond, then[, else]) by truthiness"),
    "toNumber": FunctionSpec(_to_number, 1, 2, doc="number from number/string/bool"),
    "toString": FunctionSpec(_to_string, 1, 1, doc="text form (JSON for objects)"),
    "toBoolean": FunctionSpec(_to_boolean, 1, 1, doc="boolean from bool/number/word"),
    "round": FunctionSpec(_round, 1, 2, doc="round half away from zero"),
    "floor": FunctionSpec(_floor, 1, 1),
    "ceil": FunctionSpec(_ceil, 1, 1),
    "abs": FunctionSpec(_abs, 1, 1),
    "min": FunctionSpec(_extreme("min", min), 1, None, doc="smallest non-null argument"),
    "max": FunctionSpec(_extreme("max", max), 1, None, doc="largest non-null argument"),
    "len": FunctionSpec(_len, 1, 1, doc="length of a string, array or object"),
    "substring": FunctionSpec(_substring, 2, 3, doc="substring(s, start[, end]), Python slice"),
    "replace": FunctionSpec(_replace, 3, 3, doc="replace every occurrence"),
    "add": FunctionSpec(_arith("add", lambda a, b: a + b), 2, 2),
    "sub": FunctionSpec(_arith("sub", lambda a, b: a - b), 2, 2),
    "mul": FunctionSpec(_arith("mul", lambda a, b: a * b), 2, 2),
    "div": FunctionSpec(_arith("div", _div), 2, 2),
    "eq": FunctionSpec(lambda a, b: values_equal(a, b), 2, 2, doc="JSON equality"),
    "not": FunctionSpec(lambda x: not truthy(x), 1, 1),
    "isNull": FunctionSpec(lambda x: x is None, 1, 1),
    "now": FunctionSpec(_now, 0, 0, "env", "the batch's processing time, ISO-8601 UTC"),
    "nowMs": FunctionSpec(_now_ms, 0, 0, "env", "the batch's processing time, epoch ms"),
}
