import type { TestProject } from "vitest/node";
import { startInfra, stopAll } from "./harness/infra.js";

declare module "vitest" {
  export interface ProvidedContext {
    infra: { databaseUrl: string; redisUrl: string; natsUrl: string };
  }
}

/** Real PostgreSQL, Redis and NATS JetStream on free ports for the whole integration run. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const { postgres, redis, nats } = await startInfra();
  project.provide("infra", { databaseUrl: postgres.url, redisUrl: redis.url, natsUrl: nats.url });
  return async () => {
    await stopAll();
  };
}
