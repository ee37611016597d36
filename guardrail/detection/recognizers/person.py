"""People named with a title or a field label: "Dr. Ana Ruiz", "Patient: Megan Murphy", "spouse John".

spaCy's small model misses many names, in particular single given names and names of other origins.
A title (Mr, Dr, ...) or a role word (patient, spouse, mother, signed, ...) directly before capitalised
words is strong evidence of a person, whatever the name's language.
"""

from __future__ import annotations

from guardrail.detection.recognizers.base import Rule, RuleRecognizer

__all__ = ["person_recognizer"]

_UP = r"A-ZÀ-ÖØ-ÞĀ-Žά-ώΑ-ΩА-Я"
_LOW = r"a-zß-öø-ÿā-žα-ωа-я"
# a name word: Capitalised (O'Neil, McDonald, Jean-Luc, ASCII or not) or an initial "J."
_WORD = rf"(?:[{_UP}][{_LOW}]+(?:[-'’][{_UP}]?[{_LOW}]+)*|[{_UP}][{_LOW}]*[{_UP}][{_LOW}]+|[{_UP}]\.)"
_PARTICLE = r"(?:van|von|de|da|del|della|der|den|di|du|la|le|bin|ibn|al|el|ter|ten|y)"
NAME = rf"{_WORD}(?:\s+(?:{_PARTICLE}\s+)?{_WORD}){{0,3}}"

_TITLES = (
    r"Mr|Mrs|Ms|Mx|Miss|Mister|Madam|Mme|Mlle|Dr|Doctor|Prof|Professor|Rev|Fr|Sr|Sra|Srta|Herr|Frau|Sir|Dame|"
    r"Lord|Lady|Nurse|RN|NP|PA|Capt|Sgt|Lt|Col|Gen|Hon|Judge"
)
_ROLES = (
    r"patient|pt|name|full\s+name|spouse|husband|wife|partner|mother|father|mom|dad|son|daughter|brother|"
    r"sister|sibling|child|grandmother|grandfather|grandson|granddaughter|aunt|uncle|cousin|niece|nephew|"
    r"guardian|caregiver|roommate|neighbor|neighbour|friend|fiancée?|boyfriend|girlfriend|colleague|"
    r"boss|manager|employer|landlord|emergency\s+contact|next\s+of\s+kin|contact|attending|physician|"
    r"provider|surgeon|resident|intern|referred\s+by|referring|seen\s+by|signed|signature|electronically\s+signed\s+by|"
    r"dictated\s+by|transcribed\s+by|cc|sincerely|regards|dear|hi|hello|thanks|attn|attention|"
    r"accompanied\s+by|his\s+name\s+is|her\s+name\s+is|my\s+name\s+is|name\s+is|named|called|"
    r"i\s+am|i'm|this\s+is|pcp|nurse|therapist|pharmacist|author|by|with|to|from|for"
)


def person_recognizer() -> RuleRecognizer:
    """Names after a title (strong) or after a role or field word (good when the name is capitalised)."""
    return RuleRecognizer(
        entity="PERSON",
        name="TitledPersonRecognizer",
        rules=[
            Rule("title", rf"\b(?:{_TITLES})\.?\s+(?P<v>{NAME})", 0.85),
            Rule("role", rf"(?i:\b(?:{_ROLES})\b)\s*[:,]?\s*(?:(?:{_TITLES})\.?\s+)?(?P<v>{NAME})\b", 0.45),
        ],
        context=["patient", "name", "mr", "mrs", "ms", "dr", "spouse", "contact", "signed"],
    )
