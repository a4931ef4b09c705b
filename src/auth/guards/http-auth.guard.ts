import { CanActivate, createParamDecorator, ExecutionContext, ForbiddenException, HttpException, HttpStatus, Injectable, UnauthorizedException } from '@nestjs/common';
import type { Request } from 'express';
import { ErrorCode } from '@sync/protocol';
import { AuthError, AuthService } from '../auth.service';
import { AuthUser } from '../../common/user';

/** The user a guard authenticated, on the request. */
export type AuthenticatedRequest = Request & { user?: AuthUser };

/** `@CurrentUser() user: AuthUser` in a controller guarded by HttpAuthGuard or ServiceAuthGuard. */
export const CurrentUser = createParamDecorator((_data: unknown, ctx: ExecutionContext): AuthUser | undefined => {
  return ctx.switchToHttp().getRequest<AuthenticatedRequest>().user;
});

function bearer(auth: AuthService, req: Request): string | undefined {
  const c = auth.parseCredential(req.headers.authorization);
  if (c.kind === 'invalid') throw new UnauthorizedException('invalid token');
  return c.kind === 'token' ? c.token : undefined;
}

function toHttp(e: unknown): never {
  if (e instanceof AuthError && e.code === ErrorCode.UNAVAILABLE) throw new HttpException(e.message, HttpStatus.SERVICE_UNAVAILABLE);
  if (e instanceof AuthError) throw new UnauthorizedException(e.message);
  throw e;
}

/**
 * A REST route for a user (e.g. GET /api/negotiate): `Authorization: Bearer <JWT>`, verified like a
 * socket's token; the user goes on `req.user`. In AUTH_MODE=dev a bare `X-User-Id` header is accepted
 * instead, as sync:join accepts a bare userId.
 */
@Injectable()
export class HttpAuthGuard implements CanActivate {
  constructor(private readonly auth: AuthService) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    const req = ctx.switchToHttp().getRequest<AuthenticatedRequest>();
    const token = bearer(this.auth, req);
    if (token) {
      req.user = await this.auth.verifyToken(token, { via: 'http', ip: req.ip }).catch(toHttp);
      return true;
    }
    const devId = req.headers['x-user-id'];
    if (this.auth.devMode && devId !== undefined) {
      try {
        req.user = this.auth.devUser(Array.isArray(devId) ? devId[0] : devId, { via: 'http', ip: req.ip });
      } catch (e) {
        toHttp(e);
      }
      return true;
    }
    this.auth.recordFailure('missing', { via: 'http', ip: req.ip }, `no token for ${req.method} ${req.path}`);
    throw new UnauthorizedException('a bearer token is required');
  }
}

/**
 * A server-to-server route (e.g. POST /api/changes): `Authorization: Bearer <AUTH_SERVICE_TOKEN>`
 * (compared in constant time), or the JWT of an admin (ADMIN_USER_IDS or an admin claim). In
 * AUTH_MODE=dev without AUTH_SERVICE_TOKEN the route is open, like everything else in dev mode.
 * `req.user` is `{ id: 'service' }` for the service token, else the admin.
 */
@Injectable()
export class ServiceAuthGuard implements CanActivate {
  constructor(private readonly auth: AuthService) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    const req = ctx.switchToHttp().getRequest<AuthenticatedRequest>();
    const token = bearer(this.auth, req);
    if (!token) {
      if (this.auth.devMode && !this.auth.hasServiceToken) {
        req.user = { id: 'service', claims: { service: true }, insecure: true };
        return true;
      }
      this.auth.recordFailure('missing', { via: 'http', ip: req.ip }, `no service token for ${req.method} ${req.path}`);
      throw new UnauthorizedException('a service token is required');
    }
    if (this.auth.isServiceToken(token)) {
      req.user = { id: 'service', claims: { service: true } };
      return true;
    }
    if (!this.auth.canVerify && !this.auth.devMode) {
      this.auth.recordFailure('bad_signature', { via: 'http', ip: req.ip }, 'wrong service token');
      throw new UnauthorizedException('invalid service token');
    }
    const user = await this.auth.verifyToken(token, { via: 'http', ip: req.ip }).catch(toHttp);
    if (!this.auth.isAdmin(user)) throw new ForbiddenException('a service token or an admin is required');
    req.user = user;
    return true;
  }
}
