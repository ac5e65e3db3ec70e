"""Band-math formulas: parsed with :mod:`ast` against a whitelist, evaluated with numpy on the tree.

User text is never handed to ``eval`` (nor to spyndex, which evals). A formula may use band codes
(``B G R RE1 N`` or ``blue green red rededge nir``), named constants (``L``, ``g`` …), numbers,
``+ - * / **``, unary minus, ``sqrt``, ``abs``, ``log``, ``where(cond, a, b)`` with comparisons
inside ``where``. Division by zero, ``log(0)`` and every other non-finite result becomes NaN.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from belcheer.errors import FormulaError

#: longest formula accepted, characters
MAX_LENGTH = 500
#: deepest expression tree accepted
MAX_DEPTH = 40
#: largest |exponent| accepted in ``a ** k`` (huge powers are a denial-of-service vector)
MAX_EXPONENT = 8.0

FUNCTIONS = {"sqrt": 1, "abs": 1, "log": 1, "where": 3}

_BINOPS = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.divide,
           ast.Pow: np.power}
_CMPOPS = {ast.Lt: np.less, ast.LtE: np.less_equal, ast.Gt: np.greater, ast.GtE: np.greater_equal,
           ast.Eq: np.equal, ast.NotEq: np.not_equal}


@dataclass(frozen=True)
class Formula:
    """A validated formula: its text, parsed tree and the band/constant names it uses."""

    text: str
    tree: ast.Expression
    names: frozenset[str]

    def evaluate(self, values: Mapping[str, np.ndarray | float]) -> np.ndarray:
        """Evaluate on arrays (float32 in → float32 out); non-finite results become NaN."""
        missing = sorted(self.names - set(values))
        if missing:
            raise FormulaError(f"formula {self.text!r} needs {', '.join(missing)}, which "
                               "were not given")
        with np.errstate(all="ignore"):
            out = np.asarray(_eval(self.tree.body, values))
        if not np.issubdtype(out.dtype, np.floating):
            out = out.astype(np.float32)
        elif out.dtype != np.float32 and out.dtype != np.float64:
            out = out.astype(np.float32)
        out = np.where(np.isfinite(out), out, np.nan)
        return out


def parse(text: str, allowed: set[str] | frozenset[str]) -> Formula:
    """Parse and validate ``text``; ``allowed`` are the names (bands, constants) it may use.

    Raises :class:`FormulaError` naming the first thing that is not allowed.
    """
    if not isinstance(text, str) or not text.strip():
        raise FormulaError("empty formula; write e.g. (N-R)/(N+R)")
    if len(text) > MAX_LENGTH:
        raise FormulaError(f"formula is {len(text)} characters long; the limit is {MAX_LENGTH}")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise FormulaError(f"formula {text!r} is not valid arithmetic: {exc.msg}") from None
    names: set[str] = set()
    _check(tree.body, set(allowed), names, depth=0, in_where=False, text=text)
    return Formula(text=text, tree=tree, names=frozenset(names))


def _check(node: ast.AST, allowed: set[str], names: set[str], depth: int, in_where: bool,
           text: str) -> None:
    if depth > MAX_DEPTH:
        raise FormulaError(f"formula {text[:40]!r}… nests deeper than {MAX_DEPTH} levels")
    d = depth + 1
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise FormulaError(f"only numbers are allowed as constants, not {node.value!r}")
        return
    if isinstance(node, ast.Name):
        if node.id not in allowed:
            raise FormulaError(f"unknown name {node.id!r} in formula; allowed names: "
                               f"{', '.join(sorted(allowed))}")
        names.add(node.id)
        return
    if isinstance(node, ast.BinOp):
        if type(node.op) not in _BINOPS:
            raise FormulaError(f"operator {type(node.op).__name__} is not allowed; use + - * / **")
        if isinstance(node.op, ast.Pow):
            k = _constant_value(node.right)
            if k is None:
                raise FormulaError("exponents must be plain numbers (e.g. G**2)")
            if abs(k) > MAX_EXPONENT:
                raise FormulaError(f"exponent {k} is too large; |exponent| must be ≤ {MAX_EXPONENT:g}")
        _check(node.left, allowed, names, d, in_where, text)
        _check(node.right, allowed, names, d, in_where, text)
        return
    if isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, ast.USub | ast.UAdd):
            raise FormulaError(f"unary {type(node.op).__name__} is not allowed")
        _check(node.operand, allowed, names, d, in_where, text)
        return
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            what = ast.unparse(node.func)
            raise FormulaError(f"function {what!r} is not allowed; allowed functions: "
                               f"{', '.join(FUNCTIONS)}")
        if node.keywords or len(node.args) != FUNCTIONS[node.func.id]:
            raise FormulaError(f"{node.func.id}() takes {FUNCTIONS[node.func.id]} positional "
                               "argument(s)")
        if node.func.id == "where":
            _check_condition(node.args[0], allowed, names, d, text)
            for a in node.args[1:]:
                _check(a, allowed, names, d, True, text)
        else:
            for a in node.args:
                _check(a, allowed, names, d, in_where, text)
        return
    if isinstance(node, ast.Compare):
        raise FormulaError("comparisons are only allowed as the first argument of where()")
    if isinstance(node, ast.Attribute):
        raise FormulaError("attribute access (a.b) is not allowed in formulas")
    if isinstance(node, ast.Lambda):
        raise FormulaError("lambda is not allowed in formulas")
    raise FormulaError(f"{type(node).__name__} is not allowed in formulas; use numbers, band "
                       "names, + - * / **, sqrt, abs, log and where")


def _check_condition(node: ast.AST, allowed: set[str], names: set[str], depth: int,
                     text: str) -> None:
    if not isinstance(node, ast.Compare):
        raise FormulaError("the first argument of where() must be a comparison, e.g. where(N>R, 1, 0)")
    if any(type(op) not in _CMPOPS for op in node.ops):
        raise FormulaError("only < <= > >= == != are allowed in where()")
    for part in (node.left, *node.comparators):
        _check(part, allowed, names, depth + 1, True, text)


def _constant_value(node: ast.AST) -> float | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) \
            and not isinstance(node.value, bool):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        v = _constant_value(node.operand)
        return None if v is None else (-v if isinstance(node.op, ast.USub) else v)
    return None


def _eval(node: ast.AST, values: Mapping[str, np.ndarray | float]):  # noqa: ANN202 - arrays/scalars
    if isinstance(node, ast.Constant):
        return float(node.value)
    if isinstance(node, ast.Name):
        return values[node.id]
    if isinstance(node, ast.BinOp):
        return _BINOPS[type(node.op)](_eval(node.left, values), _eval(node.right, values))
    if isinstance(node, ast.UnaryOp):
        v = _eval(node.operand, values)
        return np.negative(v) if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.Call):
        fn = node.func.id  # type: ignore[attr-defined]
        if fn == "where":
            cond = node.args[0]
            assert isinstance(cond, ast.Compare)
            mask = _compare(cond, values)
            return np.where(mask, _eval(node.args[1], values), _eval(node.args[2], values))
        arg = _eval(node.args[0], values)
        return {"sqrt": np.sqrt, "abs": np.abs, "log": np.log}[fn](arg)
    raise FormulaError(f"cannot evaluate {type(node).__name__}")  # unreachable after _check


def _compare(node: ast.Compare, values: Mapping[str, np.ndarray | float]) -> np.ndarray:
    left = _eval(node.left, values)
    result = None
    for op, comp in zip(node.ops, node.comparators, strict=True):
        right = _eval(comp, values)
        r = _CMPOPS[type(op)](left, right)
        result = r if result is None else np.logical_and(result, r)
        left = right
    return result  # type: ignore[return-value]
