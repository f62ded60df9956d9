/**
 * When and how the client tries a request again: declared once, here (the same rules as the
 * Python client's cachesync.client.retries).
 *
 * Retried: a 429 (the server did nothing); a 502/503/504, a 409 or a broken connection when
 * repeating is safe: reads always, writes only with an Idempotency-Key (the server replays the
 * first receipt) or when the request never left. Waits are exponential with full jitter; a
 * Retry-After is honoured, and one longer than maxDelayMs ends the retries at once.
 */

import {
  ApiClientError,
  ApiConflictError,
  ApiConnectionError,
  ApiRateLimitedError,
  ApiServerError,
} from "./errors.js";

export interface RetryPolicy {
  /** Attempts in all (1: no retry). Default 4. */
  attempts: number;
  /** The first wait's upper bound in ms; it doubles each attempt. Default 200. */
  baseDelayMs: number;
  /** No wait is longer; a longer Retry-After ends the retries. Default 20000. */
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 4, baseDelayMs: 200, maxDelayMs: 20_000 };

const RETRYABLE_SERVER_STATUSES = new Set([502, 503, 504]);

/** Whether `error` is worth another attempt of a request that is (or is not) idempotent. */
export function isTransient(error: unknown, idempotent: boolean): boolean {
  if (error instanceof ApiRateLimitedError) return true;
  if (error instanceof ApiConnectionError) return idempotent || !error.requestSent;
  if (error instanceof ApiServerError) {
    return idempotent && error.status !== undefined && RETRYABLE_SERVER_STATUSES.has(error.status);
  }
  if (error instanceof ApiConflictError) return idempotent;
  return false;
}

export interface RetryHooks {
  sleep: (ms: number) => Promise<void>;
  /** A number in [0, 1): Math.random unless a test fixes it. */
  random: () => number;
}

/** `attempt()`, again while it fails transiently; the last error otherwise. */
export async function withRetries<T>(
  attempt: () => Promise<T>,
  idempotent: boolean,
  policy: RetryPolicy,
  hooks: RetryHooks,
): Promise<T> {
  for (let number = 1; ; number++) {
    try {
      return await attempt();
    } catch (error) {
      if (number >= policy.attempts || !isTransient(error, idempotent)) throw error;
      const retryAfter = error instanceof ApiClientError ? error.retryAfter : undefined;
      let wait: number;
      if (retryAfter !== undefined) {
        if (retryAfter * 1000 > policy.maxDelayMs) throw error;
        wait = retryAfter * 1000 + hooks.random() * policy.baseDelayMs;
      } else {
        const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (number - 1));
        wait = hooks.random() * ceiling;
      }
      await hooks.sleep(wait);
    }
  }
}
