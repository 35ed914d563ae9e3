"""Search criteria and COQL for the Zoho emulator: parsers and a typed comparison (zoho-api.md §6, §7).

Both evaluate against a `getter(path) -> value` and a `typer(path) -> data_type` supplied by the record
store, so lookups' dot fields (`Account_Name.Account_Name`) resolve through the store. Text comparisons
ignore case; search's `equals` on text matches as "contains", as Zoho documents.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

TEXT_TYPES = {"text", "textarea", "email", "phone", "website", "picklist", "autonumber", "bigint"}
NUMBER_TYPES = {"integer", "double", "currency", "decimal", "percent"}
SEARCH_OPERATORS = {
    "equals",
    "not_equal",
    "starts_with",
    "in",
    "greater_than",
    "greater_equal",
    "less_than",
    "less_equal",
    "between",
}
MAX_SEARCH_CRITERIA = 10


class QueryError(ValueError):
    """A malformed criteria or query; `code` is the Zoho error code to answer with."""

    def __init__(self, code: str, message: str, details: dict | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.details = details or {}


Getter = Callable[[str], Any]
Typer = Callable[[str], str | None]


# --------------------------------------------------------------------------------------------
# Typed comparison shared by search and COQL


def _as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
        return dt if dt.tzinfo else None
    return None


def _norm(value: Any, data_type: str | None) -> Any:
    """Bring a stored or given value to a comparable Python value for its field type."""
    if value is None or value == "":
        return None
    if isinstance(value, dict):  # lookup: compare by id
        return str(value.get("id", "")).lower()
    if data_type in NUMBER_TYPES:
        try:
            return float(value)
        except (TypeError, ValueError):
            return None
    if data_type == "datetime":
        return _as_datetime(value)
    if data_type == "date":
        if isinstance(value, date):
            return value.isoformat()
        return str(value)[:10]
    if data_type == "boolean":
        if isinstance(value, bool):
            return value
        return str(value).lower() == "true"
    if isinstance(value, list):
        return [str(v.get("name", v) if isinstance(v, dict) else v).lower() for v in value]
    return str(value).lower()


def _lookup_matches(actual: Any, expected: Any) -> bool:
    if isinstance(actual, dict):
        exp = str(expected).lower()
        return exp in (str(actual.get("id", "")).lower(), str(actual.get("name", "")).lower())
    return False


def compare(actual: Any, op: str, expected: Any, data_type: str | None, *, contains_equals=False) -> bool:
    """Apply one operator. `op` is a search operator name or a COQL symbol."""
    if op in ("is_null", "is_not_null"):
        empty = actual is None or actual == "" or actual == []
        return empty if op == "is_null" else not empty
    if op in ("in", "not_in"):
        hit = any(compare(actual, "=", e, data_type) for e in expected)
        return hit if op == "in" else not hit
    if op in ("between", "not_between"):
        lo, hi = expected
        hit = compare(actual, ">=", lo, data_type) and compare(actual, "<=", hi, data_type)
        return hit if op == "between" else not hit
    if op in ("like", "not_like"):
        text = _norm(actual, "text")
        pattern = "^" + ".*".join(re.escape(p) for p in str(expected).lower().split("%")) + "$"
        hit = text is not None and re.match(pattern, text, re.S) is not None
        return hit if op == "like" else not hit
    if op in ("=", "!=") and isinstance(actual, dict):
        hit = _lookup_matches(actual, expected)
        return hit if op == "=" else not hit
    a, e = _norm(actual, data_type), _norm(expected, data_type)
    if op == "starts_with":
        return isinstance(a, str) and isinstance(e, str) and a.startswith(e)
    if op == "=":
        if isinstance(a, list):
            return e in a
        if contains_equals and isinstance(a, str) and isinstance(e, str) and data_type in TEXT_TYPES:
            return e in a
        return a is not None and a == e
    if op == "!=":
        if isinstance(a, list):
            return e not in a
        return a != e
    if a is None or e is None:
        return False
    try:
        if op == ">":
            return a > e
        if op == ">=":
            return a >= e
        if op == "<":
            return a < e
        if op == "<=":
            return a <= e
    except TypeError:
        return False
    raise QueryError("INVALID_QUERY", f"unsupported operator {op}")


# --------------------------------------------------------------------------------------------
# Search criteria: ((Field:operator:value)and(Field:operator:value))

_SEARCH_TO_SYMBOL = {
    "equals": "=",
    "not_equal": "!=",
    "greater_than": ">",
    "greater_equal": ">=",
    "less_than": "<",
    "less_equal": "<=",
}


@dataclass(slots=True)
class Cmp:
    field: str
    op: str
    value: Any


@dataclass(slots=True)
class Group:
    op: str  # and | or
    items: list


def _split_escaped(text: str, sep: str) -> list[str]:
    out, buf, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            buf.append(text[i + 1])
            i += 2
            continue
        if ch == sep:
            out.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
        i += 1
    out.append("".join(buf))
    return out


def parse_criteria(text: str) -> Cmp | Group:
    """Parse search `criteria`; raises QueryError(INVALID_QUERY) on anything malformed."""
    pos = 0
    count = 0

    def fail(reason: str) -> QueryError:
        return QueryError("INVALID_QUERY", "invalid query formed", {"reason": reason})

    def parse_expr() -> Cmp | Group:
        nonlocal pos
        items = [parse_paren()]
        ops = set()
        while pos < len(text) and text[pos] != ")":
            m = re.match(r"\s*(and|or)\s*", text[pos:], re.I)
            if not m:
                raise fail("expected and/or")
            ops.add(m.group(1).lower())
            pos += m.end()
            items.append(parse_paren())
        if len(ops) > 1:
            raise fail("mixing and/or needs parentheses")
        return items[0] if len(items) == 1 else Group(ops.pop(), items)

    def parse_paren() -> Cmp | Group:
        nonlocal pos, count
        if pos >= len(text) or text[pos] != "(":
            raise fail("expected (")
        pos += 1
        if pos < len(text) and text[pos] == "(":
            node = parse_expr()
            if pos >= len(text) or text[pos] != ")":
                raise fail("unbalanced parentheses")
            pos += 1
            return node
        buf, i = [], pos
        while i < len(text):
            ch = text[i]
            if ch == "\\" and i + 1 < len(text):
                buf.append(text[i : i + 2])
                i += 2
                continue
            if ch == ")":
                break
            buf.append(ch)
            i += 1
        if i >= len(text):
            raise fail("unbalanced parentheses")
        pos = i + 1
        raw = "".join(buf)
        parts = raw.split(":", 2)
        if len(parts) != 3 or not parts[0].strip():
            raise fail("expected field:operator:value")
        field_name, op, value = parts[0].strip(), parts[1].strip().lower(), parts[2]
        if op not in SEARCH_OPERATORS:
            raise fail(f"unsupported operator {op}")
        count += 1
        if op in ("in", "between"):
            values = [v.strip() for v in _split_escaped(value, ",")]
            if op == "in" and len(values) > 100:
                raise fail("too many values for in")
            if op == "between" and len(values) != 2:
                raise fail("between needs two values")
            return Cmp(field_name, op, values)
        return Cmp(field_name, op, _split_escaped(value, "\0")[0])

    node = parse_expr()
    if pos != len(text):
        raise fail("unexpected text after criteria")
    if count > MAX_SEARCH_CRITERIA:
        raise QueryError("LIMIT_EXCEEDED", "Record count exceeded", {"limit": MAX_SEARCH_CRITERIA})
    return node


def criteria_fields(node: Cmp | Group) -> list[str]:
    if isinstance(node, Cmp):
        return [node.field]
    return [f for item in node.items for f in criteria_fields(item)]


def eval_criteria(node: Cmp | Group, getter: Getter, typer: Typer) -> bool:
    if isinstance(node, Group):
        results = (eval_criteria(i, getter, typer) for i in node.items)
        return all(results) if node.op == "and" else any(results)
    dtype = typer(node.field)
    actual = getter(node.field)
    if node.op in _SEARCH_TO_SYMBOL:
        return compare(actual, _SEARCH_TO_SYMBOL[node.op], node.value, dtype, contains_equals=True)
    return compare(actual, node.op, node.value, dtype)


# --------------------------------------------------------------------------------------------
# COQL

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>'(?:[^'\\]|\\.|'')*')
      | (?P<num>-?\d+(?:\.\d+)?)
      | (?P<op><=|>=|!=|<>|=|<|>)
      | (?P<punct>[(),*])
      | (?P<ident>[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*)
    )""",
    re.X,
)
MAX_COQL_LIMIT = 2000
MAX_COQL_ROWS = 100_000
MAX_SELECT = 50
MAX_WHERE = 25
MAX_IN = 50


@dataclass(slots=True)
class Tok:
    kind: str
    text: str


@dataclass
class CoqlQuery:
    fields: list[str]
    module: str
    where: Cmp | Group | None
    order: list[tuple[str, bool]]  # (field, descending)
    limit: int
    offset: int


def _tokens(query: str) -> list[Tok]:
    out, pos = [], 0
    query = query.rstrip().rstrip(";")
    while pos < len(query):
        if query[pos:].strip() == "":
            break
        m = _TOKEN.match(query, pos)
        if not m or m.end() == pos:
            raise QueryError(
                "SYNTAX_ERROR", "error occured while parsing the query", {"near": query[pos : pos + 20]}
            )
        kind = m.lastgroup or ""
        text = m.group(kind)
        if kind == "str":
            text = re.sub(r"\\(.)", r"\1", text[1:-1].replace("''", "'"))
        out.append(Tok(kind, text))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, toks: list[Tok]) -> None:
        self.toks = toks
        self.i = 0
        self.criteria = 0

    def peek(self, offset: int = 0) -> Tok | None:
        j = self.i + offset
        return self.toks[j] if j < len(self.toks) else None

    def kw(self, *words: str) -> bool:
        tok = self.peek()
        if tok and tok.kind == "ident" and tok.text.lower() == words[0]:
            for k, w in enumerate(words):
                t = self.peek(k)
                if not (t and t.kind == "ident" and t.text.lower() == w):
                    return False
            self.i += len(words)
            return True
        return False

    def expect_kw(self, word: str) -> None:
        if not self.kw(word):
            raise self.syntax(f"expected {word.upper()}")

    def syntax(self, reason: str) -> QueryError:
        tok = self.peek()
        near = tok.text if tok else "end of query"
        return QueryError(
            "SYNTAX_ERROR", f"error occured while parsing the query near {near}", {"reason": reason}
        )

    def punct(self, ch: str) -> bool:
        tok = self.peek()
        if tok and tok.kind == "punct" and tok.text == ch:
            self.i += 1
            return True
        return False

    def ident(self) -> str:
        tok = self.peek()
        if not tok or tok.kind != "ident":
            raise self.syntax("expected a field name")
        self.i += 1
        return tok.text

    def value(self) -> Any:
        tok = self.peek()
        if tok is None:
            raise self.syntax("expected a value")
        self.i += 1
        if tok.kind == "str":
            return tok.text
        if tok.kind == "num":
            return float(tok.text) if "." in tok.text else int(tok.text)
        if tok.kind == "ident" and tok.text.lower() in ("true", "false"):
            return tok.text.lower() == "true"
        if tok.kind == "ident" and tok.text.lower() == "null":
            return None
        raise self.syntax("expected a value")

    def integer(self) -> int:
        tok = self.peek()
        if not tok or tok.kind != "num" or "." in tok.text or tok.text.startswith("-"):
            raise self.syntax("expected a number")
        self.i += 1
        return int(tok.text)

    def cond(self) -> Cmp | Group:
        items = [self.term()]
        while self.kw("or"):
            items.append(self.term())
        return items[0] if len(items) == 1 else Group("or", items)

    def term(self) -> Cmp | Group:
        items = [self.factor()]
        while self.kw("and"):
            items.append(self.factor())
        return items[0] if len(items) == 1 else Group("and", items)

    def factor(self) -> Cmp | Group:
        if self.punct("("):
            node = self.cond()
            if not self.punct(")"):
                raise self.syntax("expected )")
            return node
        name = self.ident()
        self.criteria += 1
        tok = self.peek()
        if tok and tok.kind == "op":
            self.i += 1
            op = "!=" if tok.text == "<>" else tok.text
            return Cmp(name, op, self.value())
        if self.kw("is", "not", "null"):
            return Cmp(name, "is_not_null", None)
        if self.kw("is", "null"):
            return Cmp(name, "is_null", None)
        negate = self.kw("not")
        if self.kw("in"):
            if not self.punct("("):
                raise self.syntax("expected ( after in")
            values = [self.value()]
            while self.punct(","):
                values.append(self.value())
            if not self.punct(")"):
                raise self.syntax("expected )")
            if len(values) > MAX_IN:
                raise QueryError("LIMIT_EXCEEDED", "Max values exceeded for in", {"limit": MAX_IN})
            return Cmp(name, "not_in" if negate else "in", values)
        if self.kw("like"):
            return Cmp(name, "not_like" if negate else "like", self.value())
        if self.kw("between"):
            lo = self.value()
            self.expect_kw("and")
            return Cmp(name, "not_between" if negate else "between", [lo, self.value()])
        raise self.syntax("expected an operator")


def parse_coql(query: str) -> CoqlQuery:
    p = _Parser(_tokens(query))
    p.expect_kw("select")
    fields = [p.ident()]
    while p.punct(","):
        fields.append(p.ident())
    if len(fields) > MAX_SELECT:
        raise QueryError("LIMIT_EXCEEDED", "Max fields limit exceeded", {"limit": MAX_SELECT})
    p.expect_kw("from")
    module = p.ident()
    where = p.cond() if p.kw("where") else None
    if p.criteria > MAX_WHERE:
        raise QueryError("LIMIT_EXCEEDED", "Max criteria limit exceeded", {"limit": MAX_WHERE})
    order: list[tuple[str, bool]] = []
    if p.kw("order", "by"):
        while True:
            name = p.ident()
            desc = False
            if p.kw("desc"):
                desc = True
            else:
                p.kw("asc")
            order.append((name, desc))
            if not p.punct(","):
                break
    limit, offset = 200, 0
    if p.kw("limit"):
        first = p.integer()
        if p.punct(","):
            offset, limit = first, p.integer()
        else:
            limit = first
            if p.kw("offset"):
                offset = p.integer()
    if p.peek() is not None:
        raise p.syntax("unexpected text")
    if limit > MAX_COQL_LIMIT or limit < 1:
        raise QueryError("LIMIT_EXCEEDED", "Max records limit exceeded", {"limit": MAX_COQL_LIMIT})
    if offset + limit > MAX_COQL_ROWS:
        raise QueryError("LIMIT_EXCEEDED", "Max records limit exceeded", {"limit": MAX_COQL_ROWS})
    return CoqlQuery(fields, module, where, order, limit, offset)


def eval_where(node: Cmp | Group | None, getter: Getter, typer: Typer) -> bool:
    if node is None:
        return True
    if isinstance(node, Group):
        results = (eval_where(i, getter, typer) for i in node.items)
        return all(results) if node.op == "and" else any(results)
    return compare(getter(node.field), node.op, node.value, typer(node.field))


def where_fields(node: Cmp | Group | None) -> list[str]:
    if node is None:
        return []
    if isinstance(node, Cmp):
        return [node.field]
    return [f for item in node.items for f in where_fields(item)]
