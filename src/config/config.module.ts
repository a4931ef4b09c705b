import { createHmac, hkdfSync } from 'node:crypto';
import { DynamicModule, Global, Module } from '@nestjs/common';
import { configureCursorSigner } from '@sync/protocol';
import { AppConfig } from './config.schema';
import { loadConfig } from './config.loader';

export const APP_CONFIG = Symbol('APP_CONFIG');

@Global()
@Module({})
export class ConfigModule {
  /** With no argument the config is loaded (and validated) from the environment. */
  static forRoot(config?: AppConfig): DynamicModule {
    return {
      module: ConfigModule,
      providers: [
        {
          provide: APP_CONFIG,
          useFactory: () => {
            const c = config ?? loadConfig();
            keyCursors(c);
            return c;
          },
        },
      ],
      exports: [APP_CONFIG],
    };
  }
}

/**
 * Cursors carry a tag keyed from the server secret (libs/protocol/src/cursor.ts), set here because
 * the configuration is the first thing every application instance builds, before any cursor is made.
 */
function keyCursors(c: AppConfig): void {
  const key = Buffer.from(hkdfSync('sha256', Buffer.from(c.serverSecret.value, 'utf8'), Buffer.alloc(0), 'sync cursor tag v2', 32));
  configureCursorSigner((data) => createHmac('sha256', key).update(data).digest('base64url'));
}
