"""Writes of the emulated CRM API: insert, update, upsert, delete and tags (zoho-api.md §5, §10).

At most 100 records a call; one result per record in input order; HTTP 201 (insert) or 200 when every
record succeeded, 207 when some failed, 400 when all failed. `trigger` decides whether workflows run
(recorded in `workflow_runs`); every successful change queues notifications for watching channels.
"""

from __future__ import annotations

from typing import Any

from xz_pipeline.sandbox.zoho.call import ApiError, Call
from xz_pipeline.sandbox.zoho.reads import external_field
from xz_pipeline.sandbox.zoho.records import OrgState, RecordError

MAX_RECORDS = 100
MAX_TAG_IDS = 500


def batch_status(results: list[dict], all_ok: int) -> int:
    ok = sum(1 for r in results if r.get("status") == "success")
    if ok == len(results):
        return all_ok
    return 207 if ok else 400


class Writes:
    def __init__(self, emulator) -> None:
        self.emu = emulator

    # -- helpers -------------------------------------------------------------------------------

    def _items(self, call: Call) -> tuple[list, dict]:
        body = call.json()
        if not isinstance(body, dict) or "data" not in body:
            raise ApiError(400, "MANDATORY_NOT_FOUND", "required field not found", {"api_name": "data"})
        data = body["data"]
        if not isinstance(data, list) or not data:
            raise ApiError(
                400, "INVALID_DATA", "invalid data", {"api_name": "data", "expected_data_type": "jsonarray"}
            )
        if len(data) > MAX_RECORDS:
            raise ApiError(
                400, "LIMIT_EXCEEDED", "Record count exceeded", {"limit": MAX_RECORDS, "api_name": "data"}
            )
        return data, body

    @staticmethod
    def _workflows(body: dict) -> bool:
        """No `trigger` → every automation runs; a list runs only what it names."""
        trigger = body.get("trigger")
        if trigger is None:
            return True
        return isinstance(trigger, list) and "workflow" in trigger

    def _user(self, call: Call) -> dict:
        org: OrgState = call.org
        return dict(org.user(call.token.user_id) or org.api_user)

    def _finish(
        self, call: Call, module: str, results: list[dict], changes: list, workflows: bool, all_ok: int
    ) -> tuple[int, Any]:
        self.emu.record_changes(call.org, module, changes, call.version, workflows)
        return batch_status(results, all_ok), {"data": results}

    # -- insert / update / upsert --------------------------------------------------------------

    def insert(self, call: Call) -> tuple[int, Any]:
        org: OrgState = call.org
        module = call.parts[0]
        data, body = self._items(call)
        user, now = self._user(call), self.emu.clock.now()
        results, changes = [], []
        for i, item in enumerate(data):
            try:
                if not isinstance(item, dict):
                    raise RecordError("INVALID_DATA", "invalid data", {"json_path": f"$.data[{i}]"})
                values = org.validate(module, item, i, None)
                rec, change = org.insert(module, values, user, now)
                results.append(org.success(rec, "record added"))
                changes.append(change)
            except RecordError as exc:
                results.append(exc.item())
        return self._finish(call, module, results, changes, self._workflows(body), 201)

    def update(self, call: Call) -> tuple[int, Any]:
        org: OrgState = call.org
        module = call.parts[0]
        data, body = self._items(call)
        url_key = call.parts[1] if len(call.parts) == 2 else None
        external = call.headers.get("x-external")
        ext_field = external_field(org, module, external) if external else None
        if url_key is not None and len(data) != 1:
            raise ApiError(
                400, "INVALID_DATA", "invalid data", {"api_name": "data", "reason": "one record per id"}
            )
        user, now = self._user(call), self.emu.clock.now()
        results, changes = [], []
        for i, item in enumerate(data):
            try:
                if not isinstance(item, dict):
                    raise RecordError("INVALID_DATA", "invalid data", {"json_path": f"$.data[{i}]"})
                rec = self._target(org, module, item, i, url_key, ext_field)
                values = org.validate(module, item, i, rec)
                changes.append(org.update(module, rec, values, user, now))
                results.append(org.success(rec, "record updated"))
            except RecordError as exc:
                results.append(exc.item())
        return self._finish(call, module, results, changes, self._workflows(body), 200)

    @staticmethod
    def _target(
        org: OrgState, module: str, item: dict, i: int, url_key: str | None, ext_field: str | None
    ) -> dict:
        if ext_field is not None:
            key = url_key if url_key is not None else item.get(ext_field)
            path = f"$.data[{i}].{ext_field}"
            if key in (None, ""):
                raise RecordError(
                    "MANDATORY_NOT_FOUND",
                    "required field not found",
                    {"api_name": ext_field, "json_path": path},
                )
            rec = org.find_by(module, ext_field, key)
            if rec is None:
                raise RecordError(
                    "INVALID_DATA",
                    "The value of the external field is invalid.",
                    {"api_name": ext_field, "json_path": path},
                )
            return rec
        rid = url_key if url_key is not None else item.get("id")
        path = f"$.data[{i}].id"
        if rid in (None, ""):
            raise RecordError(
                "MANDATORY_NOT_FOUND", "required field not found", {"api_name": "id", "json_path": path}
            )
        rec = org.records[module].get(str(rid))
        if rec is None:
            raise RecordError(
                "INVALID_DATA", "the id given seems to be invalid", {"api_name": "id", "json_path": path}
            )
        return rec

    def upsert(self, call: Call) -> tuple[int, Any]:
        org: OrgState = call.org
        module = call.parts[0]
        mdef = org.modules[module]
        data, body = self._items(call)
        allowed = [mdef.duplicate_field] + [f.api_name for f in mdef.fields if f.unique]
        given = body.get("duplicate_check_fields")
        if given is None:
            dup_fields = allowed
        else:
            if not isinstance(given, list) or not all(isinstance(g, str) for g in given):
                raise ApiError(400, "INVALID_DATA", "invalid data", {"api_name": "duplicate_check_fields"})
            for name in given:
                if name not in allowed:
                    raise ApiError(
                        400,
                        "INVALID_DATA",
                        "invalid data",
                        {"api_name": "duplicate_check_fields", "reason": f"{name} is not unique"},
                    )
            dup_fields = list(given)
        external = call.headers.get("x-external")
        if external:
            ext = external_field(org, module, external)
            dup_fields = [ext] + [f for f in dup_fields if f != ext]
        user, now = self._user(call), self.emu.clock.now()
        results, changes = [], []
        for i, item in enumerate(data):
            try:
                if not isinstance(item, dict):
                    raise RecordError("INVALID_DATA", "invalid data", {"json_path": f"$.data[{i}]"})
                match, matched_on = None, None
                for name in dup_fields:
                    value = item.get(name)
                    if isinstance(value, dict):
                        value = value.get("id")
                    match = org.find_by(module, name, value)
                    if match is not None:
                        matched_on = name
                        break
                if match is not None:
                    values = org.validate(module, item, i, match)
                    changes.append(org.update(module, match, values, user, now))
                    result = org.success(match, "record updated")
                    result.update({"duplicate_field": matched_on, "action": "update"})
                else:
                    values = org.validate(module, item, i, None)
                    rec, change = org.insert(module, values, user, now)
                    changes.append(change)
                    result = org.success(rec, "record added")
                    result.update({"duplicate_field": None, "action": "insert"})
                results.append(result)
            except RecordError as exc:
                results.append(exc.item())
        return self._finish(call, module, results, changes, self._workflows(body), 200)

    # -- delete --------------------------------------------------------------------------------

    def delete(self, call: Call) -> tuple[int, Any]:
        org: OrgState = call.org
        module = call.parts[0]
        if len(call.parts) == 2:
            keys = [call.parts[1]]
        else:
            keys = [k for k in call.query.get("ids", "").split(",") if k]
            if not keys:
                raise ApiError(
                    400,
                    "REQUIRED_PARAM_MISSING",
                    "One of the expected parameter is missing",
                    {"param_name": "ids"},
                )
            if len(keys) > MAX_RECORDS:
                raise ApiError(
                    400,
                    "LIMIT_EXCEEDED",
                    "Record count exceeded",
                    {"limit": MAX_RECORDS, "param_name": "ids"},
                )
        external = call.headers.get("x-external")
        ext_field = external_field(org, module, external) if external else None
        user, now = self._user(call), self.emu.clock.now()
        results, changes = [], []
        for key in keys:
            rec = org.find_by(module, ext_field, key) if ext_field else org.records[module].get(key)
            if rec is None:
                results.append(
                    {
                        "code": "INVALID_DATA",
                        "details": {"id": key},
                        "message": "the id given seems to be invalid",
                        "status": "error",
                    }
                )
                continue
            changes.append(org.delete(module, rec["id"], user, now))
            results.append(
                {
                    "code": "SUCCESS",
                    "details": {"id": rec["id"]},
                    "message": "record deleted",
                    "status": "success",
                }
            )
        workflows = call.query.get("wf_trigger", "true").lower() != "false"
        return self._finish(call, module, results, changes, workflows, 200)

    # -- tags ----------------------------------------------------------------------------------

    def tags(self, call: Call) -> tuple[int, Any]:
        org: OrgState = call.org
        module = call.parts[0]
        adding = call.parts[-1] == "add_tags"
        body = call.json() or {}
        if not isinstance(body, dict):
            raise ApiError(400, "INVALID_DATA", "invalid data", {"api_name": "tags"})
        if len(call.parts) == 4:
            ids = [call.parts[1]]
        else:
            ids = body.get("ids") or [i for i in call.query.get("ids", "").split(",") if i]
            if not isinstance(ids, list) or not ids:
                raise ApiError(
                    400,
                    "REQUIRED_PARAM_MISSING",
                    "One of the expected parameter is missing",
                    {"param_name": "ids"},
                )
            if len(ids) > MAX_TAG_IDS:
                raise ApiError(
                    400,
                    "LIMIT_EXCEEDED",
                    "Record count exceeded",
                    {"limit": MAX_TAG_IDS, "param_name": "ids"},
                )
        wanted = body.get("tags")
        if not isinstance(wanted, list) or not wanted:
            raise ApiError(400, "MANDATORY_NOT_FOUND", "required field not found", {"api_name": "tags"})
        now = self.emu.clock.now()
        names = []
        for t in wanted:
            if not isinstance(t, dict):
                raise ApiError(400, "INVALID_DATA", "invalid data", {"api_name": "tags"})
            if t.get("id") and str(t["id"]) in org.tags[module]:
                names.append(org.tags[module][str(t["id"])]["name"])
            elif t.get("name"):
                if adding:
                    org.ensure_tag(module, str(t["name"]), now)
                names.append(str(t["name"]))
            else:
                raise ApiError(400, "INVALID_DATA", "invalid data", {"api_name": "tags"})
        overwrite = bool(body.get("over_write"))
        user = self._user(call)
        results, changes = [], []
        for rid in ids:
            rec = org.records[module].get(str(rid))
            if rec is None:
                results.append(
                    {
                        "code": "INVALID_DATA",
                        "details": {"id": str(rid)},
                        "message": "the id given seems to be invalid",
                        "status": "error",
                    }
                )
                continue
            current = [] if (adding and overwrite) else list(rec.get("Tag") or [])
            low = {n.lower() for n in names}
            if adding:
                have = {t["name"].lower() for t in current}
                current += [org.tag_ref(module, n) for n in names if n.lower() not in have]
            else:
                current = [t for t in current if t["name"].lower() not in low]
            changes.append(org.update(module, rec, {"Tag": current}, user, now))
            results.append(
                {
                    "code": "SUCCESS",
                    "details": {"id": rec["id"], "tags": [dict(t) for t in current]},
                    "message": "tags updated successfully",
                    "status": "success",
                }
            )
        self.emu.record_changes(org, module, changes, call.version, False)
        return batch_status(results, 200), {"data": results}
