"""The Tooling API's CustomField: how `xz setup salesforce` gives an org the integration's fields.

`POST /services/data/vXX.X/tooling/sobjects/CustomField` with `{"FullName": "Account.Xero_Contact_ID__c",
"Metadata": {"label", "type", "length", "precision", "scale", "externalId", "unique", "valueSet"}}` answers
201 `{"id": "00N...", "success": true, "errors": [], "warnings": [], "infos": []}`; the field then shows in
describe and SOQL at once. A name the object already has is DUPLICATE_DEVELOPER_NAME; a custom field
name must end in `__c`. `tooling/query` answers `SELECT ... FROM CustomField [WHERE TableEnumOrId = 'X']`.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from xz_pipeline.sandbox.salesforce.org import Org
from xz_pipeline.sandbox.salesforce.schema import Field
from xz_pipeline.sandbox.salesforce.wire import SfError

# Metadata API field types -> describe types
TYPES = {"Text": "string", "TextArea": "textarea", "LongTextArea": "textarea", "Number": "double",
         "Currency": "currency", "Percent": "percent", "Date": "date", "DateTime": "datetime",
         "Checkbox": "boolean", "Picklist": "picklist", "Email": "email", "Phone": "phone", "Url": "url"}  # fmt: skip
_NAME = re.compile(r"^([A-Za-z][A-Za-z0-9]*)\.([A-Za-z][A-Za-z0-9_]*__c)$")


def create_custom_field(org: Org, body: Any, now: datetime) -> dict:
    if not isinstance(body, dict) or not isinstance(body.get("Metadata"), dict):
        raise SfError(400, "JSON_PARSER_ERROR", "FullName and Metadata are required")
    m = _NAME.match(str(body.get("FullName", "")))
    if m is None:
        raise SfError(400, "INVALID_FIELD", f"Invalid FullName: {body.get('FullName')!r} (Object.Field__c)")
    sobject = org.schema.sobject(m.group(1))
    if not sobject:
        raise SfError(400, "INVALID_TYPE", f"Cannot find entity: {m.group(1)}")
    name, meta = m.group(2), body["Metadata"]
    if org.schema.find(sobject, name) is not None:
        raise SfError(
            400, "DUPLICATE_DEVELOPER_NAME", f"There is already a field named {name[:-3]} on {sobject}."
        )
    type_ = TYPES.get(str(meta.get("type", "")))
    if type_ is None:
        raise SfError(400, "FIELD_INTEGRITY_EXCEPTION", f"Unsupported field type: {meta.get('type')!r}")
    values = ()
    if type_ == "picklist":
        defs = ((meta.get("valueSet") or {}).get("valueSetDefinition") or {}).get("value") or []
        values = tuple(str(v.get("fullName") or v.get("label")) for v in defs if isinstance(v, dict))
        if not values:
            raise SfError(400, "FIELD_INTEGRITY_EXCEPTION", "Picklist must have at least one value")
    org.schema.add_field(sobject, Field(name, type_, str(meta.get("label") or name[:-3]), custom=True,
                                        external_id=bool(meta.get("externalId")), unique=bool(meta.get("unique")),
                                        picklist=values, length=int(meta.get("length") or 0)))  # fmt: skip
    for rec in org.records[sobject].values():
        rec.setdefault(name, False if type_ == "boolean" else None)
    org.version += 1
    fid = org.mint.next("CustomField")
    org.custom_fields[fid] = (sobject, name, now)
    return {"id": fid, "success": True, "errors": [], "warnings": [], "infos": []}


def tooling_query(org: Org, text: str, base: str) -> dict:
    """The CustomField rows the org holds (DeveloperName without __c, TableEnumOrId the object)."""
    m = re.match(r"(?is)^\s*select\s+(.+?)\s+from\s+customfield(?:\s+where\s+tableenumorid\s*=\s*'([^']*)')?\s*$",
                 text or "")  # fmt: skip
    if m is None:
        raise SfError(
            400, "MALFORMED_QUERY", "only SELECT ... FROM CustomField [WHERE TableEnumOrId = '...'] here"
        )
    rows = [{"attributes": {"type": "CustomField", "url": f"{base}/tooling/sobjects/CustomField/{fid}"},
             "Id": fid, "DeveloperName": name[:-3], "TableEnumOrId": sobject}
            for fid, (sobject, name, _when) in org.custom_fields.items()
            if m.group(2) is None or m.group(2).lower() == sobject.lower()]  # fmt: skip
    return {"size": len(rows), "totalSize": len(rows), "done": True, "entityTypeName": "CustomField",
            "records": rows}  # fmt: skip
