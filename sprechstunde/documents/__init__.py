"""Encrypted document and link exchange in a consultation room, with audit log and retention."""

from sprechstunde.documents.crypto import IntegrityError, KeyRing, KeyRingError
from sprechstunde.documents.records import Actor, DocumentError, Download, Limits, RoomRef
from sprechstunde.documents.service import DocumentService

__all__ = [
    "Actor",
    "DocumentError",
    "DocumentService",
    "Download",
    "IntegrityError",
    "KeyRing",
    "KeyRingError",
    "Limits",
    "RoomRef",
]
