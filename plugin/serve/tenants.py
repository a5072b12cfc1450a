"""Multi-tenancy for the HTTP service: one API key, one tenant, enforced as a metadata filter.

Every passage carries its tenant in a metadata key (default ``tenant``; ingest indexes it as a filter
field like any other key, :mod:`lucerag.index.metadata`). The server maps the request's API key to
its tenant and ANDs ``{"term": {<field>: <tenant>}}`` into the request's own ``where`` before the
search, so both views rank only that tenant's passages (a request's filter can narrow its tenant's
passages, never widen them: ``or``/``not`` inside it stay under the AND). The pagination cursor
records the filter, so a cursor issued to one tenant is refused for another.

The tenants file (``lucerag serve --tenants FILE`` or ``$LUCERAG_TENANTS``) is TOML::

    field = "tenant"                    # optional; the metadata key holding the tenant
    [keys]
    acme = "k3y-of-acme-at-least-16-chars"
    globex = "sha256:9f86d081884c7d65..."   # or the SHA-256 of the key, so the file holds no secret

Keys are compared as SHA-256 digests in constant time against every tenant's digest.
"""

from __future__ import annotations

import hashlib
import hmac
import tomllib
from pathlib import Path
from typing import Any, Mapping

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from lucerag.errors import ConfigError

MIN_KEY_CHARS = 16
_SHA = "sha256:"


def digest(key: str) -> str:
    """The hex SHA-256 of an API key (what a tenants file may hold instead of the key)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class Tenants(BaseModel):
    """Tenant name -> API key (or ``sha256:<hex>`` of it), and the metadata key holding the tenant.

    Raises :class:`~pydantic.ValidationError` (``load`` turns it into ConfigError naming the file)
    for an empty table, a key shorter than 16 characters, a malformed digest, or one key given to
    two tenants."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str = Field("tenant", min_length=1, description="metadata key holding each passage's tenant")
    keys: dict[str, str] = Field(..., description="tenant -> API key or sha256:<hex> of it")

    @field_validator("keys")
    @classmethod
    def _keys(cls, keys: dict[str, str]) -> dict[str, str]:
        if not keys:
            raise ValueError("no tenant: add `tenant = \"key\"` lines under [keys]")
        digests: dict[str, str] = {}
        for tenant, key in keys.items():
            if not tenant.strip():
                raise ValueError("a tenant name is empty")
            if key.startswith(_SHA):
                hexed = key[len(_SHA):].lower()
                if len(hexed) != 64 or any(c not in "0123456789abcdef" for c in hexed):
                    raise ValueError(f"keys.{tenant}: sha256: must be followed by 64 hex digits")
            elif len(key) < MIN_KEY_CHARS:
                raise ValueError(f"keys.{tenant}: an API key needs at least {MIN_KEY_CHARS} characters")
            else:
                hexed = digest(key)
            if hexed in digests:
                raise ValueError(f"keys.{tenant}: the same key as tenant {digests[hexed]!r} (one key, one tenant)")
            digests[hexed] = tenant
        return keys

    _table: dict[str, str] = PrivateAttr(default_factory=dict)   # tenant -> hex digest of its key

    def model_post_init(self, context: Any) -> None:
        self._table = {t: (k[len(_SHA):].lower() if k.startswith(_SHA) else digest(k)) for t, k in self.keys.items()}

    @classmethod
    def load(cls, path: str | Path) -> "Tenants":
        """Read a tenants file. Raises ConfigError naming the file (and the entry) when it is
        missing, not TOML, or invalid."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: tenants file not found") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not a TOML tenants file ({exc})") from None
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}" for e in exc.errors())
            raise ConfigError(f"{path}: {problems}") from None

    def tenant_for(self, key: str) -> str | None:
        """The tenant whose key this is, or None. Compares with every tenant's digest (no early exit)."""
        given = digest(key)
        found = None
        for tenant, expected in self._table.items():
            if hmac.compare_digest(given, expected):
                found = tenant
        return found

    def scope(self, tenant: str, where: Mapping[str, Any] | None) -> dict[str, Any]:
        """``where`` restricted to ``tenant``'s passages."""
        own = {"term": {self.field: tenant}}
        return own if where is None else {"and": [own, dict(where)]}

    def check_index(self, fields: Mapping[str, list[str]] | None, index: str) -> None:
        """Raise ConfigError unless ``index`` has the tenant key as a keyword filter field
        (``fields``: the index manifest's ``metadata_fields``)."""
        kinds = (fields or {}).get(self.field)
        if kinds is None or "keyword" not in kinds:
            have = "has no metadata filter fields" if fields is None else (
                f"has no passage with a string metadata key {self.field!r}")
            raise ConfigError(f"multi-tenancy: {index} {have}. Index each document with its tenant in "
                              f"metadata[{self.field!r}] (or set `field` in the tenants file)")
