"""Normal forms for the facts two systems type differently: names, e-mails, phones, addresses, tax numbers.

Entity resolution compares these forms, never the raw text: "The Müller & Söhne GmbH" in the books and
"Mueller and Soehne" in the CRM are one company, "+64 9 555 0100" and "(09) 555-0100" one phone. Each
function takes one value (None or blank -> None) and is pure, so the matcher can apply it once per
distinct value of a column (`map_unique`) and stay fast at 40,000 customers.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Hashable
from functools import lru_cache

import pandas as pd
import phonenumbers

# ---------------------------------------------------------------------------------------------
# Text folding


# Letters NFKD does not decompose, and German umlauts written the way Germans transliterate them
# ("Müller" -> "Mueller", the spelling an ASCII-only system stores).
_FOLD = str.maketrans(
    {
        "ß": "ss", "ẞ": "ss", "ø": "o", "Ø": "o", "æ": "ae", "Æ": "ae", "œ": "oe", "Œ": "oe", "ł": "l",
        "Ł": "l", "đ": "d", "Đ": "d", "ð": "d", "þ": "th", "Þ": "th", "ı": "i", "ä": "ae", "ö": "oe",
        "ü": "ue", "Ä": "ae", "Ö": "oe", "Ü": "ue",
    }
)  # fmt: skip


def _blank(value: object) -> bool:
    """None, NaN, pandas' NA or whitespace."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return True
    return not str(value).strip()


def fold(text: str) -> str:
    """Lower-case ASCII-ish text: compatibility forms unified (full-width letters, ligatures), German
    umlauts transliterated, other accents dropped ("Zoë" -> "zoe"), case folded."""
    if text.isascii():  # most names and addresses: NFKC and NFKD change nothing there
        return text.lower()
    text = unicodedata.normalize("NFKC", text).translate(_FOLD)
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


# ---------------------------------------------------------------------------------------------
# Company names

# Legal forms stripped from the end of a name (token by token, so "Pty Ltd", "GmbH & Co. KG" and
# "S.A.R.L." all go). A form is dropped only at the end (or, for the French forms, at the start):
# "Co" inside "Smith & Co Plumbing" is part of the name.
LEGAL_SUFFIXES = frozenset(
    [
        "ltd",
        "limited",
        "pty",
        "proprietary",
        "inc",
        "incorporated",
        "llc",
        "llp",
        "lp",
        "lllp",
        "plc",
        "corp",
        "corporation",
        "co",
        "company",
        "cos",
        "gmbh",
        "mbh",
        "ag",
        "kg",
        "ohg",
        "ug",
        "se",
        "ev",
        "sarl",
        "sas",
        "sasu",
        "eurl",
        "sa",
        "sl",
        "srl",
        "spa",
        "bv",
        "nv",
        "oy",
        "ab",
        "as",
        "aps",
        "asa",
        "kk",
        "pte",
        "pvt",
        "private",
        "pc",
        "pllc",
    ]
)
_LEADING_LEGAL = frozenset({"sarl", "sas", "sasu", "eurl"})
# Words for "and" in the languages of the customers; "&" is one of them.
_AND = frozenset({"and", "und", "et"})
_JOINERS = re.compile(r"[.'’`´]")  # "S.A.R.L." -> "sarl", "O'Brien" -> "obrien"
_SEPARATORS = re.compile(r"[^0-9a-z]+")
# A transliterated umlaut and its accent-stripped spelling are the same letter: "mueller" = "muller".
_DIGRAPHS = re.compile(r"([aou])e")


@lru_cache(maxsize=262_144)
def name_key(name: str | None) -> str | None:
    """A company or person name with its spelling variants removed: case, accents and umlauts,
    punctuation, "&"/"and", a leading "The" and trailing legal forms. Readable (for evidence and
    tests); `match_key` is what two names are compared by."""
    if _blank(name):
        return None
    text = fold(str(name)).replace("&", " and ").replace("+", " and ")
    text = _JOINERS.sub("", text)
    words = [w for w in _SEPARATORS.split(text) if w]
    if words and words[0] == "the" and len(words) > 1:
        words = words[1:]
    if len(words) > 1 and words[0] in _LEADING_LEGAL:
        words = words[1:]
    core = list(words)
    while core and (core[-1] in LEGAL_SUFFIXES or core[-1] in _AND):
        core.pop()
    core = [w for w in core if w not in _AND]
    if not core:  # a name that is nothing but legal words ("The Company Ltd") keeps them
        core = [w for w in words if w not in _AND] or words
    return " ".join(core) or None


@lru_cache(maxsize=262_144)
def match_key(name: str | None) -> str | None:
    """`name_key` with transliterated umlauts folded once more ("mueller" -> "muller"), so the
    German, the accent-stripped and the original spelling of a name all meet."""
    key = name_key(name)
    return _DIGRAPHS.sub(r"\1", key) if key else None


# ---------------------------------------------------------------------------------------------
# E-mail addresses and domains

# Mailbox providers anyone can sign up to: a shared domain there says nothing about the company.
FREE_MAIL_DOMAINS = frozenset(
    [
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "outlook.fr",
        "outlook.de",
        "outlook.co.uk",
        "hotmail.com",
        "hotmail.co.uk",
        "hotmail.fr",
        "hotmail.de",
        "live.com",
        "live.co.uk",
        "live.fr",
        "msn.com",
        "yahoo.com",
        "yahoo.co.uk",
        "yahoo.fr",
        "yahoo.de",
        "yahoo.com.au",
        "ymail.com",
        "rocketmail.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "aol.com",
        "aim.com",
        "proton.me",
        "protonmail.com",
        "pm.me",
        "gmx.de",
        "gmx.net",
        "gmx.com",
        "gmx.at",
        "gmx.ch",
        "web.de",
        "t-online.de",
        "freenet.de",
        "orange.fr",
        "wanadoo.fr",
        "free.fr",
        "laposte.net",
        "sfr.fr",
        "neuf.fr",
        "btinternet.com",
        "btopenworld.com",
        "sky.com",
        "virginmedia.com",
        "talktalk.net",
        "ntlworld.com",
        "bigpond.com",
        "bigpond.net.au",
        "optusnet.com.au",
        "iinet.net.au",
        "tpg.com.au",
        "xtra.co.nz",
        "slingshot.co.nz",
        "orcon.net.nz",
        "vodafone.co.nz",
        "spark.co.nz",
        "mail.com",
        "email.com",
        "zoho.com",
        "zohomail.com",
        "yandex.com",
        "yandex.ru",
        "mail.ru",
        "qq.com",
        "163.com",
        "126.com",
        "fastmail.com",
        "hey.com",
        "tutanota.com",
        "tuta.io",
        "comcast.net",
        "verizon.net",
        "att.net",
        "sbcglobal.net",
        "cox.net",
        "earthlink.net",
    ]
)
# Providers that register the same name under many country domains (yahoo.co.jp, hotmail.it, ...).
_FREE_MAIL_NAMES = frozenset({"gmail", "googlemail", "hotmail", "outlook", "live", "yahoo", "ymail", "icloud",
                              "aol", "gmx", "protonmail", "yandex", "mail"})  # fmt: skip
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@lru_cache(maxsize=262_144)
def email_key(email: str | None) -> str | None:
    """An address trimmed and case-folded (the domain is case-insensitive and no mailbox provider
    anyone uses treats the local part's case as meaningful); None unless it looks like one address.
    A list ("a@x.com; b@x.com") gives its first address."""
    if _blank(email):
        return None
    text = str(email).strip().casefold()
    if text.startswith("mailto:"):
        text = text[7:]
    text = re.split(r"[;,\s]+", text.strip())[0].strip("<>")
    return text if _EMAIL.match(text) else None


def email_domain(email: str | None) -> str | None:
    key = email_key(email)
    return key.rpartition("@")[2] if key else None


def is_free_mail(domain: str | None) -> bool:
    """True for public mailbox providers (gmail.com, hotmail.co.uk, web.de, xtra.co.nz, ...)."""
    if not domain:
        return False
    domain = domain.casefold()
    return domain in FREE_MAIL_DOMAINS or domain.split(".")[0] in _FREE_MAIL_NAMES


def company_domain(email: str | None) -> str | None:
    """The e-mail's domain when it can identify a company (not a free-mail provider)."""
    domain = email_domain(email)
    return None if domain is None or is_free_mail(domain) else domain


def web_domain(url: str | None) -> str | None:
    """The host of a website as people type it ("https://www.Acme.co.nz/about" -> "acme.co.nz")."""
    if _blank(url):
        return None
    text = str(url).strip().casefold()
    text = re.sub(r"^[a-z][a-z0-9+.-]*://", "", text)
    text = text.split("/")[0].split("?")[0].split("#")[0].rpartition("@")[2].split(":")[0].strip(".")
    if text.startswith("www.") or re.match(r"^www\d\.", text):
        text = text.split(".", 1)[1]
    return text if "." in text and re.fullmatch(r"[a-z0-9.-]+", text) else None


# ---------------------------------------------------------------------------------------------
# Countries and phone numbers

# What people type for a country, folded (see `fold`) and stripped of dots -> ISO 3166 alpha-2.
_COUNTRY_ALIASES = {
    "new zealand": "NZ", "nz": "NZ", "aotearoa": "NZ", "australia": "AU", "au": "AU", "aus": "AU",
    "united kingdom": "GB", "uk": "GB", "gb": "GB", "great britain": "GB", "britain": "GB", "england": "GB",
    "scotland": "GB", "wales": "GB", "northern ireland": "GB", "united states": "US",
    "united states of america": "US", "usa": "US", "us": "US", "america": "US", "germany": "DE",
    "deutschland": "DE", "de": "DE", "france": "FR", "fr": "FR", "ireland": "IE", "eire": "IE",
    "canada": "CA", "netherlands": "NL", "the netherlands": "NL", "holland": "NL", "nederland": "NL",
    "belgium": "BE", "belgique": "BE", "belgie": "BE", "switzerland": "CH", "schweiz": "CH", "suisse": "CH",
    "austria": "AT", "osterreich": "AT", "oesterreich": "AT", "spain": "ES", "espana": "ES", "italy": "IT",
    "italia": "IT", "portugal": "PT", "sweden": "SE", "sverige": "SE", "norway": "NO", "norge": "NO",
    "denmark": "DK", "danmark": "DK", "finland": "FI", "suomi": "FI", "poland": "PL", "polska": "PL",
    "japan": "JP", "china": "CN", "hong kong": "HK", "singapore": "SG", "india": "IN", "south africa": "ZA",
    "mexico": "MX", "brazil": "BR", "brasil": "BR", "fiji": "FJ", "samoa": "WS", "tonga": "TO",
    "cook islands": "CK", "papua new guinea": "PG", "luxembourg": "LU", "czech republic": "CZ",
    "czechia": "CZ", "greece": "GR", "united arab emirates": "AE", "uae": "AE", "israel": "IL",
    "south korea": "KR", "korea": "KR", "malaysia": "MY", "indonesia": "ID", "philippines": "PH",
    "thailand": "TH", "vietnam": "VN", "argentina": "AR", "chile": "CL",
}  # fmt: skip


@lru_cache(maxsize=4096)
def country_code(country: str | None) -> str | None:
    """ISO 3166 alpha-2 for a country as typed ("N.Z.", "U.S.A.", "Deutschland", "gb"); None when unknown."""
    if _blank(country):
        return None
    text = " ".join(_SEPARATORS.split(fold(str(country)).replace(".", ""))).strip()
    if text in _COUNTRY_ALIASES:
        return _COUNTRY_ALIASES[text]
    upper = text.upper()
    return upper if len(upper) == 2 and upper in phonenumbers.SUPPORTED_REGIONS else None


# What people type between a phone number's digits; anything else (letters: "ext. 12", "1-800-FLOWERS")
# is left for phonenumbers to read whole.
_PHONE_SEPARATORS = re.compile(r"[\s\-().\/\u00a0\u2010-\u2015]")


def phone_compact(phone: str) -> str:
    """A phone as typed minus the separators people put between digits ("(09) 555-0100" -> "095550100")."""
    return _PHONE_SEPARATORS.sub("", phone.strip())


def phone_e164(phone: str | None, region: str | None = None) -> str | None:
    """A phone number in E.164 ("+6495550100"), read with `region` (ISO alpha-2) as the default for
    numbers typed without a country code; None when it cannot be a phone number there."""
    if _blank(phone):
        return None
    text = str(phone).strip()
    compact = phone_compact(text)
    digits = compact[1:] if compact.startswith("+") else compact
    if digits.isdigit() and digits.isascii():
        # Separators carry no meaning to phonenumbers: one parse serves every way of typing a number
        # ("+64 9 555 0100" = "+6495550100"; "(09) 555-0100" = "09 555 0100"), and an international
        # number does not depend on the region.
        return _parse_e164(compact, None if compact.startswith("+") else region)
    return _parse_e164(text, region)


@lru_cache(maxsize=262_144)
def _parse_e164(text: str, region: str | None) -> str | None:
    try:
        parsed = phonenumbers.parse(text, region if region else None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


# ---------------------------------------------------------------------------------------------
# Tax and account numbers


def tax_key(tax_number: str | None) -> str | None:
    """Letters and digits only, upper case, and an EU-style country prefix dropped ("GB 123 4567 89"
    and "123456789" are one VAT number; "12-345-678" and "12345678" one GST number)."""
    if _blank(tax_number):
        return None
    text = re.sub(r"[^0-9A-Z]", "", fold(str(tax_number)).upper())
    if re.match(r"^[A-Z]{2}\d", text):
        text = text[2:]
    return text if len(text) >= 4 else None


def code_key(code: str | None) -> str | None:
    """An account number or customer code: case and separators ignored ("CUST-1001" = "cust 1001")."""
    if _blank(code):
        return None
    text = re.sub(r"[^0-9a-z]", "", fold(str(code)))
    return text or None


# ---------------------------------------------------------------------------------------------
# Addresses

# Street words and their usual abbreviations -> one spelling (the short one).
_STREET_WORDS = {
    "street": "st", "str": "st", "road": "rd", "avenue": "ave", "av": "ave", "lane": "ln", "drive": "dr",
    "boulevard": "blvd", "bd": "blvd", "bvd": "blvd", "parade": "pde", "place": "pl", "court": "ct",
    "crescent": "cres", "terrace": "tce", "highway": "hwy", "square": "sq", "esplanade": "esp",
    "parkway": "pkwy", "circle": "cir", "close": "cl", "grove": "gr", "way": "wy", "quay": "qy",
    "level": "lvl", "floor": "fl", "flr": "fl", "suite": "ste", "building": "bldg", "unit": "u",
    "apartment": "apt", "post office box": "po box", "rue": "r", "allee": "all", "chemin": "ch",
    "platz": "pl", "weg": "wg", "gasse": "g", "north": "n", "south": "s", "east": "e", "west": "w",
}  # fmt: skip
_STRASSE = re.compile(r"(strasse|str)$")


@lru_cache(maxsize=262_144)
def street_key(street: str | None) -> str | None:
    """A street line with case, accents, punctuation and street-word abbreviations unified:
    "12 Queen Street, Level 2" = "12 QUEEN ST, Lvl 2"; "Hauptstraße 5" = "Hauptstr. 5"."""
    if _blank(street):
        return None
    words = []
    for word in _SEPARATORS.split(fold(str(street))):
        if not word:
            continue
        if len(word) > 6 and _STRASSE.search(word):  # German compounds: "hauptstrasse", "hauptstr"
            word = _STRASSE.sub("st", word)
        words.append(_STREET_WORDS.get(word, word))
    return " ".join(words) or None


def postal_key(postal_code: str | None) -> str | None:
    if _blank(postal_code):
        return None
    return re.sub(r"[^0-9A-Z]", "", str(postal_code).upper()) or None


def city_key(city: str | None) -> str | None:
    if _blank(city):
        return None
    return " ".join(w for w in _SEPARATORS.split(fold(str(city))) if w) or None


# ---------------------------------------------------------------------------------------------
# Columns


def map_unique(series: pd.Series, fn: Callable[[object], Hashable | None]) -> pd.Series:
    """`fn` applied once per distinct value of `series` (names and e-mails repeat; None stays None)."""
    values = series.astype(object).where(series.notna(), None).tolist()
    lookup = {v: fn(v) for v in set(values) if v is not None}
    return pd.Series([lookup[v] if v is not None else None for v in values], index=series.index, dtype=object)
