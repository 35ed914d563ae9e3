"""QBO's query language: `select * | count(*) from Entity [where ...] [orderby ...] [startposition N] [maxresults M]`.

Source: Intuit's data-queries page (notes A.3). Conditions are `field op value` joined by AND only, with
`=, <, >, <=, >=, in (...), like '%x%'` (LIKE takes only `%`); no OR, no JOIN, no GROUP BY, no
projections (`select *, Sku` is `*`). Keywords and entity names are case-insensitive; strings are single-quoted with `\\'`
escapes. A bad query is QBO's QueryParserError (code 4000, HTTP 400); an unknown entity or property is
QueryValidationError (4001).

Choices where the sources are silent (kept deliberate, so clients are tested against them):
- STARTPOSITION is 1-based (default 1); MAXRESULTS defaults to 100 and is capped at 1000 silently,
  so a client that asks for more and stops at the first short page loses rows, as it would in QBO.
- Without ORDERBY rows come in Id order (numeric). String comparisons are case-insensitive.
- Entities with `Active` hide inactive records unless the query names `Active` (QBO's documented
  default); a reference field (`CustomerRef`) compares its `value`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from xz_pipeline.sandbox.quickbooks.company import BY_LOWER, HAS_ACTIVE
from xz_pipeline.sandbox.quickbooks.wire import QboFault, WireError, parse_date, parse_datetime, query_error

MAX_RESULTS = 1000
DEFAULT_RESULTS = 100
_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^'\\]|\\.)*')|(?P<num>-?\d+(?:\.\d+)?)|(?P<op><=|>=|!=|<>|=|<|>|\(|\)|,|\*)"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_.]*))"
)
OPS = ("=", "<", ">", "<=", ">=", "in", "like")


def validation_error(detail: str) -> QboFault:
    return QboFault("4001", "Invalid query", f"QueryValidationError: {detail}")


@dataclass(frozen=True)
class Token:
    kind: str  # str | num | op | word
    text: str

    @property
    def word(self) -> str:
        return self.text.lower() if self.kind == "word" else ""


@dataclass
class Condition:
    path: tuple[str, ...]
    op: str
    values: list[Any]  # literals: str, Decimal, bool


@dataclass
class Query:
    entity: str
    count: bool = False
    conditions: list[Condition] = field(default_factory=list)
    order: list[tuple[tuple[str, ...], bool]] = field(default_factory=list)  # (path, descending)
    start: int = 1
    max_results: int = DEFAULT_RESULTS

    def names_active(self) -> bool:
        return any(c.path[0].lower() == "active" for c in self.conditions)


def tokenize(text: str) -> list[Token]:
    tokens, pos, text = [], 0, text.strip().rstrip(";")
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise query_error(
                f'Encountered " "{text[pos : pos + 10].strip()}" " at line 1, column {pos + 1}.'
            )
        kind = m.lastgroup or "op"
        raw = m.group(kind)
        if kind == "str":
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        tokens.append(Token(kind, raw))
        pos = m.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> Token:
        tok = self.peek()
        if tok is None:
            raise query_error('Encountered "<EOF>" at line 1: the query ends too soon.')
        self.i += 1
        return tok

    def expect_word(self, *words: str) -> str:
        tok = self.take()
        if tok.word not in words:
            raise query_error(
                f'Encountered " "{tok.text}" " : expected {" or ".join(w.upper() for w in words)}.'
            )
        return tok.word

    def expect_op(self, op: str) -> None:
        tok = self.take()
        if tok.kind != "op" or tok.text != op:
            raise query_error(f'Encountered " "{tok.text}" " : expected "{op}".')

    def literal(self) -> Any:
        tok = self.take()
        if tok.kind == "str":
            return tok.text
        if tok.kind == "num":
            return Decimal(tok.text)
        if tok.word in ("true", "false"):
            return tok.word == "true"
        raise query_error(f'Encountered " "{tok.text}" " : expected a value.')

    def parse(self) -> Query:
        self.expect_word("select")
        tok = self.take()
        count = False
        if tok.kind == "op" and tok.text == "*":
            pass
        elif tok.word == "count":
            self.expect_op("(")
            self.expect_op("*")
            self.expect_op(")")
            count = True
        else:
            raise query_error(
                f'Encountered " "{tok.text}" " : projections are not supported; select * or count(*).'
            )
        # `select *, Sku from Item` (python-quickbooks asks so): the fields after * are in * already
        while not count and (nxt := self.peek()) is not None and nxt.kind == "op" and nxt.text == ",":
            self.take()
            self.path()
        self.expect_word("from")
        name = self.take()
        entity = BY_LOWER.get(name.word)
        if name.kind != "word" or entity is None:
            raise validation_error(f"Invalid table name {name.text}")
        q = Query(entity, count)
        tok = self.peek()
        if tok is not None and tok.kind == "op" and tok.text == ",":
            raise query_error('Encountered ",": JOIN is not supported; query one entity at a time.')
        if tok is not None and tok.word in ("join", "inner", "left", "outer"):
            raise query_error(f'Encountered " "{tok.text}" ": JOIN is not supported.')
        if tok is not None and tok.word == "where":
            self.take()
            q.conditions.append(self.condition())
            while (tok := self.peek()) is not None and tok.word in ("and", "or"):
                if tok.word == "or":
                    raise query_error('Encountered " "OR" "OR "" at line 1: OR is not supported.')
                self.take()
                q.conditions.append(self.condition())
        tok = self.peek()
        if tok is not None and tok.word in ("orderby", "order"):
            self.take()
            if tok.word == "order":
                self.expect_word("by")
            while True:
                path = self.path()
                desc = False
                if (d := self.peek()) is not None and d.word in ("asc", "desc"):
                    desc = self.take().word == "desc"
                q.order.append((path, desc))
                if (c := self.peek()) is not None and c.kind == "op" and c.text == ",":
                    self.take()
                    continue
                break
        for word in ("startposition", "maxresults"):
            tok = self.peek()
            if tok is not None and tok.word == word:
                self.take()
                num = self.take()
                if (
                    num.kind != "num"
                    or "." in num.text
                    or int(num.text) < (1 if word == "startposition" else 0)
                ):
                    raise query_error(
                        f'Encountered " "{num.text}" ": {word.upper()} takes a positive integer.'
                    )
                if word == "startposition":
                    q.start = int(num.text)
                else:
                    q.max_results = min(MAX_RESULTS, int(num.text))
        tok = self.peek()
        if tok is not None:
            if tok.word == "groupby" or tok.word == "group":
                raise query_error('Encountered " "GROUP" ": GROUP BY is not supported.')
            raise query_error(f'Encountered " "{tok.text}" " at the end of the query.')
        return q

    def path(self) -> tuple[str, ...]:
        tok = self.take()
        if tok.kind != "word":
            raise query_error(f'Encountered " "{tok.text}" " : expected a property name.')
        return tuple(tok.text.split("."))

    def condition(self) -> Condition:
        path = self.path()
        tok = self.take()
        op = tok.text.lower() if tok.kind in ("op", "word") else ""
        if op not in OPS:
            raise query_error(f'Encountered " "{tok.text}" " : expected an operator ({", ".join(OPS)}).')
        if op == "in":
            self.expect_op("(")
            values = [self.literal()]
            while (t := self.take()).kind == "op" and t.text == ",":
                values.append(self.literal())
            if t.text != ")":
                raise query_error(f'Encountered " "{t.text}" " : expected ")".')
            return Condition(path, op, values)
        value = self.literal()
        if op == "like" and not isinstance(value, str):
            raise query_error("LIKE takes a quoted string.")
        return Condition(path, op, [value])


def parse(text: str) -> Query:
    """The parsed query, or a QboFault (4000 QueryParserError / 4001 QueryValidationError)."""
    if not text or not text.strip():
        raise query_error("the query is empty.")
    return _Parser(text).parse()


# ---- evaluation --------------------------------------------------------------------------------


def lookup(rec: dict, path: tuple[str, ...]) -> Any:
    """The value at a dotted path, keys matched case-insensitively; a reference yields its `value`."""
    cur: Any = rec
    for part in path:
        if not isinstance(cur, dict):
            return None
        if part in cur:
            cur = cur[part]
        else:
            low = part.lower()
            cur = next((v for k, v in cur.items() if k.lower() == low), None)
    if isinstance(cur, dict) and "value" in cur:
        return cur["value"]
    return cur


def _coerce(sample: Any, literal: Any) -> Any:
    """The literal in the type of the stored value, so comparisons mean what they say."""
    try:
        if isinstance(sample, bool):
            return literal if isinstance(literal, bool) else str(literal).strip().lower() == "true"
        if isinstance(sample, datetime):
            return parse_datetime(str(literal))
        if isinstance(sample, date):
            return parse_date(str(literal))
        if isinstance(sample, Decimal | int):
            return Decimal(str(literal))
    except (WireError, InvalidOperation) as exc:
        raise query_error(f"the value {literal!r} does not fit the property.") from exc
    return _text_key(literal)


def _text_key(value: Any) -> Any:
    text = str(value).lower()
    return (0, int(text), "") if text.isdigit() else (1, 0, text)


def _comparable(value: Any) -> Any:
    if isinstance(value, bool | datetime | date | Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    return _text_key(value)


def _like(pattern: str) -> re.Pattern:
    parts = [re.escape(p) for p in pattern.split("%")]
    return re.compile("^" + ".*".join(parts) + "$", re.IGNORECASE | re.DOTALL)


def predicate(cond: Condition) -> Callable[[dict], bool]:
    like = _like(cond.values[0]) if cond.op == "like" else None

    def test(rec: dict) -> bool:
        value = lookup(rec, cond.path)
        if value is None:
            return False
        if like is not None:
            return bool(like.match(str(value)))
        left = _comparable(value)
        rights = [_coerce(value, v) for v in cond.values]
        try:
            if cond.op == "in":
                return left in rights
            right = rights[0]
            return {"=": left == right, "<": left < right, ">": left > right, "<=": left <= right,
                    ">=": left >= right}[cond.op]  # fmt: skip
        except TypeError:
            return False

    return test


def _sort_key(path: tuple[str, ...]) -> Callable[[dict], Any]:
    def key(rec: dict) -> Any:
        value = lookup(rec, path)
        return (value is None, _comparable(value) if value is not None else 0)

    return key


def select(q: Query, rows: list[dict]) -> list[dict]:
    """Filter and order `rows` (records as the API views them); paging is the caller's."""
    if q.entity in HAS_ACTIVE and not q.names_active():
        rows = [r for r in rows if r.get("Active", True)]
    for cond in q.conditions:
        test = predicate(cond)
        rows = [r for r in rows if test(r)]
    rows = sorted(rows, key=_sort_key(("Id",)))
    for path, desc in reversed(q.order):
        rows = sorted(rows, key=_sort_key(path), reverse=desc)
    return rows
