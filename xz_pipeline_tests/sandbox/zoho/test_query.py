"""Search (criteria, email, phone, word; 2,000 cap) and COQL (where, order by, limit/offset, lookups)."""

from __future__ import annotations

import pytest

from xz_pipeline_tests.sandbox.zoho.support import make_org


@pytest.fixture(scope="module")
def crm():
    org = make_org()
    org.emu.load(
        org.org_id,
        "Accounts",
        [
            {
                "id": "5725767000000000101",
                "Account_Name": "Harbour Coffee Roasters",
                "Phone": "+64 9 555 0100",
                "Xero_Contact_ID": "xc-1",
                "Billing_City": "Auckland",
            },
            {
                "id": "5725767000000000102",
                "Account_Name": "Kauri Joinery (NZ), Ltd",
                "Phone": "(09) 555-0199",
                "Billing_City": "Whangarei",
            },
            {"id": "5725767000000000103", "Account_Name": "Tui Books", "Phone": "04 555 0177"},
        ],
    )
    org.emu.load(
        org.org_id,
        "Contacts",
        [
            {
                "id": "5725767000000000201",
                "First_Name": "Mere",
                "Last_Name": "Ngata",
                "Email": "Mere@Harbour.co.nz",
                "Account_Name": {"id": "5725767000000000101", "name": "Harbour Coffee Roasters"},
            },
            {
                "id": "5725767000000000202",
                "Last_Name": "Smith",
                "Email": "aroha@tuibooks.nz",
                "Account_Name": {"id": "5725767000000000103", "name": "Tui Books"},
            },
        ],
    )
    org.emu.load(
        org.org_id,
        "Deals",
        [
            {
                "id": str(5725767000000000300 + i),
                "Deal_Name": f"Deal {i}",
                "Stage": stage,
                "Amount": amount,
                "Closing_Date": f"2026-10-{10 + i:02d}",
                "Account_Name": {"id": acc, "name": ""},
                "Modified_Time": f"2026-10-{10 + i:02d}T09:00:00+13:00",
            }
            for i, (stage, amount, acc) in enumerate(
                [
                    ("Closed Won", 650.0, "5725767000000000101"),
                    ("Closed Lost", 100.0, "5725767000000000102"),
                    ("Negotiation/Review", 2190.0, "5725767000000000101"),
                    ("Closed Won", 40.0, "5725767000000000103"),
                ]
            )
        ],
    )
    return org


def _search(org, module, **params):
    return org.get(f"{module}/search", params=params)


def test_search_criteria_operators_escapes_and_lookups(crm):
    def names(**params):
        r = _search(crm, "Accounts", **params)
        return [] if r.status_code == 204 else [a["Account_Name"] for a in r.json()["data"]]

    assert names(criteria="(Account_Name:starts_with:harb)") == ["Harbour Coffee Roasters"]
    assert names(criteria=r"(Account_Name:equals:Kauri Joinery \(NZ\)\, Ltd)") == ["Kauri Joinery (NZ), Ltd"]
    assert names(criteria="(Account_Name:equals:Coffee)") == [
        "Harbour Coffee Roasters"
    ]  # text equals ~ contains
    assert names(criteria="((Billing_City:equals:Auckland)or(Billing_City:equals:Whangarei))") == [
        "Harbour Coffee Roasters",
        "Kauri Joinery (NZ), Ltd",
    ]
    assert names(criteria="(Billing_City:in:Auckland,Whangarei)") == [
        "Harbour Coffee Roasters",
        "Kauri Joinery (NZ), Ltd",
    ]
    assert names(criteria="(Xero_Contact_ID:equals:nothing)") == []
    deals = _search(crm, "Deals", criteria="((Stage:equals:Closed Won)and(Amount:greater_than:100))").json()
    assert [d["Deal_Name"] for d in deals["data"]] == ["Deal 0"]
    by_account = _search(
        crm, "Deals", criteria="(Account_Name:equals:5725767000000000101)", fields="Deal_Name"
    )
    assert [d["Deal_Name"] for d in by_account.json()["data"]] == ["Deal 0", "Deal 2"]
    assert set(by_account.json()["data"][0]) == {"id", "Deal_Name"}


def test_search_email_phone_word_and_errors(crm):
    assert _search(crm, "Contacts", email="mere@harbour.co.nz").json()["data"][0]["Last_Name"] == "Ngata"
    assert _search(crm, "Accounts", phone="5550199").json()["data"][0]["Account_Name"].startswith("Kauri")
    assert _search(crm, "Accounts", word="books").json()["data"][0]["Account_Name"] == "Tui Books"
    assert _search(crm, "Accounts", word="x").status_code == 400
    none = _search(crm, "Accounts")
    assert none.status_code == 400 and none.json()["code"] == "EXPECTED_PARAM_MISSING"
    bad = _search(crm, "Accounts", criteria="(Account_Name:like:x)")
    assert bad.status_code == 400 and bad.json()["code"] == "INVALID_QUERY"
    unknown = _search(crm, "Accounts", criteria="(Nope:equals:x)")
    assert unknown.json()["code"] == "INVALID_QUERY"
    capped = _search(crm, "Accounts", criteria="(Account_Name:starts_with:a)", page=11, per_page=200)
    assert capped.status_code == 400 and capped.json()["code"] == "LIMIT_REACHED"
    assert _search(crm, "Accounts", criteria="(Account_Name:starts_with:zzz)").status_code == 204


def _coql(org, query):
    return org.post("coql", json={"select_query": query})


def test_coql_where_order_limit_offset_and_lookup_dot_fields(crm):
    r = _coql(
        crm,
        "select Deal_Name, Amount, Account_Name, Account_Name.Account_Name from Deals "
        "where (Stage = 'Closed Won' or Amount >= 2000) and Account_Name.Billing_City = 'Auckland' "
        "order by Amount desc limit 10",
    )
    assert r.status_code == 200
    body = r.json()
    assert [(d["Deal_Name"], d["Amount"]) for d in body["data"]] == [("Deal 2", 2190.0), ("Deal 0", 650.0)]
    assert body["data"][0]["Account_Name"] == {"id": "5725767000000000101"}
    assert body["data"][0]["Account_Name.Account_Name"] == "Harbour Coffee Roasters"
    assert body["info"] == {"count": 2, "more_records": False}
    page = _coql(crm, "SELECT Deal_Name FROM Deals ORDER BY Deal_Name ASC LIMIT 2 OFFSET 1").json()
    assert [d["Deal_Name"] for d in page["data"]] == ["Deal 1", "Deal 2"] and page["info"]["more_records"]
    assert _coql(crm, "select Deal_Name from Deals limit 3, 5").json()["data"][0]["Deal_Name"] == "Deal 3"


def test_coql_in_like_null_between_and_datetimes(crm):
    def names(where, module="Deals", field="Deal_Name"):
        r = _coql(crm, f"select {field} from {module} where {where}")
        return [] if r.status_code == 204 else sorted(d[field] for d in r.json()["data"])

    assert names("Stage in ('Closed Won', 'Closed Lost')") == ["Deal 0", "Deal 1", "Deal 3"]
    assert names("Stage not in ('Closed Won', 'Closed Lost')") == ["Deal 2"]
    assert names("Account_Name like '%COFFEE%'", "Accounts", "Account_Name") == ["Harbour Coffee Roasters"]
    assert names("Account_Name not like '%coffee%'", "Accounts", "Account_Name") == [
        "Kauri Joinery (NZ), Ltd",
        "Tui Books",
    ]
    assert names("Account_Name like 'harbour%'", "Accounts", "Account_Name") == ["Harbour Coffee Roasters"]
    assert names("Xero_Contact_ID is null", "Accounts", "Account_Name") == [
        "Kauri Joinery (NZ), Ltd",
        "Tui Books",
    ]
    assert names("Amount between 50 and 700") == ["Deal 0", "Deal 1"]
    assert names("Modified_Time > '2026-10-11T09:00:00+13:00'") == ["Deal 2", "Deal 3"]
    assert names("Closing_Date <= '2026-10-11'") == ["Deal 0", "Deal 1"]
    assert names("Last_Name = 'nobody'", "Contacts", "Last_Name") == []


def test_coql_errors(crm):
    syntax = _coql(crm, "select from Deals")
    assert syntax.status_code == 400 and syntax.json()["code"] == "SYNTAX_ERROR"
    assert _coql(crm, "select Nope from Deals").json()["code"] == "INVALID_QUERY"
    assert _coql(crm, "select Deal_Name from Nowhere").json()["code"] == "INVALID_QUERY"
    assert _coql(crm, "select Deal_Name from Deals limit 2001").json()["code"] == "LIMIT_EXCEEDED"
    assert crm.post("coql", json={}).status_code == 400


def _invoices(org) -> None:
    org.emu.load(org.org_id, "Products", [{"id": "5725767000000000401", "Product_Name": "Flat white"},
                                          {"id": "5725767000000000402", "Product_Name": "Scone"}])  # fmt: skip
    lines = [
        [("5725767000000000401", 2.0, 15.0), ("5725767000000000402", 1.0, 10.0)],
        [("5725767000000000402", 3.0, 15.0)],
        [("5725767000000000401", 9.0, 0.0)],
    ]
    org.emu.load(org.org_id, "Invoices", [
        {"id": str(5725767000000000500 + i), "Subject": f"Invoice {i}",
         "Account_Name": {"id": "5725767000000000101", "name": ""},
         "Invoiced_Items": [{"Product_Name": {"id": p, "name": ""}, "Quantity": q,
                             "Line_Tax": [{"name": "GST", "percentage": pct}]} for p, q, pct in rows]}
        for i, rows in enumerate(lines)
    ])  # fmt: skip


def test_coql_reads_a_subform_module_by_parent_within_the_limits(crm):
    _invoices(crm)
    first, second = "5725767000000000500", "5725767000000000501"
    query = ("select Product_Name, Product_Name.Product_Name, Quantity, Line_Tax, Parent_Id from Invoiced_Items "
             f"where Parent_Id in ('{first}', '{second}')")  # fmt: skip
    got = _coql(crm, query)
    assert got.status_code == 200, got.json()
    rows = got.json()["data"]
    assert [
        (r["Parent_Id"], r["Product_Name"], r["Product_Name.Product_Name"], r["Quantity"]) for r in rows
    ] == [
        ({"id": first}, {"id": "5725767000000000401"}, "Flat white", 2.0),
        ({"id": first}, {"id": "5725767000000000402"}, "Scone", 1.0),
        ({"id": second}, {"id": "5725767000000000402"}, "Scone", 3.0),
    ]
    assert rows[2]["Line_Tax"] == [{"name": "GST", "percentage": 15.0}]
    stored = crm.get(f"Invoices/{first}").json()["data"][0]["Invoiced_Items"]
    assert [r["id"] for r in rows[:2]] == [line["id"] for line in stored]  # the lines' own ids, in order
    many = ", ".join(f"'{5725767000000000500 + i}'" for i in range(51))
    too_many = _coql(crm, f"select Quantity from Invoiced_Items where Parent_Id in ({many})")
    assert too_many.status_code == 400 and too_many.json()["code"] == "LIMIT_EXCEEDED"
    too_long = _coql(crm, f"select Quantity from Invoiced_Items where Parent_Id = '{first}' limit 2001")
    assert too_long.json()["code"] == "LIMIT_EXCEEDED"
    # The subform stays out of its parent's columns: only its own module serves it.
    assert _coql(crm, "select Invoiced_Items from Invoices").json()["code"] == "INVALID_QUERY"


@pytest.mark.parametrize(
    "scopes",
    ["ZohoCRM.modules.ALL", "ZohoCRM.coql.READ,ZohoCRM.modules.Deals.READ"],
    ids=["no-coql", "no-invoices"],
)
def test_coql_on_a_subform_needs_coql_and_the_parent_modules_scope(scopes):
    org = make_org(scopes=scopes)
    _invoices(org)
    refused = _coql(org, "select Quantity from Invoiced_Items where Parent_Id = '5725767000000000500'")
    assert refused.status_code == 401 and refused.json()["code"] == "OAUTH_SCOPE_MISMATCH"
