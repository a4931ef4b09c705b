import { join } from 'node:path';
import { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { NestExpressApplication } from '@nestjs/platform-express';
import { Logger as PinoLogger } from 'nestjs-pino';
import { AppModule } from './app.module';
import { SyncIoAdapter } from './common/io.adapter';
import { AppConfig } from './config/config.schema';
import { loadConfig } from './config/config.loader';
import { expressTrust } from './limits/client-address';

export interface CreateAppOptions {
  config?: AppConfig;
  /** Buffer logs until the pino logger is ready (default true). */
  bufferLogs?: boolean;
}

/** Builds the Nest application (used by main.ts, the tests and the benchmark). */
export async function createApp(opts: CreateAppOptions = {}): Promise<INestApplication> {
  const config = opts.config ?? loadConfig();
  const silent = config.server.logLevel === 'silent';
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(config), {
    bufferLogs: opts.bufferLogs ?? true,
    ...(silent ? { logger: false } : {}),
    cors: { origin: config.server.corsOrigins === '*' ? true : config.server.corsOrigins, credentials: config.server.corsOrigins !== '*' },
  });
  app.useLogger(app.get(PinoLogger));
  // req.ip (logs, audit) believes X-Forwarded-For exactly as far as the limits do (never its client-written left end)
  if (config.server.trustProxy) app.set('trust proxy', expressTrust(config.server));
  app.disable('x-powered-by');
  // static files: the demo page at /demo (public/ in the source tree, dist/public once built)
  app.useStaticAssets(join(__dirname, '..', 'public'), { index: ['index.html'], maxAge: 0 });
  app.useBodyParser('json', { limit: Math.max(config.limits.maxChangeBytes * Math.min(config.limits.maxBatchSize, 64), 1024 * 1024) });
  app.useWebSocketAdapter(new SyncIoAdapter(app, config));
  app.enableShutdownHooks();
  return app;
}
