"""The chatbot: a multilingual knowledge base, lexical retrieval, and escalation to a person.

`ChatService` (chatbot.service) is what the app builds; `Engine` (chatbot.engine) decides replies.
"""

from sprechstunde.chatbot.engine import Engine, Reply, State
from sprechstunde.chatbot.knowledge import KnowledgeBase, KnowledgeError, load_city, load_knowledge
from sprechstunde.chatbot.service import ChatService

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
