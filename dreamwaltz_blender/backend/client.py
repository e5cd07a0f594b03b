# SPDX-License-Identifier: GPL-3.0-or-later
"""HTTP client for ``dreamwaltz serve`` (standard library only: runs in Blender's Python)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


class BackendError(Exception):
    """A failure talking to the backend, with what to do about it."""

    def __init__(self, message: str, hint: str = "", code: str = "backend"):
        super().__init__(f"{message} {hint}".strip())
        self.message, self.hint, self.code = message, hint, code


def is_local(url: str) -> bool:
    return (urllib.parse.urlparse(url).hostname or "") in LOCAL_HOSTS


class BackendClient:
    def __init__(self, url: str, token: str, timeout: float = 5.0, online_access: bool = True):
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        if not is_local(self.url) and not online_access:
            raise BackendError(
                f"Blender's online access is off, so the remote backend {self.url} is not contacted.",
                "Allow online access in Preferences > System > Network, or use a local backend.",
                code="offline",
            )

    def _request(self, method: str, path: str, body=None, raw: bool = False, timeout=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout or self.timeout) as resp:
                payload = resp.read()
        except urllib.error.HTTPError as err:
            raise self._http_error(err) from None
        except (TimeoutError, urllib.error.URLError, ConnectionError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise BackendError(
                f"The backend at {self.url} does not answer ({reason}).",
                "Start it (Local mode starts it for you; remotely run 'dreamwaltz serve'), "
                "or check the URL in the add-on preferences.",
                code="unreachable",
            ) from None
        return payload if raw else json.loads(payload.decode() or "null")

    @staticmethod
    def _http_error(err: urllib.error.HTTPError) -> BackendError:
        try:
            detail = json.loads(err.read().decode()).get("detail")
        except Exception:  # noqa: BLE001 - any unreadable body
            detail = None
        if isinstance(detail, dict):
            return BackendError(detail.get("message", str(err)), detail.get("hint", ""), detail.get("code", "http"))
        if isinstance(detail, list):  # request validation: say which field is wrong
            msgs = "; ".join(str(d.get("msg", d)).removeprefix("Value error, ") for d in detail)
            return BackendError(msgs, "", "invalid_request")
        if err.code == 401:
            return BackendError(
                "The backend refused the token.", "Check the token in the add-on preferences.", "unauthorized"
            )
        return BackendError(f"The backend answered HTTP {err.code}.", "", "http")

    def health(self, timeout: float = 3.0) -> dict:
        return self._request("GET", "/health", timeout=timeout)

    def submit(self, spec: dict) -> dict:
        return self._request("POST", "/jobs", spec)

    def status(self, job_id: str) -> dict:
        return self._request("GET", f"/jobs/{job_id}")

    def events(self, job_id: str, after: int = 0) -> list:
        return self._request("GET", f"/jobs/{job_id}/events?after={int(after)}")

    def cancel(self, job_id: str) -> dict:
        return self._request("POST", f"/jobs/{job_id}/cancel")

    def preview(self, job_id: str) -> bytes:
        return self._request("GET", f"/jobs/{job_id}/preview", raw=True)

    def download_result(self, job_id: str, path: Path) -> Path:
        payload = self._request("GET", f"/jobs/{job_id}/result", raw=True, timeout=max(self.timeout, 120))
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        tmp.write_bytes(payload)
        tmp.replace(path)
        return path
