import { freePort } from '../src/database/embedded-database';
import { testMongoUri } from './support/db';
import { waitFor } from './support/app';
import { spawnServer } from './support/server-process';

/** LOG_PRETTY=true: the real entry point starts and writes human-readable lines (pino-pretty). */
describe('LOG_PRETTY', () => {
  it('starts the server with pretty, single-line logs instead of JSON', async () => {
    const port = await freePort();
    const server = spawnServer(port, { MONGODB_URI: testMongoUri('logpretty'), AUTH_MODE: 'dev', LOG_LEVEL: 'info', LOG_PRETTY: 'true' });
    const out = () => server.output.join('');
    let exit: number | string | null | undefined;
    void server.exited.then((c) => (exit = c));
    try {
      await waitFor(
        () => {
          if (exit !== undefined) throw new Error(`server exited (${exit}):\n${out()}`);
          return out().includes('sync server listening on');
        },
        90_000,
        'the listening line',
      );
      const line = out()
        .split('\n')
        .find((l) => l.includes('sync server listening on'))!;
      // pino-pretty: "[time] INFO (pid): message", not a JSON object
      expect(line.trim().startsWith('{')).toBe(false);
      expect(line).toMatch(/\bINFO\b/);
      expect(line).toContain(`http://127.0.0.1:${port}`);
      expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200);
    } finally {
      if (exit === undefined) server.proc.kill('SIGTERM');
      await server.exited;
    }
  });
});
