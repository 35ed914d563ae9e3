"""Xero's `where` and `order` query parameters: a small .NET/LINQ-style expression language.

Supported: `== != = < > <= >=`, `AND OR && ||`, `!`, parentheses, `.Contains() .StartsWith()
.EndsWith() .ToLower() .ToUpper()`, `GUID("…")`, `DateTime(y, m, d[, h, mi, s])`, strings,
numbers, `true/false/null`, and nested fields such as `Contact.ContactID`. It evaluates against
the typed records (dates, Decimals), so `Date >= DateTime(2026, 1, 1)` compares real dates.
String comparisons are ordinal and case-sensitive, as in .NET; use `.ToLower()` to fold case.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any


class QueryError(ValueError):
    """The expression cannot be parsed or evaluated (Xero answers 400)."""


_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>"(?:[^"\\]|\\.)*")
    | (?P<num>-?\d+(?:\.\d+)?)
    | (?P<op>==|!=|<=|>=|&&|\|\||[<>=!().,])
    | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class Tok:
    kind: str  # str | num | op | ident | end
    text: str


def tokenize(text: str) -> list[Tok]:
    toks: list[Tok] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise QueryError(f"unexpected character at position {pos} in where clause")
        pos = m.end()
        kind = m.lastgroup or ""
        raw = m.group(kind)
        if kind == "str":
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        toks.append(Tok(kind, raw))
    toks.append(Tok("end", ""))
    return toks


Node = Callable[[dict], Any]
_MISSING = object()


def field_value(record: dict, path: list[str]) -> Any:
    """Follow `Contact.ContactID` through nested dicts; field names match case-insensitively as a fallback."""
    cur: Any = record
    for name in path:
        if not isinstance(cur, dict):
            return None
        if name in cur:
            cur = cur[name]
            continue
        lower = name.lower()
        cur = next((v for k, v in cur.items() if k.lower() == lower), None)
    return cur


def _norm(a: Any, b: Any) -> tuple[Any, Any]:
    """Bring two operands to comparable types (date vs DateTime, Decimal vs int, GUID vs str)."""
    if isinstance(a, uuid.UUID) or isinstance(b, uuid.UUID):
        return str(a).lower() if a is not None else None, str(b).lower() if b is not None else None
    if isinstance(a, date) or isinstance(b, date):
        return _as_dt(a), _as_dt(b)
    if (
        isinstance(a, int | float | Decimal)
        and not isinstance(a, bool)
        and isinstance(b, int | float | Decimal)
    ):
        return Decimal(str(a)), Decimal(str(b))
    if isinstance(a, bool) and isinstance(b, str):
        return a, b.lower() == "true"
    if isinstance(b, bool) and isinstance(a, str):
        return a.lower() == "true", b
    return a, b


def _as_dt(v: Any) -> Any:
    if isinstance(v, datetime):
        return v if v.tzinfo else v.replace(tzinfo=UTC)
    if isinstance(v, date):
        return datetime(v.year, v.month, v.day, tzinfo=UTC)
    return v


def _is_null(v: Any) -> bool:
    return v is None or v == ""


def _compare(op: str, a: Any, b: Any) -> bool:
    if op in ("==", "="):
        if b is None or a is None:
            return _is_null(a) and _is_null(b)
        a, b = _norm(a, b)
        return a == b
    if op == "!=":
        return not _compare("==", a, b)
    if a is None or b is None:
        return False
    a, b = _norm(a, b)
    try:
        return {"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]
    except TypeError as exc:
        raise QueryError(f"cannot compare {type(a).__name__} with {type(b).__name__}") from exc


_METHODS: dict[str, Callable[..., Any]] = {
    "contains": lambda s, x: s is not None and str(x) in str(s),
    "startswith": lambda s, x: s is not None and str(s).startswith(str(x)),
    "endswith": lambda s, x: s is not None and str(s).endswith(str(x)),
    "tolower": lambda s: None if s is None else str(s).lower(),
    "toupper": lambda s: None if s is None else str(s).upper(),
}


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = tokenize(text)
        self.i = 0

    def peek(self) -> Tok:
        return self.toks[self.i]

    def take(self) -> Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def expect(self, text: str) -> None:
        tok = self.take()
        if tok.text != text:
            raise QueryError(f"expected '{text}' but found '{tok.text or 'end of expression'}'")

    def is_word(self, *words: str) -> bool:
        tok = self.peek()
        return tok.kind == "ident" and tok.text.upper() in words

    def parse(self) -> Node:
        node = self.or_()
        if self.peek().kind != "end":
            raise QueryError(f"unexpected '{self.peek().text}' in where clause")
        return node

    def or_(self) -> Node:
        node = self.and_()
        while self.peek().text == "||" or self.is_word("OR"):
            self.take()
            left, right = node, self.and_()
            node = lambda r, left=left, right=right: bool(left(r)) or bool(right(r))  # noqa: E731
        return node

    def and_(self) -> Node:
        node = self.unary()
        while self.peek().text == "&&" or self.is_word("AND"):
            self.take()
            left, right = node, self.unary()
            node = lambda r, left=left, right=right: bool(left(r)) and bool(right(r))  # noqa: E731
        return node

    def unary(self) -> Node:
        if self.peek().text == "!" or self.is_word("NOT"):
            self.take()
            inner = self.unary()
            return lambda r: not inner(r)
        return self.comparison()

    def comparison(self) -> Node:
        left = self.operand()
        op = self.peek().text if self.peek().kind == "op" else ""
        if op in ("==", "!=", "=", "<", ">", "<=", ">="):
            self.take()
            right = self.operand()
            return lambda r: _compare(op, left(r), right(r))
        return left

    def operand(self) -> Node:
        tok = self.take()
        if tok.text == "(":
            node = self.or_()
            self.expect(")")
            return self.methods(node)
        if tok.kind == "str":
            return self.methods(lambda r, v=tok.text: v)
        if tok.kind == "num":
            value = Decimal(tok.text)
            return lambda r: value
        if tok.kind != "ident":
            raise QueryError(f"unexpected '{tok.text or 'end of expression'}' in where clause")
        word = tok.text
        if word.lower() in ("true", "false"):
            truth = word.lower() == "true"
            return lambda r: truth
        if word.lower() == "null":
            return lambda r: None
        if self.peek().text == "(" and word.upper() in ("GUID", "DATETIME", "DATE"):
            return self.constructor(word.upper())
        path = [word]
        while self.peek().text == "." and self.toks[self.i + 1].kind == "ident":
            if self.toks[self.i + 2].text == "(":
                break
            self.take()
            path.append(self.take().text)
        return self.methods(lambda r, p=tuple(path): field_value(r, list(p)))

    def methods(self, node: Node) -> Node:
        while (
            self.peek().text == "."
            and self.toks[self.i + 1].kind == "ident"
            and self.toks[self.i + 2].text == "("
        ):
            self.take()
            name = self.take().text
            fn = _METHODS.get(name.lower())
            if fn is None:
                raise QueryError(f"unsupported method '{name}' in where clause")
            self.expect("(")
            args: list[Node] = []
            while self.peek().text != ")":
                args.append(self.or_())
                if self.peek().text == ",":
                    self.take()
            self.expect(")")
            node = lambda r, n=node, fn=fn, args=tuple(args): fn(n(r), *(a(r) for a in args))  # noqa: E731
        return node

    def constructor(self, name: str) -> Node:
        self.expect("(")
        args: list[Tok] = []
        while self.peek().text != ")":
            tok = self.take()
            if tok.kind not in ("num", "str"):
                raise QueryError(f"bad argument '{tok.text}' to {name}()")
            args.append(tok)
            if self.peek().text == ",":
                self.take()
        self.expect(")")
        if name == "GUID":
            if len(args) != 1:
                raise QueryError("GUID() takes one string")
            try:
                value: Any = uuid.UUID(args[0].text)
            except ValueError as exc:
                raise QueryError(f"'{args[0].text}' is not a GUID") from exc
            return lambda r: value
        try:
            parts = [int(a.text) for a in args]
            value = datetime(*parts, tzinfo=UTC)  # type: ignore[misc]
        except (TypeError, ValueError) as exc:
            raise QueryError(f"bad {name}() arguments") from exc
        return lambda r: value


def compile_where(text: str) -> Callable[[dict], bool]:
    """Parse once; the returned predicate is applied to each typed record."""
    node = _Parser(text).parse()

    def predicate(record: dict) -> bool:
        return bool(node(record))

    return predicate


def _sort_key(value: Any) -> tuple:
    if value is None or value == "":
        return (0, "")
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, int | float | Decimal):
        return (1, Decimal(str(value)))
    if isinstance(value, date):
        return (1, _as_dt(value))
    return (1, str(value).lower())


def apply_order(records: list[dict], order: str) -> list[dict]:
    """`order=Name ASC, UpdatedDateUTC DESC`: a stable multi-key sort (strings fold case, nulls first)."""
    keys: list[tuple[list[str], bool]] = []
    for part in order.split(","):
        words = part.split()
        if not words:
            continue
        if len(words) > 2 or (len(words) == 2 and words[1].upper() not in ("ASC", "DESC")):
            raise QueryError(f"bad order clause '{part.strip()}'")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", words[0]):
            raise QueryError(f"bad order field '{words[0]}'")
        keys.append((words[0].split("."), len(words) == 2 and words[1].upper() == "DESC"))
    out = list(records)
    for path, desc in reversed(keys):
        name = path[0]
        if len(path) == 1 and all(name in r for r in out[:1]):  # the common case: a top-level field
            out.sort(key=lambda r, n=name: _sort_key(r[n] if n in r else field_value(r, [n])), reverse=desc)
        else:
            out.sort(key=lambda r, p=path: _sort_key(field_value(r, p)), reverse=desc)
    return out
