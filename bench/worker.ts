/* A load-generator process (started by bench/lib/pool.ts). It holds sockets and runs the client side of
 * the scenarios on command from the coordinator (bench/run.ts), answering with counts and encoded
 * latency histograms. */
import { LiteSocket, nowMs } from './lib/lite-client';
import { createHistogram, encodeHistogram, recordMs } from './lib/hist';
import { benchDoc, EV, insertChange } from './lib/protocol';

const WI = Number(process.env.BENCH_WORKER_INDEX ?? 0);

interface Held {
  s: LiteSocket;
  userId: string;
}

const sockets: Held[] = [];
let listener:
  | {
      tag: string;
      hist: ReturnType<typeof createHistogram>;
      received: number;
      foreign: number;
      perSocket: number[];
      /** Per change (writer's sequence number): first and last receipt in this process. */
      span: Map<number, [number, number]>;
    }
  | undefined;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const errText = (e: unknown) => String((e as Error)?.message ?? e).slice(0, 200);

function bump(codes: Record<string, number>, code: string): void {
  codes[code] = (codes[code] ?? 0) + 1;
}

/** Runs `fn` over `items` with at most `limit` in flight. */
async function eachLimit<T>(items: T[], limit: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i], i);
      }
    }),
  );
}

async function openJoined(url: string, userId: string, subscribe?: { collection: string; filter?: string } | null): Promise<LiteSocket> {
  const s = await LiteSocket.connect(url);
  try {
    const ack = await s.emitWithAck(EV.join, { userId }, 60_000);
    if (!ack?.success) throw new Error(`join refused: ${ack?.code ?? JSON.stringify(ack)}`);
    if (subscribe) {
      const sub = await s.emitWithAck(EV.subscribe, { collection: subscribe.collection, filter: subscribe.filter, bootstrap: false }, 60_000);
      if (!sub?.success) throw new Error(`subscribe refused: ${sub?.code ?? JSON.stringify(sub)}`);
    }
    return s;
  } catch (e) {
    s.close();
    throw e;
  }
}

const commands: Record<string, (a: any) => Promise<unknown>> = {
  /** Opens `count` more sockets, each connected and joined (and subscribed when asked). */
  async connect(a: { url: string; count: number; userPrefix: string; offset: number; concurrency: number; subscribe?: { collection: string } | null }) {
    const hist = createHistogram();
    const errors: Record<string, number> = {};
    let connected = 0;
    const t0 = nowMs();
    await eachLimit(
      Array.from({ length: a.count }, (_, i) => i),
      a.concurrency,
      async (i) => {
        const userId = `${a.userPrefix}${a.offset + i}`;
        const t = nowMs();
        try {
          const s = await openJoined(a.url, userId, a.subscribe);
          recordMs(hist, nowMs() - t);
          sockets.push({ s, userId });
          connected++;
        } catch (e) {
          bump(errors, errText(e));
        }
      },
    );
    return { connected, failed: a.count - connected, errors, elapsedMs: nowMs() - t0, hist: encodeHistogram(hist), held: sockets.length };
  },

  /** Closed loop: each of the first `clients` sockets sends, awaits the ack, sends again, until endAt. */
  async write(a: { mode: 'batch' | 'single'; clients: number; startAt: number; endAt: number; batchSize: number; collection: string; tag: string }) {
    const hist = createHistogram();
    const codes: Record<string, number> = {};
    let acked = 0;
    let failed = 0;
    let requests = 0;
    let seq = 0;
    const loops = sockets.slice(0, a.clients).map(async ({ s }, ci) => {
      while (nowMs() < a.endAt && !s.closed) {
        const n = a.mode === 'batch' ? a.batchSize : 1;
        const changes = [];
        for (let k = 0; k < n; k++) {
          const i = seq++;
          changes.push(insertChange(a.collection, `${a.tag}-${WI}-${ci}-${i}`, benchDoc(i)));
        }
        const t0 = nowMs();
        let ok = 0;
        let bad = 0;
        try {
          if (a.mode === 'batch') {
            const ack = await s.emitWithAck(EV.changeBatch, { changes }, 120_000);
            if (ack?.success) {
              ok = ack.successCount ?? 0;
              bad = ack.failureCount ?? 0;
              if (bad) for (const r of ack.results ?? []) if (!r.success) bump(codes, r.code ?? 'unknown');
            } else {
              bad = n;
              bump(codes, ack?.code ?? 'no-ack');
            }
          } else {
            const ack = await s.emitWithAck(EV.change, changes[0], 120_000);
            if (ack?.success) ok = 1;
            else {
              bad = 1;
              bump(codes, ack?.code ?? 'no-ack');
            }
          }
        } catch (e) {
          bad = n;
          bump(codes, errText(e));
          await sleep(10);
        }
        const t1 = nowMs();
        // throughput = acks completed inside the window (a request may have started before it)
        if (t1 >= a.startAt && t1 <= a.endAt) {
          recordMs(hist, t1 - t0);
          requests++;
          acked += ok;
          failed += bad;
        }
      }
    });
    await Promise.all(loops);
    return { acked, failed, requests, codes, hist: encodeHistogram(hist) };
  },

  /** Starts recording, on every held socket, the latency of the `sync:changes` items tagged `tag`. */
  async listen(a: { tag: string }) {
    const l = { tag: a.tag, hist: createHistogram(), received: 0, foreign: 0, perSocket: sockets.map(() => 0), span: new Map<number, [number, number]>() };
    listener = l;
    sockets.forEach(({ s }, idx) => {
      s.onRawEvent((text, at) => {
        if (listener !== l) return false;
        const start = text.indexOf('[');
        const args = JSON.parse(text.slice(start)) as [string, unknown];
        if (args[0] !== EV.changes) return true;
        const list = Array.isArray(args[1]) ? args[1] : [args[1]];
        for (const c of list as { data?: { bt?: string; bs?: number; bw?: number; bq?: number } }[]) {
          const d = c?.data;
          if (!d || d.bt !== l.tag) {
            l.foreign++;
            continue;
          }
          if (d.bw) continue; // warm-up
          recordMs(l.hist, at - d.bs!);
          const sp = l.span.get(d.bq!);
          if (!sp) l.span.set(d.bq!, [at, at]);
          else if (at > sp[1]) sp[1] = at;
          l.received++;
          l.perSocket[idx]++;
        }
        return true;
      });
    });
    return { listening: sockets.length };
  },

  async listenReport() {
    const l = listener;
    if (!l) return { received: 0, hist: encodeHistogram(createHistogram()), minPerSocket: 0, maxPerSocket: 0, foreign: 0 };
    return {
      received: l.received,
      foreign: l.foreign,
      hist: encodeHistogram(l.hist),
      spans: [...l.span.entries()].map(([q, [first, last]]) => [q, first, last]),
      minPerSocket: l.perSocket.length ? Math.min(...l.perSocket) : 0,
      maxPerSocket: l.perSocket.length ? Math.max(...l.perSocket) : 0,
    };
  },

  /**
   * Open loop: changes at `rate` per second from startAt to endAt (warm-up first), round-robin over the
   * connected sockets; `batch` > 1 sends them as sync:changeBatch of that many (stamped when sent).
   */
  async writeRate(a: { rate: number; warmupAt: number; startAt: number; endAt: number; collection: string; tag: string; batch: number; maxInFlight: number }) {
    const hist = createHistogram();
    const codes: Record<string, number> = {};
    let sent = 0;
    let measuredSent = 0;
    let acked = 0;
    let failed = 0;
    let maxInFlight = 0;
    const inflight = new Set<Promise<void>>();
    const per = Math.max(1, Math.floor(a.batch || 1));
    const send = (warm: boolean) => {
      const i0 = sent;
      sent += per;
      const { s } = sockets[Math.floor(i0 / per) % sockets.length];
      const t0 = nowMs();
      const changes = Array.from({ length: per }, (_, k) =>
        insertChange(a.collection, `${a.tag}-${i0 + k}`, benchDoc(i0 + k, { bt: a.tag, bs: t0, bw: warm ? 1 : 0, bq: i0 + k })),
      );
      if (!warm) measuredSent += per;
      const settled = (ok: number, code?: string) => {
        if (warm) return;
        acked += ok;
        for (let k = 0; k < ok; k++) recordMs(hist, nowMs() - t0);
        if (ok < per) {
          failed += per - ok;
          bump(codes, code ?? 'no-ack');
        }
      };
      const p = (
        per === 1
          ? s.emitWithAck(EV.change, changes[0], 120_000).then((ack) => settled(ack?.success ? 1 : 0, ack?.success ? undefined : ack?.code))
          : s
              .emitWithAck(EV.changeBatch, { changes }, 120_000)
              .then((ack) => (ack?.success ? settled(ack.successCount, 'partial') : settled(0, ack?.code ?? 'partial')))
      ).catch((e) => {
        if (!warm) {
          failed += per;
          bump(codes, errText(e));
        }
      });
      inflight.add(p);
      if (inflight.size > maxInFlight) maxInFlight = inflight.size;
      void p.finally(() => inflight.delete(p));
    };
    const origin = a.warmupAt;
    while (nowMs() < origin) await sleep(1);
    for (;;) {
      const now = nowMs();
      if (now >= a.endAt) break;
      const due = Math.floor(((now - origin) / 1000) * a.rate) + 1;
      // behind schedule with the in-flight cap reached: wait for an ack (the rate achieved is reported)
      if (sent < due && inflight.size >= a.maxInFlight) {
        await Promise.race([...inflight, sleep(Math.max(1, a.endAt - now))]);
        continue;
      }
      if (sent < due) {
        send(now < a.startAt);
        continue;
      }
      const nextAt = origin + (sent / a.rate) * 1000;
      await sleep(Math.max(0, Math.min(a.endAt, nextAt) - nowMs() - 0.5));
    }
    const sendWindowMs = a.endAt - a.startAt;
    await Promise.race([Promise.all([...inflight]), sleep(60_000)]);
    return { sent: measuredSent, acked, failed, codes, maxInFlight, sendWindowMs, hist: encodeHistogram(hist) };
  },

  /** Writes `count` inserts as fast as possible with `clients` sockets in batches (catch-up set-up). */
  async fill(a: { count: number; clients: number; batchSize: number; collection: string; prefix: string }) {
    let next = 0;
    let acked = 0;
    let failed = 0;
    const codes: Record<string, number> = {};
    const t0 = nowMs();
    await Promise.all(
      sockets.slice(0, a.clients).map(async ({ s }) => {
        while (next < a.count) {
          const n = Math.min(a.batchSize, a.count - next);
          const first = next;
          next += n;
          const changes = Array.from({ length: n }, (_, k) => insertChange(a.collection, `${a.prefix}-${first + k}`, benchDoc(first + k)));
          for (let attempt = 0; ; attempt++) {
            try {
              const ack = await s.emitWithAck(EV.changeBatch, { changes }, 120_000);
              if (!ack?.success) throw new Error(ack?.code ?? 'no-ack');
              acked += ack.successCount ?? 0;
              failed += ack.failureCount ?? 0;
              break;
            } catch (e) {
              bump(codes, errText(e));
              if (attempt >= 3) {
                failed += n;
                break;
              }
              await sleep(200);
            }
          }
        }
      }),
    );
    return { acked, failed, codes, elapsedMs: nowMs() - t0 };
  },

  /** Joins a fresh socket and returns the feed head cursor it was given. */
  async head(a: { url: string; userId: string }) {
    const s = await LiteSocket.connect(a.url);
    try {
      const ack = await s.emitWithAck(EV.join, { userId: a.userId }, 30_000);
      if (!ack?.success) throw new Error(`join refused: ${ack?.code}`);
      return { cursor: ack.cursor };
    } finally {
      s.close();
    }
  },

  /** A client coming back online: joins and pages sync:get_changes from `cursor` until hasMore is false. */
  async catchup(a: { url: string; userId: string; cursor?: string; limit: number; collection?: string }) {
    const t0 = nowMs();
    const s = await openJoined(a.url, a.userId, null);
    const tJoined = nowMs();
    const hist = createHistogram();
    const seen = new Set<string>();
    let received = 0;
    let pages = 0;
    let emptyPages = 0;
    let cursor = a.cursor;
    try {
      for (;;) {
        const t = nowMs();
        const ack = await s.emitWithAck(EV.getChanges, { cursor, limit: a.limit, collection: a.collection }, 120_000);
        recordMs(hist, nowMs() - t);
        if (!ack?.success) throw new Error(`get_changes failed: ${ack?.code} ${ack?.error}`);
        pages++;
        received += ack.changes.length;
        if (!ack.changes.length) emptyPages++;
        for (const c of ack.changes) seen.add(c.changeId);
        cursor = ack.cursor;
        if (!ack.hasMore) break;
        if (emptyPages > 50) throw new Error('get_changes keeps answering empty pages with hasMore');
      }
    } finally {
      s.close();
    }
    const t1 = nowMs();
    return { received, unique: seen.size, pages, joinMs: tJoined - t0, elapsedMs: t1 - tJoined, hist: encodeHistogram(hist) };
  },

  /** Subscribes with bootstrap and counts the documents of the sync:bootstrap pages until `done`. */
  async bootstrap(a: { url: string; userId: string; collection: string; timeoutMs: number }) {
    const s = await openJoined(a.url, a.userId, null);
    try {
      let docs = 0;
      let pages = 0;
      // eslint-disable-next-line prefer-const -- assigned once, after the bootstrap listener that reads it is installed
      let subId: string | undefined;
      const early: { subscriptionId?: string; data?: unknown[]; done?: boolean }[] = [];
      let finish!: () => void;
      const finished = new Promise<void>((r) => (finish = r));
      const onPage = (p: { subscriptionId?: string; data?: unknown[]; done?: boolean }) => {
        pages++;
        docs += Array.isArray(p.data) ? p.data.length : 0;
        if (p.done) finish();
      };
      s.on(EV.bootstrap, (raw) => {
        const p = raw as { subscriptionId?: string; data?: unknown[]; done?: boolean };
        if (subId === undefined) early.push(p);
        else if (p.subscriptionId === subId) onPage(p);
      });
      const t0 = nowMs();
      const ack = await s.emitWithAck(EV.subscribe, { collection: a.collection, bootstrap: true }, a.timeoutMs);
      const ackMs = nowMs() - t0;
      if (!ack?.success) throw new Error(`subscribe failed: ${ack?.code} ${ack?.error}`);
      subId = ack.subscriptionId;
      for (const p of early.splice(0)) if (p.subscriptionId === subId) onPage(p);
      await Promise.race([
        finished,
        sleep(a.timeoutMs).then(() => {
          throw new Error(`bootstrap did not finish within ${a.timeoutMs} ms (${docs} documents in ${pages} pages)`);
        }),
      ]);
      return { docs, pages, count: ack.count, ackMs, elapsedMs: nowMs() - t0 };
    } finally {
      s.close();
    }
  },

  async disconnect() {
    const n = sockets.length;
    for (const { s } of sockets.splice(0)) s.close();
    listener = undefined;
    await sleep(50);
    return { closed: n };
  },

  async info() {
    return { held: sockets.length, open: sockets.filter((x) => !x.s.closed).length, memory: process.memoryUsage() };
  },

  async exit() {
    for (const { s } of sockets.splice(0)) s.close();
    setTimeout(() => process.exit(0), 20);
    return {};
  },
};

process.on('message', (m: { id: number; cmd: string; args: unknown }) => {
  const fn = commands[m.cmd];
  const reply = (msg: Record<string, unknown>) => process.send?.({ id: m.id, ...msg });
  if (!fn) return reply({ error: `unknown command ${m.cmd}` });
  fn(m.args).then(
    (result) => reply({ result }),
    (e) => reply({ error: errText(e) }),
  );
});
process.on('disconnect', () => process.exit(0));
process.send?.({ ready: true });
