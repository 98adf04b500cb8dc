"""Documents: multipart uploads into the caller's groups, listing, reading, regrouping and deleting.

Everything goes through the knowledge base as the caller's principal: uploads need membership of
each group (admins excepted), reads list only documents the caller may read, and changing groups
or deleting needs the owner or an admin.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from flywheel.errors import InvalidInputError, PayloadTooLargeError, UnsupportedMediaError
from flywheel.knowledge.parse import SUPPORTED_SUFFIXES
from flywheel.serve.deps import Caller, ServiceDep
from flywheel.serve.limits import check_upload_quota

router = APIRouter(tags=["documents"])
MAX_FILES = 20


class DocumentOut(BaseModel):
    id: str
    source: str
    title: str
    owner: str
    groups: list[str]
    tags: list[str]
    media_type: str
    size_bytes: int
    status: str
    live_version: int
    chunks: int
    error: str | None = None
    created_at: str | None = None
    updated_at: str | None = None


class IngestOut(BaseModel):
    source: str
    status: str
    doc_id: str | None = None
    version: int | None = None
    chunks: int = 0
    error: str | None = None


class UploadOut(BaseModel):
    results: list[IngestOut]
    documents: list[DocumentOut]


class DocumentList(BaseModel):
    documents: list[DocumentOut]


class GroupsIn(BaseModel):
    groups: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(min_length=1, max_length=50)


def document_dict(doc: Any) -> dict[str, Any]:
    versions = list(doc.versions or [])
    live = next((v for v in versions if v.version == doc.live_version), None)
    latest = versions[-1] if versions else None
    return {
        "id": doc.id,
        "source": doc.source,
        "title": doc.title or "",
        "owner": doc.owner,
        "groups": list(doc.groups or []),
        "tags": list(doc.tags or []),
        "media_type": doc.media_type or "",
        "size_bytes": doc.size_bytes or 0,
        "status": doc.status,
        "live_version": doc.live_version or 0,
        "chunks": live.chunk_count if live else 0,
        "error": latest.error if latest is not None else None,
        "created_at": doc.created_at.isoformat() if doc.created_at else None,
        "updated_at": doc.updated_at.isoformat() if doc.updated_at else None,
    }


def split_names(values: list[str]) -> list[str]:
    """Form fields may repeat or hold comma-separated names."""
    return sorted({name.strip() for value in values for name in value.split(",") if name.strip()})


async def _read_upload(upload: UploadFile, max_bytes: int) -> tuple[str, bytes]:
    name = PurePath((upload.filename or "").replace("\\", "/")).name.strip()
    if not name or name.startswith("."):
        raise InvalidInputError("An uploaded file has no usable name.", hint="Send each file with its file name.")
    if len(name) > 255:
        raise InvalidInputError(f"The file name {name[:40]}… is longer than 255 characters.", hint="Rename it.")
    if PurePath(name).suffix.lower() not in SUPPORTED_SUFFIXES:
        raise UnsupportedMediaError(
            f"{name}: unsupported file type.", hint=f"Upload one of {', '.join(sorted(SUPPORTED_SUFFIXES))}."
        )
    if upload.size is not None and upload.size > max_bytes:
        raise PayloadTooLargeError(
            f"{name} is over the {max_bytes // (1024 * 1024)} MB upload limit.",
            hint="Split the file, or raise knowledge.max_file_mb.",
        )
    data = await upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise PayloadTooLargeError(
            f"{name} is over the {max_bytes // (1024 * 1024)} MB upload limit.",
            hint="Split the file, or raise knowledge.max_file_mb.",
        )
    return name, data


@router.post(
    "/documents",
    status_code=201,
    response_model=UploadOut,
    responses={
        403: {"description": "Not a member of a group"},
        413: {"description": "File too large"},
        415: {"description": "Unsupported file type"},
        422: {"description": "Nothing ingested"},
    },
)
async def upload_documents(
    service: ServiceDep,
    caller: Caller,
    files: Annotated[list[UploadFile], File(description="One or more files (pdf, docx, html, md, txt, csv).")],
    groups: Annotated[list[str], Form(description="Groups to share with (repeat, or comma-separate).")],
    tags: Annotated[list[str] | None, Form(description="Optional tags.")] = None,
) -> Any:
    """Ingest files for groups the caller belongs to; each file's ingestion status is returned."""
    group_names = split_names(groups)
    if not group_names:
        raise InvalidInputError(
            "Name at least one group to share the documents with.",
            hint="Add a form field groups=<your group> (or 'everyone').",
        )
    if len(files) > MAX_FILES:
        raise InvalidInputError(
            f"{len(files)} files in one upload; the limit is {MAX_FILES}.", hint="Upload in several requests."
        )
    max_bytes = int(service.settings.knowledge.max_file_mb * 1024 * 1024)
    items = [await _read_upload(upload, max_bytes) for upload in files]
    if len({name for name, _ in items}) != len(items):
        raise InvalidInputError("Two uploaded files have the same name.", hint="Rename one of them.")
    kb = service.knowledge
    # The per-user quota: what the caller owns now, less the files this upload replaces, plus the upload.
    used = await service.run(
        lambda: kb.catalog.bytes_owned(caller.user, except_sources=[n for n, _ in items]), timeout=False
    )
    check_upload_quota(service.settings.limits, used, sum(len(data) for _, data in items))

    def ingest() -> tuple[list[Any], list[Any]]:
        results = kb.ingest_files(caller, items, groups=group_names, tags=split_names(tags or []))
        docs = [kb.document(caller, r.doc_id) for r in results if r.doc_id]
        return results, docs

    results, docs = await service.run(ingest, timeout=False)
    body = {"results": [vars(r) for r in results], "documents": [document_dict(d) for d in docs]}
    if all(r.status == "failed" for r in results):
        message = "; ".join(r.error or r.source for r in results)
        return JSONResponse(
            {
                "error": {
                    "error": "InvalidInputError",
                    "message": f"Nothing was ingested: {message}",
                    "hint": "Check that the files are readable and contain text.",
                },
                **body,
            },
            status_code=422,
        )
    return body


@router.get("/documents", response_model=DocumentList)
async def list_documents(service: ServiceDep, caller: Caller) -> dict[str, Any]:
    """Documents the caller may read (admins see every document, to manage it), with ingestion status."""
    docs = await service.run(service.knowledge.list_documents, caller, timeout=False)
    return {"documents": [document_dict(d) for d in docs]}


@router.get("/documents/{document_id}", response_model=DocumentOut, responses={404: {"description": "Not found"}})
async def get_document(service: ServiceDep, document_id: str, caller: Caller) -> dict[str, Any]:
    """One document's metadata and status (404 when missing or not readable by the caller)."""
    return document_dict(await service.run(service.knowledge.document, caller, document_id, timeout=False))


@router.patch(
    "/documents/{document_id}/groups",
    response_model=DocumentOut,
    responses={403: {"description": "Not the owner or an admin"}, 404: {"description": "Not found"}},
)
async def set_groups(service: ServiceDep, document_id: str, body: GroupsIn, caller: Caller) -> dict[str, Any]:
    """Share a document with exactly these groups (owner or admin; new groups must be the caller's)."""
    groups = split_names(body.groups)
    if not groups:
        raise InvalidInputError("Name at least one group.", hint='e.g. {"groups": ["mechanics"]}')
    doc = await service.run(service.knowledge.set_groups, caller, document_id, groups, timeout=False)
    return document_dict(doc)


@router.delete(
    "/documents/{document_id}",
    response_model=DocumentOut,
    responses={403: {"description": "Not the owner or an admin"}, 404: {"description": "Not found"}},
)
async def delete_document(service: ServiceDep, document_id: str, caller: Caller) -> dict[str, Any]:
    """Delete a document and all its chunks (owner or admin); returns what was deleted."""
    return document_dict(await service.run(service.knowledge.delete, caller, document_id, timeout=False))
