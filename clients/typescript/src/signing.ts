/**
 * Signed requests (HMAC-SHA256), byte for byte as the server checks them
 * (shared/cachesync/api/request_signing.py; the canonical request is in docs/API.md).
 */

import { createHash, createHmac, randomBytes } from "node:crypto";

export const ALGORITHM = "CACHESYNC-HMAC-SHA256";

/** RFC 3986 encoding: unreserved characters (A-Z a-z 0-9 - _ . ~) stay, all else is %XX. */
function encode(text: string): string {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** The path decoded, then each segment encoded the one canonical way. */
export function canonicalPath(path: string): string {
  return path
    .split("/")
    .map((segment) => encode(decodeURIComponent(segment)))
    .join("/");
}

/** Decoded name/value pairs, sorted by name then value, encoded, joined by "&". */
export function canonicalQuery(parameters: Iterable<[string, string]>): string {
  const encoded = [...parameters].map(([name, value]) => [encode(name), encode(value)] as const);
  encoded.sort(([a, x], [b, y]) => (a < b ? -1 : a > b ? 1 : x < y ? -1 : x > y ? 1 : 0));
  return encoded.map(([name, value]) => `${name}=${value}`).join("&");
}

export function canonicalRequest(
  method: string,
  path: string,
  query: Iterable<[string, string]>,
  timestamp: string,
  nonce: string,
  body: string,
): string {
  return [
    ALGORITHM,
    method.toUpperCase(),
    canonicalPath(path),
    canonicalQuery(query),
    timestamp,
    nonce,
    createHash("sha256").update(body, "utf8").digest("hex"),
  ].join("\n");
}

export function signature(secret: string, canonical: string): string {
  return `v1=${createHmac("sha256", secret).update(canonical, "utf8").digest("hex")}`;
}

/** The three headers that sign one request (a fresh timestamp and nonce unless given). */
export function signHeaders(
  secret: string,
  method: string,
  pathAndQuery: string,
  body: string,
  now: { timestamp?: number; nonce?: string } = {},
): Record<string, string> {
  const [path = "", search = ""] = pathAndQuery.split("?", 2);
  const query = [...new URLSearchParams(search).entries()];
  const timestamp = String(now.timestamp ?? Math.floor(Date.now() / 1000));
  const nonce = now.nonce ?? randomBytes(18).toString("base64url");
  return {
    "X-Cachesync-Timestamp": timestamp,
    "X-Cachesync-Nonce": nonce,
    "X-Cachesync-Signature": signature(secret, canonicalRequest(method, path, query, timestamp, nonce, body)),
  };
}
