/* Scenario 5 — catch-up: a client joins (and takes the feed's head cursor), goes offline while
 * `changes` inserts are written by other clients, then comes back and pages sync:get_changes from its
 * cursor (limit 5000) until hasMore is false. Then, when the server has subscriptions, a fresh client
 * subscribes to the collection (now holding those documents) with bootstrap and receives them all.
 * Between the writes and the reads, the database's own read rates for the same data (read-ceiling.ts):
 * the server's figures stand next to what the database serves with the driver alone. */
import { Ctx, phaseOf, fmt, Row, ScenarioResult } from '../lib/context';
import { mergeHistograms, summarize } from '../lib/hist';
import { split } from '../lib/pool';
import { fillDirect } from './catchup-direct';
import { measureReadCeiling } from './read-ceiling';

const COLLECTION = 'catchup';

/** `server / database` CPU-seconds per 100,000 items from a phase's CPU shares (% of a core). */
function cpuPer100k(cpu: Record<string, number>, elapsedMs: number, items: number): string {
  const per = (pct: number | undefined) => (pct === undefined ? '?' : fmt(((pct / 100) * (elapsedMs / 1000) * 100_000) / Math.max(1, items)));
  return `${per(cpu.server)} / ${per(cpu.database)}`;
}

export async function runCatchup(ctx: Ctx): Promise<Omit<ScenarioResult, 'elapsedS'>> {
  const o = ctx.opts.catchup;
  const server = await ctx.startServer('bench_catchup');
  const rows: Row[] = [];
  const notes: string[] = [];
  const figures: Record<string, unknown> = {};
  const phases: ScenarioResult['phases'] = {};
  try {
    const reader = ctx.pool.clients[0];
    const { cursor } = await reader.call<{ cursor: string }>('head', { url: server.url, userId: 'reader' });

    // the reader is offline: other clients write (or, with --catchup-fill=direct, the driver writes
    // the same documents and feed entries straight into the database)
    let written: number;
    if (o.fill === 'direct') {
      ctx.log(`  writing ${o.changes} changes straight into the database (--catchup-fill=direct)`);
      const d = await fillDirect(`${ctx.dbBaseUri}/bench_catchup`, COLLECTION, 'doc', o.changes);
      written = d.written;
      figures.fill = { written, direct: true, changesPerS: Math.round(written / (d.elapsedMs / 1000)) };
      rows.push({ metric: 'written while offline (driver, straight into the database)', value: `${fmt(written)} at ${fmt(written / (d.elapsedMs / 1000))}/s` });
    } else {
      const clients = split(o.fillClients, ctx.pool.clients.length);
      await ctx.pool.all('connect', (i) =>
        clients[i] ? { url: server.url, count: clients[i], userPrefix: `filler-${i}-`, offset: 0, concurrency: 10 } : null,
      );
      // the changes are shared among the workers that hold writers
      const writers = clients.filter((c) => c > 0).length;
      const shares = split(o.changes, writers);
      const counts = clients.map((c, i) => (c > 0 ? shares[clients.slice(0, i).filter((x) => x > 0).length] : 0));
      let firstDoc = 0;
      const firsts = counts.map((c) => ((firstDoc += c), firstDoc - c));
      ctx.log(`  writing ${o.changes} changes while the reader is offline`);
      const fill = await ctx.observe(server, 'catchup-fill', null, () =>
        ctx.pool.all<{ acked: number; failed: number; elapsedMs: number; codes: Record<string, number> }>('fill', (i) =>
          clients[i]
            ? { count: counts[i], clients: clients[i], batchSize: o.batchSize, collection: COLLECTION, prefix: `doc-${String(firsts[i]).padStart(7, '0')}` }
            : null,
        ),
      );
      await ctx.pool.all('disconnect', {});
      const f = fill.value.filter(Boolean);
      written = f.reduce((s, r) => s + r.acked, 0);
      const fillMs = Math.max(...f.map((r) => r.elapsedMs));
      figures.fill = { written, failed: f.reduce((s, r) => s + r.failed, 0), changesPerS: Math.round(written / (fillMs / 1000)) };
      phases['catchup-fill'] = phaseOf(fill);
      rows.push({
        metric: `written while offline (changeBatch×${o.batchSize}, ${o.fillClients} clients)`,
        value: `${fmt(written)} at ${fmt(written / (fillMs / 1000))}/s`,
      });
    }

    let ceiling: Awaited<ReturnType<typeof measureReadCeiling>> | null = null;
    if (o.ceiling) {
      ctx.log('  the database alone (MongoDB driver, no server): read rates of the same data');
      ceiling = await measureReadCeiling(`${ctx.dbBaseUri}/bench_catchup`, ctx.dbPid, COLLECTION, ctx.log);
      figures.ceiling = ceiling.figures;
    }

    ctx.log(`  the reader comes back: sync:get_changes, limit ${o.limit}`);
    const obs = await ctx.observe(server, 'catchup-read', null, () =>
      reader.call<{ received: number; unique: number; pages: number; joinMs: number; elapsedMs: number; hist: string }>('catchup', {
        url: server.url,
        userId: 'reader',
        cursor,
        limit: o.limit,
      }),
    );
    const r = obs.value;
    const page = summarize(mergeHistograms([r.hist]));
    const perS = r.received / (r.elapsedMs / 1000);
    figures.catchup = {
      received: r.received,
      unique: r.unique,
      expected: written,
      pages: r.pages,
      seconds: r.elapsedMs / 1000,
      changesPerS: Math.round(perS),
      pageLatencyMs: page,
    };
    phases['catchup-read'] = phaseOf(obs);
    if (ceiling) rows.push(...ceiling.rows);
    rows.push({ metric: 'catch-up: changes received / written', value: `${fmt(r.received)} / ${fmt(written)}` });
    rows.push({ metric: 'catch-up: total time', value: fmt(r.elapsedMs / 1000), unit: 's' });
    rows.push({ metric: 'catch-up: changes/s', value: fmt(perS) });
    rows.push({ metric: `catch-up: page (limit ${o.limit}) p50 / p99`, value: `${fmt(page.p50)} / ${fmt(page.p99)}`, unit: 'ms' });
    rows.push({ metric: 'catch-up: CPU-seconds per 100,000 changes (server / database)', value: cpuPer100k(obs.cpu, r.elapsedMs, r.received) });
    if (r.received !== written || r.unique !== r.received) notes.push(`catch-up returned ${r.received} changes (${r.unique} distinct) for ${written} written`);

    if (await ctx.subscriptions(server)) {
      ctx.log(`  bootstrap of the ${written} documents`);
      const b = await ctx.observe(server, 'bootstrap', null, () =>
        reader.call<{ docs: number; pages: number; count: number; ackMs: number; elapsedMs: number }>('bootstrap', {
          url: server.url,
          userId: 'bootstrapper',
          collection: COLLECTION,
          timeoutMs: 600_000,
        }),
      );
      figures.bootstrap = {
        docs: b.value.docs,
        pages: b.value.pages,
        count: b.value.count,
        seconds: b.value.elapsedMs / 1000,
        ackMs: b.value.ackMs,
        docsPerS: Math.round(b.value.docs / (b.value.elapsedMs / 1000)),
      };
      phases.bootstrap = phaseOf(b);
      rows.push({ metric: 'bootstrap: documents / pages', value: `${fmt(b.value.docs)} / ${fmt(b.value.pages)}` });
      rows.push({ metric: 'bootstrap: total time (subscribe → last page)', value: fmt(b.value.elapsedMs / 1000), unit: 's' });
      rows.push({ metric: 'bootstrap: documents/s', value: fmt(b.value.docs / (b.value.elapsedMs / 1000)) });
      rows.push({ metric: 'bootstrap: CPU-seconds per 100,000 documents (server / database)', value: cpuPer100k(b.cpu, b.value.elapsedMs, b.value.docs) });
      if (b.value.docs !== written) notes.push(`bootstrap delivered ${b.value.docs} documents for ${written} in the collection`);
    } else {
      figures.bootstrap = null;
      rows.push({ metric: 'bootstrap', value: 'n/a (the server has no sync:subscribe yet)' });
    }
  } finally {
    await ctx.pool.all('disconnect', {}).catch(() => undefined);
    await server.stop();
  }
  return { name: 'catchup', title: 'Catch-up and bootstrap', params: { ...o }, figures, rows, notes, phases };
}
