/* The operator console: its admin APIs (GET /api/admin/overview, GET /api/audit) and the page in
 * Chromium (playwright-core + /usr/bin/chromium). Screenshots go to test-artifacts/. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Browser } from 'playwright-core';
import request from 'supertest';
import { emitAck, joinedClient, startTestApp, TestApp, waitFor, ClientSocket } from './support/app';
import { ARTIFACTS, haveChromium, launchChromium, warnWithoutChromium } from './support/browser';
import { hs256, unsigned } from './support/jwt';

const itBrowser = haveChromium ? it : it.skip;
warnWithoutChromium('console browser test');

describe('operator console', () => {
  let t: TestApp;
  let adminToken: string;
  let userToken: string;
  let writer: ClientSocket;
  let seq = 0;

  beforeAll(async () => {
    t = await startTestApp({ AUTH_MODE: 'dev', AUTH_JWT_SECRET: 'test-secret-0123456789-abcdefghijklmnopqrstuvwxyz', ADMIN_USER_IDS: 'root' }, 'console');
    adminToken = await hs256({ sub: 'root' }, { expiresIn: '1h' });
    userToken = await hs256({ sub: 'mallory' }, { expiresIn: '1h' });
    writer = await joinedClient(t.url, 'auditee');
    // seven refused changes (CONFLICT: older than the stored version), audited
    await emitAck(writer, 'sync:change', { operation: 'insert', collection: 'audited', documentId: 'a1', data: { v: 1 }, timestamp: 1000 });
    for (let i = 0; i < 7; i++) {
      const ack = await emitAck(writer, 'sync:change', {
        changeId: `late-${i}`,
        operation: 'update',
        collection: 'audited',
        documentId: 'a1',
        data: { v: 0 },
        timestamp: 10 + i,
      });
      expect(ack.code).toBe('CONFLICT');
    }
    await waitFor(
      async () => (await request(t.url).get('/api/audit?userId=auditee').set('Authorization', `Bearer ${adminToken}`)).body.items?.length === 7,
      20_000,
      'seven audit records',
    );
  });
  afterAll(async () => {
    writer?.close();
    await t?.close();
  });

  describe('admin APIs', () => {
    it('need an admin: 401 without a token, 401 with a bad one, 403 for a user', async () => {
      for (const p of ['/api/admin/overview', '/api/audit']) {
        await request(t.url).get(p).expect(401);
        await request(t.url).get(p).set('Authorization', 'Bearer not-a-jwt').expect(401);
        await request(t.url).get(p).set('X-User-Id', 'root').expect(401); // dev mode's bare user id is not enough
        await request(t.url).get(p).set('Authorization', `Bearer ${userToken}`).expect(403);
      }
    });

    it('refuses forged admin tokens: unsigned, wrong secret, and unverifiable ones in dev mode without a secret', async () => {
      const forged = [
        unsigned({ sub: 'root', admin: true }),
        await hs256({ sub: 'root', admin: true }, { secret: 'another-secret-0123456789-abcdefghijklmnop' }),
      ];
      for (const tok of forged) await request(t.url).get('/api/admin/overview').set('Authorization', `Bearer ${tok}`).expect(401);
      // dev mode without a secret decodes tokens without checking them: none of them is an admin here
      const dev = await startTestApp({ AUTH_MODE: 'dev', ADMIN_USER_IDS: 'root' }, 'console_dev');
      try {
        for (const tok of [...forged, await hs256({ sub: 'root' })]) {
          const res = await request(dev.url).get('/api/audit').set('Authorization', `Bearer ${tok}`);
          expect(res.status).toBe(401);
        }
      } finally {
        await dev.close();
      }
    });

    it('overview: connections, users, rates, acks by code, latency, cluster, feed, collections, history', async () => {
      const { body } = await request(t.url).get('/api/admin/overview').set('Authorization', `Bearer ${adminToken}`).expect(200);
      expect(body).toMatchObject({
        connections: expect.any(Number),
        users: { count: expect.any(Number), ids: expect.arrayContaining(['auditee']) },
        rates: { changesPerSecond: expect.any(Number), deliveriesPerSecond: expect.any(Number) },
        acksByCode: { OK: expect.any(Number), CONFLICT: 7 },
        ackLatencyMs: expect.any(Object),
        cluster: { status: 'single node' },
        feed: { head: expect.any(Number), highWater: expect.any(Number), purgedThrough: 0, retentionDays: 30 },
        history: expect.any(Array),
      });
      expect(body.connections).toBeGreaterThanOrEqual(1);
      expect(body.collections).toEqual(expect.arrayContaining([{ name: 'audited', count: 1 }]));
      expect(body.collections.map((c: { name: string }) => c.name).filter((n: string) => n.startsWith('_sync'))).toEqual([]);
    });

    it('audit: filters and cursor paging, newest first, each record once', async () => {
      const get = (q: string) => request(t.url).get(`/api/audit?${q}`).set('Authorization', `Bearer ${adminToken}`).expect(200);
      const seen: string[] = [];
      let cursor: string | null = null;
      const sizes: number[] = [];
      do {
        const { body }: { body: { items: { id: string; changeId: string; at: string }[]; nextCursor: string | null } } = await get(
          `userId=auditee&collection=audited&code=CONFLICT&limit=3${cursor ? `&cursor=${cursor}` : ''}`,
        );
        sizes.push(body.items.length);
        seen.push(...body.items.map((i) => i.changeId));
        cursor = body.nextCursor;
      } while (cursor);
      expect(sizes).toEqual([3, 3, 1]);
      expect(seen.slice().sort()).toEqual([0, 1, 2, 3, 4, 5, 6].map((i) => `late-${i}`));
      expect((await get('userId=nobody')).body).toEqual({ items: [], nextCursor: null });
      expect((await get('code=FORBIDDEN&userId=auditee')).body.items).toEqual([]);
      expect((await get(`from=${Date.now() + 60_000}`)).body.items).toEqual([]);
      expect((await get(`to=${new Date(Date.now() + 60_000).toISOString()}&userId=auditee`)).body.items).toHaveLength(7);
    });

    it('audit: bad query parameters get a 400, never a 500', async () => {
      const bad = [
        'limit=0',
        'limit=201',
        'limit=abc',
        'limit=1.5',
        'code=NOPE',
        'collection=_sync_feed',
        'collection=a/b',
        'from=yesterday',
        'to=1e400',
        'cursor=garbage',
        `cursor=${Buffer.from('1.zz').toString('base64url')}`,
        'cursor=' + 'x'.repeat(100),
        'userId=',
        'unknown=1',
        'code[$ne]=x',
        'userId[$gt]=',
        'limit=1&limit=2',
        'collection[]=a',
      ];
      for (const q of bad) {
        const res = await request(t.url).get(`/api/audit?${q}`).set('Authorization', `Bearer ${adminToken}`);
        expect({ q, status: res.status }).toEqual({ q, status: 400 });
        expect(typeof res.body.message).toBe('string');
      }
    });
  });

  describe('the page in Chromium', () => {
    let browser: Browser;
    beforeAll(async () => {
      if (!haveChromium) return;
      fs.mkdirSync(ARTIFACTS, { recursive: true });
      browser = await launchChromium();
    }, 120_000);
    afterAll(async () => {
      await browser?.close();
    });

    itBrowser(
      'an admin sees the figures move while a load runs',
      async () => {
        const context = await browser.newContext({ viewport: { width: 1280, height: 1100 } });
        const page = await context.newPage();
        const errors: string[] = [];
        page.on('pageerror', (e) => errors.push(e.message));
        page.on('console', (m) => {
          if (m.type() === 'error') errors.push(m.text()); // CSP violations among them
        });
        const response = await page.goto(`${t.url}/console/`);
        expect(response?.headers()['content-security-policy']).toContain("script-src 'self'");
        await page.fill('#token', adminToken);
        await page.click('#login button[type=submit]');
        await page.waitForSelector('#dashboard:not([hidden])', { timeout: 20_000 });
        const num = async (id: string) => Number(((await page.textContent(id)) ?? '').replace(/[^0-9.]/g, '') || 'NaN');
        const appliedBefore = await num('#figure-applied');

        // a load: batches of 20 inserts until the console shows changes per second
        let running = true;
        const load = (async () => {
          while (running)
            await emitAck(writer, 'sync:changeBatch', {
              changes: Array.from({ length: 20 }, () => ({ operation: 'insert', collection: 'loaded', documentId: `l-${++seq}`, data: { n: seq } })),
            });
        })();
        try {
          await page.waitForFunction(() => Number((document.getElementById('figure-changes')?.textContent ?? '0').replace(/[^0-9.]/g, '')) > 0, undefined, {
            timeout: 30_000,
          });
          await page.waitForFunction(() => (document.getElementById('figure-p50')?.textContent ?? '–').includes('ms'), undefined, { timeout: 30_000 });
        } finally {
          running = false;
          await load;
        }
        await page.waitForFunction(
          (before) => Number((document.getElementById('figure-applied')?.textContent ?? '0').replace(/[^0-9.]/g, '')) > before,
          appliedBefore,
          { timeout: 20_000 },
        );
        expect(await num('#figure-connections')).toBeGreaterThanOrEqual(1);
        // document counts are re-read every 5 s at most
        await page.waitForFunction(
          () => Array.from(document.querySelectorAll('#collections tbody tr')).some((r) => (r.textContent ?? '').startsWith('loaded')),
          undefined,
          { timeout: 20_000 },
        );
        expect(await page.$$eval('#audit tbody tr', (rows) => rows.length)).toBeGreaterThanOrEqual(7);
        expect(await page.$$eval('#acks tbody tr', (rows) => rows.map((r) => r.textContent))).toEqual(
          expect.arrayContaining([expect.stringContaining('CONFLICT')]),
        );
        expect(await page.$$eval('.uplot', (els) => els.length)).toBe(3);
        // audit paging in the page
        await page.fill('#audit-filters input[name=userId]', 'auditee');
        await page.click('#audit-filters button[type=submit]');
        await page.waitForFunction(() => document.querySelectorAll('#audit tbody tr').length === 7);
        await page.screenshot({ path: path.join(ARTIFACTS, 'console-admin.png'), fullPage: true });
        expect(errors).toEqual([]);
        await context.close();
      },
      120_000,
    );

    itBrowser(
      'a non-admin sees nothing',
      async () => {
        const context = await browser.newContext({ viewport: { width: 1024, height: 600 } });
        const page = await context.newPage();
        const answers: number[] = [];
        page.on('response', (r) => {
          if (r.url().includes('/api/')) answers.push(r.status());
        });
        await page.goto(`${t.url}/console/`);
        expect(await page.isHidden('#dashboard')).toBe(true);
        await page.fill('#token', userToken);
        await page.click('#login button[type=submit]');
        await page.waitForFunction(() => /forbidden/.test(document.getElementById('status')?.textContent ?? ''), undefined, { timeout: 20_000 });
        expect(await page.isHidden('#dashboard')).toBe(true);
        expect(answers.length).toBeGreaterThan(0);
        expect(answers.every((s) => s === 403)).toBe(true);
        const visible = await page.evaluate(() => document.body.innerText);
        expect(visible).not.toContain('auditee');
        expect(visible).not.toContain('audited');
        await page.screenshot({ path: path.join(ARTIFACTS, 'console-non-admin.png'), fullPage: true });
        await context.close();
      },
      60_000,
    );
  });
});
