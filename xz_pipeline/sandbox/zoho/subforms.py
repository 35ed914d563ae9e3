"""A subform as COQL sees it: a module of its own (`Invoiced_Items`), one row per line of every parent record,
each with `Parent_Id` (a lookup to the parent) beside the line's fields.

Zoho's COQL overview (https://www.zoho.com/crm/developer/docs/api/COQL-Overview.html, FROM clause): "To
retrieve records from a Subform, specify the Subform module's API name"; the Subform API pages
(https://www.zoho.com/crm/developer/docs/api/v8/subforms.html, v7 sample response) show each subform row
carrying `Parent_Id: {name, id}`. So `select Quantity, Parent_Id from Invoiced_Items where Parent_Id in (...)` reads
the lines of up to 50 invoices in one call, under the query's usual limits (`in` <= 50 values, LIMIT <= 2000)
and scopes (`ZohoCRM.coql.READ` and READ on the parent module). Lookups come back as `{"id"}` as in any
COQL row; a dot field (`Product_Name.Product_Name`) joins to the product. Whether real Zoho serves the line's
`Line_Tax` list in COQL is not documented; the emulator does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from xz_pipeline.sandbox.zoho.meta import INVOICED_ITEMS, FieldDef, ModuleDef
from xz_pipeline.sandbox.zoho.records import OrgState

PARENT_ID = "Parent_Id"


@dataclass
class SubformTable:
    """The lines of one subform field (`field`) of `parent` in `org`, queryable as a module."""

    org: OrgState
    parent: str
    field: FieldDef
    module: ModuleDef

    def rows(self) -> list[dict]:
        out = []
        for rec in self.org.records[self.parent].values():
            ref = {"id": rec["id"], "name": self.org.name_of(self.parent, rec)}
            out += [{**line, PARENT_ID: ref} for line in rec.get(self.field.api_name) or []]
        return sorted(out, key=lambda r: int(r["id"]))

    def value(self, row: dict, path: str) -> Any:
        head, _, rest = path.partition(".")
        if head.lower() == "id":
            return row["id"]
        f = self.module.field_ci(head)
        if f is None:
            return None
        v = row.get(f.api_name)
        if f.data_type != "lookup":
            return None if rest else v
        if not isinstance(v, dict):
            return None
        target = self.org.records.get(f.lookup, {}).get(str(v.get("id")))
        if not rest:
            return {"id": target["id"], "name": self.org.name_of(f.lookup, target)} if target else dict(v)
        return self.org.value(f.lookup, target, rest) if target is not None else None

    def type_of(self, path: str) -> str | None:
        head, _, rest = path.partition(".")
        if head.lower() == "id":
            return "bigint"
        f = self.module.field_ci(head)
        if f is None:
            return None
        if not rest:
            return f.data_type
        if f.data_type != "lookup" or f.lookup not in self.org.modules:
            return None
        return self.org.type_of(f.lookup, rest)


def subform_table(org: OrgState, name: str) -> SubformTable | None:
    """The subform module called `name` (without case, as module names in queries), if the org has it."""
    low = name.lower()
    for parent, mdef in org.modules.items():
        for f in mdef.fields:
            if f.data_type == "subform" and f.subform and f.subform.lower() == low:
                fields = [*INVOICED_ITEMS, FieldDef(PARENT_ID, "Parent Id", "lookup", lookup=parent)]
                module = ModuleDef(f.subform, f.label, f.label, f.id, "", fields)
                return SubformTable(org, parent, f, module)
    return None
