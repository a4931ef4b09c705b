import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { freePort } from '../src/database/embedded-database';
import { testMongoUri } from './support/db';
import { waitFor } from './support/app';

const root = path.join(__dirname, '..');

/** LOG_PRETTY=true: the real entry point starts and writes human-readable lines (pino-pretty). */
describe('LOG_PRETTY', () => {
  it('starts the server with pretty, single-line logs instead of JSON', async () => {
    const port = await freePort();
    const proc = spawn(process.execPath, ['-r', path.join(root, 'bench/lib/register.js'), path.join(root, 'src/main.ts')], {
      cwd: root,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        NODE_ENV: 'test',
        PORT: String(port),
        HOST: '127.0.0.1',
        MONGODB_URI: testMongoUri('logpretty'),
        AUTH_MODE: 'dev',
        LOG_LEVEL: 'info',
        LOG_PRETTY: 'true',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    proc.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    proc.stderr!.on('data', (b: Buffer) => (out += b.toString()));
    let exit: number | string | null | undefined;
    const exited = new Promise<void>((resolve) =>
      proc.once('exit', (code, signal) => {
        exit = code ?? signal;
        resolve();
      }),
    );
    try {
      await waitFor(
        () => {
          if (exit !== undefined) throw new Error(`server exited (${exit}):\n${out}`);
          return out.includes('sync server listening on');
        },
        90_000,
        'the listening line',
      );
      const line = out.split('\n').find((l) => l.includes('sync server listening on'))!;
      // pino-pretty: "[time] INFO (pid): message", not a JSON object
      expect(line.trim().startsWith('{')).toBe(false);
      expect(line).toMatch(/\bINFO\b/);
      expect(line).toContain(`http://127.0.0.1:${port}`);
      expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200);
    } finally {
      if (exit === undefined) proc.kill('SIGTERM');
      await exited;
    }
  });
});
