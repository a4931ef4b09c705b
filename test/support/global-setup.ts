/* Starts one embedded FerretDB for the whole e2e run (each suite uses its own database in it),
 * unless MONGODB_URI points at a real MongoDB. Also prepares a folder for test artifacts. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EmbeddedDatabase } from '../../src/database/embedded-database';

export default async function globalSetup(): Promise<void> {
  fs.mkdirSync(path.join(__dirname, '..', '..', 'test-artifacts'), { recursive: true });
  if (process.env.MONGODB_URI) {
    process.env.TEST_MONGODB_BASE = process.env.MONGODB_URI.replace(/\/[^/?]*(\?.*)?$/, '');
    return;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sync-test-db-'));
  const db = new EmbeddedDatabase({ dataDir: dir, autoRestart: true });
  await db.start();
  process.env.TEST_MONGODB_BASE = db.uri;
  (globalThis as Record<string, unknown>).__TEST_DB__ = db;
  (globalThis as Record<string, unknown>).__TEST_DB_DIR__ = dir;
}
