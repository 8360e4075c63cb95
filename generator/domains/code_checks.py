"""The code domain's pure checks on source text: no teacher, no sandbox (`code.py` uses them).

- `python_blocks` reads the fenced ```python blocks out of a teacher's answer;
- `normalised_key` normalises a solution to its syntax tree, so two answers that differ only in
  formatting, comments or docstrings count as one;
- `exercises_solution` decides whether unit tests can fail at all: an `assert True`, or asserts that
  never touch the solution, would let any code through, so such tests are rejected before anything runs;
- `sandbox_program` joins solution and tests into the one file the sandbox runs, calling any test
  functions or `unittest` cases the tests define but do not run themselves.

Variable names are kept in the key on purpose: telling renamed copies apart from different programs
would need a semantic comparison, and a false "duplicate" would throw away a verified answer.
"""

from __future__ import annotations

import ast
import hashlib
import re
from typing import TypeGuard

__all__ = ["exercises_solution", "normalised_key", "python_blocks", "sandbox_program", "syntax_error"]

_FENCE = re.compile(r"```[ \t]*(?:python3?|py)[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)


def python_blocks(text: str) -> list[str]:
    """The contents of every ```python (or ```py) fenced block, in order, stripped; empty ones left out."""
    return [block.strip() for block in _FENCE.findall(text) if block.strip()]


def syntax_error(source: str) -> str | None:
    """Why `source` is not valid Python (`line N: message`), or None when it parses."""
    try:
        ast.parse(source)
    except SyntaxError as exc:
        return f"line {exc.lineno}: {exc.msg}"
    except (ValueError, RecursionError) as exc:  # a NUL byte in the source; absurdly deep nesting
        return f"{type(exc).__name__}: {exc}"
    return None


def normalised_key(source: str) -> str | None:
    """A hash of the solution's syntax tree without docstrings; None when it does not parse.

    `ast.dump` leaves out comments, layout and line numbers already; docstrings are statements, so
    they are removed first (a reworded docstring is the same program).
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            body = node.body
            if body and _is_docstring(body[0]):
                node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()[:32]


def _is_docstring(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    )


# -- can the tests fail? -----------------------------------------------------------------------------


def defined_names(tree: ast.Module, imports: bool) -> set[str]:
    """Names a module binds at its top level: functions, classes, assigned names (`f = lambda ...`),
    and with `imports` the names it imports."""
    names: set[str] = set()
    for stmt in tree.body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(stmt.name)
        elif isinstance(stmt, ast.Assign | ast.AnnAssign):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif imports and isinstance(stmt, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in stmt.names}
    return names


def exercises_solution(solution: str, tests: str) -> bool:
    """True when at least one assertion the tests run depends on calling what the solution defines.

    An assertion counts when its expression calls a solution name (`assert add(1, 2) == 3`), or uses a
    variable bound from such a call (`s = Stack(); assert s.pop() == 1`); `self.assert*(...)` and
    `with ...raises(...)` blocks count the same way. Only code that runs counts: module-level code,
    `test_*` functions and `unittest` test methods (`sandbox_program` runs those) and the functions they
    call. Names the tests define themselves are not the solution's, so tests cannot shadow it.
    """
    tests_tree = ast.parse(tests)
    # what the solution imports is not its own work (`assert re.match(...)` tests nothing of it)
    targets = defined_names(ast.parse(solution), imports=False) - defined_names(tests_tree, imports=True)
    if not targets:
        return False
    running = _running_code(tests_tree)
    results = _bound_from_calls(running, targets)
    return any(_checks(node, targets, results) for code in running for node in ast.walk(code))


def _calls_into(node: ast.AST, targets: set[str], results: set[str]) -> bool:
    """Does `node` call a solution name, or read a value that came from one?"""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call) and _root(sub.func) in targets:  # f(x), Cls.method(x)
            return True
        if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load) and sub.id in results:
            return True
    return False


def _checks(node: ast.AST, targets: set[str], results: set[str]) -> bool:
    if isinstance(node, ast.Assert):
        return _calls_into(node.test, targets, results)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        if _is_raises(node):  # assertRaises(ValueError, parse, "x") calls `parse` itself
            return any(_root(arg) in targets for arg in node.args[1:])
        if node.func.attr.startswith("assert"):
            return any(_calls_into(arg, targets, results) for arg in [*node.args, *node.keywords])
    if isinstance(node, ast.With):
        raises = any(_is_raises(item.context_expr) for item in node.items)
        return raises and any(_calls_into(stmt, targets, results) for stmt in node.body)
    return False


def _root(expr: ast.expr) -> str | None:
    """The name an attribute chain starts from (`Stack` for `Stack.empty`), if it is a plain name."""
    while isinstance(expr, ast.Attribute):
        expr = expr.value
    return expr.id if isinstance(expr, ast.Name) else None


def _is_raises(expr: ast.expr) -> bool:
    return (
        isinstance(expr, ast.Call)
        and isinstance(expr.func, ast.Attribute)
        and expr.func.attr in {"raises", "assertRaises"}
    )


def _bound_from_calls(running: list[ast.AST], targets: set[str]) -> set[str]:
    """Variables that hold (something computed from) a result of the solution, to a fixed point."""
    results: set[str] = set()
    bindings: list[tuple[list[ast.expr], ast.AST]] = []
    for code in running:
        for node in ast.walk(code):
            if isinstance(node, ast.Assign):
                bindings.append((node.targets, node.value))
            elif isinstance(node, ast.AnnAssign | ast.AugAssign | ast.NamedExpr) and node.value is not None:
                bindings.append(([node.target], node.value))
            elif isinstance(node, ast.For | ast.comprehension):
                bindings.append(([node.target], node.iter))
            elif isinstance(node, ast.withitem) and node.optional_vars is not None:
                bindings.append(([node.optional_vars], node.context_expr))
    changed = True
    while changed:
        changed = False
        for names, value in bindings:
            if _calls_into(value, targets, results):
                bound = {n.id for t in names for n in ast.walk(t) if isinstance(n, ast.Name)}
                if not bound <= results:
                    results |= bound
                    changed = True
    return results


def _running_code(tree: ast.Module) -> list[ast.AST]:
    """The parts of the tests that run: module-level statements (not the bodies of definitions),
    `test_*` functions, `unittest` test methods, and every top-level function those call."""
    functions = {s.name: s for s in tree.body if isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef)}
    running: list[ast.AST] = [s for s in tree.body if not isinstance(s, _DEFINITIONS)]
    running += [f for f in functions.values() if _is_test_function(f)]
    running += [m for case in _test_cases(tree) for m in case.body if _is_test_method(m)]
    seen = {id(code) for code in running}
    queue = list(running)
    while queue:
        for node in ast.walk(queue.pop()):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                called = functions.get(node.func.id)
                if called is not None and id(called) not in seen:
                    seen.add(id(called))
                    running.append(called)
                    queue.append(called)
    return running


_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _test_cases(tree: ast.Module) -> list[ast.ClassDef]:
    """Top-level classes that derive from something named `TestCase` (unittest's)."""
    return [
        s
        for s in tree.body
        if isinstance(s, ast.ClassDef)
        and any(ast.unparse(base).split(".")[-1] == "TestCase" for base in s.bases)
    ]


def _is_test_function(stmt: ast.stmt) -> TypeGuard[ast.FunctionDef]:
    """A top-level `test*` function that takes no arguments: `sandbox_program` calls it."""
    return isinstance(stmt, ast.FunctionDef) and stmt.name.startswith("test") and not stmt.args.args


def _is_test_method(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.FunctionDef) and stmt.name.startswith("test")


# -- the program the sandbox runs --------------------------------------------------------------------


def sandbox_program(solution: str, tests: str) -> str:
    """Solution, then tests, then a runner for test functions and `unittest` cases nobody calls.

    Tests written as `def test_x(): ...` (pytest style) or as a `TestCase` would otherwise only be
    defined, never run, and any solution would pass. A failing `unittest` case raises AssertionError
    (or RuntimeError for an error) so the verifier reads the outcome the same way as a plain assert.
    """
    tree = ast.parse(tests)
    called = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    calls = [f"{s.name}()" for s in tree.body if _is_test_function(s) and s.name not in called]
    cases = [case.name for case in _test_cases(tree)]
    runs_main = any(isinstance(n, ast.Attribute) and n.attr == "main" for n in ast.walk(tree))
    parts = [solution, tests]
    if cases and not runs_main:  # a test file that calls unittest.main() runs its cases itself
        parts.append(_CASE_RUNNER)
        calls.append(f"_run_test_cases({', '.join(cases)})")
    if calls:
        parts.append("\n".join(calls))
    return "\n\n".join(parts) + "\n"


_CASE_RUNNER = """
def _run_test_cases(*cases):
    import unittest

    suite = unittest.TestSuite(unittest.defaultTestLoader.loadTestsFromTestCase(c) for c in cases)
    result = unittest.TextTestRunner(verbosity=1).run(suite)
    if result.failures:
        raise AssertionError(f"{len(result.failures)} unittest case(s) failed")
    if result.errors:
        raise RuntimeError(f"{len(result.errors)} unittest case(s) raised an error")
""".strip()
