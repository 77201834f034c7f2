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
from sprechstunde.rooms.service import Room, RoomError
from sprechstunde.rooms.tokens import TokenError
from sprechstunde.web.core.api import MALFORMED_BODY, read_json
from sprechstunde.web.core.security import ApiError
from sprechstunde.web.core.services import CSRF_HEADER, SERVICES, Services

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


def _api_error(exc: DocumentError) -> ApiError:
    return ApiError(exc.status, exc.code, exc.message)


async def _access(request: web.Request, *, write: bool) -> Access:
    services: Services = request.app[SERVICES]
    room_id = request.match_info["room_id"]
    token = request.headers.get(TOKEN_HEADER)
    if token:
        try:
            grant, room = await services.rooms.admit(token)
        except RoomError as exc:
            raise ApiError(exc.status, exc.code, exc.message) from None
        if room.room_id != room_id:
            raise ApiError(403, "wrong_room", "this link belongs to another consultation room")
        return Access(room, Actor.participant(token, grant.role))
    member = await services.current_staff(request)
    if member is None:
        raise ApiError(
            401, "not_authenticated", f"send the join link's token in {TOKEN_HEADER}, or sign in as staff"
        )
    if write and not services.has_csrf_header(request):
        raise ApiError(403, "csrf", f"send {CSRF_HEADER} (from POST /api/login) with staff requests")
    room = await services.rooms.get(room_id)
    if room is None:
        raise ApiError(404, "unknown_room", "this consultation room does not exist")
    if member.role != "admin" and room.office not in member.offices:
        raise ApiError(403, "forbidden_office", "you are not staff of this room's office")
    if write and room.expires_at <= time.time():
        raise ApiError(410, "expired", "this consultation has ended")
    return Access(room, Actor("staff", member.username, member.role))


@routes.get("/api/rooms/{room_id}/documents")
async def list_documents(request: web.Request) -> web.Response:
    services: Services = request.app[SERVICES]
    access = await _access(request, write=False)
    documents = services.documents
    limits = documents.info() | {"used_bytes": await documents.used_bytes(access.room.room_id)}
    items = await documents.list(access.room.room_id)
    return web.json_response({"items": items, "you": access.actor.tag, "limits": limits})


def _incomplete() -> DocumentError:
    return DocumentError(400, "incomplete_upload", "the upload ended before the form did; send it again")


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


@routes.post("/api/rooms/{room_id}/documents")
async def upload_document(request: web.Request) -> web.Response:
    services: Services = request.app[SERVICES]
    access = await _access(request, write=True)
    max_file = services.documents.limits.max_file_bytes
    length = request.content_length
    if request.content_type == "multipart/form-data":
        if length is not None and length > max_file + MULTIPART_SLACK:
            message = f"a file may be at most {max_file >> 20} MB"
            raise _api_error(DocumentError(413, "file_too_large", message))
        try:
            reader = await request.multipart()
            part = await reader.next()
            while part is not None and not (isinstance(part, BodyPartReader) and part.filename):
                if isinstance(part, BodyPartReader):
                    await part.release()
                part = await reader.next()
        except MALFORMED_BODY:
            raise ApiError(400, "bad_multipart", "the multipart form is malformed") from None
        if part is None:
            raise ApiError(400, "no_file", "the form has no file part")
        name, chunks, declared = part.filename, _part_chunks(reader, part), None
    else:
        name = unquote(request.headers.get(NAME_HEADER, ""))[:1000]
        chunks, declared = _raw_chunks(request), length
    try:
        item = await services.documents.upload(access.ref, access.actor, name, chunks, declared)
    except DocumentError as exc:
        raise _api_error(exc) from None
    return web.json_response(item, status=201)


@routes.post("/api/rooms/{room_id}/links")
async def share_link(request: web.Request) -> web.Response:
    services: Services = request.app[SERVICES]
    access = await _access(request, write=True)
    data = await read_json(request)
    try:
        item = await services.documents.add_link(access.ref, access.actor, data.get("url"), data.get("title"))
    except DocumentError as exc:
        raise _api_error(exc) from None
    return web.json_response(item, status=201)


@routes.delete("/api/rooms/{room_id}/documents/{document_id}")
async def delete_document(request: web.Request) -> web.Response:
    services: Services = request.app[SERVICES]
    access = await _access(request, write=True)
    try:
        await services.documents.delete(access.room.room_id, request.match_info["document_id"], access.actor)
    except DocumentError as exc:
        raise _api_error(exc) from None
    return web.Response(status=204)


@routes.post("/api/rooms/{room_id}/documents/{document_id}/download")
async def download_url(request: web.Request) -> web.Response:
    """A signed URL valid for `download_ttl` seconds (default 60) for this caller and document."""
    services: Services = request.app[SERVICES]
    access = await _access(request, write=False)
    document_id = request.match_info["document_id"]
    try:
        await services.documents.check_file(access.room.room_id, document_id)
    except DocumentError as exc:
        raise _api_error(exc) from None
    expires = time.time() + services.config.download_ttl
    actor = access.actor
    claims = {"d": document_id, "r": access.room.room_id, "k": actor.kind, "i": actor.id, "ro": actor.role}
    token = services.signer.sign(DOWNLOAD_PURPOSE, claims | {"exp": int(expires) + 1})
    return web.json_response(
        {"url": f"/api/download/{token}", "expires_at": datetime.fromtimestamp(expires, UTC).isoformat()}
    )


def content_disposition(name: str) -> str:
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\;%' else "_" for c in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


@routes.get("/api/download/{token}")
async def download(request: web.Request) -> web.StreamResponse:
    services: Services = request.app[SERVICES]
    try:
        claims: dict[str, Any] = services.signer.verify(DOWNLOAD_PURPOSE, request.match_info["token"])
    except TokenError as exc:
        if exc.reason == "expired":
            raise ApiError(410, "expired", "this download link has expired; ask for a new one") from None
        raise ApiError(403, "invalid_token", "this download link is not valid") from None
    actor = Actor(claims["k"], claims["i"], claims["ro"])
    try:
        file = await services.documents.download(claims["r"], claims["d"], actor)
    except DocumentError as exc:
        raise _api_error(exc) from None
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
