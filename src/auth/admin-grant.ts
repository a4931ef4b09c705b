import { ForbiddenException, HttpException, HttpStatus, Inject, Injectable, UnauthorizedException } from '@nestjs/common';
import { ErrorCode } from '@sync/protocol';
import { APP_CONFIG } from '../config/config.module';
import { AppConfig } from '../config/config.schema';
import { AuthContext, AuthError, AuthService } from './auth.service';
import { AuthUser } from './auth.types';

/**
 * Who was granted server-wide access: the holder of AUTH_SERVICE_TOKEN, or a user that the
 * configuration names an admin. `user.id` is `service` for the service token.
 */
export interface AdminPrincipal {
  kind: 'service' | 'admin';
  user: AuthUser;
}

/** The service principal (AUTH_SERVICE_TOKEN, or an open route in AUTH_MODE=dev). */
export function servicePrincipal(insecure = false): AdminPrincipal {
  return { kind: 'service', user: { id: 'service', claims: { service: true }, ...(insecure ? { insecure: true } : {}) } };
}

/**
 * The one place that decides server-wide access (/stats, /metrics, REST ingest, the console, audit
 * reads). It is granted only by explicit configuration, never by what a token says about itself:
 *
 *  - AUTH_SERVICE_TOKEN (compared in constant time), for server-to-server calls;
 *  - a verified user whose subject is listed in ADMIN_USER_IDS;
 *  - a verified user whose token carries the claim named by ADMIN_CLAIM (`<claim>:<value>`, off by
 *    default) with that value, or an array holding it. Only meaningful when the token issuer is
 *    yours (AUTH_JWT_ISSUER / AUTH_JWT_AUDIENCE pin it).
 *
 * A user authenticated by AUTH_MODE=dev (no signature checked) is never an admin. A claim such as
 * `role: "admin"` grants nothing unless ADMIN_CLAIM names it.
 */
@Injectable()
export class AdminGrant {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly auth: AuthService,
  ) {}

  /** True when this verified user is an admin by configuration. */
  isAdmin(user: AuthUser): boolean {
    if (user.insecure) return false;
    const a = this.config.auth;
    if (a.adminUserIds.includes(user.id)) return true;
    const rule = a.adminClaim;
    if (!rule || !Object.prototype.hasOwnProperty.call(user.claims, rule.name)) return false;
    const v = user.claims[rule.name];
    return v === rule.value || (Array.isArray(v) && v.includes(rule.value));
  }

  /**
   * Resolves an `Authorization` header to an admin principal, or throws: 401 without a usable
   * credential, 403 for a valid user who is not an admin, 503 when tokens cannot be verified now.
   * `openInDev`: in AUTH_MODE=dev without AUTH_SERVICE_TOKEN a request without a token passes as the
   * (insecure) service principal.
   */
  async authorize(authorization: unknown, ctx: AuthContext, openInDev = false): Promise<AdminPrincipal> {
    const credential = this.auth.parseCredential(Array.isArray(authorization) ? authorization[0] : authorization);
    if (credential.kind === 'invalid') {
      this.auth.recordFailure('malformed', ctx, 'unusable credential');
      throw new UnauthorizedException('invalid token');
    }
    if (credential.kind === 'absent') {
      if (openInDev && this.auth.devMode && !this.auth.hasServiceToken) return servicePrincipal(true);
      this.auth.recordFailure('missing', ctx, 'no admin or service token');
      throw new UnauthorizedException('a service token or an admin token is required');
    }
    if (this.auth.isServiceToken(credential.token)) return servicePrincipal();
    if (!this.auth.canVerify) {
      this.auth.recordFailure('bad_signature', ctx, 'wrong service token');
      throw new UnauthorizedException('invalid service token');
    }
    let user: AuthUser;
    try {
      user = await this.auth.verifyToken(credential.token, ctx);
    } catch (e) {
      if (e instanceof AuthError && e.code === ErrorCode.UNAVAILABLE) throw new HttpException(e.message, HttpStatus.SERVICE_UNAVAILABLE);
      if (e instanceof AuthError) throw new UnauthorizedException(e.message);
      throw e;
    }
    if (!this.isAdmin(user)) throw new ForbiddenException('a service token or an admin is required (ADMIN_USER_IDS or ADMIN_CLAIM)');
    return { kind: 'admin', user };
  }
}
