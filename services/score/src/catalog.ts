import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { CatalogService, CatalogAction } from "@scoreboard/gen/scoreboard/v1/catalog_pb";
import { Scopes, isValidId, requireScope, type TokenVerifier } from "@scoreboard/platform/auth";
import type { Db } from "@scoreboard/platform/db";
import { toConnectError } from "@scoreboard/platform/errors";

const MAX_POINTS = 1_000_000;
const FOREIGN_KEY_VIOLATION = "23503";

export interface CatalogEntry {
  actionId: string;
  points: number;
  description: string;
  requiresTicket: boolean;
}

/** The action catalog in PostgreSQL. */
export class CatalogRepository {
  constructor(private readonly db: Db) {}

  async list(): Promise<CatalogEntry[]> {
    const rows = await this.db.selectFrom("actions").select(["action_id", "points", "description", "requires_ticket"]).orderBy("action_id").execute();
    return rows.map((r) => ({ actionId: r.action_id, points: r.points, description: r.description, requiresTicket: r.requires_ticket }));
  }

  async put(entry: CatalogEntry): Promise<void> {
    const values = { points: entry.points, description: entry.description, requires_ticket: entry.requiresTicket };
    await this.db
      .insertInto("actions")
      .values({ action_id: entry.actionId, ...values })
      .onConflict((oc) => oc.column("action_id").doUpdateSet(values))
      .execute();
  }

  /** False when there was no such entry; throws FAILED_PRECONDITION when it was granted before. */
  async delete(actionId: string): Promise<boolean> {
    try {
      const result = await this.db.deleteFrom("actions").where("action_id", "=", actionId).executeTakeFirst();
      return Number(result.numDeletedRows) > 0;
    } catch (err) {
      if ((err as { code?: string }).code === FOREIGN_KEY_VIOLATION) {
        throw new ConnectError(`action "${actionId}" was granted before and stays in the catalog`, Code.FailedPrecondition);
      }
      throw err;
    }
  }
}

export function createCatalogService(catalog: CatalogRepository, verifier: TokenVerifier): ServiceImpl<typeof CatalogService> {
  const admin = async (ctx: HandlerContext) => {
    const principal = await verifier.authenticate(ctx.requestHeader.get("authorization"));
    requireScope(principal, Scopes.adminScore);
  };
  const store = <T>(work: Promise<T>) =>
    work.catch((err: unknown) => {
      throw toConnectError(err, "catalog store");
    });
  return {
    async listActions(_req, ctx) {
      const principal = await verifier.authenticate(ctx.requestHeader.get("authorization"));
      if (!principal.scopes.has(Scopes.adminScore) && !principal.scopes.has(Scopes.readLeaderboard)) {
        throw new ConnectError(`token lacks the scope "${Scopes.adminScore}" or "${Scopes.readLeaderboard}"`, Code.PermissionDenied);
      }
      const entries = await store(catalog.list());
      return { actions: entries.map((e) => ({ ...e, points: BigInt(e.points) })) };
    },
    async putAction(req, ctx) {
      await admin(ctx);
      const entry = validEntry(req.action);
      await store(catalog.put(entry));
      return { action: { ...entry, points: BigInt(entry.points) } };
    },
    async deleteAction(req, ctx) {
      await admin(ctx);
      if (!isValidId(req.actionId)) throw new ConnectError("action_id must be 1..64 characters without control characters", Code.InvalidArgument);
      if (!(await store(catalog.delete(req.actionId)))) throw new ConnectError(`action "${req.actionId}" is not in the catalog`, Code.NotFound);
      return {};
    },
  };
}

function validEntry(action: CatalogAction | undefined): CatalogEntry {
  if (!action) throw new ConnectError("action is required", Code.InvalidArgument);
  if (!isValidId(action.actionId)) throw new ConnectError("action_id must be 1..64 characters without control characters", Code.InvalidArgument);
  const points = Number(action.points);
  if (!Number.isInteger(points) || points < 1 || points > MAX_POINTS) {
    throw new ConnectError(`points must be 1..${MAX_POINTS}`, Code.InvalidArgument);
  }
  if (action.description.length > 500) throw new ConnectError("description must be at most 500 characters", Code.InvalidArgument);
  return { actionId: action.actionId, points, description: action.description, requiresTicket: action.requiresTicket };
}
