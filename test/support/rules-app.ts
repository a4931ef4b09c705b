import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { connectClient, emitAck, startTestApp, type TestApp, ClientSocket } from './app';
import { hs256, TEST_SECRET } from './jwt';

/** A production-shaped server: HS256 JWTs (signed with TEST_SECRET) and a rules file. */
export interface RulesApp extends TestApp {
  /** A socket connected with a JWT for `sub` (plus `claims`) and joined (the join is asserted). */
  joined(sub: string, claims?: Record<string, unknown>): Promise<ClientSocket>;
  /** Closes the sockets joined so far. */
  closeSockets(): void;
}

/**
 * Starts the real app with `rules` as its rules file (written to a temporary folder) and JWT auth;
 * `env` adds or overrides variables. close() closes the joined sockets and the app and removes the folder.
 */
export async function startRulesApp(rules: unknown, env: Record<string, string | undefined>, name: string): Promise<RulesApp> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${name}-`));
  const file = path.join(dir, 'rules.json');
  fs.writeFileSync(file, JSON.stringify(rules));
  let t: TestApp;
  try {
    t = await startTestApp({ AUTH_JWT_SECRET: TEST_SECRET, SYNC_RULES_FILE: file, ...env }, name);
  } catch (e) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const sockets: ClientSocket[] = [];
  const closeSockets = () => {
    for (const s of sockets.splice(0)) s.close();
  };
  return {
    ...t,
    async joined(sub: string, claims: Record<string, unknown> = {}): Promise<ClientSocket> {
      const s = await connectClient(t.url, { auth: { token: await hs256({ sub, ...claims }, { expiresIn: '1h' }) } });
      sockets.push(s);
      expect(await emitAck(s, 'sync:join', {})).toMatchObject({ success: true, userId: sub });
      return s;
    },
    closeSockets,
    async close(): Promise<void> {
      closeSockets();
      await t.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
