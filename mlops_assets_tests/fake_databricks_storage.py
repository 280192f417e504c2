"""The storage half of the stand-in control plane (``fake_databricks.py``): DBFS 2.0 over ``<root>/dbfs`` and
the Files API over ``<root>/Volumes``, answering as Databricks does (404 + ``error_code`` for missing paths)."""

from __future__ import annotations

import base64
import re
import shutil
from email.utils import formatdate
from pathlib import Path
from typing import Any

DBFS_READ_DEFAULT = 512 * 1024
DBFS_READ_MAX = 1024 * 1024


class ApiError(Exception):
    def __init__(self, status: int, error_code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error_code, self.message = status, error_code, message


class FakeStorage:
    """DBFS and Files API handlers; ``dbfs_root`` and ``volumes_root`` are set by the server."""

    dbfs_root: Path
    volumes_root: Path

    # ---- DBFS 2.0
    def _dbfs_path(self, path: str | None) -> Path:
        if not path or not path.removeprefix("dbfs:").startswith("/"):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Path must be absolute: {path}")
        return self.dbfs_root / path.removeprefix("dbfs:").lstrip("/")

    @staticmethod
    def _missing(path: str) -> ApiError:
        return ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"No file or directory exists on path {path}.")

    def _status(self, local: Path) -> dict[str, Any]:
        stat = local.stat()
        return {
            "path": "/" + str(local.relative_to(self.dbfs_root)).removeprefix("."),
            "is_dir": local.is_dir(),
            "file_size": 0 if local.is_dir() else stat.st_size,
            "modification_time": int(stat.st_mtime * 1000),
        }

    def _dbfs(self, method: str, action: str, query: dict[str, str], body: dict[str, Any]):
        path = body.get("path") if method == "POST" else query.get("path")
        local = self._dbfs_path(path)
        if (method, action) == ("POST", "mkdirs"):
            if local.is_file():
                raise ApiError(400, "RESOURCE_ALREADY_EXISTS", f"A file exists at {path}")
            local.mkdir(parents=True, exist_ok=True)
            return 200, {}, {}
        if (method, action) == ("POST", "put"):
            if local.exists() and not body.get("overwrite"):
                raise ApiError(
                    400, "RESOURCE_ALREADY_EXISTS", f"A file or directory already exists at {path}"
                )
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(base64.b64decode(body.get("contents") or ""))
            return 200, {}, {}
        if not local.exists() and action != "delete":
            raise self._missing(str(path))
        if (method, action) == ("GET", "get-status"):
            return 200, self._status(local), {}
        if (method, action) == ("GET", "read"):
            if local.is_dir():
                raise ApiError(400, "INVALID_PARAMETER_VALUE", f"{path} is a directory")
            offset = int(query.get("offset", 0))
            length = min(int(query.get("length", DBFS_READ_DEFAULT)), DBFS_READ_MAX)
            with open(local, "rb") as f:
                f.seek(offset)
                data = f.read(length)
            return 200, {"bytes_read": len(data), "data": base64.b64encode(data).decode()}, {}
        if (method, action) == ("GET", "list"):
            entries = sorted(local.iterdir()) if local.is_dir() else [local]
            return 200, {"files": [self._status(e) for e in entries]}, {}
        if (method, action) == ("POST", "delete"):
            if not local.exists():
                return 200, {}, {}
            if local.is_dir():
                if any(local.iterdir()) and not body.get("recursive"):
                    raise ApiError(
                        400, "IO_ERROR", f"Directory {path} is not empty; set recursive to delete it"
                    )
                shutil.rmtree(local)
            else:
                local.unlink()
            return 200, {}, {}
        raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{method} /api/2.0/dbfs/{action}'")

    # ---- Files API (Unity Catalog volumes)
    def _volume_path(self, path: str) -> Path:
        if not path.startswith("/Volumes/"):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Path must be under /Volumes/: {path}")
        return self.volumes_root / path.removeprefix("/Volumes/")

    @staticmethod
    def _not_found(path: str) -> ApiError:
        return ApiError(404, "NOT_FOUND", f"The file or directory {path} does not exist.")

    def _files(self, method: str, path: str, query: dict[str, str], raw: bytes, range_header: str | None):
        local = self._volume_path(path)
        if method == "PUT":
            if local.exists() and query.get("overwrite", "true").lower() == "false":
                raise ApiError(409, "ALREADY_EXISTS", f"The file {path} already exists.")
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(raw)
            return 204, b"", {}
        if not local.is_file():
            raise self._not_found(path)
        headers = {"Last-Modified": formatdate(local.stat().st_mtime, usegmt=True)}
        if method == "HEAD":
            return 200, b"", {**headers, "Content-Length": str(local.stat().st_size)}
        if method == "GET":
            data = local.read_bytes()
            start = int(m.group(1)) if range_header and (m := re.match(r"bytes=(\d+)-", range_header)) else 0
            return (206 if start else 200), data[start:], headers
        if method == "DELETE":
            local.unlink()
            return 204, b"", {}
        raise ApiError(405, "METHOD_NOT_ALLOWED", f"{method} on a file")

    def _directories(self, method: str, path: str):
        local = self._volume_path(path.rstrip("/") or "/")
        if method == "PUT":
            local.mkdir(parents=True, exist_ok=True)
            return 204, b"", {}
        if not local.is_dir():
            raise self._not_found(path)
        if method == "HEAD":
            return 200, b"", {}
        if method == "GET":
            contents = [
                {
                    "path": f"{path.rstrip('/')}/{e.name}",
                    "name": e.name,
                    "is_directory": e.is_dir(),
                    **({} if e.is_dir() else {"file_size": e.stat().st_size}),
                    "last_modified": int(e.stat().st_mtime * 1000),
                }
                for e in sorted(local.iterdir())
            ]
            return 200, {"contents": contents}, {}
        if method == "DELETE":
            if any(local.iterdir()):
                raise ApiError(409, "DIRECTORY_NOT_EMPTY", f"The directory {path} is not empty.")
            local.rmdir()
            return 204, b"", {}
        raise ApiError(405, "METHOD_NOT_ALLOWED", f"{method} on a directory")
