// Headless Chromium for the browser tests, driven by playwright-core (no bundled browsers:
// the system's Chromium, /usr/bin/chromium unless $CHROMIUM says otherwise).

import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

import { artifacts } from "./server.mjs";

const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";

const chromiumArgs = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/**
 * Launches Chromium with a fresh profile. The browser's contexts are separate users (no
 * shared storage). `close()` closes it and removes the profile.
 */
export async function launchBrowser() {
  // Playwright keeps the user-data dir of a launch() to itself (it makes a temporary one,
  // in the OS temp dir); its artifacts (traces, downloads) go into this directory.
  const dir = mkdtempSync(join(tmpdir(), "chorus-e2e-"));
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    args: chromiumArgs,
    artifactsDir: dir,
    env: { ...process.env, TMPDIR: dir },
  });
  return {
    browser,
    /**
     * Closes the browser, first saving a screenshot of each page still open as
     * `<name>-<nickname or index>.png`: the tests close their pages when they pass, so these
     * are what a failed test left on screen.
     */
    async close(name) {
      if (name) {
        const pages = browser.contexts().flatMap((context) => context.pages());
        for (const [i, page] of pages.entries()) {
          await screenshot(page, `${name}-${page.nickname ?? i}`).catch(() => {});
        }
      }
      await browser.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A new page in a new context (a separate user), with the page's console errors and
 * uncaught exceptions collected in `page.problems` for the test to check. Every failed
 * request counts, the browser's own ask for /favicon.ico included: a page must say it has
 * no icon, or have one.
 */
export async function newUserPage(browser, options = {}) {
  const context = await browser.newContext({
    viewport: { width: 900, height: 640 },
    deviceScaleFactor: 1,
    ...options,
  });
  const page = await context.newPage();
  page.problems = [];
  page.on("pageerror", (error) => page.problems.push(`pageerror: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() !== "error") return;
    const { url } = message.location();
    page.problems.push(`console: ${message.text()}${url ? ` (${url})` : ""}`);
  });
  return page;
}

/** Saves a screenshot of `page` to test-artifacts/e2e/<name>.png. */
export async function screenshot(page, name) {
  mkdirSync(artifacts, { recursive: true });
  await page.screenshot({ path: join(artifacts, `${name}.png`) });
}
