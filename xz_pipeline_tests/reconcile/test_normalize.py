"""The normal forms on the cases that break naive matchers: accents, unicode, "The", "&", legal
suffixes, transliteration, punctuation, lookalike companies; e-mails, phones, addresses, tax numbers."""

from __future__ import annotations

import pandas as pd
import pytest
from rapidfuzz import fuzz

from xz_pipeline.reconcile.normalize import (
    city_key,
    code_key,
    company_domain,
    country_code,
    email_domain,
    email_key,
    fold,
    is_free_mail,
    map_unique,
    match_key,
    name_key,
    phone_e164,
    postal_key,
    street_key,
    tax_key,
    web_domain,
)

SAME_COMPANY = [
    # accents and unicode
    ("Zoë Dupré Studio", "Zoe Dupre Studio"),
    ("Café Crème SARL", "Cafe\u0301 Cre\u0300me SARL"),  # precomposed vs combining accents
    ("Ｔｏｋｙｏ Ｔｒａｄｉｎｇ Ltd", "Tokyo Trading Ltd"),  # full-width letters
    ("Eﬃcient Oﬃce Supplies", "Efficient Office Supplies"),  # ligatures
    ("Søren\u00a0Hansen ApS", "Soren Hansen"),  # no-break space, ø, Danish suffix
    ("Łódź Imports", "Lodz Imports"),
    # transliteration: the German spelling, the accent-stripped one and the original all meet
    ("Müller & Söhne GmbH", "Mueller & Soehne GmbH"),
    ("Müller & Söhne GmbH", "Muller und Sohne"),
    ("Weiß Bäckerei GmbH", "Weiss Baeckerei Gmbh"),
    ("Schröder Logistik AG", "Schroder Logistik A.G."),
    # "The", "&"/"and"
    ("The Golden Press LLC", "Golden Press L.L.C."),
    ("Smith & Sons Plumbing", "Smith and Sons Plumbing"),
    ("Smith & Sons Plumbing", "SMITH AND SONS PLUMBING"),
    ("Dupont & Fils", "Dupont et Fils"),
    # legal suffixes
    ("Acme Ltd", "Acme Limited"),
    ("Acme Ltd", "ACME LTD."),
    ("Harbour Freight Pty Ltd", "Harbour Freight PTY LIMITED"),
    ("Harbour Freight Pty Ltd", "Harbour Freight Proprietary Limited"),
    ("Copper Table Inc", "Copper Table, Incorporated"),
    ("Copper Table Inc", "Copper Table Corp."),
    ("Hoffmann Bau GmbH & Co. KG", "Hoffmann Bau GmbH & Co KG"),
    ("Hoffmann Bau GmbH & Co. KG", "Hoffmann Bau"),
    ("Boulangerie Martin SARL", "Boulangerie Martin S.A.R.L."),
    ("SAS Lefèvre Conseil", "Lefevre Conseil SAS"),
    ("Northwind Traders PLC", "Northwind Traders plc"),
    ("Smith & Co", "Smith and Company"),
    # punctuation and case
    ("O'Brien Plumbing Inc.", "OBrien Plumbing, Inc."),
    ("Jean-Luc Conseil", "Jean Luc Conseil"),
    ("blue wave media", "BLUE WAVE MEDIA"),
]

DIFFERENT_COMPANIES = [
    # lookalikes: one extra word, another trade, another first name
    ("Acme Ltd", "Acme Labs Ltd"),
    ("Smith & Sons Plumbing", "Smith and Sons Electrical"),
    ("Sam Taylor Builders", "Tom Taylor Builders"),
    # "Co" inside a name is part of it, not a legal form
    ("Smith & Co Plumbing", "Smith Plumbing"),
]


@pytest.mark.parametrize(("a", "b"), SAME_COMPANY)
def test_spelling_variants_share_a_match_key(a, b):
    assert match_key(a) == match_key(b), (name_key(a), name_key(b))


@pytest.mark.parametrize(("a", "b"), DIFFERENT_COMPANIES)
def test_lookalike_companies_keep_different_keys(a, b):
    assert match_key(a) != match_key(b)


def test_lookalike_scores_stay_below_a_typo():
    """The fuzzy score separates a typo (same company) from a lookalike (another company)."""
    typo = fuzz.ratio(match_key("Riverside Joinery Ltd"), match_key("Riverside Jionery Ltd"))
    lookalikes = [fuzz.ratio(match_key(a), match_key(b)) for a, b in DIFFERENT_COMPANIES]
    assert typo >= 90
    assert max(lookalikes) < typo
    assert fuzz.ratio(match_key("Acme Ltd"), match_key("Acme Labs Ltd")) < 75


def test_name_key_is_readable_and_keeps_a_name_made_of_legal_words():
    assert name_key("The Müller & Söhne GmbH") == "mueller soehne"
    assert match_key("The Müller & Söhne GmbH") == "muller sohne"
    assert name_key("The Company Ltd") == "company ltd"  # nothing left but legal words: they stay
    assert name_key("The") == "the"
    assert name_key("  ") is None and name_key(None) is None and match_key(float("nan")) is None
    assert name_key(pd.NA) is None


def test_fold():
    assert fold("ÉCOLE Ørsted Straße") == "ecole orsted strasse"
    assert fold("Plain ASCII") == "plain ascii"


def test_email_keys_and_domains():
    assert email_key("  John.Smith@ACME.co.nz ") == "john.smith@acme.co.nz"
    assert email_key("mailto:Ann@x.com") == "ann@x.com"
    assert email_key("a@x.com; b@x.com") == "a@x.com"
    assert email_key("not an email") is None and email_key("a@b") is None and email_key(None) is None
    assert email_domain("Ann@Acme.COM") == "acme.com"
    assert company_domain("ann@acme.com") == "acme.com"
    for free in (
        "x@gmail.com",
        "x@hotmail.co.uk",
        "x@yahoo.co.jp",
        "x@web.de",
        "x@xtra.co.nz",
        "x@orange.fr",
    ):
        assert company_domain(free) is None, free
        assert is_free_mail(email_domain(free))
    assert not is_free_mail("acme.com") and not is_free_mail(None)


def test_web_domains():
    assert web_domain("https://www.Acme.co.nz/about?x=1") == "acme.co.nz"
    assert web_domain("www.acme.com") == "acme.com"
    assert web_domain("acme.com:8080") == "acme.com"
    assert web_domain("http://user@shop.acme.com") == "shop.acme.com"
    assert web_domain("n/a") is None and web_domain("") is None


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("+64 9 555 0100", None, "+6495550100"),
        ("(09) 555-0100", "NZ", "+6495550100"),
        ("09 555 0100", "NZ", "+6495550100"),
        ("+6495550100", "DE", "+6495550100"),  # an international number ignores the default region
        ("0221/2546396", "DE", "+492212546396"),
        ("0049 221 2546396", "NZ", "+492212546396"),
        ("(503) 777-5877", "US", "+15037775877"),
        ("503-777-5877", "US", "+15037775877"),
        ("+1 503 777 5877 ext. 12", None, "+15037775877"),
        ("01 42 68 53 00", "FR", "+33142685300"),
        ("01.42.68.53.00", "FR", "+33142685300"),
        ("+44 (0)20 7946 0000", None, "+442079460000"),
    ],
)
def test_phones_in_e164(raw, region, e164):
    assert phone_e164(raw, region) == e164


def test_phones_that_cannot_be_placed():
    assert phone_e164("09 555 0100", None) is None  # national number, no region
    assert phone_e164("12", "NZ") is None
    assert phone_e164("call me", "NZ") is None
    assert phone_e164(None, "NZ") is None


@pytest.mark.parametrize(
    ("typed", "code"),
    [("New Zealand", "NZ"), ("N.Z.", "NZ"), ("new zealand", "NZ"), ("U.S.A.", "US"), ("United States of America", "US"),
     ("Deutschland", "DE"), ("germany", "DE"), ("UK", "GB"), ("United Kingdom", "GB"), ("France", "FR"),
     ("Österreich", "AT"), ("de", "DE"), ("JP", "JP")],
)  # fmt: skip
def test_country_codes(typed, code):
    assert country_code(typed) == code


def test_unknown_country():
    assert country_code("Narnia") is None and country_code("XX") is None and country_code(None) is None


def test_street_keys():
    assert street_key("12 Queen Street, Level 2") == street_key("12 QUEEN ST, Lvl 2")
    assert street_key("Hauptstraße 12") == street_key("Hauptstr. 12") == street_key("HAUPTSTRASSE 12")
    assert street_key("27 Mill Lane") == street_key("27 Mill Ln")
    assert street_key("5 Boulevard Haussmann") == street_key("5 bd Haussmann")
    assert street_key("12 Queen Street") != street_key("14 Queen Street")
    assert city_key("BIRMINGHAM") == city_key("Birmingham")
    assert postal_key("b1 1aa") == postal_key("B11AA")


def test_tax_and_account_numbers():
    assert tax_key("GB 123 4567 89") == tax_key("123456789")
    assert tax_key("12-345-678") == tax_key("12 345 678") == "12345678"
    assert tax_key("DE123456789") != tax_key("DE123456780")
    assert tax_key("n/a") is None
    assert code_key("CUST-1001") == code_key("cust 1001")


def test_map_unique_keeps_index_and_blanks():
    s = pd.Series(["Acme Ltd", None, "ACME LIMITED", float("nan")], index=[10, 11, 12, 13])
    out = map_unique(s, match_key)
    assert list(out.index) == [10, 11, 12, 13]
    assert out.tolist() == ["acme", None, "acme", None]
