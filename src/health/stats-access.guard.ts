import { CanActivate, ExecutionContext, Inject, Injectable, UnauthorizedException, ForbiddenException } from '@nestjs/common';
import type { Request } from 'express';
import { APP_CONFIG } from '../config/config.module';
import { AppConfig } from '../config/config.schema';
import { AuthService } from '../auth/auth.service';

/**
 * /stats and /metrics are open in development; in production they need an admin: a JWT whose user is
 * in ADMIN_USER_IDS or carries an `admin: true` / `roles: ["admin"]` claim, or the service token.
 */
@Injectable()
export class StatsAccessGuard implements CanActivate {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly auth: AuthService,
  ) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    if (!this.config.isProduction) return true;
    const req = ctx.switchToHttp().getRequest<Request>();
    const token = this.auth.extractBearer(req.headers.authorization);
    if (!token) throw new UnauthorizedException('admin token required');
    if (this.auth.isServiceToken(token)) return true;
    const user = await this.auth.verifyToken(token).catch(() => null);
    if (!user) throw new UnauthorizedException('invalid token');
    if (!this.auth.isAdmin(user)) throw new ForbiddenException('admin only');
    return true;
  }
}
