"""Who the customers are, decided before any record is written.

A `Customer` holds the truth about one real-world customer: its name as each system spells it,
its contact facts, how it pays, and which disagreements it carries (missing on one side, a
duplicate, a changed field, a stale balance). The books and CRM builders only *render* these
decisions, so the manifest and the records can never drift apart.

Quotas guarantee every hard case and customer-level disagreement appears even in the smallest
world (at least 3 of each), and stay a few percent of customers at larger sizes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import NamedTuple

from xz_pipeline.sandbox.world.model import Address, Person
from xz_pipeline.sandbox.world.text import (
    PHONE_STYLES,
    address_variant,
    ascii_slug,
    change_case,
    different_address,
    has_accent,
    has_umlaut,
    name_key,
    punctuate,
    render_phone,
    street_line,
    strip_accents,
    subscriber_length,
    swap_ampersand,
    swap_legal_suffix,
    toggle_the,
    transliterate,
    typo,
)
from xz_pipeline.sandbox.world.vocab import (
    BRAND_PREFIX,
    BRAND_SUFFIX,
    COUNTRIES,
    DE_INDUSTRIES,
    DE_SUFFIX,
    DE_UMLAUT_PREFIX,
    FOREIGN_MIX,
    FR_NAMES,
    FR_PREFIXES,
    INDUSTRIES,
    LINE2,
    STEMS,
    THE_ADJ,
    THE_NOUN,
    TRADES,
    Country,
)

HABITS = ("prompt", "late", "partial", "bad")
HABIT_WEIGHTS = (55, 25, 13, 7)
TERMS = (7, 14, 20, 30, 30, 30)

# Hard cases: (label, share of customers, minimum count). Lookalikes count pairs.
HARD_CASES = (
    ("lookalike", 0.015, 3),
    ("free_mail", 0.05, 6),
    ("typo", 0.02, 3),
    ("transliteration", 0.015, 3),
    ("accent", 0.015, 3),
    ("ampersand", 0.03, 3),
    ("legal_suffix", 0.06, 4),
    ("case", 0.05, 3),
    ("the_prefix", 0.02, 3),
    ("punctuation", 0.03, 3),
)
# Customer-level disagreements: (kind, share, minimum).
CUSTOMER_INJECTIONS = (
    ("customer_missing_in_crm", 0.03, 4),
    ("customer_duplicate", 0.02, 4),
    ("customer_field_mismatch", 0.03, 6),
    ("balance_mismatch", 0.02, 3),
)
MISSING_IN_BOOKS = (0.02, 3)  # extra CRM-only customers with a won deal
PROSPECTS = 0.08  # CRM-only accounts with no won deal: not customers, never in the books


@dataclass(slots=True)
class Customer:
    """One real-world customer (or prospect) and how each system records it."""

    key: str
    country: Country
    currency: str
    books_name: str
    crm_name: str
    hard_case: str
    sole_trader: bool
    person: Person  # the primary person, as the books hold them
    crm_person: Person  # the same person as the CRM holds them (harmless variants or a mismatch)
    phone: tuple[str, str, str]
    books_phone: str
    crm_phone: str
    address: Address
    crm_address: Address
    website: str
    habit: str
    terms: int
    presence: str  # both | books | crm | prospect
    start_day: int  # first day (offset from the window start) it can be invoiced
    weight: float  # relative invoice volume
    explicit_link: bool = False  # CRM account carries Xero_Contact_ID
    number_link: bool = False  # books ContactNumber carries the CRM account id
    duplicate: str = ""  # "" | "crm" (second CRM account) | "books" (second Xero contact)
    dup_name: str = ""
    mismatch: str = ""  # "" | email | phone | billing_address
    balance_mismatch: bool = False
    crm_invoicing: bool = False  # the CRM keeps invoices for this customer
    is_supplier: bool = False  # also sells to the organisation (ACCPAY bills)
    persons: list[Person] = field(default_factory=list)  # further people at the customer
    tax_number: str = ""
    account_number: str = ""
    mobile: str = ""
    injected: str = ""  # the customer-level injection kind it carries, if any
    n_invoices: int = 0  # sales invoices in the books (set once the ledger exists)
    outstanding: int = 0  # cents: AmountDue over its AUTHORISED sales invoices
    overdue: int = 0  # cents: the part of `outstanding` past its due date
    books_id: str = ""
    books_dup_id: str = ""
    crm_id: str = ""
    crm_dup_id: str = ""
    crm_contact_id: str = ""

    @property
    def linked(self) -> bool:
        return self.presence == "both"


class _Names(NamedTuple):
    books: str
    crm: str
    stem: str  # what the web domain is derived from
    sole: bool  # a sole trader: a person's name, a free-mail address
    person: tuple[str, str] | None  # (first, last) when the name is the person's


_VARIANTS = {
    "plain": lambda name, country, r: name,
    "legal_suffix": lambda name, country, r: swap_legal_suffix(name, country),
    "case": lambda name, country, r: change_case(name, r),
    "the_prefix": lambda name, country, r: toggle_the(name),
    "punctuation": lambda name, country, r: punctuate(name, country),
    "typo": lambda name, country, r: typo(name, r),
}


def _quota(share: float, minimum: int, n: int) -> int:
    return max(minimum, round(share * n))


class _Namer:
    """Composes unique company names, domains and e-mail addresses from the vocabularies."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.keys: set[str] = set()
        self.books_names: set[str] = set()
        self.domains: set[str] = set()
        self.emails: set[str] = set()

    def legal(self, country: Country) -> str:
        if self.rng.random() < 0.75:
            return country.legal[0][0]
        return self.rng.choice(country.legal)[0]

    def company(self, country: Country, style: str) -> tuple[str, str]:
        """(name, domain stem) in the given style; the caller checks uniqueness."""
        r = self.rng
        last = r.choice(country.last_names)
        if country.code == "DE" and style not in ("sons", "partners"):
            style = r.choice(("de_surname", "de_industry", "brand"))
        if country.code == "FR" and style not in ("sons", "partners"):
            style = r.choice(("fr", "fr_surname", "brand"))
        if style == "brand":
            brand = r.choice(BRAND_PREFIX) + r.choice(BRAND_SUFFIX)
            return f"{brand} {r.choice(INDUSTRIES)} {self.legal(country)}", brand
        if style == "stem":
            stem, industry = r.choice(STEMS), r.choice(INDUSTRIES)
            return f"{stem} {industry} {self.legal(country)}", stem + industry
        if style == "the":
            adj, noun = r.choice(THE_ADJ), r.choice(THE_NOUN)
            return f"The {adj} {noun} {self.legal(country)}", f"the{adj}{noun}"
        if style == "sons":
            trade = r.choice(TRADES + INDUSTRIES)
            return f"{last} & {r.choice(('Sons', 'Daughters', 'Co'))} {trade}", last + trade
        if style == "partners":
            other = r.choice(country.last_names)
            if other == last:
                other = r.choice(STEMS)
            industry = r.choice(INDUSTRIES) + " " if r.random() < 0.6 else ""
            return f"{last} & {other} {industry}{self.legal(country)}", last + other
        if style == "surname_trade":
            return f"{last} {r.choice(INDUSTRIES)}", last + r.choice(("nz", "hq", "group", "co"))
        if style == "de_surname":
            return f"{last} {r.choice(DE_INDUSTRIES)} {self.legal(country)}", last
        if style == "de_industry":
            brand = r.choice(BRAND_PREFIX) + r.choice(BRAND_SUFFIX)
            return f"{brand} {r.choice(DE_INDUSTRIES)} GmbH", brand
        if style == "fr":
            prefix, nm = r.choice(FR_PREFIXES), r.choice(FR_NAMES + country.last_names)
            return f"{prefix} {nm} {self.legal(country)}", prefix + nm
        if style == "fr_surname":
            return f"{r.choice(FR_PREFIXES)} {last}", last
        raise ValueError(style)

    def claim(self, name: str, *, allow_key: str = "") -> bool:
        key = name_key(name)
        if not key or name in self.books_names or (key in self.keys and key != allow_key):
            return False
        self.keys.add(key)
        self.books_names.add(name)
        return True

    def domain(self, stem: str, country: Country) -> str:
        base = ascii_slug(stem)[:24] or "company"
        for extra in ("", "group", "hq", "nz", "online", "co"):
            candidate = f"{base}{extra}.{country.tld}"
            if candidate not in self.domains:
                self.domains.add(candidate)
                return candidate
        n = 2
        while f"{base}{n}.{country.tld}" in self.domains:
            n += 1
        self.domains.add(f"{base}{n}.{country.tld}")
        return f"{base}{n}.{country.tld}"

    def email(self, local: str, domain: str) -> str:
        local = local or "info"
        candidate = f"{local}@{domain}"
        n = 2
        while candidate in self.emails:
            candidate = f"{local}{n}@{domain}"
            n += 1
        self.emails.add(candidate)
        return candidate


def _email_case_variant(email: str, rng: random.Random) -> str:
    local, _, domain = email.partition("@")
    if rng.random() < 0.5:
        return email.upper()
    return ".".join(p.capitalize() for p in local.split(".")) + "@" + domain.capitalize()


class CustomerPlanner:
    """Decides every customer of one world; `plan()` returns them in books-creation order."""

    def __init__(
        self,
        rng: random.Random,
        org_country: Country,
        n_customers: int,
        window_days: int,
        *,
        single_currency: bool = False,
        skip: frozenset[str] = frozenset(),
    ) -> None:
        self.rng = rng
        self.org = org_country
        self.single_currency = single_currency  # every customer billed in the organisation's currency
        self.skip = skip  # injection kinds the organisation's profile cannot show
        self.n = n_customers
        self.window_days = window_days
        self.namer = _Namer(rng)
        self.customers: list[Customer] = []
        foreign = FOREIGN_MIX[org_country.code]
        self._foreign_codes = [c for c, _ in foreign]
        self._foreign_weights = [w for _, w in foreign]

    # ---- building blocks -------------------------------------------------------------------

    def _country(self) -> Country:
        if self.rng.random() < 0.75:
            return self.org
        return COUNTRIES[self.rng.choices(self._foreign_codes, self._foreign_weights)[0]]

    def _currency(self, country: Country) -> str:
        if country.code == self.org.code or self.single_currency:
            return self.org.currency
        # most foreign customers are billed in their own currency, some in the organisation's
        return country.currency if self.rng.random() < 0.8 else self.org.currency

    def _phone(self, country: Country, city_area: str, mobile: bool = False) -> tuple[str, str, str]:
        r = self.rng
        area = r.choice(country.mobile_prefixes) if mobile and country.mobile_prefixes else city_area
        length = subscriber_length(country, area, mobile)
        return (country.code, area, str(r.randrange(2 * 10 ** (length - 1), 10**length)))

    def _address(self, country: Country) -> Address:
        r = self.rng
        city = r.choice(country.cities)
        line1 = street_line(country, r.randrange(1, 300), r.choice(country.streets))
        line2 = r.choice(LINE2) if r.random() < 0.3 else ""
        return Address(line1, line2, city.name, city.region, city.postal_code, country.name)

    def _tax_number(self, country: Country) -> str:
        r = self.rng
        digits = str(r.randrange(10**10, 10**11))
        return {
            "NZ": f"{digits[:3]}-{digits[3:6]}-{digits[6:9]}",
            "AU": f"{digits[:2]} {digits[2:5]} {digits[5:8]} {digits[8:11]}",
            "GB": f"GB{digits[:9]}",
            "US": f"{digits[:2]}-{digits[2:9]}",
            "DE": f"DE{digits[:9]}",
            "FR": f"FR{digits}",
        }[country.code]

    def _person(self, country: Country, domain: str, free_mail: bool, style: int) -> Person:
        r = self.rng
        first, last = r.choice(country.first_names), r.choice(country.last_names)
        return self._person_named(first, last, country, domain, free_mail, style)

    def _person_named(
        self, first: str, last: str, country: Country, domain: str, free_mail: bool, style: int
    ) -> Person:
        r = self.rng
        f, la = ascii_slug(first), ascii_slug(last)
        if free_mail:
            domain = r.choice(country.free_mail)
            local = r.choice((f"{f}.{la}", f"{f}{la}", f"{f}.{la}{r.randrange(10, 99)}", f"{f[0]}{la}"))
        else:
            local = r.choice((f"{f}.{la}", f, f"{f[0]}.{la}", f"{f}.{la}"))
        email = self.namer.email(local, domain)
        city_area = r.choice(country.cities).area
        phone = render_phone(*self._phone(country, city_area, mobile=r.random() < 0.4), style)
        return Person(first, last, email, phone)

    # ---- one customer ----------------------------------------------------------------------

    def _names_for(self, recipe: str, country: Country) -> _Names:
        """Books name, CRM name, domain stem and (for sole traders) the person, for one recipe."""
        r = self.rng
        for _ in range(1000):
            sole = False
            person: tuple[str, str] | None = None
            if recipe == "transliteration":
                country = COUNTRIES["DE"]
                last = r.choice([n for n in country.last_names if has_umlaut(n)])
                industry = r.choice(DE_INDUSTRIES + INDUSTRIES)
                pattern = r.randrange(3)
                if pattern == 0:
                    name, stem = f"{last} {industry} {self.namer.legal(country)}", last + industry
                elif pattern == 1:
                    other = r.choice(country.last_names)
                    name, stem = f"{last} & {other} {self.namer.legal(country)}", last + other
                else:
                    brand = r.choice(DE_UMLAUT_PREFIX) + r.choice(DE_SUFFIX)
                    name, stem = f"{brand} {industry} GmbH", brand
                crm = transliterate(name)
            elif recipe == "accent":
                if country.code == "FR":
                    prefix, first, last = (
                        r.choice(FR_PREFIXES),
                        r.choice(country.first_names),
                        r.choice(country.last_names),
                    )
                    if r.random() < 0.5:
                        name, stem = f"{prefix} {first} {last}", prefix + first + last
                    else:
                        nm = r.choice(FR_NAMES)
                        name, stem = f"{prefix} {nm} {self.namer.legal(country)}", prefix + nm
                else:
                    first = r.choice([n for n in country.first_names if has_accent(n)] or ["Zoë"])
                    last = r.choice(country.last_names)
                    name, stem = f"{first} {last} {r.choice(INDUSTRIES)}", first + last
                crm = strip_accents(name)
                if crm == name:
                    continue
            elif recipe == "ampersand":
                name, stem = self.namer.company(country, r.choice(("sons", "partners")))
                crm = swap_ampersand(name)
            elif recipe == "free_mail":
                first, last = r.choice(country.first_names), r.choice(country.last_names)
                name = f"{first} {last}" if r.random() < 0.5 else f"{first} {last} {r.choice(INDUSTRIES)}"
                stem, crm, sole, person = first + last, name, True, (first, last)
            else:
                style = r.choices(
                    ("brand", "stem", "the", "partners", "surname_trade", "sons"), (40, 20, 8, 8, 14, 10)
                )[0]
                if recipe in ("legal_suffix", "punctuation"):
                    style = r.choice(("brand", "stem", "the", "partners"))
                name, stem = self.namer.company(country, style)
                crm = _VARIANTS[recipe](name, country, r)
            if not crm or (recipe not in ("plain", "free_mail") and crm == name):
                continue
            if recipe == "typo" and name_key(crm) in self.namer.keys:
                continue
            if self.namer.claim(name):
                if recipe == "typo":
                    self.namer.keys.add(name_key(crm))
                return _Names(name, crm, stem, sole, person)
        raise RuntimeError(f"could not compose a unique name for {recipe}")

    def _customer(
        self,
        recipe: str,
        country: Country | None = None,
        names: _Names | None = None,
    ) -> Customer:
        r = self.rng
        country = country or self._country()
        if recipe == "transliteration":
            country = COUNTRIES["DE"]
        if recipe == "accent" and r.random() < 0.6:
            country = COUNTRIES["FR"]
        books_name, crm_name, stem, sole, first_last = names or self._names_for(recipe, country)
        free_mail = recipe == "free_mail" or sole
        domain = "" if free_mail else self.namer.domain(stem, country)
        style_b = r.randrange(PHONE_STYLES)
        style_c = r.randrange(PHONE_STYLES)
        if first_last:
            person = self._person_named(*first_last, country, domain, free_mail, style_b)
        else:
            person = self._person(country, domain, False, style_b)
            if r.random() < 0.3:
                # a shared mailbox for invoices: the person is still the primary contact
                person = Person(
                    person.first_name,
                    person.last_name,
                    self.namer.email(r.choice(("accounts", "billing", "ap", "admin")), domain),
                    person.phone,
                )
        address = self._address(country)
        city_area = next(c.area for c in country.cities if c.name == address.city)
        phone = self._phone(country, city_area, mobile=sole)
        crm_email = person.email if r.random() < 0.8 else _email_case_variant(person.email, r)
        crm_first = strip_accents(person.first_name) if r.random() < 0.1 else person.first_name
        crm_person = Person(crm_first, person.last_name, crm_email, render_phone(*phone, style_c))
        n_persons = 0 if sole else r.choice((0, 0, 1, 1, 2, 3))
        persons = [self._person(country, domain, False, style_b) for _ in range(n_persons)]
        website = ""
        if domain:
            website = r.choice((f"www.{domain}", f"https://www.{domain}", f"https://{domain}", domain))
        start = int(r.triangular(-400, self.window_days - 30, -200))
        c = Customer(
            key=f"C{len(self.customers) + 1:06d}",
            country=country,
            currency=self._currency(country),
            books_name=books_name,
            crm_name=crm_name,
            hard_case="" if recipe == "plain" else recipe,
            sole_trader=sole,
            person=person,
            crm_person=crm_person,
            phone=phone,
            books_phone=render_phone(*phone, style_b),
            crm_phone=render_phone(*phone, style_c),
            address=address,
            crm_address=address_variant(address, country, r) if r.random() < 0.5 else address,
            website=website,
            habit=r.choices(HABITS, HABIT_WEIGHTS)[0],
            terms=r.choice(TERMS),
            presence="both",
            start_day=max(-400, min(start, self.window_days - 10)),
            weight=r.lognormvariate(0.0, 0.9),
            persons=persons,
            tax_number=self._tax_number(country) if not sole and r.random() < 0.6 else "",
            mobile=render_phone(*self._phone(country, city_area, mobile=True), style_b)
            if r.random() < 0.3
            else "",
        )
        self.customers.append(c)
        return c

    def _lookalike_pair(self) -> None:
        """Two different customers whose names a careless matcher would merge."""
        r = self.rng
        country = self._country() if r.random() < 0.5 else self.org
        for _ in range(200):
            kind = r.randrange(3)
            if kind == 0:  # "Acme Ltd" vs "Acme Labs Ltd"
                stem, legal = r.choice(STEMS), self.namer.legal(country)
                a, b = f"{stem} {legal}", f"{stem} {r.choice(INDUSTRIES)} {legal}"
                stems = (stem, stem + b.split(" ")[1])
            elif kind == 1:  # "Smith & Sons Plumbing" vs "Smith and Sons Electrical"
                last = r.choice(country.last_names)
                t1, t2 = r.sample(TRADES, 2)
                a, b = f"{last} & Sons {t1}", f"{last} and Sons {t2}"
                stems = (last + t1, last + t2)
            else:  # "Sam Taylor Builders" vs "Tom Taylor Builders": same trade and surname
                last, trade = r.choice(country.last_names), r.choice(TRADES)
                f1, f2 = r.sample(country.first_names, 2)
                a, b = f"{f1} {last} {trade}", f"{f2} {last} {trade}"
                stems = (f1 + last, f2 + last)
            if name_key(a) in self.namer.keys or name_key(b) in self.namer.keys:
                continue
            self.namer.claim(a)
            self.namer.claim(b)
            break
        else:
            raise RuntimeError("could not compose a lookalike pair")
        one = self._customer("lookalike", country, _Names(a, a, stems[0], False, None))
        cities = [c for c in country.cities if c.name != one.address.city]
        two = self._customer("lookalike", country, _Names(b, b, stems[1], False, None))
        city = r.choice(cities)
        moved = Address(
            two.address.line1, two.address.line2, city.name, city.region, city.postal_code, country.name
        )
        two.address = moved
        two.crm_address = moved
        two.phone = self._phone(country, city.area)
        two.books_phone = render_phone(*two.phone, 0)
        two.crm_phone = render_phone(*two.phone, 1)
        two.crm_person = Person(
            two.crm_person.first_name, two.crm_person.last_name, two.crm_person.email, two.crm_phone
        )

    # ---- the whole population --------------------------------------------------------------

    def plan(self) -> list[Customer]:
        r, n = self.rng, self.n
        recipes: list[str] = []
        for label, share, minimum in HARD_CASES:
            if label == "lookalike":
                continue
            recipes += [label] * _quota(share, minimum, n)
        pairs = _quota(HARD_CASES[0][1], HARD_CASES[0][2], n)
        plain = max(0, n - len(recipes) - 2 * pairs)
        recipes += ["plain"] * plain
        r.shuffle(recipes)
        pair_slots = set(r.sample(range(len(recipes) + 1), pairs))
        for i, recipe in enumerate(recipes):
            if i in pair_slots:
                self._lookalike_pair()
            self._customer(recipe)
        if len(recipes) in pair_slots:
            self._lookalike_pair()
        self._assign_injections()
        self._add_crm_only()
        self._assign_links()
        return self.customers

    def _assign_injections(self) -> None:
        r, n = self.rng, len(self.customers)
        plain = [c for c in self.customers if c.hard_case == ""]
        r.shuffle(plain)
        pool = iter(plain)
        for kind, share, minimum in CUSTOMER_INJECTIONS:
            if kind in self.skip:
                continue
            count = _quota(share, minimum, n)
            if kind == "customer_missing_in_crm":
                # the hardest variant: one half of a lookalike pair is absent from the CRM
                looks = [c for c in self.customers if c.hard_case == "lookalike"]
                extra = looks[1::2][: max(1, count // 4)]
                for c in extra:
                    c.presence, c.injected = "books", kind
                count -= len(extra)
            for k in range(count):
                c = next(pool)
                c.injected = kind
                if kind == "customer_missing_in_crm":
                    c.presence = "books"
                elif kind == "customer_duplicate":
                    self._make_duplicate(c, "crm" if k % 2 == 0 else "books")
                elif kind == "customer_field_mismatch":
                    self._make_mismatch(c, ("email", "phone", "billing_address")[k % 3])
                elif kind == "balance_mismatch":
                    c.balance_mismatch = True

    def _make_duplicate(self, c: Customer, side: str) -> None:
        c.duplicate = side
        for variant in (
            swap_legal_suffix(c.books_name, c.country),
            c.books_name.upper(),
            toggle_the(c.books_name),
            c.books_name + ".",
        ):
            if variant and variant != c.books_name and variant not in self.namer.books_names:
                c.dup_name = variant
                break
        if side == "books":
            self.namer.books_names.add(c.dup_name)

    def _make_mismatch(self, c: Customer, fld: str) -> None:
        r = self.rng
        c.mismatch = fld
        if fld == "email":
            domain = c.person.email.partition("@")[2]
            local = ascii_slug(c.person.first_name) or "sales"
            if r.random() < 0.5:
                new = self.namer.email(
                    f"{local}.{ascii_slug(c.person.last_name)}{r.randrange(10, 99)}",
                    r.choice(c.country.free_mail),
                )
            else:
                new = self.namer.email(r.choice(("sales", "hello", "office", "orders")), domain)
            c.crm_person = Person(c.crm_person.first_name, c.crm_person.last_name, new, c.crm_person.phone)
        elif fld == "phone":
            cc, area, sub = c.phone
            new_sub = sub
            while new_sub == sub:
                new_sub = str(r.randrange(2 * 10 ** (len(sub) - 1), 10 ** len(sub)))
            c.crm_phone = render_phone(cc, area, new_sub, r.randrange(PHONE_STYLES))
        else:
            c.crm_address = different_address(c.address, c.country, r)

    def _add_crm_only(self) -> None:
        """Customers missing in the books (won deals, no contact) and prospects (no won deal)."""
        missing = _quota(MISSING_IN_BOOKS[0], MISSING_IN_BOOKS[1], self.n)
        for _ in range(missing):
            c = self._customer("plain")
            c.presence, c.injected = "crm", "customer_missing_in_books"
        for _ in range(round(PROSPECTS * self.n)):
            c = self._customer("plain")
            c.presence = "prospect"

    def _assign_links(self) -> None:
        r = self.rng
        for c in self.customers:
            if c.presence != "both":
                continue
            c.explicit_link = r.random() < 0.55
            c.number_link = c.explicit_link and r.random() < 0.5
            c.crm_invoicing = r.random() < 0.35
            c.is_supplier = r.random() < 0.03
            if r.random() < 0.5:
                c.account_number = f"CUST-{int(c.key[1:]) + 1000}"
