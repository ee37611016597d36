"""People named with a title or a field label: "Dr. Ana Ruiz", "Patient: Megan Murphy", "spouse John".

spaCy's small model misses many names, in particular single given names and names of other origins.
A title (Mr, Dr, ...) or a role word (patient, spouse, mother, signed, ...) directly before capitalised
words is strong evidence of a person, whatever the name's language.
"""

from __future__ import annotations

import re

from presidio_analyzer import RecognizerResult

from guardrail.detection.recognizers.base import Rule, RuleRecognizer, result_metadata
from guardrail.detection.recognizers.gazetteers import AMBIGUOUS_NAMES, given_names

__all__ = ["GivenNameRecognizer", "person_recognizer"]

_UP = r"A-ZÀ-ÖØ-ÞĀ-Žά-ώΑ-ΩА-Я"
_LOW = r"a-zß-öø-ÿā-žα-ωа-я"
# a name word: Capitalised (O'Neil, McDonald, Jean-Luc, ASCII or not) or an initial "J."
_WORD = rf"(?:[{_UP}][{_LOW}]+(?:[-'’][{_UP}]?[{_LOW}]+)*|[{_UP}][{_LOW}]*[{_UP}][{_LOW}]+|[{_UP}]\.)"
_PARTICLE = r"(?:van|von|de|da|del|della|der|den|di|du|la|le|bin|ibn|al|el|ter|ten|y)"
# name words are joined by one space: two spaces or a line break end a name in forms and headers
NAME = rf"{_WORD}(?:[ ](?:{_PARTICLE}[ ])?{_WORD}){{0,3}}"

_TITLES = (
    r"Mr|Mrs|Ms|Mx|Miss|Mister|Madam|Mme|Mlle|Dr|Doctor|Prof|Professor|Rev|Fr|Sr|Sra|Srta|Herr|Frau|Sir|Dame|"
    r"Lord|Lady|Nurse|RN|NP|PA|Capt|Sgt|Lt|Col|Gen|Hon|Judge"
)
_KIN = (
    r"spouse|husband|wife|partner|mother|father|mom|dad|son|daughter|brother|sister|sibling|child|"
    r"grandmother|grandfather|grandson|granddaughter|aunt|uncle|cousin|niece|nephew|guardian|caregiver|"
    r"friend|neighbou?r|roommate|fiancée?|boyfriend|girlfriend|contact"
)
# a name that is not a bare honorific: "for Mr. <PERSON>" (a redacted name) must not make "Mr" a name
_HONORIFICS = r"Mr|Mrs|Ms|Mx|Miss|Mister|Madam|Mme|Mlle|Dr|Doctor|Prof|Professor|Rev|Sir|Herr|Frau"
# words that follow "Hi", "Thanks" or "I'm" capitalised without being anyone's name
_NOT_ADDRESSEE = (
    r"(?!(?:All|Team|Everyone|Everybody|Folks|Guys|There|Sir|Madam|World|Important|Urgent|Sure|Done|Fine|"
    r"Good|Great|Here|Back|Again|Both|Each|Support|Admin|Mate|Friend|Friends|Sorry|Happy|Glad|Ready|Not|"
    r"Just|So|Very|Really|New|Also|Still|Available|Interested|Looking|Writing|Calling|Following)\b)"
)
_NOT_LIVING = (
    r"(?:The|This|That|It|He|She|They|We|You|I|Everyone|Everybody|Nobody|Somebody|Someone|Who|Our|My|Your|"
    r"His|Her|Their|Family|Team|Company|Staff|Everything|Nothing|Something|One|Each|Most|Many|Some|Legend|"
    r"History|Music|Love|Hope|Life|Data|Code|Information|Support|Stock|Inventory)"
)
# abbreviations that are departments, bodies or clinical terms rather than someone's initials
_NOT_INITIALS = (
    r"(?:HR|IT|PR|QA|UX|UI|AI|ML|ED|ER|OR|PT|OT|DC|UK|US|USA|EU|UN|TV|PC|OK|CC|VP|MD|RN|NP|PA|GP|CEO|CFO|"
    r"CTO|COO|CIO|CMO|BP|HR|RR|ICU|CT|MRI|EKG|ECG|EEG|FDA|CDC|WHO|NHS|CMS|IRS|HMRC|SSA|DMV|DOB|SSN|MRN|"
    r"PCP|IV|PO|NPO|PRN|BID|TID|QID|QD|HS|ID|IDs|NB|PS|FYI|ASAP|ETA|TBD|TBC|AM|PM|API|SDK|SQL|CRM|ERP|"
    r"SSO|VPN|PDF|CSV|KYC|AML|SLA|NDA|MSA|SOW|POC|ROI|KPI|OKR|RFP|RFQ|GDPR|HIPAA|PII|PHI|AWS|GCP|ATM|"
    r"VAT|GST|TAX|LLC|LTD|INC|PLC|GM|MP|EMEA|APAC|LATAM|NYC|LA|SF|DJ|RA|TA|AP|AR|IR|OEM|SME|CPA|ACA)"
)
# second words that make two capitalised words a company or a team, not a person
_ORG_WORD = (
    r"(?:Services|Systems|Solutions|Group|Bank|Team|Support|Cloud|Music|Airlines|Airways|Motors|Labs|Health|"
    r"Capital|Partners|Media|Mobile|Energy|Foods|Insurance|Service|Office|Desk|Department|Store|Sales|"
    r"Marketing|Finance|Legal|Security|Operations|Engineering|Technologies|Tech|Logistics|Express|Post)"
)
_NOT_ACTOR = (
    r"(?:Yesterday|Today|Tomorrow|Then|Later|Finally|Also|Again|Monday|Tuesday|Wednesday|Thursday|Friday|"
    r"Saturday|Sunday|Customer|Client|Support|Sales|Security|Management|Legal|Finance|Someone|Nobody|"
    r"Everyone|Mum|Mom|Dad|Grandma|Grandpa)"
)
_NAMED = rf"(?!(?:{_HONORIFICS})\b){_NOT_ADDRESSEE}{NAME}"
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
            Rule("title", rf"\b(?:{_TITLES})\.?\s+(?P<v>{_NAMED})", 0.85),
            Rule("role", rf"(?i:\b(?:{_ROLES})\b)\s*,?\s*(?:(?:{_TITLES})\.?\s+)?(?P<v>{_NAMED})\b", 0.45),
            # "son (Emeka)", "wife - Ngozi": a relative named in brackets or after a dash
            Rule("role bracket", rf"(?i:\b(?:{_KIN})\b)[ \t]*(?:\(|-|–)[ \t]*(?P<v>{_NAMED})", 0.75),
            # a field: "Directed By:    Arja J. Ollila", "Emergency contact: Grace Finch"
            Rule(
                "role field",
                rf"(?i:\b(?:{_ROLES})\b)[ \t]*:[ \t]*(?:(?:{_TITLES})\.?\s+)?(?P<v>{_NAMED})\b",
                0.7,
            ),
            # two or more name words after a role word or preposition: "(not by Frits van den Heuvel)"
            Rule(
                "role full name",
                rf"(?i:\b(?:{_ROLES})\b)\s+(?P<v>{_WORD}(?:\s+(?:{_PARTICLE}\s+)*{_WORD}){{1,3}})\b",
                0.5,
            ),
            Rule(
                "name field",
                rf"(?i:\b(?:last|first|given|family|middle|maiden|full|legal|sur)\s*name\b)\s*(?:(?i:is)|:|\?)?\s*(?P<v>{_NAMED})",
                0.85,
            ),
            # "Name: RODRIGUEZ, Maria E." - surname first, in capitals, after a name field
            Rule(
                "surname first",
                rf"(?i:\b(?:name|patient|pt|member|insured|guarantor|subscriber)\b)\s*:\s*(?P<v>[{_UP}][{_UP}'’-]+,[ ]?{_WORD}(?:[ ]{_WORD})?)",
                0.85,
            ),
            # "Ordering: Hernandez, Luis MD" - surname first after a role field
            Rule(
                "surname first role",
                rf"(?i:\b(?:{_ROLES}|ordering|attending|referring|provider|physician|surgeon|consultant)\b)[ \t]*:[ \t]*"
                rf"(?P<v>{_WORD},[ ]?{_WORD}(?:[ ]{_WORD})?)",
                0.75,
            ),
            # "Hernandez, Luis MD": surname, given name, then a clinical degree
            Rule(
                "surname first degree",
                rf"\b(?P<v>{_WORD},[ ]?{_WORD}(?:[ ]{_WORD})?),?[ ]+(?:MD|M\.D\.|DO|RN|NP|PA-C|PA|PhD|DDS|DMD|MBBS|FNP|APRN|PharmD)\b",
                0.8,
            ),
            # a speaker in a transcript: 'Lukas: "Who are you?"'
            # "Dita lives on Eötvös út", "Kofi moved to Accra": a sentence opening with a name that lives,
            # works or moves somewhere
            Rule(
                "name lives",
                rf"(?:(?m:^)|(?<=[.!?][ ])|(?<=[.!?][ ][ ]))[ \t]*(?!{_NOT_LIVING}\b){_NOT_ADDRESSEE}"
                rf"(?P<v>{_WORD}(?:[ ]{_WORD})?)[ ]+(?:lives|lived|works|worked|moved|resides|resided|grew[ ]up|"
                rf"was[ ]born|is[ ]living|stays|stayed|relocated)[ ]+(?:on|in|at|to|near|with|from)\b",
                0.6,
            ),
            # "Ford Prefect joined the team", "Ilse Brandt emailed us": two capitalised words doing
            # something only a person does, whatever the first word also names
            Rule(
                "full name acts",
                rf"(?<![\w'’-])(?!{_NOT_LIVING}\b|{_NOT_ACTOR}\b){_NOT_ADDRESSEE}(?P<v>{_WORD}[ ](?!{_ORG_WORD}\b){_WORD})[ ]+(?:has[ ]|had[ ]|will[ ]|just[ ])?"
                r"(?:joined[ ](?:the[ ]|our[ ])?(?:team|company|call|meeting|us)|emailed|e-mailed|phoned|texted|"
                r"called[ ](?:me|us|back|in)|told[ ](?:me|us|him|her|them)|asked[ ](?:me|us|for|about|whether|if)|"
                r"replied|wrote[ ](?:to|back|that)|thanked|apologi[sz]ed|complained|signed[ ](?:off|the)|"
                r"resigned|retired|was[ ]hired|was[ ]promoted|is[ ]on[ ](?:leave|holiday|vacation))\b",
                0.6,
            ),
            # a name with an honorific suffix: "Yamamoto-sama", "Okada-san", "Suzuki-buchō", "Min-jun-ssi"
            Rule(
                "honorific suffix",
                rf"(?<![\w'’-])(?P<v>{_WORD}(?:[ ]{_WORD})?)-(?:san|sama|kun|chan|sensei|senpai|dono|buchō|bucho|"
                r"kachō|kacho|shachō|shacho|ssi|nim|ji|jee|sahib|saab|bhai|didi|hanım|hanim|bey)(?![\w-])",
                0.85,
            ),
            # initials standing for a person: "TZ said to use Signal", "MA's statement", "Sonographer: JM"
            Rule(
                "initials speak",
                rf"(?<![\w&/.-])(?!{_NOT_INITIALS}\b)(?P<v>[A-Z]{{2,3}})(?:['’]s[ ]+(?:statement|account|view|"
                r"manager|request|version|notes?|email|e-mail|message|call|reply)|[ ]+(?:said|says|told|asked|"
                r"agreed|confirmed|replied|wrote|mentioned|called|emailed|thinks|thought|wants|wanted|"
                r"will[ ]call|will[ ]send|to[ ]call[ ]back))\b",
                0.6,
            ),
            Rule(
                "initials after role",
                r"(?i:\b(?:sonographer|technologist|tech|scribe|transcriptionist|transcribed\s+by|dictated\s+by|"
                r"interpreter|reviewer|reviewed\s+by|approved\s+by|author|owner|handler|agent|rep|"
                r"entered\s+by|verified\s+by|witness|chaperone|scrub|circulator)\b)[ \t]*:?[ \t]*"
                rf"(?!{_NOT_INITIALS}\b)(?P<v>[A-Z]{{2,3}})(?![\w-])",
                0.6,
            ),
            Rule("speaker", rf"(?m)^[ \t]*(?P<v>{_WORD}(?:[ \t]+{_WORD})?)[ \t]*:[ \t]*[\"“']", 0.7),
            # a greeting or thanks addressing one person: "Thanks Aoife.", "Thank you, Dimitris!", "Hi Kenji,"
            Rule(
                "addressed",
                rf"(?i:\b(?:thanks|thank\s+you|thx|ty|cheers|hi|hiya|hello|hey|dear|bye|goodbye|good\s+(?:morning|"
                rf"afternoon|evening)|congrats|congratulations)\b)[ \t]*,?[ \t]+(?:(?:{_TITLES})\.?[ \t]+)?"
                rf"(?P<v>{_NOT_ADDRESSEE}{_NAMED})(?=[ \t]*(?:[,.!?:;)]|$|\n))",
                0.6,
            ),
            # a name someone gives for themselves: "I'm Ffion.", "you can call me Hà", "this is Reza from"
            Rule(
                "self named",
                rf"(?i:\b(?:i'?m|i\s+am|call\s+me|this\s+is|it'?s|name'?s|known\s+as|goes\s+by)\b)[ \t]+(?P<v>{_NOT_ADDRESSEE}{_NAMED})"
                rf"(?=[ \t]*(?:[,.!?;)\"”]|$|\n|(?i:from|here|speaking|with)\b))",
                0.7,
            ),
            # lower-case names where a name is expected: "my name is karthik raghunathan", "thx marcus"
            # a name given as one's own outranks any guess of the model ("my name is Jonas Eklund")
            Rule(
                "my name is capitalised",
                rf"(?i:\b(?:my\s+name\s+is|my\s+name's|i\s+am\s+called|i'?m\s+called)\b)[ \t]*(?P<v>{_NAMED})",
                0.9,
            ),
            Rule(
                "my name is",
                r"(?i:\b(?:my\s+name\s+is|my\s+name's|full\s+name\s*:)[ \t]*)"
                r"(?P<v>[a-zß-öø-ÿ][a-zß-öø-ÿ'-]{1,}(?:[ \t][a-zß-öø-ÿ][a-zß-öø-ÿ'-]{1,}){0,2})(?=[ \t]*(?:[,.!?]|$|\n))",
                0.7,
            ),
            Rule(
                "lower-case name",
                r"(?i:\b(?:name\s*:|i'?m|i\s+am|call\s+me|thx|thanks|regards|cheers|"
                r"triage\s+rn\s*:|rn\s*:|signed\s*:)[ \t]*,?[ \t]*)"
                r"(?P<v>[a-zß-öø-ÿ][a-zß-öø-ÿ'-]{2,}(?:[ \t][a-zß-öø-ÿ][a-zß-öø-ÿ'-]{2,}){0,2})(?=[ \t]*(?:[,.!?]|$|\n))",
                0.55,
                validate=lambda v: v.split()[0].lower() in given_names(),
            ),
            # a sign-off line: "– Kari", "- emeka", "—Br. Yaqub (admin)"
            Rule(
                "sign-off",
                rf"(?m)^[ \t]*(?:-|–|—|--)[ \t]*(?:(?:{_TITLES}|Br|Sr|Fr)\.?[ \t]+)?"
                rf"(?P<v>{_NAMED}|[a-zß-ÿ]{{3,}}(?:[ .][a-zß-ÿ]{{1,}})?)[ \t]*(?:\([^)\n]{{1,20}}\)|,[^\n]{{0,30}})?[ \t]*$",
                0.6,
                validate=lambda v: not v.islower() or v.split()[0].split(".")[0] in given_names(),
            ),
            # ALL-CAPS names after a name or role field: "Pt: WAYNE A. LUNDQUIST", "Copy to: NDLOVU, SIPHO MD"
            Rule(
                "caps after field",
                rf"(?i:\b(?:pt|patient|name|client|resident|member|insured|copy\s+to|cc|attending|ordering|"
                rf"referring|provider|physician|guarantor|subscriber)\b)[ \t]*:[ \t]*"
                rf"(?P<v>[{_UP}][{_UP}'’-]+(?:,[ ]?|[ ])[{_UP}][{_UP}'’-]*\.?(?:[ ][{_UP}][{_UP}'’-]*\.?){{0,2}})"
                rf"(?=[ \t]*(?:\(|[ \t]{{2}}|\n|$|,|MD\b|DO\b|RN\b|NP\b))",
                0.75,
            ),
            # dictation and sign-off initials: "DJE/ljt", "GPP/church/olinger", "558213/kmj", "XGT:holmes"
            Rule(
                "dictation initials",
                r"(?m)^[ \t]*(?P<v>[A-Z]{2,4}(?:[/:][A-Za-z]{2,12}){1,3})[ \t]*$",
                0.6,
            ),
            Rule("job initials", r"(?m)(?<=\d)/(?P<v>[a-z]{2,4})[ \t]*$", 0.6),
            Rule(
                "initials sign-off",
                r"(?m)^[ \t]*--?[ \t]*(?P<v>[a-z]{2,4}),[ \t]*(?:CMA|RN|LPN|MA|NP|PA|MD|CNA)\b",
                0.6,
            ),
        ],
        context=["patient", "name", "mr", "mrs", "ms", "dr", "spouse", "contact", "signed"],
    )


class GivenNameRecognizer(RuleRecognizer):
    """Given names from the census lists: with a capitalised surname after them (strong) or alone
    (weaker; names that are also common words need the surname)."""

    _TOKEN = re.compile(rf"(?<![\w@./-])[{_UP}][{_LOW}]+(?:-[{_UP}][{_LOW}]+)?(?![\w@-])")
    _FOLLOW = re.compile(
        rf"(?:[ ](?:[{_UP}]\.(?=\s)|[{_UP}][{_LOW}'’-]+|{_PARTICLE}[ \t]+[{_UP}][{_LOW}'’-]+)){{1,2}}"
    )

    def __init__(self) -> None:
        super().__init__(
            entity="PERSON", rules=[], name="GivenNameRecognizer", context=["name", "mr", "mrs", "ms"]
        )

    def analyze(self, text: str, entities: list[str], nlp_artifacts: object = None) -> list[RecognizerResult]:
        names = given_names()
        meta = result_metadata(self)
        results = []
        for m in self._TOKEN.finditer(text):
            word = m.group().lower()
            parts = word.split("-")
            if (
                len(word) < 3
                or word in _NOT_NAMES
                or (word not in names and not all(p in names for p in parts))
            ):
                continue
            follow = self._FOLLOW.match(text, m.end())
            if follow is not None and _demonym(follow.group()):
                continue  # "Many Americans", "Young Germans": a group of people, not a name
            if follow is not None and not _ends_in_suffix(follow.group()):
                results.append(
                    RecognizerResult("PERSON", m.start(), follow.end(), 0.75, recognition_metadata=dict(meta))
                )
            elif word not in AMBIGUOUS_NAMES:
                results.append(
                    RecognizerResult("PERSON", m.start(), m.end(), 0.55, recognition_metadata=dict(meta))
                )
        return results


# census given names that are mostly other words in running text
_NOT_NAMES = frozenset(
    {"my", "the", "his", "her", "our", "you", "see", "say", "ask", "can", "man", "son", "many", "some", "few"}
)


_SUFFIX_WORDS = frozenset(
    "street avenue road lane drive hospital clinic inc corp ltd university school college center centre bank "
    "church park hall library museum airport station county city foundation institute office offices team "
    "store branch hq headquarters region site campus".split()
)


def _demonym(words: str) -> bool:
    from guardrail.detection.recognizers.gazetteers import DEMONYMS, demonym_forms

    word = words.split(maxsplit=1)[0].lower()
    return word in demonym_forms() and word not in DEMONYMS  # a plural: "English" is also a surname


def _ends_in_suffix(words: str) -> bool:
    return words.rsplit(maxsplit=1)[-1].rstrip(".").lower() in _SUFFIX_WORDS
