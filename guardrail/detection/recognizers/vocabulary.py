"""What is not personal data: names of brands, products, software and services used in a commerce sense,
and clinical vocabulary (drugs, eponymous signs, scores and diseases, device makers, payers and guideline
bodies). The small NER model labels many of them PERSON, ORGANIZATION or LOCATION; a capitalised word
needs evidence beyond that label before it is redacted (see ``engine``), and these lists are the
evidence against.

The lists are general knowledge (globally known brands, carriers, airlines, retailers, software, the
common drugs of the WHO essential list and US top-prescribed brands, the eponyms and scores of clinical
practice), written for this module; a deployment adds its own with ``detection.allow_list``.
"""

from __future__ import annotations

import re
from functools import cache

__all__ = [
    "COMMERCE_AFTER",
    "COMMERCE_BEFORE",
    "EMPLOYMENT_BEFORE",
    "clinical_term",
    "commerce_name",
    "not_personal",
]

# Brands, companies in a commerce sense (shops, carriers, airlines, banks, insurers, telecoms, car makers,
# consumer electronics), software and online services. Lower-cased; multi-word names as written.
_BRANDS = """
amazon apple google alphabet microsoft meta facebook instagram whatsapp messenger telegram viber wechat
kakaotalk snapchat tiktok youtube twitter linkedin reddit pinterest tumblr discord twitch slack skype
webex netflix spotify hulu disney disney+ hbo paramount peacock didi airbnb booking.com booking expedia
trivago skyscanner kayak agoda tripadvisor fedex ups usps dhl dhl_express dpd gls tnt evri royal_mail
parcelforce canada_post la_poste colissimo chronopost correos correios postnl bpost deutsche_post posti
postnord poste_italiane australia_post japan_post india_post aramex purolator ontrac yodel inpost
sf_express ikea walmart costco kroger tesco sainsbury's sainsburys asda morrisons aldi lidl waitrose
carrefour auchan leclerc intermarché rewe edeka kaufland mediamarkt saturn argos currys primark
marks_&_spencer m&s john_lewis kmart bunnings woolworths coles best_buy home_depot lowe's ebay etsy
alibaba aliexpress temu shein zalando allegro mercado_libre rakuten flipkart shopee lazada bol.com
cdiscount wayfair zara h&m mango uniqlo nike adidas puma reebok new_balance asics under_armour levi's
gucci prada chanel louis_vuitton hermès burberry rolex omega rimowa samsonite starbucks mcdonald's
mcdonalds burger_king kfc subway domino's dominos pizza_hut pret costa nando's tim_hortons dunkin'
dunkin chipotle mastercard amex american_express paypal stripe venmo cash_app revolut monzo n26 klarna
affirm western_union moneygram payoneer alipay upi paytm phonepe hsbc barclays lloyds natwest santander
bbva ing rabobank abn_amro deutsche_bank commerzbank bnp_paribas société_générale credit_agricole
unicredit intesa_sanpaolo ubs credit_suisse jpmorgan bank_of_america wells_fargo citibank citi
goldman_sachs morgan_stanley vanguard fidelity schwab blackrock nationwide halifax allianz axa aviva
prudential metlife aig zurich generali admiral direct_line geico allstate progressive state_farm
liberty_mutual aia bupa vodafone at&t verizon t-mobile sprint telefónica telefonica movistar
deutsche_telekom telekom virgin_media comcast xfinity spectrum jio airtel toyota honda nissan mazda
subaru suzuki mitsubishi lexus hyundai kia chevrolet chevy gm tesla volkswagen vw audi bmw mercedes-benz
porsche opel vauxhall renault peugeot citroën citroen fiat alfa_romeo ferrari lamborghini maserati volvo
saab skoda cupra dacia jeep dodge cadillac buick jaguar land_rover bentley rolls-royce tata_motors
mahindra maruti bajaj byd nio sony samsung lg panasonic philips bose sennheiser jbl beats dell hp lenovo
asus acer msi razer logitech canon nikon fujifilm gopro dyson miele bosch siemens whirlpool electrolux
nintendo playstation xbox intel amd nvidia qualcomm ibm oracle sap salesforce adobe autodesk atlassian
jira confluence trello asana airtable hubspot zendesk intercom freshdesk servicenow workday netsuite
quickbooks xero shopify wordpress wix squarespace godaddy cloudflare github gitlab bitbucket docker
kubernetes terraform ansible jenkins django flask fastapi angular javascript typescript golang excel
powerpoint outlook onedrive sharepoint office_365 microsoft_365 microsoft_teams microsoft_excel
microsoft_entra azure aws amazon_web_services gcp google_cloud google_chrome chrome firefox macos ios
android linux ubuntu gmail yahoo hotmail icloud dropbox google_drive google_docs google_sheets
google_meet canva figma miro power_bi tableau looker snowflake databricks uipath openai chatgpt peloton
fitbit garmin strava duolingo tinder bumble hinge grindr boeing airbus embraer bombardier cessna
lufthansa ryanair easyjet british_airways air_france klm iberia vueling wizz_air turkish_airlines
emirates qatar_airways etihad singapore_airlines cathay_pacific qantas jetblue united_airlines
american_airlines southwest alaska_airlines air_canada westjet aer_lingus finnair ita_airways air_india
indigo latam avianca aeroméxico aeromexico hilton marriott hyatt ihg accor ibis novotel radisson
sheraton holiday_inn best_western coca-cola pepsi nestlé nestle unilever procter_&_gamble p&g heineken
danone kraft mondelez cargill exxon chevron totalenergies ticketmaster ticketek stubhub eventbrite
macbook imac ipad iphone airpods apple_watch chromebook thinkpad ideapad kindle roku chromecast
firestick bravia quietcomfort corolla camry prius yaris rav4 cr-v qashqai tiguan passat octavia fabia
clio megane captur twingo mondeo kuga f-150 sandero tucson sportage picanto vitara ford_ranger
ford_focus ford_fiesta ford_mustang ford_transit vw_golf volkswagen_golf vw_polo volkswagen_polo
honda_civic honda_accord honda_jazz nissan_leaf nissan_micra nissan_juke suzuki_swift renault_zoe
fiat_panda fiat_500 hyundai_kona kia_ceed google_pixel pixel_8 pixel_9 samsung_galaxy galaxy_s23
galaxy_s24 microsoft_surface surface_pro nintendo_switch amazon_echo echo_dot tesla_model_3
tesla_model_y model_3 model_y
"""

# Clinical vocabulary capitalised in notes: brand and generic drug names, eponymous signs, tests and
# scores, diseases named after people or places, device makers and devices, payers and guideline bodies.
_CLINICAL = """
tylenol advil motrin aleve asa ibuprofen acetaminophen paracetamol naproxen celebrex plavix clopidogrel
eliquis apixaban xarelto rivaroxaban pradaxa coumadin warfarin jantoven lovenox enoxaparin kcentra
brilinta ticagrelor lipitor atorvastatin crestor rosuvastatin zocor simvastatin pravastatin zetia
lisinopril prinivil zestril losartan cozaar valsartan diovan entresto amlodipine norvasc metoprolol
lopressor toprol carvedilol coreg atenolol hydrochlorothiazide hctz lasix furosemide bumex torsemide
spironolactone aldactone digoxin lanoxin amiodarone cordarone diltiazem cardizem verapamil nitroglycerin
nitrostat isosorbide imdur hydralazine clonidine metformin glucophage januvia sitagliptin janumet
jardiance empagliflozin farxiga dapagliflozin invokana ozempic semaglutide wegovy rybelsus mounjaro
tirzepatide trulicity dulaglutide victoza liraglutide lantus glargine basaglar levemir humalog novolog
tresiba glipizide glyburide synthroid levothyroxine levoxyl prednisone medrol methylprednisolone solu-
medrol decadron dexamethasone hydrocortisone albuterol ventolin proair xopenex symbicort advair breo
spiriva trelegy flovent singulair montelukast prozac fluoxetine zoloft sertraline lexapro escitalopram
celexa citalopram paxil paroxetine wellbutrin bupropion effexor venlafaxine cymbalta duloxetine
trazodone remeron mirtazapine abilify aripiprazole seroquel quetiapine risperdal risperidone zyprexa
olanzapine haldol haloperidol lamictal lamotrigine depakote keppra levetiracetam dilantin phenytoin
tegretol topamax gabapentin neurontin lyrica pregabalin xanax alprazolam ativan lorazepam klonopin
clonazepam valium diazepam ambien zolpidem adderall ritalin concerta vyvanse strattera oxycodone
percocet oxycontin vicodin norco hydrocodone morphine dilaudid hydromorphone fentanyl tramadol ultram
codeine suboxone buprenorphine methadone narcan naloxone vivitrol naltrexone zofran ondansetron reglan
metoclopramide phenergan compazine protonix pantoprazole prilosec omeprazole nexium esomeprazole pepcid
famotidine zantac miralax colace senna dulcolax imodium augmentin amoxicillin keflex cephalexin cipro
ciprofloxacin levaquin levofloxacin zithromax azithromycin z-pak doxycycline bactrim flagyl
metronidazole vancomycin zosyn rocephin ceftriaxone cefepime meropenem clindamycin nitrofurantoin
macrobid tamiflu paxlovid valtrex acyclovir diflucan fluconazole humira adalimumab enbrel remicade
infliximab stelara dupixent keytruda opdivo herceptin avastin rituxan revlimid ibrance tamoxifen
letrozole anastrozole arimidex lupron zometa prolia xgeva fosamax alendronate methotrexate plaquenil
hydroxychloroquine allopurinol colchicine flomax tamsulosin finasteride proscar viagra cialis levophed
norepinephrine vasopressin epinephrine epipen propofol versed midazolam ketamine precedex toradol
ketorolac benadryl diphenhydramine claritin zyrtec allegra flonase epogen procrit neulasta keppra tpa
alteplase tnk tenecteplase cellcept prograf tacrolimus sirolimus kernig brudzinski babinski mcburney
rovsing mcmurray phalen tinel chvostek trousseau kussmaul cheyne-stokes biot lhermitte apgar gcs centor
gleason braden mallampati nihss ranson child-pugh meld cha2ds2-vasc has-bled curb-65 caprini qsofa phq-9
phq gad-7 ciwa cows moca mmse epds karnofsky ecog fitzpatrick salter-harris gustilo breslow framingham
hodgkin non-hodgkin parkinson's alzheimer's crohn crohn's ménière ménière's meniere meniere's graves'
hashimoto hashimoto's cushing's addison's raynaud raynaud's sjögren sjögren's sjogren guillain-barré
guillain-barre kawasaki tourette tourette's asperger barrett barrett's wernicke korsakoff huntington's
marfan ehlers-danlos paget's whipple's kaposi epstein-barr lyme legionnaires' legionella hirschsprung
osgood-schlatter dupuytren dupuytren's peyronie peyronie's bartholin charcot-marie-tooth creutzfeldt-
jakob stevens-johnson takotsubo tetralogy fallot brugada wolff-parkinson-white lown-ganong-levine mobitz
wenckebach medtronic boston_scientific dexcom omnipod insulet tandem freestyle_libre medtrum accu-chek
onetouch contour stryker zimmer biomet smith_&_nephew depuy biotronik st._jude philips resmed
respironics ge_healthcare siemens_healthineers baxter becton_dickinson bd hill-rom pyxis alaris impella
lifevest zoll watchman mitraclip medicare medicaid tricare aetna cigna humana unitedhealthcare
united_healthcare anthem elevance blue_cross blue_shield bcbs kaiser_permanente healthpartners medica
molina centene wellcare ambetter oscar optum caremark express_scripts cvs walgreens rite_aid aha acc ada
cdc nih fda cms aap acog uspstf nccn kdigo idsa ats esc acr aua asco aasld acg agа easl ers gina jnc
ashp ismp joint_commission
chaddock oppenheim gordon's kerley mentzer schirmer unna segond hill-sachs bankart lisfranc chopart
maisonneuve monteggia galeazzi colles tillaux jefferson hangman's schatzker neer frykman hinchey
alvarado pesi sofa saps killip nyha forrest rockall blatchford glasgow-blatchford wexner truelove
harvey-bradshaw mayo_score lund-browder parkland tinetti barthel berg waterlow bi-rads li-rads lung-rads
ti-rads pi-rads o-rads stop-bang epworth audit-c cage-aid bims phq-2 gad-2 c-ssrs columbia ottawa
pecarn mcisaac nexus_criteria abcd2 hasbled heart_score timi_score wells_score geneva duke_criteria
jones_criteria rome_iv light's_criteria savary-miller prague_c&m los_angeles_grade bethesda gail
tyrer-cuzick fracture_risk frax hoffa morison sylvian rolandic broca wernicke's willis glisson
calot hartmann's meckel meckel's zenker zenker's schatzki mallory-weiss boerhaave virchow's sister_mary
babesia borrelia klebsiella pseudomonas serratia proteus enterobacter listeria bordetella clostridioides
allevyn mepilex aquacel tegaderm duoderm xeroform kerlix coban santyl silvadene bacitracin mupirocin
lokelma veltassa kayexalate rhogam winrho kcentra praxbind andexxa humulin novolin toujeo admelog
fiasp lyumjev xultophy soliqua bydureon byetta steglatro glyxambi synjardy xigduo invokamet kombiglyze
onglyza tradjenta nesina actos avandia amaryl prandin starlix hydroxyurea droxia imatinib gleevec
entecavir tenofovir truvada descovy biktarvy genvoya triumeq dovato cabenuva sovaldi harvoni epclusa
mavyret xifaxan rifaximin lactulose creon zenpep pancreaze linzess amitiza trulance motegrity
airsense aircurve dreamstation trilogy astral bipap cpap pleurx picc port-a-cath mediport hickman
groshong permcath quinton jackson-pratt hemovac blake_drain pleur-evac wound_vac prevena optiflow
vapotherm heartmate heartware impella_cp libre libre_2 libre_3 guardian_4 g6 g7 t:slim omnipod_5
"""


# Names that are also common words or people's names: a brand only with a model word or a commerce
# context ("Ford Ranger", "on Signal"), a clinical term only with its qualifier ("Murphy's sign",
# "Wells score", "GOLD group E", "Parkinson's disease").
_BRANDS_AMBIGUOUS = """
signal line x prime max go word edge opera safari windows three ram mini target square sage box chase
ford lincoln mercedes total delta swiss austrian sky orange vi ee o2 bt gap otto seat ola bolt grab zoom
teams office tap sas ana jal three bp shell visa hermes boots next arm edge vue react node.js python
java rust claude gemini copilot notion sketch monday.com oscar wise square lyft uber line
"""
_CLINICAL_AMBIGUOUS = """
murphy thompson hamilton wilson's clark weber garden norton morse bishop beck duke grace heart
sister_mary_joseph down baker's turner grey_turner cullen foley swan ganz swan-ganz charcot tanner wells
edwards abbott kaiser gold who nice sofa apache timi perc cage audit-c bristol edinburgh ann_arbor
glasgow lithium vitamin ferrous insulin heparin aspirin psi news2 mews bell's kehr blumberg virchow
troisier trendelenburg hoffmann spurling lachman homans romberg finkelstein psoas obturator parkinson
huntington alzheimer addison cushing graves wilson paget whipple baker bruce neer weber garden ottawa
berg norton braden oppenheim tinel phalen adson allis
"""
#: Words after an eponym that make it a clinical term.
_CLINICAL_QUALIFIER = re.compile(
    r"(?i)^['’]?s?\s*(?:sign|signs|score|scores|scale|criteria|test|tests|maneuver|manoeuvre|reflex|triad|"
    r"syndrome|disease|lymphoma|sarcoma|palsy|phenomenon|classification|class|stage|staging|grade|group|"
    r"catheter|tube|pump|transmitter|sensor|monitor|guideline|guidelines|standards|recommendations|"
    r"position|procedure|operation|fracture|ulcer|node|cell|cells|chorea|dementia|tremor|protocol|cyst|"
    r"pouch|fissure|boot|lines?|fat\s+pad|space|ligament|tendon|duct|canal|gland|body|bodies|index|rule|"
    r"repair|incision|drain|stocking|stockings|dressing|splint|cast|view|views|method|technique|"
    r"(?:negative|positive|neg|pos|equivocal|intact)(?!\s+for\b)|removed|placed|inserted|in\s+place|draining|"
    r"d/c'?d)\b"
)


def _phrases(block: str) -> frozenset[str]:
    """The names of a block: space-separated, the words of a multi-word name joined by ``_``."""
    return frozenset(w.replace("_", " ") for w in block.split())


@cache
def _sets() -> tuple[frozenset[str], frozenset[str], frozenset[str], frozenset[str]]:
    return (
        _phrases(_BRANDS),
        _phrases(_BRANDS_AMBIGUOUS),
        _phrases(_CLINICAL),
        _phrases(_CLINICAL_AMBIGUOUS),
    )


def _forms(value: str) -> list[str]:
    v = " ".join(value.replace("’", "'").split()).casefold().strip(" .,;:!?()\"'+/-")
    out = [v]
    if v.endswith("'s"):
        out.append(v[:-2])
    return out


_MODEL_WORD = re.compile(r"(?i)^\s*(?:[a-z]*\d[\w+-]*|(?:pro|max|plus|ultra|mini|air|one|lite|series)\b)")


def commerce_name(value: str, *, before: str = "", after: str = "") -> bool:
    """A brand, shop, carrier, airline, bank, insurer, car maker, product or software name: a known
    name; a known name then model words ("Sony WH-1000XM5", "Ford Ranger"); a name that is also a
    common word only with a commerce context ("on Signal", "the Target store")."""
    brands, ambiguous, _, _ = _sets()
    forms = _forms(value)
    if any(f in brands for f in forms):
        return True
    words = forms[0].split(maxsplit=1)
    head = words[0].removesuffix("'s") if words else ""
    if len(words) == 2 and len(head) > 1 and head in brands and not _given_then_name(value):
        return True
    if len(words) == 2 and head in ambiguous and _MODEL_WORD.match(words[1]):
        return True
    in_context = bool(COMMERCE_BEFORE.search(before[-40:]) or COMMERCE_AFTER.match(after[:30]))
    if any(f in ambiguous for f in forms):
        return in_context or bool(_MODEL_WORD.match(after[:12]))
    return False


_DOSE = re.compile(
    r"(?i)^\s*\d[\d.,/]*\s*(?:mg|mcg|µg|ug|g|gm|units?|u|iu|ml|meq|mmol|%|tabs?|tablets?|caps?|capsules?|"
    r"puffs?|drops?|sprays?|patch(?:es)?)\b"
)
_SPAN_WORD = re.compile(r"[^\W\d_][\w'’-]*")


def clinical_term(value: str, *, after: str = "") -> bool:
    """A drug, an eponymous sign/score/disease, a device maker, a payer or a guideline body; an
    eponym that is also a surname ("Murphy", "Wells") only with its qualifier ("Murphy's sign"); a name
    the model glued to clinical words ("SQ Lantus + Humalog", "Sonographic Murphy's sign"); a word
    followed by a dose ("Lokelma 10 g", "hydroxyurea 1000 mg")."""
    _, _, terms, ambiguous = _sets()
    forms = _forms(value)
    if any(f in terms for f in forms):
        return True
    if _DOSE.match(after) or _DOSE.search(value.rsplit(maxsplit=1)[-1] if " " in value else ""):
        return True
    words = _SPAN_WORD.findall(value)
    if len(words) >= 2:

        def known(w: str) -> bool:
            f = _forms(w)[-1]
            return f in terms or f.replace("-", "") in terms

        named = [
            w
            for i, w in enumerate(words)
            if w[:1].isupper()
            and not (w.isupper() and len(w) <= 5)
            and not (i == 0 and w.lower().endswith(("ed", "ing")))  # "Started", "Continuing"
        ]
        if any(known(w) for w in words) and all(known(w) for w in named):
            return True  # every capitalised word of the span is a clinical term
        last = _forms(words[-1])[-1]
        if last in ambiguous and _CLINICAL_QUALIFIER.match(after[:30]) and words[0].lower() not in _given():
            return True  # "Sonographic Murphy" + "'s sign"
    words = forms[0].split()
    head = words[0].removesuffix("'s") if words else ""
    if len(words) >= 2 and len(head) > 2 and head in terms and not _given_then_name(value):
        return True  # "Gleason 3+4", "Hodgkin lymphoma", "Dexcom G7"
    if head in ambiguous or any(f in ambiguous for f in forms):
        rest = " ".join(words[1:])
        return bool(_CLINICAL_QUALIFIER.match(rest) or _CLINICAL_QUALIFIER.match(after[:30]))
    return False


def not_personal(value: str, *, before: str = "", after: str = "", clinical: bool = True) -> bool:
    """A name that is not personal data by itself: a brand or product in a commerce sense, or (with
    ``clinical``) clinical vocabulary. ``before`` and ``after`` are the text around the name."""
    if commerce_name(value, before=before, after=after) or (clinical and clinical_term(value, after=after)):
        return True
    words = value.split()
    if words and _JOB_TITLE.search(value):
        return True  # "Data Engineer", "Head of Operations", "VP Finance": a job title, never a name
    # "Started Apixaban", "Continue Plavix": a capitalised word glued to a known term by the model
    if len(words) == 2 and words[0].lower() not in _given():
        return commerce_name(words[1]) or (clinical and clinical_term(words[1]))
    return False


_JOB_TITLE = re.compile(
    r"(?i)(?:^(?:head|vp|svp|evp|director|chief)\s+of\b|^(?:vp|svp|cfo|ceo|cto|coo)\s|\b(?:engineer|manager|director|analyst|"
    r"scientist|executive|trainee|controller|partner|officer|specialist|consultant|architect|developer|designer|"
    r"coordinator|assistant|intern|administrator|superintendent|accountant|recruiter|representative|"
    r"supervisor|technician|operator|inspector)s?(?:\s+(?:I|II|III|IV))?$)"
)


def _given_then_name(value: str) -> bool:
    """A given name followed by a capitalised word ("Ada Finch", "Addison Reyes"): a person, even when
    the given name is also a product or an eponym."""
    words = value.split()
    return (
        len(words) >= 2
        and words[0].lower() in _given()
        and words[1][:1].isupper()
        and words[1].rstrip(".,'’s").isalpha()
    )


def _given() -> frozenset[str]:
    from guardrail.detection.recognizers.gazetteers import given_names

    return given_names()


#: Words before a name that make it the person's employer, school or business (personal data).
EMPLOYMENT_BEFORE = re.compile(
    r"(?i)\b(?:join(?:s|ed|ing)?|work(?:s|ed|ing)?\s+(?:at|for|with)|employ(?:ed|er|s)?(?:\s+(?:at|by|is))?|"
    r"hired\s+(?:at|by)|intern(?:ed|ship)?\s+at|left|quit|resigned\s+from|job\s+at|position\s+at|role\s+at|"
    r"offer\s+from|studie[sd]\s+at|stud(?:y|ying)\s+at|graduated\s+from|student\s+at|enrolled\s+at|"
    r"(?:engineer|manager|director|analyst|developer|consultant|officer|lead|head|intern|scientist|designer|"
    r"teacher|nurse|physician)\s+(?:at|@)|@|employer\s*:|company\s*:|organi[sz]ation\s*:|school\s*:)[\s:]*$"
)

#: Words before a name that put it in a commerce sense: "bought at IKEA", "booked through Homelike",
#: "a policy with Prudential", "supplier to Toyota", "compete with X", "currently using UiPath".
COMMERCE_BEFORE = re.compile(
    r"(?i)\b(?:bought|buy|buying|purchased?|ordered|order(?:ed)?\s+from|shop(?:ped)?\s+at|shipp?(?:ed|ing)\s+(?:with|by|via)|"
    r"deliver(?:ed|y)\s+(?:by|with|via)|booked|book(?:ing)?\s+(?:on|with|through|via)|paid\s+(?:with|by|via|through)|"
    r"via|through|using|uses|use|used|with\s+(?:a|an|the)?\s*(?:policy|account|card|contract|plan)|"
    r"policy\s+with|account\s+(?:with|at)|claim\s+with|insurer|insured\s+with|bank(?:s|ed)?\s+with|"
    r"supplier\s+(?:to|of)|suppl(?:y|ies)|sells?\s+(?:to|via|on|through)|compete[sd]?\s+with|competitor|"
    r"looked\s+at|switch(?:ed|ing)?\s+(?:to|from)|migrat\w+\s+(?:to|from)|integrat\w+\s+with|"
    r"receipts?\s+from|refund\s+from|reseller|vendor|brand|retailer|carrier|courier|airline|"
    r"buyers?\s+like|customers?\s+like|clients?\s+like|such\s+as|logged\s+in|logins?\s+(?:for|to)|"
    r"piloting|licen[cs]es?\s+for|installed|download(?:ed)?|"
    r"(?:message|text|ping|call|reach|contact|dm|find|add|follow)\s+(?:me|us|him|her|them)\s+on)[\s:]*$"
)
#: Words after a name that make it a product or a shop: "Bose headphones", "the Tesco car park".
COMMERCE_AFTER = re.compile(
    r"(?i)^['’]?s?\s*(?:headphones|earbuds|speaker|laptop|phone|tablet|tv|sofa|chair|table|bike|bikes|car|"
    r"van|truck|forklift|shares?|stock|ticket|tickets|app|account|card|integration|licen[cs]es?|"
    r"templates?|bundle|bots?|scanners?|tenant|erp|crm|car\s+park|store|shop|outlet|branch|counter|"
    r"agency|packstation|locker|support|helpdesk|hotline|resale|order|orders|parcel|delivery|invoice|"
    r"contract|subscription|plan|policy|loan|mortgage|points|miles|voucher|gift\s+card|prime|"
    r"flight|flights|seat|seats|booking|reservation|receipt|bill|statement|model|series|pro|max|"
    r"display|monitor|printer|camera|watch|console|game|server|cloud|portal|website|site|page|"
    r"workspace|channel|group|chat|call|meeting|link|update|version|bandana|kit|jersey|game)\b"
)
