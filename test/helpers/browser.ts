import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';

/** Debian's Chromium (`apt-get install chromium`; `.ci/run` installs it), or CHROMIUM_PATH. */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Where the browser tests' screenshots land: test-results/screenshots, or SCREENSHOTS_DIR (`npm run docs:screenshots`). */
export const SCREENSHOTS = path.resolve(__dirname, '..', '..', process.env.SCREENSHOTS_DIR ?? path.join('test-results', 'screenshots'));

/** A headless Chromium for the browser tests; playwright gives every launch a fresh, empty profile of its own. */
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
