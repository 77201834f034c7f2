"""HTTP routes of a room's documents and links (issue `documents`).

Who may call them: a participant of the room, sending its join link's token in `X-Join-Token`, or signed-in
staff of the room's office (session cookie; writes also need `X-CSRF-Token`). Downloads go through
short-lived signed URLs, so a plain link or navigation can fetch them without any header.

    GET    /api/rooms/{room_id}/documents                       → {"items", "you", "limits"}
    POST   /api/rooms/{room_id}/documents                       raw body (+ X-File-Name) or multipart → 201
    POST   /api/rooms/{room_id}/links                           {"url", "title"} → 201
    DELETE /api/rooms/{room_id}/documents/{document_id}         own uploads and links only → 204
    POST   /api/rooms/{room_id}/documents/{document_id}/download → {"url", "expires_at"}
    GET    /api/download/{signed}                                the file, as an attachment
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from sprechstunde.documents import Actor, DocumentError, RoomRef
from sprechstunde.errors import DomainError
from sprechstunde.rooms.service import Room
from sprechstunde.rooms.tokens import TokenError
from sprechstunde.web.core.api import MALFORMED_BODY
from sprechstunde.web.core.models import read_model
from sprechstunde.web.core.openapi import Raw, api_route, header
from sprechstunde.web.core.services import CSRF_HEADER, SERVICES, Services
from sprechstunde.web.documents.models import (
    UPLOAD_CONTENT,
    DocumentItem,
    DocumentsOut,
    DownloadLinkOut,
    LinkIn,
)

routes = web.RouteTableDef()
TOKEN_HEADER = "X-Join-Token"
NAME_HEADER = "X-File-Name"
READ_CHUNK = 256 * 1024
MULTIPART_SLACK = 64 * 1024  # boundaries and part headers around the file in a multipart body
DOWNLOAD_PURPOSE = "download"


@dataclass(frozen=True)
class Access:
    room: Room
    actor: Actor

    @property
    def ref(self) -> RoomRef:
        return RoomRef(self.room.room_id, self.room.office, self.room.expires_at)


async def _access(request: web.Request, *, write: bool) -> Access:
    services: Services = request.app[SERVICES]
    room_id = request.match_info["room_id"]
    token = request.headers.get(TOKEN_HEADER)
    if token:
        grant, room = await services.rooms.admit(token)
        if room.room_id != room_id:
            raise DomainError("wrong_room", "this link belongs to another consultation room", 403)
        return Access(room, Actor.participant(token, grant.role))
    member = await services.current_staff(request)
    if member is None:
        raise DomainError(
            "not_authenticated", f"send the join link's token in {TOKEN_HEADER}, or sign in as staff", 401
        )
    if write and not services.has_csrf_header(request):
        raise DomainError("csrf", f"send {CSRF_HEADER} (from POST /api/login) with staff requests", 403)
    room = await services.rooms.get(room_id)
    if room is None:
        raise DomainError("unknown_room", "this consultation room does not exist", 404)
    if member.role != "admin" and room.office not in member.offices:
        raise DomainError("forbidden_office", "you are not staff of this room's office", 403)
    if write and room.expires_at <= time.time():
        raise DomainError("expired", "this consultation has ended", 410)
    return Access(room, Actor("staff", member.username, member.role))


ROOM_ERRORS = (404, 410)  # _access: no such room, the consultation has ended (or the link expired)


@api_route(
    routes.get,
    "/api/rooms/{room_id}/documents",
    tag="documents",
    auth="room",
    answers={200: DocumentsOut},
    errors=ROOM_ERRORS,
)
async def list_documents(request: web.Request) -> web.Response:
    """The room's files and links, who you are among their owners, and the upload limits"""
    services: Services = request.app[SERVICES]
    access = await _access(request, write=False)
    documents = services.documents
    limits = documents.info() | {"used_bytes": await documents.used_bytes(access.room.room_id)}
    items = await documents.list(access.room.room_id)
    return web.json_response({"items": items, "you": access.actor.tag, "limits": limits})


def _incomplete() -> DocumentError:
    return DocumentError("incomplete_upload", "the upload ended before the form did; send it again", 400)


async def _part_chunks(reader: MultipartReader, part: BodyPartReader) -> AsyncIterator[bytes]:
    """The file part's bytes, and then the proof that the form was complete: the part ended at a
    boundary and the form at its closing one. aiohttp's reader returns what came before the end of the
    stream as if it were all, so without this a cut-off upload would be stored as a whole file. Raised
    here, before the service's commit point, the error leaves nothing stored (issue 15, finding 14)."""
    try:
        while chunk := await part.read_chunk(READ_CHUNK):
            yield chunk
        if not part.at_eof():
            raise _incomplete()
        while (rest := await reader.next()) is not None:  # parts after the file, read to the void
            await rest.release()
    except MALFORMED_BODY:
        raise _incomplete() from None
    if not reader.at_eof():
        raise _incomplete()


async def _raw_chunks(request: web.Request) -> AsyncIterator[bytes]:
    """The raw body; a body cut short of its Content-Length (or a broken chunk) is an incomplete upload."""
    try:
        async for chunk in request.content.iter_chunked(READ_CHUNK):
            yield chunk
    except HttpProcessingError:
        raise _incomplete() from None


@api_route(
    routes.post,
    "/api/rooms/{room_id}/documents",
    tag="documents",
    auth="room_change",
    body=Raw("the file: a multipart form with one file part, or the raw bytes", UPLOAD_CONTENT),
    answers={201: DocumentItem},
    errors=(*ROOM_ERRORS, 400, 413, 415),
    params=(header(NAME_HEADER, {"type": "string"}, "the file's name for a raw body (URL-encoded)"),),
)
async def upload_document(request: web.Request) -> web.Response:
    """Upload a file (PDF, image, text, office document) into the room"""
    services: Services = request.app[SERVICES]
    access = await _access(request, write=True)
    max_file = services.documents.limits.max_file_bytes
    length = request.content_length
    if request.content_type == "multipart/form-data":
        if length is not None and length > max_file + MULTIPART_SLACK:
            message = f"a file may be at most {max_file >> 20} MB"
            raise DocumentError("file_too_large", message, 413)
        try:
            reader = await request.multipart()
            part = await reader.next()
            while part is not None and not (isinstance(part, BodyPartReader) and part.filename):
                if isinstance(part, BodyPartReader):
                    await part.release()
                part = await reader.next()
        except MALFORMED_BODY:
            raise DomainError("bad_multipart", "the multipart form is malformed", 400) from None
        if part is None:
            raise DomainError("no_file", "the form has no file part", 400)
        name, chunks, declared = part.filename, _part_chunks(reader, part), None
    else:
        name = unquote(request.headers.get(NAME_HEADER, ""))[:1000]
        chunks, declared = _raw_chunks(request), length
    item = await services.documents.upload(access.ref, access.actor, name, chunks, declared)
    return web.json_response(item, status=201)


@api_route(
    routes.post,
    "/api/rooms/{room_id}/links",
    tag="documents",
    auth="room_change",
    body=LinkIn,
    answers={201: DocumentItem},
    errors=(*ROOM_ERRORS, 400),
)
async def share_link(request: web.Request) -> web.Response:
    """Share a link (http or https) in the room"""
    services: Services = request.app[SERVICES]
    access = await _access(request, write=True)
    link = await read_model(request, LinkIn)
    item = await services.documents.add_link(access.ref, access.actor, link.url, link.title)
    return web.json_response(item, status=201)


@api_route(
    routes.delete,
    "/api/rooms/{room_id}/documents/{document_id}",
    tag="documents",
    auth="room_change",
    answers={204: None},
    errors=ROOM_ERRORS,
)
async def delete_document(request: web.Request) -> web.Response:
    """Delete one of your own uploads or links; it is shredded at once"""
    services: Services = request.app[SERVICES]
    access = await _access(request, write=True)
    await services.documents.delete(access.room.room_id, request.match_info["document_id"], access.actor)
    return web.Response(status=204)


@api_route(
    routes.post,
    "/api/rooms/{room_id}/documents/{document_id}/download",
    tag="documents",
    auth="room",
    answers={200: DownloadLinkOut},
    errors=(*ROOM_ERRORS, 400),
)
async def download_url(request: web.Request) -> web.Response:
    """A signed URL valid for `download_ttl` seconds (default 60) for this caller and document"""
    services: Services = request.app[SERVICES]
    access = await _access(request, write=False)
    document_id = request.match_info["document_id"]
    await services.documents.check_file(access.room.room_id, document_id)
    url, expires = signed_download(services, access.room.room_id, document_id, access.actor)
    return web.json_response({"url": url, "expires_at": datetime.fromtimestamp(expires, UTC).isoformat()})


def signed_download(services: Services, room_id: str, document_id: str, actor: Actor) -> tuple[str, float]:
    """A `/api/download/…` URL for `actor`, valid `download_ttl` seconds, and when it expires. The caller
    checked that the document is a live file of the room (also the citizen's end screen, web/consultations
    /ending.py, which links the room's documents until they are purged)."""
    expires = time.time() + services.config.download_ttl
    claims = {"d": document_id, "r": room_id, "k": actor.kind, "i": actor.id, "ro": actor.role}
    token = services.signer.sign(DOWNLOAD_PURPOSE, claims | {"exp": int(expires) + 1})
    return f"/api/download/{token}", expires


def content_disposition(name: str) -> str:
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\;%' else "_" for c in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


DOWNLOADED = Raw(
    "the file, as an attachment",
    {"*/*": {"schema": {"type": "string", "format": "binary"}}},
)


@api_route(
    routes.get,
    "/api/download/{token}",
    tag="documents",
    answers={200: DOWNLOADED},
    errors=(400, 403, 404, 410, 500),
)
async def download(request: web.Request) -> web.StreamResponse:
    """The file of a signed download URL (no header needed: a plain link works)"""
    services: Services = request.app[SERVICES]
    try:
        claims: dict[str, Any] = services.signer.verify(DOWNLOAD_PURPOSE, request.match_info["token"])
    except TokenError as exc:
        if exc.reason == "expired":
            raise DomainError("expired", "this download link has expired; ask for a new one", 410) from None
        raise DomainError("invalid_token", "this download link is not valid", 403) from None
    actor = Actor(claims["k"], claims["i"], claims["ro"])
    file = await services.documents.download(claims["r"], claims["d"], actor)
    response = web.StreamResponse(
        headers={
            "Content-Type": file.mime,
            "Content-Disposition": content_disposition(file.name),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox",
            "Cache-Control": "no-store",
        }
    )
    response.content_length = file.size
    await response.prepare(request)
    try:
        async for piece in file.chunks:
            await response.write(piece)
    except DocumentError:
        # The headers are out: cut the connection so that no client takes a short file for a whole one.
        if request.transport is not None:
            request.transport.abort()
        return response
    await response.write_eof()
    return response
