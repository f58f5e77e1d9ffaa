/**
 * What the browser tests share: Debian's Chromium driven by playwright-core,
 * a loud SKIPPED where it is missing, the island assets built (or rebuilt
 * when stale), signing in through the real form, and screenshots under
 * test_output/screenshots/.
 */
import assert from "node:assert/strict";
import { type Browser, chromium, type Page } from "playwright-core";

export const CHROMIUM = Deno.env.get("CHROMIUM_PATH") ?? "/usr/bin/chromium";
export const SHOTS = new URL("../test_output/screenshots/", import.meta.url);
export const hasChromium = await Deno.stat(CHROMIUM).then(() => true, () => false);

/** Says loudly, once per file, that `what` is skipped for want of Chromium. */
export function warnIfNoChromium(what: string): void {
  if (hasChromium) return;
  console.warn(
    `\n${"!".repeat(72)}\n!! SKIPPED: ${what}. No Chromium at ${CHROMIUM}.\n` +
      `!! Install it (apt-get install chromium, as .ci/run does) or set CHROMIUM_PATH.\n${
        "!".repeat(72)
      }\n`,
  );
}

/** Builds the island assets when they are missing or older than their sources. */
export async function ensureBuilt(): Promise<void> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../scripts/build.ts", import.meta.url).pathname, "--if-stale"],
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  assert.ok(out.success, "the island assets build");
}

/** A headless Chromium that reaches nothing but the test's own servers. */
export async function launch(): Promise<Browser> {
  return await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/** Signs in through the login form at `base`, landing on `/admin`. */
export async function signIn(page: Page, base: URL, name: string, password: string): Promise<void> {
  await page.goto(new URL("/login", base).href);
  await page.getByLabel("User name").fill(name);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(/\/admin$/);
}

/** A full-page screenshot `name.png`, or one per colour scheme (`name-light.png`, ...). */
export async function shoot(
  page: Page,
  name: string,
  schemes: readonly ("light" | "dark")[] = [],
): Promise<void> {
  await Deno.mkdir(SHOTS, { recursive: true });
  if (schemes.length === 0) {
    await page.screenshot({ path: new URL(`${name}.png`, SHOTS).pathname, fullPage: true });
    return;
  }
  for (const scheme of schemes) {
    await page.emulateMedia({ colorScheme: scheme });
    await page.screenshot({
      path: new URL(`${name}-${scheme}.png`, SHOTS).pathname,
      fullPage: true,
    });
  }
  await page.emulateMedia({ colorScheme: "light" });
}
