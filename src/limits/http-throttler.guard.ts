import { ExecutionContext, Inject, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { InjectThrottlerOptions, InjectThrottlerStorage, ThrottlerGuard, ThrottlerModuleOptions, ThrottlerStorage } from '@nestjs/throttler';
import type { Request } from 'express';
import { timingSafeEqual } from 'node:crypto';
import { APP_CONFIG } from '../config/config.module';
import { AppConfig } from '../config/config.schema';
import { addressKey, proxyMatcher, resolveClientAddress } from './client-address';

/**
 * @nestjs/throttler on every REST route (HTTP_RATE_LIMIT_MAX requests per HTTP_RATE_LIMIT_WINDOW_MS
 * and client address, all routes together); the probes opt out with @SkipThrottle(). The client
 * address comes from the same resolver as the socket limits, so X-Forwarded-For is only believed
 * from trusted proxies (Express's `trust proxy = true` would believe the left-most, client-written
 * entry). Only HTTP requests are throttled (socket events have their own limits), and requests
 * carrying AUTH_SERVICE_TOKEN are not.
 */
@Injectable()
export class HttpThrottlerGuard extends ThrottlerGuard {
  private readonly isTrustedProxy: (ip: string) => boolean;

  constructor(
    @InjectThrottlerOptions() options: ThrottlerModuleOptions,
    @InjectThrottlerStorage() storage: ThrottlerStorage,
    reflector: Reflector,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {
    super(options, storage, reflector);
    this.isTrustedProxy = proxyMatcher(config.server.trustedProxies);
  }

  protected override async shouldSkip(context: ExecutionContext): Promise<boolean> {
    if (context.getType() !== 'http' || this.config.limits.rateLimitDisabled) return true;
    return this.carriesServiceToken(context.switchToHttp().getRequest<Request>());
  }

  /** Server-to-server calls with AUTH_SERVICE_TOKEN (bulk ingest, scrapers) are not throttled. */
  private carriesServiceToken(req: Request): boolean {
    const expected = this.config.auth.serviceToken;
    const header = req.headers?.authorization;
    if (!expected || typeof header !== 'string') return false;
    const a = Buffer.from(header.replace(/^bearer\s+/i, '').trim());
    const b = Buffer.from(expected);
    return a.length === b.length && timingSafeEqual(a, b);
  }

  protected override async getTracker(req: Record<string, unknown>): Promise<string> {
    const r = req as unknown as Request;
    const ip = resolveClientAddress(r.socket?.remoteAddress, r.headers['x-forwarded-for'], this.config.server, this.isTrustedProxy);
    return addressKey(ip);
  }

  protected override generateKey(_context: ExecutionContext, tracker: string, name: string): string {
    return `http:${name}:${tracker}`;
  }
}
