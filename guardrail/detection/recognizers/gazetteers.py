"""Word lists used as evidence: given names (US Census 1990, public domain), nationalities and
demonyms, legal suffixes of companies. Loaded once, lazily."""

from __future__ import annotations

from functools import cache
from importlib import resources

__all__ = ["AMBIGUOUS_NAMES", "COMPANY_SUFFIXES", "COUNTRIES", "DEMONYMS", "given_names"]

#: Given names that are also common English words, months or places: evidence of a person only
#: when a capitalised surname follows ("Grant Hill", not "Grant access").
AMBIGUOUS_NAMES = frozenset(
    """
    may june april august january september will bill mark grant hope faith joy grace summer autumn winter
    dawn rose iris lily daisy ivy holly heather hazel ruby pearl amber crystal jewel ginger honey candy
    sandy rusty dusty misty stormy sunny sky star page chance christian major king queen prince princess
    lady noble royal sterling frank earnest art guy don dean gene jack bob rob pat sue ray rich chuck buck
    bud clay cliff dale glen heath lane reed ross wade woody miles cash gay fay la le lee long young an in
    so see ok do ma pa man son sun moon song min ha lan lin chi bo al ed eve tim tom max rex hunter
    forest river brook brooks stone price ward hill wood wolf fox bell hall chase dash miss love precious
    patience mercy charity liberty harmony melody destiny trinity genesis unity justice blessing angel
    baby lucky goldie golden silver ivory olive violet scarlet rosemary sage cherry berry apple sparkle
    shine sunshine rain storm cloud echo trust miracle marvel numbers manual marine royal tiny dot
    said sang sherry brandy tequila sherry champagne porsche mercedes lexus chevy ford harley china india
    asia america africa europe paris rome london berlin madrid vienna florence venice sydney victoria
    alberta georgia virginia carolina florida dakota nevada montana indiana maryland kansas austin
    dallas houston denver phoenix orlando jackson memphis tulsa lincoln clinton cleveland columbus
    monday tuesday wednesday thursday friday saturday sunday easter christmas noel carol january
    patient doctor nurse hospital clinic more most much less best last first next
    """.split()
)

DEMONYMS = frozenset(
    """
    afghan albanian algerian american andorran angolan argentine argentinian armenian australian austrian
    azerbaijani bahamian bahraini bangladeshi barbadian belarusian belgian belizean beninese bhutanese
    bolivian bosnian botswanan brazilian british bruneian bulgarian burkinabe burmese burundian cambodian
    cameroonian canadian chadian chilean chinese colombian congolese croatian cuban cypriot czech danish
    djiboutian dominican dutch ecuadorian egyptian emirati english eritrean estonian ethiopian fijian
    filipino finnish french gabonese gambian georgian german ghanaian greek grenadian guatemalan guinean
    guyanese haitian honduran hungarian icelandic indian indonesian iranian iraqi irish israeli italian
    ivorian jamaican japanese jordanian kazakh kenyan korean kosovar kuwaiti kyrgyz lao laotian latvian
    lebanese liberian libyan lithuanian luxembourgish macedonian malagasy malawian malaysian maldivian
    malian maltese mauritanian mauritian mexican moldovan monegasque mongolian montenegrin moroccan
    mozambican namibian nepalese nepali nicaraguan nigerian nigerien norwegian omani pakistani palestinian
    panamanian paraguayan peruvian polish portuguese qatari romanian russian rwandan salvadoran samoan
    saudi scottish senegalese serbian seychellois singaporean slovak slovakian slovenian somali
    spanish sudanese surinamese swazi swedish swiss syrian taiwanese tajik tanzanian thai togolese tongan
    trinidadian tunisian turkish turkmen ugandan ukrainian uruguayan uzbek venezuelan vietnamese welsh
    yemeni zambian zimbabwean greenlander greenlandic faroese icelander dane finn swede norwegian pole
    scot brit briton luxembourger kiwi aussie hispanic latino latina latinx arab arabic asian african
    caucasian jewish muslim christian catholic protestant hindu buddhist sikh mormon orthodox
    chechen kurdish kurd basque catalan flemish walloon sami roma romani maori aboriginal indigenous
    native inuit cherokee navajo
    """.split()
)

#: Country names in English (and a few endonyms), as a regex alternation.
COUNTRIES = (
    "Afghanistan|Albania|Algeria|Andorra|Angola|Argentina|Armenia|Australia|Austria|Azerbaijan|Bahamas|"
    "Bahrain|Bangladesh|Barbados|Belarus|Belgium|Belize|Benin|Bhutan|Bolivia|Bosnia and Herzegovina|Bosnia|"
    "Botswana|Brazil|Brasil|Brunei|Bulgaria|Burkina Faso|Burundi|Cambodia|Cameroon|Canada|Chad|Chile|China|"
    "Colombia|Congo|Costa Rica|Croatia|Cuba|Cyprus|Czech Republic|Czechia|Denmark|Danmark|Djibouti|"
    "Dominican Republic|Ecuador|Egypt|El Salvador|Eritrea|Estonia|Eesti|Eswatini|Ethiopia|Fiji|Finland|Suomi|"
    "France|Gabon|Gambia|Georgia|Germany|Deutschland|Ghana|Greece|Greenland|Grenada|Guatemala|Guinea|Guyana|"
    "Haiti|Honduras|Hong Kong|Hungary|Magyarország|Iceland|Ísland|India|Indonesia|Iran|Iraq|Ireland|Israel|"
    "Italy|Italia|Ivory Coast|Jamaica|Japan|Jordan|Kazakhstan|Kenya|Kosovo|Kuwait|Kyrgyzstan|Laos|Latvia|"
    "Lebanon|Lesotho|Liberia|Libya|Liechtenstein|Lithuania|Luxembourg|Madagascar|Malawi|Malaysia|Maldives|"
    "Mali|Malta|Mauritania|Mauritius|Mexico|México|Moldova|Monaco|Mongolia|Montenegro|Morocco|Mozambique|"
    "Myanmar|Namibia|Nepal|Netherlands|Nederland|New Zealand|Nicaragua|Niger|Nigeria|North Macedonia|Norway|"
    "Norge|Oman|Pakistan|Palestine|Panama|Paraguay|Peru|Philippines|Poland|Polska|Portugal|Puerto Rico|Qatar|"
    "Romania|România|Russia|Rwanda|Saudi Arabia|Senegal|Serbia|Srbija|Seychelles|Sierra Leone|Singapore|"
    "Slovakia|Slovenia|Somalia|South Africa|South Korea|Korea|South Sudan|Spain|España|Sri Lanka|Sudan|"
    "Suriname|Sweden|Sverige|Switzerland|Schweiz|Suisse|Syria|Taiwan|Tajikistan|Tanzania|Thailand|Togo|"
    "Trinidad and Tobago|Tunisia|Turkey|Türkiye|Turkmenistan|Uganda|Ukraine|United Arab Emirates|UAE|"
    "United Kingdom|UK|United States|USA|U\\.S\\.A\\.|Uruguay|Uzbekistan|Venezuela|Vietnam|Viet Nam|Yemen|"
    "Zambia|Zimbabwe|England|Scotland|Wales|Northern Ireland"
)

#: Legal forms that end a company name ("Vergnet SA", "Ontodia Inc.", "Emis Group Plc").
COMPANY_SUFFIXES = (
    "Inc|Incorporated|Corp|Corporation|Co|Company|Ltd|Limited|LLC|L\\.L\\.C|LLP|LP|PLC|Plc|plc|AG|SA|S\\.A|"
    "BV|B\\.V|NV|N\\.V|GmbH|KG|KGaA|SE|SpA|S\\.p\\.A|Srl|S\\.r\\.l|SAS|SARL|Oy|Oyj|AB|ASA|AS|A/S|ApS|Pty|"
    "Holdings?|Group|Bancorp|Bank|Trust|Partners|Associates|Industries|Enterprises|Technologies|Systems|"
    "Solutions|Services|Labs|Pharmaceuticals|Pharma|Therapeutics|Capital|Ventures|Foundation|Institute|"
    "University|College|Hospital|Clinic|Medical\\s+Center|Health|Healthcare|Insurance|Airlines|Motors|"
    "Mills|Communications|Networks|Software|Energy|Resources|Properties|Realty|Investments|Fund|Funds|ETF"
)


def _plural(word: str) -> str:
    if word.endswith(("sh", "ch", "ese", "ss", "ish")):
        return word
    return word + "s"


@cache
def demonym_forms() -> frozenset[str]:
    """Demonyms and their plurals, lower-cased."""
    return DEMONYMS | {_plural(w) for w in DEMONYMS}


@cache
def given_names() -> frozenset[str]:
    """Lower-cased given names (US Census 1990 lists)."""
    text = (resources.files("guardrail") / "data" / "first_names.txt").read_text(encoding="utf-8")
    return frozenset(line.strip() for line in text.splitlines() if line and not line.startswith("#"))
