"""`calculator`: arithmetic on a safe AST walk. Never `eval`: only an allowlist of nodes runs."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from deeployd.agents.tools.base import BaseTool, ToolContext, ToolError, register_tool

MAX_EXPRESSION_CHARS = 500
MAX_EXPONENT = 10_000
# An integer result may have at most this many bits (≈ 3,000 decimal digits).
MAX_INT_BITS = 10_000

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sqrt": math.sqrt,
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "floor": math.floor,
    "ceil": math.ceil,
    "exp": math.exp,
    "log": math.log,
    "log10": math.log10,
    "log2": math.log2,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
}
_CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau}
_MAX_ARGS = 50


def evaluate(expression: str) -> int | float:
    """Evaluate arithmetic; raises ToolError for anything outside the allowlist or the bounds."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolError(f"expression is longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise ToolError(f"not an arithmetic expression: {exc}") from None
    try:
        result = _eval(tree.body)
    except ZeroDivisionError:
        raise ToolError("division by zero") from None
    except (OverflowError, MemoryError):
        raise ToolError("the result is too large") from None
    except RecursionError:
        raise ToolError("the expression is nested too deeply") from None
    except (ValueError, TypeError) as exc:  # e.g. sqrt(-1), log(0)
        raise ToolError(f"math error: {exc}") from None
    if isinstance(result, float) and not math.isfinite(result):
        raise ToolError("the result is not a finite number")
    if isinstance(result, float) and result.is_integer() and abs(result) < 2**53:
        return int(result)
    return result


def _number(value: Any) -> int | float:
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise ToolError("the result is too large")
    return value


def _eval(node: ast.AST) -> int | float:
    if isinstance(node, ast.Constant):
        # bool is an int subclass; strings, bytes, None... are not numbers.
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise ToolError(f"unsupported constant {node.value!r}")
        return _number(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            _check_power(left, right)
        return _number(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
    ):
        if len(node.args) > _MAX_ARGS:
            raise ToolError("too many arguments")
        if any(isinstance(arg, ast.Starred) for arg in node.args):
            raise ToolError("unsupported syntax: *args")
        return _number(_FUNCTIONS[node.func.id](*(_eval(arg) for arg in node.args)))
    raise ToolError(f"unsupported syntax: {_describe(node)}")


def _check_power(base: int | float, exponent: int | float) -> None:
    if abs(exponent) > MAX_EXPONENT:
        raise ToolError(f"exponent larger than {MAX_EXPONENT}")
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0:
        if base.bit_length() * exponent > MAX_INT_BITS:
            raise ToolError("the result is too large")


def _describe(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return f"unknown name {node.id!r}"
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name):
            return _describe(node.func)
        if node.func.id in _FUNCTIONS:
            return "keyword arguments"
        return f"unknown function {node.func.id!r}"
    if isinstance(node, ast.Attribute):
        return "attribute access"
    return type(node).__name__


class CalculatorArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    expression: str = Field(
        min_length=1,
        max_length=MAX_EXPRESSION_CHARS,
        description="Arithmetic, e.g. '(2 + 3) * 7' or 'sqrt(2) * pi'. Operators + - * / // % **; "
        "functions sqrt abs round min max floor ceil exp log log10 log2 sin cos tan; constants pi e tau.",
    )


class Calculator(BaseTool):
    name = "calculator"
    description = "Evaluate an arithmetic expression exactly and return the number."
    Args = CalculatorArgs

    async def execute(self, params: CalculatorArgs, ctx: ToolContext) -> dict[str, Any]:
        return {"expression": params.expression, "result": evaluate(params.expression)}


register_tool(Calculator())
