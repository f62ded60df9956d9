"""The properties a history must keep, checked as it runs and once it is quiet.

During the run, after every read (fallback reader, API GET) and query (API):

* **stored**: a document returned for key ``k`` is a version S3 stored at ``k`` during the
  history: its (ETag, version id) was recorded from S3's own answer to a PutObject, and its body
  is that version's body (JSON-equal). A query result item names such a version, and the
  customer it was queried for is one of that version's customers.
* **no resurrection**: let ``D(k)`` be the greatest mutation number of a deletion of ``k`` that
  the index has *taken in*: its event was delivered and the handler reported success, or a
  write-through delete reported ``committed``. (Mutation numbers are S3's order of the key's
  changes; the sequencer an event carries is this number, so "after its tombstone" means "after
  the deletion, in S3's per-key sequencer order".) From then on, a read or query of ``k``
  returns nothing, or a version that S3 held as ``k``'s current object at some moment at or
  after mutation ``D(k)``. A version current only before the deletion (a deleted key's old
  content, even with an ETag that is current again elsewhere in its history) is a resurrection.
  A permanent deletion of one version can make an older version current again: that version
  was current after ``D(k)``, so it is allowed, as S3 itself shows it.

After quiescence (every event delivered, duplicates and redrives included, then one
``verify --repair``):

* **converged**: for every key, the index holds S3's current object (same ETag, version id and
  JSON body) when S3's current object is a valid document, and no live document otherwise; no
  write-through marker is left pending; ``verify --repair`` repaired every key it found
  drifting (a key whose current object is invalid is evicted and then reported as one verify
  cannot index: not a divergence); only an event about an invalid document may still fail after
  the redrive.

Any exception that is not one of cachesync's errors (or an injected fault) is a **crash**;
an API answer of 500 (an unhandled error) is a divergence too: cachesync answers every failure
it knows with a named problem (4xx, 502 write-failed when S3 refused a write, 503).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tests.convergence.model import S3Model


@dataclass(frozen=True)
class Divergence:
    """One broken property, with what is needed to replay it."""

    seed: int
    property: str
    step: int
    """The operation's index in the history (-1: at quiescence)."""
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "property": self.property,
            "step": self.step,
            "detail": self.detail,
        }


@dataclass
class Checker:
    """Checks reads and queries against the model; collects divergences."""

    seed: int
    model: S3Model
    deleted_through: dict[str, int] = field(default_factory=dict)
    divergences: list[Divergence] = field(default_factory=list)
    step: int = -1
    checks: int = 0

    def fail(self, prop: str, detail: str) -> None:
        self.divergences.append(Divergence(self.seed, prop, self.step, detail))

    def deletion_taken_in(self, key: str, number: int) -> None:
        """The index has taken in the deletion ``number`` of ``key`` (see the docstring)."""
        self.deleted_through[key] = max(self.deleted_through.get(key, 0), number)

    def check_read(
        self,
        source: str,
        key: str,
        etag: str,
        version_id: str | None,
        document: Any,
    ) -> None:
        """A read returned this version of ``key``."""
        self.checks += 1
        keymodel = self.model.keys.get(key)
        identity = (etag.strip('"'), version_id)
        stored = keymodel.stored.get(identity) if keymodel else None
        if stored is None:
            self.fail(
                "stored",
                f"{source} of {key} returned ETag {etag} version {version_id}, "
                "which S3 never stored there",
            )
            return
        if stored.document() != document:
            self.fail(
                "stored",
                f"{source} of {key} returned a body other than S3's for ETag {etag}: "
                f"{json.dumps(document)[:200]}",
            )
            return
        self._check_not_resurrected(source, key, identity)

    def check_query_item(self, customer: str, key: str, etag: str, version_id: str | None) -> None:
        """A query for ``customer`` listed this version of ``key``."""
        self.checks += 1
        keymodel = self.model.keys.get(key)
        identity = (etag.strip('"'), version_id)
        stored = keymodel.stored.get(identity) if keymodel else None
        if stored is None:
            self.fail(
                "stored",
                f"query for {customer} listed {key} at ETag {etag} version {version_id}, "
                "which S3 never stored there",
            )
            return
        if customer not in stored.customers():
            self.fail(
                "stored",
                f"query for {customer} listed {key} at a version naming only "
                f"{sorted(stored.customers())}",
            )
            return
        self._check_not_resurrected(f"query for {customer}", key, identity)

    def _check_not_resurrected(
        self, source: str, key: str, identity: tuple[str, str | None]
    ) -> None:
        deleted = self.deleted_through.get(key)
        if deleted is None:
            return
        allowed = self.model.key_model(key).current_since(deleted)
        if identity not in allowed:
            self.fail(
                "no_resurrection",
                f"{source} of {key} returned ETag {identity[0]} version {identity[1]} after the "
                f"index took in deletion #{deleted}; that version was not current since",
            )
