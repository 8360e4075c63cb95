"""Exact arithmetic for the arithmetic domain: a safe expression reader, answer reading, checked solutions.

The domain promises that every kept answer is right, so no number here comes from the teacher or from
a float: values are ints and `Fraction`s. Expressions are never `eval`-ed. `parse` accepts only digits,
spaces, + - * / and parentheses (after turning `x`, `×`, `÷` and `1,234` into plain form), then walks
`ast.parse(mode="eval")` allowing only integer literals, the four operators and unary minus; names,
calls, attributes, `**`, `//`, floats and oversized inputs are refused with `ExpressionError`.

- `evaluate(text)`: the exact value of an expression.
- `read_answer(text, form)`: the final answer in a reply (its last `Answer:` line, else its last number).
- `write_solution(expression, form)`: a step-by-step solution ending `Answer: <value>` (partial products
  for long multiplication, repeated subtraction for division, one operation at a time otherwise).
- `check_solution(text, expression, form)`: every `a = b = ...` line re-evaluated, and the final answer.

This module has no `DOMAIN`: it is a helper, not a domain (the registry skips it).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from fractions import Fraction

VALUE = "value"  # answer forms: a number (int or a/b) ...
QUOTIENT_REMAINDER = "quotient_remainder"  # ... or integer division's "Q R r"

MAX_CHARS = 400  # longer than any sum worth learning from; keeps the parser's work bounded
MAX_DIGITS = 30  # per literal
MAX_OPERATORS = 40


class ExpressionError(ValueError):
    """Text that is not a safe, well-formed arithmetic expression (or divides by zero)."""


@dataclass(frozen=True)
class Num:
    value: Fraction  # literals are integers; a reduction step may leave a fraction


@dataclass(frozen=True)
class Op:
    sign: str  # + - * /
    left: Node
    right: Node


@dataclass(frozen=True)
class Neg:
    operand: Node


Node = Num | Op | Neg

_SIGNS: dict[type, str] = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}
_TIMES = re.compile(r"(?<=[\d)\s])[xX×](?=[\s\d(])")  # "48213 x 7", never a letter inside a word
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_ALLOWED = re.compile(r"[\d\s+\-*/()]*")


def normalise(text: str) -> str:
    """The expression as plain ASCII arithmetic: `x`/`×` to `*`, `÷` to `/`, `1,234` to `1234`."""
    text = text.strip().replace("×", "*").replace("÷", "/").replace("−", "-").replace("–", "-")
    return _THOUSANDS.sub("", _TIMES.sub("*", text))


def parse(text: str) -> Node:
    """The expression's tree, or ExpressionError saying what is not allowed."""
    text = normalise(text)
    if not text:
        raise ExpressionError("empty expression")
    if len(text) > MAX_CHARS:
        raise ExpressionError(f"too long ({len(text)} characters, at most {MAX_CHARS})")
    if not _ALLOWED.fullmatch(text):
        bad = sorted(set(re.sub(r"[\d\s+\-*/()]", "", text)))
        raise ExpressionError(f"not arithmetic: {''.join(bad)!r}")
    if "**" in text or "//" in text:
        raise ExpressionError("only + - * / are allowed")
    if re.search(rf"\d{{{MAX_DIGITS + 1},}}", text):
        raise ExpressionError(f"a number longer than {MAX_DIGITS} digits")
    if sum(text.count(s) for s in "+-*/") > MAX_OPERATORS:
        raise ExpressionError(f"more than {MAX_OPERATORS} operators")
    try:
        tree = ast.parse(text, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise ExpressionError(f"cannot parse: {exc}") from None
    return _node(tree)


def _node(tree: ast.AST) -> Node:
    if isinstance(tree, ast.Constant) and type(tree.value) is int:
        return Num(Fraction(tree.value))
    if isinstance(tree, ast.UnaryOp) and isinstance(tree.op, (ast.USub, ast.UAdd)):
        inner = _node(tree.operand)
        return Neg(inner) if isinstance(tree.op, ast.USub) else inner
    if isinstance(tree, ast.BinOp) and type(tree.op) in _SIGNS:
        return Op(_SIGNS[type(tree.op)], _node(tree.left), _node(tree.right))
    raise ExpressionError(f"not allowed: {type(tree).__name__}")


def value(node: Node) -> Fraction:
    """The exact value of a tree."""
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Neg):
        return -value(node.operand)
    left, right = value(node.left), value(node.right)
    if node.sign == "+":
        return left + right
    if node.sign == "-":
        return left - right
    if node.sign == "*":
        return left * right
    if right == 0:
        raise ExpressionError("division by zero")
    return left / right


def evaluate(text: str) -> Fraction:
    """The exact value of an expression (ExpressionError if it is not one we accept)."""
    return value(parse(text))


def literals(node: Node) -> list[Fraction]:
    """The numbers written in a tree, left to right (a story may use only numbers from its text)."""
    if isinstance(node, Num):
        return [node.value]
    if isinstance(node, Neg):
        return literals(node.operand)
    return literals(node.left) + literals(node.right)


def format_value(number: Fraction) -> str:
    """How a kept answer writes a value: "42", "-5", "7/3" (lowest terms, never a decimal)."""
    return str(number.numerator) if number.denominator == 1 else f"{number.numerator}/{number.denominator}"


def render(node: Node, outer: int = 0, strict: bool = False) -> str:
    """A tree as text with only the parentheses it needs (the canonical form of an expression).

    `outer` is the enclosing operator's precedence; `strict` marks the right side of - or /, where an
    equal precedence needs parentheses too (a - (b - c) is not a - b - c).
    """
    if isinstance(node, Num):
        text = format_value(node.value)
        plain = node.value.denominator == 1 and node.value >= 0
        return text if plain or outer == 0 else f"({text})"
    if isinstance(node, Neg):
        text = "-" + render(node.operand, 3)
        return text if outer == 0 else f"({text})"
    mine = _PRECEDENCE[node.sign]
    text = f"{render(node.left, mine)} {node.sign} {render(node.right, mine, node.sign in '-/')}"
    return f"({text})" if mine < outer or (mine == outer and strict) else text


def canonical(text: str) -> str:
    """One spelling per expression: "(3+4)*5" and "( 3 + 4 ) x 5" both read "(3 + 4) * 5"."""
    return render(parse(text))


def divmod_of(expression: str) -> tuple[int, int]:
    """Quotient and remainder of an `a / b` expression of two whole numbers (b > 0)."""
    a, b = _whole_division(parse(expression))
    return divmod(a, b)


def _whole_division(node: Node) -> tuple[int, int]:
    if (
        isinstance(node, Op)
        and node.sign == "/"
        and isinstance(node.left, Num)
        and isinstance(node.right, Num)
    ):
        a, b = node.left.value, node.right.value
        if a.denominator == b.denominator == 1 and a >= 0 and b > 0:
            return int(a), int(b)
    raise ExpressionError(f"not a division of two whole numbers: {render(node)!r}")


def _is_count(node: Node) -> bool:
    return isinstance(node, Num) and node.value.denominator == 1 and node.value >= 0


# -- reading an answer ----------------------------------------------------------------------------------

Answer = Fraction | tuple[int, int | None]  # a value, or (quotient, remainder given or None)

_LONGEST = 4 * MAX_DIGITS  # digits in an answer worth reading (Python refuses int() of 4300+ digits)
_INT = r"-?(?:\d{1,3}(?:,\d{3})+|\d+)"
# A number is never read out of a longer one: "1234" is not inside "12345", nor "5" inside "2.5".
_NUMBER = re.compile(rf"(?<![\w./])(?<!\d,)({_INT}(?:\.\d+)?)(?:/(\d+))?(?!\w|[.,/]\d)")
_QR = re.compile(
    rf"(?<![\w./])(?<!\d,)(?:quotient\W*(?:is|of)?\W*)?({_INT})(?:\s+times)?\s*(?:,|;|and|with)?\s*(?:an?\s+)?"
    rf"(?:r|rem\.?|remainder)(?![a-z])\W*(?:is|of)?\s*({_INT})(?!\w|[.,/]\d)",
    re.IGNORECASE,
)
_ANSWER_LINE = re.compile(r"^[\s>*#_]*(?:final\s+)?answer[\s*_]*(?:is)?[\s*_]*[:=](.*)$", re.I | re.M)
_FRAC = re.compile(r"\\d?frac\{(-?\d+)\}\{(\d+)\}")


def read_answer(text: str, form: str = VALUE) -> Answer | None:
    """The final answer of a reply: from its last `Answer:` line if it has one, else its last number.

    Division answers read as (quotient, remainder) from "Q R r", "Q remainder r", "quotient Q,
    remainder r"; a bare number is a quotient with no remainder given (None). None: nothing readable.
    """
    text = _FRAC.sub(r"\1/\2", text)
    lines = _ANSWER_LINE.findall(text)
    scope = lines[-1] if lines else text
    if form == QUOTIENT_REMAINDER:
        pairs = _QR.findall(scope)
        if pairs:
            q, r = pairs[-1]
            return (_int(q), _int(r)) if len(q + r) <= _LONGEST else None
    numbers = _NUMBER.findall(scope)
    if not numbers:
        return None
    whole, denominator = numbers[-1]
    if len(whole) + len(denominator) > _LONGEST:
        return None  # a runaway digit string, not an answer
    number = Fraction(whole.replace(",", ""))
    if denominator:
        if int(denominator) == 0:
            return None
        number /= int(denominator)
    if form == QUOTIENT_REMAINDER:
        return (int(number), None) if number.denominator == 1 else None
    return number


def _int(text: str) -> int:
    return int(text.replace(",", ""))


def format_answer(answer: Answer | None) -> str | None:
    """An answer as read, for the verdict's details."""
    if answer is None:
        return None
    if isinstance(answer, tuple):
        q, r = answer
        return str(q) if r is None else f"{q} R {r}"
    return format_value(answer)


# -- solutions ------------------------------------------------------------------------------------------


def answer_of(expression: str, form: str = VALUE) -> str:
    """The exact answer as a kept output writes it: "42", "7/3", or "6887 R 4" for division."""
    if form == QUOTIENT_REMAINDER:
        q, r = divmod_of(expression)
        return f"{q} R {r}"
    return format_value(evaluate(expression))


def write_solution(expression: str, form: str = VALUE) -> str:
    """A worked solution whose every `=` line can be re-evaluated, ending `Answer: <value>`."""
    node = parse(expression)
    if form == QUOTIENT_REMAINDER:
        lines = _long_division(*_whole_division(node))
    elif isinstance(node, Op) and node.sign == "*" and _is_count(node.left) and _is_count(node.right):
        lines = _partial_products(int(value(node.left)), int(value(node.right)))
    else:
        steps = [node]
        while not isinstance(steps[-1], Num):
            steps.append(_reduce(steps[-1]))
        lines = [" = ".join(render(step) for step in steps)]
    return "\n".join([*lines, f"Answer: {answer_of(expression, form)}"])


def _reduce(node: Node) -> Node:
    """One operation done: the leftmost one whose operands are both numbers."""
    if isinstance(node, Num):
        return node
    if isinstance(node, Neg):
        return Num(-node.operand.value) if isinstance(node.operand, Num) else Neg(_reduce(node.operand))
    if isinstance(node.left, Num) and isinstance(node.right, Num):
        return Num(value(node))
    if not isinstance(node.left, Num):
        return Op(node.sign, _reduce(node.left), node.right)
    return Op(node.sign, node.left, _reduce(node.right))


def _places(n: int) -> list[int]:
    """n split by place value, largest first, zeros left out: 4070 -> [4000, 70]."""
    digits = str(n)
    return [int(d) * 10 ** (len(digits) - 1 - i) for i, d in enumerate(digits) if d != "0"]


def _partial_products(a: int, b: int) -> list[str]:
    """Goat's multiplication: split b by place value, multiply by each part, add the parts up."""
    parts = _places(b)
    if len(parts) < 2:  # a one-digit factor, or one like 500: nothing to split
        return [f"{a} * {b} = {a * b}"]
    lines = [f"{a} * {b} = {a} * ({' + '.join(map(str, parts))})"]
    lines.append("= " + " + ".join(f"{a} * {part}" for part in parts))
    products = [a * part for part in parts]
    while len(products) > 1:
        lines.append("= " + " + ".join(map(str, products)))
        products = [products[0] + products[1], *products[2:]]
    lines.append(f"= {products[0]}")
    return lines


def _long_division(a: int, b: int) -> list[str]:
    """Goat's division: subtract b times each place of the quotient, the largest place first."""
    q, r = divmod(a, b)
    lines = [f"Divide {a} by {b} by subtracting multiples of {b}."]
    rest = a
    for chunk in _places(q):
        lines.append(f"{rest} - {b} * {chunk} = {rest} - {b * chunk} = {rest - b * chunk}")
        rest -= b * chunk
    lines.append(f"{r} is less than {b}, so the remainder is {r}.")
    if len(_places(q)) > 1:
        lines.append(f"{' + '.join(map(str, _places(q)))} = {q}")
    lines.append(f"The quotient is {q}.")
    return lines


_QR_PART = re.compile(r"(\d+) R (\d+)")


def check_solution(text: str, expression: str, form: str = VALUE) -> list[str]:
    """What is wrong with a solution (empty: nothing).

    Every `a = b = ...` chain (a line, with the lines after it that start with `=`) must hold exactly,
    and the last line must be `Answer:` with the right answer; other lines are prose. A chain may end
    in "Q R r" when it starts with `a / b` of whole numbers.
    """
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    problems: list[str] = []
    final = lines[-1] if lines and lines[-1].startswith("Answer:") else None
    if final is None:
        problems.append("the last line is not 'Answer: ...'")
    chains: list[tuple[int, list[str]]] = []
    for number, line in enumerate(lines[:-1] if final else lines, start=1):
        if line.startswith("="):
            if chains:
                chains[-1][1].extend(line[1:].split("="))
            else:
                problems.append(f"line {number}: continues no equation")
        elif "=" in line:
            chains.append((number, line.split("=")))
    for number, parts in chains:
        problems += _check_chain(number, [part.strip() for part in parts])
    try:
        truth = answer_of(expression, form)
    except ExpressionError as exc:
        return [*problems, f"the expression cannot be evaluated: {exc}"]
    given = format_answer(read_answer(final, form)) if final else None
    if given != truth:
        problems.append(f"the final answer is {given}, not {truth}")
    return problems


def _check_chain(number: int, parts: list[str]) -> list[str]:
    try:
        qr = _QR_PART.fullmatch(parts[-1])
        values = {evaluate(part) for part in (parts[:-1] if qr else parts)}
        ok = len(values) == 1 and (qr is None or divmod_of(parts[0]) == (int(qr[1]), int(qr[2])))
    except ExpressionError as exc:
        return [f"line {number}: cannot read {' = '.join(parts)!r}: {exc}"]
    return [] if ok else [f"line {number}: {' = '.join(parts)!r} does not hold"]
