import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG } from '../config/config.module';
import { AppConfig } from '../config/config.schema';

/** Per-user change rate limit (SYNC_RATE_LIMIT_MAX changes per SYNC_RATE_LIMIT_WINDOW_MS). */
@Injectable()
export class RateLimitService {
  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {}

  /**
   * Takes `count` changes from the user's allowance; throws RateLimitedError (with retryAfterMs)
   * and takes nothing when the allowance is too small.
   */
  consume(_userId: string, _count: number): void {
    if (this.config.limits.rateLimitDisabled) return;
  }
}
