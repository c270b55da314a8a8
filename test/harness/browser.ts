// Debian's chromium, headless, for the browser tests: never a downloaded
// browser (the machine reaches only npm and apt), and the flags that keep it
// from phoning home or waiting on a GPU.
import { existsSync } from "node:fs";
import { chromium, type Browser, type Page } from "playwright-core";
import { eventually } from "./mesh.js";

const CHROMIUM = "/usr/bin/chromium";

/** Fails at once, saying how to install it, when chromium is missing. */
export function requireChromium(): void {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}: install it with \`apt-get install -y chromium\` (these tests never download a browser)`);
  }
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
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

/**
 * Polls what `read` finds on the page until `check` accepts it. A failure
 * shows the last read, the page's #status, the page's problems and any
 * `context` (process logs), which is what a reader needs to tell why.
 */
export async function waitForPage<T>(
  page: Page,
  read: (page: Page) => Promise<T>,
  check: (found: T) => boolean,
  options: { what: string; timeoutMs: number; problems: readonly string[]; context?: () => string },
): Promise<T> {
  let last: T | undefined;
  try {
    return await eventually(
      async () => {
        last = await read(page);
        return check(last) ? last : undefined;
      },
      options.timeoutMs,
      options.what,
    );
  } catch (err) {
    const status = await page.textContent("#status").catch(() => "?");
    throw new Error(
      `${String(err)}\n#status: ${status}\nrows: ${JSON.stringify(last)}\npage problems:\n${options.problems.join("\n")}${options.context ? `\n${options.context()}` : ""}`,
    );
  }
}
