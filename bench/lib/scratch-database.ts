import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EmbeddedDatabase } from '../../src/database/embedded-database';

/**
 * The database of a standalone bench script: `uri` when given (an external MongoDB), else the
 * embedded FerretDB started in a temporary folder, database `name`. `stop` stops what was started
 * and removes the folder.
 */
export async function scratchDatabase(uri: string | undefined, name: string): Promise<{ uri: string; stop(): Promise<void> }> {
  if (uri) return { uri, stop: async () => undefined };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `sync-${name}-`));
  const db = new EmbeddedDatabase({ dataDir: path.join(dir, 'db'), autoRestart: false });
  try {
    return {
      uri: `${await db.start()}/${name}`,
      stop: async () => {
        await db.stop();
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    await db.stop().catch(() => undefined);
    fs.rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}
