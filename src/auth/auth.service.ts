import { Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { timingSafeEqual } from 'node:crypto';
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  errors as joseErrors,
  jwtVerify,
  JWTVerifyGetKey,
  JWTVerifyOptions,
} from 'jose';
import { ErrorCode, SyncError, UnauthenticatedError } from '@sync/protocol';
import { APP_CONFIG } from '../config/config.module';
import { AppConfig } from '../config/config.schema';
import { MetricsService } from '../metrics/metrics.service';
import { AuthUser } from '../common/user';

/**
 * Why an authentication failed: the `reason` label of sync_auth_failures_total and the log line. A
 * closed set, so the metric's cardinality stays bounded whatever clients send.
 */
export type AuthFailureReason =
  | 'missing'
  | 'malformed'
  | 'alg_not_allowed'
  | 'crit_not_supported'
  | 'bad_signature'
  | 'unknown_key'
  | 'expired'
  | 'not_yet_valid'
  | 'wrong_issuer'
  | 'wrong_audience'
  | 'invalid_claims'
  | 'no_subject'
  | 'bad_user_id'
  | 'user_mismatch'
  | 'not_configured'
  | 'jwks_unavailable';

export class AuthError extends SyncError {
  constructor(
    message: string,
    readonly reason: AuthFailureReason,
    code: ErrorCode = ErrorCode.UNAUTHENTICATED,
  ) {
    super(code, message);
  }
}

/** Where a credential was presented (log context). */
export interface AuthContext {
  via: 'handshake' | 'join' | 'http';
  ip?: string;
  socketId?: string;
}

const USER_ID_RE = /^[^\u0000-\u001f]{1,256}$/;
/** The claims of every AUTH_MODE=dev user without a token: one shared frozen object, not one per socket. */
const NO_CLAIMS: Record<string, unknown> = Object.freeze({});
export const MAX_TOKEN_LENGTH = 16_384;
/** Asymmetric algorithms accepted with keys from AUTH_JWKS_URL. HS* is only ever checked against AUTH_JWT_SECRET. */
export const JWKS_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];
/** Clock skew tolerated on `exp` and `nbf` (seconds), between this server and the token issuer. */
export const JWT_CLOCK_TOLERANCE_S = 5;
const FAILURE_LOG_BURST = 20;
const FAILURE_LOG_WINDOW_MS = 10_000;

/** Verifies tokens and resolves identities. The only place that knows how users are authenticated. */
@Injectable()
export class AuthService implements OnModuleInit {
  private readonly logger = new Logger('Auth');
  private jwks?: JWTVerifyGetKey;
  private failureLog = { windowStart: 0, logged: 0, suppressed: 0 };

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly metrics: MetricsService,
  ) {}

  onModuleInit(): void {
    const a = this.config.auth;
    if (a.mode === 'dev') {
      this.logger.warn(
        '!!! AUTH_MODE=dev: sync:join accepts a bare userId WITHOUT A TOKEN. Anyone can act as any user. ' +
          'Never expose this server; set AUTH_JWT_SECRET or AUTH_JWKS_URL for real use. !!!',
      );
      if (!a.jwtSecret && !a.jwksUrl) this.logger.warn('AUTH_MODE=dev without a secret or JWKS URL: tokens are decoded but their signatures are NOT checked');
    }
    if (a.jwksUrl) {
      const url = new URL(a.jwksUrl);
      if (url.protocol !== 'https:' && !['localhost', '127.0.0.1', '[::1]'].includes(url.hostname))
        this.logger.warn(`AUTH_JWKS_URL uses ${url.protocol}: keys fetched without TLS can be swapped by anyone on the path`);
      this.jwks = this.remoteKeySet(url);
    }
  }

  get devMode(): boolean {
    return this.config.auth.mode === 'dev';
  }

  /** True when tokens can be verified (a secret or a JWKS URL is configured). */
  get canVerify(): boolean {
    return !!(this.config.auth.jwtSecret || this.config.auth.jwksUrl);
  }

  /** The token in an `Authorization`-style value, `Bearer ` stripped; undefined when absent or unusable. */
  extractBearer(value: unknown): string | undefined {
    const r = this.parseCredential(value);
    return r.kind === 'token' ? r.token : undefined;
  }

  /**
   * Reads a credential: absent (undefined, null, empty, a bare `Bearer`), a token, or invalid (not a
   * string, too long). An invalid credential must be refused, never treated as absent.
   */
  parseCredential(value: unknown): { kind: 'absent' } | { kind: 'token'; token: string } | { kind: 'invalid' } {
    if (value === undefined || value === null) return { kind: 'absent' };
    if (typeof value !== 'string') return { kind: 'invalid' };
    const v = value.trim();
    const token = /^bearer(\s+|$)/i.test(v) ? v.replace(/^bearer/i, '').trim() : v;
    if (!token) return { kind: 'absent' };
    if (token.length > MAX_TOKEN_LENGTH) return { kind: 'invalid' };
    return { kind: 'token', token };
  }

  get hasServiceToken(): boolean {
    return !!this.config.auth.serviceToken;
  }

  isServiceToken(token: string): boolean {
    const expected = this.config.auth.serviceToken;
    if (!expected) return false;
    const a = Buffer.from(token);
    const b = Buffer.from(expected);
    return a.length === b.length && timingSafeEqual(a, b);
  }

  /**
   * Verifies a JWT and returns its user; throws AuthError (UNAUTHENTICATED, or UNAVAILABLE when the
   * key set cannot be fetched). Every failure is counted and logged, never with the token.
   */
  async verifyToken(token: string, ctx: AuthContext = { via: 'http' }): Promise<AuthUser> {
    try {
      return await this.verify(token);
    } catch (e) {
      const err = e instanceof AuthError ? e : new AuthError('invalid token', 'malformed');
      this.recordFailure(err.reason, ctx, err.message);
      throw err;
    }
  }

  /**
   * The one verification path: the header is checked here (algorithm, `crit`), the signature and
   * the registered claims by jose, for HS256 against AUTH_JWT_SECRET as for JWKS keys, so every
   * failure goes through one error map (joseFailure) and no library message is ever parsed.
   */
  private async verify(token: string): Promise<AuthUser> {
    if (typeof token !== 'string' || !token || token.length > MAX_TOKEN_LENGTH) throw new AuthError('invalid token', 'malformed');
    let header: Record<string, unknown>;
    try {
      header = decodeProtectedHeader(token) as Record<string, unknown>;
    } catch {
      throw new AuthError('invalid token: not a JWT', 'malformed');
    }
    const alg = header.alg;
    if (typeof alg !== 'string' || alg.toLowerCase() === 'none') throw new AuthError('invalid token: unsigned tokens are refused', 'alg_not_allowed');
    // RFC 7515 4.1.11: a recipient that does not understand a listed extension must refuse the token.
    // This server understands none, so any `crit` (even a malformed one) refuses it.
    if (header.crit !== undefined) throw new AuthError('invalid token: critical header extensions are not supported', 'crit_not_supported');
    const { jwtSecret, jwksUrl } = this.config.auth;

    if (!jwtSecret && !jwksUrl) {
      if (this.devMode) return this.decodeUnverified(token);
      throw new AuthError('token verification is not configured', 'not_configured');
    }
    if (alg === 'HS256') {
      // only ever against the shared secret: a JWKS public key is never used as an HMAC secret
      if (!jwtSecret) throw new AuthError('invalid token: HS256 is not accepted by this server', 'alg_not_allowed');
      return this.userFromClaims(await this.verifyWith(token, new TextEncoder().encode(jwtSecret), ['HS256']));
    }
    if (!JWKS_ALGORITHMS.includes(alg) || !this.jwks) throw new AuthError(`invalid token: algorithm ${alg.slice(0, 16)} is not accepted`, 'alg_not_allowed');
    return this.userFromClaims(await this.verifyWith(token, this.jwks, JWKS_ALGORITHMS));
  }

  private async verifyWith(token: string, key: Uint8Array | JWTVerifyGetKey, algorithms: string[]): Promise<Record<string, unknown>> {
    const options: JWTVerifyOptions = {
      algorithms,
      issuer: this.config.auth.issuer,
      audience: this.config.auth.audience,
      clockTolerance: JWT_CLOCK_TOLERANCE_S,
    };
    try {
      const { payload } =
        typeof (key as JWTVerifyGetKey) === 'function'
          ? await jwtVerify(token, key as JWTVerifyGetKey, options)
          : await jwtVerify(token, key as Uint8Array, options);
      return payload as Record<string, unknown>;
    } catch (e) {
      throw this.joseFailure(e);
    }
  }

  private joseFailure(e: unknown): AuthError {
    if (e instanceof joseErrors.JWTExpired) return new AuthError('token expired', 'expired');
    if (e instanceof joseErrors.JWTClaimValidationFailed) {
      if (e.claim === 'iss') return new AuthError('invalid token: wrong issuer', 'wrong_issuer');
      if (e.claim === 'aud') return new AuthError('invalid token: wrong audience', 'wrong_audience');
      if (e.claim === 'nbf') return new AuthError('token not yet valid', 'not_yet_valid');
      return new AuthError('invalid token: bad claims', 'invalid_claims');
    }
    if (e instanceof joseErrors.JWSSignatureVerificationFailed) return new AuthError('invalid token: bad signature', 'bad_signature');
    if (e instanceof joseErrors.JWKSNoMatchingKey || e instanceof joseErrors.JWKSMultipleMatchingKeys)
      return new AuthError('invalid token: signed with an unknown key', 'unknown_key');
    if (e instanceof joseErrors.JOSEAlgNotAllowed || e instanceof joseErrors.JOSENotSupported)
      return new AuthError('invalid token: algorithm not accepted', 'alg_not_allowed');
    if (e instanceof joseErrors.JWSInvalid || e instanceof joseErrors.JWTInvalid) return new AuthError('invalid token', 'malformed');
    if (e instanceof KeySetUnavailable) {
      this.logger.error(`cannot fetch the JWKS from AUTH_JWKS_URL: ${e.message}`);
      return new AuthError('cannot verify tokens right now (key set unavailable): retry later', 'jwks_unavailable', ErrorCode.UNAVAILABLE);
    }
    return new AuthError('invalid token', 'malformed');
  }

  /**
   * The JWKS, fetched on first use, cached for AUTH_JWKS_CACHE_MAX_AGE_MS and refetched at once
   * when a token names an unknown `kid` (key rotation; at most once per AUTH_JWKS_COOLDOWN_MS). When
   * a refetch fails the last key set fetched stays in use (stale-if-error).
   */
  private remoteKeySet(url: URL): JWTVerifyGetKey {
    const { jwksCacheMaxAgeMs, jwksCooldownMs, jwksTimeoutMs } = this.config.auth;
    const remote = createRemoteJWKSet(url, {
      cacheMaxAge: jwksCacheMaxAgeMs,
      cooldownDuration: jwksCooldownMs,
      timeoutDuration: jwksTimeoutMs,
    });
    return async (header, token) => {
      try {
        return await remote(header, token);
      } catch (e) {
        if (isKeyLookupFailure(e)) throw e;
        // anything else the remote set throws is about fetching it (network, timeout, status, JSON)
        const cached = remote.jwks();
        if (!cached) throw new KeySetUnavailable(e);
        this.logger.warn(`JWKS refetch failed (${(e as Error)?.message ?? e}); using the last key set fetched`);
        return createLocalJWKSet(cached)(header, token);
      }
    };
  }

  /** AUTH_MODE=dev without any verifier: the subject is read from the token without checking it. */
  private decodeUnverified(token: string): AuthUser {
    let claims: Record<string, unknown>;
    try {
      claims = decodeJwt(token) as Record<string, unknown>;
    } catch {
      throw new AuthError('invalid token: not a JWT', 'malformed');
    }
    if (typeof claims.exp === 'number' && claims.exp * 1000 <= Date.now()) throw new AuthError('token expired', 'expired');
    return { ...this.userFromClaims(claims), insecure: true };
  }

  /**
   * The user of verified claims. The identity is the first of `sub`, `userId`, `uid` that is
   * present, and it must be a non-empty string without control characters (RFC 7519: `sub` is a
   * string): a number is refused, never converted, so `42` and `"42"` can never name one user by
   * accident, and a present but unusable `sub` is never passed over for a `userId` claim.
   */
  userFromClaims(claims: Record<string, unknown>): AuthUser {
    const raw = [claims.sub, claims.userId, claims.uid].find((v) => v !== undefined && v !== null);
    if (typeof raw !== 'string' || !USER_ID_RE.test(raw)) throw new AuthError('token has no usable subject (a string sub, userId or uid)', 'no_subject');
    const exp = typeof claims.exp === 'number' && Number.isFinite(claims.exp) ? claims.exp * 1000 : undefined;
    return { id: raw, claims, expiresAt: exp };
  }

  /** AUTH_MODE=dev identity from a bare userId. */
  devUser(userId: unknown, ctx: AuthContext = { via: 'join' }): AuthUser {
    if (!this.devMode) {
      this.recordFailure('missing', ctx, 'no token');
      throw new UnauthenticatedError('a token is required');
    }
    if (typeof userId !== 'string' || !USER_ID_RE.test(userId)) {
      this.recordFailure('bad_user_id', ctx, 'no usable userId');
      throw new AuthError('userId must be a non-empty string of at most 256 characters', 'bad_user_id');
    }
    return { id: userId, claims: NO_CLAIMS, insecure: true };
  }

  /** Counts a failed authentication in /metrics and logs it (rate-limited, never with the token). */
  recordFailure(reason: AuthFailureReason, ctx: AuthContext, detail?: string): void {
    this.metrics.authFailures.inc({ reason });
    const now = Date.now();
    const log = this.failureLog;
    if (now - log.windowStart >= FAILURE_LOG_WINDOW_MS) {
      if (log.suppressed) this.logger.warn(`${log.suppressed} more failed authentications were not logged`);
      this.failureLog = { windowStart: now, logged: 0, suppressed: 0 };
    }
    if (this.failureLog.logged >= FAILURE_LOG_BURST) {
      this.failureLog.suppressed++;
      return;
    }
    this.failureLog.logged++;
    const where = [ctx.via, ctx.ip && `from ${ctx.ip}`, ctx.socketId && `socket ${ctx.socketId}`].filter(Boolean).join(' ');
    this.logger.warn(`authentication failed (${reason}) at ${where}${detail ? `: ${detail}` : ''}`);
  }
}

/** Thrown by the key function when the key set cannot be fetched (and no earlier one is cached). */
class KeySetUnavailable extends Error {
  constructor(override readonly cause: unknown) {
    super(`key set unavailable: ${(cause as Error)?.message ?? String(cause)}`);
  }
}

/**
 * Which failures of the remote key set are about the key set (lookup of the token's key) rather
 * than about fetching it. Decided by error class only, never by the text of a library message.
 */
function isKeyLookupFailure(e: unknown): boolean {
  return e instanceof joseErrors.JWKSNoMatchingKey || e instanceof joseErrors.JWKSMultipleMatchingKeys || e instanceof joseErrors.JOSENotSupported;
}
