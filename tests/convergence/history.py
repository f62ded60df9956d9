"""Seeded histories: what happens to a few keys, generated from one integer.

``generate(seed)`` is a pure function: the same seed always yields the same :class:`History`.
The executor (``executor.py``) draws its delivery decisions (which pending event, which shape,
duplicate or not) from a second random stream seeded from the same integer, so one seed replays
one run; only wall-clock facts (S3's LastModified seconds) can differ between runs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Final, Literal

OpKind = Literal[
    "s3_put",
    "s3_delete",
    "s3_delete_version",
    "write_put",
    "write_delete",
    "api_put",
    "api_delete",
    "read",
    "api_get",
    "api_query",
    "backfill",
    "deliver",
    "redrive",
]
FaultKind = Literal[
    "crash_after_intent",
    "crash_after_s3",
    "crash_before_commit",
    "s3_error",
    "dynamodb_throttle",
    "dynamodb_5xx",
    "dynamodb_dropped",
]
SAGA_FAULTS: Final[tuple[FaultKind, ...]] = (
    "crash_after_intent",
    "crash_after_s3",
    "crash_before_commit",
    "s3_error",
    "dynamodb_throttle",
    "dynamodb_5xx",
    "dynamodb_dropped",
)
# A crash needs the saga's stores in hand: the API builds its own, so it gets AWS errors only.
API_FAULTS: Final[tuple[FaultKind, ...]] = (
    "s3_error",
    "dynamodb_throttle",
    "dynamodb_5xx",
    "dynamodb_dropped",
)
AWS_ERROR_FAULTS: Final[tuple[FaultKind, ...]] = (
    "dynamodb_throttle",
    "dynamodb_5xx",
    "dynamodb_dropped",
)


@dataclass(frozen=True)
class Fault:
    """One injected fault: a crash at a saga step, or AWS errors on matching requests.

    AWS errors let ``skip`` matching requests through, then fail the next ``times`` (the stores
    retry transient errors a few times: small ``times`` are absorbed, large ones exhaust them).
    """

    kind: FaultKind
    skip: int = 0
    times: int = 1

    def describe(self) -> str:
        if self.kind.startswith("crash"):
            return self.kind
        return f"{self.kind}(skip={self.skip}, times={self.times})"


@dataclass(frozen=True)
class Body:
    """What a put writes: a valid document (its customers, a distinct title), or junk."""

    title: str
    customers: tuple[str, ...]
    valid: bool = True

    def describe(self) -> str:
        if not self.valid:
            return f"INVALID<{self.title}>"
        return f"{self.title}{list(self.customers)}"


@dataclass(frozen=True)
class Op:
    """One step of a history."""

    kind: OpKind
    key: int = 0
    body: Body | None = None
    fault: Fault | None = None
    count: int = 0
    """``deliver``: how many pending events at most."""
    customer: str = ""
    """``api_query``: which customer (``a``, ``b`` or ``c``)."""

    def describe(self) -> str:
        parts = [self.kind]
        if self.kind not in ("backfill", "deliver", "redrive", "api_query"):
            parts.append(f"k{self.key}")
        if self.body is not None:
            parts.append(self.body.describe())
        if self.kind == "deliver":
            parts.append(f"up to {self.count}")
        if self.kind == "api_query":
            parts.append(f"customer {self.customer}")
        if self.fault is not None:
            parts.append(f"fault={self.fault.describe()}")
        return " ".join(parts)


@dataclass(frozen=True)
class History:
    """A seeded history: where it runs and what happens."""

    seed: int
    versioned: bool
    """The versioned bucket (delete markers, version ids) or the unversioned one."""
    sequencers: bool
    """Whether the S3 events carry sequencers (AWS) or not (moto, S3-compatible stores)."""
    keys: int
    ops: tuple[Op, ...] = field(default_factory=tuple)

    def describe(self) -> str:
        bucket = "versioned" if self.versioned else "unversioned"
        ordered = "with sequencers" if self.sequencers else "without sequencers"
        lines = [f"seed {self.seed}: {bucket} bucket, {self.keys} keys, events {ordered}"]
        lines += [f"  {n:2d}. {op.describe()}" for n, op in enumerate(self.ops)]
        return "\n".join(lines)


CUSTOMERS: Final = ("a", "b", "c")
MIN_OPS, MAX_OPS = 6, 14


def _body(rng: random.Random, number: int, previous: list[Body]) -> Body:
    roll = rng.random()
    if previous and roll < 0.15:
        return rng.choice(previous)  # the same content again: an old event's ETag is current
    if roll < 0.23:
        return Body(title=f"junk{number}", customers=(), valid=False)
    size = rng.randint(1, len(CUSTOMERS))
    return Body(title=f"v{number}", customers=tuple(sorted(rng.sample(CUSTOMERS, size))))


def _fault(rng: random.Random, kinds: tuple[FaultKind, ...]) -> Fault | None:
    if rng.random() >= 0.35:
        return None
    kind = rng.choice(kinds)
    if kind.startswith("crash"):
        return Fault(kind)
    # Mostly absorbed by the stores' retries; sometimes more failures than they make attempts.
    times = rng.choice((1, 1, 2, 2, 3, 8))
    return Fault(kind, skip=rng.randint(0, 3), times=times)


def generate(seed: int) -> History:
    """The history of ``seed`` (deterministic)."""
    rng = random.Random(seed)
    versioned = rng.random() < 0.5
    keys = rng.randint(1, 3)
    weights: dict[OpKind, float] = {
        "s3_put": 5,
        "s3_delete": 2.5,
        "s3_delete_version": 0.7 if versioned else 0,
        "write_put": 2.5,
        "write_delete": 1,
        "api_put": 1,
        "api_delete": 0.5,
        "read": 2,
        "api_get": 1,
        "api_query": 0.8,
        "backfill": 0.5,
        "deliver": 5,
        "redrive": 0.4,
    }
    kinds = list(weights)
    bodies: list[Body] = []
    ops: list[Op] = []
    for number in range(rng.randint(MIN_OPS, MAX_OPS)):
        kind = rng.choices(kinds, weights=[weights[k] for k in kinds])[0]
        key = rng.randrange(keys)
        if kind in ("s3_put", "write_put", "api_put"):
            body = _body(rng, number, bodies)
            bodies.append(body)
            fault = None
            if kind == "write_put":
                fault = _fault(rng, SAGA_FAULTS)
            elif kind == "api_put":
                fault = _fault(rng, API_FAULTS)
            ops.append(Op(kind, key=key, body=body, fault=fault))
        elif kind == "write_delete":
            ops.append(Op(kind, key=key, fault=_fault(rng, SAGA_FAULTS)))
        elif kind == "api_delete":
            ops.append(Op(kind, key=key, fault=_fault(rng, API_FAULTS)))
        elif kind in ("read", "api_get", "backfill"):
            ops.append(Op(kind, key=key, fault=_fault(rng, AWS_ERROR_FAULTS)))
        elif kind == "api_query":
            ops.append(Op(kind, customer=rng.choice(CUSTOMERS)))
        elif kind == "deliver":
            ops.append(Op(kind, count=rng.randint(1, 4)))
        else:
            ops.append(Op(kind, key=key))
    return History(
        seed=seed,
        versioned=versioned,
        sequencers=rng.random() < 0.75,
        keys=keys,
        ops=tuple(ops),
    )
