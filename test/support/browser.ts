// Headless Chromium for the dashboard's tests, driven by playwright-core: Debian's `chromium`
// (or MUSTER_CHROMIUM), with the flags that keep it off the network. `launch` returns the
// reason to skip instead of a browser where there is no Chromium.
import { existsSync } from "node:fs";
import { type Browser, chromium } from "playwright-core";

export const CHROMIUM = process.env.MUSTER_CHROMIUM ?? "/usr/bin/chromium";

export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--disable-quic",
];

/** A headless browser, or why there is none (the tests skip, saying so). */
export async function launch(): Promise<Browser | string> {
  if (!existsSync(CHROMIUM))
    return `no Chromium at ${CHROMIUM} (install Debian's chromium, or set MUSTER_CHROMIUM)`;
  try {
    return await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  } catch (err) {
    return `Chromium at ${CHROMIUM} does not start: ${(err as Error).message.split("\n")[0]}`;
  }
}
