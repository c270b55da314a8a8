// Seed 001's registration: with REQUIRE_REGISTRATION only users in the users
// table may score, and only with a role that may score.
import { afterAll, beforeAll, expect, inject, it } from "vitest";
import { startMesh, type Mesh } from "./harness/mesh.js";

let mesh: Mesh;

beforeAll(async () => {
  mesh = await startMesh(inject("infra"), { REQUIRE_REGISTRATION: "true" });
  await mesh.sql("INSERT INTO actions (action_id, points) VALUES ('login', 5)");
  await mesh.sql("INSERT INTO users (user_id, username, role) VALUES ('reg', 'Registered', 'player'), ('ban', 'Banned', 'banned')");
});
afterAll(async () => {
  await mesh?.stop();
});

async function grant(userId: string) {
  const res = await fetch(`${mesh.urls.gateway}/api/score/${userId}`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${await mesh.token(userId)}` },
    body: JSON.stringify({ increment: 1 }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

it("refuses users who are not registered and creates nobody", async () => {
  expect(await grant("stranger")).toMatchObject({ status: 403, body: { message: "user is not registered" } });
  expect(await mesh.sql("SELECT 1 FROM users WHERE user_id = 'stranger'")).toHaveLength(0);
});

it("grants registered players and refuses other roles", async () => {
  expect(await grant("reg")).toMatchObject({ status: 200, body: { newScore: 1 } });
  expect(await grant("ban")).toMatchObject({ status: 403 });
  const audit = await mesh.sql<{ user_id: string; reason: string }>("SELECT user_id, reason FROM audit_log WHERE outcome = 'refused' ORDER BY id");
  expect(audit).toEqual([
    { user_id: "stranger", reason: "unregistered" },
    { user_id: "ban", reason: "not_a_player" },
  ]);
});
