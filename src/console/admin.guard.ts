import { CanActivate, ExecutionContext, ForbiddenException, Injectable, UnauthorizedException } from '@nestjs/common';
import type { Request } from 'express';
import { AuthService } from '../auth/auth.service';

/**
 * The operator console's data APIs: an admin (the same test as /stats in production:
 * `AuthService.isAdmin`, i.e. ADMIN_USER_IDS or an admin claim) or the service token, in every
 * environment, dev mode included (the console shows other users' ids and rejected changes).
 */
@Injectable()
export class AdminGuard implements CanActivate {
  constructor(private readonly auth: AuthService) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    const req = ctx.switchToHttp().getRequest<Request>();
    const credential = this.auth.parseCredential(req.headers.authorization);
    if (credential.kind === 'invalid') throw new UnauthorizedException('invalid token');
    if (credential.kind === 'absent') throw new UnauthorizedException('admin token required');
    if (this.auth.isServiceToken(credential.token)) return true;
    if (!this.auth.canVerify) throw new UnauthorizedException('invalid token');
    const user = await this.auth.verifyToken(credential.token, { via: 'http', ip: req.ip }).catch(() => null);
    if (!user) throw new UnauthorizedException('invalid token');
    if (!this.auth.isAdmin(user)) throw new ForbiddenException('admin only');
    return true;
  }
}
