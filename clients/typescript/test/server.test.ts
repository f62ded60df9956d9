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
  ApiRequestError,
  CacheSyncClient,
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
  assert.equal((await writer.health()).index_reachable, true);
});

test("a document round-trips through put, get and delete", async () => {
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
