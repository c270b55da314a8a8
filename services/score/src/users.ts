// Users as an operator manages them (add, roles, API keys, a look at one);
// players register themselves through the grant (sb_grant_batch).
import { randomBytes } from "node:crypto";
import type { Db } from "@scoreboard/platform/db";
import { hashApiKey } from "./ledger.js";

/** A role name as the users table and tokens carry it. */
export const ROLE = /^[a-z][a-z0-9_-]{0,31}$/;

export interface UserView {
  userId: string;
  username: string;
  role: string;
  region: string | null;
  createdAt: string;
  score: number;
}

export class UserAccounts {
  constructor(private readonly db: Db) {}

  /** Creates the user, or renames it and sets its role when it exists. */
  async put(userId: string, username: string, role: string): Promise<void> {
    await this.db
      .insertInto("users")
      .values({ user_id: userId, username, role, api_key_hash: null })
      .onConflict((oc) => oc.column("user_id").doUpdateSet({ username, role }))
      .execute();
  }

  /** False when there is no such user. */
  async setRole(userId: string, role: string): Promise<boolean> {
    const result = await this.db.updateTable("users").set({ role }).where("user_id", "=", userId).executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  /** A new API key replacing any earlier one; only its SHA-256 is stored, so this is the one time it is seen. */
  async newApiKey(userId: string): Promise<string | undefined> {
    const key = randomBytes(24).toString("base64url");
    const result = await this.db
      .updateTable("users")
      .set({ api_key_hash: hashApiKey(key) })
      .where("user_id", "=", userId)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0 ? key : undefined;
  }

  async show(userId: string): Promise<UserView | undefined> {
    const user = await this.db
      .selectFrom("users")
      .leftJoin("scores", "scores.user_id", "users.user_id")
      .select(["users.user_id", "users.username", "users.role", "users.region", "users.created_at", "scores.score"])
      .where("users.user_id", "=", userId)
      .executeTakeFirst();
    if (!user) return undefined;
    return {
      userId: user.user_id,
      username: user.username,
      role: user.role,
      region: user.region,
      createdAt: user.created_at.toISOString(),
      score: Number(user.score ?? 0),
    };
  }
}
