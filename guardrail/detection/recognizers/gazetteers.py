"""Word lists used as evidence: given names (US Census 1990, public domain), nationalities and
demonyms, legal suffixes of companies. Loaded once, lazily."""

from __future__ import annotations

from functools import cache
from importlib import resources

__all__ = [
    "AMBIGUOUS_NAMES",
    "COMPANY_SUFFIXES",
    "COUNTRIES",
    "DEMONYMS",
    "INTERNATIONAL_GIVEN",
    "given_names",
]

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


#: Given names common in other cultures that the US Census 1990 lists miss, written for guardrail by
#: region (West, East and Southern Africa; South Asia; the Arabic, Persian and Turkish-speaking world;
#: East and Southeast Asia; Slavic, Baltic and Balkan, Nordic and German-speaking, Romance, Greek, Irish,
#: Welsh and Scottish, Hebrew). Names that are also common English words, month or weekday
#: abbreviations, places or brands (Jan, Jun, Can, Fang, Milan, Santiago, Hung) are left out.
INTERNATIONAL_GIVEN = frozenset(
    """
    adaeze chioma chinedu chidi chidinma chiamaka chukwuemeka emeka ngozi nkechi obinna ifeoma uchenna
    ikenna nnamdi chinwe chinonso ebuka tunde babatunde adebayo ayodele folake funmilayo oluwaseun seun
    tolu tolulope tobi kayode yetunde bisi femi gbenga segun kunle dayo lanre adeola adewale abiodun
    olumide temitope kofi kwame kwabena kwaku akosua abena efua adwoa kojo  afua kwesi amara zainab
    aminu hauwa halima sani usman abdullahi aliyu musa bello nneka oluchi ugochi kelechi ejike
    wanjiru wambui njeri kamau otieno achieng akinyi omondi baraka juma neema zawadi wanjiku mwangi
    thandiwe thabo sipho lindiwe nomvula themba bongani lerato palesa tshepo kagiso mpho nandi zanele
    ayanda sibusiso tendai tatenda farai chipo rudo tafadzwa nokuthula siyabonga thulani lwazi
    aarav arjun rohan rahul vikram sachin rajesh suresh ramesh mahesh ganesh dinesh naresh mukesh rakesh
    amit sumit ankit rohit mohit nikhil akash vivek deepak pradeep sandeep sanjay vijay ajay anil sunil
    kiran arvind karthik srinivas venkat venkatesh lakshmi priya meena meenakshi kavya ananya aditi pooja
    neha sneha divya shreya anjali sunita anita kavita swati shweta nisha ritu rekha geeta seema usha
    deepa radha harpreet gurpreet manpreet jaspreet simran navdeep ishaan vihaan aditya siddharth
    abhishek aishwarya murali balaji senthil saravanan selvi arun varun tarun kunal gaurav saurabh manish
    harish girish yogesh nilesh hitesh jignesh bhavesh ketan chetan parth hemant prakash rajiv sanjeev
    rajeev sushil sunanda shalini shilpa smita sujata vandana archana aparna bhavana lavanya keerthi
    karthika revathi sowmya gayathri padma uma vasanthi jayanthi ravi raju krishna gopal mohan
    ahmed mohammed mohamed muhammad mahmoud mustafa khalid tariq bilal hamza yousef youssef yusuf karim
    samir nabil rami hassan hussein hussain layla leila yasmin yasmine nour noor rania huda salma mariam
    maryam amira samira farah hiba reem lina dalia soraya shirin parisa mehdi reza navid farid babak arash
    kian dariush golnar mehmet ahmet emre burak murat kemal selin zeynep elif ayşe ayse emine fatma merve
    esra büşra busra deniz ebru oğuz oguz serkan volkan onur ozan barış baris gökhan gokhan hakan tolga
    abdullah abdul abdulrahman fatima aisha khadija zahra anwar imran faisal adnan waleed walid ziad
    kenji hiroshi takeshi haruto yuki yuto sota kaito hina yui aoi haruka akiko yoko keiko naoko tomoko
    sachiko kazuki daisuke shota ryota takumi kenta yusuke satoshi makoto  hiroko hiroki naoki
    yoshiko yumiko kaori megumi ayumi mei wei jing xiaoming xiaoli xiaowei jian qiang zhen ying yuki
    minh anh linh trang huong thanh tuan phuong quang nguyet thao jisoo minjun seojun jiwoo seoyeon
    hyun jiyeon minji sungmin dongwook jihoon yeon siti nurul putri ayu dewi agus budi wayan
    aleksandr aleksandra dmitri dmitry sergei sergey vladimir igor oleg andrei alexei aleksei nikolai
    mikhail yuri pavel olga natalia natasha svetlana tatiana tatyana irina ekaterina yekaterina
    anastasia oksana yulia galina ludmila lyudmila tomasz tomek piotr paweł pawel krzysztof grzegorz
    łukasz lukasz marcin wojciech jakub mateusz michał michal agnieszka katarzyna małgorzata malgorzata
    magdalena joanna zofia ewa dorota ondřej ondrej jiří jiri tomáš tomas lukáš lukas zuzana lenka jana
    petra miroslav dragan nikola stefan marko dušan dusan jelena milica ivana bogdan mihai ioana andreea
    ionut florin oleksii oleksandr mykola taras bohdan maksym sofiia olena kateryna iryna vasyl andriy
    dmytro yaroslav volodymyr anatoliy mārtiņš janis jānis rasa egle eglė tomas aurimas
    sven lars anders nils björn bjorn magnus olaf ingrid astrid sigrid solveig freya frida elin karin
    annika linnea linnéa maja trond torbjørn håkon hakon espen eirik øystein oystein jussi juha mikko
    antti pekka aino aleksi eero jonas jens søren soren mette jörg jorg jürgen jurgen klaus uwe dieter
    wolfgang günter gunter heike anke silke birgit  katrin jannik leonie hannes matthias mathias
    tobias florian stefanie sabine ulrike gerhard helmut manfred reinhard thorsten torsten
    joaquín joaquin ximena mateo valentina camila sofía lucía lucia martina alejandro guillermo rodrigo
    gonzalo ignacio álvaro alvaro íñigo inigo itziar ainhoa nerea iker jordi núria nuria montserrat
    mercè giuseppe giovanni francesco alessandro matteo lorenzo giulia chiara francesca alessia federica
    beatriz inês ines joão joao gonçalo goncalo tiago luís mateus larissa letícia leticia thaís thais
    juliana fernanda gabriela mariana andrés andres jesús josé josé maría
    dimitris giorgos nikos kostas yannis giannis eleni katerina christos panagiotis vasilis stavros
    athanasios theodora despina georgios konstantinos
    aoife siobhán siobhan niamh saoirse caoimhe ciara orla róisín roisin sinéad sinead aisling eoin cian
    oisín oisin seán pádraig padraig ciarán ciaran tadhg rhodri dafydd eilidh iain ruaridh gethin
    yael noa tamar shira avi eitan yosef moshe yitzhak itai oren
    """.split()
)


@cache
def given_names() -> frozenset[str]:
    """Lower-cased given names: the US Census 1990 lists and :data:`INTERNATIONAL_GIVEN`."""
    text = (resources.files("guardrail") / "data" / "first_names.txt").read_text(encoding="utf-8")
    census = frozenset(line.strip() for line in text.splitlines() if line and not line.startswith("#"))
    return census | INTERNATIONAL_GIVEN
