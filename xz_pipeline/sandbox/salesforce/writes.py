"""Record writes as the REST API checks them: create, update, delete and upsert by an external id field.

Checks, with Salesforce's error codes: a field the object lacks (INVALID_FIELD), a field the client may not
set (INVALID_FIELD_FOR_INSERT_UPDATE), a missing required field (REQUIRED_FIELD_MISSING), a value the
field's type cannot hold (JSON_PARSER_ERROR, which fails the whole request), a bad restricted picklist
value (INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST), a malformed or dangling reference (MALFORMED_ID,
INVALID_CROSS_REFERENCE_KEY), a taken unique value (DUPLICATE_VALUE), text over its length
(STRING_TOO_LONG), an email without @ (INVALID_EMAIL_ADDRESS). An upsert whose value matches several
records is 300 with their ids.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from xz_pipeline.sandbox.salesforce.ids import sobject_of, to18
from xz_pipeline.sandbox.salesforce.org import Org
from xz_pipeline.sandbox.salesforce.schema import NUMBER_TYPES, READ_ONLY, Field
from xz_pipeline.sandbox.salesforce.wire import SfError, parse_datetime


class ParseError(SfError):
    """A body the JSON deserializer rejects: the whole request fails, even inside a collection."""

    def __init__(self, message: str) -> None:
        super().__init__(400, "JSON_PARSER_ERROR", message)


def _type_error(f: Field, value: Any, kind: str) -> ParseError:
    token = {str: "VALUE_STRING", bool: "VALUE_TRUE" if value else "VALUE_FALSE", dict: "START_OBJECT",
             list: "START_ARRAY"}.get(type(value), "VALUE_NUMBER_INT")  # fmt: skip
    return ParseError(f"Cannot deserialize instance of {kind} from {token} value {value} or request may be "
                      f"missing a required field")  # fmt: skip


def coerce(org: Org, f: Field, value: Any) -> Any:
    if value is None:
        return None
    t = f.type
    if t in NUMBER_TYPES:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise _type_error(f, value, "double")
        try:
            out = Decimal(str(value))
        except InvalidOperation as exc:
            raise _type_error(f, value, "double") from exc
        return int(out) if t == "int" else out
    if t == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise _type_error(f, value, "boolean")
    if t == "date":
        try:
            return date.fromisoformat(str(value)[:10]) if isinstance(value, str) else _bad()
        except ValueError as exc:
            raise _type_error(f, value, "date") from exc
    if t == "datetime":
        try:
            return parse_datetime(value) if isinstance(value, str) else _bad()
        except ValueError as exc:
            raise _type_error(f, value, "datetime") from exc
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _type_error(f, value, "string")
    text = str(value)
    if t == "reference":
        full = to18(text)
        if not full:
            raise SfError(400, "MALFORMED_ID", f"{f.label}: id value of incorrect type: {text}", [f.name])
        target = f.reference_to[0]
        if sobject_of(full) != target or org.get(target, full) is None:
            raise SfError(
                400, "INVALID_CROSS_REFERENCE_KEY", f"{f.label}: invalid cross reference id", [f.name]
            )
        return full
    if t == "picklist" and f.restricted and text not in f.picklist:
        raise SfError(400, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                      f"{f.label}: bad value for restricted picklist field: {text}", [f.name])  # fmt: skip
    if t == "email" and text and "@" not in text:
        raise SfError(400, "INVALID_EMAIL_ADDRESS", f"{f.label}: invalid email address: {text}", [f.name])
    limit = 131_072 if t == "textarea" else f.length or 255
    if len(text) > limit:
        raise SfError(400, "STRING_TOO_LONG", f"{f.label}: data value too large: {text[:40]} (max length={limit})",
                      [f.name])  # fmt: skip
    return text or None


def _bad() -> Any:
    raise ValueError("not a string")


def check(org: Org, sobject: str, body: Any, *, creating: bool, allow_ext: str = "") -> dict:
    """The body's fields, checked and coerced (keys in the schema's spelling)."""
    if not isinstance(body, dict):
        raise ParseError("Cannot deserialize instance of sObject from a value that is not an object")
    if sobject in READ_ONLY:
        raise SfError(400, "INVALID_TYPE_FOR_OPERATION", f"entity type {sobject} does not support "
                      f"{'create' if creating else 'update'}")  # fmt: skip
    out: dict[str, Any] = {}
    for key, value in body.items():
        if key == "attributes" or (key == "Id" and not creating):
            continue
        f = org.schema.find(sobject, key)
        if f is None:
            raise SfError(400, "INVALID_FIELD", f"No such column '{key}' on sobject of type {sobject}")
        if not (f.createable if creating else f.updateable) and f.name != allow_ext:
            verb = "create" if creating else "update"
            raise SfError(400, "INVALID_FIELD_FOR_INSERT_UPDATE", f"Unable to {verb} fields: {f.name}. Please check "
                          "the security settings of this field and verify that it is read/write for your profile "
                          "or permission set.", [f.name])  # fmt: skip
        out[f.name] = coerce(org, f, value)
    fields = org.schema.fields(sobject)
    missing = [
        n for n, f in fields.items() if f.required and (out.get(n) is None if creating or n in out else False)
    ]
    if (
        sobject == "OpportunityLineItem"
        and creating
        and not out.get("PricebookEntryId")
        and not out.get("Product2Id")
    ):
        missing.append("PricebookEntryId")
    if missing:
        raise SfError(
            400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", missing
        )
    return out


def _unique(org: Org, sobject: str, values: dict, rid: str = "") -> None:
    for name, value in values.items():
        f = org.schema.fields(sobject)[name]
        if f.unique and value is not None:
            clash = [r for r in org.find_by(sobject, name, value) if r["Id"] != rid]
            if clash:
                raise SfError(400, "DUPLICATE_VALUE", f"duplicate value found: {name} duplicates value on record "
                              f"with id: {clash[0]['Id']}", [])  # fmt: skip


def create(org: Org, sobject: str, body: Any, now: datetime, user_id: str = "") -> dict:
    values = check(org, sobject, body, creating=True)
    _unique(org, sobject, values)
    if sobject == "OpportunityLineItem" and not values.get("PricebookEntryId"):
        values["PricebookEntryId"] = _standard_entry(org, values, now)
    return org.insert(sobject, values, now, user_id=user_id)


def _standard_entry(org: Org, values: dict, now: datetime) -> str:
    """A line given by Product2Id uses the product's entry in the standard price book (made if missing)."""
    book = next(r for r in org.records["Pricebook2"].values() if r["IsStandard"])
    product = values["Product2Id"]
    entry = next(
        (e for e in org.find_by("PricebookEntry", "Product2Id", product) if e["Pricebook2Id"] == book["Id"]),
        None,
    )
    if entry is None:
        entry = org.insert("PricebookEntry", {"Pricebook2Id": book["Id"], "Product2Id": product,
                                              "UnitPrice": values.get("UnitPrice") or Decimal("0")}, now)  # fmt: skip
    return entry["Id"]


def update(org: Org, sobject: str, rid: str, body: Any, now: datetime, user_id: str = "") -> dict:
    if org.get(sobject, rid) is None:
        raise SfError(404, "ENTITY_IS_DELETED" if org.get(sobject, rid, deleted=True) else "NOT_FOUND",
                      "entity is deleted" if org.get(sobject, rid, deleted=True) else
                      "The requested resource does not exist")  # fmt: skip
    values = check(org, sobject, body, creating=False)
    _unique(org, sobject, values, rid)
    return org.update(sobject, rid, values, now, user_id=user_id)


def delete(org: Org, sobject: str, rid: str, now: datetime) -> None:
    if sobject in READ_ONLY:
        raise SfError(400, "INVALID_TYPE_FOR_OPERATION", f"entity type {sobject} does not support delete")
    if org.get(sobject, rid) is None:
        deleted = org.get(sobject, rid, deleted=True) is not None
        raise SfError(404 if not deleted else 400, "ENTITY_IS_DELETED" if deleted else "NOT_FOUND",
                      "entity is deleted" if deleted else "The requested resource does not exist")  # fmt: skip
    org.delete(sobject, rid, now)


def external_field(org: Org, sobject: str, name: str) -> Field:
    f = org.schema.find(sobject, name)
    if f is None or not (f.external_id or f.name == "Id"):
        raise SfError(
            404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {name}"
        )
    return f


def upsert(
    org: Org, sobject: str, ext: str, value: str, body: Any, now: datetime, user_id: str = ""
) -> tuple[bool, dict]:
    """(created, record) for PATCH /sobjects/{type}/{ext}/{value}; several matches are SfError 300."""
    f = external_field(org, sobject, ext)
    if isinstance(body, dict) and f.name != "Id":
        given = next((v for k, v in body.items() if k.lower() == f.name.lower()), None)
        if given is not None and str(given) != value:
            raise SfError(400, "INVALID_FIELD", f"The value of the external ID field in the URL ({value}) doesn't "
                          f"match the value in the body ({given})", [f.name])  # fmt: skip
    if f.name == "Id":
        found = [r for r in (org.get(sobject, to18(value) or value),) if r is not None]
    else:
        found = [r for r in org.find_by(sobject, f.name, value)]
    if len(found) > 1:
        raise SfError(300, "MULTIPLE_CHOICES", f"Multiple records found for {f.name}={value}",
                      [r["Id"] for r in found])  # fmt: skip
    if found:
        body = (
            {k: v for k, v in body.items() if k.lower() != f.name.lower()} if isinstance(body, dict) else body
        )
        return False, update(org, sobject, found[0]["Id"], body, now, user_id)
    if f.name == "Id":
        raise SfError(404, "NOT_FOUND", "The requested resource does not exist")
    body = {**body, f.name: value} if isinstance(body, dict) else body
    return True, create(org, sobject, body, now, user_id)
