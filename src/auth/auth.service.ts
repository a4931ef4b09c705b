import { Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { JwtService } from '@nestjs/jwt';
import { timingSafeEqual } from 'node:crypto';
import { ErrorCode, SyncError, UnauthenticatedError } from '@sync/protocol';
import { APP_CONFIG } from '../config/config.module';
import { AppConfig } from '../config/config.schema';
import { AuthUser } from './auth.types';

export class AuthError extends SyncError {
  constructor(
    message: string,
    readonly reason: string,
  ) {
    super(ErrorCode.UNAUTHENTICATED, message);
  }
}

const USER_ID_RE = /^[^\u0000-\u001f]{1,256}$/;

/** Verifies tokens and resolves identities. The only place that knows how users are authenticated. */
@Injectable()
export class AuthService implements OnModuleInit {
  private readonly logger = new Logger('Auth');

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly jwt: JwtService,
  ) {}

  onModuleInit(): void {
    if (this.config.auth.mode === 'dev') {
      this.logger.warn(
        '!!! AUTH_MODE=dev: sync:join accepts a bare userId WITHOUT A TOKEN. Anyone can act as any user. ' +
          'Never expose this server; set AUTH_JWT_SECRET or AUTH_JWKS_URL for real use. !!!',
      );
    }
  }

  get devMode(): boolean {
    return this.config.auth.mode === 'dev';
  }

  extractBearer(value: unknown): string | undefined {
    if (typeof value !== 'string') return undefined;
    const v = value.trim();
    const token = /^bearer\s+/i.test(v) ? v.replace(/^bearer\s+/i, '').trim() : v;
    return token.length > 0 && token.length <= 16_384 ? token : undefined;
  }

  isServiceToken(token: string): boolean {
    const expected = this.config.auth.serviceToken;
    if (!expected) return false;
    const a = Buffer.from(token);
    const b = Buffer.from(expected);
    return a.length === b.length && timingSafeEqual(a, b);
  }

  isAdmin(user: AuthUser): boolean {
    if (this.config.auth.adminUserIds.includes(user.id)) return true;
    const c = user.claims;
    return c.admin === true || (Array.isArray(c.roles) && c.roles.includes('admin')) || c.role === 'admin';
  }

  /** Verifies a JWT and returns its user; throws AuthError (UNAUTHENTICATED) otherwise. */
  async verifyToken(token: string): Promise<AuthUser> {
    const secret = this.config.auth.jwtSecret;
    if (!secret) throw new AuthError('token verification is not configured', 'not_configured');
    let claims: Record<string, unknown>;
    try {
      claims = await this.jwt.verifyAsync<Record<string, unknown>>(token, {
        secret,
        algorithms: ['HS256'],
        issuer: this.config.auth.issuer,
        audience: this.config.auth.audience,
      });
    } catch (e) {
      const name = (e as Error).name;
      const reason = name === 'TokenExpiredError' ? 'expired' : 'invalid';
      throw new AuthError(reason === 'expired' ? 'token expired' : 'invalid token', reason);
    }
    return this.userFromClaims(claims);
  }

  userFromClaims(claims: Record<string, unknown>): AuthUser {
    const id = [claims.sub, claims.userId, claims.uid].find((v) => typeof v === 'string' && v.length > 0) as string | undefined;
    if (!id || !USER_ID_RE.test(id)) throw new AuthError('token has no usable subject (sub, userId or uid)', 'no_subject');
    const exp = typeof claims.exp === 'number' ? claims.exp * 1000 : undefined;
    return { id, claims, expiresAt: exp };
  }

  /** AUTH_MODE=dev identity from a bare userId. */
  devUser(userId: unknown): AuthUser {
    if (!this.devMode) throw new UnauthenticatedError('a token is required');
    if (typeof userId !== 'string' || !USER_ID_RE.test(userId)) throw new AuthError('userId must be a non-empty string of at most 256 characters', 'bad_user_id');
    return { id: userId, claims: {}, insecure: true };
  }
}
