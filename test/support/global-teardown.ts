import * as fs from 'node:fs';
import type { EmbeddedDatabase } from '../../src/database/embedded-database';

export default async function globalTeardown(): Promise<void> {
  const g = globalThis as Record<string, unknown>;
  const db = g.__TEST_DB__ as EmbeddedDatabase | undefined;
  if (db) await db.stop();
  const dir = g.__TEST_DB_DIR__ as string | undefined;
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
}
