// Score's database for the length of one `users` or `catalog` command.
import { EnvReader } from "@scoreboard/platform/config";
import { openScoreAdmin, type ScoreAdmin } from "../services/score/src/admin.js";
import { commandLogger, type Outcome } from "./command.js";

export async function withAdmin(work: (admin: ScoreAdmin) => Promise<Outcome>): Promise<Outcome> {
  const admin = await openScoreAdmin(new EnvReader(), commandLogger("admin"));
  try {
    return await work(admin);
  } finally {
    await admin.close();
  }
}
