"""The SOQL the emulator answers: SELECT fields (and one-level relationship fields such as Account.Name) or
COUNT() FROM one object, WHERE with = != <> < <= > >= LIKE IN NOT IN, AND/OR/NOT and parentheses, ORDER BY
(ASC/DESC, NULLS FIRST/LAST), LIMIT and OFFSET.

As Salesforce does: keywords and names are case-insensitive; text compares case-insensitively; literals
must fit the field's type (a date or datetime is unquoted, `2026-01-01` or `2026-01-01T00:00:00Z`; a
quoted date against a datetime field is an error, not a silent string compare); a field the object does
not have is INVALID_FIELD with Salesforce's "No such column" text; an unknown object is INVALID_TYPE;
anything else unparseable is MALFORMED_QUERY. Date literals TODAY, YESTERDAY, TOMORROW, LAST_N_DAYS:n and
NEXT_N_DAYS:n are read in UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from xz_pipeline.sandbox.salesforce.ids import to18
from xz_pipeline.sandbox.salesforce.schema import NUMBER_TYPES, Field, Schema
from xz_pipeline.sandbox.salesforce.wire import SfError, parse_datetime

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^'\\]|\\.)*')|(?P<dt>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))"
    r"|(?P<date>\d{4}-\d{2}-\d{2})(?![\d:T])|(?P<num>-?\d+(?:\.\d+)?)|(?P<op><=|>=|!=|<>|=|<|>)"
    r"|(?P<punct>[(),])|(?P<word>[A-Za-z_][A-Za-z0-9_.]*(?::\d+)?))"
)
KEYWORDS = {"select", "from", "where", "and", "or", "not", "in", "like", "order", "by", "asc", "desc", "limit",
            "offset", "nulls", "first", "last", "null", "true", "false", "count", "includes", "excludes"}  # fmt: skip
DATE_WORDS = ("TODAY", "YESTERDAY", "TOMORROW", "LAST_N_DAYS", "NEXT_N_DAYS")


@dataclass
class Tok:
    kind: str
    text: str
    pos: int


@dataclass
class Path:
    """A field as written: `Name` or `Account.Name` (relationship, field)."""

    rel: str
    name: str
    field: Field
    target: str  # the object the field is on

    @property
    def label(self) -> str:
        return f"{self.rel}.{self.name}" if self.rel else self.name


@dataclass
class Cond:
    op: str  # = != < <= > >= like in notin  | and or not
    path: Path | None = None
    value: Any = None
    parts: list[Cond] = field(default_factory=list)


@dataclass
class Query:
    sobject: str
    fields: list[Path]
    count: bool
    where: Cond | None
    order: list[tuple[Path, bool, bool]]  # (path, descending, nulls_first)
    limit: int | None
    offset: int


def tokenize(text: str) -> list[Tok]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise SfError(400, "MALFORMED_QUERY", f"unexpected token: '{text[pos:].strip()[:20]}'")
        kind = m.lastgroup or ""
        out.append(Tok(kind, m.group(kind), m.start(kind)))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str, schema: Schema, now: datetime) -> None:
        self.text, self.schema, self.now = text, schema, now
        self.toks = tokenize(text)
        self.i = 0
        self.sobject = ""

    # -- token helpers
    def peek(self, k: int = 0) -> Tok | None:
        return self.toks[self.i + k] if self.i + k < len(self.toks) else None

    def word(self, *words: str) -> bool:
        t = self.peek()
        return t is not None and t.kind == "word" and t.text.lower() in words

    def take(self) -> Tok:
        t = self.peek()
        if t is None:
            raise SfError(400, "MALFORMED_QUERY", "unexpected end of query")
        self.i += 1
        return t

    def expect_word(self, word: str) -> None:
        t = self.take()
        if t.kind != "word" or t.text.lower() != word:
            raise SfError(400, "MALFORMED_QUERY", f"unexpected token: '{t.text}'")

    def expect(self, text: str) -> None:
        t = self.take()
        if t.text != text:
            raise SfError(400, "MALFORMED_QUERY", f"unexpected token: '{t.text}', expected '{text}'")

    # -- grammar
    def parse(self) -> Query:
        self.expect_word("select")
        raw_fields, count = [], False
        if self.word("count") and (n := self.peek(1)) is not None and n.text == "(":
            self.take(), self.take()
            self.expect(")")
            count = True
        else:
            while True:
                t = self.take()
                if t.kind != "word" or t.text.lower() in KEYWORDS:
                    raise SfError(400, "MALFORMED_QUERY", f"unexpected token: '{t.text}'")
                raw_fields.append(t)
                if self.peek() is not None and self.peek().text == ",":
                    self.take()
                    continue
                break
        self.expect_word("from")
        obj = self.take()
        self.sobject = self.schema.sobject(obj.text) if obj.kind == "word" else ""
        if not self.sobject:
            raise SfError(400, "INVALID_TYPE", self._caret(obj, f"sObject type '{obj.text}' is not supported. If "
                          "you are attempting to use a custom object, be sure to append the '__c' after the entity "
                          "name. Please reference your WSDL or the describe call for the appropriate names."))  # fmt: skip
        fields = [self.path(t) for t in raw_fields]
        where = None
        if self.word("where"):
            self.take()
            where = self.or_()
        order = []
        if self.word("order"):
            self.take()
            self.expect_word("by")
            while True:
                path = self.path(self.take())
                desc = False
                if self.word("asc", "desc"):
                    desc = self.take().text.lower() == "desc"
                nulls_first = not desc
                if self.word("nulls"):
                    self.take()
                    nulls_first = self.take().text.lower() == "first"
                order.append((path, desc, nulls_first))
                if self.peek() is not None and self.peek().text == ",":
                    self.take()
                    continue
                break
        limit, offset = None, 0
        while self.word("limit", "offset"):
            which = self.take().text.lower()
            n = self.take()
            if n.kind != "num" or "." in n.text or n.text.startswith("-"):
                raise SfError(400, "MALFORMED_QUERY", f"unexpected token: '{n.text}'")
            if which == "limit":
                limit = int(n.text)
            else:
                offset = int(n.text)
        if self.peek() is not None:
            raise SfError(400, "MALFORMED_QUERY", f"unexpected token: '{self.peek().text}'")
        if count and order:
            raise SfError(400, "MALFORMED_QUERY", "ORDER BY is not allowed with COUNT()")
        return Query(self.sobject, fields, count, where, order, limit, offset)

    def _caret(self, tok: Tok, message: str) -> str:
        return f"{self.text}\n{' ' * tok.pos}^\nERROR at Row:1:Column:{tok.pos + 1}\n{message}"

    def path(self, tok: Tok) -> Path:
        if tok.kind != "word":
            raise SfError(400, "MALFORMED_QUERY", f"unexpected token: '{tok.text}'")
        parts = tok.text.split(".")
        if len(parts) > 2:
            raise SfError(
                400, "MALFORMED_QUERY", self._caret(tok, "only one level of relationship is served here")
            )
        if len(parts) == 2 and parts[0].lower() == self.sobject.lower():
            parts = parts[1:]  # Account.Name FROM Account
        if len(parts) == 1:
            f = self.schema.find(self.sobject, parts[0])
            if f is None:
                raise self._no_column(tok, parts[0], self.sobject)
            return Path("", f.name, f, self.sobject)
        ref = self.schema.relationship(self.sobject, parts[0])
        if ref is None:
            raise SfError(400, "INVALID_FIELD", self._caret(tok, f"Didn't understand relationship '{parts[0]}' in field "
                          f"path. If you are attempting to use a custom relationship, be sure to append the '__r' after "
                          "the custom relationship name. Please reference your WSDL or the describe call for the "
                          "appropriate names."))  # fmt: skip
        target = ref.reference_to[0]
        f = self.schema.find(target, parts[1])
        if f is None:
            raise self._no_column(tok, parts[1], target)
        return Path(ref.relationship, f.name, f, target)

    def _no_column(self, tok: Tok, name: str, sobject: str) -> SfError:
        return SfError(400, "INVALID_FIELD", self._caret(tok, f"No such column '{name}' on entity '{sobject}'. If you are "
                       "attempting to use a custom field, be sure to append the '__c' after the custom field name. "
                       "Please reference your WSDL or the describe call for the appropriate names."))  # fmt: skip

    def or_(self) -> Cond:
        parts = [self.and_()]
        while self.word("or"):
            self.take()
            parts.append(self.and_())
        return parts[0] if len(parts) == 1 else Cond("or", parts=parts)

    def and_(self) -> Cond:
        parts = [self.not_()]
        while self.word("and"):
            self.take()
            parts.append(self.not_())
        return parts[0] if len(parts) == 1 else Cond("and", parts=parts)

    def not_(self) -> Cond:
        if self.word("not"):
            self.take()
            return Cond("not", parts=[self.not_()])
        t = self.peek()
        if t is not None and t.text == "(":
            self.take()
            inner = self.or_()
            self.expect(")")
            return inner
        return self.comparison()

    def comparison(self) -> Cond:
        tok = self.take()
        path = self.path(tok)
        t = self.take()
        if t.kind == "op":
            op = "!=" if t.text == "<>" else t.text
            return Cond(op, path, self.value(path, self.take(), op))
        low = t.text.lower()
        if low == "like":
            v = self.take()
            if v.kind != "str":
                raise SfError(400, "MALFORMED_QUERY", f"unexpected token: '{v.text}'")
            return Cond("like", path, _like(_unquote(v.text)))
        if low == "not" and self.word("in"):
            self.take()
            return Cond("notin", path, self.values(path))
        if low == "in":
            return Cond("in", path, self.values(path))
        raise SfError(400, "MALFORMED_QUERY", f"unexpected token: '{t.text}'")

    def values(self, path: Path) -> list:
        self.expect("(")
        out = []
        while True:
            out.append(self.value(path, self.take(), "in"))
            t = self.take()
            if t.text == ")":
                return out
            if t.text != ",":
                raise SfError(400, "MALFORMED_QUERY", f"unexpected token: '{t.text}'")

    def value(self, path: Path, tok: Tok, op: str) -> Any:
        ftype = path.field.type
        if tok.kind == "word" and tok.text.lower() == "null":
            if op not in ("=", "!="):
                raise SfError(400, "MALFORMED_QUERY", "null can only be compared with = or !=")
            return None

        def wrong(kind: str) -> SfError:
            quoted = " and should not be enclosed in quotes" if tok.kind == "str" else ""
            return SfError(400, "INVALID_FIELD", self._caret(tok, f"value of filter criterion for field "
                           f"'{path.name}' must be of type {kind}{quoted}"))  # fmt: skip

        if ftype == "datetime":
            if tok.kind == "dt":
                return parse_datetime(tok.text)
            if tok.kind == "word" and tok.text.upper().split(":")[0] in DATE_WORDS:
                return datetime.combine(self.date_word(tok), datetime.min.time(), self.now.tzinfo)
            raise wrong("dateTime")
        if ftype == "date":
            if tok.kind == "date":
                return date.fromisoformat(tok.text)
            if tok.kind == "word" and tok.text.upper().split(":")[0] in DATE_WORDS:
                return self.date_word(tok)
            raise wrong("date")
        if ftype == "boolean":
            if tok.kind == "word" and tok.text.lower() in ("true", "false"):
                return tok.text.lower() == "true"
            raise wrong("boolean")
        if ftype in NUMBER_TYPES:
            if tok.kind != "num":
                raise wrong("double" if ftype != "int" else "int")
            try:
                return Decimal(tok.text)
            except InvalidOperation as exc:
                raise wrong("double") from exc
        if tok.kind != "str":
            raise wrong("string")
        text = _unquote(tok.text)
        if ftype in ("id", "reference"):
            full = to18(text)
            if not full:
                raise SfError(
                    400, "INVALID_QUERY_FILTER_OPERATOR", self._caret(tok, f"invalid ID field: {text}")
                )
            return full
        return text.lower()

    def date_word(self, tok: Tok) -> Any:
        word, _, n = tok.text.upper().partition(":")
        today = self.now.date()
        if word in ("LAST_N_DAYS", "NEXT_N_DAYS"):
            if not n.isdigit():
                raise SfError(400, "MALFORMED_QUERY", f"{word} needs a number: {word}:n")
            # a range: kept as a tuple (start, end) of dates, inclusive of today
            return (
                (today - timedelta(days=int(n)), today)
                if word == "LAST_N_DAYS"
                else (today, today + timedelta(days=int(n)))
            )
        return {
            "TODAY": today,
            "YESTERDAY": today - timedelta(days=1),
            "TOMORROW": today + timedelta(days=1),
        }[word]


def _unquote(text: str) -> str:
    return re.sub(
        r"\\(.)", lambda m: {"n": "\n", "t": "\t", "r": "\r"}.get(m.group(1), m.group(1)), text[1:-1]
    )


def _like(pattern: str) -> re.Pattern:
    out = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.compile(f"^{out}$", re.IGNORECASE | re.DOTALL)


def parse(text: str, schema: Schema, now: datetime) -> Query:
    if not text.strip():
        raise SfError(400, "MALFORMED_QUERY", "empty query")
    return _Parser(text, schema, now).parse()


# ---- evaluation --------------------------------------------------------------------------------


def value_of(rec: dict, path: Path, resolve) -> Any:
    """The field's value on `rec` (following the relationship through `resolve(object, id)`)."""
    if not path.rel:
        return rec.get(path.name)
    ref_field = next(f for f in resolve.schema.objects[rec["__type"]].values() if f.relationship == path.rel)
    parent = resolve(path.target, rec.get(ref_field.name))
    return None if parent is None else parent.get(path.name)


def _norm(value: Any, ftype: str) -> Any:
    if isinstance(value, str) and ftype not in ("id", "reference"):
        return value.lower()
    if isinstance(value, datetime) and ftype == "date":
        return value.date()
    return value


def _test(cond: Cond, rec: dict, resolve) -> bool:
    if cond.op == "and":
        return all(_test(c, rec, resolve) for c in cond.parts)
    if cond.op == "or":
        return any(_test(c, rec, resolve) for c in cond.parts)
    if cond.op == "not":
        return not _test(cond.parts[0], rec, resolve)
    path = cond.path
    got = _norm(value_of(rec, path, resolve), path.field.type)
    if cond.op == "like":
        return got is not None and bool(cond.value.match(str(got)))
    if cond.op in ("in", "notin"):
        hit = any(_equal(got, v) for v in cond.value)
        return hit if cond.op == "in" else (not hit and got is not None)
    want = cond.value
    if isinstance(want, tuple):  # LAST_N_DAYS / NEXT_N_DAYS
        if got is None:
            return False
        day = got.date() if isinstance(got, datetime) else got
        inside = want[0] <= day <= want[1]
        return {"=": inside, "!=": not inside}.get(cond.op, False)
    if cond.op == "=":
        return _equal(got, want)
    if cond.op == "!=":
        return not _equal(got, want)
    if got is None or want is None:
        return False
    if isinstance(want, datetime) and isinstance(got, date) and not isinstance(got, datetime):
        got = datetime.combine(got, datetime.min.time(), want.tzinfo)
    return {"<": got < want, "<=": got <= want, ">": got > want, ">=": got >= want}[cond.op]


def _equal(got: Any, want: Any) -> bool:
    if want is None:
        return got is None or got == ""
    return got == want


class _Resolver:
    def __init__(self, schema: Schema, records: dict) -> None:
        self.schema, self.records = schema, records

    def __call__(self, sobject: str, rid: str | None) -> dict | None:
        return self.records.get(sobject, {}).get(rid or "")


def select(q: Query, schema: Schema, records: dict[str, dict[str, dict]], *, deleted: bool) -> list[dict]:
    """The matching records of q.sobject, ordered, after OFFSET and LIMIT (each carries `__type`)."""
    resolve = _Resolver(schema, records)
    rows = []
    for rec in records[q.sobject].values():
        if rec["IsDeleted"] and not deleted:
            continue
        row = {**rec, "__type": q.sobject}
        if q.where is None or _test(q.where, row, resolve):
            rows.append(row)
    for path, desc, nulls_first in reversed(q.order):
        present = [r for r in rows if value_of(r, path, resolve) is not None]
        empty = [r for r in rows if value_of(r, path, resolve) is None]
        present.sort(key=lambda r, p=path: _norm(value_of(r, p, resolve), p.field.type), reverse=desc)
        rows = empty + present if nulls_first else present + empty
    rows = rows[q.offset :]
    return rows if q.limit is None else rows[: q.limit]


def project(q: Query, row: dict, schema: Schema, records: dict, url_base: str, render) -> dict:
    """The selected fields of one row, relationship fields nested as Salesforce nests them."""
    resolve = _Resolver(schema, records)
    out: dict[str, Any] = {
        "attributes": {"type": q.sobject, "url": f"{url_base}/sobjects/{q.sobject}/{row['Id']}"}
    }
    for path in q.fields:
        if not path.rel:
            out[path.name] = render(row.get(path.name))
            continue
        ref_field = next(f for f in schema.objects[q.sobject].values() if f.relationship == path.rel)
        parent = resolve(path.target, row.get(ref_field.name))
        if parent is None:
            out[path.rel] = None
            continue
        nested = out.get(path.rel) or {"attributes": {"type": path.target,
                                                      "url": f"{url_base}/sobjects/{path.target}/{parent['Id']}"}}  # fmt: skip
        nested[path.name] = render(parent.get(path.name))
        out[path.rel] = nested
    return out
