"""The engine's general word lists: requests for a person, follow-up aspects, out-of-scope subjects,
negative feedback, German colloquialisms, and the bot's own sentences in the eight chat languages.

Entries are folded (see chatbot.text.fold: no accents, no umlauts, lower case) and matched as word
prefixes, Arabic as substrings of the normalised text (its particles are glued to the word). These lists
are topic-independent on purpose: topic knowledge lives in chatbot/knowledge/*.yaml.
"""

from __future__ import annotations

import re

from sprechstunde.chatbot.text import fold, fold_german_digraphs, normalise

# --- asking for a person -----------------------------------------------------------------------------

# Phrases that on their own ask for a human.
PERSON_STRONG = [
    r"\b(echte[nmr]?|richtige[nmr]?|reale[nmr]?|lebendige[nmr]?) (mensch|person|berater|mitarbeiter)",
    r"\bmit (einem |einer )?(mensch|menschen)\b",
    r"\b(einen|nen) menschen\b",
    r"\bmenschliche[nr]? (hilfe|berat|ansprech|mitarbeit)",
    r"\bkein(en)? (bot|chatbot|roboter|computer|maschine)",
    r"\b(nicht|nie) mit (einem|dem) (bot|chatbot|roboter|computer)",
    r"\bpersonlich (sprechen|beraten|reden)",
    r"\b(real|actual|live) (person|human|agent|advisor|adviser|someone|people)",
    r"\b(a|an|to) (human|person|agent|operator|representative|advisor|adviser|employee)\b",
    r"\bnot (a |the |with a )?(bot|robot|machine|chatbot)",
    r"\bhuman\b",
    r"\b(un|une|des) (humain|etre humain|vraie personne|personne reelle|conseill)",
    r"\bpas (un|a un|avec un) (robot|bot|chatbot)",
    r"\b(una persona|un operatore|un'operatrice|un essere umano|persona reale|persona vera|un umano)",
    r"\bnon (un|con un) (bot|robot|chatbot)",
    r"\b(z )?(czlowiekiem|zywym czlowiekiem|prawdziwa osoba|konsultantem|doradca|pracownikiem|urzednikiem)",
    r"\bnie (z )?(botem|robotem|chatbotem)",
    r"\b(gercek|canli) (bir )?(kisi|insan|temsilci)",
    r"\b(insanla|biriyle|yetkiliyle|temsilciyle|danismanla|memurla|gorevliyle|bir insan)",
    r"\b(bot|robot)(la|le) (degil|konusmak istemiyorum)",
    r"\b(mirovek|mirovekî|kesek|kesekî|sewirmendek|karmendek)\w* (re|ra)\b",
    r"\bne (bi )?(bot|robot)",
]
# A person noun together with a verb of talking/wanting also asks for one ("Ich will einen Berater").
PERSON_NOUNS = [
    # de
    "mensch",
    "berater",
    "mitarbeiter",
    "sachbearbeiter",
    "ansprechpartner",
    "ansprechperson",
    "person",
    "jemand",
    "beamte",
    "beamtin",
    "kollege",
    "kollegin",
    "agent",
    "operator",
    # en
    "human",
    "someone",
    "somebody",
    "advisor",
    "adviser",
    "representative",
    "staff",
    "employee",
    "officer",
    "caseworker",
    "consultant",
    "people",
    # fr
    "humain",
    "conseill",
    "quelqu",
    "employe",
    "interlocut",
    "personne",
    "agent",
    # it
    "persona",
    "operator",
    "umano",
    "consulent",
    "qualcuno",
    "impiegat",
    "addett",
    # pl
    "czlowiek",
    "osob",
    "konsultant",
    "doradc",
    "pracownik",
    "kims",
    "ktos",
    "urzednik",
    # tr
    "insan",
    "kisi",
    "yetkili",
    "temsilci",
    "danisman",
    "memur",
    "biri",
    "gorevli",
    # ku
    "mirov",
    "kes",
    "sewirmend",
    "karmend",
    "berpirsiyar",
]
PERSON_VERBS = [
    # de
    "sprech",
    "sprache",
    "reden",
    "red ",
    "verbind",
    "durchstell",
    "kontakt",
    "telefonier",
    "anruf",
    "chatten",
    "weiterleit",
    # en
    "talk",
    "speak",
    "chat",
    "connect",
    "transfer",
    "contact",
    "call",
    # fr
    "parler",
    "discuter",
    "joindre",
    "contacter",
    "relation",
    "passer",
    "passez",
    # it
    "parlare",
    "contattare",
    "passar",
    "passi ",
    # pl
    "rozmaw",
    "porozmaw",
    "mowic",
    "polacz",
    "skontakt",
    # tr
    "konus",
    "gorus",
    "bagla",
    # ku
    "biaxiv",
    "axaft",
    "bipeyiv",
    "peyiv",
    "xeber",
]
# Wanting a person counts only in a short message ("Ich will einen Berater"), not in "… von einer
# Privatperson kaufen".
WANT_VERBS = [
    "will",
    "mochte",
    "wunsch",
    "hatte gern",
    "brauch",
    "zu ",
    "want",
    "need",
    "like",
    "veux",
    "voudrais",
    "besoin",
    "voglio",
    "vorrei",
    "bisogno",
    "chce",
    "chcial",
    "potrzeb",
    "iste",
    "ihtiyac",
    "dixwaz",
    "hewce",
]
ARABIC_PERSON = ["موظف", "شخص", "انسان", "مستشار", "بشري", "مسوول", "احد الموظفين", "عامل", "ممثل"]
ARABIC_TALK = ["تحدث", "اتحدث", "التحدث", "تكلم", "اتكلم", "التكلم", "تواصل", "محادثه", "اكلم", "اريد", "اود"]

# --- follow-up aspects -------------------------------------------------------------------------------

ASPECTS: dict[str, list[str]] = {
    "cost": [
        "kost",
        "gebuhr",
        "preis",
        "teuer",
        "bezahl",
        "zahlen",
        "euro",
        "geld",
        "cost",
        "fee",
        "price",
        "pay",
        "expensive",
        "how much",
        "cout",
        "coute",
        "prix",
        "frais",
        "payer",
        "combien",
        "costa",
        "costo",
        "prezzo",
        "pagare",
        "quanto",
        "koszt",
        "ile ",
        "oplat",
        "cena",
        "placi",
        "zaplac",
        "ucret",
        "fiyat",
        "para",
        "odeme",
        "ne kadar",
        "biha",
        "ciqas",
        "pere",
        "buha",
    ],
    "documents": [
        "unterlag",
        "dokument",
        "mitbring",
        "mitnehm",
        "nachweis",
        "papier",
        "brauch ich",
        "brauche ich",
        "document",
        "bring",
        "papers",
        "paperwork",
        "what do i need",
        "apporter",
        "pieces",
        "justificatif",
        "documenti",
        "portare",
        "dokument",
        "zabrac",
        "przyniesc",
        "potrzebuj",
        "belge",
        "evrak",
        "getir",
        "gerekli",
        "belge",
        "bine",
        "pewist",
    ],
    "duration": [
        "dauer",
        "wie lange",
        "wie lang",
        "wann fertig",
        "bearbeitungszeit",
        "wie schnell",
        "wartezeit",
        "how long",
        "duration",
        "how fast",
        "how quickly",
        "when will",
        "ready",
        "combien de temps",
        "duree",
        "delai",
        "quanto tempo",
        "durata",
        "tempi",
        "jak dlugo",
        "ile czasu",
        "czas",
        "ne kadar surer",
        "sure",
        "kac gun",
        "ciqas dem",
        "dem dik",
        "kengi",
    ],
    "online": [
        "online",
        "internet",
        "digital",
        "von zuhause",
        "von zu hause",
        "serviceportal",
        "from home",
        "website",
        "en ligne",
        "site",
        "in rete",
        "sito",
        "przez internet",
        "cevrimici",
        "internetten",
        "ji malê",
        "ji male",
    ],
}
ARABIC_ASPECTS = {
    "cost": ["تكلف", "كم سعر", "رسوم", "سعر", "يكلف", "كم ثمن", "كم يكلف", "بكم"],
    "documents": ["وثائق", "مستندات", "احضر", "اوراق", "الاوراق", "ماذا احتاج"],
    "duration": ["كم من الوقت", "مده", "يستغرق", "متى يكون جاهز"],
    "online": ["عبر الانترنت", "اونلاين", "الانترنت", "اون لاين"],
}
# A message that starts like this continues the conversation ("Und was kostet das?").
CONTINUATION = re.compile(r"^(und|and|et|e|i|a|ve|u|û|و|also|so|what about|und wie|und wo|und wann)\b")

# --- out of scope --------------------------------------------------------------------------------------

# Subjects a municipal service bot must not answer (a signal next to a weak retrieval score).
OUT_OF_SCOPE = [
    # weather, news, chit-chat
    "wetter",
    "regen",
    "schnee",
    "weather",
    "forecast",
    "meteo",
    "pogod",
    "hava durumu",
    "hewa",
    "wettervorhersage",
    "temperatur",
    "fussball",
    "wochenendwetter",
    "bundesliga",
    "football",
    "soccer",
    "calcio",
    "pilka nozna",
    "futbol",
    "rezept",
    "recipe",
    "kochen",
    "cook",
    "pizza",
    "restaurant",
    "kino",
    "cinema",
    "film",
    "witz",
    "joke",
    "blague",
    "barzelletta",
    "dowcip",
    "fikra",
    "horoskop",
    "lotto",
    "bitcoin",
    "krypto",
    "crypto",
    "aktie",
    "stock market",
    "borsa",
    "gedicht",
    "poem",
    "song",
    "lied",
    "hauptstadt",
    "capital of",
    "capitale",
    # income tax and the Finanzamt
    "einkommensteuer",
    "einkommenssteuer",
    "lohnsteuer",
    "steuererklarung",
    "steuerruckerstattung",
    "finanzamt",
    "elster",
    "income tax",
    "tax return",
    "tax refund",
    "impot sur le revenu",
    "declaration d'impot",
    "declaration de revenus",
    "dichiarazione dei redditi",
    "irpef",
    "podatek dochodowy",
    "zeznanie podatkowe",
    "gelir vergisi",
    "vergi beyan",
    "baca dahat",
    # private legal disputes
    "anwalt",
    "anwaltin",
    "rechtsanwalt",
    "verklagen",
    "klage",
    "gericht",
    "streit",
    "mietrecht",
    "kaution",
    "nachbar",
    "kundigungsschutz",
    "abmahnung",
    "scheidung",
    "erbschaft",
    "erbe ",
    "testament",
    "schadensersatz",
    "schmerzensgeld",
    "inkasso",
    "lawyer",
    "attorney",
    "sue ",
    "lawsuit",
    "deposit back",
    "neighbour",
    "neighbor",
    "divorce",
    "avocat",
    "proces ",
    "voisin",
    "divorce",
    "avvocato",
    "causa",
    "vicino",
    "padrone di casa",
    "divorzio",
    "prawnik",
    "adwokat",
    "pozew",
    "sasiad",
    "wlasciciel mieszkania",
    "rozwod",
    "avukat",
    "dava",
    "komsu",
    "ev sahibi",
    "bosanma",
    "parezer",
    "cîran",
    "ciran",
    "xwediyê xanî",
    "berdan",
    # health, banking, private companies
    "arzt ",
    "doctor",
    "krankenkasse",
    "kredit ",
    "loan ",
    "krankenversicherung",
    "handyvertrag",
    "amazon",
    "dhl ",
    "zalando",
    "netflix",
    "aktien",
    "borse",
    "kopfschmerz",
    "fieber",
    "medikament",
    "tablette",
    "zug ",
    "fahrplan",
    "bahn ",
    "weather",
    "temperature",
    "recette",
    "ricetta",
    "przepis",
    "tarif ",
    "partita",
    "mecz ",
    "maç ",
    "mac ",
    "investire",
    "investieren",
    "invest ",
]
ARABIC_OUT_OF_SCOPE = [
    "طقس",
    "الطقس",
    "ضريبه الدخل",
    "محامي",
    "قضيه",
    "الجيران",
    "جار",
    "طلاق",
    "وصفه",
    "كره القدم",
]

# --- the citizen says the answer did not help ---------------------------------------------------------

# A bare "no" in reply to an answer (only for messages of at most three words).
SHORT_NO = re.compile(r"^(nein|no|non|nope|nie|hayir|na|لا)\b")
UNHELPFUL = [
    r"\b(hilft|half|hat|bringt) (mir )?(auch |immer noch |leider |uberhaupt )?(nicht|nichts|kein)",
    r"\bnicht (hilfreich|geholfen|verstanden|das was ich)",
    r"\b(das|dies) (ist|war) (nicht|falsch)",
    r"\bfalsche antwort",
    r"\bverstehe? (ich )?(nicht|nix|nichts)",
    r"\b(not helpful|doesn't help|does not help|didn't help|wrong answer|not what i|that's not|useless)",
    r"\b(ne m'aide pas|pas utile|mauvaise reponse|je ne comprends pas)",
    r"\b(non mi aiuta|non e utile|risposta sbagliata|non capisco)",
    r"\b(nie pomaga|nie pomoglo|zla odpowiedz|nie rozumiem)",
    r"\b(yardimci olmadi|ise yaramadi|yanlis cevap|anlamadim)",
    r"\b(alîkarî nake|alikari nake|ne rast e|fam nakim|fêm nakim)",
    r"(لم يساعد|لا يساعد|اجابه خاطئه|لا افهم)",
]

# --- German colloquialisms and everyday words → the words the knowledge base uses ---------------------

COLLOQUIAL_DE: dict[str, str] = {
    "geklaut": "gestohlen",
    "gemopst": "gestohlen",
    "gestohln": "gestohlen",
    "abgezogen": "gestohlen",
    "verschwunden": "verloren",
    "verbummelt": "verloren",
    "verschlampt": "verloren",
    "perso": "personalausweis",
    "pass": "reisepass",
    "ausweis": "personalausweis",
    "portemonnaie": "geldbörse",
    "portmonee": "geldbörse",
    "geldbeutel": "geldbörse",
    "brieftasche": "geldbörse",
    "lappen": "führerschein",
    "pappe": "führerschein",
    "karre": "auto",
    "kiste": "auto",
    "wagen": "auto",
    "pkw": "auto",
    "kfz": "fahrzeug",
    "nummernschild": "kennzeichen",
    "kiga": "kindergarten",
    "kindergartenplatz": "kitaplatz",
    "tagesmutti": "tagesmutter",
    "hartz": "bürgergeld",
    "heiraten": "eheschließung",
    "hochzeit": "eheschließung",
    "trauung": "eheschließung",
    "umziehen": "umzug",
    "gestorben": "sterbefall",
    "verstorben": "sterbefall",
    "tod": "sterbefall",
    "wauwau": "hund",
    "welpe": "hund",
    "bude": "wohnung",
    "miete": "wohnkosten",
    "sprachkurs": "deutschkurs",
    "baby": "geburt",
    "schlagloch": "straßenschaden",
    "müll": "abfall",
}

# --- the bot's own sentences ----------------------------------------------------------------------------

MESSAGES: dict[str, dict[str, str]] = {
    "out_of_scope": {
        "de": "Dafür bin ich leider nicht zuständig. Ich beantworte Fragen zu den Dienstleistungen der "
        "Stadtverwaltung, z. B. Ausweis, Anmeldung, KiTa, VHS-Kurse oder Kfz-Zulassung.",
        "en": "I'm sorry, I can't help with that. I answer questions about the city administration's "
        "services, e.g. ID cards, registration, daycare, adult education courses or vehicle registration.",
        "fr": "Désolé, ce n'est pas de mon ressort. Je réponds aux questions sur les services de "
        "l'administration municipale (carte d'identité, déclaration de domicile, crèche, cours, véhicules).",
        "it": "Mi dispiace, non è di mia competenza. Rispondo a domande sui servizi dell'amministrazione "
        "comunale (carta d'identità, residenza, asilo nido, corsi, veicoli).",
        "pl": "Przykro mi, tym się nie zajmuję. Odpowiadam na pytania o usługi urzędu miasta (dowód "
        "osobisty, meldunek, przedszkole, kursy, rejestracja pojazdu).",
        "tr": "Üzgünüm, bu konuda yardımcı olamıyorum. Belediye hizmetleriyle ilgili soruları yanıtlıyorum "
        "(kimlik kartı, ikamet kaydı, kreş, kurslar, araç tescili).",
        "ku": "Bibore, ez ji bo vê yekê ne berpirsiyar im. Ez bersiva pirsên li ser karûbarên şaredariyê "
        "didim (nasname, qeydkirina niştecihbûnê, kreş, kurs, qeydkirina wesayîtê).",
        "ar": "عذرًا، هذا ليس من اختصاصي. أجيب عن الأسئلة المتعلقة بخدمات إدارة المدينة (بطاقة الهوية، "
        "تسجيل السكن، الحضانة، الدورات، تسجيل المركبات).",
    },
    "unsure": {
        "de": "Ich bin mir nicht sicher, ob ich Sie richtig verstanden habe.",
        "en": "I'm not sure I understood you correctly.",
        "fr": "Je ne suis pas sûr d'avoir bien compris.",
        "it": "Non sono sicuro di aver capito bene.",
        "pl": "Nie jestem pewien, czy dobrze zrozumiałem.",
        "tr": "Sizi doğru anladığımdan emin değilim.",
        "ku": "Ez ne bawer im ku min we rast fêm kir.",
        "ar": "لست متأكدًا من أنني فهمتك بشكل صحيح.",
    },
    "did_you_mean": {
        "de": "Meinten Sie: {titles}?",
        "en": "Did you mean: {titles}?",
        "fr": "Vouliez-vous dire : {titles} ?",
        "it": "Intendeva: {titles}?",
        "pl": "Czy chodziło o: {titles}?",
        "tr": "Şunu mu demek istediniz: {titles}?",
        "ku": "We ev mebest kir: {titles}?",
        "ar": "هل تقصد: {titles}؟",
    },
    "person": {
        "de": "Gern verbinde ich Sie mit einer Beraterin oder einem Berater.",
        "en": "I'll gladly put you in touch with an advisor.",
        "fr": "Je vous mets volontiers en relation avec un conseiller ou une conseillère.",
        "it": "La metto volentieri in contatto con una consulente o un consulente.",
        "pl": "Chętnie połączę Panią/Pana z doradcą.",
        "tr": "Sizi memnuniyetle bir danışmanla görüştürebilirim.",
        "ku": "Ez ê we bi kêfxweşî bi şêwirmendekî re bigihînim hev.",
        "ar": "يسعدني أن أوصلك بأحد المستشارين.",
    },
    "unhelpful": {
        "de": "Das hat Ihnen leider nicht weitergeholfen. Eine Beraterin oder ein Berater hilft Ihnen gern.",
        "en": "I'm sorry that didn't help. An advisor will be glad to help you.",
        "fr": "Désolé, cela ne vous a pas aidé. Un conseiller vous aidera volontiers.",
        "it": "Mi dispiace che non sia stato d'aiuto. Una consulente o un consulente la aiuterà volentieri.",
        "pl": "Przykro mi, że to nie pomogło. Doradca chętnie pomoże.",
        "tr": "Üzgünüm, bu yardımcı olmadı. Bir danışman size memnuniyetle yardımcı olur.",
        "ku": "Bibore, ev ne alîkar bû. Şêwirmendek dê bi kêfxweşî alîkariya we bike.",
        "ar": "آسف لأن ذلك لم يساعدك. سيساعدك أحد المستشارين بكل سرور.",
    },
    "offers": {
        "de": "Sie können jetzt per Video sprechen (wenn jemand online ist), einen Termin vereinbaren oder "
        "Ihre Frage hinterlassen.",
        "en": "You can talk by video now (when someone is online), book an appointment or leave your "
        "question.",
        "fr": "Vous pouvez parler par vidéo maintenant (si quelqu'un est en ligne), prendre rendez-vous ou "
        "laisser votre question.",
        "it": "Può parlare ora in video (se qualcuno è online), prendere un appuntamento o lasciare la sua "
        "domanda.",
        "pl": "Może Pani/Pan teraz porozmawiać przez wideo (jeśli ktoś jest online), umówić wizytę lub "
        "zostawić pytanie.",
        "tr": "Şimdi görüntülü görüşebilir (biri çevrimiçiyse), randevu alabilir veya sorunuzu "
        "bırakabilirsiniz.",
        "ku": "Hûn dikarin niha bi vîdyoyê biaxivin (eger kesek serhêl be), randevûyekê bigirin an pirsa "
        "xwe bihêlin.",
        "ar": "يمكنك التحدث عبر الفيديو الآن (إذا كان أحد متصلًا)، أو حجز موعد، أو ترك سؤالك.",
    },
    "german_only": {
        "de": "",
        "en": "This answer is only available in German. An advisor who speaks English can help you.",
        "fr": "Cette réponse n'existe qu'en allemand. Un conseiller qui parle français peut vous aider.",
        "it": "Questa risposta è disponibile solo in tedesco. Un consulente che parla italiano può aiutarla.",
        "pl": "Ta odpowiedź jest dostępna tylko po niemiecku. Pomoże Pani/Panu doradca mówiący po polsku.",
        "tr": "Bu cevap yalnızca Almanca mevcuttur. Türkçe konuşan bir danışman size yardımcı olabilir.",
        "ku": "Ev bersiv tenê bi almanî heye. Şêwirmendekî ku bi kurdî dizane dikare alîkariya we bike.",
        "ar": "هذه الإجابة متوفرة باللغة الألمانية فقط. يمكن لمستشار يتحدث العربية مساعدتك.",
    },
    "rephrase": {
        "de": "Das tut mir leid. Können Sie Ihre Frage anders formulieren? "
        "Oder sprechen Sie mit einer Person.",
        "en": "I'm sorry. Could you put your question differently? Or talk to a person.",
        "fr": "Désolé. Pouvez-vous reformuler votre question ? Ou parlez à une personne.",
        "it": "Mi dispiace. Può riformulare la domanda? Oppure parli con una persona.",
        "pl": "Przykro mi. Czy może Pani/Pan zadać pytanie inaczej? Albo porozmawiać z człowiekiem.",
        "tr": "Üzgünüm. Sorunuzu başka şekilde sorabilir misiniz? Ya da bir kişiyle konuşun.",
        "ku": "Bibore. Hûn dikarin pirsa xwe bi awayekî din binivîsin? An jî bi kesekî re biaxivin.",
        "ar": "عذرًا. هل يمكنك صياغة سؤالك بطريقة أخرى؟ أو تحدث مع شخص.",
    },
    "empty": {
        "de": "Bitte schreiben Sie Ihre Frage.",
        "en": "Please type your question.",
    },
    "page_intro": {
        "de": "Auf der Seite „{title}“ Ihrer Stadt steht dazu:",
        "en": "Your city's page “{title}” says:",
    },
}
LABELS: dict[str, dict[str, str]] = {
    "de": {
        "bring": "Mitbringen",
        "fees": "Gebühren",
        "online": "Online",
        "more": "Mehr",
        "address": "Adresse",
        "note": "Hinweis",
    },
    "en": {
        "bring": "What to bring",
        "fees": "Fees",
        "online": "Online",
        "more": "More",
        "address": "Address",
        "note": "Note",
    },
}


def message(key: str, language: str, **values: str) -> str:
    table = MESSAGES[key]
    text = table.get(language) or table["de"]
    return text.format(**values) if values else text


def _folded(text: str) -> str:
    return fold_german_digraphs(fold(normalise(text)))


def _names_person(text: str) -> bool:
    """A word of `text` is a person noun with at most an inflection ending ("Beraterin", "człowiekiem"),
    not a longer compound ("Personalausweis")."""
    for word in text.split():
        for noun in PERSON_NOUNS:
            if word.startswith(noun) and len(word) - len(noun) <= 3:
                return True
    return False


def _has_prefix(text: str, prefixes: list[str]) -> bool:
    """Some word of `text` (folded, space-separated) starts with one of `prefixes`; multi-word entries
    match as phrases."""
    padded = f" {text} "
    return any(f" {p}" in padded for p in prefixes)


def _clean(text: str) -> str:
    return re.sub(r"[^\w']+", " ", _folded(text)).strip()


POLITE = {
    "bitte",
    "please",
    "pls",
    "plz",
    "svp",
    "plait",
    "per",
    "favore",
    "prosze",
    "lutfen",
    "ji",
    "kerema",
    "xwe",
    "jetzt",
    "now",
    "sofort",
    "endlich",
    "einen",
    "eine",
    "a",
    "an",
    "un",
    "une",
    "una",
    "uno",
}


def asks_for_person(text: str) -> bool:
    """The citizen asks to talk to a human, in any of the eight languages."""
    clean = _clean(text)
    if any(re.search(pattern, clean) for pattern in PERSON_STRONG):
        return True
    rest = [w for w in clean.split() if w not in POLITE]
    if rest and len(rest) <= 2 and all(_names_person(w) for w in rest):
        return True  # "Mitarbeiter bitte", "Berater!!!"
    if _names_person(clean) and _has_prefix(clean, PERSON_VERBS):
        return True
    tokens = clean.split()
    for index, token in enumerate(tokens):
        if _has_prefix(token, WANT_VERBS) and any(_names_person(t) for t in tokens[index + 1 : index + 4]):
            return True  # "ich will zu einem Menschen", "I need a human"
    arabic = normalise(text)
    return any(n in arabic for n in ARABIC_PERSON) and any(v in arabic for v in ARABIC_TALK)


def aspects(text: str) -> list[str]:
    """Follow-up aspects the message asks about ("cost", "documents", "duration", "online")."""
    clean = _clean(text)
    arabic = normalise(text)
    found = [name for name, prefixes in ASPECTS.items() if _has_prefix(clean, prefixes)]
    found += [
        name
        for name, words in ARABIC_ASPECTS.items()
        if name not in found and any(w in arabic for w in words)
    ]
    return found


def aspect_words(text: str) -> set[str]:
    """The words of `text` that only name an aspect (they say nothing about the topic)."""
    clean = _clean(text).split()
    prefixes = [p for group in ASPECTS.values() for p in group if " " not in p.strip()]
    return {w for w in clean if any(w.startswith(p) for p in prefixes)}


def continues(text: str) -> bool:
    return bool(CONTINUATION.match(_clean(text)))


def out_of_scope_terms(text: str) -> list[str]:
    clean = _clean(text)
    found = [p.strip() for p in OUT_OF_SCOPE if _has_prefix(clean, [p])]
    arabic = normalise(text)
    return found + [w for w in ARABIC_OUT_OF_SCOPE if w in arabic]


def unhelpful(text: str) -> bool:
    """The citizen says the last answer did not help ("Nein, das hilft mir nicht")."""
    clean = _clean(text)
    if len(clean.split()) <= 3 and SHORT_NO.match(clean):
        return True
    return any(re.search(p, clean) for p in UNHELPFUL)


def colloquial_expansion(word: str) -> str | None:
    return COLLOQUIAL_DE.get(word)
