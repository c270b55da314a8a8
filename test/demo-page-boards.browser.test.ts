// The demo page's board and season pickers in a real (headless) Chromium at a
// phone-sized viewport: a token lists the defined boards next to the seed
// boards, a defined board shows its current season in pages ("More" follows
// the cursor) that follow new submissions live, and a past season its final
// standings. The mesh's processes run on the real clock, so the past season
// is written to PostgreSQL as score would have written it a week ago (ranking
// reads a season Redis never held from there).
import { mkdir } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { launchChromium, requireChromium, waitForPage } from "./harness/browser.js";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { BoardAdminService, ScoreOperator, SortOrder } from "@scoreboard/gen/scoreboard/v1/boards_pb";
import { Scopes } from "@scoreboard/platform/auth";
import { SeasonSchedule } from "@scoreboard/platform/seasons";
import { startMesh, type Mesh } from "./harness/mesh.js";

const resultsDir = fileURLToPath(new URL("../test-results/", import.meta.url));
const WEEK_MS = 7 * 24 * 3600 * 1000;

/** The table as the user sees it, top to bottom: [user shown, score digits]. */
function readRows(page: Page): Promise<[string, number][]> {
  return page.$$eval("#rows tr", (trs) =>
    trs.map((tr) => {
      const text = (cls: string) => tr.querySelector(`td.${cls}`)?.textContent?.trim() ?? "";
      return [text("user"), Number(text("score").replace(/\D/g, ""))] as [string, number];
    }),
  );
}

describe("demo page: picking a defined board and a season (phone viewport)", () => {
  const suffix = randomBytes(3).toString("hex");
  const boardId = `laps-${suffix}`;
  const schedule = new SeasonSchedule("weekly");
  const current = schedule.seasonAt(new Date());
  const past = schedule.seasonAt(new Date(current.startsAt.getTime() - WEEK_MS));
  // Twelve drivers this week (more than a page of ten), two last week.
  const drivers = Array.from({ length: 12 }, (_, i) => ({ id: `d${i}-${suffix}`, name: `Driver ${i}`, lap: 60_000 + i * 1_000 }));
  const lastWeek = [
    { id: `old1-${suffix}`, name: "Old One", lap: 58_000 },
    { id: `old2-${suffix}`, name: "Old Two", lap: 59_500 },
  ];

  let mesh: Mesh | undefined;
  let browser: Browser | undefined;
  let context: BrowserContext | undefined;
  let page: Page;
  const pageProblems: string[] = [];

  const waitForRows = (what: string, check: (rows: [string, number][]) => boolean, timeoutMs = 20_000): Promise<[string, number][]> =>
    waitForPage(page, readRows, check, { what, timeoutMs, problems: pageProblems });

  async function submitLap(user: { id: string; name: string }, lap: number): Promise<void> {
    const res = await fetch(`${mesh!.urls.gateway}/api/boards/${boardId}/scores`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${await mesh!.token(user.id, { name: user.name })}` },
      body: JSON.stringify({ score: lap }),
    });
    expect(res.status, await res.clone().text()).toBe(200);
  }

  beforeAll(async () => {
    requireChromium();
    mesh = await startMesh(inject("infra"));
    const admin = createClient(BoardAdminService, createConnectTransport({ baseUrl: mesh.urls.gateway, httpVersion: "1.1" }));
    const adminToken = await mesh.token("ops", { scopes: [Scopes.adminScore] });
    await admin.createBoard(
      {
        board: {
          boardId,
          title: "Best lap (ms)",
          sortOrder: SortOrder.ASCENDING,
          operator: ScoreOperator.BEST,
          resetSchedule: "weekly",
          retainedSeasons: 4,
        },
      },
      { headers: { authorization: `Bearer ${adminToken}` } },
    );
    for (const { id, name, lap } of lastWeek) {
      await mesh.sql("INSERT INTO users (user_id, username) VALUES ($1, $2) ON CONFLICT DO NOTHING", [id, name]);
      await mesh.sql("INSERT INTO board_entries (board_id, season, user_id, score, reached_at, version) VALUES ($1, $2, $3, $4, $5, 1)", [
        boardId,
        past.id,
        id,
        lap,
        new Date(past.startsAt.getTime() + 3600_000),
      ]);
    }
    for (const driver of drivers) await submitLap(driver, driver.lap);

    browser = await launchChromium();
    context = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true, locale: "en-US" });
    page = await context.newPage();
    // The browser's own favicon request is the page's one 404.
    page.on("response", (res) => {
      if (res.status() >= 400 && !res.url().endsWith("/favicon.ico")) pageProblems.push(`${res.status()} ${res.url()}`);
    });
    page.on("pageerror", (err) => pageProblems.push(`pageerror: ${err.message}`));
  });

  afterAll(async () => {
    await context?.close().catch(() => undefined);
    await browser?.close();
    await mesh?.stop();
  }, 60_000);

  it("offers the seed boards without a token, and the defined ones once a token is entered", async () => {
    await page.goto(mesh!.urls.gateway, { waitUntil: "load" });
    await page.waitForFunction(() => document.querySelector("#status")?.textContent?.trim() === "live", undefined, { timeout: 15_000 });
    const boardPicker = page.getByLabel("Board", { exact: true });
    const options = () => boardPicker.locator("option").evaluateAll((els) => els.map((el) => (el as HTMLOptionElement).value));
    expect(await options()).toEqual(["global", "daily", "weekly", "monthly"]);
    expect(await page.isHidden("#season-field")).toBe(true);

    await page.getByLabel(/^Token/).fill(await mesh!.token(`reader-${suffix}`, { scopes: [Scopes.readLeaderboard] }));
    await page.getByRole("button", { name: "List boards" }).click();
    await page.waitForFunction(() => document.querySelector("#boards-note")?.textContent === "1 defined board listed.", undefined, { timeout: 15_000 });
    // The builtin definitions are the seed boards already offered, not listed twice.
    expect(await options()).toEqual(["global", "daily", "weekly", "monthly", boardId]);
    // Listing changed nothing on screen.
    expect(await page.inputValue("#board")).toBe("global");
    expect(await page.textContent("#status")).toBe("live");
  });

  it("shows the current season of a defined board lowest first, a page at a time", async () => {
    await page.getByLabel("Board", { exact: true }).selectOption(boardId);
    expect(await page.textContent("#title")).toBe("Best lap (ms)");
    const firstPage = await waitForRows("the first ten drivers", (rows) => rows.length === 10);
    expect(firstPage).toEqual(drivers.slice(0, 10).map((d) => [d.name, d.lap]));
    // The gateway streams defined boards: the current season follows WatchLeaderboard on the board's id.
    await page.waitForFunction(() => document.querySelector("#status")?.getAttribute("data-state") === "live", undefined, { timeout: 15_000 });

    const seasonPicker = page.getByLabel("Season", { exact: true });
    expect(await seasonPicker.isVisible()).toBe(true);
    const seasons = await seasonPicker.locator("option").evaluateAll((els) => els.map((el) => (el as HTMLOptionElement).value));
    expect(seasons).toHaveLength(5); // the current season and the four retained ones, newest first
    expect(seasons.slice(0, 2)).toEqual([current.id, past.id]);
    expect(await page.inputValue("#season")).toBe(current.id);

    // By keyboard, as a person without a pointer would.
    const more = page.getByRole("button", { name: "More" });
    await more.focus();
    await page.keyboard.press("Enter");
    const all = await waitForRows("all twelve drivers after More", (rows) => rows.length === 12);
    expect(all).toEqual(drivers.map((d) => [d.name, d.lap]));
    expect(await more.isHidden()).toBe(true);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    await mkdir(resultsDir, { recursive: true });
    await page.screenshot({ path: `${resultsDir}demo-page-boards.png`, fullPage: true, animations: "disabled" });
  });

  it("follows a new best lap in the current season without a reload, keeping the rows More added", async () => {
    const last = drivers[11]!;
    await submitLap(last, 59_000);
    const rows = await waitForRows(`${last.name} first after a 59 s lap`, (r) => r[0]?.[0] === last.name, 30_000);
    expect(rows).toHaveLength(12);
    expect(rows[0]).toEqual([last.name, 59_000]);
  });

  it("shows a past season's final standings when that season is picked", async () => {
    // The season picker by keyboard: the next option down is last week.
    await page.getByLabel("Season", { exact: true }).focus();
    await page.keyboard.press("ArrowDown");
    expect(await page.inputValue("#season")).toBe(past.id);
    const rows = await waitForRows("last week's two drivers", (r) => r.length === 2);
    expect(rows).toEqual(lastWeek.map((d) => [d.name, d.lap]));
    expect(await page.getAttribute("#status", "data-state")).toBe("final");
    expect(await page.isHidden("#more")).toBe(true);

    // An empty retained season says so.
    await page.getByLabel("Season", { exact: true }).selectOption({ index: 2 });
    await page.waitForFunction(() => document.querySelector("#status")?.getAttribute("data-state") === "final", undefined, { timeout: 15_000 });
    expect(await readRows(page)).toEqual([]);
    expect(await page.textContent("#empty")).toBe("No entries in this season.");
    expect(await page.isVisible("#empty")).toBe(true);
  });

  it("goes back to a live seed board", async () => {
    await page.getByLabel("Board", { exact: true }).selectOption("global");
    await page.waitForFunction(() => document.querySelector("#status")?.textContent?.trim() === "live", undefined, { timeout: 15_000 });
    expect(await page.isHidden("#season-field")).toBe(true);
    expect(await page.textContent("#title")).toBe("Top 10");
    expect(pageProblems).toEqual([]);
  });
});
