"""What the emulator serves validates against Intuit's XSDs (Finance.xsd via IntuitRestServiceDef.xsd).

QBO's JSON mirrors the XSD types: each JSON object is turned into the XML element it stands for, in the
namespace http://schema.intuit.com/finance/v3, with children in the schema's order; a reference
(`{"value", "name"}`) becomes simple content with a `name` attribute; `domain`/`sparse`/`status` are the
entity's attributes. A JSON key the schema does not declare fails the test, as does an invalid value.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from typing import Any
from xml.etree import ElementTree

import pytest

from xz_pipeline_tests.conftest import specs_dir
from xz_pipeline_tests.sandbox.quickbooks.support import connect

NS = "http://schema.intuit.com/finance/v3"
ENTITIES = ("Customer", "Vendor", "Invoice", "Estimate", "Payment", "CreditMemo", "Item", "Account", "Bill", "BillPayment",
            "TaxCode", "TaxRate", "Term", "CompanyInfo")  # fmt: skip


@lru_cache(maxsize=1)
def _schema():
    import xmlschema

    root = specs_dir()
    if root is None or not (root / "quickbooks" / "IntuitRestServiceDef.xsd").is_file():
        return None
    return xmlschema.XMLSchema(str(root / "quickbooks" / "IntuitRestServiceDef.xsd"))


@pytest.fixture(scope="module")
def schema():
    found = _schema()
    if found is None:
        pytest.skip(
            "Intuit's XSDs not found: set XZ_SPECS_DIR or place shared/specs (quickbooks/) beside the checkout"
        )
    return found


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format(Decimal(repr(value)), "f")
    return str(value)


def to_element(decl, value: Any, unknown: list[str], where: str) -> ElementTree.Element:
    """The XML element `decl` (an xmlschema element declaration) for one JSON value."""
    elem = ElementTree.Element(decl.name)
    xtype = decl.type
    attributes = {a.split("}")[-1] for a in getattr(xtype, "attributes", {}) or {}}
    if xtype.has_simple_content():
        if isinstance(value, dict):
            elem.text = _text(value.get("value", ""))
            for key, v in value.items():
                if key == "value":
                    continue
                if key in attributes:
                    elem.set(key, _text(v))
                else:
                    unknown.append(f"{where}.{key}")
        else:
            elem.text = _text(value)
        return elem
    if not isinstance(value, dict):
        unknown.append(f"{where} (a {type(value).__name__} where the schema has a complex type)")
        return elem
    children = {child.local_name: child for child in xtype.content.iter_elements()}
    for key, v in value.items():
        if key in attributes:
            elem.set(key, _text(v))
        elif key not in children:
            unknown.append(f"{where}.{key}")
    for name, child in children.items():
        if name in value and value[name] is not None:
            for item in value[name] if isinstance(value[name], list) else [value[name]]:
                elem.append(to_element(child, item, unknown, f"{where}.{name}"))
    return elem


def _validate(schema, entity: str, obj: dict) -> None:
    unknown: list[str] = []
    decl = schema.maps.elements[f"{{{NS}}}{entity}"]
    elem = to_element(decl, obj, unknown, entity)
    assert not unknown, f"{entity} {obj.get('Id')}: keys the XSD does not declare: {unknown}"
    errors = [str(e.reason or e)[:300] for e in schema.iter_errors(elem)]
    assert not errors, f"{entity} {obj.get('Id')}: {errors[:3]}"


@pytest.mark.parametrize("profile", ["us", "uk"])
def test_served_entities_validate_against_intuits_xsd(schema, profile):
    qbo = connect(profile)
    seen = {}
    for entity in ENTITIES:
        rows = qbo.rows(f"select * from {entity} maxresults 40")
        assert rows or entity in ("Vendor", "Bill", "BillPayment"), entity
        for row in rows:
            _validate(schema, entity, row)
        seen[entity] = len(rows)
    # what clients read by id and what writes answer, too
    prefs = qbo.http.get(f"{qbo.base}/preferences", headers=qbo.headers()).json()["Preferences"]
    # the sales-form custom field definitions are JSON's shape of an abstract XSD type (CustomFieldDefinition,
    # an xsi:type in XML): checked by value here, the rest of Preferences by the schema
    custom = prefs["SalesFormsPrefs"].pop("CustomField")
    assert custom[1]["CustomField"][0] == {"Name": "SalesFormsPrefs.SalesCustomName1", "Type": "StringType",
                                           "StringValue": "Reference"}  # fmt: skip
    _validate(schema, "Preferences", prefs)
    _validate(schema, "CompanyInfo", qbo.get("CompanyInfo", qbo.realm).json()["CompanyInfo"])
    made = qbo.post(
        "Customer", {"DisplayName": "Schema Checked", "BillAddr": {"Line1": "1 Main St", "City": "Leeds"}}
    )
    _validate(schema, "Customer", made.json()["Customer"])
    assert seen["Invoice"] == 40 and seen["Payment"] == 40 and seen["Customer"] == 40


def test_a_key_outside_the_schema_is_caught(schema):
    unknown: list[str] = []
    to_element(
        schema.maps.elements[f"{{{NS}}}Customer"], {"Id": "1", "ContactNumber": "x"}, unknown, "Customer"
    )
    assert unknown == ["Customer.ContactNumber"]
    elem = to_element(
        schema.maps.elements[f"{{{NS}}}Invoice"], {"Id": "1", "TotalAmt": "lots"}, [], "Invoice"
    )
    assert list(schema.iter_errors(elem))  # a value of the wrong type fails validation
