"""How the same fact gets typed differently: name variants, phone formats, address spellings.

Every function here produces either a *harmless variant* (the same customer, typed another way)
or, where named so, a *genuinely different* value for an injected disagreement. Keeping both in
one place makes the boundary between them easy to audit.
"""

from __future__ import annotations

import random
import unicodedata
from functools import lru_cache

from xz_pipeline.sandbox.world.model import Address
from xz_pipeline.sandbox.world.vocab import COUNTRIES, LINE2_ABBREV, STREET_ABBREV, Country

_TRANSLIT = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue", "ß": "ss"})
_SPECIAL_FOLD = str.maketrans({"ß": "ss", "ø": "o", "Ø": "O", "æ": "ae", "Æ": "AE", "ł": "l", "đ": "d"})


@lru_cache(maxsize=65_536)
def strip_accents(text: str) -> str:
    """'Zoë Dupré' -> 'Zoe Dupre' (what a US keyboard or an old CRM import leaves)."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_SPECIAL_FOLD))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def transliterate(text: str) -> str:
    """German convention: 'Müller' -> 'Mueller', 'Weiß' -> 'Weiss'."""
    return text.translate(_TRANSLIT)


def has_umlaut(text: str) -> bool:
    return any(ch in "äöüÄÖÜß" for ch in text)


def has_accent(text: str) -> bool:
    return strip_accents(text) != text


@lru_cache(maxsize=65_536)
def ascii_slug(text: str) -> str:
    """Lower-case ASCII letters and digits only: for e-mail local parts and domains."""
    folded = strip_accents(transliterate(text)).lower()
    return "".join(ch for ch in folded if ch.isalnum())


# --------------------------------------------------------------------------------------------
# Company-name variants (harmless: the same company)


def legal_suffix_of(name: str, country: Country) -> str:
    for suffix, _ in sorted(country.legal, key=lambda p: -len(p[0])):
        if name.endswith(" " + suffix):
            return suffix
    return ""


def swap_legal_suffix(name: str, country: Country) -> str:
    """'Acme Ltd' -> 'Acme Limited'; '' when the name carries no suffix of that country."""
    suffix = legal_suffix_of(name, country)
    if not suffix:
        return ""
    variant = next(v for s, v in country.legal if s == suffix)
    return name[: -len(suffix)] + variant


def swap_ampersand(name: str) -> str:
    if " & " in name:
        return name.replace(" & ", " and ", 1)
    if " and " in name:
        return name.replace(" and ", " & ", 1)
    return ""


def toggle_the(name: str) -> str:
    return name[4:] if name.startswith("The ") else "The " + name


def change_case(name: str, rng: random.Random) -> str:
    variant = name.upper() if rng.random() < 0.6 else name.lower()
    return variant if variant != name else ""


def punctuate(name: str, country: Country) -> str:
    """Add or drop punctuation a person might type: 'Acme Ltd.' / 'O'Brien' -> 'OBrien' / 'Acme, Inc.'."""
    if "'" in name:
        return name.replace("'", "")
    if "-" in name:
        return name.replace("-", " ")
    suffix = legal_suffix_of(name, country)
    if suffix and not suffix.endswith("."):
        if suffix.startswith("Inc") or suffix == "LLC":
            return name[: -len(suffix) - 1] + ", " + suffix + "."
        return name + "."
    return ""


_KEY_NEIGHBOURS = {
    "a": "s", "b": "v", "c": "x", "d": "s", "e": "r", "f": "g", "g": "h", "h": "j", "i": "o", "j": "k",
    "k": "l", "l": "k", "m": "n", "n": "m", "o": "p", "p": "o", "q": "w", "r": "t", "s": "a", "t": "r",
    "u": "y", "v": "b", "w": "e", "x": "z", "y": "t", "z": "x",
}  # fmt: skip


def typo(name: str, rng: random.Random) -> str:
    """Exactly one Levenshtein edit (drop, double or mistype a letter) inside the longest word."""
    words = name.split(" ")
    idx = max(range(len(words)), key=lambda i: (len(words[i]) if words[i].isalpha() else 0, -i))
    word = words[idx]
    if len(word) < 4 or not word.isalpha():
        return ""
    pos = rng.randrange(1, len(word) - 1)
    op = rng.randrange(3)
    ch = word[pos]
    if op == 0 and word[pos - 1] != ch and word[pos + 1] != ch:
        new = word[:pos] + word[pos + 1 :]
    elif op == 1:
        new = word[:pos] + ch + word[pos:]
    else:
        sub = _KEY_NEIGHBOURS.get(ch.lower(), "e")
        if sub == ch.lower():
            sub = "a" if ch.lower() != "a" else "e"
        new = word[:pos] + (sub.upper() if ch.isupper() else sub) + word[pos + 1 :]
    words[idx] = new
    result = " ".join(words)
    return result if result != name else ""


def name_key(name: str) -> str:
    """A collision key for distinct customers: case, accents, '&', 'The', punctuation and legal
    suffixes removed. Two different customers never share a key (except deliberate same-name
    lookalikes), so a name variant never collides with another customer's name."""
    text = strip_accents(transliterate(name)).lower().replace("&", " and ")
    text = "".join(ch if ch.isalnum() else " " for ch in text)
    words = [w for w in text.split() if w]
    if words and words[0] == "the":
        words = words[1:]
    drop = {"ltd", "limited", "pty", "inc", "incorporated", "llc", "l", "c", "corp", "corporation", "gmbh"}
    drop |= {"ag", "a", "g", "co", "kg", "llp", "p", "plc", "sarl", "s", "r", "sas", "and"}
    return " ".join(w for w in words if w not in drop)


# --------------------------------------------------------------------------------------------
# Phones: a phone is (country code, area, subscriber digits); how it is typed is a style.

PHONE_STYLES = 4


def _group(country: str, sub: str) -> str:
    if country == "FR":
        return " ".join(sub[i : i + 2] for i in range(0, len(sub), 2))
    if country == "DE":
        return sub
    if len(sub) == 6:
        return f"{sub[:3]} {sub[3:]}"
    if len(sub) == 7:
        return f"{sub[:3]} {sub[3:]}"
    return f"{sub[:4]} {sub[4:]}"


def render_phone(country_code: str, area: str, sub: str, style: int) -> str:
    """'+64 9 555 0100' (0), '09 555 0100' (1), '(09) 555-0100' (2), '+6495550100' (3)."""
    c = COUNTRIES[country_code]
    grouped = _group(country_code, sub)
    national_area = c.trunk + area
    if style == 0:
        return f"+{c.dial} {area} {grouped}"
    if style == 3:
        return f"+{c.dial}{area}{sub}"
    if country_code == "US":
        if style == 1:
            return f"({area}) {sub[:3]}-{sub[3:]}"
        return f"{area}-{sub[:3]}-{sub[3:]}"
    if style == 1:
        return f"{national_area} {grouped}"
    if country_code == "FR":
        return ".".join([national_area] + grouped.split(" "))
    if country_code == "DE":
        return f"{national_area}/{sub}"
    head, _, tail = grouped.rpartition(" ")
    return f"({national_area}) {head}-{tail}" if head else f"({national_area}) {tail}"


def subscriber_length(country: Country, area: str, mobile: bool) -> int:
    if country.code in ("GB", "DE"):
        return 10 - len(area) if not mobile else (6 if country.code == "GB" else 8)
    if mobile:
        return {"NZ": 7, "AU": 6, "FR": 8}.get(country.code, 7)
    return country.subscriber_len


# --------------------------------------------------------------------------------------------
# Addresses


def street_line(country: Country, number: int, street: str) -> str:
    return f"{number} {street}" if country.number_first else f"{street} {number}"


def address_variant(addr: Address, country: Country, rng: random.Random) -> Address:
    """The same address typed differently: street-type abbreviation, 'Level' -> 'Lvl', country
    spelled another way, city or postcode in another case. Never a different place."""
    line1, line2, city, country_name = addr.line1, addr.line2, addr.city, addr.country
    changed = False
    for long, short in STREET_ABBREV:
        if long in line1 and rng.random() < 0.8:
            line1 = line1.replace(long, short, 1)
            changed = True
            break
    for long, short in LINE2_ABBREV:
        if line2.startswith(long) and rng.random() < 0.5:
            line2 = line2.replace(long, short, 1)
            changed = True
    if rng.random() < 0.4:
        country_name = rng.choice(country.name_variants)
        changed = True
    if rng.random() < 0.15:
        city = city.upper()
        changed = True
    if not changed:
        line1 = line1.upper()
    return Address(line1, line2, city, addr.region, addr.postal_code, country_name)


def different_address(addr: Address, country: Country, rng: random.Random) -> Address:
    """A genuinely different place (moved office): another street and number, maybe another city."""
    for _ in range(20):
        street = rng.choice(country.streets)
        number = rng.randrange(1, 400)
        line1 = street_line(country, number, street)
        if line1 != addr.line1 and street not in addr.line1:
            break
    city = rng.choice(country.cities)
    return Address(line1, "", city.name, city.region, city.postal_code, addr.country)
