"""Exact arithmetic and algebra for the lead: the answer a 135M model cannot compute.

Expressions are parsed with :mod:`ast` and translated node by node into sympy objects from a
whitelist — nothing is ever ``eval``-ed, and sympy's own ``parse_expr`` (which evaluates
strings) is not used. Sizes are checked up front where they can be (``10**10**10``, a huge
factorial or binomial, deep nesting), and every other failure — sympy's own exceptions, recursion,
memory, results too long to print — becomes a :class:`CalculatorError` whose message tells the
lead what to ask instead. What cannot be checked up front (``expand((a+b+c+d+e+f)**30)``) is
bounded by running :func:`calculate` in a killable worker (:mod:`tools.calculator_pool`).
"""

from __future__ import annotations

import ast
import math
import operator
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sympy

MAX_EXPRESSION_CHARS = 2000
MAX_DEPTH = 100
"""Most nested operations (``-(-(-…))``, ``((…))``) in one expression."""
MAX_EXPONENT = 100_000
MAX_FACTORIAL = 3_000
MAX_RESULT_DIGITS = 10_000
"""The calculator's workers raise Python's int-to-str limit (4,300 digits) to this; elsewhere
that limit applies."""
MAX_RESULT_CHARS = 20_000
"""Longest printed result (a large polynomial, a long solution list)."""


class CalculatorError(ValueError):
    """The expression is not allowed or cannot be computed; the message says why."""


class CalculatorOutOfMemory(CalculatorError):
    """The calculation ran out of memory (the worker's address-space limit, in the pool)."""

    def __init__(self) -> None:
        super().__init__("the calculation ran out of memory; split it into smaller steps")


@dataclass(frozen=True, slots=True)
class CalculatorResult:
    expression: str
    exact: str
    """The exact result (integer, fraction, surd, solution list …) as sympy prints it."""
    decimal: str | None
    """A 30-digit decimal value when the result is a number."""


_SYMBOLS = {name: sympy.Symbol(name) for name in "abcdefghkmnpqrstuvwxyz"}
_CONSTANTS: dict[str, Any] = {
    "pi": sympy.pi,
    "e": sympy.E,
    "E": sympy.E,
    "I": sympy.I,
    "oo": sympy.oo,
}
_FUNCTIONS: dict[str, Callable[..., Any] | None] = {
    "sqrt": sympy.sqrt,
    "root": sympy.root,
    "abs": sympy.Abs,
    "exp": sympy.exp,
    "log": sympy.log,
    "ln": sympy.log,
    "sin": sympy.sin,
    "cos": sympy.cos,
    "tan": sympy.tan,
    "asin": sympy.asin,
    "acos": sympy.acos,
    "atan": sympy.atan,
    "floor": sympy.floor,
    "ceiling": sympy.ceiling,
    "gcd": sympy.gcd,
    "lcm": sympy.lcm,
    "binomial": None,
    "factorial": None,
    "Rational": sympy.Rational,
    "min": sympy.Min,
    "max": sympy.Max,
    "mod": sympy.Mod,
    "simplify": sympy.simplify,
    "expand": sympy.expand,
    "factor": sympy.factor,
    "solve": sympy.solve,
    "Eq": sympy.Eq,
    "diff": sympy.diff,
    "integrate": sympy.integrate,
    "isprime": sympy.isprime,
}
_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any] | None] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: lambda a, b: sympy.Rational(a, b) if _both_int(a, b) else a / b,
    ast.FloorDiv: lambda a, b: sympy.floor(a / b),
    ast.Mod: sympy.Mod,
    ast.Pow: None,
}


def calculate(expression: str) -> CalculatorResult:
    """Evaluate ``expression`` exactly.

    Accepts Python-style arithmetic (``+ - * / // % **``, also ``^`` as power), integers of any
    size, decimals (kept exact as fractions), single-letter variables, and a whitelist of
    functions (sqrt, gcd, factorial, solve, simplify, …).

    Raises:
        CalculatorError: for anything else — attribute access, imports, unknown names, huge
            exponents — with the reason.
    """
    text = expression.strip()
    if not text:
        raise CalculatorError("empty expression")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise CalculatorError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    tree = _parse(text)
    try:
        value = _Translator().visit(tree.body)
        if isinstance(value, sympy.Basic) and value.has(sympy.zoo, sympy.nan):
            raise CalculatorError("undefined result (division by zero?)")
        return _result(text, value)
    except CalculatorError:
        raise
    except RecursionError:
        raise CalculatorError("the expression is too deeply nested to compute") from None
    except MemoryError:
        raise CalculatorOutOfMemory() from None
    except Exception as exc:  # sympy raises a zoo of types; each means "cannot compute this"
        raise CalculatorError(f"cannot compute: {type(exc).__name__}: {exc}"[:500]) from None


def _parse(text: str) -> ast.Expression:
    try:
        tree = ast.parse(text.replace("^", "**"), mode="eval")
    except SyntaxError as exc:
        raise CalculatorError(f"not a valid expression: {exc.msg}") from None
    except RecursionError:  # the parser's own stack, on deep nesting
        raise CalculatorError(
            f"the expression is nested more than {MAX_DEPTH} levels deep"
        ) from None
    except MemoryError:
        raise CalculatorOutOfMemory() from None
    if _depth(tree.body) > MAX_DEPTH:
        raise CalculatorError(f"the expression is nested more than {MAX_DEPTH} levels deep")
    return tree


def _depth(node: ast.AST) -> int:
    """How deeply ``node`` nests, counted without recursion."""
    deepest, stack = 0, [(node, 1)]
    while stack:
        current, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(current))
    return deepest


def _result(text: str, value: Any) -> CalculatorResult:
    if isinstance(value, sympy.Integer) and abs(int(value)).bit_length() > _max_bits():
        raise _too_many_digits()
    try:
        exact = str(value)
    except ValueError:  # Python's int-to-str digit limit, inside a larger result
        raise _too_many_digits() from None
    if len(exact) > MAX_RESULT_CHARS:
        raise CalculatorError(
            f"the result is {len(exact):,} characters long (more than {MAX_RESULT_CHARS:,}); "
            "ask for a simpler form, or for one part of it at a time"
        )
    decimal = None
    if isinstance(value, sympy.Expr) and value.is_number and not value.is_Integer:
        decimal = str(sympy.N(value, 30))
    return CalculatorResult(expression=text, exact=exact, decimal=decimal)


def _max_digits() -> int:
    """The most digits a result may have here: ours, or Python's int-to-str limit if lower."""
    return min(MAX_RESULT_DIGITS, sys.get_int_max_str_digits() or MAX_RESULT_DIGITS)


def _max_bits() -> int:
    return int(_max_digits() / math.log10(2))


def _too_many_digits() -> CalculatorError:
    return CalculatorError(
        f"the result would have more than {_max_digits():,} digits; ask for it modulo some m "
        "(mod(expression, m)) or for its number of digits (floor(log(expression, 10)) + 1)"
    )


def _both_int(a: Any, b: Any) -> bool:
    return isinstance(a, sympy.Integer) and isinstance(b, sympy.Integer)


def _power(base: Any, exponent: Any) -> Any:
    """``base ** exponent``, refused when the exact result would be astronomically large."""
    if isinstance(exponent, sympy.Number) and base not in (0, 1, -1):
        if abs(exponent) > MAX_EXPONENT:
            raise CalculatorError(f"exponent {exponent} is larger than {MAX_EXPONENT}")
        if isinstance(base, sympy.Rational):
            bits = max(int(base.p).bit_length(), int(base.q).bit_length()) * abs(exponent)
            if bits > _max_bits():
                raise _too_many_digits()
    return base**exponent


def _factorial(n: Any) -> Any:
    if isinstance(n, sympy.Integer) and n > MAX_FACTORIAL:
        raise CalculatorError(f"factorial argument larger than {MAX_FACTORIAL}")
    return sympy.factorial(n)


def _binomial(n: Any, k: Any) -> Any:
    """``binomial(n, k)``, refused when the exact result would be astronomically large."""
    if isinstance(n, sympy.Integer) and isinstance(k, sympy.Integer) and 0 <= k <= n:
        n_, k_ = int(n), int(k)
        if n_ > MAX_FACTORIAL:  # log2 of the result, from the log-gamma function
            bits = (
                math.lgamma(n_ + 1) - math.lgamma(k_ + 1) - math.lgamma(n_ - k_ + 1)
            ) / math.log(2)
            if bits > _max_bits():
                raise _too_many_digits()
    return sympy.binomial(n, k)


_GUARDED: dict[str, Callable[..., Any]] = {"factorial": _factorial, "binomial": _binomial}
"""Functions whose size is checked before sympy computes them."""


class _Translator(ast.NodeVisitor):
    """AST → sympy, refusing every node type that is not explicitly handled."""

    def generic_visit(self, node: ast.AST) -> Any:
        raise CalculatorError(f"{type(node).__name__} is not allowed in an expression")

    def visit_Constant(self, node: ast.Constant) -> Any:
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise CalculatorError(f"only numbers are allowed, not {node.value!r}")
        if isinstance(node.value, float):
            return sympy.Rational(repr(node.value))  # 0.1 stays exactly 1/10
        return sympy.Integer(node.value)

    def visit_Name(self, node: ast.Name) -> Any:
        if node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        if node.id in _SYMBOLS:
            return _SYMBOLS[node.id]
        raise CalculatorError(f"unknown name {node.id!r}")

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        left, right = self.visit(node.left), self.visit(node.right)
        if isinstance(node.op, ast.Pow):
            return _power(left, right)
        op = _BINARY.get(type(node.op))
        if op is None:
            raise CalculatorError(f"operator {type(node.op).__name__} is not allowed")
        return op(left, right)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> Any:
        operand = self.visit(node.operand)
        if isinstance(node.op, ast.USub):
            return -operand
        if isinstance(node.op, ast.UAdd):
            return operand
        raise CalculatorError(f"operator {type(node.op).__name__} is not allowed")

    def visit_Call(self, node: ast.Call) -> Any:
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
            name = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
            raise CalculatorError(f"function {name!r} is not allowed")
        if node.keywords:
            raise CalculatorError("keyword arguments are not allowed")
        args = [self.visit(arg) for arg in node.args]
        function = _FUNCTIONS[node.func.id] or _GUARDED[node.func.id]  # None: a guarded one
        return function(*args)

    def visit_Compare(self, node: ast.Compare) -> Any:
        if len(node.ops) != 1 or not isinstance(node.ops[0], ast.Eq):
            raise CalculatorError("only '==' comparisons are allowed (as equations)")
        return sympy.Eq(self.visit(node.left), self.visit(node.comparators[0]))

    def visit_Tuple(self, node: ast.Tuple) -> Any:
        return tuple(self.visit(element) for element in node.elts)

    def visit_List(self, node: ast.List) -> Any:
        return tuple(self.visit(element) for element in node.elts)
