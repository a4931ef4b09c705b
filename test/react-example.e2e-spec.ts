/* The React example (/demo/react/, built from libs/client/examples/react on the packaged SDK and its
 * React bindings) in Chromium: two browser contexts share a task list; one goes offline
 * (context.setOffline), edits while the other edits online, comes back, and both end equal. The
 * inspector panel shows the offline outbox. Screenshots go to test-artifacts/. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { buildReactExample } from '../scripts/build-client';
import { buildSdk } from '../scripts/build-sdk';
import { startTestApp, TestApp } from './support/app';
import { addTask, ARTIFACTS, haveChromium, launchChromium, waitForTitles, warnWithoutChromium } from './support/browser';

const describeIf = haveChromium ? describe : describe.skip;
warnWithoutChromium('React example browser test');

interface TaskRow {
  title: string;
  done: boolean;
}

async function tasks(page: Page): Promise<TaskRow[]> {
  return page.$$eval('[data-testid=task]', (lis) =>
    lis.map((li) => ({
      title: li.querySelector('[data-testid=title]')?.textContent ?? '',
      done: (li.querySelector('[data-testid=toggle]') as HTMLInputElement).checked,
    })),
  );
}

describeIf('React example in Chromium', () => {
  let t: TestApp;
  let browser: Browser;
  const contexts: BrowserContext[] = [];
  let pkgDir: string | undefined;

  beforeAll(async () => {
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    // the package is built in a directory of its own (other suites may be building libs/client/dist)
    pkgDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sdk-react-'));
    await buildSdk({ types: false, packageDir: pkgDir });
    await buildReactExample({ minify: false, packageDir: pkgDir });
    t = await startTestApp({ AUTH_MODE: 'dev', MAX_CHANGE_BYTES: '8192' }, 'react_example');
    browser = await launchChromium();
  }, 180_000);
  afterAll(async () => {
    for (const c of contexts) await c.close().catch(() => undefined);
    await browser?.close();
    await t?.close();
    if (pkgDir) fs.rmSync(pkgDir, { recursive: true, force: true });
  });

  async function open(user: string): Promise<{ context: BrowserContext; page: Page; errors: string[] }> {
    const context = await browser.newContext({ viewport: { width: 720, height: 900 } });
    contexts.push(context);
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${t.url}/demo/react/?user=${user}`);
    await page.waitForSelector('[data-testid=online].online', { timeout: 30_000 });
    return { context, page, errors };
  }

  it('two contexts edit online and offline and end equal', async () => {
    const alice = await open('alice');
    const bob = await open('bob');

    await addTask(alice.page, 'Buy milk');
    await bob.page.waitForSelector('[data-testid=task] >> text=Buy milk', { timeout: 20_000 });
    await addTask(bob.page, 'Walk the dog');
    await alice.page.waitForSelector('[data-testid=task] >> text=Walk the dog', { timeout: 20_000 });
    for (const p of [alice.page, bob.page]) await p.waitForSelector('[data-testid=pending]:has-text("0 pending")', { timeout: 20_000 });

    // bob loses the network and edits: optimistic, pending, shown in the inspector
    await bob.context.setOffline(true);
    await bob.page.waitForSelector('[data-testid=online].offline', { timeout: 20_000 });
    await bob.page.click('[data-testid=task]:has-text("Buy milk") [data-testid=toggle]');
    await addTask(bob.page, 'Written offline');
    await bob.page.waitForSelector('[data-testid=pending]:has-text("2 pending")', { timeout: 10_000 });
    // two entries, stored in IndexedDB (no longer 'storing'), waiting for the network
    await bob.page.waitForFunction(
      () => {
        const els = Array.from(document.querySelectorAll('[data-testid=outbox-entry]'));
        return els.length === 2 && els.every((e) => e.getAttribute('data-state') !== 'storing');
      },
      undefined,
      { timeout: 10_000 },
    );
    const entries = await bob.page.$$eval('[data-testid=outbox-entry]', (els) => els.map((e) => e.textContent ?? ''));
    expect(entries[0]).toMatch(/update tasks\/task-.*: (queued|retrying|sending)/);
    expect(entries[1]).toMatch(/insert tasks\/task-.*: (queued|retrying|sending)/);
    expect(await bob.page.getAttribute('[data-testid=inspect-subscription]', 'data-state')).toBe('bootstrapped');

    // alice keeps working online
    await addTask(alice.page, 'While bob was away');
    await alice.page.click('[data-testid=task]:has-text("Walk the dog") [data-testid=delete]');
    await alice.page.waitForSelector('[data-testid=pending]:has-text("0 pending")', { timeout: 20_000 });
    expect((await tasks(alice.page)).map((r) => r.title)).not.toContain('Written offline');
    await bob.page.screenshot({ path: path.join(ARTIFACTS, 'react-bob-offline.png') });

    // bob comes back: both end equal
    await bob.context.setOffline(false);
    await bob.page.waitForSelector('[data-testid=online].online', { timeout: 30_000 });
    await bob.page.waitForSelector('[data-testid=pending]:has-text("0 pending")', { timeout: 30_000 });
    const expected = ['Buy milk', 'While bob was away', 'Written offline'];
    for (const p of [alice.page, bob.page]) {
      await waitForTitles(p, expected, 30_000);
    }
    await alice.page.waitForSelector('[data-testid=task]:has-text("Buy milk") [data-testid=toggle]:checked', { timeout: 20_000 });
    const a = await tasks(alice.page);
    const b = await tasks(bob.page);
    expect(b).toEqual(a);
    expect(a.find((r) => r.title === 'Buy milk')?.done).toBe(true);
    await bob.page.waitForFunction(() => document.querySelectorAll('[data-testid=outbox-entry]').length === 0, undefined, { timeout: 10_000 });
    expect(await bob.page.textContent('[data-testid=inspect-documents]')).toBe('tasks: 3');

    await alice.page.screenshot({ path: path.join(ARTIFACTS, 'react-alice.png') });
    await bob.page.screenshot({ path: path.join(ARTIFACTS, 'react-bob.png') });
    expect(alice.errors).toEqual([]);
    expect(bob.errors).toEqual([]);
  });

  it('no re-render storms: changes to another collection do not re-render the task list', async () => {
    const carol = await open('carol');
    await carol.page.waitForSelector('[data-testid=task]', { timeout: 20_000 });
    type Demo = {
      reactDemo: { renders: { tasks: number; status: number }; client: { makeChange(o: string, c: string, id: string, d?: object): Promise<unknown> } };
    };
    const before = await carol.page.evaluate(() => ({ ...(window as unknown as Demo).reactDemo.renders }));
    await carol.page.evaluate(async () => {
      const { client } = (window as unknown as Demo).reactDemo;
      for (let i = 0; i < 30; i++) await client.makeChange('insert', 'notes', `n-${i}`, { i });
    });
    await carol.page.waitForSelector('[data-testid=pending]:has-text("0 pending")', { timeout: 30_000 });
    const after = await carol.page.evaluate(() => ({ ...(window as unknown as Demo).reactDemo.renders }));
    expect(after.tasks).toBe(before.tasks);
    expect(after.status).toBeGreaterThan(before.status); // the pending count did change

    // unmounting the list removes its listener from the client; mounting it again adds one back
    type Counting = { reactDemo: { client: { listenerCount(e: string): number } } };
    const listeners = () => carol.page.evaluate(() => (window as unknown as Counting).reactDemo.client.listenerCount('change'));
    const mounted = await listeners();
    await carol.page.click('[data-testid=hide-tasks]');
    await carol.page.waitForSelector('[data-testid=tasks]', { state: 'detached' });
    expect(await listeners()).toBe(mounted - 1);
    await carol.page.click('[data-testid=hide-tasks]');
    await carol.page.waitForSelector('[data-testid=tasks]');
    expect(await listeners()).toBe(mounted);
    expect(carol.errors).toEqual([]);
  });

  it('a change the server refuses is rolled back and useSyncStatus shows the typed error', async () => {
    const dave = await open('dave');
    await addTask(dave.page, 'Fine');
    await dave.page.waitForSelector('[data-testid=task] >> text=Fine', { timeout: 20_000 });
    // bigger than the server's MAX_CHANGE_BYTES (8 KiB), smaller than the client's own limit
    await dave.page.evaluate(async () => {
      const { client } = (window as unknown as { reactDemo: { client: { makeChange(o: string, c: string, id: string, d?: object): Promise<unknown> } } })
        .reactDemo;
      await client.makeChange('insert', 'tasks', 'too-big', { title: 'Too big', pad: 'x'.repeat(20_000) });
    });
    await dave.page.waitForSelector('[data-testid=last-error]:has-text("PAYLOAD_TOO_LARGE")', { timeout: 20_000 });
    await dave.page.waitForSelector('[data-testid=task] >> text=Too big', { state: 'detached', timeout: 20_000 });
    await dave.page.waitForSelector('[data-testid=pending]:has-text("0 pending")', { timeout: 20_000 });
    // the outbox goes on: the next change syncs
    await addTask(dave.page, 'After the refusal');
    await dave.page.waitForSelector('[data-testid=pending]:has-text("0 pending")', { timeout: 20_000 });
    const other = await open('erin');
    await other.page.waitForSelector('[data-testid=task] >> text=After the refusal', { timeout: 20_000 });
    expect((await tasks(other.page)).map((r) => r.title)).not.toContain('Too big');
    expect(dave.errors).toEqual([]);
  });
});
