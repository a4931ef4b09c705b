/** Machine-readable failure codes of the sync protocol (PROTOCOL.md, "Acks"). */
export const ErrorCode = {
  UNAUTHENTICATED: 'UNAUTHENTICATED',
  FORBIDDEN: 'FORBIDDEN',
  INVALID_PAYLOAD: 'INVALID_PAYLOAD',
  INVALID_QUERY: 'INVALID_QUERY',
  CONFLICT: 'CONFLICT',
  RATE_LIMITED: 'RATE_LIMITED',
  PAYLOAD_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  CURSOR_EXPIRED: 'CURSOR_EXPIRED',
  UNAVAILABLE: 'UNAVAILABLE',
  INTERNAL: 'INTERNAL',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface FailureAck {
  success: false;
  code: ErrorCode;
  error: string;
  [extra: string]: unknown;
}

/** Base class of every protocol-level error; mapped to an ack (or HTTP status) at one edge. */
export class SyncError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = new.target.name;
  }

  toAck(): FailureAck {
    return { success: false, code: this.code, error: this.message, ...this.details };
  }
}

export class InvalidPayloadError extends SyncError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super(ErrorCode.INVALID_PAYLOAD, message, details);
  }
}
export class UnauthenticatedError extends SyncError {
  constructor(message = 'Authentication required: join with a valid token first') {
    super(ErrorCode.UNAUTHENTICATED, message);
  }
}
export class ForbiddenError extends SyncError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super(ErrorCode.FORBIDDEN, message, details);
  }
}
export class InvalidQueryError extends SyncError {
  constructor(
    message: string,
    readonly position?: number,
  ) {
    super(ErrorCode.INVALID_QUERY, message, position === undefined ? {} : { position });
  }
}
export class RateLimitedError extends SyncError {
  constructor(
    readonly retryAfterMs: number,
    message = 'Too many changes',
  ) {
    super(ErrorCode.RATE_LIMITED, `${message}: retry in ${Math.ceil(retryAfterMs / 1000)} s`, { retryAfterMs });
  }
}
export class PayloadTooLargeError extends SyncError {
  constructor(message: string) {
    super(ErrorCode.PAYLOAD_TOO_LARGE, message);
  }
}
export class CursorExpiredError extends SyncError {
  constructor(message = 'The cursor is older than the change retention window: bootstrap again') {
    super(ErrorCode.CURSOR_EXPIRED, message);
  }
}
export class UnavailableError extends SyncError {
  constructor(message = 'The database is unreachable: nothing was written, retry later') {
    super(ErrorCode.UNAVAILABLE, message);
  }
}

export function isSyncError(e: unknown): e is SyncError {
  return e instanceof SyncError;
}
