// The demo page at "/" in a real (headless) Chromium at a phone-sized
// viewport: the Connect-Web stream of the top 10 (@scoreboard/client's
// watchBoard) reacts to grants made over REST and through the page's own
// form, and comes back by itself after the gateway restarts, without a reload.
// With a player's token, the "You" panel beside the top list shows their rank
// and neighbours from the same LiveService.Watch stream, moving when another
// player passes them.
import { existsSync } from "node:fs";
import { mkdir, rm, stat } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { launchChromium, requireChromium, waitForPage } from "./harness/browser.js";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { eventually, startMesh, type Mesh } from "./harness/mesh.js";

const resultsDir = fileURLToPath(new URL("../test-results/", import.meta.url));
const screenshotPath = `${resultsDir}demo-page.png`;

interface Row {
  userId: string;
  rank: string;
  user: string;
  score: number;
}

/** The table as the user sees it, top to bottom. Scores are locale-formatted, so digits only. */
function readRows(page: Page): Promise<Row[]> {
  return page.$$eval("#rows tr", (trs) =>
    trs.map((tr) => {
      const text = (cls: string) => tr.querySelector(`td.${cls}`)?.textContent?.trim() ?? "";
      return {
        userId: (tr as HTMLElement).dataset.user ?? "",
        rank: text("rank"),
        user: text("user"),
        score: Number(text("score").replace(/\D/g, "")),
      };
    }),
  );
}

describe("demo page in a browser (phone viewport)", () => {
  const suffix = randomBytes(4).toString("hex");
  const alice = { id: `alice-${suffix}`, name: "Alice" };
  const bob = { id: `bob-${suffix}`, name: "Bob" };
  const carol = { id: `carol-${suffix}`, name: "Carol" };
  // Below everyone else, then past Alice: the "You" panel test.
  const dan = { id: `dan-${suffix}`, name: "Dan" };
  const erin = { id: `erin-${suffix}`, name: "Erin" };
  const frank = { id: `frank-${suffix}`, name: "Frank" };
  const actions = { small: `demo-small-${suffix}`, big: `demo-big-${suffix}`, form: `demo-form-${suffix}` };

  let mesh: Mesh | undefined;
  let browser: Browser | undefined;
  let context: BrowserContext | undefined;
  let page: Page;
  const pageProblems: string[] = [];
  let navigations = 0;

  /** Polls the table until `check` accepts it; the failure shows the last table, page errors and gateway log. */
  const waitForRows = (what: string, check: (rows: Row[]) => boolean, timeoutMs = 15_000): Promise<Row[]> =>
    waitForPage(page, readRows, check, {
      what,
      timeoutMs,
      problems: pageProblems,
      context: () => `gateway log:\n${mesh?.logs.gateway.slice(-15).join("\n")}\npush log:\n${mesh?.logs.push.slice(-15).join("\n")}`,
    });

  async function grant(userId: string, name: string, actionId: string): Promise<{ status: number; body: Record<string, unknown> }> {
    const res = await mesh!.submitAction(userId, actionId, { name });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  beforeAll(async () => {
    requireChromium();
    mesh = await startMesh(inject("infra"));
    await mesh.sql("insert into actions(action_id, points, description) values ($1, 10, $2), ($3, 50, $4), ($5, 100, $6)", [
      actions.small,
      "demo: small",
      actions.big,
      "demo: big",
      actions.form,
      "demo: via the page form",
    ]);

    browser = await launchChromium();
    context = await browser.newContext({
      viewport: { width: 390, height: 844 },
      deviceScaleFactor: 2,
      isMobile: true,
      hasTouch: true,
      locale: "en-US",
    });
    page = await context.newPage();
    page.on("console", (msg) => {
      if (msg.type() === "error" || msg.type() === "warning") pageProblems.push(`console.${msg.type()}: ${msg.text()}`);
    });
    page.on("pageerror", (err) => pageProblems.push(`pageerror: ${err.message}`));
    page.on("requestfailed", (req) => pageProblems.push(`requestfailed: ${req.url()} ${req.failure()?.errorText ?? ""}`));
    page.on("framenavigated", (frame) => {
      if (frame === page.mainFrame()) navigations++;
    });
  });

  afterAll(async () => {
    await context?.close().catch(() => undefined);
    await browser?.close();
    await mesh?.stop();
  }, 60_000);

  it("loads at a phone viewport and goes live", async () => {
    const res = await page.goto(mesh!.urls.gateway, { waitUntil: "load" });
    expect(res?.status()).toBe(200);
    expect(await page.title()).toContain("Scoreboard");
    try {
      await page.waitForFunction(() => document.querySelector("#status")?.textContent?.trim() === "live", undefined, {
        timeout: 15_000,
      });
    } catch (err) {
      throw new Error(`#status never said live (${await page.textContent("#status")}): ${String(err)}\n${pageProblems.join("\n")}`);
    }
    expect(await page.getAttribute("#status", "data-state")).toBe("live");
    // An empty board: no rows, the hint shown.
    expect(await readRows(page)).toEqual([]);
    expect(await page.isVisible("#empty")).toBe(true);
    // Nothing is wider than the phone.
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0);
  });

  it("shows a REST grant live at rank 1 without a reload", async () => {
    const navigationsBefore = navigations;
    const { status, body } = await grant(alice.id, alice.name, actions.small);
    expect(status, JSON.stringify(body)).toBe(200);
    expect(body).toMatchObject({ success: true, newScore: 10, points: 10 });

    const rows = await waitForRows(`${alice.id} at rank 1 with 10`, (r) => r.some((row) => row.userId === alice.id && row.rank === "1" && row.score === 10));
    expect(rows).toEqual([{ userId: alice.id, rank: "1", user: alice.name, score: 10 }]);
    expect(await page.isHidden("#empty")).toBe(true);
    expect(navigations).toBe(navigationsBefore);
  });

  it("reorders when a second user overtakes", async () => {
    const navigationsBefore = navigations;
    const { status, body } = await grant(bob.id, bob.name, actions.big);
    expect(status, JSON.stringify(body)).toBe(200);
    expect(body).toMatchObject({ success: true, newScore: 50 });

    const rows = await waitForRows(`${bob.id} at rank 1 above ${alice.id}`, (r) => r.length === 2 && r[0]?.userId === bob.id);
    expect(rows).toEqual([
      { userId: bob.id, rank: "1", user: bob.name, score: 50 },
      { userId: alice.id, rank: "2", user: alice.name, score: 10 },
    ]);
    expect(navigations).toBe(navigationsBefore);
  });

  it("submits through the page's own form and the table follows", async () => {
    const navigationsBefore = navigations;
    await page.click("details > summary");
    expect(await page.isVisible("#submit")).toBe(true);
    await page.fill("#token", await mesh!.token(carol.id, { name: carol.name }));
    await page.fill("#action", actions.form);
    await page.click('#submit button[type="submit"]');

    try {
      await page.waitForFunction(() => document.querySelector("#result")?.textContent?.trim() === "+100 → 100", undefined, {
        timeout: 15_000,
      });
    } catch (err) {
      throw new Error(`#result: ${JSON.stringify(await page.textContent("#result"))}: ${String(err)}\n${pageProblems.join("\n")}`);
    }

    const rows = await waitForRows(`${carol.id} at rank 1 after the form`, (r) => r.length === 3 && r[0]?.userId === carol.id);
    expect(rows).toEqual([
      { userId: carol.id, rank: "1", user: carol.name, score: 100 },
      { userId: bob.id, rank: "2", user: bob.name, score: 50 },
      { userId: alice.id, rank: "3", user: alice.name, score: 10 },
    ]);

    expect(navigations).toBe(navigationsBefore);
    expect(await page.textContent("#status")).toBe("live");
  });

  it("saves a phone screenshot", async () => {
    await mkdir(resultsDir, { recursive: true });
    await rm(screenshotPath, { force: true });
    await page.screenshot({ path: screenshotPath, fullPage: true, animations: "disabled" });
    expect(existsSync(screenshotPath)).toBe(true);
    expect((await stat(screenshotPath)).size).toBeGreaterThan(1_000);
    // Nothing went wrong in the page along the way.
    expect(pageProblems.filter((p) => p.startsWith("pageerror"))).toEqual([]);
  });

  it("refuses a repeated form submission without breaking the page", async () => {
    await page.click('#submit button[type="submit"]');
    await page.waitForFunction(() => !document.querySelector("#result")?.textContent?.startsWith("+"), undefined, {
      timeout: 15_000,
    });
    // The gateway answers with a clean Connect error, so the page can show its message.
    expect(await page.textContent("#result")).toMatch(/already granted/);
    expect(await mesh!.sql<{ score: string }>("select score::text from scores where user_id = $1", [carol.id])).toEqual([{ score: "100" }]);
    expect((await readRows(page))[0]).toEqual({ userId: carol.id, rank: "1", user: carol.name, score: 100 });
    expect(await page.textContent("#status")).toBe("live");
  });

  it("reconnects by itself when the gateway goes away and comes back", async () => {
    const navigationsBefore = navigations;
    const state = () => page.getAttribute("#status", "data-state");
    await mesh!.kill("gateway");
    await eventually(async () => ((await state()) === "retrying" ? true : undefined), 15_000, "#status retrying");
    expect(await page.textContent("#status")).toMatch(/^reconnecting…/);
    // The last board stays on screen while the page retries.
    expect(await readRows(page)).toHaveLength(3);

    await mesh!.start("gateway");
    await eventually(async () => ((await state()) === "live" ? true : undefined), 30_000, "#status live again");
    const { status, body } = await grant(alice.id, alice.name, actions.big);
    expect(status, JSON.stringify(body)).toBe(200);
    const rows = await waitForRows(`${alice.id} at 60 after the reconnect`, (r) => r.some((row) => row.userId === alice.id && row.score === 60));
    expect(rows.map((r) => [r.userId, r.score])).toEqual([
      [carol.id, 100],
      [alice.id, 60],
      [bob.id, 50],
    ]);
    expect(await page.textContent("#status")).toBe("live");
    expect(navigations).toBe(navigationsBefore);
    expect(pageProblems.filter((p) => p.startsWith("pageerror"))).toEqual([]);
  });
  it("shows the player's own rank and neighbours beside the top list, moving when another player passes", async () => {
    // Alice is second (Carol 100, Alice 60, Bob 50); three more players below Bob, Frank last.
    for (const player of [dan, erin, frank]) expect((await grant(player.id, player.name, actions.small)).status).toBe(200);
    const desktop = await context!.browser()!.newContext({ viewport: { width: 1280, height: 900 }, locale: "en-US" });
    try {
      const you = await desktop.newPage();
      const problems: string[] = [];
      you.on("pageerror", (err) => problems.push(`pageerror: ${err.message}`));
      you.on("console", (msg) => {
        if (msg.type() === "error") problems.push(`console.error: ${msg.text()}`);
      });
      await you.goto(mesh!.urls.gateway, { waitUntil: "load" });
      expect(await you.isHidden('[data-testid="you-panel"]')).toBe(true);
      await you.getByLabel(/^Token/).fill(await mesh!.token(alice.id, { name: alice.name }));
      await you.getByRole("button", { name: "List boards" }).click();

      const readYou = (p: Page) =>
        p.evaluate(() => {
          const text = (id: string) => document.querySelector(`[data-testid="${id}"]`)?.textContent?.trim() ?? "";
          return {
            rank: text("you-rank"),
            score: text("you-score"),
            move: text("you-move"),
            neighbours: [...document.querySelectorAll<HTMLElement>('[data-testid="you-neighbour"]')].map((li) => li.dataset.user ?? ""),
          };
        });
      const waitForYou = (what: string, check: (shown: Awaited<ReturnType<typeof readYou>>) => boolean) =>
        waitForPage(you, readYou, check, {
          what,
          timeoutMs: 20_000,
          problems,
          context: () => `gateway log:\n${mesh?.logs.gateway.slice(-15).join("\n")}`,
        });

      const before = await waitForYou(`${alice.id} at #2 in the You panel`, (shown) => shown.rank === "#2");
      expect(before).toEqual({ rank: "#2", score: "60", move: "", neighbours: [carol.id, alice.id, bob.id, dan.id] });
      // Beside the top list on a wide screen, and the top list still live on the same stream.
      const [board, panel] = await Promise.all([you.locator("#board-panel").boundingBox(), you.locator('[data-testid="you-panel"]').boundingBox()]);
      expect(panel!.x).toBeGreaterThanOrEqual(board!.x + board!.width);
      await you.waitForFunction(() => document.querySelector("#status")?.textContent?.trim() === "live", undefined, { timeout: 15_000 });
      expect(await you.$$eval("#rows tr", (trs) => trs.length)).toBe(6);

      // Frank passes everyone: Alice goes down by one and Frank appears among her neighbours.
      const passed = await grant(frank.id, frank.name, actions.form);
      expect(passed.status, JSON.stringify(passed.body)).toBe(200);
      const after = await waitForYou(`${alice.id} down to #3, ${frank.id} among the neighbours`, (shown) => shown.rank === "#3");
      expect(after).toEqual({ rank: "#3", score: "60", move: "down 1", neighbours: [frank.id, carol.id, alice.id, bob.id, dan.id] });
      expect(await you.getAttribute("#status", "data-state")).toBe("live");
      await mkdir(resultsDir, { recursive: true });
      await you.screenshot({ path: `${resultsDir}demo-page-you.png`, fullPage: true, animations: "disabled" });
      expect(problems).toEqual([]);
    } finally {
      await desktop.close();
    }
  });
});
