/**
 * The contract's ceiling: the raw Deno server (bench/servers/raw_deno.ts)
 * plus exactly one durable attempt record per authentication, written by
 * Lookout's own {@linkcode AttemptLog}: the same record, four indexes and
 * counters under the same keys, the same group commit, and the answer sent
 * only once the commit is durable. No hub, limits, logging or routing: what
 * Lookout spends beyond this server is its own code.
 *
 *   PORT=8002 KV_PATH=/tmp/raw.sqlite3 JWT_SECRET=... deno run -A bench/servers/raw_kv.ts
 */
import { AttemptLog } from "../../lib/attempts/log.ts";
import { env, serveRaw } from "./raw_deno.ts";

async function main(): Promise<void> {
  const kv = await Deno.openKv(env("KV_PATH"));
  // Lookout's default retention (ATTEMPT_RETENTION_DAYS), so expireIn matches too.
  const log = new AttemptLog(kv, { retentionDays: 30 });
  serveRaw((attempt) => log.record({ ...attempt, transport: "message" }));
}

if (import.meta.main) await main();
