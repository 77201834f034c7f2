"""The chatbot: a multilingual knowledge base, lexical retrieval, and escalation to a person.

`ChatService` (chatbot.service) is what the app builds; `Engine` (chatbot.engine) decides replies.
"""

from chatbot.engine import Engine, Reply, State
from chatbot.knowledge import KnowledgeBase, KnowledgeError, load_city, load_knowledge
from chatbot.service import ChatService

__all__ = [
    "ChatService",
    "Engine",
    "KnowledgeBase",
    "KnowledgeError",
    "Reply",
    "State",
    "load_city",
    "load_knowledge",
]
