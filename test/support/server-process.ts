import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';

const ROOT = path.join(__dirname, '..', '..');

/** The real entry point (src/main.ts, compiled on the fly) running as a child process. */
export interface ServerProcess {
  proc: ChildProcess;
  url: string;
  /** Everything it wrote (stdout and stderr, in arrival order). */
  output: string[];
  /** Its exit code, or the signal's name. */
  exited: Promise<number | string | null>;
}

/**
 * Starts the server as a user runs it, on 127.0.0.1:`port`, with a minimal environment (PATH, HOME,
 * NODE_ENV=test, LOG_LEVEL=warn) plus `env`.
 */
export function spawnServer(port: number, env: Record<string, string | undefined>): ServerProcess {
  const proc = spawn(process.execPath, ['-r', path.join(ROOT, 'bench/lib/register.js'), path.join(ROOT, 'src/main.ts')], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, NODE_ENV: 'test', PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  proc.stdout!.on('data', (b: Buffer) => output.push(b.toString()));
  proc.stderr!.on('data', (b: Buffer) => output.push(b.toString()));
  const exited = new Promise<number | string | null>((resolve) => proc.once('exit', (code, signal) => resolve(code ?? signal)));
  return { proc, url: `http://127.0.0.1:${port}`, output, exited };
}
