import { Code, ConnectError, type Client } from "@connectrpc/connect";
import type { BoardReadService } from "@scoreboard/gen/scoreboard/v1/boards_pb";
import { isDefinedBoardName, knownBoard, type BoardRules } from "@scoreboard/platform/board-params";
import { fromUpstream } from "../http.js";

/** Whether a defined board has this id (true), none has (false), or the answer is not known now (throws). */
export type DefinedBoardProbe = (boardId: string) => Promise<boolean>;

export interface StreamableBoardsOptions {
  /** How long "this defined board exists" is believed: boards are archived, never deleted. */
  knownMs: number;
  /** How long "no board has this id" is believed: a board created meanwhile is streamable after this. */
  unknownMs: number;
  /** Ids remembered of each kind; the oldest is forgotten first. Unknown ids never push known ones out. */
  maxRemembered: number;
  /** Lookups in flight at once; a stream needing one more is refused UNAVAILABLE. */
  maxLookups: number;
}

const DEFAULTS: StreamableBoardsOptions = { knownMs: 30_000, unknownMs: 5_000, maxRemembered: 1_000, maxLookups: 32 };

/**
 * The boards the public edge serves by name, for reads and streams: the seed
 * boards as knownBoard says (at once, without a call), and any defined board
 * by its id, asked of ranking and remembered for a while. Every name a
 * client may stream costs an upstream stream that push re-reads every few
 * seconds, so an id no board has is refused NOT_FOUND as an unknown seed
 * board is; and a flood of random ids costs ranking at most one lookup per
 * id per `unknownMs`, `maxLookups` at a time. Archived boards stay
 * streamable: their seasons stay readable.
 */
export class StreamableBoards {
  private readonly options: StreamableBoardsOptions;
  /** Id → until when it is believed, in insertion order (the first is the oldest). */
  private readonly known = new Map<string, number>();
  private readonly unknown = new Map<string, number>();
  private readonly lookups = new Map<string, Promise<boolean>>();

  constructor(
    private readonly rules: BoardRules,
    private readonly probe: DefinedBoardProbe,
    options: Partial<StreamableBoardsOptions> = {},
    private readonly nowMs: () => number = Date.now,
  ) {
    this.options = { ...DEFAULTS, ...options };
  }

  /**
   * The board a request names ("" is global), as the seed rules answer it
   * (`daily` stays `daily`); NOT_FOUND for a name that is neither a seed
   * board nor a defined board's id.
   */
  async resolve(requested: string): Promise<string> {
    try {
      return knownBoard(requested, this.rules, this.nowMs());
    } catch (err) {
      if (!(err instanceof ConnectError && err.code === Code.NotFound && isDefinedBoardName(requested))) throw err;
      if (await this.isDefined(requested)) return requested;
      throw new ConnectError(`${err.rawMessage}, or a defined board's id`, Code.NotFound);
    }
  }

  private isDefined(boardId: string): Promise<boolean> {
    const now = this.nowMs();
    if ((this.known.get(boardId) ?? 0) > now) return Promise.resolve(true);
    if ((this.unknown.get(boardId) ?? 0) > now) return Promise.resolve(false);
    let lookup = this.lookups.get(boardId);
    if (!lookup) {
      if (this.lookups.size >= this.options.maxLookups) {
        return Promise.reject(new ConnectError("too many boards are being looked up at once; retry shortly", Code.Unavailable));
      }
      lookup = this.probe(boardId)
        .then((found) => {
          this.remember(boardId, found);
          return found;
        })
        .finally(() => this.lookups.delete(boardId));
      this.lookups.set(boardId, lookup);
    }
    return lookup;
  }

  private remember(boardId: string, found: boolean): void {
    const [into, other] = found ? [this.known, this.unknown] : [this.unknown, this.known];
    other.delete(boardId);
    into.delete(boardId);
    if (into.size >= this.options.maxRemembered) into.delete(into.keys().next().value!);
    into.set(boardId, this.nowMs() + (found ? this.options.knownMs : this.options.unknownMs));
  }
}

/**
 * Asks ranking's BoardReadService whether a defined board has this id:
 * ListSeasons answers one (archived too), NOT_FOUND none, and
 * FAILED_PRECONDITION a builtin id (a seed board, which knownBoard answers).
 */
export function definedBoardProbe(boardRead: Client<typeof BoardReadService>, timeoutMs = 5_000): DefinedBoardProbe {
  return async (boardId) => {
    try {
      await boardRead.listSeasons({ boardId }, { timeoutMs });
      return true;
    } catch (err) {
      const error = fromUpstream(err);
      if (error.code === Code.NotFound || error.code === Code.FailedPrecondition) return false;
      // Only the code and message: the upstream's gRPC headers would spoil a Connect answer.
      throw new ConnectError(`looking up board "${boardId}": ${error.rawMessage}`, error.code);
    }
  };
}
