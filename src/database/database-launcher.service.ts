import { Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import * as path from 'node:path';
import { APP_CONFIG } from '../config/config.module';
import { AppConfig } from '../config/config.schema';
import { EmbeddedDatabase } from './embedded-database';

export const DEFAULT_DB_NAME = 'realm-sync';

/**
 * Decides where the database is: MONGODB_URI when set, otherwise the embedded FerretDB child process
 * (started here, supervised, stopped on shutdown after the Mongoose connection is closed).
 */
@Injectable()
export class DatabaseLauncher implements OnApplicationShutdown {
  private readonly logger = new Logger('Database');
  private embedded?: EmbeddedDatabase;
  private resolvedUri?: string;

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {}

  get isEmbedded(): boolean {
    return this.embedded !== undefined;
  }

  get embeddedDatabase(): EmbeddedDatabase | undefined {
    return this.embedded;
  }

  /** Whether the embedded child is up (always true for an external MongoDB). */
  get embeddedUp(): boolean {
    return this.embedded ? this.embedded.isRunning : true;
  }

  async uri(): Promise<string> {
    if (this.resolvedUri) return this.resolvedUri;
    if (this.config.mongodb.uri) {
      this.resolvedUri = this.config.mongodb.uri;
      this.logger.log(`using MongoDB at ${redactUri(this.resolvedUri)}`);
      return this.resolvedUri;
    }
    const dataDir = path.join(this.config.mongodb.dataDir, 'ferretdb');
    this.embedded = new EmbeddedDatabase({
      dataDir,
      binary: this.config.mongodb.ferretdbBin,
      logger: {
        log: (m) => this.logger.log(m),
        warn: (m) => this.logger.warn(m),
        error: (m) => this.logger.error(m),
        debug: (m) => this.logger.debug(m),
      },
    });
    this.embedded.on('down', () => this.logger.error('embedded database process stopped; readiness is failing until it is back'));
    this.embedded.on('up', ({ port }) => this.logger.log(`embedded database (FerretDB/SQLite) listening on 127.0.0.1:${port}, data in ${dataDir}`));
    const base = await this.embedded.start();
    this.resolvedUri = `${base}/${DEFAULT_DB_NAME}`;
    return this.resolvedUri;
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.embedded) await this.embedded.stop();
  }
}

export function redactUri(uri: string): string {
  return uri.replace(/\/\/([^@/]+)@/, '//***@');
}
