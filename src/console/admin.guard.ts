import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import type { Request } from 'express';
import { AdminGrant } from '../auth/admin-grant';

/**
 * The operator console's data APIs: the service token or an admin by configuration (AdminGrant:
 * ADMIN_USER_IDS or ADMIN_CLAIM, the same grant as /stats), in every environment, dev mode included
 * (the console shows other users' ids and rejected changes).
 */
@Injectable()
export class AdminGuard implements CanActivate {
  constructor(private readonly grant: AdminGrant) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    const req = ctx.switchToHttp().getRequest<Request>();
    await this.grant.authorize(req.headers.authorization, { via: 'http', ip: req.ip });
    return true;
  }
}
