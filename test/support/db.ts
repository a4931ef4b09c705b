import { randomBytes } from 'node:crypto';
import { Db, MongoClient } from 'mongodb';

export function testMongoBase(): string {
  const base = process.env.TEST_MONGODB_BASE;
  if (!base) throw new Error('TEST_MONGODB_BASE is not set: run e2e suites through jest (global setup starts the database)');
  return base;
}

/** A fresh, unique database name for one suite or test. */
export function uniqueDbName(prefix: string): string {
  return `${prefix.replace(/[^A-Za-z0-9_]/g, '_').slice(0, 30)}_${randomBytes(4).toString('hex')}`;
}

/** mongodb:// URI of a fresh database in the test server. */
export function testMongoUri(prefix: string): string {
  return `${testMongoBase()}/${uniqueDbName(prefix)}`;
}

/** Connects straight to a fresh test database with the MongoDB driver (no server in between). */
export async function connectTestDb(name: string, uri = testMongoUri(name)): Promise<{ db: Db; uri: string; client: MongoClient; close(): Promise<void> }> {
  const client = await MongoClient.connect(uri, { retryWrites: false, serverSelectionTimeoutMS: 10_000 });
  const db = client.db();
  return {
    db,
    uri,
    client,
    close: async () => {
      await db.dropDatabase().catch(() => undefined);
      await client.close();
    },
  };
}
