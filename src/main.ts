import 'reflect-metadata';
import * as fs from 'node:fs';
import { Logger } from '@nestjs/common';
import { createApp, installGracefulShutdown } from './bootstrap';
import { startTelemetry } from './telemetry/telemetry';
import { ConfigError, loadConfig } from './config/config.loader';
import { DataDirInUseError, EmbeddedDatabaseMissingError } from './database/embedded-database';

async function main() {
  // a .env file in the working directory is read (the environment wins over it)
  if (fs.existsSync('.env')) process.loadEnvFile('.env');
  let config;
  try {
    config = loadConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      // eslint-disable-next-line no-console
      console.error(e.message);
      process.exit(78); // EX_CONFIG
    }
    throw e;
  }
  // OpenTelemetry traces when the OTEL_* variables ask for them (off by default)
  startTelemetry();
  const app = await createApp({ config, shutdownHooks: false });
  installGracefulShutdown(app, config);
  await app.listen(config.server.port, config.server.host);
  const url = await app.getUrl();
  new Logger('Main').log(`sync server listening on ${url} (socket.io at /socket.io, NODE_ENV=${config.env})`);
}

main().catch((e) => {
  // eslint-disable-next-line no-console
  console.error(e instanceof EmbeddedDatabaseMissingError || e instanceof DataDirInUseError ? e.message : e);
  process.exit(1);
});
