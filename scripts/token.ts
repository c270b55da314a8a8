// Mints a dev access token: npm run token -- <user> [--scope "update:score read:leaderboard"] [--role player] [--name Alice] [--ttl 1h]
import { existsSync } from "node:fs";
import { parseArgs } from "node:util";
import { Scopes, isValidId, mintToken } from "@scoreboard/platform/auth";
import { EnvReader, readAuth, readCommon } from "@scoreboard/platform/config";

if (existsSync(".env.local")) process.loadEnvFile(".env.local");

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    scope: { type: "string", default: `${Scopes.updateScore} ${Scopes.readLeaderboard}` },
    role: { type: "string", multiple: true, default: ["player"] },
    name: { type: "string" },
    region: { type: "string" },
    ttl: { type: "string", default: "12h" },
  },
});
const userId = positionals[0];
if (!userId || !isValidId(userId)) {
  console.error('usage: npm run token -- <user-id> [--scope "update:score read:leaderboard"] [--role player] [--name "Alice"] [--ttl 12h]');
  process.exit(2);
}
const env = new EnvReader();
const auth = readAuth(env, readCommon(env).mode);
env.done();
const token = await mintToken(auth, userId, {
  scopes: values.scope.split(/\s+/).filter(Boolean),
  roles: values.role,
  name: values.name,
  region: values.region,
  expiresIn: values.ttl,
});
process.stdout.write(`${token}\n`);
