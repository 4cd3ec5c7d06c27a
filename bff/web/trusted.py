"""Trusted documents: the web client's operations live as `.graphql` files in
`bff/trusted/operations/`; `bff manifest` writes `bff/trusted/manifest.json` (sha256 →
document). The production profile executes only documents in the manifest — sent by
`documentId` ("sha256:<hex>") or Apollo's `extensions.persistedQuery.sha256Hash`, over
POST or GET (so answers can be cached by URL) — and refuses any other with a clear
error. The sandbox profile runs any query, and resolves ids the same way."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from cross_web import HTTPException

from bff.domain.ids import document_hash

UNKNOWN_ID = "Unknown documentId: this server runs only documents from its trusted-documents manifest."
UNTRUSTED = ("This server executes only trusted documents: send `documentId` (sha256 of a document in the "
             "manifest) instead of `query`.")
MISMATCH = "`query` does not match `documentId`."


def operations_dir() -> Path:
    return Path(str(resources.files("bff").joinpath("trusted", "operations")))


def default_manifest_path() -> Path:
    return Path(str(resources.files("bff").joinpath("trusted", "manifest.json")))


def build_manifest(folder: Path) -> dict[str, str]:
    """sha256 → document, for every `.graphql` file in `folder` (sorted, stable)."""
    documents = {}
    for path in sorted(folder.glob("*.graphql")):
        text = path.read_text("utf-8")
        documents[document_hash(text)] = text
    return documents


def render_manifest(documents: Mapping[str, str]) -> str:
    return json.dumps(dict(sorted(documents.items())), indent=2, ensure_ascii=False) + "\n"


@dataclass(frozen=True)
class TrustedDocuments:
    """The manifest, and whether only its documents may run."""

    documents: Mapping[str, str]
    enforce: bool

    @classmethod
    def load(cls, path: Path | None, enforce: bool) -> TrustedDocuments:
        source = path or default_manifest_path()
        try:
            documents = json.loads(source.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read trusted-documents manifest {source}: {exc}") from exc
        if not isinstance(documents, dict) or any(document_hash(v) != k for k, v in documents.items()):
            raise ValueError(f"{source} is not a manifest of sha256 → document")
        return cls(documents, enforce)

    def resolve(self, request: dict[str, Any]) -> dict[str, Any]:
        """Fill `query` from `documentId`/`persistedQuery`; refuse what may not run."""
        extensions = request.get("extensions")
        persisted = extensions.get("persistedQuery") if isinstance(extensions, dict) else None
        persisted = persisted if isinstance(persisted, dict) else {}
        document_id = request.get("documentId") or persisted.get("sha256Hash")
        query = request.get("query")
        if document_id:
            text = self.documents.get(str(document_id).removeprefix("sha256:"))
            if text is None:
                raise HTTPException(400, UNKNOWN_ID)
            if query and query != text:
                raise HTTPException(400, MISMATCH)
            return {**request, "query": text}
        if self.enforce and isinstance(query, str) and document_hash(query) not in self.documents:
            raise HTTPException(400, UNTRUSTED)
        return request
