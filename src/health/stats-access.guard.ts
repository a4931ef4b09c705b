import { CanActivate, ExecutionContext, Inject, Injectable } from '@nestjs/common';
import type { Request } from 'express';
import { AdminGrant } from '../auth/admin-grant';
import { APP_CONFIG } from '../config/config.module';
import { AppConfig } from '../config/config.schema';

/**
 * /stats and /metrics are open outside production; in production they need the service token or an
 * admin by configuration (AdminGrant: ADMIN_USER_IDS or ADMIN_CLAIM).
 */
@Injectable()
export class StatsAccessGuard implements CanActivate {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly grant: AdminGrant,
  ) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    if (!this.config.isProduction) return true;
    const req = ctx.switchToHttp().getRequest<Request>();
    await this.grant.authorize(req.headers.authorization, { via: 'http', ip: req.ip });
    return true;
  }
}
