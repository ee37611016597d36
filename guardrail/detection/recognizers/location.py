"""Addresses and places: street addresses (one line or several), PO boxes and military addresses,
US ZIP codes and other postal codes, places named after a locating phrase, US states.

spaCy's small model finds cities and countries but misses most street addresses, especially multi-line
ones. A street address here is a house number and up to five words ending in a street type (the USPS
suffix list plus common European forms), or a street type followed by a number ("Hoge Wei 32",
"Lützelflühstrasse 122"), optionally followed by a unit, a city line, a state or region and a postcode,
across line breaks.
"""

from __future__ import annotations

import re

from guardrail.detection.recognizers.base import Rule, RuleRecognizer
from guardrail.detection.recognizers.gazetteers import COUNTRIES

__all__ = ["US_STATES", "location_recognizers", "zip_recognizer"]

_SUFFIXES = (
    "Street|St|Avenue|Ave|Av|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Circle|Cir|Place|Pl|Square|Sq|"
    "Terrace|Ter|Way|Parkway|Pkwy|Highway|Hwy|Freeway|Expressway|Expy|Turnpike|Tpke|Trail|Trl|Alley|Aly|"
    "Row|Walk|Path|Pike|Plaza|Plz|Crescent|Cres|Close|Grove|Gardens?|Gdns|Green|Heights|Hts|Hill|Hills|"
    "Manor|Mnr|Corner|Corners|Cor|Crossing|Xing|Crossroad|Point|Pt|Ridge|Rdg|View|Vista|Villa|Villas|"
    "Village|Vlg|Ville|Estates?|Park|Pass|Passage|Overpass|Underpass|Tunnel|Bridge|Brg|Bypass|Causeway|"
    "Center|Centre|Ctr|Cove|Creek|Crest|Dale|Dam|Divide|Extension|Ext|Falls|Ferry|Field|Fields|Flat|Flats|"
    "Ford|Forest|Forge|Fork|Forks|Fort|Glen|Harbor|Harbour|Haven|Hollow|Inlet|Island|Isle|Junction|Jct|"
    "Key|Knoll|Knolls|Lake|Lakes|Landing|Light|Lights|Loaf|Lock|Locks|Lodge|Loop|Mall|Meadow|Meadows|"
    "Mews|Mill|Mills|Mission|Motorway|Mount|Mountain|Neck|Orchard|Oval|Port|Prairie|Radial|Ramp|Ranch|"
    "Rapid|Rapids|Rest|Route|Rte|Run|Shoal|Shoals|Shore|Shores|Skyway|Spring|Springs|Spur|Station|Stravenue|"
    "Stream|Summit|Throughway|Trace|Track|Trafficway|Trailer|Union|Unions|Valley|Vly|Viaduct|Wall|Well|"
    "Wells|Wharf|Wynd|Via|Rue|Strasse|Straße|Str|Weg|Gasse|Platz|Allee|Laan|Straat|Gracht|Plein|Kade|"
    "Vej|Gade|Gatan|Vägen|Gata|Tie|Katu|Utca|Ulica|Ul|Calle|Carrer|Avenida|Rua|Travessa|Largo|Viale|Piazza|"
    "Corso|Strada|Chemin|Quai|Impasse|Allée|Boulevard|Odos|Leoforos|Cesta|Ulice|Namesti|Brook|Burg|Bluff|Bluffs"
)
# street words that end compound names: Lützelflühstrasse, Heiligengeistbrücke, Kongensgade
_COMPOUND = (
    "strasse|straße|str|weg|gasse|platz|allee|laan|straat|gracht|plein|kade|singel|dijk|vej|gade|gatan|"
    "vägen|väg|gata|gränd|tie|katu|kuja|polku|utca|ulica|brücke|ring|damm|ufer|markt|steig|pfad|stieg|"
    "zeile|kamp|vei|veien|gate|gaten|braut|vegur|stræti|sund|straede|stræde|vägen|rinne|aukio"
)
# words inside a street name: capitalised (any script), numbers, initials, "de", "van", "of", "the"...
_NAME_WORD = r"(?:[A-ZÀ-ÞĀ-Žά-ώΑ-Ω][\w'’.-]*|\d+(?:st|nd|rd|th)?|(?:de|da|do|del|der|den|van|von|la|le|of|the|y|e|di|du))"
_UNIT = (
    r"(?:,?\s*(?:Apt|Apartment|Suite|Ste|Unit|Flat|Fl|Floor|Room|Rm|Bldg|Building|No|#)\.?\s*#?\s*[\w-]{1,6})"
)
_HOUSE = r"\d{1,6}[A-Za-z]?(?:[-/]\d{1,4})?"
_CITY = r"[A-ZÀ-ÞĀ-Žά-ώΑ-Ω][\w'’.-]*(?:[ -][A-ZÀ-ÞĀ-Žά-ώΑ-Ω][\w'’.-]*){0,3}"
_POSTCODE = r"(?:\d{4,5}(?:-\d{3,4})?|[A-Z]\d[A-Z] ?\d[A-Z]\d|[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2})"
# an optional tail: [,] newline-or-space city [, region] [country] [postcode], each part optional
_TAIL = (
    rf"(?:(?:\s*,\s*|\s*\n\s*)(?:{_POSTCODE}[ \t]+)?(?:{_CITY})(?:(?:\s*,\s*|\s*\n\s*|\s+)(?:[A-Z]{{2,3}}|nan|{_CITY}))?"
    rf"(?:(?:\s*,\s*|\s*\n\s*|\s+){_CITY})?(?:(?:\s*,\s*|\s*\n\s*|\s+){_POSTCODE})?)?"
)

US_STATES = (
    "Alabama|Alaska|Arizona|Arkansas|California|Colorado|Connecticut|Delaware|Florida|Georgia|Hawaii|Idaho|"
    "Illinois|Indiana|Iowa|Kansas|Kentucky|Louisiana|Maine|Maryland|Massachusetts|Michigan|Minnesota|"
    "Mississippi|Missouri|Montana|Nebraska|Nevada|New Hampshire|New Jersey|New Mexico|New York|"
    "North Carolina|North Dakota|Ohio|Oklahoma|Oregon|Pennsylvania|Rhode Island|South Carolina|"
    "South Dakota|Tennessee|Texas|Utah|Vermont|Virginia|Washington|West Virginia|Wisconsin|Wyoming|"
    "District of Columbia|Puerto Rico"
)
_STATE_CODES = (
    "AL|AK|AZ|AR|CA|CO|CT|DE|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|NJ|NM|NY|NC|ND|"
    "OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|DC|PR|AA|AE|AP"
)

_BLOCK_WORD = r"(?:[A-ZÀ-ÞĀ-Žά-ώΑ-Ω][\w'’.-]*|nan|\d{3,6}(?:-\d{3,4})?|[a-zß-ÿ]{1,3})"
_BLOCK_LINE = rf"[ \t]*,?[ \t]*{_BLOCK_WORD}(?:[ \t,]+{_BLOCK_WORD}){{0,4}}[ \t]*(?=\n|$)"

# a capitalised word after "in", "moved to"... that is a month or a weekday is not a place
_NOT_CALENDAR = (
    r"(?!(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec|January|February|March|April|June|July|"
    r"August|September|October|November|December|Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday|"
    r"Today|Tomorrow|Yesterday)\b)"
)

# vital signs, lab and chart abbreviations between numbers ("BP 138/84 HR 96 RR 18") are not street names
_VITALS = (
    r"(?:HR|RR|BP|SBP|DBP|MAP|T|P|R|Temp|SpO2|SaO2|Sat|Sats|O2|FiO2|Wt|Ht|BMI|GCS|EF|Hgb|Hb|Hct|WBC|Plt|K|Na|Cl|"
    r"Cr|BUN|INR|PT|PTT|pH|Glu|BG|A1c|LDL|HDL|TSH|M|F|MRN|DOB|Age|Rm|Room|Bed|Ward|Pain|Score|Wk|Wks|POD|HD|"
    r"Ht|Wt|Lb|Lbs|Kg|Cm|Mm|Mg|Mcg|Units|ml|Apgars?|APGARs?|G|V|L)\b"
)

# street types that name a street on their own (not Park, Center, Station, Lake, which name other places)
_STREET_WORDS = (
    r"Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Drive|Close|Crescent|Terrace|Strasse|Straße|Weg|"
    r"Gasse|Allee|Laan|Straat|Vej|Gade|Gatan|Vägen|Utca|Ulica|Calle|Rua|Avenida|Viale|Rue|Odos"
)

# capitalised words that start a sentence or a phrase rather than a place name ("In Italy", "Visit Spain")
_NOT_FUNCTION = (
    r"(?!(?:In|At|To|From|For|The|And|Or|Of|On|By|With|Via|Visit|Visiting|Made|Ship|Shipping|Ships|Shipped|"
    r"Welcome|Hello|Hi|Dear|Team|Office|Offices|Branch|Store|Stores|Sales|Support|Both|All|Only|Also|"
    r"Across|Around|Within|Outside|Inside|Throughout|Than|Like|Including|Not|North|South|East|West|Central|"
    r"Northern|Southern|Eastern|Western|New|Our|Your|My|His|Her|Their|Its|We|You|I|They|He|She|It|This|That|"
    r"Is|Was|Are|Were|Beat|Beats|Played|Plays|Against|Versus|Vs|Team|Bank|Air|Airways|Radio|Times)\b)"
)

# phrases after which a capitalised name is a place
_LOCATING = (
    r"live[sd]?\s+in|living\s+in|lived\s+in|reside[sd]?\s+in|residing\s+in|resident\s+of|moved\s+(?:to|from)|"
    r"relocat\w+\s+(?:to|from)|born\s+in|grew\s+up\s+in|raised\s+in|native\s+of|located\s+in|based\s+in|"
    r"hometown(?:\s+is)?|home\s+city|city(?:\s+of)?|town(?:\s+of)?|village(?:\s+of)?|county\s+of|travel(?:l?ed|l?ing)?\s+to|"
    r"trip\s+to|flew\s+to|flying\s+to|visit(?:ed|ing)?|address\s+is|live\s+at|lives\s+at"
)


def location_recognizers() -> list[RuleRecognizer]:
    """Street addresses, PO boxes, military addresses and places after a locating phrase."""
    return [
        RuleRecognizer(
            entity="LOCATION",
            name="StreetAddressRecognizer",
            rules=[
                # 123 [N] Main Street [Apt 4][, City[, ST] [12345]]
                Rule(
                    "number street suffix",
                    rf"\b{_HOUSE}(?:\s+{_HOUSE})?\s+(?:{_NAME_WORD}\s+){{1,4}}?(?:{_SUFFIXES})\b\.?"
                    rf"(?:\s+\d{{1,5}}[A-Za-z]?\b)?{_UNIT}?{_TAIL}",
                    0.8,
                ),
                # Main Street 12 / Lützelflühstrasse 122 / Hoge Wei 32 [Apt 4][, tail]
                Rule(
                    "street number",
                    rf"\b(?:{_NAME_WORD}[ \t]+){{0,3}}(?:[A-ZÀ-Þ][\w'’-]*(?:{_COMPOUND})|(?:{_SUFFIXES}))\.?[ \t]+"
                    rf"\d{{1,5}}[A-Za-z]?\b\.?{_UNIT}?{_TAIL}",
                    0.7,
                ),
                # a house number, a capitalised name of any script and a number: "Kraavi 28" needs context
                Rule(
                    "name number",
                    r"\b[A-ZÀ-ÞĀ-Žά-ώΑ-Ω][a-zß-ÿā-žά-ώ]{3,}(?:\s+[A-ZÀ-Þ][a-zß-ÿ]+)?\s+\d{1,4}[a-z]?\b(?!\s*(?:mg|kg|%|years|days|times|minutes|hours))",
                    0.3,
                ),
                # 1586 Kraavi 28: a building number, a name and a street number
                Rule(
                    "number name number",
                    r"(?<![\w.,-])\d{1,5}[ \t]+(?:(?!"
                    + _VITALS
                    + r")[A-ZÀ-ÞĀ-Ž][\w'’.-]*[ \t]+){1,3}\d{1,4}[a-zA-Z]?\b(?![.,:]\d|\s*(?:mg|kg|%|years|days|times|minutes|hours))",
                    0.6,
                ),
                # ul. Gawronów 53 / C/ Mayor 81 / Rua Porangaba 1452 / út 29
                Rule(
                    "prefix street",
                    rf"(?:\b\d{{1,5}}[ \t]+)?(?<![\w])(?:ul\.|ulica|al\.|C/|Calle|Rua|Av\.|Avda\.?|Avenida|Via|Viale|Rue|Piazza|Strada|Paseo|Plaza|Travessa|Largo|Camino|Carrer|Chemin|Odos)[ \t]+(?:(?:de|du|des|del|della|da|do|dos|das|di|la|le|les|van|von|der|dei|degli)[ \t]+)*(?:[A-ZÀ-ÞĀ-Ž0-9][\w'’.-]*[ \t]*){{1,4}}\d{{0,5}}[A-Za-z]?\b{_TAIL}",
                    0.75,
                ),
                # a street without a house number, then its town: "Coleman Road, Leicester", "Rue des Lilas,
                # Nantes" (a junction, a meeting point, an incident place)
                Rule(
                    "street then town",
                    rf"(?<![\w'’-])(?:[A-ZÀ-ÞĀ-Ž][\w'’-]+[ ](?:(?:de|des|du|la|le|del|della|di|da|do|dos|van|von|der)[ ])?)"
                    rf"{{1,3}}(?:{_STREET_WORDS})\b\.?,[ ]+{_NOT_CALENDAR}{_NOT_FUNCTION}[A-ZÀ-ÞĀ-Ž][a-zß-ÿā-ž'’-]+"
                    rf"(?:[ -][A-ZÀ-ÞĀ-Ž][a-zß-ÿā-ž'’-]+)?\b",
                    0.6,
                ),
                # postcodes distinctive on their own: a full UK postcode ("SA19 6BW", "M13 9PL"), an Irish
                # Eircode ("D02 XE80"), a Canadian one ("K1A 0B1")
                Rule(
                    "uk postcode",
                    rf"(?<![\w-])(?:{_NOT_FUNCTION}[A-ZÀ-ÞĀ-Ž][a-zß-ÿā-ž'’-]+,?[ ])?"
                    r"(?:[A-PR-UWYZ][A-HK-Y]?\d[A-Z\d]?[ ]\d[ABD-HJLNP-UW-Z]{2})(?![\w-])",
                    0.6,
                ),
                Rule(
                    "eircode",
                    r"(?<![\w-])(?:[AC-FHKNPRTV-Y]\d{2}|D6W)[ ](?=[0-9AC-FHKNPRTV-Y]*\d)(?=[0-9AC-FHKNPRTV-Y]*[A-Z])"
                    r"[0-9AC-FHKNPRTV-Y]{4}(?![\w-])",
                    0.55,
                ),
                Rule(
                    "canadian postcode",
                    r"(?<![\w-])[ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z][ ]?\d[ABCEGHJ-NPRSTV-Z]\d(?![\w-])",
                    0.6,
                ),
                # "Roodepoort, South Africa", "Montemurro Italy": a place name then its country locates a
                # person (an address tail, a home town); the first word is not a function word or month
                Rule(
                    "place country",
                    rf"(?<![\w&@.-]){_NOT_CALENDAR}{_NOT_FUNCTION}(?P<v>[A-ZÀ-ÞĀ-Ž][a-zß-ÿā-ž'’-]+(?:[ -](?:[A-ZÀ-ÞĀ-Ž]"
                    rf"[a-zß-ÿā-ž'’-]+|nad|na|am|an|de|del|sur|upon|on))?,?[ \t]+(?:{COUNTRIES}))\b(?![ \t]*[A-Z][a-z])",
                    0.6,
                ),
                # a multi-line postal block: a street line then short capitalised lines (city, region, country, postcode)
                Rule(
                    "postal block",
                    rf"(?m)^[ \t]*\d{{1,6}}[A-Za-z]?[ \t]+(?!\d)[^\n.]{{2,60}}(?:\n{_BLOCK_LINE}){{2,4}}",
                    0.7,
                ),
                Rule(
                    "po box",
                    r"\b(?:P\.?\s?O\.?\s*Box|Post\s+Office\s+Box|Postfach|PSC\s+\d{1,5},?\s*Box)\s+\d{1,6}"
                    + _TAIL,
                    0.9,
                    flags=re.IGNORECASE,
                ),
                Rule(
                    "military",
                    r"\b(?:USNS|USNV|USS|USCGC|Unit\s+\d{4})\s+[\w ]{1,30}?,?\s*\n?\s*(?:Box\s+\d{1,5},?\s*\n?\s*)?(?:FPO|APO|DPO)\s+(?:AA|AE|AP)\s+\d{5}",
                    0.95,
                ),
                Rule("apo line", r"\b(?:FPO|APO|DPO)\s+(?:AA|AE|AP)\s+\d{5}\b", 0.9),
                Rule("unit alone", r"\b(?:Apt|Apartment|Suite|Ste)\.?\s*#?\s*\d{1,5}[A-Za-z]?\b", 0.6),
                Rule(
                    "corner of",
                    r"(?i:\bcorner\s+of\s+)(?P<v>[A-ZÀ-ÞĀ-Ž][\w'’ .-]{1,40}?\s+(?i:and|&)\s+[A-ZÀ-ÞĀ-Ž][\w'’-]*(?:\s+[A-ZÀ-Þ0-9][\w'’-]*){0,3})",
                    0.8,
                ),
                Rule("city state zip", rf"\b{_CITY},\s*(?:{_STATE_CODES})\s+\d{{5}}(?:-\d{{4}})?\b", 0.9),
                # ", 80-827 Gdańsk", ", 413 09 Göteborg", ", 2200 København N": a postcode and a city after
                # a comma (an address line before it); years are not postcodes
                Rule(
                    "postcode city",
                    r"(?<=,)[ \t]*(?P<v>(?!(?:19|20)\d\d\b)(?:\d{2}-\d{3}|\d{3}[ ]\d{2}|\d{4,5})[ \t]+"
                    r"[A-ZÀ-ÞĀ-Ž][\w'’-]+(?:[ -][A-ZÀ-ÞĀ-Ž][\w'’-]+){0,2}(?:[ ][A-Z]\b)?)(?=[ \t]*(?:[,.;)?!]|\n|$))",
                    0.6,
                ),
            ],
            context=[
                "address",
                "street",
                "live",
                "lives",
                "located",
                "residence",
                "home",
                "apartment",
                "ship",
                "deliver",
                "mail",
            ],
        ),
        RuleRecognizer(
            entity="LOCATION",
            name="PlaceRecognizer",
            rules=[
                Rule("us state", rf"\b(?:{US_STATES})\b", 0.6),
                # "in Dunakeszi 2120", "in Casal das Cheiras 2500-737": a place and its postcode
                Rule(
                    "place postcode",
                    r"(?i:\b(?:in|at|from|to|near)\s+)(?P<v>(?!(?:[A-Z]{2}\s+\d{5}(?:-\d{4})?\b))(?!(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec|January|February|March|April|June|July|August|September|October|November|December|Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday|Room|Suite|Bed|Ward|Floor|Building|Unit|Table|Figure|Chapter|Section|Page|Step|Version|Level|Grade|Stage|Type|Class|Phase|Year|Week|Day|Month|Q[1-4])\b)[A-ZÀ-ÞĀ-Ž][\w'’-]+(?:\s+(?:[a-zß-ÿ]{1,3}|[A-ZÀ-ÞĀ-Ž][\w'’-]+)){0,3}\s+\d{3,5}(?:-\d{3,4})?)(?![\w-])",
                    0.6,
                ),
                Rule(
                    "locating phrase",
                    rf"(?i:\b(?:{_LOCATING})\s+)(?P<v>(?-i:{_NOT_CALENDAR}[A-ZÀ-ÞĀ-Žά-ώΑ-Ω][\w'’.-]*(?:[ -](?:[A-ZÀ-ÞĀ-Žά-ώΑ-Ω][\w'’.-]*|\d{{1,2}}|(?:de|del|di|la|le|sur|am|an|im|upon|on)(?![\w'’]))){{0,3}}))",
                    0.6,
                ),
            ],
            context=["live", "lives", "city", "town", "moved", "born", "located", "from", "visit", "country"],
        ),
        RuleRecognizer(
            entity="LOCATION",
            name="CapitalisedPlaceRecognizer",
            rules=[
                # an all-caps name after a preposition of place: "in SAINT-DENIS", "from RUD"
                Rule(
                    "caps after preposition",
                    r"(?<![\w])(?i:in|at|from|to|near|of)[ \t]+(?P<v>(?!(?:ICU|CHF|MRI|COPD|HIPAA|GDPR|PHI|PII|USD|EUR|CEO|CFO|FAQ|ASAP|API|URL|PDF|ETF|ATM|AIDS|HIV|COVID|ECG|EKG|CBC|BMI|DNA|RNA|THE|AND|FOR|NOT|ALL|YOU)\b)[A-ZÀ-ÞĀ-Ž]{3,}(?:[ -][A-ZÀ-ÞĀ-Ž]{2,}){0,2})(?![\w-])",
                    0.55,
                ),
            ],
        ),
    ]


def zip_recognizer() -> RuleRecognizer:
    """US ZIP codes (after a state or with a postal label) and labelled postal codes of other countries."""
    return RuleRecognizer(
        entity="US_ZIP_CODE",
        name="ZipCodeRecognizer",
        rules=[
            Rule(
                "after state", rf"\b(?:{_STATE_CODES}|{US_STATES})\.?,?\s+(?P<v>\d{{5}}(?:-\d{{4}})?)\b", 0.9
            ),
            Rule(
                "labelled",
                r"(?i:\b(?:zip|postal|post|postcode|zipcode)(?:\s*code)?\b)\s*(?:(?i:is|:|#|no\.?))?\s*"
                r"(?P<v>[A-Z0-9](?:[A-Z0-9]|[ -](?=[A-Z0-9])){2,9})(?![\w-])",
                0.9,
            ),
            Rule("zip+4", r"\b\d{5}-\d{4}\b", 0.6),
            Rule("bare zip", r"(?<![\w$.,-])\d{5}(?![\w%.,-]|\s*(?:mg|kg|ml|units|dollars|USD|EUR))", 0.2),
        ],
        context=["zip", "postal", "postcode", "address", "mail"],
    )
