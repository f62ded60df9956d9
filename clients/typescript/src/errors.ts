/**
 * What the client throws: one class per kind of answer an application acts on. Every error
 * carries the HTTP status and the server's RFC 9457 problem (type, title, detail).
 * HTTP statuses become these classes in exactly one place, errorForStatus().
 */

export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  [extension: string]: unknown;
}

export class ApiClientError extends Error {
  readonly status: number | undefined;
  readonly problem: Problem;
  /** Seconds the server asked to wait (429), when it said. */
  readonly retryAfter: number | undefined;

  constructor(message: string, init: { status?: number; problem?: Problem; retryAfter?: number } = {}) {
    super(message);
    this.name = new.target.name;
    this.status = init.status;
    this.problem = init.problem ?? {};
    this.retryAfter = init.retryAfter;
  }

  /** The problem's detail: the server's reason, for a person. */
  get detail(): string | undefined {
    return this.problem.detail;
  }

  /** The problem's type (urn:cachesync:problem:<slug>), for a program. */
  get problemType(): string | undefined {
    return this.problem.type;
  }
}

/** No answer: the server could not be reached, or the connection broke or timed out. */
export class ApiConnectionError extends ApiClientError {
  /** false: the request never reached the server (repeating it is always safe). */
  readonly requestSent: boolean;

  constructor(message: string, requestSent: boolean, cause?: unknown) {
    super(message);
    this.requestSent = requestSent;
    if (cause !== undefined) this.cause = cause;
  }
}

/** 400, 405 or 422: the request is invalid; do not retry it as is. */
export class ApiRequestError extends ApiClientError {}
/** 401: the API key is missing, unknown or revoked. */
export class ApiAuthenticationError extends ApiClientError {}
/** 403: the key lacks the scope, or the customer is outside its tenancy. */
export class ApiForbiddenError extends ApiClientError {}
/** 404: no such document (or one the key may not see), or no such route. */
export class ApiNotFoundError extends ApiClientError {}
/** 409: a concurrent write to the same key, or a replay still running. */
export class ApiConflictError extends ApiClientError {}
/** 429: over a limit; retryAfter says when to try again. */
export class ApiRateLimitedError extends ApiClientError {}
/** 5xx: the server or a store behind it failed. */
export class ApiServerError extends ApiClientError {}

const BY_STATUS: Record<number, typeof ApiClientError> = {
  400: ApiRequestError,
  401: ApiAuthenticationError,
  403: ApiForbiddenError,
  404: ApiNotFoundError,
  405: ApiRequestError,
  409: ApiConflictError,
  422: ApiRequestError,
  429: ApiRateLimitedError,
};

/** The error for a non-2xx answer to `what` ("GET /v1/documents"). */
export function errorForStatus(
  status: number,
  problem: Problem,
  retryAfter: number | undefined,
  what: string,
): ApiClientError {
  const Kind = BY_STATUS[status] ?? (status >= 500 ? ApiServerError : ApiRequestError);
  const reason = problem.detail ?? problem.title ?? "no problem body";
  const init: { status: number; problem: Problem; retryAfter?: number } = { status, problem };
  if (retryAfter !== undefined) init.retryAfter = retryAfter;
  return new Kind(`${what}: ${status} ${reason}`, init);
}
