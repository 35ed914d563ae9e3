"""Several operations in one call: sObject Collections and the Composite resource.

Collections (`/composite/sobjects`): POST creates and PATCH updates up to 200 records (`records`, each with
`attributes.type`), DELETE removes `?ids=`, GET reads `?ids=&fields=` of one type, PATCH
`/composite/sobjects/{type}/{ExtField}` upserts. Results come in request order, one
`{id, success, errors: [{statusCode, message, fields}]}` each (upsert adds `created`). With
`allOrNone` false (the default) a bad record fails alone; with true, any failure rolls every record back
and the others report ALL_OR_NONE_OPERATION_ROLLED_BACK. A body the deserializer rejects fails the whole
call. The call counts once against the daily allocation.

Composite (`/composite`): up to 25 subrequests run in order, each `{method, url, referenceId, body}`;
`@{ref.field}` (and `@{ref.records[0].Id}`) in a later url or body is replaced by an earlier answer's value.
With `allOrNone` a failure rolls all back and the rest answer PROCESSING_HALTED; without it, a
subrequest that names a failed one's result is PROCESSING_HALTED.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from xz_pipeline.sandbox.salesforce import reads, writes
from xz_pipeline.sandbox.salesforce.ids import to18
from xz_pipeline.sandbox.salesforce.wire import SfError

ROLLED_BACK = {"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK", "message": "Record rolled back because not all "
               "records were valid and the request was using AllOrNone header", "fields": []}  # fmt: skip
_REF = re.compile(r"@\{([A-Za-z0-9_]+)((?:\.[A-Za-z0-9_]+|\[\d+\])*)\}")


def _records(call) -> tuple[list, bool]:
    body = call.body if isinstance(call.body, dict) else {}
    records = body.get("records")
    if not isinstance(records, list):
        raise SfError(400, "JSON_PARSER_ERROR", "records must be a list of sObjects")
    return records, bool(body.get("allOrNone", False))


def collections(call, now: datetime, cap: int) -> list[dict]:
    org, method, parts = call.org, call.method, call.parts
    if method == "GET" and len(parts) == 3:
        sobject = org.schema.sobject(parts[2])
        ids = [i for i in call.query.get("ids", "").split(",") if i]
        if not sobject or not ids:
            raise SfError(400, "MALFORMED_QUERY", "ids and an object type are required")
        out = []
        for rid in ids:
            try:
                out.append(reads.get_record(org, sobject, rid, call.query.get("fields", ""), call.base))
            except SfError:
                out.append(None)
        return out
    if method == "DELETE":
        ids = [i for i in call.query.get("ids", "").split(",") if i]
        all_or_none = call.query.get("allOrNone", "false").lower() == "true"
        items: list = ids
        if len(ids) > cap:
            raise _too_many(cap)
        return _each(org, items, all_or_none, lambda rid: _delete(org, rid, now), ids=ids)
    records, all_or_none = _records(call)
    if len(records) > cap:
        raise _too_many(cap)
    if method == "POST" and len(parts) == 2:
        return _each(org, records, all_or_none, lambda r: _create(org, r, now, call.user_id))
    if method == "PATCH" and len(parts) == 2:
        return _each(org, records, all_or_none, lambda r: _update(org, r, now, call.user_id),
                     ids=[r.get("id") or r.get("Id") if isinstance(r, dict) else None for r in records])  # fmt: skip
    if method == "PATCH" and len(parts) == 4:
        sobject = org.schema.sobject(parts[2])
        if not sobject:
            raise SfError(404, "NOT_FOUND", "The requested resource does not exist")
        writes.external_field(org, sobject, parts[3])
        return _each(
            org, records, all_or_none, lambda r: _upsert(org, sobject, parts[3], r, now, call.user_id)
        )
    raise SfError(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed here")


def _too_many(cap: int) -> SfError:
    return SfError(400, "EXCEEDED_ID_LIMIT", f"record limit reached. cannot submit more than {cap} records into "
                   "this call")  # fmt: skip


def _type_of(org, rec: Any) -> str:
    sobject = ((rec or {}).get("attributes") or {}).get("type", "") if isinstance(rec, dict) else ""
    found = org.schema.sobject(sobject) if sobject else ""
    if not found:
        raise SfError(400, "INVALID_TYPE", "Must specify a valid sObject type in attributes" if not sobject else
                      f"sObject type '{sobject}' is not supported.")  # fmt: skip
    return found


def _create(org, rec, now, user) -> dict:
    if isinstance(rec, dict) and (rec.get("id") or rec.get("Id")):
        raise SfError(400, "INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])
    made = writes.create(org, _type_of(org, rec), rec, now, user)
    return {"id": made["Id"], "success": True, "errors": []}


def _update(org, rec, now, user) -> dict:
    sobject = _type_of(org, rec)
    given = str(rec.get("id") or rec.get("Id") or "")
    if not given:
        raise SfError(400, "MISSING_ARGUMENT", "Id not specified in an update call", ["Id"])
    rid = to18(given)
    if not rid:
        raise SfError(400, "MALFORMED_ID", f"{sobject} ID: id value of incorrect type: {given}", ["Id"])
    body = {k: v for k, v in rec.items() if k not in ("id", "Id")}
    writes.update(org, sobject, rid, body, now, user)
    return {"id": rid, "success": True, "errors": []}


def _upsert(org, sobject, ext, rec, now, user) -> dict:
    if not isinstance(rec, dict):
        raise writes.ParseError("Cannot deserialize instance of sObject from a value that is not an object")
    value = next((v for k, v in rec.items() if k.lower() == ext.lower()), None)
    if value is None:
        raise SfError(400, "MISSING_ARGUMENT", f"{ext} not specified", [ext])
    created, made = writes.upsert(org, sobject, ext, str(value), rec, now, user)
    return {"id": made["Id"], "success": True, "errors": [], "created": created}


def _delete(org, rid, now) -> dict:
    full = to18(rid)
    if not full:
        raise SfError(400, "MALFORMED_ID", f"malformed id {rid}")
    found = org.locate(full)
    if found is None:
        raise SfError(404, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
    writes.delete(org, found[0], full, now)
    return {"id": full, "success": True, "errors": []}


def _each(org, items: list, all_or_none: bool, op, ids: list | None = None) -> list[dict]:
    mark = len(org.journal)
    out: list[dict] = []
    failed = False
    for i, item in enumerate(items):
        inner = len(org.journal)
        try:
            out.append(op(item))
        except writes.ParseError:
            raise
        except SfError as err:
            org.rollback(inner)
            failed = True
            result: dict[str, Any] = {"success": False, "errors": [err.record_error()]}
            if ids is not None and ids[i]:
                result = {"id": ids[i], **result}
            out.append(result)
    if all_or_none and failed:
        org.rollback(mark)
        out = [
            r if not r["success"] else {"id": r["id"], "success": False, "errors": [ROLLED_BACK]} for r in out
        ]
    return out


# ---- /composite ---------------------------------------------------------------------------------


def _resolve(text: str, answers: dict[str, Any], failed: set[str]) -> str:
    def sub(m: re.Match) -> str:
        ref, path = m.group(1), m.group(2)
        if ref in failed or ref not in answers:
            raise _Halted(ref, path)
        value: Any = answers[ref]
        for step in re.findall(r"\.([A-Za-z0-9_]+)|\[(\d+)\]", path):
            try:
                value = value[step[0]] if step[0] else value[int(step[1])]
            except (KeyError, IndexError, TypeError):
                raise _Halted(ref, path) from None
        return str(value)

    return _REF.sub(sub, text)


class _Halted(Exception):
    def __init__(self, ref: str, path: str) -> None:
        super().__init__(ref)
        self.ref, self.path = ref, path


def composite(emulator, call) -> dict:
    body = call.body if isinstance(call.body, dict) else {}
    subs = body.get("compositeRequest")
    if not isinstance(subs, list) or not subs:
        raise SfError(400, "JSON_PARSER_ERROR", "compositeRequest must be a non-empty list")
    if len(subs) > emulator.limits.composite_subrequests:
        raise SfError(400, "LIMIT_EXCEEDED", f"Composite request limit exceeded: at most "
                      f"{emulator.limits.composite_subrequests} subrequests")  # fmt: skip
    all_or_none = bool(body.get("allOrNone", False))
    org = call.org
    mark = len(org.journal)
    answers: dict[str, Any] = {}
    failed: set[str] = set()
    out: list[dict] = []
    halted_all = False
    for sub in subs:
        ref = str(sub.get("referenceId", ""))
        if halted_all:
            out.append(_halted_answer(ref, "The transaction was rolled back since another operation in the same "
                                      "transaction failed."))  # fmt: skip
            continue
        try:
            url = _resolve(str(sub.get("url", "")), answers, failed)
            sub_body = sub.get("body")
            if sub_body is not None:
                sub_body = json.loads(_resolve(json.dumps(sub_body), answers, failed))
        except _Halted as h:
            failed.add(ref)
            out.append(_halted_answer(ref, f"Invalid reference specified. No value for {h.ref}{h.path} found in "
                                      f"{h.ref}. Provided referenceId ({h.ref}) was not found in the request."))  # fmt: skip
            continue
        status, payload, headers = _dispatch(
            emulator, call, str(sub.get("method", "GET")).upper(), url, sub_body
        )
        out.append({"body": payload, "httpHeaders": headers, "httpStatusCode": status, "referenceId": ref})
        if status >= 300:
            failed.add(ref)
            if all_or_none:
                halted_all = True
        else:
            answers[ref] = payload
    if halted_all:
        org.rollback(mark)
        for entry in out:
            if entry["httpStatusCode"] < 300:
                entry.update(_halted_answer(entry["referenceId"], "The transaction was rolled back since another "
                                            "operation in the same transaction failed."))  # fmt: skip
    return {"compositeResponse": out}


def _halted_answer(ref: str, message: str) -> dict:
    return {"body": [{"errorCode": "PROCESSING_HALTED", "message": message}], "httpHeaders": {},
            "httpStatusCode": 400, "referenceId": ref}  # fmt: skip


def _dispatch(emulator, call, method: str, url: str, body: Any) -> tuple[int, Any, dict]:
    split = urlsplit(url)
    m = re.match(r"^/services/data/v(\d+\.\d+)/(.*)$", split.path)
    if m is None:
        err = SfError(400, "INVALID_URL", f"the url must start with /services/data/vXX.X: {url}")
        return err.status, err.body(), {}
    sub = type(call)(call.org, call.user_id, method, m.group(1), [unquote(p) for p in m.group(2).split("/") if p],
                     dict(parse_qsl(split.query, keep_blank_values=True)), call.headers, body)  # fmt: skip
    if sub.parts[:1] == ["composite"] and len(sub.parts) == 1:
        err = SfError(400, "INVALID_URL", "a composite request cannot hold another composite request")
        return err.status, err.body(), {}
    inner = len(call.org.journal)
    try:
        return emulator.route(sub)
    except SfError as err:
        call.org.rollback(inner)
        return err.status, err.body(), {}
