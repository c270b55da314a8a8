// scoreboard token: mints a development access token signed with JWT_SECRET
// (deployments on a JWKS get theirs from their identity provider).
import { decodeJwt } from "jose";
import { DEFAULT_MAX_LIFETIME_S, REGION, Scopes, isValidId, mintToken } from "@scoreboard/platform/auth";
import { EnvReader, readAuth, readCommon } from "@scoreboard/platform/config";
import { UsageError, expectArgs, type Command } from "./command.js";

const TTL = /^([1-9]\d{0,6})(s|m|h|d)$/;
const ROLE = /^[a-z][a-z0-9_-]{0,31}$/;

export const token: Command = {
  name: "token",
  summary: "mint a development access token (JWT_SECRET)",
  usage: `usage: scoreboard token <user-id> [--scope "update:score read:leaderboard"] [--role player]... [--name Alice] [--region eu] [--ttl 12h] [--json]

Prints a token for <user-id> signed with JWT_SECRET, for JWT_ISSUER and JWT_AUDIENCE.
  --scope   space-separated scopes (default "${Scopes.updateScore} ${Scopes.readLeaderboard}")
  --role    a role claim; repeat for several (default player)
  --name    the display name claim
  --region  the region claim (region boards)
  --ttl     lifetime: a number and s, m, h or d (default 12h); at most JWT_MAX_LIFETIME_S
  --json    {"token", "userId", "expiresAt"} instead of the bare token`,
  options: {
    scope: { type: "string" },
    role: { type: "string", multiple: true },
    name: { type: "string" },
    region: { type: "string" },
    ttl: { type: "string" },
  },
  prepare(values, positionals) {
    const [userId = ""] = expectArgs(["token", ...positionals], "token", "<user-id>");
    if (!isValidId(userId)) throw new UsageError("the user id must be 1..64 characters without control characters");
    const scopes = ((values.scope as string | undefined) ?? `${Scopes.updateScore} ${Scopes.readLeaderboard}`).split(/\s+/).filter(Boolean);
    if (scopes.length === 0) throw new UsageError("--scope needs at least one scope");
    const roles = (values.role as string[] | undefined) ?? ["player"];
    const badRole = roles.find((r) => !ROLE.test(r));
    if (badRole !== undefined) throw new UsageError(`--role "${badRole}": 1..32 of a-z, 0-9, '_' or '-'`);
    const region = values.region as string | undefined;
    if (region !== undefined && !REGION.test(region)) throw new UsageError(`--region "${region}": 1..16 of a-z, 0-9 or '-', starting with a letter`);
    const ttl = (values.ttl as string | undefined) ?? "12h";
    if (!TTL.test(ttl)) throw new UsageError(`--ttl "${ttl}": a number and s, m, h or d, like 90s, 30m, 12h or 7d`);
    const name = values.name as string | undefined;

    return async () => {
      const env = new EnvReader();
      const auth = readAuth(env, readCommon(env).mode);
      env.done();
      const minted = await mintToken(auth, userId, { scopes, roles, name, region, expiresIn: ttl });
      // Verifiers refuse tokens living longer than JWT_MAX_LIFETIME_S: never print one they would refuse.
      const { iat = 0, exp = 0 } = decodeJwt(minted);
      const maxLifetimeS = auth.maxLifetimeS ?? DEFAULT_MAX_LIFETIME_S;
      if (exp - iat > maxLifetimeS)
        throw new UsageError(`--ttl ${ttl} is longer than JWT_MAX_LIFETIME_S (${maxLifetimeS} s): verifiers would refuse the token`);
      return { text: minted, json: { token: minted, userId, expiresAt: new Date(exp * 1000).toISOString() } };
    };
  },
};
