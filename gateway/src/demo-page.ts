import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import type { Request, Response } from "./http.js";

export interface DemoPage {
  serve(req: Request, res: Response): boolean;
}

const publicDir = fileURLToPath(new URL("./public/", import.meta.url));

/**
 * The page runs only its own bundled script and talks only to this gateway
 * (fetch and EventSource, same origin); no other page may frame it. Its one
 * inline <style> is why style-src allows 'unsafe-inline' (styles cannot run code).
 */
const PAGE_HEADERS = {
  "content-security-policy": [
    "default-src 'none'",
    "script-src 'self'",
    "connect-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join("; "),
  "x-frame-options": "DENY",
};

/**
 * The live leaderboard page at "/". Its script is bundled once at start with
 * esbuild (@scoreboard/client from its TypeScript sources, with the generated
 * code and connect-web), so there is no build step to forget and the page
 * always matches the contract it was started with.
 */
export async function loadDemoPage(): Promise<DemoPage> {
  const html = await readFile(`${publicDir}index.html`);
  const bundle = await build({
    entryPoints: [`${publicDir}app.ts`],
    bundle: true,
    write: false,
    format: "esm",
    platform: "browser",
    target: "es2022",
    minify: true,
    legalComments: "none",
    // packages/client's export condition for its sources (its dist/ is for npm pack).
    conditions: ["@scoreboard/source"],
  });
  const script = Buffer.from(bundle.outputFiles[0]!.contents);
  const page = { body: html, type: "text/html; charset=utf-8", headers: PAGE_HEADERS };
  const assets = new Map<string, { body: Buffer; type: string; headers?: Record<string, string> }>([
    ["/", page],
    ["/index.html", page],
    ["/app.js", { body: script, type: "text/javascript; charset=utf-8" }],
  ]);
  return {
    serve(req, res) {
      const path = (req.url ?? "/").split("?")[0] ?? "/";
      const asset = assets.get(path);
      if (!asset || (req.method !== "GET" && req.method !== "HEAD")) return false;
      res.writeHead(200, {
        "content-type": asset.type,
        "content-length": String(asset.body.length),
        "cache-control": "no-cache",
        "x-content-type-options": "nosniff",
        ...asset.headers,
      });
      if (req.method === "HEAD") res.end();
      else res.end(asset.body);
      return true;
    },
  };
}
