/**
 * Headless Chromium for tests that look at what questa writes for people (the HTML report), driven
 * by playwright-core, which downloads no browser: it starts Debian's `chromium` (or
 * $QUESTA_CHROMIUM), which scripts/install-chromium.sh installs (the `browser` project's global
 * setup, test/infra/chromium-setup.ts, runs it). The only module of questa that imports
 * playwright-core.
 */
import { execFileSync } from "node:child_process";
import { pathToFileURL } from "node:url";
import { chromium, type Page } from "playwright-core";

/** the browser binary: $QUESTA_CHROMIUM, else `chromium` on the PATH */
export function chromiumExecutable(): string {
  const name = process.env.QUESTA_CHROMIUM ?? "chromium";
  if (name.includes("/")) return name;
  try {
    return execFileSync("sh", ["-c", 'command -v "$1"', "sh", name], { encoding: "utf8" }).trim();
  } catch {
    throw new Error(
      `${name} is not on the PATH; run scripts/install-chromium.sh (Debian: apt-get install -y chromium) or set QUESTA_CHROMIUM`,
    );
  }
}

export interface PageVisit<T> {
  result: T;
  /** console messages of type error, uncaught page errors and failed requests */
  errors: string[];
  /** every URL the page requested beyond the file itself */
  requests: string[];
}

/**
 * Opens a local HTML file in a fresh headless Chromium with JavaScript off (what a mail client or a
 * locked-down viewer does), runs `inspect` on the page, and closes the browser.
 */
export async function visitFile<T>(
  file: string,
  inspect: (page: Page) => Promise<T>,
  options: { width?: number; javaScript?: boolean } = {},
): Promise<PageVisit<T>> {
  const browser = await chromium.launch({
    executablePath: chromiumExecutable(),
    // root (CI containers) cannot use Chromium's sandbox
    args: process.getuid?.() === 0 ? ["--no-sandbox"] : [],
  });
  try {
    const context = await browser.newContext({
      viewport: { width: options.width ?? 1400, height: 900 },
      javaScriptEnabled: options.javaScript ?? false,
    });
    const page = await context.newPage();
    const errors: string[] = [];
    const requests: string[] = [];
    const url = pathToFileURL(file).href;
    page.on("console", (message) => {
      if (message.type() === "error") errors.push(`console: ${message.text()}`);
    });
    page.on("pageerror", (error) => errors.push(`page: ${error.message}`));
    page.on("requestfailed", (request) => errors.push(`request failed: ${request.url()}`));
    page.on("request", (request) => {
      if (request.url() !== url) requests.push(request.url());
    });
    await page.goto(url, { waitUntil: "load" });
    const result = await inspect(page);
    return { result, errors, requests };
  } finally {
    await browser.close();
  }
}
