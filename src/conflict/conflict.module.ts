import { Global, Module } from '@nestjs/common';
import { APP_CONFIG } from '../config/config.module';
import { AppConfig } from '../config/config.schema';
import { STRATEGIES } from './conflict.strategies';
import { CONFLICT_RESOLVER } from './conflict.types';

/**
 * Provides CONFLICT_RESOLVER, chosen by CONFLICT_STRATEGY. To plug in your own strategy, provide a
 * `ConflictStrategy` function under CONFLICT_RESOLVER in your module (see docs/EXTENDING.md).
 */
@Global()
@Module({
  providers: [
    {
      provide: CONFLICT_RESOLVER,
      inject: [APP_CONFIG],
      useFactory: (config: AppConfig) => STRATEGIES[config.sync.conflictStrategy],
    },
  ],
  exports: [CONFLICT_RESOLVER],
})
export class ConflictModule {}
