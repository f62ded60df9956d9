// The client without a server: errors, retries, waits, paths (a scripted fetch).
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  ApiAuthenticationError,
  ApiConnectionError,
  ApiForbiddenError,
  ApiNotFoundError,
  ApiRateLimitedError,
  ApiRequestError,
  ApiServerError,
  CacheSyncClient,
} from "../src/index.js";

type Answer = Response | Error;
const HEALTH = { status: "ok", version: "1", index_reachable: true, cache: { hits: 0, misses: 0, hit_ratio: null } };
const RECEIPT = { operation: "put", bucket: "b", key: "k", index: "committed" };

function json(status: number, body?: unknown, headers: Record<string, string> = {}): Response {
  return new Response(body === undefined ? null : JSON.stringify(body), { status, headers });
}

function problem(status: number, detail = "because"): Response {
  return json(status, { type: `urn:cachesync:problem:${status}`, title: "t", status, detail });
}

function scripted(...answers: Answer[]) {
  const sent: { url: string; init: RequestInit }[] = [];
  const slept: number[] = [];
  const fake: typeof fetch = async (url, init) => {
    sent.push({ url: String(url), init: init ?? {} });
    const answer = answers.shift();
    if (answer === undefined) throw new Error("no more answers");
    if (answer instanceof Error) throw answer;
    return answer;
  };
  const client = new CacheSyncClient("http://api.test/", "csk_id_secret", {
    fetch: fake,
    sleep: async (ms) => {
      slept.push(ms);
    },
    random: () => 0.5,
    retry: { attempts: 4, baseDelayMs: 100, maxDelayMs: 5000 },
  });
  return { client, sent, slept };
}

function refused(): Error {
  return new TypeError("fetch failed", { cause: { code: "ECONNREFUSED" } });
}

function reset(): Error {
  return new TypeError("fetch failed", { cause: { code: "ECONNRESET" } });
}

for (const [status, Kind] of [
  [400, ApiRequestError],
  [401, ApiAuthenticationError],
  [403, ApiForbiddenError],
  [404, ApiNotFoundError],
  [422, ApiRequestError],
  [500, ApiServerError],
] as const) {
  test(`a ${status} is ${Kind.name} with the server's reason, not retried`, async () => {
    const { client, sent } = scripted(problem(status, "the reason"));
    await assert.rejects(client.get("a.json"), (error: unknown) => {
      assert.ok(error instanceof Kind);
      assert.equal(error.status, status);
      assert.equal(error.detail, "the reason");
      assert.equal(error.problemType, `urn:cachesync:problem:${status}`);
      return true;
    });
    assert.equal(sent.length, 1);
  });
}

test("a read is retried on 503 with growing jittered waits", async () => {
  const { client, slept } = scripted(problem(503), problem(503), problem(502), json(200, HEALTH));
  const health = await client.health();
  assert.equal(health.status, "ok");
  // Full jitter: half of 100, 200, 400 ms with random() fixed at 0.5.
  assert.deepEqual(slept, [50, 100, 200]);
});

test("retries are bounded", async () => {
  const { client, sent } = scripted(...Array.from({ length: 4 }, () => problem(503)));
  await assert.rejects(client.health(), ApiServerError);
  assert.equal(sent.length, 4);
});

test("Retry-After is honoured in seconds and as a date", async () => {
  const inFour = new Date(Date.now() + 4000).toUTCString();
  for (const [value, seconds] of [["2", 2], [inFour, 4]] as const) {
    const { client, slept } = scripted(json(429, { detail: "slow down" }, { "Retry-After": value }), json(200, HEALTH));
    await client.health();
    assert.equal(slept.length, 1);
    assert.ok(slept[0]! >= seconds * 1000 - 1100 && slept[0]! <= seconds * 1000 + 100, `waited ${slept[0]}`);
  }
});

test("a Retry-After beyond the longest wait ends the retries", async () => {
  const { client, sent } = scripted(json(429, { detail: "later" }, { "Retry-After": "60" }));
  await assert.rejects(client.health(), (error: unknown) => error instanceof ApiRateLimitedError && error.retryAfter === 60);
  assert.equal(sent.length, 1);
});

test("a write without idempotency key is not repeated after a lost answer", async () => {
  const { client, sent } = scripted(reset(), json(200, RECEIPT));
  await assert.rejects(client.put("k", { a: 1 }), (error: unknown) => error instanceof ApiConnectionError && error.requestSent);
  assert.equal(sent.length, 1);
});

test("a write with idempotency key is repeated with the same key", async () => {
  const { client, sent } = scripted(reset(), problem(503), json(200, RECEIPT));
  const receipt = await client.put("k", { a: 1 }, { idempotencyKey: "idem-1" });
  assert.equal(receipt.index, "committed");
  assert.deepEqual(
    sent.map(({ init }) => (init.headers as Record<string, string>)["Idempotency-Key"]),
    ["idem-1", "idem-1", "idem-1"],
  );
});

test("a write refused before it was sent is repeated", async () => {
  const { client, sent } = scripted(refused(), json(200, RECEIPT));
  assert.equal((await client.delete("k")).index, "committed");
  assert.equal(sent.length, 2);
});

test("a not-modified read is null, sends a quoted ETag and escapes the key", async () => {
  const { client, sent } = scripted(new Response(null, { status: 304 }));
  assert.equal(await client.get("changes/a b+c.json", { ifNoneMatch: "abc" }), null);
  assert.equal((sent[0]!.init.headers as Record<string, string>)["If-None-Match"], '"abc"');
  assert.equal(sent[0]!.url, "http://api.test/v1/documents/changes/a%20b%2Bc.json");
});

test("query parameters repeat statuses and join fields", async () => {
  const { client, sent } = scripted(json(200, { items: [], count: 0, progress: { index: "StatusTimeIndex", period: null, reached: null } }));
  await client.query({ status: ["draft", "approved"], fields: ["key", "title"], since: "2026-01-01", limit: 5 });
  const url = sent[0]!.url;
  assert.ok(url.includes("status=draft&status=approved"), url);
  assert.ok(url.includes("fields=key%2Ctitle"), url);
  assert.ok(url.includes("limit=5"), url);
});

test("signing: the worked example of docs/API.md, byte for byte as the server computes it", async () => {
  const { canonicalRequest, signature } = await import("../src/signing.js");
  const query: [string, string][] = [["status", "draft"], ["customer", "acme"], ["status", "approved"], ["limit", "10"]];
  const canonical = canonicalRequest("GET", "/v1/documents", query, "1780000000", "3f2b8c1d9e7a4b6f", "");
  assert.equal(
    canonical,
    "CACHESYNC-HMAC-SHA256\nGET\n/v1/documents\ncustomer=acme&limit=10&status=approved&status=draft\n1780000000\n3f2b8c1d9e7a4b6f\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  );
  const secret = "css_427eae70f6e9572ecdf965569825db77d139967c42459fff07399850dd053bc6";
  assert.equal(signature(secret, canonical), "v1=40793a969ad4773fa1d9fafa2a0fca1541758e4fce93f41c862b7b67d283a6a2");
  // A path written two ways is one canonical request; "+" in a path stays a plus.
  assert.equal(
    canonicalRequest("PUT", "/v1/documents/a%20b+c.json", [], "1", "n", ""),
    canonicalRequest("PUT", "/v1/documents/a b%2Bc.json", [], "1", "n", ""),
  );
  assert.ok(canonicalRequest("PUT", "/v1/documents/a b+c(1).json", [], "1", "n", "").includes("/v1/documents/a%20b%2Bc%281%29.json"));
});

test("a signing client signs every attempt with a fresh nonce", async () => {
  const sent: Record<string, string>[] = [];
  const answers = [problem(503), json(200, HEALTH)];
  const client = new CacheSyncClient("http://api.test", "csk_k_s", {
    signingSecret: "css_secret",
    fetch: async (_url, init) => {
      sent.push(init?.headers as Record<string, string>);
      return answers.shift()!;
    },
    sleep: async () => {},
  });
  await client.health();
  assert.equal(sent.length, 2);
  assert.notEqual(sent[0]!["X-Cachesync-Nonce"], sent[1]!["X-Cachesync-Nonce"]);
  assert.match(sent[0]!["X-Cachesync-Signature"]!, /^v1=[0-9a-f]{64}$/);
});

test("signing: the shared vector of awkward characters (same bytes as the Python tests)", async () => {
  const { canonicalRequest, signature } = await import("../src/signing.js");
  const canonical = canonicalRequest(
    "GET",
    "/v1/documents/caf%C3%A9/a~b*c.json",
    [["q", "x y+z"], ["name", "~*é"], ["a b", "1"]],
    "1780000000",
    "vector-nonce-0001",
    "héllo",
  );
  assert.equal(
    canonical,
    "CACHESYNC-HMAC-SHA256\nGET\n/v1/documents/caf%C3%A9/a~b%2Ac.json\na%20b=1&name=~%2A%C3%A9&q=x%20y%2Bz\n1780000000\nvector-nonce-0001\n3c48591d8d098a4538f5e013dfcf406e948eac4d3277b10bf614e295d6068179",
  );
  assert.equal(signature("css_vector", canonical), "v1=2a31973549c31cf92172c195a4ff16d3a4175fab53512421af2a1e5cc2f0a4b8");
});

test("a bulk is repeated only when every item has an idempotency key; a 207 resolves", async () => {
  const answer = {
    items: [
      { index: 0, key: "k", op: "put", status: 200, receipt: RECEIPT, problem: null },
      { index: 1, key: "o", op: "delete", status: 404, receipt: null, problem: { type: "t", title: "t", status: 404, detail: "d" } },
    ],
    succeeded: 1,
    failed: 1,
  };
  const put = { op: "put" as const, key: "k", document: { a: 1 }, idempotency_key: "i-1" };
  const partly = scripted(reset(), json(207, answer));
  await assert.rejects(partly.client.bulk([put, { op: "delete", key: "o" }]), ApiConnectionError);
  assert.equal(partly.sent.length, 1);
  const fully = scripted(reset(), json(207, answer));
  const result = await fully.client.bulk([put, { op: "delete", key: "o", idempotency_key: "i-2" }]);
  assert.equal(fully.sent.length, 2);
  assert.equal(fully.sent[1]!.url, "http://api.test/v1/documents/bulk");
  assert.equal(fully.sent[1]!.init.method, "POST");
  assert.equal(JSON.parse(String(fully.sent[1]!.init.body)).items[0].idempotency_key, "i-1");
  assert.deepEqual([result.failed, result.items[1]!.status], [1, 404]);
});
