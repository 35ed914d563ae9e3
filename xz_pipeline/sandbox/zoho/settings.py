"""Org, users, metadata (modules, fields, tags) and notification channels of the emulated CRM API.

`/org` reports the edition (`license_details.paid_type`); `/users?type=CurrentUser` and `/org` are what
the official SDK calls to name its token user; `settings/fields` can create custom fields within the
edition's limits; `actions/watch` manages notification channels (zoho-api.md §9, §11).
"""

from __future__ import annotations

from typing import Any

from xz_pipeline.sandbox.zoho.call import ApiError, Call
from xz_pipeline.sandbox.zoho.meta import (
    CREATABLE_TYPES,
    CUSTOM_FIELD_LIMITS,
    FieldDef,
    field_json,
    label_to_api_name,
    module_json,
)
from xz_pipeline.sandbox.zoho.notify import MAX_CHANNELS_PER_REQUEST, Channel, WatchError
from xz_pipeline.sandbox.zoho.records import OrgState

MAX_FIELDS_PER_CALL = 5
# home currency -> (currency_symbol, currency_locale, country_code, country) as /org reports them
LOCALES = {
    "NZD": ("$", "en_NZ", "NZ", "New Zealand"),
    "AUD": ("$", "en_AU", "AU", "Australia"),
    "GBP": ("£", "en_GB", "GB", "United Kingdom"),
    "USD": ("$", "en_US", "US", "United States"),
    "EUR": ("€", "de_DE", "DE", "Germany"),
}
MAX_UNIQUE_FIELDS = 2


def _module_param(org: OrgState, call: Call) -> str:
    name = call.query.get("module")
    if not name:
        raise ApiError(
            400,
            "REQUIRED_PARAM_MISSING",
            "One of the expected parameter is missing",
            {"param_name": "module"},
        )
    mdef = org.find_module(name)
    if mdef is None:
        raise ApiError(400, "INVALID_DATA", "invalid data", {"param_name": "module"})
    return mdef.api_name


def _batch(results: list[dict], all_ok: int) -> int:
    ok = sum(1 for r in results if r["status"] == "success")
    return all_ok if ok == len(results) else 207 if ok else 400


class Settings:
    def __init__(self, emulator) -> None:
        self.emu = emulator

    # -- org and users -------------------------------------------------------------------------

    def org(self, call: Call) -> tuple[int, Any]:
        org: OrgState = call.org
        admin = org.api_user
        limits = self.emu.org_limits(org)
        symbol, locale, country_code, country = LOCALES.get(org.currency, LOCALES["NZD"])
        # multi-currency exactly when the org serves Currency fields (a single-currency org has none)
        multi = any(m.field("Currency") is not None for m in org.modules.values())
        return 200, {
            "org": [
                {
                    "id": org.org_id,
                    "company_name": org.company_name,
                    "zgid": org.org_id,
                    "domain_name": f"org{org.org_id}",
                    "primary_zuid": admin["id"],
                    "primary_email": admin["email"],
                    "currency": org.currency,
                    "iso_code": org.currency,
                    "currency_symbol": symbol,
                    "currency_locale": locale,
                    "time_zone": org.timezone,
                    "country_code": country_code,
                    "mc_status": multi,
                    "gapps_enabled": False,
                    "type": "Production",
                    "created_time": org.fmt(org.created),
                    "country": country,
                    "photo_id": None,
                    "city": None,
                    "description": None,
                    "translation_enabled": False,
                    "street": None,
                    "alias": None,
                    "state": None,
                    "fax": None,
                    "zip": None,
                    "mobile": None,
                    "phone": "",
                    "zia_portal_id": None,
                    "deletable_org_account": False,
                    "hierarchy_preferences": {"type": "Role_Hierarchy", "strictly_reporting": False},
                    "privacy_settings": False,
                    "hipaa_compliance_enabled": False,
                    "lite_users_enabled": False,
                    "max_per_page": 200,
                    "ezgid": org.org_id,
                    "call_icon": "",
                    "oauth_presence": True,
                    "zia_zgid": 0,
                    "checkin_preferences": {"restricted_event_types": None},
                    "license_details": {
                        "paid": org.edition != "Free",
                        "paid_type": org.edition,
                        "trial_type": None,
                        "trial_expiry": None,
                        "trial_action": "",
                        # a paid licence renewed yearly from the org's creation
                        "paid_expiry": org.fmt(org.created.replace(year=org.created.year + 1)),
                        "users_license_purchased": limits.users,
                    },
                }
            ]
        }

    def _user_json(self, org: OrgState, u: dict) -> dict:
        first, _, last = u["name"].partition(" ")
        return {
            "id": u["id"],
            "full_name": u["name"],
            "first_name": first,
            "last_name": last or first,
            "email": u["email"],
            "status": "active",
            "zuid": u["id"],
            "confirm": True,
            "time_zone": org.timezone,
            "role": {"name": "CEO", "id": f"{org.org_id}01"},
            "profile": {"name": "Administrator", "id": f"{org.org_id}02"},
        }

    def users(self, call: Call) -> tuple[int, Any]:
        org: OrgState = call.org
        if len(call.parts) == 2:
            u = org.user(call.parts[1])
            if u is None:
                return 204, None
            return 200, {"users": [self._user_json(org, u)]}
        kind = call.query.get("type", "AllUsers")
        users = [org.user(call.token.user_id) or org.api_user] if kind == "CurrentUser" else list(org.users)
        data = [self._user_json(org, u) for u in users]
        return 200, {
            "users": data,
            "info": {"per_page": 200, "count": len(data), "page": 1, "more_records": False},
        }

    # -- modules and fields --------------------------------------------------------------------

    def modules(self, call: Call) -> tuple[int, Any]:
        org: OrgState = call.org
        if len(call.parts) == 3:
            mdef = org.find_module(call.parts[2])
            if mdef is None:
                raise ApiError(
                    400,
                    "INVALID_MODULE",
                    "The module name given seems to be invalid",
                    {"resource_path_index": 2},
                )
            return 200, {"modules": [{**module_json(mdef), "fields": [field_json(f) for f in mdef.fields]}]}
        return 200, {"modules": [module_json(m) for m in org.modules.values()]}

    def fields(self, call: Call) -> tuple[int, Any]:
        org: OrgState = call.org
        module = _module_param(org, call)
        fields = org.modules[module].fields
        if len(call.parts) == 3:
            fields = [f for f in fields if call.parts[2] in (f.id, f.api_name)]
            if not fields:
                return 204, None
        if call.query.get("type") == "unused":
            return 204, None
        return 200, {"fields": [field_json(f) for f in fields]}

    def create_fields(self, call: Call) -> tuple[int, Any]:
        org: OrgState = call.org
        module = _module_param(org, call)
        mdef = org.modules[module]
        body = call.json()
        items = body.get("fields") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            raise ApiError(400, "MANDATORY_NOT_FOUND", "required field not found", {"api_name": "fields"})
        if len(items) > MAX_FIELDS_PER_CALL:
            raise ApiError(400, "LIMIT_EXCEEDED", "Max field limit exceeded", {"limit": MAX_FIELDS_PER_CALL})
        limit = CUSTOM_FIELD_LIMITS.get(org.edition, CUSTOM_FIELD_LIMITS["Enterprise"])
        results = []
        for i, item in enumerate(items):
            path = f"$.fields[{i}]"
            try:
                results.append(self._create_field(mdef, item, path, limit))
            except ApiError as exc:
                results.append(
                    {
                        **exc.body(),
                        "details": {**exc.details, "json_path": exc.details.get("json_path", path)},
                    }
                )
        return _batch(results, 201), {"fields": results}

    def _create_field(self, mdef, item: Any, path: str, limit: int) -> dict:
        if not isinstance(item, dict):
            raise ApiError(400, "INVALID_DATA", "invalid data", {})
        label = item.get("field_label")
        if not isinstance(label, str) or not label.strip():
            raise ApiError(
                400,
                "MANDATORY_NOT_FOUND",
                "required field not found",
                {"api_name": "field_label", "json_path": f"{path}.field_label"},
            )
        dtype = item.get("data_type")
        if dtype not in CREATABLE_TYPES:
            raise ApiError(
                400,
                "INVALID_DATA",
                "invalid data",
                {
                    "api_name": "data_type",
                    "json_path": f"{path}.data_type",
                    "supported_values": list(CREATABLE_TYPES),
                },
            )
        api_name = label_to_api_name(label)
        if mdef.field(api_name) is not None or any(
            f.label.lower() == label.strip().lower() for f in mdef.fields
        ):
            raise ApiError(
                400,
                "DUPLICATE_DATA",
                "duplicate data",
                {"api_name": "field_label", "json_path": f"{path}.field_label"},
            )
        if sum(1 for f in mdef.fields if f.custom) >= limit:
            raise ApiError(400, "LIMIT_EXCEEDED", "Max field limit exceeded", {"limit": limit})
        unique = bool(item.get("unique"))
        external = item.get("external") if isinstance(item.get("external"), dict) else None
        if (unique or external) and sum(1 for f in mdef.fields if f.unique) >= MAX_UNIQUE_FIELDS:
            raise ApiError(
                400,
                "LIMIT_EXCEEDED",
                "Max field limit exceeded",
                {"limit": MAX_UNIQUE_FIELDS, "api_name": "unique", "json_path": f"{path}.unique"},
            )
        picklist: tuple[str, ...] = ()
        if dtype == "picklist":
            values = item.get("pick_list_values")
            if not isinstance(values, list) or not values:
                raise ApiError(
                    400,
                    "MANDATORY_NOT_FOUND",
                    "required field not found",
                    {"api_name": "pick_list_values", "json_path": f"{path}.pick_list_values"},
                )
            picklist = tuple(
                str(v.get("actual_value") or v.get("display_value")) if isinstance(v, dict) else str(v)
                for v in values
            )
        length = item.get("length")
        f = FieldDef(
            api_name,
            label.strip(),
            dtype,
            custom=True,
            unique=unique or external is not None,
            external=(external or {}).get("type", "") if external else "",
            picklist=picklist,
            length=length if isinstance(length, int) and length > 0 else None,
            id=self.emu.new_id(),
        )
        mdef.fields.append(f)
        return {"code": "SUCCESS", "details": {"id": f.id}, "message": "field created", "status": "success"}

    # -- tag admin -----------------------------------------------------------------------------

    def tags(self, call: Call) -> tuple[int, Any]:
        org: OrgState = call.org
        module = _module_param(org, call)
        if call.method == "GET":
            tags = [org.tag_json(t) for t in org.tags[module].values()]
            return 200, {"tags": tags, "info": {"count": len(tags), "allowed_count": 1000}}
        body = call.json()
        items = body.get("tags") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            raise ApiError(400, "MANDATORY_NOT_FOUND", "required field not found", {"api_name": "tags"})
        now = self.emu.clock.now()
        results = []
        for i, t in enumerate(items):
            name = t.get("name") if isinstance(t, dict) else None
            if not isinstance(name, str) or not name.strip():
                results.append(
                    {
                        "code": "MANDATORY_NOT_FOUND",
                        "details": {"api_name": "name", "json_path": f"$.tags[{i}].name"},
                        "message": "required field not found",
                        "status": "error",
                    }
                )
                continue
            if any(x["name"].lower() == name.strip().lower() for x in org.tags[module].values()):
                results.append(
                    {
                        "code": "DUPLICATE_DATA",
                        "details": {"api_name": "name", "json_path": f"$.tags[{i}].name"},
                        "message": "duplicate data",
                        "status": "error",
                    }
                )
                continue
            tag = org.ensure_tag(module, name.strip(), now)
            if isinstance(t.get("color_code"), str):
                tag["color_code"] = t["color_code"]
            results.append(
                {
                    "code": "SUCCESS",
                    "details": {"id": tag["id"]},
                    "message": "tags created successfully",
                    "status": "success",
                }
            )
        return _batch(results, 201), {"tags": results}

    def tag(self, call: Call) -> tuple[int, Any]:
        org: OrgState = call.org
        module = _module_param(org, call)
        tid = call.parts[2]
        tag = org.tags[module].get(tid)
        if tag is None:
            raise ApiError(400, "INVALID_DATA", "the id given seems to be invalid", {"id": tid})
        if call.method == "DELETE":
            del org.tags[module][tid]
            for rec in org.records[module].values():
                if rec.get("Tag"):
                    rec["Tag"] = [t for t in rec["Tag"] if t["id"] != tid]
            return 200, {
                "tags": [
                    {
                        "code": "SUCCESS",
                        "details": {"id": tid},
                        "message": "tags deleted successfully",
                        "status": "success",
                    }
                ]
            }
        body = call.json()
        items = body.get("tags") if isinstance(body, dict) else None
        item = items[0] if isinstance(items, list) and items and isinstance(items[0], dict) else {}
        if isinstance(item.get("name"), str) and item["name"].strip():
            tag["name"] = item["name"].strip()
            for rec in org.records[module].values():
                for t in rec.get("Tag") or []:
                    if t["id"] == tid:
                        t["name"] = tag["name"]
        if isinstance(item.get("color_code"), str):
            tag["color_code"] = item["color_code"]
        tag["modified_time"] = self.emu.clock.now()
        return 200, {
            "tags": [
                {
                    "code": "SUCCESS",
                    "details": {"id": tid},
                    "message": "tags updated successfully",
                    "status": "success",
                }
            ]
        }

    # -- notifications -------------------------------------------------------------------------

    def watch(self, call: Call) -> tuple[int, Any]:
        org: OrgState = call.org
        notifier = self.emu.notifier
        now = self.emu.clock.now()
        if call.method == "GET":
            return self._list_channels(call, org, now)
        if call.method == "DELETE":
            ids = [i for i in call.query.get("channel_ids", "").split(",") if i]
            if not ids:
                raise ApiError(
                    400,
                    "REQUIRED_PARAM_MISSING",
                    "One of the expected parameter is missing",
                    {"param_name": "channel_ids"},
                )
            results = []
            with notifier.lock:
                for cid in ids:
                    ch = notifier.channels.pop((org.org_id, cid), None)
                    if ch is None or ch.expiry <= now:
                        results.append(
                            {
                                "code": "INVALID_DATA",
                                "details": {"channel_id": cid},
                                "message": "invalid data",
                                "status": "error",
                            }
                        )
                        continue
                    results.append(
                        {
                            "code": "SUCCESS",
                            "details": {"events": self._event_details(org, ch, call)},
                            "message": "Successfully unsubscribed from actions-watch of the given module",
                            "status": "success",
                        }
                    )
            return _batch(results, 200), {"watch": results}
        body = call.json()
        items = body.get("watch") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            raise ApiError(400, "MANDATORY_NOT_FOUND", "required field not found", {"api_name": "watch"})
        if len(items) > MAX_CHANNELS_PER_REQUEST:
            raise ApiError(
                400, "LIMIT_EXCEEDED", "Record count exceeded", {"limit": MAX_CHANNELS_PER_REQUEST}
            )
        results = []
        with notifier.lock:
            for i, item in enumerate(items):
                try:
                    ch = self._apply_channel(call, org, item, now)
                    message = (
                        "Successfully subscribed for actions-watch of the given module"
                        if call.method == "POST"
                        else "Successfully updated the subscribe details"
                    )
                    results.append(
                        {
                            "code": "SUCCESS",
                            "details": {"events": self._event_details(org, ch, call)},
                            "message": message,
                            "status": "success",
                        }
                    )
                except WatchError as exc:
                    item_err = exc.item()
                    item_err["details"] = {
                        **exc.details,
                        "json_path": f"$.watch[{i}].{exc.details.get('api_name', '')}",
                    }
                    results.append(item_err)
        return _batch(results, 201 if call.method == "POST" else 200), {"watch": results}

    def _apply_channel(self, call: Call, org: OrgState, item: Any, now) -> Channel:
        notifier = self.emu.notifier
        if not isinstance(item, dict):
            raise WatchError("INVALID_DATA", "invalid data", {"api_name": "watch"})
        cid = item.get("channel_id")
        if cid in (None, ""):
            raise WatchError("MANDATORY_NOT_FOUND", "required field not found", {"api_name": "channel_id"})
        cid = str(cid)
        existing = notifier.get(org.org_id, cid, now)
        if call.method == "PATCH":
            if existing is None:
                raise WatchError("INVALID_DATA", "invalid data", {"api_name": "channel_id"})
            if "events" in item:
                events = notifier.check_events(item["events"], org.modules)
                if item.get("_delete_events"):
                    existing.events = [e for e in existing.events if e not in events]
                else:
                    existing.events += [e for e in events if e not in existing.events]
            if "notify_url" in item:
                existing.notify_url = notifier.check_url(item["notify_url"])
            if "token" in item:
                existing.token = notifier.check_token(item["token"])
            if "channel_expiry" in item:
                existing.expiry = notifier.expiry_for(item.get("channel_expiry"), now)
            for key in ("return_affected_field_values", "notify_on_related_action"):
                if key in item:
                    setattr(existing, key, bool(item[key]))
            if "notification_condition" in item:
                existing.condition = list(item["notification_condition"] or [])
            return existing
        if call.method == "PUT" and existing is None:
            raise WatchError("INVALID_DATA", "invalid data", {"api_name": "channel_id"})
        ch = Channel(
            channel_id=cid,
            org_id=org.org_id,
            events=notifier.check_events(item.get("events"), org.modules),
            notify_url=notifier.check_url(item.get("notify_url")),
            token=notifier.check_token(item.get("token")),
            expiry=notifier.expiry_for(item.get("channel_expiry"), now),
            version=call.version,
            return_affected_field_values=bool(item.get("return_affected_field_values", False)),
            notify_on_related_action=bool(item.get("notify_on_related_action", True)),
            condition=list(item.get("notification_condition") or []),
        )
        if call.method == "POST" and existing is not None:
            ch.events = existing.events + [e for e in ch.events if e not in existing.events]
        notifier.channels[(org.org_id, cid)] = ch
        return ch

    def _event_details(self, org: OrgState, ch: Channel, call: Call) -> list[dict]:
        modules = []
        for ev in ch.events:
            mod = ev.partition(".")[0]
            if mod not in modules:
                modules.append(mod)
        return [
            {
                "channel_expiry": org.fmt(ch.expiry),
                "resource_uri": self.emu.resource_uri(ch.version, mod),
                "resource_id": org.modules[mod].id,
                "resource_name": mod,
                "channel_id": ch.channel_id,
            }
            for mod in modules
        ]

    def _list_channels(self, call: Call, org: OrgState, now) -> tuple[int, Any]:
        notifier = self.emu.notifier
        with notifier.lock:
            chans = sorted(notifier.live(org.org_id, now), key=lambda c: c.channel_id)
        if call.query.get("channel_id"):
            chans = [c for c in chans if c.channel_id == call.query["channel_id"]]
        if call.query.get("module"):
            mod = call.query["module"]
            chans = [c for c in chans if any(e.partition(".")[0] == mod for e in c.events)]
        per_page = int(call.query.get("per_page") or 200)
        page = int(call.query.get("page") or 1)
        chunk = chans[(page - 1) * per_page : page * per_page]
        if not chunk:
            return 204, None
        watch = []
        for c in chunk:
            first = c.events[0].partition(".")[0]
            watch.append(
                {
                    "channel_id": c.channel_id,
                    "events": list(c.events),
                    "channel_expiry": org.fmt(c.expiry),
                    "notify_url": c.notify_url,
                    "token": c.token,
                    "resource_uri": self.emu.resource_uri(c.version, first),
                    "resource_id": org.modules[first].id,
                    "resource_name": first,
                    "return_affected_field_values": c.return_affected_field_values,
                    "notify_on_related_action": c.notify_on_related_action,
                    "notification_condition": c.condition,
                }
            )
        info = {
            "per_page": per_page,
            "count": len(watch),
            "page": page,
            "more_records": page * per_page < len(chans),
        }
        return 200, {"watch": watch, "info": info}
