/* The /demo page in Chromium (playwright-core + Debian's /usr/bin/chromium): two pages in separate
 * browser contexts share a task list; one goes offline, edits, comes back, and both converge.
 * Screenshots go to test-artifacts/. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { copyDemoSdk, GLOBAL_BUILD } from '../scripts/build-client';
import { buildSdk } from '../scripts/build-sdk';
import { startTestApp, TestApp } from './support/app';
import { addTask, ARTIFACTS, haveChromium, launchChromium, waitForTitles, warnWithoutChromium } from './support/browser';

const describeIf = haveChromium ? describe : describe.skip;
warnWithoutChromium('demo browser test');

interface TaskRow {
  title: string;
  done: boolean;
  pending: boolean;
}

async function tasks(page: Page): Promise<TaskRow[]> {
  return page.$$eval('[data-testid=task]', (lis) =>
    lis.map((li) => ({
      title: li.querySelector('[data-testid=title]')?.textContent ?? '',
      done: (li.querySelector('[data-testid=toggle]') as HTMLInputElement).checked,
      pending: !!li.querySelector('[data-testid=task-pending]'),
    })),
  );
}

const titles = (rows: TaskRow[]) => rows.map((r) => r.title).sort();

describeIf('demo page in Chromium', () => {
  let t: TestApp;
  let browser: Browser;
  const contexts: BrowserContext[] = [];
  let pkgDir: string | undefined;

  beforeAll(async () => {
    // the page loads the package's own <script> build, as npm run build copies it: build the
    // package in a directory of its own (other suites may be building libs/client/dist) and copy
    pkgDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sdk-demo-'));
    await buildSdk({ types: false, packageDir: pkgDir });
    copyDemoSdk({ packageDir: pkgDir });
    t = await startTestApp({ AUTH_MODE: 'dev' }, 'demo_browser');
    browser = await launchChromium();
  }, 120_000);
  afterAll(async () => {
    for (const c of contexts) await c.close().catch(() => undefined);
    await browser?.close();
    await t?.close();
    if (pkgDir) fs.rmSync(pkgDir, { recursive: true, force: true });
  });

  async function openDemo(user: string): Promise<{ context: BrowserContext; page: Page; errors: string[] }> {
    const context = await browser.newContext({ viewport: { width: 640, height: 640 } });
    contexts.push(context);
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${t.url}/demo/?user=${user}`);
    await page.waitForSelector('[data-testid=online].online', { timeout: 20_000 });
    return { context, page, errors };
  }

  it('serves the page and the SDK bundle', async () => {
    const res = await fetch(`${t.url}/demo/`);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('sync-client.js');
    const js = await fetch(`${t.url}/demo/sync-client.js`);
    expect(js.status).toBe(200);
    // exactly the package's published <script> build
    expect(await js.text()).toBe(fs.readFileSync(path.join(pkgDir!, 'dist', GLOBAL_BUILD), 'utf8'));
  });

  it('two pages share tasks live; one goes offline, edits, comes back, and both converge', async () => {
    const alice = await openDemo('alice');
    const bob = await openDemo('bob');

    // a task added in one page appears in the other
    await addTask(alice.page, 'Buy milk');
    await bob.page.waitForSelector('[data-testid=task] >> text=Buy milk', { timeout: 15_000 });
    await addTask(bob.page, 'Walk the dog');
    await alice.page.waitForSelector('[data-testid=task] >> text=Walk the dog', { timeout: 15_000 });

    // both outboxes are empty first: alice seeing bob's task does not mean bob has his ack yet
    // (the ack is applied after an IndexedDB write), and a late ack would make the count below 3
    for (const p of [alice.page, bob.page]) await p.waitForSelector('[data-testid=pending]:has-text("0 pending")', { timeout: 15_000 });

    // bob goes offline and edits: optimistic, pending
    await bob.context.setOffline(true);
    await bob.page.waitForSelector('[data-testid=online].offline', { timeout: 15_000 });
    await bob.page.click('[data-testid=task]:has-text("Buy milk") [data-testid=toggle]');
    await addTask(bob.page, 'Written offline');
    await bob.page.waitForSelector('[data-testid=pending]:has-text("2 pending")', { timeout: 5_000 });
    expect((await tasks(bob.page)).find((r) => r.title === 'Written offline')?.pending).toBe(true);
    // meanwhile alice keeps working
    await addTask(alice.page, 'While bob was away');
    await alice.page.click('[data-testid=task]:has-text("Walk the dog") [data-testid=delete]');
    await alice.page.waitForFunction(
      () => (window as unknown as { demo: { client: { getPendingChangesCount(): number } } }).demo.client.getPendingChangesCount() === 0,
    );
    expect(titles(await tasks(alice.page))).not.toContain('Written offline');
    await bob.page.screenshot({ path: path.join(ARTIFACTS, 'demo-bob-offline.png') });

    // bob comes back: his outbox goes out, he catches up, both pages converge
    await bob.context.setOffline(false);
    await bob.page.waitForSelector('[data-testid=online].online', { timeout: 20_000 });
    await bob.page.waitForSelector('[data-testid=pending]:has-text("0 pending")', { timeout: 20_000 });
    const expected = ['Buy milk', 'While bob was away', 'Written offline'];
    for (const p of [alice.page, bob.page]) {
      await waitForTitles(p, expected, 20_000);
    }
    await alice.page.waitForSelector('[data-testid=task]:has-text("Buy milk") [data-testid=toggle]:checked', { timeout: 15_000 });
    const a = await tasks(alice.page);
    const b = await tasks(bob.page);
    expect(b).toEqual(a);
    expect(a.find((r) => r.title === 'Buy milk')?.done).toBe(true);
    expect(a.every((r) => !r.pending)).toBe(true);

    await alice.page.screenshot({ path: path.join(ARTIFACTS, 'demo-alice.png') });
    await bob.page.screenshot({ path: path.join(ARTIFACTS, 'demo-bob.png') });
    expect(alice.errors).toEqual([]);
    expect(bob.errors).toEqual([]);
  });

  it('keeps an offline edit in IndexedDB when the tab is closed, and delivers it from a new tab', async () => {
    const carol = await openDemo('carol');
    await carol.context.setOffline(true);
    await carol.page.waitForSelector('[data-testid=online].offline', { timeout: 15_000 });
    await addTask(carol.page, 'Survives closing the tab');
    await carol.page.waitForSelector('[data-testid=pending]:has-text("1 pending")');
    // durable before anything was sent: the outbox store holds it
    await carol.page.waitForFunction(
      () =>
        new Promise<boolean>((resolve) => {
          const req = indexedDB.open('sync-client:demo:carol');
          req.onsuccess = () => {
            const db = req.result;
            const count = db.transaction('outbox').objectStore('outbox').count();
            count.onsuccess = () => {
              db.close();
              resolve(count.result === 1);
            };
          };
          req.onerror = () => resolve(false);
        }),
      undefined,
      { timeout: 5_000 },
    );
    await carol.page.close();
    await carol.context.setOffline(false);
    const page = await carol.context.newPage();
    await page.goto(`${t.url}/demo/?user=carol`);
    await page.waitForSelector('[data-testid=online].online', { timeout: 20_000 });
    await page.waitForSelector('[data-testid=pending]:has-text("0 pending")', { timeout: 20_000 });
    const dave = await openDemo('dave');
    await dave.page.waitForSelector('[data-testid=task] >> text=Survives closing the tab', { timeout: 15_000 });
  });
});
