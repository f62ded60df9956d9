"""What S3 stored during one history, recorded from S3's own answers.

Every successful PutObject and DeleteObject that reaches the moto server, from any client (the
executor's, the saga's, the API's), is recorded by a botocore ``after-call`` hook
(``world.py``): its ETag, version id, body and time. The model numbers these mutations in the
order S3 performed them (one history runs on one thread), gives each the sequencer S3 would
have given it (the mutation number in hexadecimal: per-key order, as S3's), and keeps, per key,
which version was current after each mutation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Version:
    """One object S3 stored."""

    key: str
    number: int
    """The mutation that stored it."""
    etag: str
    version_id: str | None
    body: bytes

    @property
    def identity(self) -> tuple[str, str | None]:
        return (self.etag, self.version_id)

    def document(self) -> Any:
        """The body's JSON, or ``None`` if it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def customers(self) -> frozenset[str]:
        doc = self.document()
        if isinstance(doc, dict) and isinstance(doc.get("customers"), list):
            return frozenset(str(c).strip().lower() for c in doc["customers"])
        return frozenset()


@dataclass(frozen=True)
class Mutation:
    """One change S3 made to a key, and what its event says."""

    number: int
    key: str
    operation: str
    """``put``, ``delete`` (the key's current object goes away; on a versioned bucket a delete
    marker is created) or ``delete_version`` (one version removed permanently)."""
    at: datetime
    version: Version | None = None
    version_id: str | None = None
    """The version the mutation created (put, delete marker) or removed (delete_version)."""
    delete_marker: bool = False

    @property
    def removal(self) -> bool:
        return self.operation != "put"

    @property
    def sequencer(self) -> str:
        return f"{self.number:016X}"


@dataclass
class _Entry:
    version_id: str | None
    version: Version | None
    """``None``: a delete marker."""


@dataclass
class KeyModel:
    """One key: every version S3 stored, and the current version after each mutation."""

    key: str
    versioned: bool
    stored: dict[tuple[str, str | None], Version] = field(default_factory=dict)
    stack: list[_Entry] = field(default_factory=list)
    current_after: list[tuple[int, Version | None]] = field(default_factory=list)

    @property
    def current(self) -> Version | None:
        return self.stack[-1].version if self.stack else None

    def apply(self, mutation: Mutation) -> None:
        if mutation.operation == "put":
            assert mutation.version is not None
            self.stored[mutation.version.identity] = mutation.version
            entry = _Entry(mutation.version_id, mutation.version)
            if self.versioned:
                self.stack.append(entry)
            else:
                self.stack = [entry]
        elif mutation.operation == "delete":
            if self.versioned:
                # moto creates no delete marker for a key without versions (S3 would): the
                # model follows what the server answered.
                if mutation.delete_marker:
                    self.stack.append(_Entry(mutation.version_id, None))
            else:
                self.stack = []
        else:
            self.stack = [e for e in self.stack if e.version_id != mutation.version_id]
        self.current_after.append((mutation.number, self.current))

    def current_since(self, number: int) -> set[tuple[str, str | None]]:
        """The versions that were current at some moment from mutation ``number`` on."""
        found = set()
        for after, version in self.current_after:
            if after >= number and version is not None:
                found.add(version.identity)
        return found


@dataclass
class S3Model:
    """Everything S3 did to the keys of one history (under its prefix, in its bucket)."""

    bucket: str
    prefix: str
    versioned: bool
    mutations: list[Mutation] = field(default_factory=list)
    keys: dict[str, KeyModel] = field(default_factory=dict)

    def owns(self, bucket: str, key: str) -> bool:
        return bucket == self.bucket and key.startswith(self.prefix)

    def key_model(self, key: str) -> KeyModel:
        if key not in self.keys:
            self.keys[key] = KeyModel(key, self.versioned)
        return self.keys[key]

    def record_put(
        self, key: str, etag: str, version_id: str | None, body: bytes, at: datetime
    ) -> Mutation:
        number = len(self.mutations) + 1
        version = Version(key, number, etag.strip('"'), version_id, body)
        mutation = Mutation(number, key, "put", at, version=version, version_id=version_id)
        return self._apply(mutation)

    def record_delete(
        self,
        key: str,
        *,
        requested_version: str | None,
        version_id: str | None,
        delete_marker: bool,
        at: datetime,
    ) -> Mutation:
        number = len(self.mutations) + 1
        if requested_version is not None:
            mutation = Mutation(number, key, "delete_version", at, version_id=requested_version)
        else:
            mutation = Mutation(
                number, key, "delete", at, version_id=version_id, delete_marker=delete_marker
            )
        return self._apply(mutation)

    def _apply(self, mutation: Mutation) -> Mutation:
        self.mutations.append(mutation)
        self.key_model(mutation.key).apply(mutation)
        return mutation
