/**
 * Example client: a shared task list in the terminal.
 *
 *   npm run dev:client [userId] [options]         (= tsx libs/client/examples/example.ts)
 *   npx ts-node client/example.ts demo-user-2
 *
 * Open it in several terminals (with the server running: `npm start`) and watch changes made in
 * one appear in the others. Type `help` for the commands.
 *
 * Options:
 *   --server URL      sync server (default $SYNC_SERVER_URL or http://localhost:3000)
 *   --token JWT       authenticate with a token (default $SYNC_TOKEN; dev mode needs none)
 *   --data DIR        outbox/documents directory (default data/clients/<userId>)
 *   --memory          keep nothing on disk
 *   --script          no prompt: add --add N tasks, print JSON lines, exit once synced (+ --linger ms)
 *   --add N           tasks to add in script mode (default 3)
 *   --linger MS       script mode: keep printing arrivals this long after syncing (default 1000; -1: forever)
 */
import * as path from 'node:path';
import * as readline from 'node:readline';
import { FileStorage, MemoryStorage, SyncClient, SyncClientError, type SyncDocument, type SyncStorage, type ViewChange } from '@realm-sync/client';

interface Args {
  userId: string;
  server: string;
  token?: string;
  data?: string;
  memory: boolean;
  script: boolean;
  add: number;
  linger: number;
}

function parseArgs(argv: string[]): Args {
  const a: Args = {
    userId: 'demo-user-1',
    server: process.env.SYNC_SERVER_URL || 'http://localhost:3000',
    token: process.env.SYNC_TOKEN || undefined,
    memory: false,
    script: false,
    add: 3,
    linger: 1000,
  };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i];
    const next = () => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${v} needs a value`);
      return x;
    };
    if (v === '--server') a.server = next();
    else if (v === '--token') a.token = next();
    else if (v === '--data') a.data = next();
    else if (v === '--memory') a.memory = true;
    else if (v === '--script') a.script = true;
    else if (v === '--add') a.add = Number(next());
    else if (v === '--linger') a.linger = Number(next());
    else if (v === '--help' || v === '-h') {
      console.log('usage: example.ts [userId] [--server URL] [--token JWT] [--data DIR | --memory] [--script [--add N] [--linger MS]]');
      process.exit(0);
    } else if (!v.startsWith('--')) a.userId = v;
    else throw new Error(`unknown option ${v}`);
  }
  return a;
}

const COLLECTION = 'tasks';

function describeChange(c: ViewChange): string {
  const title = (c.doc?.title ?? c.previous?.title ?? c.documentId) as string;
  const by = (c.doc?._updated_by as string | undefined) ?? 'someone';
  if (!c.doc) return `${by === 'someone' ? 'a task was' : by} deleted: "${title}"`;
  if (!c.previous) return `${by} added "${title}"`;
  if (c.previous.completed !== c.doc.completed) return `${by} ${c.doc.completed ? 'completed' : 'reopened'} "${title}"`;
  return `${by} changed "${title}"`;
}

/** Equal but for the sync bookkeeping fields (author, timestamp). */
function sameContent(a: ViewChange['doc'], b: ViewChange['previous']): boolean {
  const content = (d: ViewChange['doc']) =>
    d &&
    JSON.stringify(
      Object.keys(d)
        .filter((k) => k !== '_updated_by' && k !== 'sync_updated_at')
        .sort()
        .map((k) => [k, d[k]]),
    );
  return !!a && !!b && content(a) === content(b);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const storage: SyncStorage = args.memory
    ? new MemoryStorage()
    : new FileStorage(args.data ?? path.join('data', 'clients', args.userId.replace(/[^A-Za-z0-9_.-]/g, '_')));
  const client = new SyncClient(args.server, args.userId, storage, {
    token: args.token,
    logger: args.script ? null : { warn: (m) => console.warn(`! ${m}`), error: (m) => console.error(`! ${m}`) },
  });
  if (args.script) return runScript(client, args);
  return runInteractive(client, args);
}

/** Script mode: JSON lines on stdout, for tests and demos. */
async function runScript(client: SyncClient, args: Args): Promise<void> {
  const out = (o: Record<string, unknown>) => process.stdout.write(JSON.stringify(o) + '\n');
  client.on('change', (c) => {
    if (c.source !== 'local' && c.source !== 'ack' && c.source !== 'load') out({ event: 'change', source: c.source, id: c.documentId, doc: c.doc });
  });
  client.on('online', (online) => out({ event: 'online', online }));
  client.on('rejected', (r) => out({ event: 'rejected', id: r.change.documentId, code: r.code }));
  await client.initialize();
  out({ event: 'started', userId: args.userId, pending: client.getPendingChangesCount(), tasks: client.getDocuments(COLLECTION).length });
  await client.subscribe(COLLECTION);
  client.connect().catch(() => out({ event: 'offline' }));
  for (let i = 1; i <= args.add; i++) {
    const id = `${args.userId}-${Date.now().toString(36)}-${i}`;
    await client.makeChange('insert', COLLECTION, id, { title: `${args.userId} task ${i}`, completed: false, owner: args.userId });
    out({ event: 'stored', id });
  }
  await client.whenSynced(24 * 3600_000);
  out({ event: 'synced', pending: client.getPendingChangesCount(), tasks: client.getDocuments(COLLECTION).map((d) => d._id) });
  if (args.linger < 0) return;
  await new Promise((r) => setTimeout(r, args.linger));
  out({ event: 'done', tasks: client.getDocuments(COLLECTION).map((d) => d._id) });
  await client.close();
}

async function runInteractive(client: SyncClient, args: Args): Promise<void> {
  await client.initialize();
  console.log(`Task list of ${args.userId} on ${args.server} (${client.storage.kind} storage). Type "help" for commands.`);
  await client.subscribe(COLLECTION);
  const rl = readline.createInterface({ input: process.stdin, output: process.stdout, terminal: process.stdin.isTTY });
  const status = () => `${client.isOnline() ? 'online' : 'offline'}, ${client.getPendingChangesCount()} pending`;
  const prompt = () => {
    rl.setPrompt(`[${args.userId} | ${status()}] > `);
    rl.prompt(true);
  };
  const say = (line: string) => {
    if (process.stdout.isTTY) {
      readline.clearLine(process.stdout, 0);
      readline.cursorTo(process.stdout, 0);
    }
    console.log(line);
    prompt();
  };
  const tasks = (): SyncDocument[] => client.getDocuments(COLLECTION);
  const pick = (ref: string | undefined): SyncDocument | undefined => {
    if (!ref) return undefined;
    const list = tasks();
    const n = Number(ref);
    return Number.isInteger(n) && n >= 1 && n <= list.length ? list[n - 1] : list.find((t) => t._id === ref);
  };
  const list = () => {
    const all = tasks();
    if (!all.length) return say('  (no tasks yet: add one with "add <title>")');
    say(
      all
        .map((t, i) => {
          const pending = client.view.isPending(COLLECTION, t._id as string) ? ' (pending)' : '';
          return `  ${String(i + 1).padStart(2)}. [${t.completed ? 'x' : ' '}] ${t.title as string}${pending}  (${(t.owner as string) ?? '?'})`;
        })
        .join('\n'),
    );
  };

  client.on('change', (c) => {
    // the server's confirmation of our own change only adds bookkeeping fields: nothing to tell
    if (c.source === 'remote' && sameContent(c.doc, c.previous)) return;
    if (c.source === 'remote') say(`← ${describeChange(c)}`);
    else if (c.source === 'conflict') say(`⚠ your change to "${(c.previous?.title as string) ?? c.documentId}" lost to a newer one`);
    else if (c.source === 'rollback') say(`⚠ the server refused your change to ${c.documentId}: rolled back`);
  });
  client.on('online', (online) => say(online ? '● connected' : '○ disconnected (changes are kept and sent on reconnect)'));
  client.on('error', (e) => say(`! ${e.message}`));

  // offline-first: commands work at once; the list is shown again once the first sync is done
  client.connect().then(list, (e: SyncClientError) => {
    if (e.code !== 'OFFLINE') say(`○ ${e.message}`);
  });
  list();

  const help = `commands:
  add <title>        add a task                 list | ls        show tasks
  toggle <n|id>      complete / reopen          rename <n> <t>   rename a task
  rm <n|id>          delete a task              status           connection and outbox
  offline | online   disconnect / reconnect     quit             leave (pending changes are kept)`;

  let queue = Promise.resolve();
  rl.on('line', (line) => {
    queue = queue.then(async () => {
      const [cmd, ...rest] = line.trim().split(/\s+/);
      const arg = rest.join(' ');
      try {
        switch ((cmd ?? '').toLowerCase()) {
          case '':
            return prompt();
          case 'help':
          case '?':
            return say(help);
          case 'add': {
            if (!arg) return say('usage: add <title>');
            const id = `task-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
            await client.makeChange('insert', COLLECTION, id, { title: arg, completed: false, owner: args.userId });
            return list();
          }
          case 'list':
          case 'ls':
            return list();
          case 'toggle':
          case 'done': {
            const t = pick(rest[0]);
            if (!t) return say('no such task');
            await client.makeChange('update', COLLECTION, t._id as string, { completed: !t.completed });
            return list();
          }
          case 'rename': {
            const t = pick(rest[0]);
            const title = rest.slice(1).join(' ');
            if (!t || !title) return say('usage: rename <n|id> <new title>');
            await client.makeChange('update', COLLECTION, t._id as string, { title });
            return list();
          }
          case 'rm':
          case 'delete':
          case 'del': {
            const t = pick(rest[0]);
            if (!t) return say('no such task');
            await client.makeChange('delete', COLLECTION, t._id as string);
            return list();
          }
          case 'status':
            return say(
              `${status()}; last sync ${client.getLastSyncTimestamp() ? new Date(client.getLastSyncTimestamp()).toISOString() : 'never'}; cursor ${client.getCursor() ?? '-'}`,
            );
          case 'offline':
            await client.disconnect();
            return say('○ disconnected on request: keep editing, then type "online"');
          case 'online':
            await client.connect().catch((e: SyncClientError) => say(`○ ${e.message}`));
            return list();
          case 'quit':
          case 'exit':
            return rl.close();
          default:
            return say(`unknown command "${cmd}" (try "help")`);
        }
      } catch (e) {
        say(`! ${(e as Error).message}`);
      }
    });
  });
  rl.on('close', () => {
    void queue
      .then(() => client.close())
      .then(() => {
        console.log(`bye (${client.getPendingChangesCount()} changes wait in the outbox for next time)`);
        process.exit(0);
      });
  });
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
