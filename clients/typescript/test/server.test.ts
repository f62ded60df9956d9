// The client against the real query API server. tests/integration/test_typescript_client.py
// starts the server, creates the keys and documents, and runs this file with these variables:
// every test needs them (a missing variable fails, it does not skip).
import assert from "node:assert/strict";
import { createServer, type AddressInfo } from "node:net";
import { test } from "node:test";

import {
  ApiAuthenticationError,
  ApiConnectionError,
  ApiForbiddenError,
  ApiNotFoundError,
  ApiRateLimitedError,
  ApiRequestError,
  CacheSyncClient,
  type BulkItem,
} from "../src/index.js";

function required(name: string): string {
  const value = process.env[name];
  assert.ok(value, `${name} must be set (run through tests/integration/test_typescript_client.py)`);
  return value;
}

const url = required("CACHESYNC_API_URL");
const writer = new CacheSyncClient(url, required("CACHESYNC_API_KEY"), { timeoutMs: 10_000 });
const restricted = new CacheSyncClient(url, required("CACHESYNC_API_KEY_RESTRICTED"), { timeoutMs: 10_000 });
const customer = required("TS_TEST_CUSTOMER");
const seeded = Number(required("TS_TEST_SEEDED"));

test("health answers", async () => {
  // Scenario: health
  assert.equal((await writer.health()).index_reachable, true);
});

test("a document round-trips through put, get and delete", async () => {
  // Scenario: round-trip
  const key = `ts/${customer}/a b+c.json`;
  const body = {
    object_type: "change",
    change_id: "CHG-TS-1",
    title: "from TypeScript",
    customers: [customer],
    status: "approved",
    modified_at: "2026-06-01T00:00:00Z",
  };
  const idempotencyKey = writer.newIdempotencyKey();
  const first = await writer.put(key, body, { idempotencyKey });
  const replay = await writer.put(key, body, { idempotencyKey });
  assert.equal(first.index, "committed");
  assert.deepEqual(replay, first);
  const read = await writer.get(key);
  assert.ok(read);
  assert.equal(read.key, key);
  assert.equal(read.etag, first.etag);
  assert.equal((read.document as { change_id: string }).change_id, "CHG-TS-1");
  assert.equal(await writer.get(key, { ifNoneMatch: read.etag }), null);
  assert.equal((await writer.delete(key)).operation, "delete");
  await assert.rejects(writer.get(key), ApiNotFoundError);
});

test("documents() walks every page once, newest first", async () => {
  // Scenario: pagination
  const keys: string[] = [];
  for await (const item of writer.documents({ customer, since: "2026-01-01", until: "2026-06-01", limit: 4 })) {
    keys.push(item.key!);
  }
  const pages: number[] = [];
  for await (const page of writer.pages({ customer, since: "2026-01-01", until: "2026-06-01", limit: 4 })) {
    pages.push(page.count);
  }
  assert.equal(keys.length, seeded);
  assert.equal(new Set(keys).size, seeded);
  assert.deepEqual(keys, [...keys].sort().reverse());
  assert.equal(pages.reduce((a, b) => a + b, 0), seeded);
  assert.ok(pages.slice(0, -1).every((count) => count === 4));
});

test("refusals are errors carrying the server's reason", async () => {
  // Scenario: refusals
  await assert.rejects(restricted.query({ customer: "globex" }), (error: unknown) => {
    assert.ok(error instanceof ApiForbiddenError);
    assert.match(error.detail ?? "", /globex/);
    return true;
  });
  await assert.rejects(restricted.query({ fields: ["body"] }), ApiRequestError);
  await assert.rejects(restricted.put("ts/x.json", {}), ApiForbiddenError);
  const unknown = new CacheSyncClient(url, `csk_nosuchkey_${"x".repeat(40)}`);
  await assert.rejects(unknown.query(), (error: unknown) => error instanceof ApiAuthenticationError && error.status === 401);
});

async function closedPort(): Promise<number> {
  // A port that was free a moment ago (fetch refuses "bad ports" such as 9 before connecting).
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

test("an unreachable server is a connection error after bounded retries", async () => {
  // Scenario: unreachable
  const slept: number[] = [];
  const nobody = new CacheSyncClient(`http://127.0.0.1:${await closedPort()}`, "csk_a_b", {
    retry: { attempts: 3, baseDelayMs: 1 },
    sleep: async (ms) => {
      slept.push(ms);
    },
  });
  await assert.rejects(nobody.health(), (error: unknown) => error instanceof ApiConnectionError && !error.requestSent);
  assert.equal(slept.length, 2);
});

function changeDocument(id: string): Record<string, unknown> {
  return {
    object_type: "change",
    change_id: id,
    title: `bulk ${id}`,
    customers: [customer],
    status: "approved",
    modified_at: "2026-06-01T00:00:00Z",
  };
}

test("bulk reports every item typed, and replays with idempotency keys", async () => {
  // Scenario: bulk-mixed
  const run = writer.newIdempotencyKey().slice(0, 8);
  const prefix = `ts-bulk/${run}`;
  await writer.put(`${prefix}/old.json`, changeDocument("CHG-TS-OLD"));
  const items: BulkItem[] = [
    { op: "put", key: `${prefix}/a.json`, document: changeDocument("CHG-TS-BA"), idempotency_key: `${run}-a` },
    { op: "put", key: `${prefix}/bad.json`, document: { object_type: "change" } },
    { op: "put", key: `${prefix}/b.json`, document: changeDocument("CHG-TS-BB"), idempotency_key: `${run}-b` },
    { op: "delete", key: `${prefix}/old.json`, idempotency_key: `${run}-old` },
  ];
  const first = await writer.bulk(items);
  const read = await writer.get(`${prefix}/b.json`);
  const changed = await writer.put(`${prefix}/b.json`, changeDocument("CHG-TS-BB2"));
  const again = await writer.bulk([items[0]!, items[2]!, items[3]!]);
  assert.deepEqual(
    first.items.map((item) => [item.index, item.op, item.status]),
    [
      [0, "put", 200],
      [1, "put", 422],
      [2, "put", 200],
      [3, "delete", 200],
    ],
  );
  assert.deepEqual([first.succeeded, first.failed], [3, 1]);
  assert.equal(first.items[1]!.problem?.type, "urn:cachesync:problem:invalid-document");
  assert.equal(first.items[1]!.receipt ?? null, null);
  const receipts = first.items.filter((item) => item.receipt).map((item) => item.receipt);
  assert.equal(receipts[0]!.index, "committed");
  assert.ok(read);
  assert.equal(read.etag, receipts[1]!.etag);
  assert.equal(again.failed, 0);
  assert.deepEqual(
    again.items.map((item) => item.receipt),
    receipts,
  );
  const after = await writer.get(`${prefix}/b.json`);
  assert.ok(after);
  assert.equal(after.etag, changed.etag);
  assert.equal((after.document as { change_id: string }).change_id, "CHG-TS-BB2");
});

test("more than 100 bulk items is the server's 413", async () => {
  // Scenario: bulk-too-many
  const items: BulkItem[] = Array.from({ length: 101 }, (_, n) => ({ op: "delete", key: `ts-bulk/${n}.json` }));
  await assert.rejects(writer.bulk(items), (error: unknown) => {
    assert.ok(error instanceof ApiRequestError);
    assert.equal(error.status, 413);
    assert.match(error.detail ?? "", /at most 100/);
    return true;
  });
});

test("a key requiring signatures works only through a signing client", async () => {
  // Scenario: signed
  const key = required("CACHESYNC_API_KEY_SIGNED");
  const signed = new CacheSyncClient(url, key, { timeoutMs: 10_000, signingSecret: required("CACHESYNC_API_SIGNING_SECRET") });
  const unsigned = new CacheSyncClient(url, key, { timeoutMs: 10_000 });
  const wrong = new CacheSyncClient(url, key, { timeoutMs: 10_000, signingSecret: `css_${"0".repeat(64)}` });
  const path = `ts-signed/${signed.newIdempotencyKey().slice(0, 8)}/a b+c.json`;
  const receipt = await signed.put(path, changeDocument("CHG-TS-SIGNED"));
  const bulk = await signed.bulk([{ op: "delete", key: path }]);
  const page = await signed.query({ customer: "acme", status: ["approved", "draft"], limit: 2 });
  assert.equal(receipt.index, "committed");
  assert.equal(bulk.failed, 0);
  assert.ok(page.count <= 2);
  for (const refused of [unsigned, wrong]) {
    await assert.rejects(refused.query(), (error: unknown) => error instanceof ApiAuthenticationError && error.status === 401);
  }
});

test("a 429 is retried after Retry-After", async () => {
  // Scenario: rate-limited-retry
  const key = required("CACHESYNC_API_KEY_LIMITED");
  const waited: number[] = [];
  const patient = new CacheSyncClient(url, key, {
    timeoutMs: 10_000,
    retry: { attempts: 4 },
    sleep: async (ms) => {
      waited.push(ms);
      await new Promise((resolve) => setTimeout(resolve, ms));
    },
  });
  const once = new CacheSyncClient(url, key, { timeoutMs: 10_000, retry: { attempts: 1 } });
  const refusals: ApiRateLimitedError[] = [];
  for (let n = 0; n < 10 && refusals.length === 0; n++) {
    try {
      await once.query({ limit: 1 });
    } catch (error) {
      if (!(error instanceof ApiRateLimitedError)) throw error;
      refusals.push(error);
    }
  }
  const pages = [];
  while (waited.length === 0 && pages.length < 10) pages.push(await patient.query({ limit: 1 }));
  assert.equal(refusals.length, 1);
  assert.equal(refusals[0]!.status, 429);
  assert.ok((refusals[0]!.retryAfter ?? 0) >= 1, `Retry-After ${refusals[0]!.retryAfter}`);
  assert.ok(waited.length > 0, "ten quick requests never met the limit");
  assert.ok(waited.every((ms) => ms >= 1000), `waited ${waited.join(", ")} ms`);
  assert.ok(pages.every((page) => page.count <= 1));
});
