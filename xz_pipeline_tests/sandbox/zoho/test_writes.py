"""Writes: per-record results and status codes, validation, upsert matching, trigger, delete, Modified_Time."""

from __future__ import annotations

from xz_pipeline_tests.sandbox.zoho.support import accounts, make_org


def _names(org, module="Accounts"):
    return sorted(r.get("Account_Name") or r.get("Deal_Name") for r in org.emu.dump(org.org_id, module))


def test_insert_201_mixed_207_all_failed_400():
    org = make_org()
    ok = org.post("Accounts", json={"data": [{"Account_Name": "Alpha"}]})
    assert ok.status_code == 201
    item = ok.json()["data"][0]
    assert (item["code"], item["message"], item["status"]) == ("SUCCESS", "record added", "success")
    assert item["details"]["Created_Time"] == "2026-11-02T22:00:00+13:00"
    mixed = org.post("Accounts", json={"data": [{"Account_Name": "Beta"}, {"Phone": "1"}]})
    assert mixed.status_code == 207
    failed = org.post("Accounts", json={"data": [{"Phone": "1"}]})
    assert failed.status_code == 400 and failed.json()["data"][0]["code"] == "MANDATORY_NOT_FOUND"
    assert _names(org) == ["Alpha", "Beta"]


def test_mixed_upsert_207_names_each_failed_record_by_json_path():
    org = make_org()
    org.post("Accounts", json={"data": [{"Account_Name": "Harbour Coffee", "Xero_Contact_ID": "xc-1"}]})
    payload = [
        {"Account_Name": "harbour coffee", "Phone": "09 555 0100"},  # updates (case-insensitive match)
        {"Account_Name": "Kauri Joinery", "Employees": "twelve"},  # wrong type
        {"Account_Name": "Tui Books", "Website": "w" * 256},  # too long
        {"Account_Name": "Rimu Ltd"},  # inserts
        {"Account_Name": "Dup Ltd", "Xero_Contact_ID": "XC-1"},  # unique field clash
        {"Account_Name": "Odd Ltd", "Account_Type": "Friend"},  # not in the picklist
        {"Phone": "04 555 0000"},  # mandatory missing
    ]
    # Only the name decides insert vs update, so the Xero_Contact_ID clash is a unique-field error.
    r = org.post("Accounts/upsert", json={"data": payload, "duplicate_check_fields": ["Account_Name"]})
    assert r.status_code == 207
    items = r.json()["data"]
    assert [i["status"] for i in items] == ["success", "error", "error", "success", "error", "error", "error"]
    assert (items[0]["action"], items[0]["duplicate_field"], items[0]["message"]) == (
        "update",
        "Account_Name",
        "record updated",
    )
    assert (items[3]["action"], items[3]["duplicate_field"]) == ("insert", None)
    assert items[1]["details"] == {
        "expected_data_type": "integer",
        "api_name": "Employees",
        "json_path": "$.data[1].Employees",
    }
    assert items[2]["details"] == {
        "maximum_length": "255",
        "api_name": "Website",
        "json_path": "$.data[2].Website",
    }
    assert items[4]["code"] == "DUPLICATE_DATA"
    assert items[4]["details"]["json_path"] == "$.data[4].Xero_Contact_ID"
    assert items[4]["details"]["duplicate_record"]["id"] == items[0]["details"]["id"]
    assert items[5]["code"] == "INVALID_DATA" and items[5]["details"]["json_path"] == "$.data[5].Account_Type"
    assert "Customer" in items[5]["details"]["supported_values"]
    assert items[6]["code"] == "MANDATORY_NOT_FOUND"
    assert items[6]["details"] == {"api_name": "Account_Name", "json_path": "$.data[6].Account_Name"}
    assert _names(org) == ["Rimu Ltd", "harbour coffee"]
    (harbour,) = [a for a in org.emu.dump(org.org_id, "Accounts") if a["Xero_Contact_ID"] == "xc-1"]
    assert harbour["Phone"] == "09 555 0100"


def test_upsert_by_duplicate_check_fields_and_x_external():
    org = make_org()
    org.post("Accounts", json={"data": [{"Account_Name": "Old Name", "Xero_Contact_ID": "xc-9"}]})
    r = org.post(
        "Accounts/upsert",
        json={
            "data": [{"Account_Name": "New Name", "Xero_Contact_ID": "xc-9"}],
            "duplicate_check_fields": ["Xero_Contact_ID"],
        },
    )
    assert r.status_code == 200 and r.json()["data"][0]["duplicate_field"] == "Xero_Contact_ID"
    assert _names(org) == ["New Name"]
    ext = org.post(
        "Accounts/upsert",
        headers={"X-EXTERNAL": "Accounts.Xero_Contact_ID"},
        json={"data": [{"Account_Name": "Newer", "Xero_Contact_ID": "xc-9"}]},
    )
    assert ext.json()["data"][0]["action"] == "update" and _names(org) == ["Newer"]
    not_unique = org.post(
        "Accounts/upsert", json={"data": [{"Account_Name": "x"}], "duplicate_check_fields": ["Phone"]}
    )
    assert not_unique.status_code == 400 and not_unique.json()["code"] == "INVALID_DATA"


def test_at_most_100_records_per_write():
    org = make_org()
    r = org.post("Accounts", json={"data": accounts(101)})
    assert (
        r.status_code == 400 and r.json()["code"] == "LIMIT_EXCEEDED" and r.json()["details"]["limit"] == 100
    )
    assert org.post("Accounts", json={"data": accounts(100)}).status_code == 201
    assert len(org.emu.dump(org.org_id, "Accounts")) == 100


def test_update_bumps_modified_time_and_reports_bad_ids():
    org = make_org()
    rid = org.post("Accounts", json={"data": [{"Account_Name": "A"}]}).json()["data"][0]["details"]["id"]
    org.clock.advance(90)
    r = org.put(
        "Accounts", json={"data": [{"id": rid, "Phone": "1"}, {"id": "123", "Phone": "2"}, {"Phone": "3"}]}
    )
    assert r.status_code == 207
    ok, bad, missing = r.json()["data"]
    assert ok["message"] == "record updated" and ok["details"]["Modified_Time"] == "2026-11-02T22:01:30+13:00"
    assert ok["details"]["Created_Time"] == "2026-11-02T22:00:00+13:00"
    assert bad["details"] == {"api_name": "id", "json_path": "$.data[1].id"} and bad["code"] == "INVALID_DATA"
    assert missing["code"] == "MANDATORY_NOT_FOUND"
    org.clock.advance(30)
    same = org.put(f"Accounts/{rid}", json={"data": [{"Phone": "1"}]})  # no change, still a write
    assert same.json()["data"][0]["details"]["Modified_Time"] == "2026-11-02T22:02:00+13:00"


def test_deals_pipeline_stages_lookups_and_derived_fields():
    org = make_org()
    acc = org.post("Accounts", json={"data": [{"Account_Name": "Harbour"}]}).json()["data"][0]["details"][
        "id"
    ]
    r = org.post(
        "Deals",
        json={
            "data": [
                {
                    "Deal_Name": "Won",
                    "Stage": "Closed Won",
                    "Amount": 650,
                    "Account_Name": {"id": acc},
                    "Closing_Date": "2026-11-01",
                    "Payment_Status": "Paid",
                    "Amount_Paid": 747.5,
                    "Last_Payment_Date": "2026-11-02",
                },
                {"Deal_Name": "Lost", "Stage": "Closed Lost", "Pipeline": "Standard (Standard)"},
                {"Deal_Name": "Bad stage", "Stage": "Won-ish"},
                {"Deal_Name": "Bad account", "Stage": "Qualification", "Account_Name": {"id": "1"}},
                {"Deal_Name": "Bad date", "Stage": "Qualification", "Closing_Date": "01/11/2026"},
                {"Deal_Name": "No stage"},
            ]
        },
    )
    assert r.status_code == 207
    codes = [(i["code"], i["details"].get("api_name")) for i in r.json()["data"]]
    assert codes[2:] == [
        ("INVALID_DATA", "Stage"),
        ("INVALID_DATA", "Account_Name"),
        ("INVALID_DATA", "Closing_Date"),
        ("MANDATORY_NOT_FOUND", "Stage"),
    ]
    won = org.get(f"Deals/{r.json()['data'][0]['details']['id']}").json()["data"][0]
    assert won["Account_Name"] == {"id": acc, "name": "Harbour"}
    assert (won["Probability"], won["Expected_Revenue"], won["Pipeline"]) == (
        100,
        650.0,
        "Standard (Standard)",
    )
    assert (won["Payment_Status"], won["Amount_Paid"], won["Last_Payment_Date"]) == (
        "Paid",
        747.5,
        "2026-11-02",
    )
    org.put(f"Accounts/{acc}", json={"data": [{"Account_Name": "Harbour Ltd"}]})
    assert org.get(f"Deals/{won['id']}").json()["data"][0]["Account_Name"]["name"] == "Harbour Ltd"


def test_trigger_decides_whether_workflows_run():
    org = make_org()
    org.post("Accounts", json={"data": [{"Account_Name": "Default"}]})
    org.post("Accounts", json={"data": [{"Account_Name": "Quiet"}], "trigger": []})
    org.post("Accounts", json={"data": [{"Account_Name": "Approval only"}], "trigger": ["approval"]})
    org.post(
        "Accounts/upsert", json={"data": [{"Account_Name": "Quiet", "Phone": "1"}], "trigger": ["workflow"]}
    )
    ids = {a["Account_Name"]: a["id"] for a in org.emu.dump(org.org_id, "Accounts")}
    assert org.emu.workflow_runs == [
        ("Accounts", ids["Default"], "insert"),
        ("Accounts", ids["Quiet"], "update"),
    ]
    org.delete("Accounts", params={"ids": ids["Default"], "wf_trigger": "false"})
    org.delete("Accounts", params={"ids": f"{ids['Quiet']},999"})
    assert (
        org.emu.workflow_runs[-1] == ("Accounts", ids["Quiet"], "delete") and len(org.emu.workflow_runs) == 3
    )


def test_delete_many_with_per_id_results():
    org = make_org()
    org.post("Accounts", json={"data": accounts(3)})
    ids = [a["id"] for a in org.emu.dump(org.org_id, "Accounts")]
    r = org.delete("Accounts", params={"ids": f"{ids[0]},{ids[1]},42"})
    assert r.status_code == 207
    assert [i["status"] for i in r.json()["data"]] == ["success", "success", "error"]
    assert r.json()["data"][0] == {
        "code": "SUCCESS",
        "details": {"id": ids[0]},
        "message": "record deleted",
        "status": "success",
    }
    assert [a["id"] for a in org.emu.dump(org.org_id, "Accounts")] == [ids[2]]
    assert org.delete("Accounts", params={"ids": "1,2"}).status_code == 400
