/**
 * What a `/admin/ws` connection is given: the app's parts it uses, and the
 * facts about its client taken from the upgrade request.
 *
 * @module
 */
import type { AttemptLog } from "../attempts/log.ts";
import type { AccessClaims, TokenKey } from "../auth/tokens.ts";
import type { Logger } from "../log.ts";
import type { DeploymentStats } from "../stats/deployment.ts";
import type { Deadlines } from "./deadlines.ts";
import type { Limits } from "./limits.ts";
import type { Registry } from "./registry.ts";
import type { Connection } from "./connection.ts";

/** What a connection needs from the app. */
export interface ConnectionDeps {
  tokenKey: TokenKey;
  attempts: AttemptLog;
  /** This instance's sockets: each connection adds itself, and reports its changes. */
  registry: Registry<Connection>;
  stats: DeploymentStats;
  logger: Logger;
  authTimeoutMs: number;
  maxMessageBytes: number;
  limits: Pick<Limits, "messagesPerSecond" | "messageBurst" | "slowConsumerBytes">;
  /** The instance's one timer for every socket's deadlines. */
  deadlines: Deadlines;
  isRevoked?: (claims: AccessClaims) => boolean | Promise<boolean>;
  /** This instance's id, as `instance` in the socket's log lines. */
  instanceId?: string;
}

/** Facts about the client, taken from the upgrade request. */
export interface ClientInfo {
  ip: string;
  origin: string | null;
  userAgent: string | null;
}

/** Warn this long before a token expires. */
export const EXPIRY_WARNING_MS = 60_000;

/** The deadlines one socket keeps, at most one of each. */
export type DeadlineKind = "auth" | "expiry" | "quiet";
