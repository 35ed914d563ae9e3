"""One emulated Zoho CRM org: its users, modules, records, deleted records and tags, and how writes change them.

Records are kept in their wire shape (lookups as `{"id", "name"}`, numbers, `yyyy-MM-dd` dates) except the
system times, which are kept as aware datetimes and rendered in the org's offset with seconds precision
(zoho-api.md §3). Every write goes through per-record validation (mandatory, type, length, picklist,
unique, lookup targets) and answers in Zoho's per-record result shape, in input order (§5).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from xz_pipeline.sandbox.profiles import Profile, get_profile
from xz_pipeline.sandbox.zoho.meta import (
    INVOICED_ITEMS,
    RELATED_LISTS,
    SE_MODULE,
    STANDARD_PIPELINE,
    WHAT_MODULES,
    FieldDef,
    ModuleDef,
    copy_modules,
    profile_modules,
    stage_probabilities,
    standard_modules,
)

NAME_FIELD = {
    "Accounts": "Account_Name",
    "Contacts": "Full_Name",
    "Deals": "Deal_Name",
    "Products": "Product_Name",
    "Invoices": "Subject",
    "Tasks": "Subject",
}
SYSTEM_TIMES = ("Created_Time", "Modified_Time")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_BASE_MODULES = standard_modules()


def seconds(dt: datetime) -> datetime:
    return dt.astimezone(UTC).replace(microsecond=0)


def parse_datetime(value: Any) -> datetime | None:
    """An ISO 8601 DateTime with an offset ('Z' accepted), or None."""
    if isinstance(value, datetime):
        return value if value.tzinfo else None
    if not isinstance(value, str):
        return None
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else None


class RecordError(Exception):
    """One record's failure: code, message and details as Zoho reports them."""

    def __init__(self, code: str, message: str, details: dict) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details

    def item(self) -> dict:
        return {"code": self.code, "details": self.details, "message": self.message, "status": "error"}


@dataclass
class Change:
    """What one successful write did, for notifications and workflow runs."""

    operation: str  # insert | update | delete
    id: str
    fields: list[str] = field(default_factory=list)
    values: dict = field(default_factory=dict)


@dataclass
class OrgState:
    org_id: str
    company_name: str
    timezone: str
    currency: str
    edition: str
    created: datetime
    ids: Any  # callable -> a fresh 19-digit id string
    users: list[dict] = field(default_factory=list)
    modules: dict[str, ModuleDef] = field(default_factory=dict)
    records: dict[str, dict[str, dict]] = field(default_factory=dict)
    deleted: dict[str, list[dict]] = field(default_factory=dict)
    tags: dict[str, dict[str, dict]] = field(default_factory=dict)
    invoice_seq: int = 0
    # (parent module, parent id, related list) -> [{"id": related record id, relation fields...}]
    relations: dict[tuple[str, str, str], list[dict]] = field(default_factory=dict)
    profile: Profile = field(default_factory=lambda: get_profile(None))

    def __post_init__(self) -> None:
        if not self.modules:
            if self.profile.name == "full":
                self.modules = {m.api_name: m for m in copy_modules(_BASE_MODULES)}
            else:
                self.modules = {m.api_name: m for m in profile_modules(self.profile)}
        self.stage_probability = stage_probabilities(self.modules.get("Deals"))
        for name in self.modules:
            self.records.setdefault(name, {})
            self.deleted.setdefault(name, [])
            self.tags.setdefault(name, {})
        self.zone = ZoneInfo(self.timezone)

    # -- users -------------------------------------------------------------------------------

    def user(self, user_id: str) -> dict | None:
        return next((u for u in self.users if u["id"] == user_id), None)

    def add_user(self, user_id: str, name: str, email: str) -> dict:
        existing = self.user(user_id)
        if existing is not None:
            return existing
        u = {"id": user_id, "name": name, "email": email}
        self.users.append(u)
        return u

    @property
    def api_user(self) -> dict:
        return self.users[0]

    # -- rendering ---------------------------------------------------------------------------

    def fmt(self, dt: datetime) -> str:
        return dt.astimezone(self.zone).isoformat(timespec="seconds")

    def module(self, name: str) -> ModuleDef | None:
        return self.modules.get(name)

    def find_module(self, name: str) -> ModuleDef | None:
        """Module names in the URL are matched without case, as Zoho does."""
        low = name.lower()
        return next((m for m in self.modules.values() if m.api_name.lower() == low), None)

    def name_of(self, module: str, rec: dict) -> str:
        if module == "Contacts":
            return " ".join(p for p in (rec.get("First_Name"), rec.get("Last_Name")) if p)
        return str(rec.get(NAME_FIELD.get(module, "Name")) or "")

    def _lookup_out(self, f: FieldDef, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        target = self.records.get(f.lookup, {}).get(str(value.get("id")))
        if target is not None:
            return {"id": target["id"], "name": self.name_of(f.lookup, target)}
        return dict(value)

    def render(self, module: str, rec: dict, fields: list[str] | None = None, subforms: bool = True) -> dict:
        """A record as the API returns it: every field (or the asked ones), times in the org's offset."""
        mdef = self.modules[module]
        out: dict = {"id": rec["id"]}
        wanted = None if fields is None else set(fields)
        for f in mdef.fields:
            if wanted is not None and f.api_name not in wanted:
                continue
            if f.data_type == "subform" and not subforms:
                continue
            if f.api_name in SYSTEM_TIMES:
                out[f.api_name] = self.fmt(rec["_" + f.api_name])
                continue
            if f.api_name == "Full_Name" and module == "Contacts":
                out[f.api_name] = self.name_of(module, rec) or None
                continue
            value = rec.get(f.api_name)
            if f.data_type == "tag":
                value = _copy(value or [])
            elif f.data_type == "datetime" and isinstance(value, datetime):
                value = self.fmt(value)
            elif f.data_type == "lookup":
                value = self._lookup_out(f, value)
            elif f.data_type == "subform" and isinstance(value, list):
                value = [self._line_out(line) for line in value]
            elif isinstance(value, (dict, list)):
                value = _copy(value)
            out[f.api_name] = value
        if SE_MODULE in rec and (wanted is None or "What_Id" in wanted):
            out[SE_MODULE] = rec[SE_MODULE]
        return out

    def _line_out(self, line: dict) -> dict:
        out = _copy(line)
        pf = INVOICED_ITEMS[0]
        if isinstance(out.get("Product_Name"), dict):
            out["Product_Name"] = self._lookup_out(pf, out["Product_Name"])
        return out

    def value(self, module: str, rec: dict, path: str) -> Any:
        """The value of `path` (dot fields follow lookups) for queries; system times as datetimes."""
        mdef = self.modules[module]
        head, _, rest = path.partition(".")
        f = mdef.field_ci(head)
        if head.lower() == "id":
            return rec["id"]
        if f is None:
            return None
        if f.api_name in SYSTEM_TIMES:
            return rec["_" + f.api_name]
        if f.api_name == "Full_Name" and module == "Contacts":
            return self.name_of(module, rec)
        v = rec.get(f.api_name)
        if not rest:
            return self._lookup_out(f, v) if f.data_type == "lookup" else v
        if f.data_type in ("ownerlookup",) and isinstance(v, dict):
            return v.get(rest) if rest in ("id", "name", "email") else None
        if f.data_type != "lookup" or not isinstance(v, dict):
            return None
        target = self.records.get(f.lookup, {}).get(str(v.get("id")))
        if target is None:
            return None
        return self.value(f.lookup, target, rest)

    def type_of(self, module: str, path: str) -> str | None:
        mdef = self.modules[module]
        head, _, rest = path.partition(".")
        if head.lower() == "id":
            return "bigint"
        f = mdef.field_ci(head)
        if f is None:
            return None
        if not rest:
            return f.data_type
        if f.data_type == "ownerlookup":
            return "text"
        if f.data_type != "lookup" or f.lookup not in self.modules:
            return None
        return self.type_of(f.lookup, rest)

    def path_exists(self, module: str, path: str) -> bool:
        return self.type_of(module, path) is not None

    # -- loading -----------------------------------------------------------------------------

    def load(self, module: str, item: dict, now: datetime) -> dict:
        """Store an API-shaped record as given (no validation): fixtures and the generated world."""
        mdef = self.modules[module]
        rid = str(item.get("id") or self.ids())
        rec: dict = {"id": rid}
        for f in mdef.fields:
            if f.api_name not in item or f.api_name == "Full_Name":
                continue
            v = item[f.api_name]
            if f.api_name in SYSTEM_TIMES or f.data_type == "datetime":
                v = parse_datetime(v) if v is not None else None
            if f.api_name in SYSTEM_TIMES:
                continue
            if f.data_type == "ownerlookup" and isinstance(v, dict) and v.get("id"):
                v = self.add_user(str(v["id"]), v.get("name") or "", v.get("email") or "")
                v = dict(v)
            rec[f.api_name] = _copy(v)
        created = parse_datetime(item.get("Created_Time")) or now
        rec["_Created_Time"] = seconds(created)
        rec["_Modified_Time"] = seconds(parse_datetime(item.get("Modified_Time")) or created)
        rec.setdefault("Owner", dict(self.api_user))
        creator = rec["Owner"] if isinstance(rec["Owner"], dict) else self.api_user  # Owner may be null
        rec.setdefault("Created_By", dict(creator))
        rec.setdefault("Modified_By", dict(creator))
        if module == "Deals":
            rec.setdefault("Pipeline", STANDARD_PIPELINE)
        if module == "Invoices" and isinstance(rec.get("Invoiced_Items"), list):
            for line in rec["Invoiced_Items"]:
                line.setdefault("id", self.ids())
        for tag in rec.get("Tag") or []:
            self.ensure_tag(module, tag.get("name", ""), now, tag.get("id"))
        if "Tag" in rec:
            rec["Tag"] = [self.tag_ref(module, t.get("name", "")) for t in rec["Tag"]]
        self.records[module][rid] = rec
        return rec

    # -- related lists -------------------------------------------------------------------------

    def related_list(self, module: str, name: str) -> tuple[str | None, tuple[str, ...]]:
        """(target module, relation fields) of a related list this org has, or (None, ())."""
        if module == "Deals" and name == "Products" and not self.profile.deal_products:
            return None, ()
        return RELATED_LISTS.get(module, {}).get(name, (None, ()))

    def relate(self, module: str, rid: str, related_list: str, rows: list[dict]) -> None:
        """Set a record's related list (each row: the related record's id and the relation's fields)."""
        target, rel_fields = self.related_list(module, related_list)
        if target is None:
            raise KeyError(f"this org has no {module}.{related_list} related list")
        if rid not in self.records[module]:
            raise KeyError(f"no {module} record {rid}")
        if len({str(r["id"]) for r in rows}) != len(rows):
            raise KeyError(f"a record is related once: {module}.{related_list} lists one twice")
        for row in rows:
            if str(row["id"]) not in self.records[target]:
                raise KeyError(f"no {target} record {row['id']}")
            unknown = set(row) - {"id", *rel_fields}
            if unknown:
                raise KeyError(f"{module}.{related_list} has no relation field(s) {sorted(unknown)}")
        self.relations[(module, rid, related_list)] = [_copy(r) for r in rows]

    # -- tags --------------------------------------------------------------------------------

    def ensure_tag(self, module: str, name: str, now: datetime, tag_id: str | None = None) -> dict:
        for t in self.tags[module].values():
            if t["name"].lower() == name.lower():
                return t
        tid = str(tag_id or self.ids())
        user = {"id": self.api_user["id"], "name": self.api_user["name"]}
        tag = {
            "id": tid,
            "name": name,
            "color_code": "#57B1FD",
            "created_time": now,
            "modified_time": now,
            "created_by": user,
            "modified_by": user,
        }
        self.tags[module][tid] = tag
        return tag

    def tag_ref(self, module: str, name: str) -> dict:
        t = next(t for t in self.tags[module].values() if t["name"].lower() == name.lower())
        return {"name": t["name"], "id": t["id"], "color_code": t["color_code"]}

    def tag_json(self, tag: dict) -> dict:
        return {
            **tag,
            "created_time": self.fmt(tag["created_time"]),
            "modified_time": self.fmt(tag["modified_time"]),
        }

    # -- writes ------------------------------------------------------------------------------

    def find_by(self, module: str, api_name: str, value: Any, exclude: str = "") -> dict | None:
        """A record whose field equals value (text without case), for unique and duplicate checks."""
        if value is None or value == "":
            return None
        key = str(value).strip().lower() if isinstance(value, str) else value
        for rec in self.records[module].values():
            if rec["id"] == exclude:
                continue
            v = rec.get(api_name)
            if isinstance(v, str):
                v = v.strip().lower()
            if v == key:
                return rec
        return None

    def validate(self, module: str, item: dict, index: int, existing: dict | None) -> dict:
        """The changes a record asks for, checked field by field; raises RecordError on the first failure."""
        mdef = self.modules[module]
        changes: dict = {}
        for f in mdef.fields:
            path = f"$.data[{index}].{f.api_name}"
            present = f.api_name in item
            if f.read_only or f.api_name in ("Created_By", "Modified_By"):
                continue
            if not present:
                if existing is None and f.mandatory and not _has_default(module, f):
                    raise RecordError(
                        "MANDATORY_NOT_FOUND",
                        "required field not found",
                        {"api_name": f.api_name, "json_path": path},
                    )
                continue
            raw = item[f.api_name]
            if f.lookup == SE_MODULE and raw not in (None, ""):
                f = self._related_to(item, f, index)
                changes[SE_MODULE] = f.lookup
            if raw is None or raw == "" or raw == []:
                if f.mandatory:
                    raise RecordError(
                        "MANDATORY_NOT_FOUND",
                        "required field not found",
                        {"api_name": f.api_name, "json_path": path},
                    )
                changes[f.api_name] = None
                continue
            changes[f.api_name] = self._coerce(module, f, raw, path)
        for f in mdef.fields:
            if f.unique and changes.get(f.api_name) not in (None, ""):
                dup = self.find_by(
                    module, f.api_name, changes[f.api_name], exclude=(existing or {}).get("id", "")
                )
                if dup is not None:
                    raise RecordError(
                        "DUPLICATE_DATA",
                        "duplicate data",
                        {
                            "api_name": f.api_name,
                            "json_path": f"$.data[{index}].{f.api_name}",
                            "id": dup["id"],
                            "more_records": False,
                            "duplicate_record": {
                                "id": dup["id"],
                                "Owner": {k: dup["Owner"].get(k) for k in ("name", "id")}
                                | {"zuid": dup["Owner"].get("id")},
                                "module": {"api_name": module, "id": mdef.id},
                            },
                        },
                    )
        return changes

    def _related_to(self, item: dict, f: FieldDef, index: int) -> FieldDef:
        """A task's What_Id points into the module its `$se_module` names; without one it is refused."""
        module = item.get(SE_MODULE)
        if not module:
            raise RecordError("DEPENDENT_FIELD_MISSING", "dependent field missing",
                              {"api_name": SE_MODULE, "json_path": f"$.data[{index}].{SE_MODULE}",
                               "dependee": {"api_name": f.api_name}})  # fmt: skip
        if module not in WHAT_MODULES or module not in self.modules:
            raise RecordError("INVALID_DATA", "invalid data",
                              {"api_name": SE_MODULE, "json_path": f"$.data[{index}].{SE_MODULE}"})  # fmt: skip
        return replace(f, lookup=module)

    def _invalid(self, f: FieldDef, path: str, **extra) -> RecordError:
        return RecordError(
            "INVALID_DATA", "invalid data", {**extra, "api_name": f.api_name, "json_path": path}
        )

    def _coerce(self, module: str, f: FieldDef, raw: Any, path: str) -> Any:
        dt = f.data_type
        if dt in ("text", "textarea", "email", "phone", "website", "picklist", "bigint"):
            if dt == "bigint" and isinstance(raw, int) and not isinstance(raw, bool):
                raw = str(raw)
            if not isinstance(raw, str):
                raise self._invalid(f, path, expected_data_type=dt)
            limit = f.max_length
            if limit is not None and len(raw) > limit:
                raise self._invalid(f, path, maximum_length=str(limit))
            if dt == "email" and not EMAIL_RE.match(raw):
                raise self._invalid(f, path, expected_data_type="email")
            if dt == "bigint" and not raw.isdigit():
                raise self._invalid(f, path, expected_data_type="bigint")
            if dt == "picklist" and f.picklist:
                if raw not in f.picklist:
                    raise self._invalid(f, path, supported_values=list(f.picklist))
                if raw == "-None-":
                    return None
            return raw
        if dt == "integer":
            if isinstance(raw, bool) or not isinstance(raw, int):
                raise self._invalid(f, path, expected_data_type="integer")
            if len(str(abs(raw))) > (f.max_length or 9):
                raise self._invalid(f, path, maximum_length=str(f.max_length or 9))
            return raw
        if dt in ("double", "currency", "decimal", "percent"):
            if isinstance(raw, bool) or not isinstance(raw, (int, float)):
                raise self._invalid(f, path, expected_data_type=dt)
            if len(str(int(abs(raw)))) > 16:
                raise self._invalid(f, path, maximum_length="16")
            return round(float(raw), 9)
        if dt == "boolean":
            if not isinstance(raw, bool):
                raise self._invalid(f, path, expected_data_type="boolean")
            return raw
        if dt == "date":
            if not isinstance(raw, str) or not DATE_RE.match(raw):
                raise self._invalid(f, path, expected_data_type="date")
            try:
                date.fromisoformat(raw)
            except ValueError:
                raise self._invalid(f, path, expected_data_type="date") from None
            return raw
        if dt == "datetime":
            parsed = parse_datetime(raw)
            if parsed is None:
                raise self._invalid(f, path, expected_data_type="datetime")
            return seconds(parsed)
        if dt == "multiselectpicklist":
            if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
                raise self._invalid(f, path, expected_data_type="jsonarray")
            return list(raw)
        if dt in ("lookup", "ownerlookup"):
            rid = raw.get("id") if isinstance(raw, dict) else raw
            if not isinstance(rid, (str, int)) or isinstance(rid, bool) or str(rid) == "":
                raise self._invalid(f, path, expected_data_type="jsonobject")
            rid = str(rid)
            if dt == "ownerlookup":
                u = self.user(rid)
                if u is None:
                    raise self._invalid(f, path)
                return dict(u)
            target = self.records.get(f.lookup, {}).get(rid)
            if target is None:
                raise self._invalid(f, path)
            return {"id": rid, "name": self.name_of(f.lookup, target)}
        if dt == "subform":
            return self._lines(raw, path)
        return raw

    def _lines(self, raw: Any, path: str) -> list[dict]:
        if not isinstance(raw, list):
            raise RecordError(
                "INVALID_DATA",
                "invalid data",
                {"api_name": "Invoiced_Items", "json_path": path, "expected_data_type": "jsonarray"},
            )
        lines = []
        for j, item in enumerate(raw):
            if not isinstance(item, dict):
                raise RecordError(
                    "INVALID_DATA",
                    "invalid data",
                    {"api_name": "Invoiced_Items", "json_path": f"{path}[{j}]"},
                )
            item = _capitalise_line(item)
            line: dict = {"id": str(item.get("id") or self.ids())}
            for f in INVOICED_ITEMS:
                lpath = f"{path}[{j}].{f.api_name}"
                if f.read_only or f.api_name == "Line_Tax":
                    continue
                if f.api_name not in item or item[f.api_name] in (None, ""):
                    if f.mandatory:
                        raise RecordError(
                            "MANDATORY_NOT_FOUND",
                            "required field not found",
                            {"api_name": f.api_name, "json_path": lpath},
                        )
                    continue
                line[f.api_name] = self._coerce("Invoices", f, item[f.api_name], lpath)
            if isinstance(item.get("Line_Tax"), list):
                line["Line_Tax"] = _copy(item["Line_Tax"])
            lines.append(line)
        return lines

    def derive(self, module: str, rec: dict, changed: dict) -> None:
        """Fields Zoho computes: deal probability and expected revenue, invoice totals and numbers."""
        if module == "Deals":
            stage = rec.get("Stage")
            if "Stage" in changed and "Probability" not in changed and stage in self.stage_probability:
                rec["Probability"] = self.stage_probability[stage]
            if rec.get("Amount") is not None and rec.get("Probability") is not None:
                rec["Expected_Revenue"] = round(rec["Amount"] * rec["Probability"] / 100, 2)
        if module == "Invoices":
            if not rec.get("Invoice_Number"):
                self.invoice_seq += 1
                rec["Invoice_Number"] = str(self.invoice_seq)
            if "Invoiced_Items" in changed or "Discount" in changed or "Adjustment" in changed:
                sub = tax = 0.0
                for line in rec.get("Invoiced_Items") or []:
                    total = round(float(line.get("Quantity") or 0) * float(line.get("List_Price") or 0), 2)
                    line_tax = float(line.get("Tax") or 0)
                    if not line.get("Tax") and isinstance(line.get("Line_Tax"), list):
                        pct = sum(float(t.get("percentage") or 0) for t in line["Line_Tax"])
                        line_tax = round((total - float(line.get("Discount") or 0)) * pct / 100, 2)
                        line["Tax"] = line_tax
                    line["Total"] = total
                    line["Net_Total"] = round(total - float(line.get("Discount") or 0) + line_tax, 2)
                    sub += total - float(line.get("Discount") or 0)
                    tax += line_tax
                rec["Sub_Total"] = round(sub, 2)
                rec["Tax"] = round(tax, 2)
                rec["Grand_Total"] = round(
                    sub - float(rec.get("Discount") or 0) + tax + float(rec.get("Adjustment") or 0), 2
                )

    def insert(self, module: str, changes: dict, user: dict, now: datetime) -> tuple[dict, Change]:
        rid = self.ids()
        rec: dict = {"id": rid, "_Created_Time": seconds(now), "_Modified_Time": seconds(now)}
        rec["Owner"] = dict(user)
        rec.update(changes)
        if rec.get("Owner") is None:
            rec["Owner"] = dict(user)
        if module == "Deals":
            rec.setdefault("Pipeline", STANDARD_PIPELINE)
        if module == "Tasks":
            rec.setdefault("Status", "Not Started")
        rec["Created_By"] = dict(user)
        rec["Modified_By"] = dict(user)
        self.derive(module, rec, changes)
        self.records[module][rid] = rec
        return rec, Change("insert", rid, sorted(changes), _plain(changes))

    def update(self, module: str, rec: dict, changes: dict, user: dict, now: datetime) -> Change:
        changed = [k for k, v in changes.items() if rec.get(k) != v]
        rec.update(changes)
        rec["Modified_By"] = dict(user)
        rec["_Modified_Time"] = seconds(now)  # bumped on every write, even when nothing changed
        self.derive(module, rec, changes)
        return Change("update", rec["id"], sorted(changed), _plain({k: changes[k] for k in changed}))

    def delete(self, module: str, rid: str, user: dict, now: datetime) -> Change:
        rec = self.records[module].pop(rid)
        for key in [k for k in self.relations if k[:2] == (module, rid)]:
            del self.relations[key]
        self.deleted[module].append(
            {
                "id": rid,
                "display_name": self.name_of(module, rec),
                "type": "recycle",
                "deleted_by": {"name": user["name"], "id": user["id"]},
                "created_by": {"name": rec["Created_By"].get("name"), "id": rec["Created_By"].get("id")},
                "_deleted": seconds(now),
            }
        )
        return Change("delete", rid)

    def success(self, rec: dict, message: str) -> dict:
        user = rec["Modified_By"]
        created_by = rec["Created_By"]
        return {
            "code": "SUCCESS",
            "details": {
                "Modified_Time": self.fmt(rec["_Modified_Time"]),
                "Modified_By": {"name": user.get("name"), "id": user.get("id")},
                "Created_Time": self.fmt(rec["_Created_Time"]),
                "id": rec["id"],
                "Created_By": {"name": created_by.get("name"), "id": created_by.get("id")},
                "$approval_state": "approved",
            },
            "message": message,
            "status": "success",
        }


def _has_default(module: str, f: FieldDef) -> bool:
    return module == "Deals" and f.api_name == "Pipeline"


def _capitalise_line(item: dict) -> dict:
    """v8 examples sometimes write line keys in lower case (`quantity`); accept both, keep Zoho's names."""
    names = {f.api_name.lower(): f.api_name for f in INVOICED_ITEMS}
    return {names.get(k.lower(), k): v for k, v in item.items()}


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _plain(values: dict) -> dict:
    """Values for notification payloads: datetimes as ISO strings."""
    return {k: (v.isoformat() if isinstance(v, datetime) else _copy(v)) for k, v in values.items()}
