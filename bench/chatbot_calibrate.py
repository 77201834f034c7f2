"""Fit the chatbot's confidence (chatbot.retrieval.calibrate) on data that is NOT the evaluation set.

In scope: the knowledge base's own question variants, held out in 4 folds (every 4th variant of every
topic and language is removed from the index and asked). Out of scope: the questions below, written for
this calibration (weather, tax, private law, health, shopping, chit-chat … in the eight languages).
A logistic regression over (score, gap to the runner-up, coverage) is fitted by gradient descent; the
printed weights go into `calibrate`. Also prints how well the current weights separate both sets.

    .venv/bin/python -m bench.chatbot_calibrate [--no-glossary]
"""

from __future__ import annotations

import dataclasses
import math
import sys

from sprechstunde.chatbot import retrieval
from sprechstunde.chatbot.engine import Engine, State
from sprechstunde.chatbot.knowledge import KnowledgeBase, load_knowledge
from sprechstunde.chatbot.language import detect
from sprechstunde.chatbot.retrieval import TopicIndex, calibrate

FOLDS = 4
OUT_OF_SCOPE = [
    "Regnet es heute Nachmittag?",
    "Wie viel Grad werden es am Sonntag?",
    "Welche Partei soll ich wählen?",
    "Wer ist der beste Fußballspieler der Welt?",
    "Kannst du mir ein Rezept für Apfelkuchen geben?",
    "Wo kann ich günstig ein gebrauchtes Fahrrad kaufen?",
    "Mein Internet ist seit gestern langsam, was tun?",
    "Wie viel Miete darf mein Vermieter erhöhen?",
    "Ich habe Streit mit meinem Chef wegen Überstunden",
    "Lohnt sich eine Photovoltaikanlage auf dem Dach?",
    "Welches Smartphone ist gerade am besten?",
    "Wie schreibe ich eine Bewerbung?",
    "Welcher Zahnarzt hat am Samstag offen?",
    "Was ist die Quadratwurzel aus 144?",
    "Erzähl mir etwas über die Römer",
    "Meine Waschmaschine ist kaputt, wer repariert das?",
    "Wie lange muss ein Ei kochen?",
    "Was kostet ein Flug nach Mallorca im Sommer?",
    "Wie bekomme ich meine Lohnsteuer zurück?",
    "Darf mein Arbeitgeber mir das Urlaubsgeld streichen?",
    "Which bank has the best savings account?",
    "Can you recommend a good Italian restaurant?",
    "What is the meaning of life?",
    "How do I fix a leaking tap?",
    "Is it going to snow this week?",
    "Quel temps fera-t-il demain à Paris ?",
    "Comment réparer mon vélo ?",
    "Qual è la ricetta della carbonara?",
    "Chi vincerà il campionato quest'anno?",
    "Jaki telefon warto kupić?",
    "Gdzie jest najlepsza pizzeria w mieście?",
    "Bugün maç saat kaçta?",
    "En iyi telefon hangisi?",
    "Îro hewa çawa ye?",
    "Kîjan telefon baş e?",
    "ما هو أفضل هاتف محمول؟",
    "كيف أطبخ الأرز؟",
    "Wie funktioniert ein Elektroauto?",
    "Ich suche einen Babysitter für Samstagabend",
    "Welcher Stromanbieter ist am günstigsten?",
]


def features(index: TopicIndex, text: str, vocabulary: dict) -> tuple[float, float, float, str | None]:
    language = detect(text, vocabulary)
    groups, grams, content = index.query_terms(text, language)
    ranking = index.search(text, language)
    if not ranking.hits:
        return 0.0, 0.0, 0.0, None
    top = ranking.hits[0].score
    second = ranking.hits[1].score if len(ranking.hits) > 1 else 0.0
    return top, top - second, ranking.coverage, ranking.hits[0].topic


def main() -> None:
    if "--no-glossary" in sys.argv:  # measures what chatbot/glossary.py adds
        retrieval.GLOSSARY = False
    base = load_knowledge()
    full = TopicIndex(base)
    samples: list[tuple[tuple[float, float, float], int]] = []
    right = total = 0
    per_language: dict[str, list[int]] = {}
    for fold in range(FOLDS):
        held: list[tuple[str, str, str]] = []
        topics = []
        for topic in base:
            kept = {}
            for lang, variants in topic.questions.items():
                kept[lang] = [v for i, v in enumerate(variants) if i % FOLDS != fold]
                held += [(v, topic.id, lang) for i, v in enumerate(variants) if i % FOLDS == fold]
            topics.append(dataclasses.replace(topic, questions=kept))
        index = TopicIndex(KnowledgeBase(topics))
        for text, topic_id, lang in held:
            score, gap, coverage, found = features(index, text, full.vocabulary_by_language)
            total += 1
            right += found == topic_id
            counts = per_language.setdefault(lang, [0, 0])
            counts[0] += found == topic_id
            counts[1] += 1
            # in scope, whether or not the top topic is right: the threshold separates questions the
            # base is about from those it is not (a wrong topic is a retrieval miss, not a refusal case)
            samples.append(((score, gap, coverage), 1))
    negatives = [features(full, text, full.vocabulary_by_language)[:3] for text in OUT_OF_SCOPE]
    samples += [(f, 0) for f in negatives]
    print(f"held-out variants: {total}, top-1 {100 * right / total:.1f} %; out-of-scope: {len(negatives)}")
    rates_by_language = (f"{lang} {100 * r / n:.0f} %" for lang, (r, n) in per_language.items())
    print("   top-1 per language: " + ", ".join(rates_by_language))

    # logistic regression, positives and negatives weighted equally
    pos = sum(1 for _, y in samples if y)
    neg = len(samples) - pos
    w = [0.0, 0.0, 0.0, 0.0]  # bias, score, gap, coverage
    for _ in range(4000):
        grad = [0.0] * 4
        for (x1, x2, x3), y in samples:
            z = w[0] + w[1] * x1 + w[2] * x2 + w[3] * x3
            p = 1 / (1 + math.exp(-max(-30, min(30, z))))
            weight = 0.5 / pos if y else 0.5 / neg
            for i, x in enumerate((1.0, x1, x2, x3)):
                grad[i] += weight * (p - y) * x
        w = [wi - 2.0 * gi for wi, gi in zip(w, grad, strict=True)]
    print(f"fitted: z = {w[0]:.2f} + {w[1]:.2f}·score + {w[2]:.2f}·gap + {w[3]:.2f}·coverage")

    def rates(prob) -> str:
        tp = sum(1 for f, y in samples if y and prob(*f) >= 0.5)
        tn = sum(1 for f, y in samples if not y and prob(*f) < 0.5)
        oos = sum(1 for f in negatives if prob(*f) < 0.5)
        return f"answers in-scope {100 * tp / pos:.1f} %, refuses out-of-scope {100 * tn / neg:.1f} % ({oos})"

    engine = Engine(base)
    answered = []
    for text in OUT_OF_SCOPE:
        reply, _ = engine.respond(text, State())
        if reply.topic is not None:
            answered.append(f"{text} → {reply.topic} ({reply.confidence:.2f})")
    refused = len(OUT_OF_SCOPE) - len(answered)
    print(f"engine (with the out-of-scope lexicon) refuses {refused}/{len(OUT_OF_SCOPE)}")
    for line in answered:
        print("   answered:", line)
    print("current calibrate():", rates(calibrate))
    fitted = lambda s, g, c: 1 / (1 + math.exp(-(w[0] + w[1] * s + w[2] * g + w[3] * c)))  # noqa: E731
    print("fitted:             ", rates(fitted))


if __name__ == "__main__":
    main()
