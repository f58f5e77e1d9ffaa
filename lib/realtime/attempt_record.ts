/**
 * Writing a socket's authentication attempt to the attempt log, and its log
 * line once it is durable. A KV failure is logged and answered `false`: the
 * connection then closes 1011, since an attempt that cannot be recorded must
 * not be let through.
 *
 * @module
 */
import type { AttemptInput } from "../attempts/log.ts";
import type { ConnectionDeps } from "./connection_deps.ts";
import { logAuthentication, type SocketFacts } from "./socket_log.ts";

/** Records `attempt` of `socket` and logs it; false when the log is unavailable. */
export async function recordAttempt(
  deps: Pick<ConnectionDeps, "attempts" | "logger" | "instanceId">,
  socket: SocketFacts,
  attempt: AttemptInput & { transport: "message" },
): Promise<boolean> {
  try {
    await deps.attempts.record(attempt);
  } catch (error) {
    deps.logger.error("cannot record attempt: closing the socket", {
      connectionId: socket.id,
      reason: attempt.reason,
      error,
    });
    return false;
  }
  const { user, reason, tokenId, transport, durationMs } = attempt;
  logAuthentication(deps, socket, { user, reason, tokenId, transport, durationMs });
  return true;
}
