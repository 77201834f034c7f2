"""The chat widget's side of issue "chatbot-languages", through the real app: the "talk to a person" offer
names the office of the conversation's topic and whether someone who speaks the citizen's language is
online for it; every page language says that an automated assistant answers; each answer says when it was
last checked and which office is responsible; German stand-ins are named and come with the offer of an
advisor; the citizen can download the conversation; conversations expire after --chat-retention-days;
the advisor's transcript holds whole messages; fees are not stated twice."""

from __future__ import annotations

import re
import shutil
from datetime import date
from pathlib import Path

import pytest

from sprechstunde.chatbot.engine import Engine, State
from sprechstunde.chatbot.knowledge import KNOWLEDGE_DIR, apply_city, load_city, load_knowledge
from sprechstunde.chatbot.service import CONVERSATION_KIND, ChatService, whole_sentences
from sprechstunde.l10n import date_text
from sprechstunde.store.embedded import SQLiteStore
from sprechstunde.strings import Catalog
from sprechstunde.web.core.config import Config
from sprechstunde.web.core.security import mask_tokens
from sprechstunde.web.core.services import SERVICES
from tests.test_waiting_api import OPEN, console_socket, receive, sign_in

FIXTURES = Path(__file__).parent / "data" / "chatbot_kb"
CATALOG = Catalog()
LANGUAGES = ("de", "en", "fr", "it", "pl", "tr", "ku", "ar")


@pytest.fixture
def config(tmp_path) -> Config:
    """The shipped knowledge base (the VHS, the Reisepass) and a city file whose address of the
    registration is German only."""
    city = tmp_path / "city.toml"
    city.write_text(
        "[city]\nname = 'Teststadt'\n"
        "[topics.wohnsitz-anmelden]\naddress = 'Bürgerbüro im Rathaus, Marktplatz 1'\n"
        "[topics.personalausweis]\naddress = 'Rathaus, Markt 1'\n",
        encoding="utf-8",
    )
    return Config(
        data_dir=tmp_path / "data",
        media_addresses=["127.0.0.1"],
        demo=False,
        chatbot_knowledge=KNOWLEDGE_DIR,
        chatbot_city=city,
    )


@pytest.fixture
def services(client):
    services = client.app[SERVICES]
    services.waiting.clock.set(OPEN)
    return services


async def say(client, text: str, headers: dict | None = None, **extra) -> dict:
    response = await client.post("/api/chatbot/messages", json={"text": text} | extra, headers=headers or {})
    assert response.status == 200, await response.text()
    return await response.json()


def video_offer(body: dict) -> dict:
    return next(offer for offer in body["escalation"]["offers"] if offer["type"] == "video")


# --- 1. the offer names the topic's office and who is online in the citizen's language ------------------


async def test_a_person_after_a_vhs_question_is_offered_at_the_vhs(client, services):
    first = await say(client, "Wie melde ich mich für einen VHS-Kurs an?")
    assert first["topic"] == "vhs-kurs-anmeldung"
    for text in ("Ich möchte mit einer Person sprechen.", "Mit einer Person sprechen"):
        body = await say(client, text, conversation_id=first["conversation_id"])
        video = video_offer(body)
        assert body["escalation"]["reason"] == "person_requested"
        assert video["office"] == "vhs" and video["office_name"] == "Volkshochschule", video
    # a message that names another topic goes there
    other = await say(
        client,
        "Ich möchte mit jemandem über meinen Kita-Platz sprechen",
        conversation_id=first["conversation_id"],
    )
    assert video_offer(other)["office"] == "familienbuero"
    # and the hand-over follows the offer
    response = await client.post("/api/chatbot/escalate", json={"conversation_id": first["conversation_id"]})
    assert response.status == 201 and (await response.json())["office"]["id"] == "familienbuero"


async def test_the_offer_says_whether_someone_speaks_the_citizens_language(client, services):
    await sign_in(client, services, offices=("vhs",), languages=("de", "en"))
    console = await console_socket(client)
    await receive(console, "queue")
    english = await say(client, "How do I sign up for an adult education course?", language="en")
    english = await say(
        client, "I would like to talk to a person.", conversation_id=english["conversation_id"]
    )
    video = video_offer(english)
    assert video["office"] == "vhs" and video["conversation_language"] == "en"
    assert video["language_online"] is True and video["available"] is True

    turkish = await say(client, "VHS kursuna nasıl kaydolabilirim?", language="tr")
    turkish = await say(client, "Bir kişiyle konuşmak istiyorum.", conversation_id=turkish["conversation_id"])
    video = video_offer(turkish)
    assert video["office"] == "vhs" and video["conversation_language"] == "tr"
    assert video["language_online"] is False and video["advisors_online"] == 0

    arabic = await say(client, "أريد التحدث مع شخص.", language="ar")  # the VHS advises in German for ar
    video = video_offer(arabic)
    assert video["conversation_language"] == "ar" and video["language"] == "de"
    assert video["language_online"] is False
    await console.close()


# --- 2. "an automated assistant answers", in every language -----------------------------------------------


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_the_widget_says_an_automated_assistant_answers(client, services, lang):
    html = await (await client.get(f"/?lang={lang}")).text()
    notice = CATALOG.get(lang, "chat.ai_notice")
    escaped = notice.replace("&", "&amp;").replace("'", "&#39;").replace('"', "&#34;")
    match = re.search(r'<p id="chat-ai-notice" class="chat-notice">(.*?)</p>', html, re.S)
    assert match and match.group(1).strip() in (notice, escaped), lang
    # at the start of the log, not in a title attribute, and it describes the input
    assert html.index('id="chat-ai-notice"') > html.index('id="chat-log"')
    assert 'aria-describedby="chat-ai-notice"' in html
    if lang != "de":
        assert notice != CATALOG.get("de", "chat.ai_notice")


# --- 3. last checked and the responsible office -----------------------------------------------------------


async def test_each_answer_says_when_it_was_checked_and_which_office_answers_for_it(client, services):
    body = await say(client, "Wie melde ich mich für einen VHS-Kurs an?")
    checked = date.fromisoformat(body["checked"]["date"])
    assert body["checked"]["text"] == date_text(checked, "de")
    assert body["office"] == {"id": "vhs", "name": "Volkshochschule"}
    # the date in the page's language, the office in the citizen's
    english = await say(client, "How do I sign up for an adult education course?", {"Accept-Language": "ar"})
    assert english["language"] == "en" and english["checked"]["text"] == date_text(checked, "ar")
    assert english["office"] == {"id": "vhs", "name": "Adult Education Centre"}
    # a topic whose office the city has not configured: the Bürgertelefon answers for it
    dog = await say(client, "Wie hoch ist die Hundesteuer?")
    assert dog["office"]["id"] == "buergertelefon"
    # no topic, no provenance; an offer to talk to a person names its office itself
    weather = await say(client, "Wie wird das Wetter morgen?")
    assert weather["checked"] is None and weather["office"] is None
    person = await say(
        client, "Ich möchte mit einer Person sprechen.", conversation_id=body["conversation_id"]
    )
    assert person["office"] is None and video_offer(person)["office_name"] == "Volkshochschule"


# --- 4. what is German only is said, with an advisor who speaks the language ----------------------------


async def test_a_german_city_text_is_named_and_an_advisor_offered(client, services):
    body = await say(client, "How do I register my address?", language="en")
    assert body["topic"] == "wohnsitz-anmelden" and body["german_parts"] == ["address"]
    first = body["reply"].split("\n\n")[0]
    assert "only available in German" in first and "Address" in first and "English" in first
    assert "Address: Bürgerbüro im Rathaus, Marktplatz 1" in body["reply"]
    assert body["escalation"]["reason"] == "german_only"
    assert video_offer(body)["conversation_language"] == "en"
    german = await say(client, "Wie melde ich meinen Wohnsitz an?")
    assert german["german_parts"] == [] and german["escalation"] is None


async def test_a_missing_translation_is_named_and_an_advisor_offered(tmp_path):
    shutil.copytree(FIXTURES, tmp_path / "kb")  # German and English only
    engine = Engine(load_knowledge(tmp_path / "kb"))
    reply, _ = engine.respond("Comment demander une carte d'identité ?", State())
    assert reply.language == "fr" and reply.topic == "personalausweis"
    assert reply.text.startswith("Cette réponse n'existe qu'en allemand") and "français" in reply.text
    assert reply.escalation == "german_only" and reply.german == ["answer"]
    assert reply.checked == engine.base.get("personalausweis").checked.get("de")
    # the labels are the citizen's even around German text
    assert "À apporter:" in reply.text and "Mitbringen" not in reply.text


# --- 5. the download -------------------------------------------------------------------------------------


async def test_the_citizen_downloads_the_conversation(client, services):
    first = await say(client, "Wie beantrage ich einen Reisepass?")
    conversation = first["conversation_id"]
    await say(client, "Was kostet das?", conversation_id=conversation)
    response = await client.post("/api/chatbot/download", json={"conversation_id": conversation})
    assert response.status == 200
    assert response.content_type == "text/plain" and response.charset == "utf-8"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="chatbot-')
    assert "no-store" in response.headers["Cache-Control"]
    text = await response.text()
    lines = text.splitlines()
    assert lines[0] == CATALOG.get("de", "chat.file.title") and lines[1] == CATALOG.get(
        "de", "chat.ai_notice"
    )
    assert "Sie:\nWie beantrage ich einen Reisepass?\n" in text
    assert first["reply"] in text  # whole, not the first 1000 characters
    assert len(first["reply"]) > 1000
    for internal in (conversation, "reisepass", "confidence", "person_requested", "last_topic"):
        assert internal not in text

    english = await say(client, "How do I apply for a passport?", language="en")
    text = await (
        await client.post("/api/chatbot/download", json={"conversation_id": english["conversation_id"]})
    ).text()
    assert text.startswith(CATALOG.get("en", "chat.file.title")) and "\nYou:\n" in text


async def test_the_download_needs_the_conversations_capability(client, services):
    for body in ({"conversation_id": "nope"}, {}, {"conversation_id": 5}):
        response = await client.post("/api/chatbot/download", json=body)
        assert response.status == 400, body
        assert (await response.json())["error"]["code"] == "invalid_conversation_id"
    response = await client.post("/api/chatbot/download", json={"conversation_id": "A" * 24})
    assert response.status == 404 and (await response.json())["error"]["code"] == "unknown_conversation"
    # the id never travels in a URL any more; a page of an older version asking the former GET still has
    # it masked in the logs — and finds nothing there
    path = f"/api/chatbot/conversations/{'B' * 24}/download"
    assert mask_tokens(f"GET {path} 200") == "GET /api/chatbot/conversations/…/download 200"
    first = await say(client, "Wie beantrage ich einen Reisepass?")
    old = await client.get(f"/api/chatbot/conversations/{first['conversation_id']}/download")
    assert old.status in (404, 405)
    assert first["conversation_id"] not in await old.text()


async def test_no_url_holds_the_conversation_id():
    """A browser keeps the URLs it downloaded from in its history: on a shared computer (a town hall's) the
    next user must not find the previous citizen's conversation there. The widget asks with a POST and
    saves through a blob URL; nothing in the widget builds a URL from the conversation id."""
    root = Path(__file__).parent.parent / "sprechstunde" / "web"
    script = (root / "static" / "chat.js").read_text(encoding="utf-8")
    assert "/api/chatbot/conversations/" not in script
    assert "URL.createObjectURL" in script and "URL.revokeObjectURL" in script
    template = (root / "templates" / "_chat.html").read_text(encoding="utf-8")
    assert not re.search(r"<a [^>]*id=\"chat-download\"", template)


# --- 6. retention ----------------------------------------------------------------------------------------


async def test_conversations_expire_after_the_configured_days_and_no_later(tmp_path):
    now = [1_000_000.0]
    store = SQLiteStore(":memory:", clock=lambda: now[0])
    try:
        default = ChatService(store, FIXTURES)
        assert default.retention_days == 30
        service = ChatService(store, FIXTURES, retention_days=2)
        conversation, _ = await service.message("Ich brauche einen neuen Personalausweis")
        now[0] += 2 * 86400 - 60
        assert await store.get(CONVERSATION_KIND, conversation) is not None
        await service.message("Und was kostet das?", conversation)  # a message starts the days afresh
        now[0] += 2 * 86400 - 60
        assert await store.get(CONVERSATION_KIND, conversation) is not None
        now[0] += 120
        assert await store.get(CONVERSATION_KIND, conversation) is None
        with pytest.raises(ValueError):
            ChatService(store, FIXTURES, retention_days=0)
    finally:
        await store.close()


def test_the_retention_is_a_setting(monkeypatch):
    from tests.test_settings import serve_config

    monkeypatch.delenv("SPRECHSTUNDE_CHAT_RETENTION_DAYS", raising=False)
    assert serve_config().chat_retention_days == 30
    assert serve_config("--chat-retention-days", "7").chat_retention_days == 7
    monkeypatch.setenv("SPRECHSTUNDE_CHAT_RETENTION_DAYS", "14")
    assert serve_config().chat_retention_days == 14
    with pytest.raises(SystemExit):
        serve_config("--chat-retention-days", "0")


async def test_the_privacy_notice_names_the_chat_retention_in_days(aiohttp_client, tmp_path):
    from sprechstunde.web.core.app import create_app

    config = Config(
        data_dir=tmp_path / "data", media_addresses=["127.0.0.1"], demo=False, chat_retention_days=14
    )
    client = await aiohttp_client(create_app(config))
    assert client.app[SERVICES].chatbot.conversation_ttl == 14 * 86400
    html = await (await client.get("/datenschutz")).text()
    assert "14 Tage nach Ihrer letzten Nachricht gelöscht" in html


# --- 7. the advisor's transcript: whole messages ----------------------------------------------------------


async def test_the_transcript_holds_whole_answers_and_drops_the_oldest_first(client, services):
    first = await say(client, "Wie beantrage ich einen Reisepass?")
    conversation = first["conversation_id"]
    assert len(first["reply"]) > 1000
    for question in ("Wie beantrage ich einen Personalausweis?", "Wie melde ich meinen Wohnsitz an?") * 5:
        await say(client, question, conversation_id=conversation)
    last = await say(client, "Wie melde ich mich für einen VHS-Kurs an?", conversation_id=conversation)
    chatbot = services.chatbot
    transcript = await chatbot.transcript(conversation)
    stored = (await chatbot.stored(conversation)).messages
    assert transcript[-1] == {"role": "bot", "text": last["reply"]}  # the last answer, whole
    assert transcript == stored[-len(transcript) :]  # a tail of whole messages
    assert len(transcript) < len(stored)  # the oldest left out
    assert sum(len(m["text"]) for m in transcript) <= 20_000
    response = await client.post("/api/chatbot/escalate", json={"conversation_id": conversation})
    assert response.status == 201


def test_an_overlong_reply_is_cut_at_a_sentence_end():
    text = "Erster Satz. " * 100
    cut = whole_sentences(text, 500)
    assert len(cut) <= 500 and cut.endswith("Erster Satz. …")
    assert whole_sentences("kurz", 500) == "kurz"


# --- 8. fees once ----------------------------------------------------------------------------------------


def _engine() -> Engine:
    return Engine(apply_city(load_knowledge(KNOWLEDGE_DIR, strict=False), load_city(None)))


@pytest.mark.parametrize(
    "messages", [("Was kostet ein Reisepass?",), ("Ich brauche einen Reisepass", "Was kostet das?")]
)
def test_a_question_about_the_cost_states_the_fees_once(messages):
    engine = _engine()
    state = State()
    for text in messages:
        reply, state = engine.respond(text, state)
    passport = engine.base.get("reisepass")
    assert reply.topic == "reisepass"
    assert reply.text.count("37,50 €") == 1, reply.text
    assert passport.followups["cost"]["de"] not in reply.text
    assert passport.fees["de"] in reply.text


def test_the_whole_answer_leaves_out_a_fees_line_it_already_states():
    engine = _engine()
    topic = engine.base.get("fuehrungszeugnis")
    reply = engine.answer(topic, "de")
    assert "Gebühren:" not in reply.text and "13 €" in reply.text
