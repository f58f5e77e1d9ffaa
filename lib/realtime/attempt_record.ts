/**
 * Writing a socket's authentication attempt to the attempt log, where a KV
 * failure is logged and answered `false`: the connection then closes 1011,
 * since an attempt that cannot be recorded must not be let through.
 *
 * @module
 */
import type { AttemptInput } from "../attempts/log.ts";
import type { ConnectionDeps } from "./connection_deps.ts";

/** Records `attempt` for the socket `connectionId`; false when the log is unavailable. */
export async function recordAttempt(
  deps: Pick<ConnectionDeps, "attempts" | "logger">,
  connectionId: string,
  attempt: AttemptInput,
): Promise<boolean> {
  try {
    await deps.attempts.record(attempt);
    return true;
  } catch (error) {
    deps.logger.error("cannot record attempt: closing the socket", {
      connectionId,
      reason: attempt.reason,
      error,
    });
    return false;
  }
}
