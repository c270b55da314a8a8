import { context, type Context } from "@opentelemetry/api";
import { IORedisInstrumentation } from "@opentelemetry/instrumentation-ioredis";
import { PgInstrumentation } from "@opentelemetry/instrumentation-pg";
import { Pipeline, Redis } from "ioredis";
import pg from "pg";

/**
 * PostgreSQL and Redis spans, made by OpenTelemetry's pg and ioredis
 * instrumentations. Those normally patch a driver while it is being loaded,
 * through require-in-the-middle (CommonJS require) or import-in-the-middle
 * (an ESM loader hook that must be registered before the app's imports).
 * Neither sees a driver inlined into an image's single-file bundle, and the
 * ESM hook would need a preload flag wherever a process starts (tsx, images,
 * jobs, tests). So they get the driver modules from here instead, through
 * their public getModuleDefinitions() patches: the very objects db.ts and
 * redis.ts use, in a bundle and under tsx alike, with no loader hook and
 * nothing copied beside the bundle. The patches replace prototype methods
 * (pg's Client#query, ioredis' Redis#sendCommand), so clients made before
 * this ran are covered too. Loaded by startTracing only when tracing is on.
 */
export function instrumentDrivers(): void {
  // enabled: false keeps them from installing their require/import hooks; patch() works without.
  const sql = new PgInstrumentation({
    enabled: false,
    // Pool checks, the relay's polls and the probes run in no trace: no one-span traces of them.
    requireParentSpan: true,
    // Statements carry $n placeholders; their values (user ids, API key hashes) are never recorded.
    enhancedDatabaseReporting: false,
    // One span per statement: a wait for a pooled connection shows as the gap before it.
    ignoreConnectSpans: true,
  });
  const redis = new IORedisInstrumentation({ enabled: false, requireParentSpan: true, dbStatementSerializer: redisStatement });
  patchModule(sql, "pg", pg);
  patchModule(redis, "ioredis", Redis);
  keepCallerContext();
}

/**
 * db.query.text of a Redis command: its name, and a script's SHA-1 (which
 * names the script). Never a key (the rate limiter's hold a user id or a
 * client address) nor an argument (scores, members): the default serializer
 * writes every argument of EVALSHA.
 */
export function redisStatement(command: string, args: ReadonlyArray<unknown>): string {
  return command.toLowerCase() === "evalsha" && typeof args[0] === "string" ? `${command} ${args[0]}` : command;
}

function patchModule(instrumentation: PgInstrumentation | IORedisInstrumentation, name: string, moduleExports: unknown): void {
  const definition = instrumentation.getModuleDefinitions().find((d) => d.name === name);
  if (!definition?.patch) throw new Error(`${instrumentation.instrumentationName} has no patch for ${name}`);
  definition.patch(moduleExports);
}

const callerContext = Symbol("scoreboard.callerContext");
type Sendable = { [callerContext]?: Context };
type SendCommand = (this: unknown, command: Sendable, ...rest: unknown[]) => unknown;

/**
 * ioredis' auto-pipelining (ranking's client) queues a tick's commands and
 * writes them from a setImmediate that runs in whichever caller's context
 * came first, so every command's span would join that one caller's trace.
 * A command remembers its caller's context when it is queued and is sent,
 * through the instrumented sendCommand, in that context.
 */
function keepCallerContext(): void {
  const pipeline = Pipeline.prototype as unknown as { sendCommand: SendCommand };
  const queue = pipeline.sendCommand;
  pipeline.sendCommand = function (command, ...rest) {
    if (command && typeof command === "object") command[callerContext] ??= context.active();
    return queue.call(this, command, ...rest);
  };
  const client = Redis.prototype as unknown as { sendCommand: SendCommand };
  const send = client.sendCommand;
  client.sendCommand = function (command, ...rest) {
    const caller = command?.[callerContext];
    return caller ? context.with(caller, () => send.call(this, command, ...rest)) : send.call(this, command, ...rest);
  };
}
