"""Encrypted document and link exchange in a consultation room, with audit log and retention."""

from documents.crypto import IntegrityError, KeyRing, KeyRingError
from documents.service import Actor, DocumentError, DocumentService, Download, Limits, RoomRef

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
