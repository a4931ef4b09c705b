import { Global, Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { ThrottlerModule } from '@nestjs/throttler';
import { APP_CONFIG } from '../config/config.module';
import { AppConfig } from '../config/config.schema';
import { ConnectionLimitService } from './connection-limit.service';
import { HttpThrottlerGuard } from './http-throttler.guard';
import { RateLimitService } from './rate-limit.service';
import { ReadBudgetService } from './read-budget.service';

@Global()
@Module({
  imports: [
    ThrottlerModule.forRootAsync({
      inject: [APP_CONFIG],
      useFactory: (cfg: AppConfig) => ({
        throttlers: [{ name: 'default', ttl: cfg.limits.httpRateLimitWindowMs, limit: cfg.limits.httpRateLimitMax }],
        errorMessage: 'Too many requests: slow down and retry later',
      }),
    }),
  ],
  providers: [RateLimitService, ReadBudgetService, ConnectionLimitService, { provide: APP_GUARD, useClass: HttpThrottlerGuard }],
  exports: [RateLimitService, ReadBudgetService, ConnectionLimitService],
})
export class LimitsModule {}
