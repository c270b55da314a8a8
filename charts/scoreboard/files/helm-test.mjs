// `helm test <release>`: a player's round trip through the release's front
// door (Envoy's Service, or the gateway's without Envoy). It grants the test
// user one point (ScoreService/AddScore) and waits until the board shows it
// (RankingService/GetRank): Envoy, gateway, score, PostgreSQL, the outbox,
// JetStream, ranking and Redis all had to work. Runs in the gateway's image:
// Node.js and nothing else. Exit 0 = it worked; otherwise the log says which step failed.
import { createHmac, randomUUID } from "node:crypto";
import http from "node:http";
import https from "node:https";

const baseUrl = new URL(required("BASE_URL"));
const userId = required("TEST_USER_ID");
const tlsServerName = process.env.TLS_SERVER_NAME ?? "";
const jwtSecret = process.env.JWT_SECRET ?? "";
const edgeJwt = process.env.EDGE_JWT === "true";
const readsRequireScope = process.env.READS_REQUIRE_SCOPE === "true";
const boardTimeoutMs = Number(process.env.BOARD_TIMEOUT_S ?? 30) * 1000;

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

/** An HS256 access token for the test user, valid 5 minutes, as the services verify it. */
function mintToken() {
  const now = Math.floor(Date.now() / 1000);
  const encode = (part) => Buffer.from(JSON.stringify(part)).toString("base64url");
  const unsigned = `${encode({ alg: "HS256", typ: "JWT" })}.${encode({
    sub: userId,
    iss: required("JWT_ISSUER"),
    aud: required("JWT_AUDIENCE"),
    iat: now,
    exp: now + 300,
    scope: "update:score read:leaderboard",
    roles: ["player"],
  })}`;
  return `${unsigned}.${createHmac("sha256", jwtSecret).update(unsigned).digest("base64url")}`;
}

/** One request to the front door; resolves with the status and the parsed JSON body. */
function call(method, path, { body, token } = {}) {
  const tls = baseUrl.protocol === "https:";
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const options = {
    method,
    headers: {
      ...(payload && { "content-type": "application/json", "connect-protocol-version": "1" }),
      ...(token && { authorization: `Bearer ${token}` }),
    },
    // The public certificate names the public host, not the in-cluster Service.
    ...(tls && (tlsServerName ? { servername: tlsServerName } : { rejectUnauthorized: false })),
  };
  return new Promise((resolve, reject) => {
    const req = (tls ? https : http).request(new URL(path, baseUrl), options, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk) => (text += chunk));
      res.on("end", () => {
        let json;
        try {
          json = text ? JSON.parse(text) : undefined;
        } catch {
          json = { raw: text.slice(0, 200) };
        }
        resolve({ status: res.statusCode, json });
      });
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`${method} ${path}: no answer within 10 s`)));
    req.on("error", reject);
    req.end(payload);
  });
}

function expectStatus(step, answer, status) {
  if (answer.status !== status) throw new Error(`${step}: HTTP ${answer.status} ${JSON.stringify(answer.json)}`);
  return answer.json;
}

/** The test user's score on the global board; 0 before its first point. */
async function scoreOnBoard(token) {
  const answer = await call("POST", "/scoreboard.v1.RankingService/GetRank", { body: { userId }, token });
  if (answer.status === 404) return 0n;
  return BigInt(expectStatus("read the board", answer, 200).entry.score);
}

async function main() {
  console.log(
    `front door: ${baseUrl.origin}${tlsServerName ? ` (TLS, verified as ${tlsServerName})` : baseUrl.protocol === "https:" ? " (TLS, certificate not verified: set tests.tlsServerName)" : ""}`,
  );
  expectStatus("gateway ready through the front door (GET /readyz)", await call("GET", "/readyz"), 200);

  const token = jwtSecret ? mintToken() : undefined;
  const cannotGrant = !token
    ? "no JWT_SECRET in the release's Secret"
    : edgeJwt
      ? "Envoy checks write tokens against the IdP's JWKS (envoy.jwtAuthn), and this token is HS256"
      : "";
  if (cannotGrant) {
    if (!token && readsRequireScope) {
      console.log("board read skipped: reads need a token and none can be minted");
    } else {
      expectStatus("read the board", await call("POST", "/scoreboard.v1.RankingService/GetLeaderboard", { body: { limit: 1 }, token }), 200);
      console.log("board read: ok");
    }
    console.log(`grant skipped: ${cannotGrant}. Read path only.`);
    return;
  }

  const before = await scoreOnBoard(token);
  const granted = expectStatus(
    "grant a point (ScoreService/AddScore)",
    await call("POST", "/scoreboard.v1.ScoreService/AddScore", { body: { delta: 1, idempotencyKey: randomUUID() }, token }),
    200,
  );
  const expected = BigInt(granted.newScore);
  console.log(`granted 1 point to ${userId}: ${before} -> ${expected}`);

  // The board follows the grant through the outbox, JetStream and ranking: eventually, within milliseconds normally.
  const deadline = Date.now() + boardTimeoutMs;
  let seen = before;
  while (Date.now() < deadline) {
    seen = await scoreOnBoard(token);
    if (seen >= expected) {
      console.log(`board shows ${seen}: ok`);
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  throw new Error(
    `the board still shows ${seen} for ${userId} ${boardTimeoutMs / 1000} s after the grant (${expected}): check score's outbox, NATS and ranking`,
  );
}

main().catch((err) => {
  console.error(`helm test failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
