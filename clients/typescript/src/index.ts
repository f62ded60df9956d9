/**
 * A TypeScript client of the cachesync query API (/v1): typed answers (types generated from the
 * API's OpenAPI document), page walks, retries with full jitter, timeouts, clear errors.
 *
 *   const api = new CacheSyncClient(process.env.CACHESYNC_API_URL!, process.env.CACHESYNC_API_KEY!);
 *   for await (const item of api.documents({ customer: "acme", since: "2026-01-01" })) {
 *     console.log(item.key, item.status);
 *   }
 */

import { randomUUID } from "node:crypto";

import { ApiConnectionError, errorForStatus, type Problem } from "./errors.js";
import { DEFAULT_RETRY, withRetries, type RetryHooks, type RetryPolicy } from "./retries.js";
import { signHeaders } from "./signing.js";
import type { components, operations } from "./schema.js";

export * from "./errors.js";
export { DEFAULT_RETRY, isTransient, type RetryPolicy } from "./retries.js";
export { canonicalRequest, signHeaders, signature } from "./signing.js";

type Schemas = components["schemas"];
export type QueryResult = Schemas["QueryResult"];
export type QueryProgress = Schemas["QueryProgress"];
export type DocumentResult = Schemas["DocumentResult"];
export type WriteResult = Schemas["WriteResult"];
export type Health = Schemas["Health"];
export type ProblemDetails = Schemas["ProblemDetails"];
export type BulkItem = Schemas["BulkItem"];
export type BulkItemResult = Schemas["BulkItemResult"];
export type BulkResult = Schemas["BulkResult"];

type ServerQuery = NonNullable<operations["query_documents_v1_documents_get"]["parameters"]["query"]>;

/** The parameters of GET /v1/documents, friendlier: one status or several, fields as a list. */
export interface QueryParams {
  customer?: string;
  status?: string | string[];
  kind?: NonNullable<ServerQuery["kind"]>;
  /** Inclusive: ISO 8601 date or date-time. */
  since?: string | Date;
  /** Exclusive: ISO 8601 date or date-time. */
  until?: string | Date;
  order?: NonNullable<ServerQuery["order"]>;
  limit?: number;
  fields?: string[];
  nextToken?: string;
}

/** One item of a query page: every summary field, absent when `fields` left it out. */
export interface QueryItem {
  bucket?: string;
  key?: string;
  kind?: string;
  doc_id?: string;
  title?: string;
  status?: string;
  customers?: string[];
  index_time?: string;
  etag?: string;
  version_id?: string | null;
  size?: number;
  s3_last_modified?: string;
  expires_at?: string | null;
}

export interface ClientOptions {
  /** Milliseconds before a request without an answer fails (default 30000). */
  timeoutMs?: number;
  retry?: Partial<RetryPolicy>;
  /** For tests: another fetch, sleep and random. */
  fetch?: typeof fetch;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
  /** The key's signing secret (css_...), for a key that requires signed requests. */
  signingSecret?: string;
}

export interface WriteOptions {
  /** Makes a retry after a lost answer safe (the server replays the first receipt). */
  idempotencyKey?: string;
}

const DOCUMENTS = "/v1/documents";
const BULK = "/v1/documents/bulk";

/** The query API at `baseUrl` (ending before /v1) with one API key. */
export class CacheSyncClient {
  private readonly base: string;
  private readonly headers: Record<string, string>;
  private readonly timeoutMs: number;
  private readonly retry: RetryPolicy;
  private readonly hooks: RetryHooks;
  private readonly fetcher: typeof fetch;
  private readonly signingSecret: string | undefined;

  constructor(baseUrl: string, apiKey: string, options: ClientOptions = {}) {
    this.base = baseUrl.replace(/\/+$/, "");
    this.headers = {
      Authorization: `Bearer ${apiKey}`,
      Accept: "application/json, application/problem+json",
    };
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
    this.hooks = {
      sleep: options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms))),
      random: options.random ?? Math.random,
    };
    this.fetcher = options.fetch ?? fetch;
    this.signingSecret = options.signingSecret;
  }

  /** GET /v1/health (no key needed). */
  async health(): Promise<Health> {
    return (await this.request("GET", "/v1/health")).json() as Promise<Health>;
  }

  /** One page of GET /v1/documents; pass its next_token (same parameters) for the next. */
  async query(params: QueryParams = {}): Promise<QueryResult> {
    const search = new URLSearchParams();
    search.set("order", params.order ?? "desc");
    search.set("limit", String(params.limit ?? 50));
    if (params.customer !== undefined) search.set("customer", params.customer);
    const statuses = typeof params.status === "string" ? [params.status] : (params.status ?? []);
    for (const status of statuses) search.append("status", status);
    if (params.kind !== undefined) search.set("kind", params.kind);
    if (params.since !== undefined) search.set("since", instant(params.since));
    if (params.until !== undefined) search.set("until", instant(params.until));
    if (params.fields?.length) search.set("fields", params.fields.join(","));
    if (params.nextToken !== undefined) search.set("next_token", params.nextToken);
    const reply = await this.request("GET", `${DOCUMENTS}?${search.toString()}`);
    return (await reply.json()) as QueryResult;
  }

  /** Every page of a query, following next_token. */
  async *pages(params: QueryParams = {}): AsyncGenerator<QueryResult> {
    let token = params.nextToken;
    for (;;) {
      const page = await this.query(token === undefined ? params : { ...params, nextToken: token });
      yield page;
      if (!page.next_token) return;
      token = page.next_token;
    }
  }

  /** Every item of a query across all its pages. */
  async *documents(params: QueryParams = {}): AsyncGenerator<QueryItem> {
    for await (const page of this.pages(params)) {
      for (const item of page.items) yield item as QueryItem;
    }
  }

  /** GET /v1/documents/{key}; null only when ifNoneMatch (an earlier ETag) still matches. */
  async get(key: string, options: { ifNoneMatch?: string } = {}): Promise<DocumentResult | null> {
    const headers: Record<string, string> = {};
    if (options.ifNoneMatch) headers["If-None-Match"] = quoted(options.ifNoneMatch);
    const reply = await this.request("GET", documentPath(key), { headers });
    if (reply.status === 304) return null;
    return (await reply.json()) as DocumentResult;
  }

  /** PUT /v1/documents/{key}: index first, then S3 (the write-through saga). */
  async put(key: string, document: unknown, options: WriteOptions = {}): Promise<WriteResult> {
    return this.write("PUT", key, JSON.stringify(document), options);
  }

  /** DELETE /v1/documents/{key}. */
  async delete(key: string, options: WriteOptions = {}): Promise<WriteResult> {
    return this.write("DELETE", key, undefined, options);
  }

  /**
   * POST /v1/documents/bulk: 1 to 100 puts and deletes, each its own saga. Resolves with every
   * item's result in request order whether all succeeded (HTTP 200) or some failed (207: see
   * `failed` and each item's `problem`); a refused request as a whole (400, 401, 403, 413)
   * rejects. Retried on transient failures only when every item has an idempotency key.
   */
  async bulk(items: BulkItem[]): Promise<BulkResult> {
    const idempotent = items.every((item) => Boolean(item.idempotency_key));
    const reply = await this.request("POST", BULK, {
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ items }),
      idempotent,
    });
    return (await reply.json()) as BulkResult;
  }

  /** A fresh idempotency key: keep it with the write you may have to retry. */
  newIdempotencyKey(): string {
    return randomUUID();
  }

  private async write(
    method: string,
    key: string,
    body: string | undefined,
    options: WriteOptions,
  ): Promise<WriteResult> {
    const headers: Record<string, string> = {};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (options.idempotencyKey) headers["Idempotency-Key"] = options.idempotencyKey;
    const init: RequestOptions = { headers, idempotent: options.idempotencyKey !== undefined };
    if (body !== undefined) init.body = body;
    const reply = await this.request(method, documentPath(key), init);
    return (await reply.json()) as WriteResult;
  }

  private request(method: string, path: string, options: RequestOptions = {}): Promise<Response> {
    const idempotent = options.idempotent ?? (method === "GET" || method === "HEAD");
    return withRetries(() => this.send(method, path, options), idempotent, this.retry, this.hooks);
  }

  private async send(method: string, path: string, options: RequestOptions): Promise<Response> {
    const what = `${method} ${path.split("?")[0]}`;
    // A fresh timestamp and nonce per attempt: a retry is a new request, not a replay.
    const signed =
      this.signingSecret === undefined ? {} : signHeaders(this.signingSecret, method, path, options.body ?? "");
    const init: RequestInit = {
      method,
      headers: { ...this.headers, ...options.headers, ...signed },
      redirect: "manual",
      signal: AbortSignal.timeout(this.timeoutMs),
    };
    if (options.body !== undefined) init.body = options.body;
    let reply: Response;
    try {
      reply = await this.fetcher(this.base + path, init);
    } catch (error) {
      const refused = connectionRefused(error);
      const reason = refused ? "cannot connect" : "no answer";
      throw new ApiConnectionError(`${what}: ${reason} (${describe(error)})`, !refused, error);
    }
    if ((reply.status >= 200 && reply.status < 300) || reply.status === 304) return reply;
    throw errorForStatus(reply.status, await problemOf(reply), retryAfterOf(reply), what);
  }
}

interface RequestOptions {
  headers?: Record<string, string>;
  body?: string;
  idempotent?: boolean;
}

function documentPath(key: string): string {
  // "/" stays a separator (the route takes the rest of the path); all else is escaped.
  return `${DOCUMENTS}/${key.split("/").map(encodeURIComponent).join("/")}`;
}

function instant(value: string | Date): string {
  return typeof value === "string" ? value : value.toISOString();
}

function quoted(etag: string): string {
  return etag.startsWith('"') || etag.startsWith("W/") || etag === "*" ? etag : `"${etag}"`;
}

async function problemOf(reply: Response): Promise<Problem> {
  const text = await reply.text();
  try {
    const parsed: unknown = JSON.parse(text);
    return typeof parsed === "object" && parsed !== null ? (parsed as Problem) : {};
  } catch {
    return { detail: text.slice(0, 200) };
  }
}

function retryAfterOf(reply: Response): number | undefined {
  const value = reply.headers.get("Retry-After");
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds);
  const when = Date.parse(value);
  return Number.isNaN(when) ? undefined : Math.max(0, (when - Date.now()) / 1000);
}

function connectionRefused(error: unknown): boolean {
  // Node's fetch wraps the socket error: TypeError("fetch failed") with cause.code.
  const cause = (error as { cause?: { code?: string } } | undefined)?.cause;
  return cause?.code === "ECONNREFUSED";
}

function describe(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } } | undefined)?.cause;
  if (cause?.code) return cause.code;
  return error instanceof Error ? error.message : String(error);
}
