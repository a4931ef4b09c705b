import { join } from 'node:path';
import { INestApplication, Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { NestExpressApplication } from '@nestjs/platform-express';
import type { NextFunction, Request, Response } from 'express';
import { Logger as PinoLogger } from 'nestjs-pino';
import { AppModule } from './app.module';
import { BodyErrorFilter } from './common/body-error.filter';
import type { AppExtension } from './app.extensions';
import { SyncIoAdapter } from './common/io.adapter';
import { AppConfig } from './config/config.schema';
import { loadConfig } from './config/config.loader';
import { expressTrust } from './limits/client-address';
import { DrainService } from './health/drain.service';
import { useAzureWebPubSub } from './integrations/azure/azure-web-pubsub';
import { staticHeaders } from './console/console.headers';
import { setupOpenApi } from './console/openapi';

export interface CreateAppOptions {
  config?: AppConfig;
  /** Buffer logs until the pino logger is ready (default true). */
  bufferLogs?: boolean;
  /**
   * Nest's own SIGTERM/SIGINT handling (app.close(), then the signal re-raised). Default true;
   * main.ts passes false and drains first (installGracefulShutdown).
   */
  shutdownHooks?: boolean;
  /** Your own Nest modules: a conflict resolver, a change router, a cluster bus (docs/EXTENDING.md). */
  extensions?: AppExtension[];
}

/** Builds the Nest application (used by main.ts, the tests and the benchmark). */
export async function createApp(opts: CreateAppOptions = {}): Promise<INestApplication> {
  const config = opts.config ?? loadConfig();
  const silent = config.server.logLevel === 'silent';
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(config, opts.extensions), {
    bufferLogs: opts.bufferLogs ?? true,
    ...(silent ? { logger: false } : {}),
    cors: { origin: config.server.corsOrigins === '*' ? true : config.server.corsOrigins, credentials: config.server.corsOrigins !== '*' },
  });
  app.useLogger(app.get(PinoLogger));
  // req.ip (logs, audit) believes X-Forwarded-For exactly as far as the limits do (never its client-written left end)
  if (config.server.trustProxy) app.set('trust proxy', expressTrust(config.server));
  app.disable('x-powered-by');
  // static files: the demo page at /demo (public/ in the source tree, dist/public once built)
  app.useStaticAssets(join(__dirname, '..', 'public'), { index: ['index.html'], maxAge: 0, setHeaders: staticHeaders(join(__dirname, '..', 'public')) });
  // graceful shutdown: HTTP writes being handled are waited for; writes arriving while draining are refused
  const drain = app.get(DrainService);
  app.use((req: Request, res: Response, next: NextFunction) => {
    if (req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS') return next();
    if (drain.draining) {
      res.status(503).set('Retry-After', '1').json(drain.refusal());
      return;
    }
    const done = drain.begin();
    res.once('finish', done);
    res.once('close', done);
    next();
  });
  app.useGlobalFilters(new BodyErrorFilter(app.getHttpAdapter()));
  app.useBodyParser('json', { limit: Math.max(config.limits.maxChangeBytes * Math.min(config.limits.maxBatchSize, 64), 1024 * 1024) });
  const io = new SyncIoAdapter(app, config);
  const { webPubSubConnectionString: connectionString, webPubSubHub: hub } = config.scale;
  // Azure Web PubSub for Socket.IO holds the client connections when configured (src/integrations/azure)
  if (connectionString) io.onServerCreated((server) => useAzureWebPubSub(server, { connectionString, hub }));
  app.useWebSocketAdapter(io);
  // OpenAPI at /docs and /docs-json (no data in it; API_DOCS=false turns it off)
  if (config.server.apiDocs) setupOpenApi(app);
  if (opts.shutdownHooks ?? true) app.enableShutdownHooks();
  return app;
}

/**
 * SIGTERM/SIGINT: drain (DrainService: /ready 503, no new sockets or messages, the writes being
 * handled finish, sockets get `sync:shutdown` and are disconnected), close the application (bus, HTTP
 * server, database), exit 0. Whatever still runs after `shutdownGraceMs` makes the process exit 1.
 */
export function installGracefulShutdown(app: INestApplication, config: AppConfig, exit: (code: number) => void = (c) => process.exit(c)): void {
  const logger = new Logger('Shutdown');
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    const started = Date.now();
    logger.log(`${signal}: shutting down (grace ${config.server.shutdownGraceMs} ms)`);
    const deadline = setTimeout(() => {
      logger.error(`still not closed after ${config.server.shutdownGraceMs} ms (SHUTDOWN_GRACE_MS): exiting`);
      exit(1);
    }, config.server.shutdownGraceMs);
    deadline.unref();
    void (async () => {
      try {
        await app.get(DrainService).drain();
        await app.close();
        logger.log(`closed in ${Date.now() - started} ms`);
        clearTimeout(deadline);
        exit(0);
      } catch (e) {
        logger.error(`shutdown failed: ${(e as Error)?.stack ?? String(e)}`);
        exit(1);
      }
    })();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
