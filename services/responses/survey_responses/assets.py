"""Static assets compressed once, then served from memory.

Nearly every person answering is a first visitor (one survey, one phone), so the DSFR style
sheets are downloaded on almost every survey. Gzip'ing the 176 KB DSFR core for each of them
would cost the service more CPU than the survey itself; here each file is compressed (level 9)
on its first request only.
"""

from __future__ import annotations

import gzip
from collections import OrderedDict
from pathlib import Path

from starlette.datastructures import Headers
from starlette.responses import FileResponse, Response
from starlette.types import Scope

from plumbing.assets import CachedStaticFiles

MAX_CACHED_FILES = 64  # the pages use ten or so; a crawler fetching the whole DSFR evicts itself
MAX_CACHED_BYTES = 512 * 1024


class CompressedStaticFiles(CachedStaticFiles):
    def __init__(self, *, directory: Path) -> None:
        super().__init__(directory=directory)
        self._cache: OrderedDict[str, tuple[bytes, bytes | None]] = OrderedDict()

    async def get_response(self, path: str, scope: Scope) -> Response:
        response: Response = await super().get_response(path, scope)
        if response.status_code != 200 or not isinstance(response, FileResponse):
            return response  # 304, 404, ranges: as StaticFiles answers them
        variants = self._variants(str(response.path))
        if variants is None:
            return response
        plain, compressed = variants
        headers = {
            name: value for name, value in response.headers.items()
            if name not in {"content-length", "etag"}
        }  # fmt: skip
        # Weak: the same tag for both encodings, and StaticFiles compares tags without "W/".
        headers["etag"] = f"W/{response.headers['etag']}"
        headers["vary"] = "Accept-Encoding"
        if compressed is not None and "gzip" in Headers(scope=scope).get("accept-encoding", ""):
            headers["content-encoding"] = "gzip"
            return Response(compressed, headers=headers)
        return Response(plain, headers=headers)

    def _variants(self, full_path: str) -> tuple[bytes, bytes | None] | None:
        if full_path in self._cache:
            self._cache.move_to_end(full_path)
            return self._cache[full_path]
        plain = Path(full_path).read_bytes()
        if len(plain) > MAX_CACHED_BYTES:
            return None
        compressed: bytes | None = gzip.compress(plain, compresslevel=9, mtime=0)
        if compressed is not None and len(compressed) > 0.95 * len(plain):
            compressed = None  # fonts and images are compressed already
        variants = (plain, compressed)
        self._cache[full_path] = variants
        if len(self._cache) > MAX_CACHED_FILES:
            self._cache.popitem(last=False)
        return variants
