/* What the Chromium suites (demo page, React example, operator console) share: where Chromium is,
 * how it is launched (headless, no sandbox, nothing reaching outside the machine), and the demo apps'
 * task list helpers. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const ARTIFACTS = path.join(__dirname, '..', '..', 'test-artifacts');
export const haveChromium = fs.existsSync(CHROMIUM);

/** Says once why a browser suite is skipped (no Chromium installed). */
export function warnWithoutChromium(what: string): void {
  if (!haveChromium) console.warn(`${what} skipped: no Chromium at ${CHROMIUM} (run scripts/setup.sh --test)`);
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** Adds a task through the demo apps' form. */
export async function addTask(page: Page, title: string): Promise<void> {
  await page.fill('[data-testid=new-title]', title);
  await page.click('[data-testid=add]');
}

/** Waits until the page lists exactly these task titles (in any order). */
export async function waitForTitles(page: Page, expected: string[], timeout: number): Promise<void> {
  await page.waitForFunction(
    (want) => {
      const got = Array.from(document.querySelectorAll('[data-testid=task] [data-testid=title]'))
        .map((e) => e.textContent)
        .sort();
      return JSON.stringify(got) === JSON.stringify(want);
    },
    [...expected].sort(),
    { timeout },
  );
}
