import type { EnvReader } from "@scoreboard/platform/config";
import { readRateLimitRules, type RateLimitRule } from "@scoreboard/platform/rate-limit";

const minute = 60_000;

/**
 * Per-route write limits (each overridable: RATE_LIMIT_<NAME>="10/1m",
 * RATE_LIMIT_<NAME>_FAIL_MODE=local|open|closed). Writes fall back to a
 * per-replica window while Redis is down: they keep working, abuse stays bounded.
 */
const defaults = {
  ip: { name: "writes-ip", limit: 600, windowMs: minute, failMode: "local" },
  actions: { name: "actions-user", limit: 60, windowMs: minute, failMode: "local" },
  scoresUpdate: { name: "scores-update-user", limit: 10, windowMs: minute, failMode: "local" },
  scoreIncrement: { name: "score-increment-user", limit: 100, windowMs: minute, failMode: "local" },
  scoreUpdate: { name: "score-update-user", limit: 100, windowMs: minute, failMode: "local" },
  updateScore: { name: "update-score-user", limit: 100, windowMs: minute, failMode: "local" },
  boardScores: { name: "board-scores-user", limit: 100, windowMs: minute, failMode: "local" },
  rpc: { name: "rpc-writes-user", limit: 100, windowMs: minute, failMode: "local" },
} satisfies Record<string, RateLimitRule>;

export type WriteRules = Record<keyof typeof defaults, RateLimitRule>;

export function readWriteRules(env: EnvReader): WriteRules {
  return readRateLimitRules(env, defaults);
}
