import type { Logger } from "./logger.js";
import { stopTracing } from "./tracing.js";

/**
 * Runs `stop` once on SIGTERM or SIGINT, then exits. A second signal, or a
 * stop that hangs past the deadline, exits at once: Kubernetes sends SIGKILL
 * after its grace period anyway.
 */
export function onShutdown(logger: Logger, stop: () => Promise<void>, deadlineMs = 15_000): void {
  let stopping = false;
  const handle = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, "second signal, exiting now");
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, "shutting down");
    const timer = setTimeout(() => {
      logger.error("shutdown deadline passed, exiting");
      process.exit(1);
    }, deadlineMs);
    timer.unref();
    // Spans of the last calls are exported before we exit, success or not.
    stop()
      .finally(() => stopTracing())
      .then(
        () => process.exit(0),
        (err: unknown) => {
          logger.error({ err }, "shutdown failed");
          process.exit(1);
        },
      );
  };
  process.on("SIGTERM", handle);
  process.on("SIGINT", handle);
}

/** Logs a fatal start-up error without a stack for config problems, then exits 1. */
export function exitOnStartupError(logger: Logger, err: unknown): never {
  if (err instanceof Error && err.name === "ConfigError") {
    logger.fatal(err.message);
  } else {
    logger.fatal({ err }, "failed to start");
  }
  process.exit(1);
}
