import { CanActivate, createParamDecorator, ExecutionContext, HttpException, HttpStatus, Injectable, UnauthorizedException } from '@nestjs/common';
import type { Request } from 'express';
import { ErrorCode } from '@sync/protocol';
import { AdminGrant } from '../admin-grant';
import { AuthError, AuthService } from '../auth.service';
import { AuthUser } from '../auth.types';

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
 * A server-to-server route (e.g. POST /api/changes): `Authorization: Bearer <AUTH_SERVICE_TOKEN>`,
 * or the JWT of an admin by configuration (AdminGrant: ADMIN_USER_IDS or ADMIN_CLAIM; never a
 * token's own `role: "admin"`). In AUTH_MODE=dev without AUTH_SERVICE_TOKEN the route is open, like
 * everything else in dev mode. `req.user` is `{ id: 'service' }` for the service token, else the admin.
 */
@Injectable()
export class ServiceAuthGuard implements CanActivate {
  constructor(private readonly grant: AdminGrant) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    const req = ctx.switchToHttp().getRequest<AuthenticatedRequest>();
    const principal = await this.grant.authorize(req.headers.authorization, { via: 'http', ip: req.ip }, true);
    req.user = principal.user;
    return true;
  }
}
