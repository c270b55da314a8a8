// Mints a dev access token: npm run token -- <user> [--scope "update:score read:leaderboard"] [--role player] [--name Alice] [--ttl 1h]
import { existsSync } from "node:fs";
import { parseArgs } from "node:util";
import { decodeJwt } from "jose";
import { DEFAULT_MAX_LIFETIME_S, Scopes, isValidId, mintToken } from "@scoreboard/platform/auth";
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
// Verifiers refuse tokens living longer than JWT_MAX_LIFETIME_S: never print one they would refuse.
const { iat = 0, exp = 0 } = decodeJwt(token);
const maxLifetimeS = auth.maxLifetimeS ?? DEFAULT_MAX_LIFETIME_S;
if (exp - iat > maxLifetimeS) {
  console.error(`--ttl ${values.ttl} is longer than JWT_MAX_LIFETIME_S (${maxLifetimeS} s): verifiers would refuse the token`);
  process.exit(2);
}
process.stdout.write(`${token}\n`);
